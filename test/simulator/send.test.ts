// User -> kernel: FilterSendMessage (SEND) runs the port's MessageNotify.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { NtStatusError, type ClientPort } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { startSimulator } from '../helpers/sim';
import { TEST_TIMEOUT_MS, until, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';

const OPTS = { timeout: TEST_TIMEOUT_MS };

test('MessageNotify gets the client, the input and the output capacity; its output comes back', OPTS, async (t) => {
  const calls: [ClientPort, string, number][] = [];
  const h = await startSimulator({
    port: {
      message: (client, input, capacity) => {
        calls.push([client, input.toString(), capacity]);
        return Buffer.from(`echo:${input.toString()}`);
      },
    },
  });
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  assert.deepEqual(await wire.send(Buffer.from('hi'), 100), { hresult: 0, output: Buffer.from('echo:hi') });
  assert.deepEqual(calls, [[client, 'hi', 100]]);
  // Exactly the capacity is fine.
  assert.equal((await wire.send(Buffer.from('12'), 7)).hresult, 0);
});

test('no MessageNotify: ERROR_NOT_SUPPORTED', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const w = await h.connect();
  assert.deepEqual(await w.send(Buffer.from('x'), 10), { hresult: HR.ERROR_NOT_SUPPORTED, output: Buffer.alloc(0) });
});

test('MessageNotify failures map to HRESULTs; bad output is refused', OPTS, async (t) => {
  const outcomes: (() => unknown)[] = [
    () => Buffer.alloc(11), // > capacity 10
    () => {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
    },
    async () => {
      throw new NtStatusError(NtStatus.STATUS_NOT_SUPPORTED);
    },
    () => {
      throw new TypeError('bug in the filter');
    },
    () => {
      throw new NtStatusError(NtStatus.STATUS_SUCCESS);
    },
    () => 'a string',
    () => undefined,
    async () => new Uint8Array([1, 2, 3]),
  ];
  const h = await startSimulator({ port: { message: () => (outcomes.shift() as () => Buffer)() } });
  t.after(() => h.close());
  const w = await h.connect();
  const results = [];
  for (let i = 0; i < 8; i++) results.push(await w.send(Buffer.from('x'), 10));
  assert.deepEqual(
    results.map((r) => r.hresult),
    [
      HR.ERROR_INSUFFICIENT_BUFFER,
      HR.ERROR_INVALID_PARAMETER,
      HR.ERROR_NOT_SUPPORTED,
      HR.ERROR_GEN_FAILURE,
      HR.ERROR_GEN_FAILURE,
      HR.ERROR_GEN_FAILURE,
      0,
      0,
    ],
  );
  assert.deepEqual(
    results.map((r) => r.output.length),
    [0, 0, 0, 0, 0, 0, 0, 3],
  );
  assert.ok(h.logs.some((l) => /TypeError: bug in the filter/.test(l)));
  assert.ok(h.logs.some((l) => /non-Uint8Array/.test(l)));
  assert.equal(w.isOpen, true, 'callback failures do not touch the connection');
});

test('concurrent sends are answered by id, in completion order', OPTS, async (t) => {
  // Each MessageNotify waits for its own gate; the test opens them in reverse order and waits for each answer
  // before opening the next gate. Answers in request order would hang here (and fail on the hang guard).
  const gates = [0, 1, 2].map(() => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    return { open, opened };
  });
  let entered = 0;
  const h = await startSimulator({
    port: {
      message: async (_c, input) => {
        entered++;
        await gates[input[0] as number]!.opened;
        return input;
      },
    },
  });
  t.after(async () => {
    for (const g of gates) g.open();
    await h.close();
  });
  const w = await h.connect();
  const order: number[] = [];
  const all = [0, 1, 2].map((i) => w.send(Buffer.from([i]), 1).then((r) => (order.push(r.output[0] as number), r)));
  await until(() => entered === 3, { what: 'all three sends in MessageNotify' });
  for (const i of [2, 1, 0]) {
    gates[i]!.open();
    assert.equal((await withTimeout(all[i]!, { what: `the answer to send ${i}` })).output[0], i);
  }
  const results = await Promise.all(all);
  assert.deepEqual(
    results.map((r) => r.output[0]),
    [0, 1, 2],
  );
  assert.deepEqual(order, [2, 1, 0]);
});

test('a send whose client leaves mid-callback is dropped quietly', OPTS, async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered = false;
  const h = await startSimulator({
    port: {
      message: () => {
        entered = true;
        return gate.then(() => Buffer.from('late'));
      },
    },
  });
  t.after(() => h.close());
  const w = await h.connect();
  void w.send(Buffer.from('x'), 8).catch(() => undefined);
  await until(() => entered, { what: 'the send to reach MessageNotify' });
  const gone = h.nextEvent('disconnect');
  w.destroy();
  await gone;
  release();
  // The late answer is dropped in promise callbacks (no I/O): a timer runs after all of them.
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(h.protocolErrors, []);
  assert.ok(!h.logs.some((l) => /internal error/.test(l)));
});
