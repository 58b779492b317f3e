// Runs a simulator with one filter module in a worker thread, so a test or a tool can host the "kernel" off its
// own event loop. This file is both the API (main thread) and the worker's entry point.
import * as path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadFilterModule } from './load-module';
import { FilterManagerSimulator, simulatorLogFromEnv, type ListenTarget } from './server';
import type { SimulatorLimits } from './types';

/** Options of {@link startSimulatorWorker}. */
export interface SimulatorWorkerOptions {
  /** Where to listen (default: a private Unix socket, see FilterManagerSimulator.listen). */
  listen?: ListenTarget;
  /** Passed to the module's register(sim, options); must be structured-cloneable. */
  filterOptions?: Record<string, unknown>;
  /** SimulatorOptions.admins for the worker's simulator. */
  admins?: {
    /** Administrator user ids. */
    uids?: number[];
    /** Administrator group ids (primary groups). */
    gids?: number[];
  };
  /** SimulatorOptions.limits for the worker's simulator. */
  limits?: SimulatorLimits;
  /** Receives the worker simulator's log lines. Default: discard, or standard error when FLTMGR_SIM_LOG=1. */
  log?: (line: string) => void;
  /** SimulatorOptions.verbose for the worker's simulator (connect and disconnect lines). */
  verbose?: boolean;
  /** Milliseconds to wait for the worker to be ready (default 15000). */
  startTimeout?: number;
}

/** A simulator running in a worker thread ({@link startSimulatorWorker}). */
export interface SimulatorWorker {
  /** The endpoint clients connect to (FLTMGR_SIMULATOR, or ConnectOptions.simulator). */
  readonly endpoint: string;
  /** Closes the simulator (filters unloaded, connections ended) and ends the worker. */
  terminate(): Promise<void>;
}

interface WorkerInit {
  fltmgrSimulatorWorker: true;
  filterModule: string;
  listen?: ListenTarget;
  filterOptions?: Record<string, unknown>;
  admins?: { uids?: number[]; gids?: number[] };
  limits?: SimulatorLimits;
  verbose?: boolean;
}

type FromWorker =
  | { type: 'ready'; endpoint: string }
  | { type: 'error'; message: string }
  | { type: 'log'; line: string }
  | { type: 'closed' };

const STOP_TIMEOUT_MS = 5000;

function workerEntry(): { code: string; eval: boolean } {
  if (!__filename.endsWith('.ts')) return { code: __filename, eval: false };
  // Running the TypeScript sources (tests under tsx): Node 20 workers do not inherit loader hooks, so the
  // worker registers tsx's require hook itself. Compiled builds never take this path.

  const tsx = require.resolve('tsx/cjs');
  return { code: `require(${JSON.stringify(tsx)}); require(${JSON.stringify(__filename)});`, eval: true };
}

/** Starts `filterModule` (a path; its `register` is called with the worker's simulator) in a worker thread. */
export function startSimulatorWorker(
  filterModule: string,
  options: SimulatorWorkerOptions = {},
): Promise<SimulatorWorker> {
  if (typeof filterModule !== 'string' || filterModule.length === 0) {
    return Promise.reject(new TypeError('filterModule must be a path'));
  }
  const init: WorkerInit = { fltmgrSimulatorWorker: true, filterModule: path.resolve(filterModule) };
  if (options.listen !== undefined) init.listen = options.listen;
  if (options.filterOptions !== undefined) init.filterOptions = options.filterOptions;
  if (options.admins !== undefined) init.admins = options.admins;
  if (options.limits !== undefined) init.limits = options.limits;
  if (options.verbose !== undefined) init.verbose = options.verbose;
  const entry = workerEntry();
  const worker = new Worker(entry.code, { eval: entry.eval, workerData: init });
  const log =
    options.log ??
    (simulatorLogFromEnv() ? (line: string) => process.stderr.write(`[fltmgr-simulator] ${line}\n`) : undefined);
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      exited = true;
      resolve();
    }),
  );

  return new Promise<SimulatorWorker>((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      fail(new Error('the simulator worker did not start in time'));
    }, options.startTimeout ?? 15000);
    const fail = (err: Error): void => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      void worker.terminate();
      reject(err);
    };
    let closedResolve: (() => void) | undefined;
    const closed = new Promise<void>((r) => (closedResolve = r));
    worker.on('message', (msg: FromWorker) => {
      switch (msg.type) {
        case 'log':
          try {
            log?.(msg.line);
          } catch {
            // a failing logger is not the simulator's problem
          }
          break;
        case 'error':
          fail(new Error(`simulator worker: ${msg.message}`));
          break;
        case 'closed':
          closedResolve?.();
          break;
        case 'ready': {
          if (ready) break;
          ready = true;
          clearTimeout(timer);
          let stopping: Promise<void> | undefined;
          resolve({
            endpoint: msg.endpoint,
            terminate: () => {
              stopping ??= (async () => {
                if (exited) return;
                worker.postMessage({ type: 'close' });
                const deadline = new Promise<void>((r) => setTimeout(r, STOP_TIMEOUT_MS).unref());
                await Promise.race([Promise.race([closed, exitedPromise]), deadline]);
                if (!exited) await worker.terminate();
                await exitedPromise;
              })();
              return stopping;
            },
          });
          break;
        }
      }
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`simulator worker exited with code ${code} before it was ready`)));
  });
}

async function runWorker(init: WorkerInit): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const post = (msg: FromWorker): void => port.postMessage(msg);
  const sim = new FilterManagerSimulator({
    ...(init.admins ? { admins: init.admins } : {}),
    ...(init.limits ? { limits: init.limits } : {}),
    ...(init.verbose !== undefined ? { verbose: init.verbose } : {}),
    log: (line) => post({ type: 'log', line }),
  });
  try {
    await loadFilterModule(init.filterModule).register(sim, init.filterOptions);
    post({ type: 'ready', endpoint: await sim.listen(init.listen) });
  } catch (err) {
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    await sim.close();
    port.close();
    return;
  }
  port.on('message', (msg: { type?: string }) => {
    if (msg?.type !== 'close') return;
    void sim.close().then(() => {
      post({ type: 'closed' });
      port.close();
    });
  });
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.fltmgrSimulatorWorker === true) {
  void runWorker(workerData as WorkerInit);
}
