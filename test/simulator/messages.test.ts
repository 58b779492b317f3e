// Kernel -> user messages: FltSendMessage against FilterGetMessage / FilterReplyMessage over the wire.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { NtStatusError, type SendMessageResult } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { startSimulator } from '../helpers/sim';
import { TEST_TIMEOUT_MS, stillPending, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';

const OPTS = { timeout: TEST_TIMEOUT_MS };
const b = (s: string): Buffer => Buffer.from(s);

test('messages go to pending gets in GET order, FIFO per connection', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const g1 = wire.postGet(64);
  const g2 = wire.postGet(64);
  const g3 = wire.postGet(64);
  const sends = ['one', 'two', 'three'].map((s) => h.filter.sendMessage(client, b(s)));
  const got = await withTimeout(Promise.all([g1.done, g2.done, g3.done]), { what: 'three gets' });
  assert.deepEqual(
    got.map((g) => g.data.toString()),
    ['one', 'two', 'three'],
  );
  assert.ok(got[0]!.messageId < got[1]!.messageId && got[1]!.messageId < got[2]!.messageId);
  assert.deepEqual(
    (await Promise.all(sends)).map((r) => r.status),
    [0, 0, 0],
  );
  // Queued first, fetched later: still FIFO.
  const later = ['a', 'b', 'c'].map((s) => h.filter.sendMessage(client, b(s)));
  const fetched = [];
  for (let i = 0; i < 3; i++) fetched.push((await wire.get(64)).data.toString());
  assert.deepEqual(fetched, ['a', 'b', 'c']);
  await Promise.all(later);
  assert.deepEqual(wire.unexpected, []);
});

test('nothing is delivered without a pending get; a no-reply send resolves once a get took it', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const sent = h.filter.sendMessage(client, b('waiting'));
  assert.equal(await stillPending(sent), true);
  const g = await wire.get(64);
  assert.equal(g.status, 0);
  assert.equal(g.replyLength, 0, 'no reply expected');
  assert.deepEqual(await withTimeout(sent, { what: 'send' }), { status: 0 });
  // A reply to a message that expected none finds no waiter.
  assert.equal(await wire.reply(g.messageId, b('x')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
});

test('ReplyLength counts FILTER_REPLY_HEADER; the reply data and status reach the sender', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const sent = h.filter.sendMessage(client, b('question'), { replyLength: 8 });
  const g = await wire.get(64);
  assert.equal(g.replyLength, 24);
  assert.equal(await wire.reply(g.messageId, b('answer!!'), NtStatus.STATUS_ACCESS_DENIED), 0);
  assert.deepEqual(await sent, { status: 0, reply: b('answer!!'), replyStatus: NtStatus.STATUS_ACCESS_DENIED });
  // A shorter reply is fine; a zero-length expected reply still expects a header.
  const short = h.filter.sendMessage(client, b('q2'), { replyLength: 8 });
  const g2 = await wire.get(64);
  assert.equal(await wire.reply(g2.messageId, b('ok')), 0);
  assert.deepEqual(await short, { status: 0, reply: b('ok'), replyStatus: 0 });
  const empty = h.filter.sendMessage(client, b('q3'), { replyLength: 0 });
  const g3 = await wire.get(64);
  assert.equal(g3.replyLength, 16);
  assert.equal(await wire.reply(g3.messageId), 0);
  assert.deepEqual(await empty, { status: 0, reply: Buffer.alloc(0), replyStatus: 0 });
});

test(
  'a reply longer than expected is truncated: the sender sees STATUS_BUFFER_OVERFLOW, the replier S_OK',
  OPTS,
  async (t) => {
    const h = await startSimulator();
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const sent = h.filter.sendMessage(client, b('q'), { replyLength: 4 });
    const g = await wire.get(64);
    assert.equal(await wire.reply(g.messageId, b('too long reply'), 7), 0);
    assert.deepEqual(await sent, { status: NtStatus.STATUS_BUFFER_OVERFLOW, reply: b('too '), replyStatus: 7 });
  },
);

