// The MANAGE / MANAGE_RESULT codec of lib/simulator/wire.ts (docs/wire-protocol.md, "Management requests"),
// against the tests' own encoder and decoder (test/helpers/wire-client.ts, written from the document): round
// trips over generated inputs (fast-check), the exact malformations that are protocol errors, and the
// first-frame size limit that must admit the largest MANAGE.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FrameDecoder,
  FrameType,
  MANAGE_ARG_COUNTS,
  MAX_CONNECT_PAYLOAD,
  MAX_FIRST_FRAME_PAYLOAD,
  MAX_MANAGE_PAYLOAD,
  ManageOp,
  ProtocolError,
  encodeFilterRecord,
  encodeFrame,
  encodeInstanceRecord,
  encodeManageResult,
  encodeManageString,
  encodeNameRecord,
  encodePortRecord,
  encodeVolumeRecord,
  parseManage,
  parseManageResult,
  type ManageOpValue,
} from '../../lib/simulator/wire';
import { OP, T, decodeManageResult, frameBytes, managePayload } from '../helpers/wire-client';

fc.configureGlobal({ includeErrorInReport: true });

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const utf16 = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength }).map((units) => String.fromCharCode(...units));
const latin1 = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 0xff }), { maxLength }).map((units) => String.fromCharCode(...units));
const knownOp = fc.constantFrom(...MANAGE_ARG_COUNTS.keys());

function throwsProtocol(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ProtocolError && re.test(e.message));
}

test('the codec and the test client agree on the op numbers and frame types of the document', () => {
  assert.deepEqual({ ...ManageOp }, { ...OP });
  assert.equal(FrameType.MANAGE, T.MANAGE);
  assert.equal(FrameType.MANAGE_RESULT, T.MANAGE_RESULT);
  assert.deepEqual(
    [...MANAGE_ARG_COUNTS.entries()],
    [
      [1, 0],
      [2, 2],
      [3, 0],
      [4, 1],
      [5, 1],
      [6, 4],
      [7, 3],
      [8, 1],
      [9, 0],
    ],
  );
});

test('MANAGE of the independent encoder parses back, for every op and any strings', () => {
  fc.assert(
    fc.property(
      knownOp.chain((op) =>
        fc.record({
          op: fc.constant(op),
          pid: u32,
          args: fc.array(utf16(40), {
            minLength: MANAGE_ARG_COUNTS.get(op) ?? 0,
            maxLength: MANAGE_ARG_COUNTS.get(op) ?? 0,
          }),
          secret: latin1(48),
        }),
      ),
      (m) => {
        const parsed = parseManage(managePayload(m));
        assert.deepEqual(parsed, { op: m.op, clientPid: m.pid, args: m.args, secret: m.secret });
      },
    ),
  );
});

test('MANAGE: a wrong string count, an odd string length, truncation and trailing bytes are protocol errors', () => {
  const ok = managePayload({ op: OP.ATTACH, args: ['f', 'C:', '', ''], secret: 's' });
  assert.equal(parseManage(ok).args.length, 4);
  throwsProtocol(
    () => parseManage(managePayload({ op: OP.ATTACH, args: ['f', 'C:'], secret: '' })),
    /op 6 takes 4 strings, got 2/,
  );
  throwsProtocol(
    () => parseManage(managePayload({ op: OP.FILTERS, args: ['x'], secret: '' })),
    /op 1 takes 0 strings, got 1/,
  );
  const odd = Buffer.from(managePayload({ op: OP.LOAD, args: ['ab'], secret: '' }));
  odd.writeUInt16LE(3, 10); // the first string's byte length
  throwsProtocol(() => parseManage(odd), /odd UTF-16 string length 3/);
  throwsProtocol(() => parseManage(ok.subarray(0, ok.length - 1)), /MANAGE: payload truncated/);
  throwsProtocol(() => parseManage(Buffer.concat([ok, Buffer.from([0])])), /MANAGE: 1 unexpected trailing/);
  throwsProtocol(() => parseManage(Buffer.alloc(9)), /payload truncated/);
  // An unknown op is not a protocol error (it is answered E_INVALIDARG), whatever its string count.
  const unknown = parseManage(managePayload({ op: 77, args: ['a', 'b', 'c', 'd', 'e'], secret: '' }));
  assert.deepEqual(unknown.args, ['a', 'b', 'c', 'd', 'e']);
});

test('parseManage throws nothing but ProtocolError on arbitrary payloads', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 96 }), (a) => {
      try {
        parseManage(Buffer.from(a));
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
  );
});

