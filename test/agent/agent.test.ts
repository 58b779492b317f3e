// FilterAgent: the states it reports, reconnecting after every kind of disconnect, messages cut short by a
// disconnect, close() in every state, and the errors that stop it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  FilterAgent,
  FilterError,
  type AgentHandler,
  type AgentOptions,
  type AgentState,
  type FilterMessage,
} from '../../lib';
import { FilterManagerSimulator, type ClientPort } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { connectNotifyRuns } from '../helpers/sim';
import { HR } from '../helpers/status';
import { until } from '../helpers/timing';
import { FAST, PORT_NAME, nextState, recordStates, startAgentSim, type AgentSim } from './harness';

const echo = (m: FilterMessage): Buffer => m.data;

function startAgent(h: AgentSim, handler: AgentHandler = echo, options: AgentOptions = {}): FilterAgent {
  const agent = new FilterAgent(PORT_NAME, handler, { connect: { simulator: h.endpoint }, backoff: FAST, ...options });
  return agent;
}

/** State names without repeats of 'connecting'/'waiting' pairs (their count depends on timing). */
function shape(states: readonly AgentState[]): string[] {
  const out: string[] = [];
  for (const s of states) {
    const name = s.state === 'waiting' ? 'connecting' : s.state;
    if (out[out.length - 1] !== name) out.push(name);
  }
  return out;
}

test('late driver start: connecting/waiting until the port exists, then connected and serving', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  const agent = startAgent(h);
  t.after(() => agent.close());
  const states = recordStates(agent);
  const waiting = await nextState(agent, 'waiting', (s) => s.attempt >= 3);
  assert.equal((waiting.error as FilterError).code, 'ERROR_FILE_NOT_FOUND');
  assert.equal(agent.port, undefined);
  const connected = nextState(agent, 'connected');
  h.load();
  const c = await connected;
  assert.equal(c.connection, 1);
  assert.equal(agent.port, c.port);
  const r = await h.filter!.sendMessage(h.client(), Buffer.from('hi'), { replyLength: 2 });
  assert.deepEqual([r.status, r.reply?.toString()], [0, 'hi']);
  assert.deepEqual(shape(states), ['connecting', 'connected']);
  assert.deepEqual(
    states.slice(0, 4).map((s) => s.state),
    ['connecting', 'waiting', 'connecting', 'waiting'],
  );
  assert.ok(agent.counters.retries >= 3);
  // The sender has its reply; the agent learns that Filter Manager took it a little later (REPLY_RESULT). Closed
  // before that, the message would rightly be reported 'unconfirmed'.
  await until(() => agent.counters.replies === 1, { what: "the agent's reply acknowledged" });
  await agent.close();
  assert.deepEqual(agent.state, { state: 'closed', error: undefined, lost: [] });
  await agent.done;
});