test('replies without a waiter: unknown id, second reply, another connection\u2019s message', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const a = await h.connectPair();
  const other = await h.connectPair();
  assert.equal(await a.wire.reply(12345n, b('x')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
  const sent = h.filter.sendMessage(a.client, b('q'), { replyLength: 4 });
  const g = await a.wire.get(64);
  assert.equal(
    await other.wire.reply(g.messageId, b('nope')),
    HR.ERROR_FLT_NO_WAITER_FOR_REPLY,
    'replies are per connection',
  );
  assert.equal(await a.wire.reply(g.messageId, b('yes')), 0);
  assert.equal(await a.wire.reply(g.messageId, b('again')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
  assert.equal((await sent).reply?.toString(), 'yes');
});

test('timeout while queued: STATUS_TIMEOUT and the message is withdrawn', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const r = await h.filter.sendMessage(client, b('stale'), { timeout: 10, replyLength: 4 });
  assert.deepEqual(r, { status: NtStatus.STATUS_TIMEOUT });
  const g = wire.postGet(64);
  assert.equal(await stillPending(g.done), true, 'the withdrawn message is not delivered');
  await h.filter.sendMessage(client, b('fresh'));
  assert.equal((await withTimeout(g.done, { what: 'get' })).data.toString(), 'fresh');
});

test('timeout while waiting for the reply: STATUS_TIMEOUT, and the late reply finds no waiter', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const g = wire.postGet(64);
  await wire.send(Buffer.alloc(0), 0); // a round trip: the GET is pending before the timed send starts
  const sent = h.filter.sendMessage(client, b('slow'), { timeout: 30, replyLength: 4 });
  const got = await withTimeout(g.done, { what: 'get' });
  assert.deepEqual(await sent, { status: NtStatus.STATUS_TIMEOUT });
  assert.equal(await wire.reply(got.messageId, b('late')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
});

test('timeout 0 polls: delivered to a pending get, else STATUS_TIMEOUT', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  assert.deepEqual(await h.filter.sendMessage(client, b('nobody'), { timeout: 0 }), {
    status: NtStatus.STATUS_TIMEOUT,
  });
  const g = wire.postGet(64);
  await withTimeout(
    wire.send(Buffer.alloc(0), 0).catch(() => undefined),
    { what: 'round trip' },
  ); // the GET has arrived
  assert.deepEqual(await h.filter.sendMessage(client, b('ready'), { timeout: 0 }), { status: 0 });
  assert.equal((await g.done).data.toString(), 'ready');
});

test(
  'a get too small for the next message gets STATUS_BUFFER_TOO_SMALL with the size needed; the message stays',
  OPTS,
  async (t) => {
    const h = await startSimulator();
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const small = wire.postGet(16 + 9);
    const big = wire.postGet(16 + 10);
    const sent = h.filter.sendMessage(client, b('0123456789'), { replyLength: 2 });
    const s = await withTimeout(small.done, { what: 'small get' });
    assert.deepEqual(s, {
      status: NtStatus.STATUS_BUFFER_TOO_SMALL,
      replyLength: 26,
      messageId: 0n,
      data: Buffer.alloc(0),
    });
    const ok = await withTimeout(big.done, { what: 'big get' });
    assert.equal(ok.status, 0);
    assert.equal(ok.data.toString(), '0123456789');
    assert.equal(ok.replyLength, 18);
    assert.equal(await wire.reply(ok.messageId, b('ok')), 0);
    assert.equal((await sent).status, 0);
    // A get below the header size can never take a message.
    const tiny = wire.postGet(8);
    await wire.send(Buffer.alloc(0), 0); // round trip: the tiny GET is pending
    await h.filter
      .sendMessage(client, Buffer.alloc(0), { timeout: 200 })
      .then((r) => assert.equal(r.status, NtStatus.STATUS_TIMEOUT));
    assert.equal((await withTimeout(tiny.done, { what: 'tiny get' })).status, NtStatus.STATUS_BUFFER_TOO_SMALL);
  },
);

test('CANCEL completes a pending get with STATUS_CANCELLED and is ignored once the get completed', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const g = wire.postGet(64);
  wire.cancel(g.id);
  assert.deepEqual(await withTimeout(g.done, { what: 'cancel' }), {
    status: NtStatus.STATUS_CANCELLED,
    replyLength: 0,
    messageId: 0n,
    data: Buffer.alloc(0),
  });
  // The cancelled get takes no message.
  const sent = h.filter.sendMessage(client, b('after cancel'));
  assert.equal(await stillPending(sent), true);
  const g2 = wire.postGet(64);
  assert.equal((await withTimeout(g2.done, { what: 'get' })).data.toString(), 'after cancel');
  wire.cancel(g2.id); // too late
  wire.cancel(999); // never existed
  const rt = await wire.send(Buffer.alloc(0), 0); // a round trip, so any stray GET_COMPLETE would have arrived
  assert.equal(rt.hresult, HR.ERROR_NOT_SUPPORTED);
  assert.deepEqual(wire.unexpected, []);
});

test(
  'messages to a disconnected client, or pending when it leaves, resolve STATUS_PORT_DISCONNECTED',
  OPTS,
  async (t) => {
    const h = await startSimulator();
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const awaitingReply = h.filter.sendMessage(client, b('1'), { replyLength: 4 });
    await wire.get(64);
    const queued = h.filter.sendMessage(client, b('2'), { timeout: 60_000 });
    const gone = h.nextEvent('disconnect');
    await wire.close();
    await gone;
    assert.deepEqual(await awaitingReply, { status: NtStatus.STATUS_PORT_DISCONNECTED });
    assert.deepEqual(await queued, { status: NtStatus.STATUS_PORT_DISCONNECTED });
    assert.equal(client.connected, false);
    assert.deepEqual(await h.filter.sendMessage(client, b('3')), { status: NtStatus.STATUS_PORT_DISCONNECTED });
  },
);

test('message ids are unique and increasing across connections', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const a = await h.connectPair();
  const c = await h.connectPair();
  const ids: bigint[] = [];
  for (let i = 0; i < 4; i++) {
    const pair = i % 2 === 0 ? a : c;
    const g = pair.wire.postGet(64);
    await h.filter.sendMessage(pair.client, b(`m${i}`));
    ids.push((await g.done).messageId);
  }
  assert.deepEqual(
    [...ids].sort((x, y) => (x < y ? -1 : 1)),
    ids,
  );
  assert.equal(new Set(ids).size, 4);
  // Connections do not see each other's messages.
  const onlyC = c.wire.postGet(64);
  await h.filter.sendMessage(a.client, b('for a'), { timeout: 20 });
  assert.equal(await stillPending(onlyC.done), true);
});

