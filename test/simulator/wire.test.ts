import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  FrameDecoder,
  FrameType,
  MAX_PAYLOAD,
  ProtocolError,
  encodeFrame,
  encodeGetComplete,
  formatEndpoint,
  parseConnect,
  parseEndpoint,
  parseGet,
  parseReply,
  parseSend,
} from '../../lib/simulator/wire';
import { connectPayload, frameBytes } from '../helpers/wire-client';

test('encodeFrame writes the documented header', () => {
  const f = encodeFrame(FrameType.GET_COMPLETE, 0xdeadbeef, Buffer.from([1, 2, 3]));
  assert.deepEqual([...f], [11, 0, 0, 0, 1, 0x82, 0, 0, 0xef, 0xbe, 0xad, 0xde, 1, 2, 3]);
  assert.deepEqual(f, frameBytes(0x82, 0xdeadbeef, Buffer.from([1, 2, 3])));
});

test('the decoder reassembles frames split at every byte and batched together', () => {
  const a = frameBytes(FrameType.GET, 7, Buffer.from([0x10, 0, 0, 0]));
  const b = frameBytes(FrameType.CANCEL, 7);
  const stream = Buffer.concat([a, b, a]);
  const d = new FrameDecoder('client-to-server');
  const frames = [];
  for (const byte of stream) frames.push(...d.push(Buffer.from([byte])));
  assert.deepEqual(
    frames.map((f) => [f.type, f.id, f.payload.length]),
    [
      [FrameType.GET, 7, 4],
      [FrameType.CANCEL, 7, 0],
      [FrameType.GET, 7, 4],
    ],
  );
  assert.equal(d.pendingBytes, 0);
  assert.equal(new FrameDecoder('client-to-server').push(stream).length, 3);
  // A partial frame is held back.
  const partial = new FrameDecoder('client-to-server');
  assert.equal(partial.push(a.subarray(0, 13)).length, 0);
  assert.equal(partial.pendingBytes, 13);
});

test('the decoder refuses bad headers as soon as it sees them', () => {
  const cases: [Buffer, RegExp][] = [
    [frameBytes(FrameType.GET, 1, Buffer.alloc(4), { length: 7 }), /below 8/],
    [frameBytes(FrameType.GET, 1, Buffer.alloc(4), { length: 8 + MAX_PAYLOAD + 1 }).subarray(0, 4), /exceeds/],
    [frameBytes(FrameType.GET, 1, Buffer.alloc(4), { version: 2 }).subarray(0, 5), /version 2/],
    [frameBytes(0x7f, 1).subarray(0, 6), /unknown frame type 0x7f/],
    [frameBytes(FrameType.CONNECT_RESULT, 1), /unknown frame type 0x81/], // server-to-client type from a client
    [frameBytes(FrameType.GET, 1, Buffer.alloc(4), { flags: 1 }).subarray(0, 8), /nonzero flags/],
  ];
  for (const [bytes, reason] of cases) {
    assert.throws(
      () => new FrameDecoder('client-to-server').push(bytes),
      (e: unknown) => e instanceof ProtocolError && reason.test(e.message),
    );
  }
  // The largest legal frame header is accepted (the payload is simply not there yet).
  const big = Buffer.alloc(12);
  big.writeUInt32LE(8 + MAX_PAYLOAD, 0);
  big[4] = 1;
  big[5] = FrameType.SEND;
  assert.deepEqual(new FrameDecoder('client-to-server').push(big), []);
  // The other direction accepts server frames and refuses client frames.
  assert.equal(
    new FrameDecoder('server-to-client').push(frameBytes(FrameType.DISCONNECT, 0, Buffer.alloc(4))).length,
    1,
  );
  assert.throws(
    () => new FrameDecoder('server-to-client').push(frameBytes(FrameType.GET, 0, Buffer.alloc(4))),
    ProtocolError,
  );
});

test('a CONNECT payload of the independently written client encoder parses back', () => {
  const p = {
    options: 1,
    clientPid: 4242,
    portName: '\\Scanner\u00e9Port',
    context: Buffer.from([9, 8, 7]),
    secret: 'abc',
  };
  const bytes = connectPayload({ portName: p.portName, options: 1, pid: 4242, context: p.context, secret: 'abc' });
  assert.deepEqual(parseConnect(bytes), p);
  assert.throws(() => parseConnect(bytes.subarray(0, bytes.length - 1)), /truncated/);
  assert.throws(() => parseConnect(Buffer.concat([bytes, Buffer.from([0])])), /trailing/);
  const odd = Buffer.from(bytes);
  odd.writeUInt16LE(3, 8);
  assert.throws(() => parseConnect(odd), /odd UTF-16/);
  assert.throws(() => parseConnect(Buffer.alloc(3)), /truncated/);
});

