// The agent tests' simulator: a filter that can be unloaded and registered again under the same name (a driver
// restart), kernel-side connections tracked, and waits on an agent's states.
import type { ClientPort, CommunicationPortOptions, SimulatedFilter } from '../../lib/simulator';
import type { AgentState, AgentStateName, FilterAgent } from '../../lib';
import { FILTER_NAME, PORT_NAME, startBase, type SimulatorBase, type StartOptions } from '../helpers/sim';
import { nextEvent } from '../helpers/timing';

export { FILTER_NAME, PORT_NAME };

export interface AgentSim extends SimulatorBase {
  /** The loaded filter, undefined while unloaded. */
  filter: SimulatedFilter | undefined;
  /** Registers the test filter and creates its port (a driver start). */
  load(): SimulatedFilter;
  /** Unloads the filter (its connections end; resolves once its callbacks ran). */
  unload(): Promise<void>;
  /** The established connection (the agent's), if exactly one. */
  client(): ClientPort;
}

export async function startAgentSim(
  o: StartOptions & { port?: Partial<CommunicationPortOptions>; loaded?: boolean } = {},
): Promise<AgentSim> {
  const base = await startBase(o);
  const h: AgentSim = {
    ...base,
    filter: undefined,
    load() {
      const filter = base.sim.registerFilter(FILTER_NAME, { altitude: '385100' });
      filter.createCommunicationPort(PORT_NAME, { maxConnections: 16, ...o.port });
      h.filter = filter;
      return filter;
    },
    async unload() {
      const filter = h.filter;
      h.filter = undefined;
      await filter?.unload();
    },
    client() {
      const live = base.clients.filter((c) => c.connected);
      if (live.length !== 1) throw new Error(`expected one connection, found ${live.length}`);
      return live[0] as ClientPort;
    },
  };
  if (o.loaded !== false) h.load();
  return h;
}

/** The next state named `name` (and matching `also`) the agent reports; call before causing it. */
export async function nextState<N extends AgentStateName>(
  agent: FilterAgent,
  name: N,
  also: (state: Extract<AgentState, { state: N }>) => boolean = () => true,
): Promise<Extract<AgentState, { state: N }>> {
  for (;;) {
    const [state] = await nextEvent<[AgentState]>(agent, 'state', { what: `the agent's '${name}' state` });
    if (state.state === name && also(state as Extract<AgentState, { state: N }>))
      return state as Extract<AgentState, { state: N }>;
    if (state.state === 'closed' && name !== 'closed')
      throw new Error(`the agent closed while waiting for '${name}': ${String(state.error)}`);
  }
}

/** Records every state an agent reports. */
export function recordStates(agent: FilterAgent): AgentState[] {
  const states: AgentState[] = [];
  agent.on('state', (s) => states.push(s));
  return states;
}

/** Fast, deterministic backoff for tests (no jitter: delays do not matter to any assertion). */
export const FAST = { initialDelayMs: 1, maxDelayMs: 5, jitter: 0 } as const;
