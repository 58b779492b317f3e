import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError, FilterPort, type FilterMessage } from '../../lib';
import { NtStatus } from '../../lib/status';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { HANG_GUARD_MS, until } from '../helpers/timing';
import { HR } from '../helpers/status';

test('messages(): each message arrives once, in order, and replies reach the kernel', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const received: string[] = [];
  const consumer = (async () => {
    for await (const message of port.messages({ concurrency: 4 })) {
      received.push(message.data.toString());
      assert.equal(message.expectsReply, true);
      assert.equal(message.replyLength, 16 + 8);
      assert.equal(message.maxReplySize, 8);
      await message.reply(Buffer.from(message.data.toString().toUpperCase().padEnd(8, '.')));
      if (received.length === 20) break;
    }
  })();
  const results = [];
  for (let i = 0; i < 20; i++) {
    results.push(
      await h.filter.sendMessage(client, Buffer.from(`msg${i}`), { replyLength: 8, timeout: HANG_GUARD_MS }),
    );
  }
  await consumer;
  assert.deepEqual(
    received,
    Array.from({ length: 20 }, (_, i) => `msg${i}`),
  );
  results.forEach((r, i) => {
    assert.equal(r.status, 0);
    assert.equal(r.reply?.toString(), `MSG${i}`.padEnd(8, '.'));
  });
  await port.close();
});

test('serve(): returned bytes are the reply, reply status reaches the kernel, ids are unique', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const ids = new Set<bigint>();
  const serving = port.serve(
    async (message) => {
      ids.add(message.id);
      if (message.data[0] === 1) {
        await message.reply(Buffer.from([9]), { status: NtStatus.STATUS_ACCESS_DENIED });
        return;
      }
      return Buffer.from([message.data[0]! * 2]);
    },
    { concurrency: 8 },
  );
  const sends = Array.from({ length: 50 }, (_, i) =>
    h.filter.sendMessage(client, Buffer.from([i]), { replyLength: 1, timeout: HANG_GUARD_MS }),
  );
  const results = await Promise.all(sends);
  results.forEach((r, i) => {
    assert.equal(r.status, 0);
    if (i === 1) {
      assert.deepEqual([...r.reply!], [9]);
      assert.equal(r.replyStatus! >>> 0, NtStatus.STATUS_ACCESS_DENIED);
    } else assert.deepEqual([...r.reply!], [(i * 2) & 0xff]);
  });
  assert.equal(ids.size, 50);
  await port.close();
  await serving;
});

test('messages that expect no reply are delivered and cannot be replied to', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const iterator = port.messages({ concurrency: 2 });
  const sent = h.filter.sendMessage(client, Buffer.from('notify'), { timeout: HANG_GUARD_MS });
  const { value } = await iterator.next();
  const message = value as FilterMessage;
  assert.equal(message.expectsReply, false);
  assert.equal(message.replyLength, 0);
  assert.equal((await sent).status, 0);
  await assert.rejects(message.reply(Buffer.alloc(0)), { code: 'ERR_NO_REPLY_EXPECTED' });
  await iterator.return!();
  await port.close();
});

