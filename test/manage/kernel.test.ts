// The kernel harness's filter (a C minifilter run by KernelDriver, examples/kernel-minifilter/lockfilter.c) is a
// filter like any other to fltmgr/manager: listed with its altitude, an instance per volume, its port, and
// unloaded by name through its own FilterUnloadCallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FilterError, FilterPort } from '../../lib';
import { packageRoot } from '../../lib/binding';
import * as manager from '../../lib/manager';
import { buildKernelImage } from '../../lib/simulator/kernel-build';
import { KernelDriver } from '../../lib/simulator/kernel-driver';
import { kernelHarnessAvailable } from '../../driver-sample/target';
import { startBase } from '../helpers/sim';

test(
  'a C driver in the kernel harness shows in filters(), instances() and ports(), and unload() unloads it',
  { skip: !kernelHarnessAvailable() },
  async (t) => {
    const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
    const file = buildKernelImage({
      sources: [path.join(packageRoot(), 'examples', 'kernel-minifilter', 'lockfilter.c')],
      out: path.join(packageRoot(), 'build', 'kernel', sanitized ? 'lockfilter-asan.so' : 'lockfilter.so'),
    });
    const loaded: { driver?: KernelDriver } = {};
    const base = await startBase({}, async () => {
      if (loaded.driver !== undefined && !loaded.driver.unloaded) await loaded.driver.unload();
      await loaded.driver?.close();
    });
    t.after(() => base.close());
    const driver = await KernelDriver.load(base.sim, file, { name: 'lockfilter', altitude: '370030' });
    loaded.driver = driver;
    const s = { simulator: base.endpoint };

    assert.deepEqual(await manager.filters(s), [
      { name: 'lockfilter', altitude: '370030', kind: 'minifilter', frame: 0, instances: 3 },
    ]);
    const instances = await manager.instances({ ...s, filter: 'lockfilter' });
    assert.deepEqual(
      instances.map((i) => [i.name, i.altitude, i.volume]),
      ['\\Device\\HarddiskVolume1', '\\Device\\HarddiskVolume2', '\\Device\\Mup'].map((v) => [
        'lockfilter Instance',
        '370030',
        v,
      ]),
    );
    assert.deepEqual(
      (await manager.ports(s)).map((p) => [p.name, p.filter]),
      [['\\LockFilterPort', 'lockfilter']],
    );

    const port = await FilterPort.connect('\\LockFilterPort', s);
    const iterator = port.messages()[Symbol.asyncIterator]();
    const receiving = iterator.next().then(
      () => undefined,
      (error: unknown) => error,
    );
    await manager.unload('lockfilter', s);
    // The C driver's unload closed its port: the receive loop sees the disconnect.
    const ended = await receiving;
    assert.ok(ended instanceof FilterError && ended.disconnected, String(ended));
    await port.close();
    assert.equal(driver.unloaded, true);
    assert.deepEqual(await manager.filters(s), []);
  },
);