test('GET, REPLY and SEND payloads are checked for length', () => {
  assert.deepEqual(parseGet(Buffer.from([0x20, 0, 0, 0])), { capacity: 32 });
  assert.throws(() => parseGet(Buffer.alloc(3)), /truncated/);
  assert.throws(() => parseGet(Buffer.alloc(5)), /trailing/);
  const reply = Buffer.alloc(18);
  reply.writeInt32LE(-1073741790, 0);
  reply.writeUInt32LE(0xffffffff, 4); // padding garbage is ignored
  reply.writeBigUInt64LE(2n ** 64n - 1n, 8);
  reply[16] = 5;
  assert.deepEqual(parseReply(reply), { status: 0xc0000022, messageId: 2n ** 64n - 1n, data: Buffer.from([5, 0]) });
  assert.throws(() => parseReply(Buffer.alloc(15)), /truncated/);
  assert.deepEqual(parseSend(Buffer.from([4, 0, 0, 0, 1])), { outputCapacity: 4, input: Buffer.from([1]) });
  assert.throws(() => parseSend(Buffer.alloc(2)), /truncated/);
  const gc = encodeGetComplete({ status: 0xc0000023, replyLength: 99, messageId: 5n, data: Buffer.alloc(0) });
  assert.equal(gc.readUInt32LE(0), 0xc0000023);
  assert.equal(gc.readUInt32LE(4), 99);
});

test('endpoint strings parse and format', () => {
  assert.deepEqual(parseEndpoint('unix:/tmp/x.sock'), { kind: 'unix', path: '/tmp/x.sock' });
  assert.deepEqual(parseEndpoint('/tmp/x.sock'), { kind: 'unix', path: '/tmp/x.sock' });
  assert.deepEqual(parseEndpoint('tcp:127.0.0.1:5000#s3cret'), {
    kind: 'tcp',
    host: '127.0.0.1',
    port: 5000,
    secret: 's3cret',
  });
  assert.deepEqual(parseEndpoint('pipe:\\\\.\\pipe\\sim#k'), { kind: 'pipe', path: '\\\\.\\pipe\\sim', secret: 'k' });
  for (const e of ['unix:/a', 'tcp:127.0.0.1:1#x', 'pipe:\\\\.\\pipe\\p#y'])
    assert.equal(formatEndpoint(parseEndpoint(e)), e);
  for (const bad of [
    '',
    'unix:',
    'tcp:127.0.0.1#x',
    'tcp:127.0.0.1:0#x',
    'tcp:127.0.0.1:70000#x',
    'tcp::5#x',
    'relative/path',
    'http://x',
  ]) {
    assert.throws(() => parseEndpoint(bad), TypeError, bad);
  }
});

test('the decoder copies each byte once, as it arrives, however a 16 MiB frame is chunked', () => {
  const frame = encodeFrame(FrameType.SEND, 3, Buffer.alloc(MAX_PAYLOAD, 0x5a));
  for (const size of [65536, 4096, 1000]) {
    const d = new FrameDecoder('client-to-server');
    let frames = 0;
    for (let o = 0; o < frame.length; o += size) {
      const chunk = frame.subarray(o, o + size);
      const before = d.bytesCopied;
      const out = d.push(chunk);
      // Work per push is bounded by the push, not by the frame: no reassembly of everything received at the end.
      assert.ok(
        d.bytesCopied - before <= chunk.length,
        `a push of ${chunk.length} bytes copied ${d.bytesCopied - before}`,
      );
      for (const f of out) {
        frames++;
        assert.equal(f.payload.length, MAX_PAYLOAD);
        assert.equal(f.payload[0], 0x5a);
        assert.equal(f.payload[MAX_PAYLOAD - 1], 0x5a);
      }
    }
    assert.equal(frames, 1);
    assert.ok(d.bytesCopied <= frame.length, `copied ${d.bytesCopied} bytes for a frame of ${frame.length}`);
    assert.equal(d.pendingBytes, 0);
  }
});
