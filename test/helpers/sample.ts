// The sample driver's tests: an in-process simulator (./sim.ts's base) with the sample minifilter (its C code in
// the kernel harness, or its TypeScript twin: SAMPLE_TARGETS), raw FilterPort clients of \FltmgrSamplePort, and
// in-process scanner agents; everything is torn down with the harness.
import { FilterPort, type FilterMessage } from '../../lib';
import type { ListenTarget, SimulatorOptions } from '../../lib/simulator';
import type { SampleMinifilterOptions } from '../../driver-sample/twin';
import {
  kernelHarnessAvailable,
  loadSampleDriver,
  type SampleDriver,
  type SampleTargetKind,
} from '../../driver-sample/target';
import * as P from '../../driver-sample/protocol';
import { ScannerAgent, type ScannerAgentOptions } from '../../examples/scanner-agent';
import { startBase, type SimulatorBase } from './sim';
import { nextEvent } from './timing';

/**
 * Which implementations of the sample driver the suite runs against: FLTMGR_SAMPLE_TARGET=c or twin picks one;
 * by default both where the kernel harness runs (Linux), else the twin.
 */
export const SAMPLE_TARGETS: readonly SampleTargetKind[] = (() => {
  const env = process.env['FLTMGR_SAMPLE_TARGET'];
  if (env === 'c' || env === 'twin') return [env];
  return kernelHarnessAvailable() ? ['c', 'twin'] : ['twin'];
})();

/** The simulator base without its wire clients: here connect() makes a FilterPort and logs are the driver's. */
export interface SampleHarness extends Omit<SimulatorBase, 'connect' | 'open' | 'logs'> {
  /** The loaded driver (replaced by reload()). */
  driver: SampleDriver;
  /** The driver's log lines (DbgPrintEx). */
  logs: string[];
  /** The simulator's log lines. */
  simLogs: string[];
  /** Unloads the driver (if loaded) and loads a new one: a driver restart. */
  reload(options?: SampleMinifilterOptions): Promise<SampleDriver>;
  /** A connection to \FltmgrSamplePort; `scanner` sends the SCANNER context with this process's id. */
  connect(options?: { scanner?: boolean; context?: Buffer }): Promise<FilterPort>;
  /** An in-process scanner agent (fast reconnects), started; resolves once connected. */
  startAgent(options?: ScannerAgentOptions): Promise<ScannerAgent>;
}

export async function startSample(o: {
  target: SampleTargetKind;
  driver?: SampleMinifilterOptions;
  sim?: SimulatorOptions;
  listen?: ListenTarget;
}): Promise<SampleHarness> {
  const logs: string[] = [];
  const driverOptions = (extra?: SampleMinifilterOptions): SampleMinifilterOptions => ({
    log: (line) => logs.push(line),
    ...o.driver,
    ...extra,
  });
  const ports: FilterPort[] = [];
  const agents: ScannerAgent[] = [];
  const base = await startBase({ options: o.sim, listen: o.listen }, async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(ports.map((p) => p.close()));
    // The C driver's unload rejects with the verifier's findings: a test that leaks fails here.
    try {
      await h.driver.unload();
    } finally {
      await h.driver.close();
    }
  });
  // eslint-disable-next-line @typescript-eslint/unbound-method -- dropped from the spread, never called
  const { connect: _wire, open: _open, logs: simLogs, ...rest } = base;
  const h: SampleHarness = {
    ...rest,
    logs,
    simLogs,
    driver: undefined as unknown as SampleDriver, // set below, before anyone can see h
    async reload(options) {
      await h.driver.unload();
      await h.driver.close();
      h.driver = await loadSampleDriver(o.target, base.sim, driverOptions(options));
      return h.driver;
    },
    async connect(options = {}) {
      const context =
        options.context ??
        (options.scanner ? P.encodeConnectContext({ scanner: true, processId: process.pid }) : undefined);
      const port = await FilterPort.connect(P.PORT_NAME, { simulator: base.endpoint, ...(context ? { context } : {}) });
      ports.push(port);
      return port;
    },
    async startAgent(options = {}) {
      const agent = new ScannerAgent({
        connect: { simulator: base.endpoint },
        reconnect: { minMs: 10, maxMs: 50 },
        ...options,
      });
      agents.push(agent);
      const connected = nextEvent(agent, 'connected', { what: 'the scanner agent to connect' });
      agent.start().catch(() => undefined);
      await connected;
      return agent;
    },
  };
  try {
    h.driver = await loadSampleDriver(o.target, base.sim, driverOptions());
  } catch (err) {
    await base.close().catch(() => undefined);
    throw err;
  }
  return h;
}

/** Serves a raw port: every message is recorded and answered by `answer` (default ALLOW). */
export function serveRaw(
  port: FilterPort,
  answer: (
    request: P.ScanRequest,
    message: FilterMessage,
  ) => Uint8Array | undefined | Promise<Uint8Array | undefined> = () => P.encodeScanReply(P.Verdict.ALLOW),
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

/** Awaits `promise` and checks that it rejects with a FilterError (or any error) whose hresult is `hresult`. */
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
    throw new Error(
      `expected hresult 0x${hresult.toString(16)}, got ${got === undefined ? (error instanceof Error ? error.message : JSON.stringify(error)) : `0x${got.toString(16)}`}`,
    );
  }
}