test('reply validation: too large, twice, after release, wrong types, a message that expected none', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const iterator = port.messages({ concurrency: 4 });
  const k1 = h.filter.sendMessage(client, Buffer.from('a'), { replyLength: 4, timeout: HANG_GUARD_MS });
  const m1 = (await iterator.next()).value as FilterMessage;
  await assert.rejects(m1.reply(Buffer.alloc(5)), { code: 'ERR_REPLY_TOO_LARGE' });
  await assert.rejects(m1.reply('x' as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(m1.reply(Buffer.alloc(1), { status: 2 ** 40 }), { code: 'ERR_OUT_OF_RANGE' });
  const detached = new Uint8Array(2);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  await assert.rejects(m1.reply(detached), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.equal(m1.settled, false, 'refused replies leave the message open');
  await m1.reply(Buffer.from('okay'));
  await assert.rejects(m1.reply(Buffer.from('okay')), { code: 'ERR_MESSAGE_SETTLED' });
  assert.equal((await k1).reply?.toString(), 'okay');

  // Delivered at once to a pending get: the 200 ms are all spent waiting for the (released) reply.
  await h.untilReceiving(client);
  const k2 = h.filter.sendMessage(client, Buffer.from('b'), { replyLength: 4, timeout: 200 });
  const m2 = (await iterator.next()).value as FilterMessage;
  m2.release();
  m2.release();
  await assert.rejects(m2.reply(Buffer.alloc(1)), { code: 'ERR_MESSAGE_SETTLED' });
  assert.equal((await k2).status, NtStatus.STATUS_TIMEOUT);

  const k3 = h.filter.sendMessage(client, Buffer.from('c'), { timeout: HANG_GUARD_MS });
  const m3 = (await iterator.next()).value as FilterMessage;
  await assert.rejects(m3.reply(Buffer.alloc(1)), { code: 'ERR_NO_REPLY_EXPECTED' });

  // An empty reply is a valid reply (FILTER_REPLY_HEADER only).
  const k4 = h.filter.sendMessage(client, Buffer.from('d'), { replyLength: 4, timeout: HANG_GUARD_MS });
  const m4 = (await iterator.next()).value as FilterMessage;
  await m4.reply(Buffer.alloc(0));
  const r4 = await k4;
  assert.equal(r4.status, 0);
  assert.equal(r4.reply?.length ?? 0, 0);
  await k3;
  await iterator.return!();
  await port.close();
});

test('a reply after the kernel timed out rejects with ERROR_FLT_NO_WAITER_FOR_REPLY', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const iterator = port.messages();
  // A get is pending, so the message is delivered at once; it cannot time out in the queue.
  await h.untilReceiving(client);
  const sent = h.filter.sendMessage(client, Buffer.from('slow'), { replyLength: 4, timeout: 100 });
  const message = (await iterator.next()).value as FilterMessage;
  assert.equal((await sent).status, NtStatus.STATUS_TIMEOUT);
  await assert.rejects(message.reply(Buffer.from('late')), (error: unknown) => {
    assert.ok(error instanceof FilterError);
    assert.equal(error.hresult, HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
    assert.equal(error.code, 'ERROR_FLT_NO_WAITER_FOR_REPLY');
    assert.equal(error.syscall, 'FilterReplyMessage');
    return true;
  });
  // The slot is usable again afterwards.
  const again = h.filter.sendMessage(client, Buffer.from('next'), { replyLength: 1, timeout: HANG_GUARD_MS });
  const next = (await iterator.next()).value as FilterMessage;
  await next.reply(Buffer.from('!'));
  assert.equal((await again).status, 0);
  await iterator.return!();
  await port.close();
});

test('backpressure: never more than `concurrency` messages held by JS, and none lost', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  let held = 0;
  let maxHeld = 0;
  const serving = port.serve(
    async (message) => {
      held++;
      maxHeld = Math.max(maxHeld, held);
      await new Promise((r) => setTimeout(r, 10));
      held--;
      return message.data;
    },
    { concurrency: 3 },
  );
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      h.filter.sendMessage(client, Buffer.from([i]), { replyLength: 1, timeout: HANG_GUARD_MS }),
    ),
  );
  results.forEach((r, i) => assert.deepEqual([...r.reply!], [i]));
  assert.equal(maxHeld, 3);
  await port.close();
  await serving;
});

test('a message larger than bufferSize grows the buffer; larger than maxBufferSize is an error', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const iterator = port.messages({ concurrency: 1, bufferSize: 64, maxBufferSize: 4096 });
  const big = Buffer.alloc(3000, 0xab);
  const sent = h.filter.sendMessage(client, big, { timeout: HANG_GUARD_MS });
  const message = (await iterator.next()).value as FilterMessage;
  assert.equal(message.data.length, 3000);
  assert.ok(message.data.equals(big));
  await sent;
  void h.filter.sendMessage(client, Buffer.alloc(8000), { timeout: HANG_GUARD_MS });
  await assert.rejects(iterator.next(), {
    name: 'FilterError',
    hresult: HR.ERROR_INSUFFICIENT_BUFFER,
    syscall: 'FilterGetMessage',
  });
  await port.close();
});

