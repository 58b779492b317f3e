// The pieces of the driver lifecycle together: a FilterAgent keeps serving while the driver is unloaded and
// loaded again through fltmgr/manager (what `fltmgr unload` / `fltmgr load` / fltmc do), with a message held
// by the handler at the unload: reported lost by the agent, STATUS_PORT_DISCONNECTED for its sender.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterAgent, type FilterMessage } from '../../lib';
import * as manager from '../../lib/manager';
import { FilterManagerSimulator, type ClientPort, type SimulatedFilter } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { nextState } from '../agent/harness';
import { TEST_TIMEOUT_MS, until } from '../helpers/timing';

const PORT = '\\LifecyclePort';

test(
  'an agent survives unload and load by name, and reports the message it held',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const sim = new FilterManagerSimulator({ log: () => undefined });
    let client: ClientPort | undefined;
    let current: SimulatedFilter | undefined;
    let loads = 0;
    sim.addLoadable('scanner', (s): SimulatedFilter => {
      loads++;
      const f = s.registerFilter('scanner', { altitude: '385100' });
      current = f;
      f.createCommunicationPort(PORT, {
        maxConnections: 1,
        connect: (c) => {
          client = c;
        },
      });
      return f;
    });
    const endpoint = await sim.listen();
    const s = { simulator: endpoint };
    t.after(() => sim.close());

    // The agent starts before the driver: it waits.
    const held: FilterMessage[] = [];
    const agent = new FilterAgent(
      PORT,
      async (m: FilterMessage, signal: AbortSignal) => {
        if (m.data.toString() === 'hold') {
          held.push(m);
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          return undefined;
        }
        return Buffer.from(`ok:${m.data.toString()}`);
      },
      { connect: { simulator: endpoint }, backoff: { initialDelayMs: 5, maxDelayMs: 50 } },
    );
    t.after(() => agent.close());
    await nextState(agent, 'waiting');

    let connected = nextState(agent, 'connected');
    await manager.load('scanner', s);
    await connected;
    // FltSendMessage from the driver instance loaded now, to the agent's connection.
    const send = (data: string): Promise<{ status: number; reply?: Buffer }> =>
      (current as SimulatedFilter).sendMessage(client as ClientPort, Buffer.from(data), { replyLength: 64 });
    assert.equal((await send('one')).reply?.toString(), 'ok:one');

    // A message the handler holds when the driver is unloaded by name.
    const pending = send('hold');
    await until(() => held.length === 1, { what: 'the handler holds the message' });
    const disconnected = nextState(agent, 'disconnected');
    await manager.unload('scanner', s);
    const d = await disconnected;
    assert.deepEqual(
      d.lost.map((l) => [l.id, l.reply]),
      [[held[0]?.id, 'not-sent']],
    );
    assert.equal((await pending).status, NtStatus.STATUS_PORT_DISCONNECTED);
    assert.deepEqual(
      (await manager.filters(s)).map((f) => f.name),
      [],
    );

    // Loaded again: the same agent, the same handler, serving the new driver instance.
    connected = nextState(agent, 'connected');
    await manager.load('scanner', s);
    await connected;
    assert.equal(loads, 2);
    assert.equal((await send('two')).reply?.toString(), 'ok:two');
    assert.equal(agent.counters.connections, 2);
    assert.equal(agent.counters.lost, 1);
    await agent.close();
  },
);
