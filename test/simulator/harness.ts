// Shared setup for the simulator tests: an in-process simulator that records its log and protocol errors, and
// wire clients that are torn down with it.
import { once } from 'node:events';
import {
  FilterManagerSimulator,
  type ClientPort,
  type CommunicationPortOptions,
  type ListenTarget,
  type ProtocolErrorEvent,
  type ServerPort,
  type SimulatedFilter,
  type SimulatorOptions,
} from '../../lib/simulator';
import { HANG_GUARD_MS } from '../helpers/timing';
import { WireClient, withTimeout, type ConnectOptions } from '../helpers/wire-client';

export const PORT = '\\SimTestPort';

export interface Harness {
  sim: FilterManagerSimulator;
  endpoint: string;
  logs: string[];
  protocolErrors: ProtocolErrorEvent[];
  filter: SimulatedFilter;
  port: ServerPort;
  /** A connected wire client (CONNECT to PORT unless told otherwise). */
  connect(o?: Partial<ConnectOptions>): Promise<WireClient>;
  /** A raw stream, no CONNECT sent. */
  open(): Promise<WireClient>;
  /** Connects and also returns the kernel-side ClientPort. */
  connectPair(o?: Partial<ConnectOptions>): Promise<{ wire: WireClient; client: ClientPort }>;
  nextEvent<K extends 'connect' | 'disconnect' | 'protocol-error'>(event: K): Promise<unknown>;
  close(): Promise<void>;
}

export async function startHarness(
  o: { options?: SimulatorOptions; listen?: ListenTarget; port?: Partial<CommunicationPortOptions> } = {},
): Promise<Harness> {
  const logs: string[] = [];
  const protocolErrors: ProtocolErrorEvent[] = [];
  const sim = new FilterManagerSimulator({ log: (l) => logs.push(l), ...o.options });
  sim.on('protocol-error', (e) => protocolErrors.push(e));
  const endpoint = await sim.listen(o.listen);
  const filter = sim.registerFilter('SimTestFilter', { altitude: '385100' });
  const port = filter.createCommunicationPort(PORT, { maxConnections: 8, ...o.port });
  const wires: WireClient[] = [];
  const h: Harness = {
    sim,
    endpoint,
    logs,
    protocolErrors,
    filter,
    port,
    async open() {
      const w = await WireClient.open(endpoint);
      wires.push(w);
      return w;
    },
    async connect(c = {}) {
      const w = await WireClient.connect(endpoint, { portName: PORT, ...c });
      wires.push(w);
      return w;
    },
    async connectPair(c = {}) {
      const ev = h.nextEvent('connect') as Promise<ClientPort>;
      const wire = await h.connect(c);
      return { wire, client: await ev };
    },
    async nextEvent(event) {
      const args = await once(sim, event, { signal: AbortSignal.timeout(HANG_GUARD_MS) });
      return args[0];
    },
    async close() {
      await withTimeout(sim.close(), 'simulator close');
      for (const w of wires) w.destroy();
    },
  };
  return h;
}