async function reconnects(t: TestContext, restartSimulator: boolean): Promise<void> {
  const unixOnly = !restartSimulator;
  const socketPath = path.join(os.tmpdir(), `fltmgr-agent-${randomBytes(6).toString('hex')}.sock`);
  const h = await startAgentSim({ ...(unixOnly ? {} : { listen: { path: socketPath } }) });
  let sim2: FilterManagerSimulator | undefined;
  t.after(async () => {
    await h.close();
    await sim2?.close();
  });
  const concurrencySeen: number[] = [];
  let inHandler = 0;
  let gate!: () => void;
  let gateOpen = new Promise<void>((resolve) => (gate = resolve));
  const agent = startAgent(
    h,
    async (m) => {
      inHandler++;
      concurrencySeen.push(inHandler);
      await gateOpen;
      inHandler--;
      return m.data;
    },
    { concurrency: 2 },
  );
  t.after(() => agent.close());
  const states = recordStates(agent);
  await nextState(agent, 'connected');

  const roundTrip = async (sim: { sendMessage: (typeof h.filter & object)['sendMessage'] }, client = h.client()) => {
    gateOpen = new Promise<void>((resolve) => (gate = resolve));
    const sends = [1, 2, 3].map((i) => sim.sendMessage(client, Buffer.from([i]), { replyLength: 1 }));
    await until(() => inHandler === 2, { what: 'two messages in the handler (concurrency 2)' });
    gate();
    const results = await Promise.all(sends);
    assert.deepEqual(
      results.map((r) => [r.status, r.reply?.[0]]),
      [
        [0, 1],
        [0, 2],
        [0, 3],
      ],
    );
  };
  await roundTrip(h.filter!);

  // FltCloseClientPort: the port stays, the agent reconnects at once.
  let next = nextState(agent, 'connected');
  h.client().close();
  const d1 = await nextState(agent, 'disconnected');
  assert.equal(d1.reason.disconnected, true);
  assert.equal((await next).connection, 2);
  await roundTrip(h.filter!);

  // Driver unload and reload under the same name.
  const d2 = nextState(agent, 'disconnected');
  await h.unload();
  assert.equal((await d2).connection, 2);
  await nextState(agent, 'waiting');
  next = nextState(agent, 'connected');
  h.load();
  assert.equal((await next).connection, 3);
  await roundTrip(h.filter!);
  assert.ok(
    concurrencySeen.every((n) => n <= 2),
    'the serve options (concurrency 2) hold on every connection',
  );

  if (!unixOnly) {
    // The simulator itself goes away and comes back on the same endpoint.
    const d3 = nextState(agent, 'disconnected');
    await h.sim.close();
    await d3;
    await nextState(agent, 'waiting', (s) => (s.error as FilterError).code === 'ERROR_FILE_NOT_FOUND');
    sim2 = new FilterManagerSimulator();
    const clients: ClientPort[] = [];
    sim2.on('connect', (c) => clients.push(c));
    const filter = sim2.registerFilter('fltmgr-test');
    filter.createCommunicationPort(PORT_NAME, { maxConnections: 4 });
    next = nextState(agent, 'connected');
    await sim2.listen({ path: socketPath });
    assert.equal((await next).connection, 4);
    await until(() => clients.length === 1, { what: 'the connection on the new simulator' });
    await roundTrip(filter, clients[0]);
  }
  assert.deepEqual(
    shape(states).filter((s) => s !== 'connecting'),
    unixOnly
      ? ['connected', 'disconnected', 'connected', 'disconnected', 'connected']
      : ['connected', 'disconnected', 'connected', 'disconnected', 'connected', 'disconnected', 'connected'],
  );
  await agent.close();
}

test('reconnects after FltCloseClientPort and a driver unload/reload; same handler and serve options', (t) =>
  reconnects(t, false));

test(
  'then also after a simulator restart on the same endpoint',
  {
    skip:
      process.platform === 'win32'
        ? 'a named-pipe endpoint carries a per-run secret: a restarted simulator has a new endpoint'
        : false,
  },
  (t) => reconnects(t, true),
);

test('messages in flight at a disconnect are reported with their ids; their senders see STATUS_PORT_DISCONNECTED', async (t) => {
  const h = await startAgentSim();
  t.after(() => h.close());
  const held = new Map<bigint, FilterMessage>();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const signals: AbortSignal[] = [];
  const agent = startAgent(h, async (m, signal) => {
    if (m.data[0] === 0) return m.data; // answered at once
    held.set(m.id, m);
    signals.push(signal);
    await gate;
    return m.data; // after the disconnect: not sent
  });
  t.after(() => agent.close());
  await nextState(agent, 'connected');
  const client = h.client();
  const filter = h.filter!;
  const answered = await filter.sendMessage(client, Buffer.from([0]), { replyLength: 1 });
  assert.equal(answered.status, 0);
  const waiting = [1, 2, 3].map((i) => filter.sendMessage(client, Buffer.from([i]), { replyLength: 1 }));
  const notification = filter.sendMessage(client, Buffer.from([9])); // expects no reply: nothing to lose
  await until(() => held.size === 4, { what: 'four messages in the handler' });
  const disconnected = nextState(agent, 'disconnected');
  await h.unload();
  const d = await disconnected;
  const expectReply = [...held.values()].filter((m) => m.expectsReply).map((m) => m.id);
  assert.deepEqual(
    d.lost.map((l) => l.id).sort(),
    expectReply.sort(),
    'exactly the messages that expected a reply, by id',
  );
  assert.ok(d.lost.every((l) => l.reply === 'not-sent'));
  assert.ok(
    signals.every((s) => s.aborted),
    "the handlers' signals are aborted",
  );
  for (const r of await Promise.all(waiting)) assert.equal(r.status, NtStatus.STATUS_PORT_DISCONNECTED);
  assert.equal((await notification).status, 0);
  release(); // late replies: not sent, no error anywhere
  await nextState(agent, 'waiting');
  assert.deepEqual([agent.counters.messages, agent.counters.replies, agent.counters.lost], [5, 1, 3]);
  await agent.close();
  assert.deepEqual(agent.state, { state: 'closed', error: undefined, lost: [] });
});

