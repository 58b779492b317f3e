// The in-process simulator of the integration and simulator tests: one test filter with one port, the
// simulator's log and protocol errors recorded, kernel-side connections tracked, raw wire clients (test/helpers/
// wire-client.ts) torn down with it. The sample driver's twin has its own start (./sample.ts) on the same base.
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
import { WireClient, type ConnectOptions } from './wire-client';
import { nextEvent, until, withTimeout } from './timing';

export const PORT_NAME = '\\FltmgrTestPort';
export const FILTER_NAME = 'fltmgr-test';

/** What every simulator a test starts has, with or without the test filter. */
export interface SimulatorBase {
  sim: FilterManagerSimulator;
  endpoint: string;
  /** The simulator's log lines. */
  logs: string[];
  protocolErrors: ProtocolErrorEvent[];
  /** Kernel-side connections, in connect order (disconnected ones stay in the list). */
  clients: ClientPort[];
  /** Resolves with the next client that connects (call it before connecting). */
  nextClient(): Promise<ClientPort>;
  /** The next 'connect' / 'disconnect' / 'protocol-error' event's argument (call it before causing it). */
  nextEvent(event: 'connect' | 'disconnect' | 'protocol-error'): Promise<unknown>;
  /**
   * Waits until a connection has a FilterGetMessage pending at the simulator: a message sent now is delivered at
   * once, so a short reply timeout cannot run out while it waits in the queue for the receiver's first get.
   */
  untilReceiving(client?: ClientPort, gets?: number): Promise<void>;
  /** A raw stream, no CONNECT sent. */
  open(): Promise<WireClient>;
  /** A connected wire client. */
  connect(o: ConnectOptions): Promise<WireClient>;
  /** Runs the given teardown (a harness's own resources), closes the simulator, destroys the wire clients. */
  close(): Promise<void>;
}

export interface StartOptions {
  options?: SimulatorOptions;
  listen?: ListenTarget;
}

/** A listening simulator with recording and tracking, no filter. `teardown` runs first in close(). */
export async function startBase(
  o: StartOptions = {},
  teardown: () => Promise<void> = async () => undefined,
): Promise<SimulatorBase> {
  const logs: string[] = [];
  const protocolErrors: ProtocolErrorEvent[] = [];
  const clients: ClientPort[] = [];
  const sim = new FilterManagerSimulator({ log: (l) => logs.push(l), ...o.options });
  sim.on('protocol-error', (e) => protocolErrors.push(e));
  sim.on('connect', (c) => clients.push(c));
  const endpoint = await sim.listen(o.listen);
  const wires: WireClient[] = [];
  const track = (w: WireClient): WireClient => {
    wires.push(w);
    return w;
  };
  const base: SimulatorBase = {
    sim,
    endpoint,
    logs,
    protocolErrors,
    clients,
    async nextClient() {
      const [client] = await nextEvent<[ClientPort]>(sim, 'connect', { what: 'a client to connect to the simulator' });
      return client;
    },
    async nextEvent(event) {
      const [arg] = await nextEvent(sim, event, { what: `the simulator's '${event}' event` });
      return arg;
    },
    untilReceiving(client, gets = 1) {
      const holds = (c: ClientPort): boolean => c.connected && c.stats().pendingGets >= gets;
      return client
        ? until(() => holds(client), {
            what: `${gets} FilterGetMessage call(s) of client ${client.id} pending at the simulator`,
          })
        : until(() => clients.some(holds), { what: 'a FilterGetMessage pending at the simulator' });
    },
    async open() {
      return track(await WireClient.open(endpoint));
    },
    async connect(c) {
      return track(await WireClient.connect(endpoint, c));
    },
    async close() {
      // The simulator closes even when the teardown fails (a C driver's verifier findings): the failure is
      // reported, and no socket keeps the test file's process alive.
      try {
        await teardown();
      } finally {
        await withTimeout(sim.close(), { what: 'the simulator to close' });
        for (const w of wires) w.destroy();
      }
    },
  };
  return base;
}

export interface SimulatorHarness extends SimulatorBase {
  filter: SimulatedFilter;
  port: ServerPort;
  /** A connected wire client (CONNECT to PORT_NAME unless told otherwise). */
  connect(o?: Partial<ConnectOptions>): Promise<WireClient>;
  /** Connects a wire client and also returns the kernel-side ClientPort. */
  connectPair(o?: Partial<ConnectOptions>): Promise<{ wire: WireClient; client: ClientPort }>;
}

/** A simulator with the test filter (FILTER_NAME) and its port PORT_NAME (maxConnections 16 unless `port` says). */
export async function startSimulator(
  o: StartOptions & { port?: Partial<CommunicationPortOptions> } = {},
): Promise<SimulatorHarness> {
  const base = await startBase(o);
  const filter = base.sim.registerFilter(FILTER_NAME, { altitude: '385100' });
  const port = filter.createCommunicationPort(PORT_NAME, { maxConnections: 16, ...o.port });
  const h: SimulatorHarness = {
    ...base,
    filter,
    port,
    connect: (c = {}) => base.connect({ portName: PORT_NAME, ...c }),
    async connectPair(c = {}) {
      const next = base.nextClient();
      const wire = await h.connect(c);
      return { wire, client: await next };
    },
  };
  return h;
}

/** Whether a connection of the simulator is in ConnectNotify (admitted, its connect callback not returned yet). */
export function connectNotifyRuns(h: Pick<SimulatorBase, 'sim'>): boolean {
  return h.sim.streamStats().some((s) => s.state === 'connecting' && s.client !== undefined);
}

export function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}
