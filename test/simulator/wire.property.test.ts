// Property tests (fast-check) of the simulator's wire codec, lib/simulator/wire.ts: encode -> decode round
// trips for every frame type (client frames encoded by the tests' own client, test/helpers/wire-client.ts), FrameDecoder independent of how the stream is cut into chunks, and arbitrary
// bytes never making it throw anything but ProtocolError. wire.test.ts pins the exact bytes; these check the
// same rules over many generated inputs. A failure prints the seed and the shrunk counterexample.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FrameDecoder,
  FrameType,
  HEADER_BYTES,
  MAX_PAYLOAD,
  ProtocolError,
  encodeFrame,
  encodeGetComplete,
  encodeI32,
  encodeSendResult,
  formatEndpoint,
  parseCancel,
  parseConnect,
  parseEndpoint,
  parseGet,
  parseGetComplete,
  parseReply,
  parseSend,
  parseSendResult,
  parseStatusPayload,
  type Endpoint,
  type Frame,
} from '../../lib/simulator/wire';
import { connectPayload, replyPayload, sendPayload } from '../helpers/wire-client';

// Put the failed assertion itself into fast-check's report (node:test prints only the message).
fc.configureGlobal({ includeErrorInReport: true });

type Direction = 'client-to-server' | 'server-to-client';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
// Any UTF-16 code units, lone surrogates included: names travel as raw UTF-16LE.
const utf16 = (maxLength: number) =>
  fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength }).map((units) => String.fromCharCode(...units));
const latin1 = (maxLength: number) =>
  fc.array(fc.integer({ min: 0, max: 0xff }), { maxLength }).map((units) => String.fromCharCode(...units));

// A frame together with what parsing its payload must give back.
interface Case {
  type: number;
  id: number;
  payload: Buffer;
  check(payload: Buffer): void;
}

const clientFrame: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ options: u32, clientPid: u32, portName: utf16(40), context: bytes(64), secret: latin1(40) }).map((p) => ({
    type: FrameType.CONNECT,
    id: 0,
    payload: connectPayload({
      options: p.options,
      pid: p.clientPid,
      portName: p.portName,
      context: p.context,
      secret: p.secret,
    }),
    check: (b: Buffer) => assert.deepEqual(parseConnect(b), { ...p }),
  })),
  fc.record({ id: u32, capacity: u32 }).map(({ id, capacity }) => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32LE(capacity, 0);
    return { type: FrameType.GET, id, payload, check: (b: Buffer) => assert.deepEqual(parseGet(b), { capacity }) };
  }),
  u32.map((id) => ({ type: FrameType.CANCEL, id, payload: Buffer.alloc(0), check: (b: Buffer) => parseCancel(b) })),
  fc
    .record({ id: u32, status: fc.oneof(u32, i32), messageId: u64, data: bytes(64) })
    .map(({ id, status, messageId, data }) => ({
      type: FrameType.REPLY,
      id,
      payload: replyPayload(messageId, data, status),
      // Statuses come back unsigned whichever way they went in.
      check: (b: Buffer) => assert.deepEqual(parseReply(b), { status: status >>> 0, messageId, data }),
    })),
  fc.record({ id: u32, outputCapacity: u32, input: bytes(64) }).map(({ id, outputCapacity, input }) => ({
    type: FrameType.SEND,
    id,
    payload: sendPayload(outputCapacity, input),
    check: (b: Buffer) => assert.deepEqual(parseSend(b), { outputCapacity, input }),
  })),
);

const serverFrame: fc.Arbitrary<Case> = fc.oneof(
  fc
    .record({
      type: fc.constantFrom(FrameType.CONNECT_RESULT, FrameType.REPLY_RESULT, FrameType.DISCONNECT),
      id: u32,
      value: i32,
    })
    .map(({ type, id, value }) => ({
      type,
      id,
      payload: encodeI32(value),
      check: (b: Buffer) => assert.equal(parseStatusPayload(b, 'RESULT'), value >>> 0),
    })),
  fc.record({ id: u32, status: u32, replyLength: u32, messageId: u64, data: bytes(64) }).map((p) => ({
    type: FrameType.GET_COMPLETE,
    id: p.id,
    payload: encodeGetComplete({ status: p.status, replyLength: p.replyLength, messageId: p.messageId, data: p.data }),
    check: (b: Buffer) =>
      assert.deepEqual(parseGetComplete(b), {
        status: p.status,
        replyLength: p.replyLength,
        messageId: p.messageId,
        data: p.data,
      }),
  })),
  fc.record({ id: u32, hresult: fc.oneof(u32, i32), output: bytes(64) }).map(({ id, hresult, output }) => ({
    type: FrameType.SEND_RESULT,
    id,
    payload: encodeSendResult(hresult, output),
    check: (b: Buffer) => assert.deepEqual(parseSendResult(b), { hresult: hresult >>> 0, output }),
  })),
);

