// Bad arguments to fltmgr/manager are Node-style TypeErrors/RangeErrors with codes, thrown (as rejections) before
// any native call: a peer that records every stream sees none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as manager from '../../lib/manager';
import { FrameType, encodeFrame } from '../../lib/simulator/wire';
import { startFakePeer } from '../helpers/fake-peer';
import { until } from '../helpers/timing';

test('names, volumes, altitudes and options are checked before anything reaches Filter Manager', async (t) => {
  const peer = await startFakePeer();
  t.after(() => peer.close());
  // Answers a MANAGE with S_OK and no records (the positive control below).
  peer.onFrame = (frame, socket) => {
    if (frame.type === FrameType.MANAGE) socket.end(encodeFrame(FrameType.MANAGE_RESULT, 0, Buffer.alloc(8)));
  };
  const s = { simulator: peer.endpoint };
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['load(42)', () => manager.load(42 as unknown as string, s), 'ERR_INVALID_ARG_TYPE'],
    ["load('')", () => manager.load('', s), 'ERR_INVALID_ARG_VALUE'],
    ["unload('a\\0b')", () => manager.unload('a\0b', s), 'ERR_INVALID_ARG_VALUE'],
    ['unload(256 chars)', () => manager.unload('x'.repeat(256), s), 'ERR_OUT_OF_RANGE'],
    ['attach(undefined)', () => manager.attach(undefined as unknown as string, 'C:', s), 'ERR_INVALID_ARG_TYPE'],
    ["attach(f, '')", () => manager.attach('f', '', s), 'ERR_INVALID_ARG_VALUE'],
    ["attach altitude 'high'", () => manager.attach('f', 'C:', { ...s, altitude: 'high' }), 'ERR_INVALID_ARG_VALUE'],
    ["attach altitude '1.'", () => manager.attach('f', 'C:', { ...s, altitude: '1.' }), 'ERR_INVALID_ARG_VALUE'],
    ["attach altitude '-1'", () => manager.attach('f', 'C:', { ...s, altitude: '-1' }), 'ERR_INVALID_ARG_VALUE'],
    [
      'attach altitude 385100',
      () => manager.attach('f', 'C:', { ...s, altitude: 385100 as unknown as string }),
      'ERR_INVALID_ARG_TYPE',
    ],
    ["attach instanceName ''", () => manager.attach('f', 'C:', { ...s, instanceName: '' }), 'ERR_INVALID_ARG_VALUE'],
    ["detach instanceName ''", () => manager.detach('f', 'C:', { ...s, instanceName: '' }), 'ERR_INVALID_ARG_VALUE'],
    ['detach(f, 1025 chars)', () => manager.detach('f', 'v'.repeat(1025), s), 'ERR_OUT_OF_RANGE'],
    ['dosName(null)', () => manager.dosName(null as unknown as string, s), 'ERR_INVALID_ARG_TYPE'],
    ["instances({ filter: '' })", () => manager.instances({ ...s, filter: '' }), 'ERR_INVALID_ARG_VALUE'],
    [
      'instances({ volume: 1 })',
      () => manager.instances({ ...s, volume: 1 as unknown as string }),
      'ERR_INVALID_ARG_TYPE',
    ],
    ["filters('x')", () => manager.filters('x' as unknown as manager.ManagerOptions), 'ERR_INVALID_ARG_TYPE'],
    ['volumes(null)', () => manager.volumes(null as unknown as manager.ManagerOptions), 'ERR_INVALID_ARG_TYPE'],
    ['ports({ simulator: 1 })', () => manager.ports({ simulator: 1 as unknown as string }), 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [what, call, code] of cases) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof TypeError || error instanceof RangeError, `${what}: ${String(error)}`);
      assert.equal((error as { code?: string }).code, code, `${what}: ${String(error)}`);
      return true;
    });
  }
  assert.equal(peer.sockets.length, 0, 'no bad call opened a stream');
  // The control: a good call does reach the peer.
  assert.deepEqual(await manager.filters(s), []);
  await until(() => peer.sockets.length === 1, { what: 'the good call to be seen' });
  assert.equal(peer.frames.filter((f) => f.type === FrameType.MANAGE).length, 1);
});