test('an AbortSignal withdraws a queued message and stops waiting for a reply', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const pre = AbortSignal.abort(new Error('already'));
  await assert.rejects(h.filter.sendMessage(client, b('x'), { signal: pre }), /already/);
  const ac = new AbortController();
  const queued = h.filter.sendMessage(client, b('withdrawn'), { signal: ac.signal });
  ac.abort(new Error('stop'));
  await assert.rejects(queued, /stop/);
  const ac2 = new AbortController();
  const g = wire.postGet(64);
  const waiting: Promise<SendMessageResult> = h.filter.sendMessage(client, b('delivered'), {
    replyLength: 1,
    signal: ac2.signal,
  });
  const got = await withTimeout(g.done, { what: 'get' });
  assert.equal(got.data.toString(), 'delivered', 'the aborted message never reached a get');
  ac2.abort(new Error('bored'));
  await assert.rejects(waiting, /bored/);
  assert.equal(await wire.reply(got.messageId, b('y')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
});

test('sendMessage rejects bad arguments with STATUS_INVALID_PARAMETER', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { client } = await h.connectPair();
  const other = h.sim.registerFilter('Other');
  const invalid = (e: unknown): boolean => e instanceof NtStatusError && e.status === NtStatus.STATUS_INVALID_PARAMETER;
  await assert.rejects(other.sendMessage(client, b('x')), invalid);
  await assert.rejects(h.filter.sendMessage({} as typeof client, b('x')), invalid);
  await assert.rejects(h.filter.sendMessage(client, 'text' as unknown as Uint8Array), invalid);
  for (const replyLength of [-1, 1.5, Number.NaN])
    await assert.rejects(h.filter.sendMessage(client, b('x'), { replyLength }), invalid);
  for (const timeout of [-1, Number.NaN, Infinity])
    await assert.rejects(h.filter.sendMessage(client, b('x'), { timeout }), invalid);
  await assert.rejects(h.filter.sendMessage(client, Buffer.alloc(16 * 1024 * 1024 - 15)), invalid);
});

test('zero-length and large messages are delivered intact; the sender\u2019s buffer is copied', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const g0 = wire.postGet(16);
  await h.filter.sendMessage(client, new Uint8Array(0));
  assert.equal((await g0.done).data.length, 0);
  const big = Buffer.alloc(1024 * 1024, 0x5a);
  const data = Buffer.from(big);
  const g1 = wire.postGet(16 + big.length);
  const sent = h.filter.sendMessage(client, data);
  data.fill(0); // mutating after the call must not change what is delivered
  assert.deepEqual((await withTimeout(g1.done, { what: 'big get' })).data, big);
  await sent;
});

test(
  'ClientPort.stats() counts pending gets, queued and delivered messages, and how replies were answered',
  OPTS,
  async (t) => {
    const h = await startSimulator();
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const zero = { pendingGets: 0, queuedMessages: 0, awaitingReply: 0, repliesAccepted: 0, repliesRefused: 0 };
    assert.deepEqual(client.stats(), zero);
    const queued = h.filter.sendMessage(client, b('first'), { replyLength: 8 });
    assert.deepEqual(client.stats(), { ...zero, queuedMessages: 1 }, 'no get yet: the message waits in the queue');
    const g = await wire.get(64);
    assert.deepEqual(client.stats(), { ...zero, awaitingReply: 1 });
    const get = wire.postGet(64);
    await h.untilReceiving(client);
    assert.deepEqual(client.stats(), { ...zero, pendingGets: 1, awaitingReply: 1 });
    assert.equal(await wire.reply(g.messageId, b('ok')), 0);
    assert.equal(await wire.reply(g.messageId, b('again')), HR.ERROR_FLT_NO_WAITER_FOR_REPLY);
    assert.equal((await queued).status, NtStatus.STATUS_SUCCESS);
    assert.deepEqual(client.stats(), { ...zero, pendingGets: 1, repliesAccepted: 1, repliesRefused: 1 });
    client.close();
    await withTimeout(get.done, { what: 'the pending get to end with the disconnect' }).catch(() => undefined);
    assert.deepEqual(
      client.stats(),
      { ...zero, repliesAccepted: 1, repliesRefused: 1 },
      'closed: nothing held, reply counts kept',
    );
  },
);
