import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError, FilterPort, type FilterMessage } from '../../lib';
import { NtStatus } from '../../lib/status';
import { PORT_NAME, startSimulator } from '../helpers/sim';

test('messages(): each message arrives once, in order, and replies reach the kernel', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
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
      results.push(await t.filter.sendMessage(client, Buffer.from(`msg${i}`), { replyLength: 8, timeout: 10_000 }));
    }
    await consumer;
    assert.deepEqual(received, Array.from({ length: 20 }, (_, i) => `msg${i}`));
    results.forEach((r, i) => {
      assert.equal(r.status, 0);
      assert.equal(r.reply?.toString(), `MSG${i}`.padEnd(8, '.'));
    });
    await port.close();
  } finally {
    await t.close();
  }
});

test('serve(): returned bytes are the reply, reply status reaches the kernel, ids are unique', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
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
      t.filter.sendMessage(client, Buffer.from([i]), { replyLength: 1, timeout: 10_000 }),
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
  } finally {
    await t.close();
  }
});

test('messages that expect no reply are delivered and cannot be replied to', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const iterator = port.messages({ concurrency: 2 });
    const sent = t.filter.sendMessage(client, Buffer.from('notify'), { timeout: 10_000 });
    const { value } = await iterator.next();
    const message = value as FilterMessage;
    assert.equal(message.expectsReply, false);
    assert.equal(message.replyLength, 0);
    assert.equal((await sent).status, 0);
    await assert.rejects(message.reply(Buffer.alloc(0)), { code: 'ERR_NO_REPLY_EXPECTED' });
    await iterator.return!();
    await port.close();
  } finally {
    await t.close();
  }
});

test('reply validation: too large, twice, after release, wrong types, a message that expected none', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const iterator = port.messages({ concurrency: 4 });
    const k1 = t.filter.sendMessage(client, Buffer.from('a'), { replyLength: 4, timeout: 10_000 });
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

    const k2 = t.filter.sendMessage(client, Buffer.from('b'), { replyLength: 4, timeout: 200 });
    const m2 = (await iterator.next()).value as FilterMessage;
    m2.release();
    m2.release();
    await assert.rejects(m2.reply(Buffer.alloc(1)), { code: 'ERR_MESSAGE_SETTLED' });
    assert.equal((await k2).status, NtStatus.STATUS_TIMEOUT);

    const k3 = t.filter.sendMessage(client, Buffer.from('c'), { timeout: 10_000 });
    const m3 = (await iterator.next()).value as FilterMessage;
    await assert.rejects(m3.reply(Buffer.alloc(1)), { code: 'ERR_NO_REPLY_EXPECTED' });

    // An empty reply is a valid reply (FILTER_REPLY_HEADER only).
    const k4 = t.filter.sendMessage(client, Buffer.from('d'), { replyLength: 4, timeout: 10_000 });
    const m4 = (await iterator.next()).value as FilterMessage;
    await m4.reply(Buffer.alloc(0));
    const r4 = await k4;
    assert.equal(r4.status, 0);
    assert.equal(r4.reply?.length ?? 0, 0);
    await k3;
    await iterator.return!();
    await port.close();
  } finally {
    await t.close();
  }
});

test('a reply after the kernel timed out rejects with ERROR_FLT_NO_WAITER_FOR_REPLY', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const iterator = port.messages();
    const sent = t.filter.sendMessage(client, Buffer.from('slow'), { replyLength: 4, timeout: 100 });
    const message = (await iterator.next()).value as FilterMessage;
    assert.equal((await sent).status, NtStatus.STATUS_TIMEOUT);
    await assert.rejects(message.reply(Buffer.from('late')), (error: unknown) => {
      assert.ok(error instanceof FilterError);
      assert.equal(error.hresult, 0x801f0020);
      assert.equal(error.code, 'ERROR_FLT_NO_WAITER_FOR_REPLY');
      assert.equal(error.syscall, 'FilterReplyMessage');
      return true;
    });
    // The slot is usable again afterwards.
    const again = t.filter.sendMessage(client, Buffer.from('next'), { replyLength: 1, timeout: 10_000 });
    const next = (await iterator.next()).value as FilterMessage;
    await next.reply(Buffer.from('!'));
    assert.equal((await again).status, 0);
    await iterator.return!();
    await port.close();
  } finally {
    await t.close();
  }
});

test('backpressure: never more than `concurrency` messages held by JS, and none lost', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
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
      Array.from({ length: 30 }, (_, i) => t.filter.sendMessage(client, Buffer.from([i]), { replyLength: 1, timeout: 20_000 })),
    );
    results.forEach((r, i) => assert.deepEqual([...r.reply!], [i]));
    assert.equal(maxHeld, 3);
    await port.close();
    await serving;
  } finally {
    await t.close();
  }
});

test('a message larger than bufferSize grows the buffer; larger than maxBufferSize is an error', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const iterator = port.messages({ concurrency: 1, bufferSize: 64, maxBufferSize: 4096 });
    const big = Buffer.alloc(3000, 0xab);
    const sent = t.filter.sendMessage(client, big, { timeout: 10_000 });
    const message = (await iterator.next()).value as FilterMessage;
    assert.equal(message.data.length, 3000);
    assert.ok(message.data.equals(big));
    await sent;
    void t.filter.sendMessage(client, Buffer.alloc(8000), { timeout: 1000 });
    await assert.rejects(iterator.next(), { name: 'FilterError', hresult: 0x8007007a, syscall: 'FilterGetMessage' });
    await port.close();
  } finally {
    await t.close();
  }
});

