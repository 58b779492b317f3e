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
import { HANG_GUARD_MS, pollUntil } from './timing';

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
      const [client] = (await once(sim, 'connect', { signal: AbortSignal.timeout(HANG_GUARD_MS) })) as [ClientPort];
      return client;
    },
    close: () => sim.close(),
  };
}

/** Polls until predicate() holds; fails after timeoutMs (a hang guard). For state that has no event. */
export function until(predicate: () => boolean, what: string, timeoutMs = HANG_GUARD_MS): Promise<void> {
  return pollUntil(what, predicate, timeoutMs);
}

/**
 * FilterGetMessage calls the simulator holds for `client`, not yet given a message. A kernel-side sendMessage
 * with a short timeout is delivered at once when this is > 0, and may time out in the queue otherwise (the
 * client's gets travel through threads and a socket). Internal state: no public API exposes it.
 */
export function pendingGets(client: ClientPort): number {
  const gets = (client as unknown as { gets?: unknown }).gets;
  if (!(gets instanceof Map)) throw new Error('test/helpers/sim.ts: ClientPortImpl.gets is gone; update pendingGets()');
  return gets.size;
}

/** Waits until the simulator holds at least `count` gets of `client` (see pendingGets). */
export function untilGetsPending(client: ClientPort, count = 1): Promise<void> {
  return pollUntil(`${count} FilterGetMessage call(s) pending at the simulator`, () => pendingGets(client) >= count);
}

/** Messages delivered to `client` whose sender waits for the reply (internal state, like pendingGets). */
export function awaitingReplies(client: ClientPort): number {
  const awaiting = (client as unknown as { awaiting?: unknown }).awaiting;
  if (!(awaiting instanceof Map)) throw new Error('test/helpers/sim.ts: ClientPortImpl.awaiting is gone; update awaitingReplies()');
  return awaiting.size;
}

/**
 * Records the HRESULT of every REPLY the simulator answers for `client` (FilterReplyMessage as the kernel side
 * sees it), by wrapping the instance's internal reply method. For waiting until a late reply has been refused.
 */
export function watchReplies(client: ClientPort): number[] {
  const target = client as unknown as { reply?: (...args: unknown[]) => number };
  const original = target.reply;
  if (typeof original !== 'function') throw new Error('test/helpers/sim.ts: ClientPortImpl.reply is gone; update watchReplies()');
  const answered: number[] = [];
  target.reply = (...args: unknown[]): number => {
    const hresult = original.apply(client, args);
    answered.push(hresult);
    return hresult;
  };
  return answered;
}

export function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}
