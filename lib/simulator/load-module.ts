// Loads a simulated-minifilter module (CommonJS; `register` exported directly or on `default`).
import * as path from 'node:path';
import type { SimulatedMinifilterModule } from './types';

/**
 * Loads a simulated-minifilter module, as the CLI's --filter and startSimulatorWorker do: CommonJS, exporting
 * `register(simulator, options)` directly or on `default`. Throws TypeError when it exports none.
 */
export function loadFilterModule(file: string): SimulatedMinifilterModule {
  if (typeof file !== 'string' || file.length === 0)
    throw new TypeError('filter module path must be a non-empty string');
  const resolved = path.resolve(file);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(resolved) as { register?: unknown; default?: { register?: unknown } } | undefined;
  const register = mod?.register ?? mod?.default?.register;
  if (typeof register !== 'function') {
    throw new TypeError(`${resolved} does not export register(simulator, options)`);
  }
  return { register: register as SimulatedMinifilterModule['register'] };
}
