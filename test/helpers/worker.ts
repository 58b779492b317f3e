// Starts a worker thread on a TypeScript file (the tests run from source through tsx).
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function tsWorker(file: string, options: WorkerOptions = {}): Worker {
  const bootstrap = `require('tsx/cjs'); require(${JSON.stringify(file)});`;
  return new Worker(bootstrap, { ...options, eval: true });
}