test('receive options are validated', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  for (const concurrency of [0, -1, 1.5, 100_000, Number.NaN]) {
    assert.throws(() => port.messages({ concurrency }), { code: 'ERR_OUT_OF_RANGE' }, `concurrency ${concurrency}`);
  }
  assert.throws(() => port.messages({ bufferSize: 8 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => port.messages({ bufferSize: 1024, maxBufferSize: 512 }), { code: 'ERR_OUT_OF_RANGE' });
  await assert.rejects(port.serve('nope' as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
  const iterator = port.messages({ concurrency: 4096 });
  assert.throws(() => port.messages(), { code: 'ERR_ALREADY_RECEIVING' });
  await assert.rejects(
    port.serve(() => undefined),
    { code: 'ERR_ALREADY_RECEIVING' },
  );
  await iterator.return!();
  // After the loop ended, receiving can start again.
  const again = port.messages();
  await again.return!();
  await port.close();
  assert.throws(() => port.messages(), { code: 'ERR_PORT_CLOSED' });
});

test('a synchronous handle can send but refuses to receive', async (t) => {
  const h = await startSimulator({ port: { message: (_c, input) => input } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint, syncHandle: true });
  assert.equal((await port.send(Buffer.from('ping'), { outputSize: 4 })).toString(), 'ping');
  assert.throws(() => port.messages(), { code: 'ERR_SYNC_HANDLE' });
  await port.close();
});

test('serve(): a throwing handler stops serving unless onError is given', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const failing = port.serve(() => {
    throw new Error('handler bug');
  });
  void h.filter.sendMessage(client, Buffer.from('x'), { replyLength: 1, timeout: HANG_GUARD_MS });
  await assert.rejects(failing, { message: 'handler bug' });

  const errors: unknown[] = [];
  const tolerant = port.serve(
    (message) => {
      if (message.data[0] === 0) throw new Error('first fails');
      return Buffer.from('k');
    },
    { onError: (error) => errors.push(error) },
  );
  // The failing message gets no reply: it is still unanswered when the port closes (no timeout involved).
  const r0 = h.filter.sendMessage(client, Buffer.from([0]), { replyLength: 1, timeout: HANG_GUARD_MS });
  await until(() => errors.length === 1, { what: 'onError for the failing message' });
  const r1 = await h.filter.sendMessage(client, Buffer.from([1]), { replyLength: 1, timeout: HANG_GUARD_MS });
  assert.equal(r1.reply?.toString(), 'k');
  assert.equal(errors.length, 1);
  await port.close();
  await tolerant;
  assert.deepEqual(await r0, { status: NtStatus.STATUS_PORT_DISCONNECTED }, 'the failing message was answered');
});

test('messages() and serve() stop with an AbortError when their signal aborts', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const controller = new AbortController();
  const iterator = port.messages({ signal: controller.signal });
  const next = iterator.next();
  controller.abort();
  await assert.rejects(next, { name: 'AbortError' });
  // Once next() has settled the loop is fully stopped, so receiving can start again.
  await port.messages().return!();
  await assert.rejects(
    port.serve(() => undefined, { signal: AbortSignal.abort() }),
    { name: 'AbortError' },
  );
  await port.close();
});

test('stopping and restarting receiving while messages are in flight loses no message', async (t) => {
  // Each round's stop cancels gets the simulator may already have given the next message to: that message
  // must reach the next round's gets (regression: it waited for a get that was never posted).
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  for (let round = 0; round < 40; round++) {
    const seen: number[] = [];
    const failing = port.serve(
      (message) => {
        seen.push(message.data[0]!);
        throw new Error('stop');
      },
      { concurrency: 16 },
    );
    // Never answered (the handler throws): it waits until the port closes. The timer is a hang guard.
    void h.filter.sendMessage(client, Buffer.from([round]), { replyLength: 1, timeout: HANG_GUARD_MS });
    const stuck = new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`round ${round}: message never arrived`)), HANG_GUARD_MS).unref(),
    );
    await assert.rejects(Promise.race([failing, stuck]), { message: 'stop' });
    assert.deepEqual(seen, [round], `round ${round}`);
  }
  await port.close();
});

test('serve(): a reply the minifilter no longer waits for does not stop serving; onError hears of it', async (t) => {
  // The handlers hold their answer until the kernel side has timed out (a gate, not a sleep), and the test waits
  // for the simulator to refuse the late reply before going on.
  const h = await startSimulator();
  let release0!: () => void;
  let release5!: () => void;
  const late0 = new Promise<void>((r) => (release0 = r));
  const late5 = new Promise<void>((r) => (release5 = r));
  t.after(async () => {
    release0();
    release5();
    await h.close();
  });
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const slow = port.serve(async (message) => {
    if (message.data[0] === 0) await late0; // past the kernel's timeout
    return Buffer.from([message.data[0]! + 1]);
  });
  await h.untilReceiving(client); // delivered at once: the timeout runs out while the handler holds it
  assert.equal(
    (await h.filter.sendMessage(client, Buffer.from([0]), { replyLength: 1, timeout: 50 })).status,
    NtStatus.STATUS_TIMEOUT,
  );
  release0();
  const replies = (): number[] => [client.stats().repliesAccepted, client.stats().repliesRefused];
  await until(() => replies().reduce((a, b) => a + b) === 1, { what: 'the late reply to reach the simulator' });
  assert.deepEqual(replies(), [0, 1], 'the late reply finds no waiter (ERROR_FLT_NO_WAITER_FOR_REPLY)');
  const r1 = await h.filter.sendMessage(client, Buffer.from([1]), { replyLength: 1, timeout: HANG_GUARD_MS });
  assert.deepEqual([...r1.reply!], [2], 'still serving after the late reply failed');
  await port.close();
  await slow;

  const client2Promise = h.nextClient();
  const port2 = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client2 = await client2Promise;
  const errors: unknown[] = [];
  const reporting = port2.serve(
    async (message) => {
      await late5;
      return Buffer.from([message.data[0]!]);
    },
    { onError: (error) => errors.push(error) },
  );
  await h.untilReceiving(client2);
  assert.equal(
    (await h.filter.sendMessage(client2, Buffer.from([5]), { replyLength: 1, timeout: 50 })).status,
    NtStatus.STATUS_TIMEOUT,
  );
  release5();
  await until(() => errors.length > 0, { what: 'onError for the late reply' });
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, 'ERROR_FLT_NO_WAITER_FOR_REPLY');
  await port2.close();
  await reporting;
});