test('receive options are validated', async () => {
  const t = await startSimulator();
  try {
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    for (const concurrency of [0, -1, 1.5, 100_000, Number.NaN]) {
      assert.throws(() => port.messages({ concurrency }), { code: 'ERR_OUT_OF_RANGE' }, `concurrency ${concurrency}`);
    }
    assert.throws(() => port.messages({ bufferSize: 8 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => port.messages({ bufferSize: 1024, maxBufferSize: 512 }), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(port.serve('nope' as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
    const iterator = port.messages({ concurrency: 4096 });
    assert.throws(() => port.messages(), { code: 'ERR_ALREADY_RECEIVING' });
    await assert.rejects(port.serve(() => undefined), { code: 'ERR_ALREADY_RECEIVING' });
    await iterator.return!();
    // After the loop ended, receiving can start again.
    const again = port.messages();
    await again.return!();
    await port.close();
    assert.throws(() => port.messages(), { code: 'ERR_PORT_CLOSED' });
  } finally {
    await t.close();
  }
});

test('a synchronous handle can send but refuses to receive', async () => {
  const t = await startSimulator({ message: (_c, input) => input });
  try {
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint, syncHandle: true });
    assert.equal((await port.send(Buffer.from('ping'), { outputSize: 4 })).toString(), 'ping');
    assert.throws(() => port.messages(), { code: 'ERR_SYNC_HANDLE' });
    await port.close();
  } finally {
    await t.close();
  }
});

test('serve(): a throwing handler stops serving unless onError is given', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const failing = port.serve(() => {
      throw new Error('handler bug');
    });
    void t.filter.sendMessage(client, Buffer.from('x'), { replyLength: 1, timeout: 5000 });
    await assert.rejects(failing, { message: 'handler bug' });

    const errors: unknown[] = [];
    const tolerant = port.serve(
      (message) => {
        if (message.data[0] === 0) throw new Error('first fails');
        return Buffer.from('k');
      },
      { onError: (error) => errors.push(error) },
    );
    const r0 = await t.filter.sendMessage(client, Buffer.from([0]), { replyLength: 1, timeout: 200 });
    const r1 = await t.filter.sendMessage(client, Buffer.from([1]), { replyLength: 1, timeout: 5000 });
    assert.equal(r0.status, NtStatus.STATUS_TIMEOUT);
    assert.equal(r1.reply?.toString(), 'k');
    assert.equal(errors.length, 1);
    await port.close();
    await tolerant;
  } finally {
    await t.close();
  }
});

test('messages() and serve() stop with an AbortError when their signal aborts', async () => {
  const t = await startSimulator();
  try {
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const controller = new AbortController();
    const iterator = port.messages({ signal: controller.signal });
    const next = iterator.next();
    controller.abort();
    await assert.rejects(next, { name: 'AbortError' });
    // Once next() has settled the loop is fully stopped, so receiving can start again.
    await port.messages().return!();
    await assert.rejects(port.serve(() => undefined, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    await port.close();
  } finally {
    await t.close();
  }
});

test('stopping and restarting receiving while messages are in flight loses no message', async () => {
  // Each round's stop cancels gets the simulator may already have given the next message to: that message
  // must reach the next round's gets (regression: it waited for a get that was never posted).
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
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
      void t.filter.sendMessage(client, Buffer.from([round]), { replyLength: 1, timeout: 200 });
      const stuck = new Promise((_, reject) => setTimeout(() => reject(new Error(`round ${round}: message never arrived`)), 5000).unref());
      await assert.rejects(Promise.race([failing, stuck]), { message: 'stop' });
      assert.deepEqual(seen, [round], `round ${round}`);
    }
    await port.close();
  } finally {
    await t.close();
  }
});

test('serve(): a reply the minifilter no longer waits for does not stop serving; onError hears of it', async () => {
  const t = await startSimulator();
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const client = await clientPromise;
    const slow = port.serve(async (message) => {
      if (message.data[0] === 0) await new Promise((r) => setTimeout(r, 300)); // past the kernel's timeout
      return Buffer.from([message.data[0]! + 1]);
    });
    assert.equal((await t.filter.sendMessage(client, Buffer.from([0]), { replyLength: 1, timeout: 50 })).status, NtStatus.STATUS_TIMEOUT);
    await new Promise((r) => setTimeout(r, 400)); // the late reply has failed by now
    const r1 = await t.filter.sendMessage(client, Buffer.from([1]), { replyLength: 1, timeout: 5000 });
    assert.deepEqual([...r1.reply!], [2], 'still serving after the late reply failed');
    await port.close();
    await slow;

    const port2 = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const errors: unknown[] = [];
    const client2 = await new Promise<import('../../lib/simulator').ClientPort>((resolve) => {
      for (const c of t.port.connections) if (c.connected) resolve(c);
    });
    const reporting = port2.serve(
      async (message) => {
        await new Promise((r) => setTimeout(r, 300));
        return Buffer.from([message.data[0]!]);
      },
      { onError: (error) => errors.push(error) },
    );
    await t.filter.sendMessage(client2, Buffer.from([5]), { replyLength: 1, timeout: 50 });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, 'ERROR_FLT_NO_WAITER_FOR_REPLY');
    await port2.close();
    await reporting;
  } finally {
    await t.close();
  }
});