test('close() in every state settles, leaves no connection, and reports handlers cut short', async (t) => {
  // waiting (no driver)
  const empty = await startAgentSim({ loaded: false });
  t.after(() => empty.close());
  const a1 = startAgent(empty, echo, { backoff: { initialDelayMs: 3_600_000 } });
  await nextState(a1, 'waiting');
  await a1.close();
  assert.deepEqual(a1.state, { state: 'closed', error: undefined, lost: [] });
  await a1.done;

  // before the first state was reported
  const a0 = startAgent(empty);
  await a0.close();
  assert.equal(a0.state.state, 'closed');

  // connecting (ConnectNotify does not return)
  let releaseConnect!: () => void;
  const connectHeld = new Promise<void>((resolve) => (releaseConnect = resolve));
  const slow = await startAgentSim({ port: { connect: () => connectHeld } });
  t.after(() => slow.close());
  const a2 = startAgent(slow);
  await until(() => connectNotifyRuns(slow), { what: 'ConnectNotify to run' });
  assert.equal(a2.state.state, 'connecting');
  await a2.close();
  assert.equal(a2.state.state, 'closed');
  releaseConnect();
  await until(() => slow.sim.streamStats().length === 0, { what: 'the late connection to be closed' });

  // connected, idle; then connected with a handler that never returns
  const h = await startAgentSim();
  t.after(() => h.close());
  const a3 = startAgent(h);
  await nextState(a3, 'connected');
  await a3.close();
  await until(() => h.sim.streamStats().length === 0, { what: 'the disconnect' });

  let handlerSignal: AbortSignal | undefined;
  const a4 = startAgent(h, (_m, signal) => {
    handlerSignal = signal;
    return new Promise<Buffer>(() => undefined);
  });
  await nextState(a4, 'connected');
  const sent = h.filter!.sendMessage(h.client(), Buffer.from('x'), { replyLength: 1 });
  await until(() => handlerSignal !== undefined, { what: 'the handler to run' });
  await a4.close();
  const closed = a4.state;
  assert.equal(closed.state, 'closed');
  assert.equal(closed.state === 'closed' && closed.lost.length, 1);
  assert.equal(handlerSignal?.aborted, true);
  assert.equal((await sent).status, NtStatus.STATUS_PORT_DISCONNECTED);
  await a4.close(); // twice is fine

  // through the signal
  const controller = new AbortController();
  const a5 = startAgent(h, echo, { signal: controller.signal });
  await nextState(a5, 'connected');
  controller.abort();
  await a5.done;
  assert.equal(a5.state.state, 'closed');
  const a6 = startAgent(h, echo, { signal: controller.signal }); // aborted already: closes without connecting
  await a6.done;
  assert.equal(a6.counters.connections, 0);
  await until(() => h.sim.streamStats().length === 0, { what: 'every connection closed' });
});