const frames = (direction: Direction) =>
  fc.array(direction === 'client-to-server' ? clientFrame : serverFrame, { minLength: 1, maxLength: 8 });

/** Cut points (sorted, inside [0, length]) from arbitrary numbers. */
function chunksOf(stream: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, stream.length]) {
    out.push(stream.subarray(prev, c)); // empty chunks included: push() must accept them
    prev = c;
  }
  return out;
}

function summary(fs: Frame[]): [number, number, string][] {
  return fs.map((f) => [f.type, f.id, f.payload.toString('hex')]);
}

/** Feeds chunks; returns the frames seen, and the error if one was thrown (with the frames it carries). */
function feed(direction: Direction, chunks: Buffer[]): { frames: Frame[]; error?: ProtocolError; pending: number } {
  const d = new FrameDecoder(direction);
  const out: Frame[] = [];
  for (const chunk of chunks) {
    try {
      out.push(...d.push(chunk));
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      out.push(...e.frames);
      return { frames: out, error: e, pending: d.pendingBytes };
    }
  }
  return { frames: out, pending: d.pendingBytes };
}

for (const direction of ['client-to-server', 'server-to-client'] as const) {
  test(`${direction}: every frame type round-trips through encodeFrame, FrameDecoder and its parser`, () => {
    fc.assert(
      fc.property(frames(direction), (cases) => {
        const stream = Buffer.concat(cases.map((c) => encodeFrame(c.type, c.id, c.payload)));
        const got = new FrameDecoder(direction).push(stream);
        assert.equal(got.length, cases.length);
        got.forEach((f, i) => {
          const c = cases[i] as Case;
          assert.deepEqual([f.type, f.id, f.payload], [c.type, c.id >>> 0, c.payload]);
          c.check(f.payload);
        });
      }),
      { numRuns: 300 },
    );
  });

  test(`${direction}: any chunking of a valid stream yields the same frames; a cut stream holds back the partial frame`, () => {
    fc.assert(
      fc.property(frames(direction), fc.array(fc.nat(), { maxLength: 24 }), fc.nat(), (cases, cuts, cutEnd) => {
        const encoded = cases.map((c) => encodeFrame(c.type, c.id, c.payload));
        const stream = Buffer.concat(encoded);
        const whole = feed(direction, [stream]);
        const chunked = feed(direction, chunksOf(stream, cuts));
        assert.equal(chunked.error, undefined);
        assert.deepEqual(summary(chunked.frames), summary(whole.frames));
        assert.equal(whole.frames.length, cases.length);
        assert.equal(chunked.pending, 0);
        // The stream cut anywhere: the complete frames before the cut, the rest held back.
        const end = cutEnd % (stream.length + 1);
        const prefix = feed(direction, chunksOf(stream.subarray(0, end), cuts));
        let complete = 0;
        let used = 0;
        while (complete < encoded.length && used + (encoded[complete] as Buffer).length <= end) {
          used += (encoded[complete] as Buffer).length;
          complete++;
        }
        assert.deepEqual(summary(prefix.frames), summary(whole.frames.slice(0, complete)));
        assert.equal(prefix.pending, end - used);
      }),
      { numRuns: 300 },
    );
  });

  test(`${direction}: arbitrary bytes throw nothing but ProtocolError, the same way for every chunking`, () => {
    // Valid frames with a few bytes overwritten, so errors show up after good frames and deep in headers.
    const mutated = fc
      .tuple(
        frames(direction),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        bytes(40),
      )
      .map(([cases, edits, tail]) => {
        const stream = Buffer.concat([...cases.map((c) => encodeFrame(c.type, c.id, c.payload)), tail]);
        for (const [at, value] of edits) if (stream.length > 0) stream[at % stream.length] = value;
        return stream;
      });
    fc.assert(
      fc.property(fc.oneof(mutated, bytes(64)), fc.array(fc.nat(), { maxLength: 16 }), (stream, cuts) => {
        const whole = feed(direction, [stream]);
        const chunked = feed(direction, chunksOf(stream, cuts));
        const bytewise = feed(
          direction,
          [...stream].map((b) => Buffer.from([b])),
        );
        for (const run of [chunked, bytewise]) {
          assert.equal(run.error?.message, whole.error?.message);
          assert.deepEqual(summary(run.frames), summary(whole.frames));
        }
        // What was decoded is exactly the stream's start, re-encoded; frame types belong to the direction.
        const reencoded = Buffer.concat(whole.frames.map((f) => encodeFrame(f.type, f.id, f.payload)));
        assert.deepEqual(stream.subarray(0, reencoded.length), reencoded);
        if (!whole.error) assert.equal(whole.pending, stream.length - reencoded.length);
        for (const f of whole.frames) assert.equal(f.type >= 0x80, direction === 'server-to-client');
      }),
      { numRuns: 1000 },
    );
  });
}