const filterRec = fc.record({ flags: u32, frameId: u32, numberOfInstances: u32, name: utf16(20), altitude: utf16(10) });
const instanceRec = fc.record({
  flags: u32,
  frameId: u32,
  volumeFileSystemType: u32,
  instanceName: utf16(20),
  altitude: utf16(10),
  volumeName: utf16(30),
  filterName: utf16(20),
});
const volumeRec = fc.record({
  flags: u32,
  frameId: u32,
  fileSystemType: u32,
  volumeName: utf16(30),
  dosName: utf16(4),
});
const portRec = fc.record({ maxConnections: u32, connections: u32, portName: utf16(20), filterName: utf16(20) });

test('MANAGE_RESULT records round-trip through parseManageResult and the independent decoder', () => {
  const check = <R extends object>(op: ManageOpValue, generated: R[], encode: (r: R) => Buffer): void => {
    const records = generated.map((r) => ({ ...r })); // fast-check's records have a null prototype
    const payload = encodeManageResult(0, records.map(encode));
    const ours = parseManageResult(payload, op);
    assert.deepEqual({ hresult: ours.hresult, records: ours.records }, { hresult: 0, records });
    assert.deepEqual(decodeManageResult(op, payload), { hresult: 0, records });
  };
  fc.assert(
    fc.property(fc.array(filterRec, { maxLength: 5 }), (rs) => check(ManageOp.FILTERS, rs, encodeFilterRecord)),
  );
  fc.assert(
    fc.property(fc.array(instanceRec, { maxLength: 5 }), (rs) => check(ManageOp.INSTANCES, rs, encodeInstanceRecord)),
  );
  fc.assert(
    fc.property(fc.array(volumeRec, { maxLength: 5 }), (rs) => check(ManageOp.VOLUMES, rs, encodeVolumeRecord)),
  );
  fc.assert(fc.property(fc.array(portRec, { maxLength: 5 }), (rs) => check(ManageOp.PORTS, rs, encodePortRecord)));
  fc.assert(
    fc.property(utf16(30), (name) => {
      const payload = encodeManageResult(0, [encodeNameRecord(name)]);
      assert.deepEqual(parseManageResult(payload, ManageOp.ATTACH).records, [name]);
      assert.deepEqual(decodeManageResult(OP.DOS_NAME, payload), { hresult: 0, records: [{ name }] });
    }),
  );
});

test('MANAGE_RESULT: exact bytes of a failure and of a FILTERS record', () => {
  assert.deepEqual(encodeManageResult(0x801f0013), Buffer.from([0x13, 0x00, 0x1f, 0x80, 0, 0, 0, 0]));
  assert.throws(() => encodeManageResult(0x80070005, [encodeNameRecord('x')]), RangeError);
  const rec = encodeFilterRecord({ flags: 1, frameId: 0, numberOfInstances: 2, name: 'Ab', altitude: '1' });
  assert.deepEqual(rec, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0x41, 0, 0x62, 0, 2, 0, 0x31, 0]));
  assert.equal(encodeManageString('x'.repeat(0x7fff)).length, 2 + 0xfffe);
  assert.throws(() => encodeManageString('x'.repeat(0x8000)), RangeError);
});

test('the first-frame limit admits the largest MANAGE and refuses one byte more, on the header', () => {
  assert.equal(MAX_MANAGE_PAYLOAD, 327_691);
  assert.equal(MAX_FIRST_FRAME_PAYLOAD, Math.max(MAX_CONNECT_PAYLOAD, MAX_MANAGE_PAYLOAD));
  const longest = 'x'.repeat(0x7fff);
  const payload = managePayload({
    op: OP.ATTACH,
    args: [longest, longest, longest, longest],
    secret: 's'.repeat(0xffff),
  });
  assert.equal(payload.length, MAX_MANAGE_PAYLOAD);
  const d = new FrameDecoder('client-to-server', { firstFrameMaxPayload: MAX_FIRST_FRAME_PAYLOAD });
  const frames = d.push(encodeFrame(FrameType.MANAGE, 0, payload));
  assert.equal(frames.length, 1);
  assert.equal(parseManage(frames[0]?.payload ?? Buffer.alloc(0)).args[3], longest);
  const tooBig = new FrameDecoder('client-to-server', { firstFrameMaxPayload: MAX_FIRST_FRAME_PAYLOAD });
  throwsProtocol(
    () => tooBig.push(frameBytes(T.MANAGE, 0, Buffer.alloc(0), { length: 8 + MAX_MANAGE_PAYLOAD + 1 })),
    /exceeds 8 \+ 327691, the largest CONNECT or MANAGE/,
  );
  // The server-to-client direction knows MANAGE_RESULT; a client cannot send one.
  throwsProtocol(
    () => new FrameDecoder('client-to-server').push(frameBytes(T.MANAGE_RESULT, 0)),
    /unknown frame type 0x87/,
  );
  assert.equal(
    new FrameDecoder('server-to-client').push(encodeFrame(FrameType.MANAGE_RESULT, 0, encodeManageResult(0))).length,
    1,
  );
});