test('states() yields the current state, then each change, and ends after closed', async (t) => {
  const h = await startAgentSim();
  t.after(() => h.close());
  const agent = startAgent(h);
  const seen: string[] = [];
  for await (const s of agent.states()) {
    seen.push(s.state);
    if (s.state === 'connected') void agent.close();
  }
  assert.deepEqual(seen, ['connecting', 'connecting', 'connected', 'closed']);
  const after: string[] = [];
  for await (const s of agent.states()) after.push(s.state);
  assert.deepEqual(after, ['closed']);
});

test('a non-retryable error stops the agent with that error', async (t) => {
  const h = await startAgentSim({ port: { security: { check: () => false } } });
  t.after(() => h.close());
  const agent = startAgent(h);
  await assert.rejects(agent.done, { name: 'FilterError', code: 'ERROR_ACCESS_DENIED', message: /access denied/ });
  const closed = agent.state;
  assert.equal(closed.state, 'closed');
  assert.equal(closed.state === 'closed' && (closed.error as FilterError).code, 'ERROR_ACCESS_DENIED');
  assert.equal(agent.counters.retries, 0);

  // Misconfiguration: no attempt at all is retried.
  const bad = new FilterAgent(PORT_NAME, echo, { connect: { simulator: 'nonsense' } });
  await assert.rejects(bad.done, { code: 'ERR_INVALID_ENDPOINT' });
  assert.throws(() => new FilterAgent(PORT_NAME, echo, { backoff: { jitter: 2 } }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new FilterAgent(PORT_NAME, 'x' as never), { code: 'ERR_INVALID_ARG_TYPE' });

  // waitTimeoutMs: a driver that does not come back in time closes the agent.
  const empty = await startAgentSim({ loaded: false });
  t.after(() => empty.close());
  const patient = startAgent(empty, echo, { waitTimeoutMs: 0, backoff: { initialDelayMs: 3_600_000 } });
  await assert.rejects(patient.done, { code: 'ERR_WAIT_TIMEOUT' });
});

test('a handler error without onError stops the agent; with onError it serves on', async (t) => {
  const h = await startAgentSim();
  t.after(() => h.close());
  const boom = new Error('boom');
  const strict = startAgent(h, () => {
    throw boom;
  });
  await nextState(strict, 'connected');
  void h.filter!.sendMessage(h.client(), Buffer.from('x'), { replyLength: 1 });
  await assert.rejects(strict.done, boom);
  await until(() => h.sim.streamStats().length === 0, { what: 'the port to be closed' });

  const errors: unknown[] = [];
  const lenient = startAgent(
    h,
    (m) => {
      if (m.data[0] === 1) throw boom;
      return m.data;
    },
    { onError: (e) => errors.push(e) },
  );
  t.after(() => lenient.close());
  await nextState(lenient, 'connected');
  const client = h.client();
  const failed = await h.filter!.sendMessage(client, Buffer.from([1]), { replyLength: 1, timeout: 100 });
  assert.equal(failed.status, NtStatus.STATUS_TIMEOUT, 'released unanswered: the sender times out');
  const ok = await h.filter!.sendMessage(client, Buffer.from([2]), { replyLength: 1 });
  assert.equal(ok.reply?.[0], 2);
  assert.deepEqual(errors, [boom]);
});

test('onConnect runs on every connection before connected is reported; its disconnect error means reconnect', async (t) => {
  const h = await startAgentSim();
  t.after(() => h.close());
  let calls = 0;
  const agent = startAgent(h, echo, {
    onConnect: async (port) => {
      calls++;
      if (calls === 1) {
        h.client().close(); // the driver goes away during setup
        throw new FilterError(HR.ERROR_INVALID_HANDLE, 'FilterSendMessage', port.name);
      }
    },
  });
  t.after(() => agent.close());
  const states = recordStates(agent);
  const c = await nextState(agent, 'connected');
  assert.equal(c.connection, 2);
  assert.equal(calls, 2);
  assert.ok(states.some((s) => s.state === 'disconnected' && s.connection === 1));

  const fatal = startAgent(h, echo, {
    onConnect: () => {
      throw new RangeError('bad config');
    },
  });
  await assert.rejects(fatal.done, { name: 'RangeError' });
});
