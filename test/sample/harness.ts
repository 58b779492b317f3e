// Shared setup for the sample tests: an in-process simulator with the sample minifilter's twin, raw FilterPort
// clients of \FltmgrSamplePort, and in-process scanner agents; everything is torn down with the harness.
import { once } from 'node:events';
import { FilterPort, type FilterMessage } from '../../lib';
import { FilterManagerSimulator, type ClientPort, type ListenTarget, type SimulatorOptions } from '../../lib/simulator';
import { hresultFromNtStatus } from '../../lib/status';
import { SampleMinifilter, type SampleMinifilterOptions } from '../../driver-sample/sim';
import * as P from '../../driver-sample/protocol';
import { ScannerAgent, type ScannerAgentOptions } from '../../examples/scanner-agent';
import { pendingGets } from '../helpers/sim';
import { HANG_GUARD_MS, pollUntil } from '../helpers/timing';

export const E_ACCESSDENIED = 0x80070005;
export const E_INVALIDARG = 0x80070057; // HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)
export const E_INSUFFICIENT_BUFFER = 0x8007007a;
export const E_FILE_NOT_FOUND = 0x80070002;
export const E_CONNECTION_COUNT_LIMIT = 0x800704d6;
export const E_INVALID_FUNCTION = 0x80070001; // STATUS_INVALID_DEVICE_REQUEST
export const E_REVISION_MISMATCH = hresultFromNtStatus(0xc0000059);

export interface SampleHarness {
  sim: FilterManagerSimulator;
  endpoint: string;
  /** The loaded twin (replaced by reload()). */
  twin: SampleMinifilter;
  /** The twin's log lines (DbgPrintEx). */
  logs: string[];
  /** Kernel-side connections, in connect order (disconnected ones stay in the list). */
  clients: ClientPort[];
  /**
   * Waits until a connection has a FilterGetMessage pending at the simulator: a message sent now is delivered at
   * once, so a short reply timeout cannot run out while it waits in the queue for the receiver's first get.
   */
  untilReceiving(): Promise<void>;
  /** Unloads the twin (if loaded) and loads a new one: a driver restart. */
  reload(options?: SampleMinifilterOptions): Promise<SampleMinifilter>;
  /** A connection to \FltmgrSamplePort; `scanner` sends the SCANNER context with this process's id. */
  connect(options?: { scanner?: boolean; context?: Buffer }): Promise<FilterPort>;
  /** An in-process scanner agent (fast reconnects), started; resolves once connected. */
  startAgent(options?: ScannerAgentOptions): Promise<ScannerAgent>;
  close(): Promise<void>;
}

export async function startSample(
  o: { twin?: SampleMinifilterOptions; sim?: SimulatorOptions; listen?: ListenTarget } = {},
): Promise<SampleHarness> {
  const logs: string[] = [];
  const sim = new FilterManagerSimulator(o.sim);
  const endpoint = await sim.listen(o.listen);
  const twinOptions = (extra?: SampleMinifilterOptions): SampleMinifilterOptions => ({
    log: (line) => logs.push(line),
    ...o.twin,
    ...extra,
  });
  const ports: FilterPort[] = [];
  const agents: ScannerAgent[] = [];
  const clients: ClientPort[] = [];
  sim.on('connect', (c) => clients.push(c));
  const h: SampleHarness = {
    sim,
    endpoint,
    logs,
    clients,
    untilReceiving: () =>
      pollUntil('a FilterGetMessage pending at the simulator', () => clients.some((c) => c.connected && pendingGets(c) > 0)),
    twin: new SampleMinifilter(sim, twinOptions()),
    async reload(options) {
      await h.twin.unload();
      h.twin = new SampleMinifilter(sim, twinOptions(options));
      return h.twin;
    },
    async connect(options = {}) {
      const context = options.context ?? (options.scanner ? P.encodeConnectContext({ scanner: true, processId: process.pid }) : undefined);
      const port = await FilterPort.connect(P.PORT_NAME, { simulator: endpoint, ...(context ? { context } : {}) });
      ports.push(port);
      return port;
    },
    async startAgent(options = {}) {
      const agent = new ScannerAgent({ connect: { simulator: endpoint }, reconnect: { minMs: 10, maxMs: 50 }, ...options });
      agents.push(agent);
      const connected = once(agent, 'connected', { signal: AbortSignal.timeout(HANG_GUARD_MS) });
      agent.start().catch(() => undefined);
      await connected;
      return agent;
    },
    async close() {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(ports.map((p) => p.close()));
      await h.twin.unload();
      await sim.close();
    },
  };
  return h;
}

/** Polls until predicate() holds; fails after timeoutMs (a hang guard, see test/helpers/timing.ts). */
export function until(what: string, predicate: () => boolean, timeoutMs = HANG_GUARD_MS): Promise<void> {
  return pollUntil(what, predicate, timeoutMs);
}

/** Serves a raw port: every message is recorded and answered by `answer` (default ALLOW). */
export function serveRaw(
  port: FilterPort,
  answer: (request: P.ScanRequest, message: FilterMessage) => Uint8Array | undefined | Promise<Uint8Array | undefined> = () =>
    P.encodeScanReply(P.Verdict.ALLOW),
  concurrency = 8,
): { requests: P.ScanRequest[]; done: Promise<void> } {
  const requests: P.ScanRequest[] = [];
  const done = port
    .serve(
      async (message) => {
        const request = P.decodeScanRequest(message.data);
        requests.push(request);
        return answer(request, message);
      },
      { concurrency, bufferSize: 16 + P.SCAN_REQUEST.size, onError: () => undefined },
    )
    .catch(() => undefined);
  return { requests, done };
}

export const text = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Rejects with the FilterError's hresult checked; returns the error for more checks. */
export async function rejectsWith(promise: Promise<unknown>, hresult: number): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error(`expected a rejection with 0x${hresult.toString(16)}, got success`);
  const got = (error as { hresult?: number }).hresult;
  if (got !== hresult) {
    throw new Error(`expected hresult 0x${hresult.toString(16)}, got ${got === undefined ? String(error) : `0x${got.toString(16)}`}`);
  }
}
