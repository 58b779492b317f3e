// The simulator's log: problems always reach SimulatorOptions.log; connect/disconnect lines only with `verbose`
// (or FLTMGR_SIM_LOG=1), so benchmarks and tests are quiet.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { FilterManagerSimulator } from '../../lib/simulator';
import { WireClient } from '../helpers/wire-client';
import { TEST_TIMEOUT_MS, withTimeout } from '../helpers/timing';

async function connectOnce(options: { verbose?: boolean }): Promise<string[]> {
  const lines: string[] = [];
  const sim = new FilterManagerSimulator({ ...options, log: (line) => lines.push(line) });
  const disconnected = new Promise<void>((resolve) => sim.once('disconnect', () => resolve()));
  try {
    sim.registerFilter('log-test').createCommunicationPort('\\LogPort', { maxConnections: 1 });
    const c = await WireClient.connect(await sim.listen(), { portName: '\\LogPort' });
    c.destroy();
    await withTimeout(disconnected, { what: 'disconnect' });
  } finally {
    await sim.close();
  }
  return lines;
}

test(
  'simulator log: quiet by default; verbose logs each connect and disconnect; FLTMGR_SIM_LOG=1 is the default for verbose',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const saved = process.env['FLTMGR_SIM_LOG'];
    t.after(() => {
      if (saved === undefined) delete process.env['FLTMGR_SIM_LOG'];
      else process.env['FLTMGR_SIM_LOG'] = saved;
    });
    delete process.env['FLTMGR_SIM_LOG'];
    assert.deepEqual(await connectOnce({}), []);
    const verbose = await connectOnce({ verbose: true });
    assert.equal(verbose.length, 2, verbose.join('\n'));
    assert.match(verbose[0] ?? '', /^connect: port \\LogPort, client 1, pid \d+$/);
    assert.match(verbose[1] ?? '', /^disconnect: port \\LogPort, client 1$/);
    process.env['FLTMGR_SIM_LOG'] = '1';
    assert.equal((await connectOnce({})).length, 2);
    assert.deepEqual(await connectOnce({ verbose: false }), []);
  },
);
