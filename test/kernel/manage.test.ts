// Management requests against C drivers in the kernel harness: a driver's filter shows in FILTERS and
// INSTANCES; UNLOAD by name runs the driver's own unload path (FilterUnloadCallback, then EvtDriverUnload and the
// verifier's end-of-image checks), is answered only once its connections ended, and a loadable reloads a fresh
// image; a FilterUnloadCallback that refuses (STATUS_FLT_DO_NOT_DETACH) makes UNLOAD answer
// ERROR_FLT_DO_NOT_DETACH and the filter stays loaded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FilterPort } from '../../lib';
import { packageRoot } from '../../lib/binding';
import { buildKernelImage } from '../../lib/simulator/kernel-build';
import { KernelDriver } from '../../lib/simulator/kernel-driver';
import type { FilterManagerSimulator, SimulatedFilter } from '../../lib/simulator';
import { kernelHarnessAvailable } from '../../driver-sample/target';
import { sampleImage } from '../../driver-sample/harness';
import * as P from '../../driver-sample/protocol';
import { startBase, type SimulatorBase } from '../helpers/sim';
import { OP, manage } from '../helpers/wire-client';

const ERROR_FLT_DO_NOT_DETACH = 0x801f0010;

interface Rig {
  base: SimulatorBase;
  /** Every image loaded, in order. */
  drivers: KernelDriver[];
  /** Loads `image` as `name` (also what the loadable of that name runs). */
  load(sim: FilterManagerSimulator): Promise<SimulatedFilter>;
}

async function rig(
  t: { after(fn: () => Promise<void>): void },
  image: string,
  name: string,
  altitude: string,
): Promise<Rig> {
  const drivers: KernelDriver[] = [];
  const base = await startBase({}, async () => {
    for (const d of drivers) await d.close();
  });
  t.after(() => base.close());
  const load = async (sim: FilterManagerSimulator): Promise<SimulatedFilter> => {
    const driver = await KernelDriver.load(sim, image, { name, altitude });
    drivers.push(driver);
    return driver.filter;
  };
  base.sim.addLoadable(name, load);
  return { base, drivers, load };
}

describe('management requests against C drivers', { skip: !kernelHarnessAvailable() }, () => {
  test('the sample driver: listed, unloaded by name through its unload path, loaded again', async (t) => {
    const r = await rig(t, sampleImage(), P.FILTER_NAME, P.SAMPLE_ALTITUDE);
    const ep = r.base.endpoint;
    for (let cycle = 0; cycle < 3; cycle++) {
      if (cycle === 0) await r.load(r.base.sim);
      else assert.deepEqual(await manage(ep, OP.LOAD, [P.FILTER_NAME]), { hresult: 0, records: [] }, `load ${cycle}`);
      const driver = r.drivers[cycle] as KernelDriver;
      const filters = await manage(ep, OP.FILTERS);
      assert.deepEqual(
        filters.records.map((f) => [f['name'], f['altitude'], f['numberOfInstances']]),
        [[P.FILTER_NAME, P.SAMPLE_ALTITUDE, 3]],
      );
      const instances = await manage(ep, OP.INSTANCES, [P.FILTER_NAME.toLowerCase(), 'C:']);
      assert.deepEqual(
        instances.records.map((i) => i['instanceName']),
        [`${P.FILTER_NAME} Instance`],
      );
      const ports = await manage(ep, OP.PORTS);
      assert.deepEqual(
        ports.records.map((p) => [p['portName'], p['filterName']]),
        [[P.PORT_NAME, P.FILTER_NAME]],
      );
      const port = await FilterPort.connect(P.PORT_NAME, { simulator: ep });
      const client = r.base.clients[cycle];
      assert.equal(client?.connected, true);
      assert.deepEqual(await manage(ep, OP.UNLOAD, [P.FILTER_NAME]), { hresult: 0, records: [] }, `unload ${cycle}`);
      // Answered after the unload finished: the driver's unload ran, its connection ended, the verifier is clean.
      assert.equal(driver.unloaded, true);
      assert.equal(client?.connected, false);
      assert.deepEqual(driver.violations, []);
      assert.deepEqual((await manage(ep, OP.FILTERS)).records, []);
      assert.deepEqual((await manage(ep, OP.PORTS)).records, []);
      await port.close().catch(() => undefined);
      await driver.close();
    }
  });

  test('a FilterUnloadCallback that refuses: ERROR_FLT_DO_NOT_DETACH, still loaded; the next UNLOAD unloads', async (t) => {
    const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
    const image = buildKernelImage({
      sources: [path.join(__dirname, 'fixtures', 'unload-refuses.c')],
      out: path.join(packageRoot(), 'build', 'kernel', 'fixtures', `unload-refuses${sanitized ? '-asan' : ''}.so`),
    });
    const r = await rig(t, image, 'Refuser', '123456');
    await r.load(r.base.sim);
    const driver = r.drivers[0] as KernelDriver;
    const ep = r.base.endpoint;
    assert.deepEqual(await manage(ep, OP.UNLOAD, ['refuser']), { hresult: ERROR_FLT_DO_NOT_DETACH, records: [] });
    assert.equal(driver.unloaded, false);
    assert.deepEqual(
      r.base.sim.filters().map((f) => f.name),
      ['Refuser'],
    );
    assert.equal(r.base.sim.instances({ filter: 'Refuser' }).length, 3);
    assert.deepEqual(await manage(ep, OP.UNLOAD, ['Refuser']), { hresult: 0, records: [] });
    assert.equal(driver.unloaded, true);
    assert.deepEqual(driver.violations, []);
    assert.deepEqual(r.base.sim.filters(), []);
  });
  test("a driver that leaks: UNLOAD answers S_OK (it did unload); the verifier's findings are logged and kept", async (t) => {
    const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
    const image = buildKernelImage({
      sources: [path.join(__dirname, '..', 'fixtures', 'kernel', 'pool-leak.c')],
      out: path.join(packageRoot(), 'build', 'kernel', 'fixtures', `pool-leak${sanitized ? '-asan' : ''}.so`),
    });
    const r = await rig(t, image, 'Leaky', '123457');
    await r.load(r.base.sim);
    const driver = r.drivers[0] as KernelDriver;
    assert.deepEqual(await manage(r.base.endpoint, OP.UNLOAD, ['Leaky']), { hresult: 0, records: [] });
    assert.equal(driver.unloaded, true);
    assert.deepEqual(r.base.sim.filters(), []);
    assert.equal(driver.violations.length, 1);
    assert.match(driver.violations[0] ?? '', /leaked pool tag 'KvLk'/);
    assert.ok(
      r.base.logs.some((l) => /^unload of Leaky: KernelVerifierError: .*leaked pool tag 'KvLk'/s.test(l)),
      r.base.logs.join('\n'),
    );
  });
});
