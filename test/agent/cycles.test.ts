// 100 driver restarts (unload + register again, or FltCloseClientPort) with messages flowing: every message the
// filter sent is either answered or reported lost by the agent and seen as STATUS_PORT_DISCONNECTED by its
// sender; no handle, descriptor, stream or thread is left behind by the cycles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FilterAgent, type FilterMessage, type LostMessage } from '../../lib';
import { NtStatus } from '../../lib/status';
import type { SendMessageResult } from '../../lib/simulator';
import { TEST_TIMEOUT_MS, until } from '../helpers/timing';
import { FAST, PORT_NAME, nextState, startAgentSim } from './harness';

const CYCLES = 100;
/** Threads or descriptors the runtime may add by itself over the run; far below one per cycle. */
const SLACK = 10;

/** Entries of /proc/self/task (threads) or /proc/self/fd (open files and sockets); undefined without /proc. */
function count(what: 'task' | 'fd'): number | undefined {
  try {
    return fs.readdirSync(`/proc/self/${what}`).length;
  } catch {
    return undefined; // no /proc (Windows; under Wine it is the Wine process's own, and is checked)
  }
}

/** Active handles and requests by type (timers included): what keeps the event loop alive. */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

test(
  `${CYCLES} unload/reload and close cycles with messages flowing: nothing lost unreported, nothing leaked`,
  { timeout: TEST_TIMEOUT_MS * 5 },
  async (t) => {
    const h = await startAgentSim();
    t.after(() => h.close());

    // Warm-up: the addon's and libuv's threads that start on first use are not counted as leaks.
    const warm = new FilterAgent(PORT_NAME, (m) => m.data, { connect: { simulator: h.endpoint } });
    await nextState(warm, 'connected');
    await warm.close();
    await until(() => h.sim.streamStats().length === 0, { what: 'the warm-up connection to end' });
    // Requests (a socket's CloseReq, a FSReqCallback) are transient: the baseline is taken once none is left.
    await until(() => !Object.keys(resources()).some((k) => /Req/.test(k)), { what: 'no request in flight' });
    const baseThreads = count('task');
    const baseFds = count('fd');
    const baseResources = resources();

    // seq (the message's first 4 bytes) of everything the handler saw, by message id and connection
    const seen = new Map<number, { connection: number; id: bigint }>();
    const held: Array<() => void> = [];
    const lost: Array<{ connection: number; message: LostMessage }> = [];
    let connection = 0;
    const agent = new FilterAgent(
      PORT_NAME,
      async (m: FilterMessage) => {
        const seq = m.data.readUInt32LE(0);
        seen.set(seq, { connection, id: m.id });
        if (m.data[4] === 1)
          await new Promise<void>((resolve) => held.push(resolve)); // held across the disconnect
        else if (m.data[4] === 2) await new Promise((resolve) => setImmediate(resolve));
        return m.data.subarray(0, 4);
      },
      { connect: { simulator: h.endpoint }, backoff: FAST, concurrency: 8 },
    );
    t.after(() => agent.close());
    agent.on('state', (s) => {
      if (s.state === 'connected') connection = s.connection;
      if (s.state === 'disconnected') for (const message of s.lost) lost.push({ connection: s.connection, message });
    });

    let seq = 0;
    const results = new Map<number, SendMessageResult>();
    const strictLost = new Set<number>(); // held messages: must be reported lost, 'not-sent'
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      if (agent.state.state !== 'connected') await nextState(agent, 'connected');
      const filter = h.filter!;
      const client = h.client();
      const send = (mode: number): Promise<void> => {
        const n = seq++;
        const data = Buffer.alloc(5);
        data.writeUInt32LE(n, 0);
        data[4] = mode;
        if (mode === 1) strictLost.add(n);
        return filter.sendMessage(client, data, { replyLength: 4 }).then((r) => void results.set(n, r));
      };
      // Answered before the disconnect (awaited), held by the handler across it, and (every 4th cycle) a
      // stream still flowing when the driver goes: those may be answered, lost in the handler, or never
      // handed to the agent at all.
      await Promise.all([send(0), send(0), send(0)]);
      const heldBefore = held.length;
      const pending = [send(1), send(1)];
      await until(() => held.length === heldBefore + 2, { what: `cycle ${cycle}: two messages held by the handler` });
      if (cycle % 4 === 3) for (let i = 0; i < 20; i++) pending.push(send(2));

      const disconnected = nextState(agent, 'disconnected');
      if (cycle % 2 === 0) {
        await h.unload();
        h.load(); // a driver restart: same filter name, same port
      } else {
        client.close(); // FltCloseClientPort
      }
      const d = await disconnected;
      assert.equal(d.reason.disconnected, true);
      await Promise.all(pending);
      for (const release of held.splice(0)) release(); // their replies come too late: not sent
    }
    await nextState(agent, 'connected');
    await agent.close();
    await agent.done;

    // Every message the filter sent has an outcome: a reply, or STATUS_PORT_DISCONNECTED.
    assert.equal(results.size, seq);
    const answered = [...results].filter(([, r]) => r.status === 0);
    const disconnected = [...results].filter(([, r]) => r.status === NtStatus.STATUS_PORT_DISCONNECTED);
    assert.equal(answered.length + disconnected.length, seq, 'no other outcome (no timeout: none was set)');
    for (const [n, r] of answered) assert.equal(r.reply?.readUInt32LE(0), n, 'each reply answers its own message');

    // Every message the agent reported lost was one its sender saw fail, and every held one was reported.
    const lostSeqs = new Set<number>();
    const bySeq = new Map([...seen].map(([n, s]) => [`${s.connection}:${s.id}`, n]));
    for (const { connection: c, message } of lost) {
      const n = bySeq.get(`${c}:${message.id}`);
      assert.ok(n !== undefined, `lost message ${message.id} of connection ${c} was seen by the handler`);
      lostSeqs.add(n);
      if (message.reply === 'not-sent')
        assert.equal(results.get(n)?.status, NtStatus.STATUS_PORT_DISCONNECTED, `message ${n}`);
    }
    for (const n of strictLost) assert.ok(lostSeqs.has(n), `held message ${n} was reported lost`);
    // A failed send the agent never reported was never handed to it (queued, or taken by a get and not yet
    // delivered to JS when the connection ended), or its reply was sent unconfirmed.
    for (const [n] of disconnected) {
      if (lostSeqs.has(n)) continue;
      assert.ok(!strictLost.has(n));
    }
    // The agent's own account: every message it handled (all expected a reply) was answered or reported lost.
    const c = agent.counters;
    assert.equal(c.messages, seen.size);
    assert.equal(c.messages, c.replies + c.lost, JSON.stringify(c));
    assert.equal(c.lost, lost.length);
    assert.ok(answered.length >= c.replies && answered.length <= c.replies + c.lost, JSON.stringify(c));
    assert.equal(c.connections, CYCLES + 1);
    t.diagnostic(
      `${seq} messages: ${answered.length} answered, ${disconnected.length} disconnected, ${lost.length} reported lost`,
    );

    // Nothing left behind: the simulator holds no stream, the event loop has what it had before the cycles,
    // and the thread and descriptor counts have not grown with them (SLACK for what the runtime opens on its
    // own, e.g. Wine caching handles as descriptors: not per cycle, a leak of one a cycle would add 100).
    await until(() => h.sim.streamStats().length === 0, { what: 'no stream left at the simulator' });
    await until(() => JSON.stringify(resources()) === JSON.stringify(baseResources), {
      what: `the active resources to return to ${JSON.stringify(baseResources)} (now ${JSON.stringify(resources())})`,
    });
    const now = count('task');
    if (baseThreads !== undefined && now !== undefined)
      assert.ok(now <= baseThreads + SLACK, `threads: ${baseThreads} before, ${now} after ${CYCLES} cycles`);
    const fds = count('fd');
    if (baseFds !== undefined && fds !== undefined)
      assert.ok(fds <= baseFds + SLACK, `open descriptors: ${baseFds} before, ${fds} after ${CYCLES} cycles`);
  },
);