test('what the properties found, pinned: frames before a bad header are on the error; pipe names keep their #', () => {
  const good = encodeFrame(FrameType.CONNECT_RESULT, 0, encodeI32(0));
  const bad = Buffer.from([4, 0, 0, 0]); // length 4 < 8
  assert.throws(
    () => new FrameDecoder('server-to-client').push(Buffer.concat([good, good, bad])),
    (e: unknown) => e instanceof ProtocolError && /below 8/.test(e.message) && e.frames.length === 2,
  );
  assert.deepEqual(parseEndpoint('pipe:\\\\.\\pipe\\fltmgr#x#abc'), {
    kind: 'pipe',
    path: '\\\\.\\pipe\\fltmgr#x',
    secret: 'abc',
  });
});

test('payload parsers throw nothing but ProtocolError on arbitrary payloads', () => {
  const parsers: [string, (b: Buffer) => unknown][] = [
    ['parseConnect', parseConnect],
    ['parseGet', parseGet],
    ['parseCancel', parseCancel],
    ['parseReply', parseReply],
    ['parseSend', parseSend],
    ['parseGetComplete', parseGetComplete],
    ['parseSendResult', parseSendResult],
    ['parseStatusPayload', (b) => parseStatusPayload(b, 'RESULT')],
  ];
  // CONNECT payloads with their u16 length fields kept plausible, plus plain noise.
  const connectish = fc
    .tuple(bytes(8), fc.integer({ min: 0, max: 40 }), bytes(40), fc.integer({ min: 0, max: 40 }), bytes(40), bytes(4))
    .map(([head, n1, a, n2, b, tail]) => {
      const l1 = Buffer.alloc(2);
      l1.writeUInt16LE(n1);
      const l2 = Buffer.alloc(2);
      l2.writeUInt16LE(n2);
      return Buffer.concat([head, l1, a, l2, b, tail]);
    });
  fc.assert(
    fc.property(fc.oneof(bytes(48), connectish), (payload) => {
      for (const [name, parse] of parsers) {
        try {
          parse(payload);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `${name} threw ${String(e)}`);
        }
      }
    }),
    { numRuns: 1000 },
  );
});

test('encodeFrame writes the header the decoder reads back; payloads over MAX_PAYLOAD are refused', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...Object.values(FrameType)),
      fc.oneof(u32, fc.integer()),
      bytes(32),
      (type, id, payload) => {
        const f = encodeFrame(type, id, payload);
        assert.equal(f.length, HEADER_BYTES + payload.length);
        assert.deepEqual(
          [f.readUInt32LE(0), f[4], f[5], f.readUInt16LE(6), f.readUInt32LE(8)],
          [8 + payload.length, 1, type, 0, id >>> 0],
        );
        const d = new FrameDecoder(type >= 0x80 ? 'server-to-client' : 'client-to-server');
        assert.deepEqual(summary(d.push(f)), [[type, id >>> 0, payload.toString('hex')]]);
      },
    ),
    { numRuns: 300 },
  );
  assert.throws(() => encodeFrame(FrameType.SEND, 1, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
});

test('endpoints: formatEndpoint -> parseEndpoint round-trips', () => {
  // The separators the syntax uses, often; anything else too.
  const unit = fc.oneof(
    fc.constantFrom('#', ':', '/', '\\', '.'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  );
  const text = (maxLength: number) => fc.string({ unit, maxLength });
  const endpoint: fc.Arbitrary<Endpoint> = fc.oneof(
    text(40).map((p) => ({ kind: 'unix' as const, path: `/${p}` })),
    text(40)
      .filter((p) => p.length > 0)
      .map((p) => ({ kind: 'unix' as const, path: p })),
    fc
      .record({
        host: text(20).filter((h) => h.length > 0 && !h.includes('#')),
        port: fc.integer({ min: 1, max: 65535 }),
        secret: text(30), // may contain '#': the first '#' ends the host:port part
      })
      .map((e): Endpoint => ({ kind: 'tcp', host: e.host, port: e.port, secret: e.secret })),
    fc
      .record({
        path: text(40).filter((p) => p.length > 0), // may contain '#' (a pipe name can)
        secret: text(30).filter((s) => !s.includes('#')), // generated secrets never do
      })
      .map((e): Endpoint => ({ kind: 'pipe', path: e.path, secret: e.secret })),
  );
  fc.assert(
    fc.property(endpoint, (e) => {
      assert.deepEqual(parseEndpoint(formatEndpoint(e)), e);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
      // Any string parses or throws a TypeError, nothing else.
      try {
        parseEndpoint(s);
      } catch (e) {
        assert.ok(e instanceof TypeError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});
