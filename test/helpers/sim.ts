// Starts an in-process Filter Manager simulator with one test filter and port, for integration tests.
import { once } from 'node:events';
import {
  FilterManagerSimulator,
  type ClientPort,
  type CommunicationPortOptions,
  type ServerPort,
  type SimulatedFilter,
  type SimulatorOptions,
} from '../../lib/simulator';

export const PORT_NAME = '\\FltmgrTestPort';

export interface TestSimulator {
  sim: FilterManagerSimulator;
  endpoint: string;
  filter: SimulatedFilter;
  port: ServerPort;
  /** Resolves with the next client that connects. */
  nextClient(): Promise<ClientPort>;
  close(): Promise<void>;
}

export async function startSimulator(
  portOptions: Partial<CommunicationPortOptions> = {},
  simulatorOptions: SimulatorOptions = {},
): Promise<TestSimulator> {
  const sim = new FilterManagerSimulator(simulatorOptions);
  const endpoint = await sim.listen();
  const filter = sim.registerFilter('fltmgr-test');
  const port = filter.createCommunicationPort(PORT_NAME, { maxConnections: 16, ...portOptions });
  return {
    sim,
    endpoint,
    filter,
    port,
    async nextClient() {
      const [client] = (await once(sim, 'connect', { signal: AbortSignal.timeout(10_000) })) as [ClientPort];
      return client;
    },
    close: () => sim.close(),
  };
}

/** Polls until predicate() holds; fails after timeoutMs. For state that has no event. */
export async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}
