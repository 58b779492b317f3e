import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterPort } from '../../lib';
import { NtStatusError } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { HANG_GUARD_MS, until } from '../helpers/timing';
import { HR } from '../helpers/status';

test('send runs MessageNotify and resolves its output', async (t) => {
  const h = await startSimulator({
    port: {
      message: (_client, input, capacity) => Buffer.concat([Buffer.from('echo:'), input]).subarray(0, capacity),
    },
  });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const out = await port.send(Buffer.from('hello'), { outputSize: 64 });
  assert.equal(out.toString(), 'echo:hello');
  // Output is limited to outputSize, and no output buffer means an empty result.
  assert.equal((await port.send(Buffer.from('hello'), { outputSize: 4 })).toString(), 'echo');
  assert.equal((await port.send(Buffer.from('x'))).length, 0);
  await port.close();
});

test('zero-length and absent input reach MessageNotify as an empty buffer', async (t) => {
  const sizes: number[] = [];
  const h = await startSimulator({ port: { message: (_c, input) => void sizes.push(input.length) } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await port.send(Buffer.alloc(0));
  await port.send(undefined);
  await port.send(null);
  assert.deepEqual(sizes, [0, 0, 0]);
  await port.close();
});

test('many concurrent sends each get their own answer', async (t) => {
  const h = await startSimulator({
    port: {
      message: async (_c, input) => {
        await new Promise((r) => setTimeout(r, input[0]! % 5));
        return Buffer.from([input[0]!, input[0]! ^ 0xff]);
      },
    },
  });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => port.send(Buffer.from([i]), { outputSize: 2 })),
  );
  results.forEach((out, i) => assert.deepEqual([...out], [i, i ^ 0xff]));
  await port.close();
});

test('MessageNotify failures reject with FilterError; a port without MessageNotify rejects sends', async (t) => {
  const h = await startSimulator({
    port: {
      message: () => {
        throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
      },
    },
  });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(port.send(Buffer.from('x')), {
    name: 'FilterError',
    hresult: HR.ERROR_INVALID_PARAMETER,
    syscall: 'FilterSendMessage',
  });
  await port.close();
  h.filter.createCommunicationPort('\\NoMessageNotify', { maxConnections: 1 });
  const bare = await FilterPort.connect('\\NoMessageNotify', { simulator: h.endpoint });
  await assert.rejects(bare.send(Buffer.from('x')), { name: 'FilterError', hresult: HR.ERROR_NOT_SUPPORTED });
  await bare.close();
});

test('bad send arguments are refused with typed errors', async (t) => {
  const h = await startSimulator({ port: { message: () => undefined } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(port.send('text' as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(port.send(Buffer.alloc(1), { outputSize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  await assert.rejects(port.send(Buffer.alloc(1), { outputSize: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  await assert.rejects(port.send(Buffer.alloc(1), { signal: 'no' as unknown as AbortSignal }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  const detached = new Uint8Array(16);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  await assert.rejects(port.send(detached), { code: 'ERR_INVALID_ARG_VALUE' });
  await port.close();
  await assert.rejects(port.send(Buffer.alloc(1)), { code: 'ERR_PORT_CLOSED' });
});

test('send honours an AbortSignal', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const h = await startSimulator({ port: { message: () => gate.then(() => Buffer.from('late')) } });
  t.after(async () => {
    release();
    await h.close();
  });
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(port.send(Buffer.alloc(1), { signal: AbortSignal.abort() }), { name: 'AbortError' });
  const controller = new AbortController();
  const pending = port.send(Buffer.alloc(1), { outputSize: 8, signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  release();
  await port.close();
});

test('the input buffer may be reused as soon as send() returns', async (t) => {
  const seen: string[] = [];
  const h = await startSimulator({
    port: {
      message: async (_c, input) => {
        await new Promise((r) => setTimeout(r, 5));
        seen.push(input.toString());
      },
    },
  });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const buffer = Buffer.from('first');
  const pending = port.send(buffer);
  buffer.write('XXXXX');
  await pending;
  assert.deepEqual(seen, ['first']);
  await port.close();
});

test('close() does not wait for sends in MessageNotify: they reject with ERROR_OPERATION_ABORTED, the kernel sees the disconnect', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  const h = await startSimulator({
    port: {
      message: async () => {
        entered++;
        await gate;
        return Buffer.from('done');
      },
    },
  });
  t.after(async () => {
    release();
    await h.close();
  });
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const sends = Promise.allSettled([
    port.send(Buffer.from('a'), { outputSize: 4 }),
    port.send(Buffer.from('b'), { outputSize: 4 }),
  ]);
  await until(() => entered === 2, { what: 'both sends in MessageNotify' });
  await port.close(); // settles with MessageNotify still running
  for (const outcome of await sends) {
    assert.equal(outcome.status, 'rejected');
    assert.equal((outcome.reason as { code?: string }).code, 'ERROR_OPERATION_ABORTED');
  }
  await until(() => h.port.connections.size === 0, { what: 'the kernel side to see the disconnect' });
  await assert.rejects(port.send(Buffer.from('c')), { code: 'ERR_PORT_CLOSED' });
});

test('close() after awaiting sends: they complete normally', async (t) => {
  const h = await startSimulator({ port: { message: (_c, input) => input } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const sends = Array.from({ length: 20 }, (_, i) => port.send(Buffer.from(`s${i}`), { outputSize: 8 }));
  assert.deepEqual(
    (await Promise.all(sends)).map(String),
    Array.from({ length: 20 }, (_, i) => `s${i}`),
  );
  await port.close();
});

test('a send stuck in MessageNotify does not hold up sends issued after it', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const h = await startSimulator({
    port: {
      message: (_c, input) => (input.toString() === 'hang' ? gate.then(() => Buffer.from('late')) : input),
    },
  });
  t.after(async () => {
    release();
    await h.close();
  });
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await port.send(Buffer.from('warm'), { outputSize: 4 }); // one send thread exists and is idle now
  // A burst: three sends that stay in MessageNotify, then one that does not. Up to 4 send threads may run, so
  // the last one must get a thread of its own rather than queue behind the stuck ones.
  const stuck = [0, 1, 2].map(() => port.send(Buffer.from('hang'), { outputSize: 4 }));
  const next = port.send(Buffer.from('next'), { outputSize: 4 });
  // The stuck sends never finish before release(): a send queued behind them would hang (the guard).
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('the second send waited behind the first')), HANG_GUARD_MS).unref(),
  );
  assert.equal(String(await Promise.race([next, timeout])), 'next');
  release();
  assert.deepEqual((await Promise.all(stuck)).map(String), ['late', 'late', 'late']);
  await port.close();
});
