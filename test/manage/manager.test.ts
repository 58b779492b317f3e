// fltmgr/manager against the in-process simulator: every call, what it returns, every error code of the
// contract (docs/wire-protocol.md, "Management requests") with its hint, and the backend choice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError, FilterPort } from '../../lib';
import * as manager from '../../lib/manager';
import { NtStatusError } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { FILTER_NAME, PORT_NAME, startSimulator, type SimulatorHarness } from '../helpers/sim';
import { HR } from '../helpers/status';

const C = '\\Device\\HarddiskVolume1';
const D = '\\Device\\HarddiskVolume2';
const MUP = '\\Device\\Mup';

/** Rejects with a FilterError of this code from this call, whose message carries the hint. */
function filterError(hresult: number, syscall: string, hint: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof FilterError, `not a FilterError: ${String(error)}`);
    assert.equal(error.hresult, hresult >>> 0, error.message);
    assert.equal(error.syscall, syscall);
    assert.match(error.message, hint);
    return true;
  };
}

async function start(t: { after(fn: () => Promise<void>): void }): Promise<SimulatorHarness> {
  const h = await startSimulator();
  t.after(() => h.close());
  return h;
}

test('filters(): every filter with altitude, kind, frame and instance count, highest altitude first', async (t) => {
  const h = await start(t);
  h.sim.registerFilter('low', { altitude: '370000.5' });
  const s = { simulator: h.endpoint };
  const list = await manager.filters(s);
  assert.deepEqual(list, [
    { name: FILTER_NAME, altitude: '385100', kind: 'minifilter', frame: 0, instances: 3 },
    { name: 'low', altitude: '370000.5', kind: 'minifilter', frame: 0, instances: 3 },
  ]);
});

test('records larger than the first 1 KiB buffer: the enumeration grows it to the size the call reports', async (t) => {
  const h = await start(t);
  const long = `f${'x'.repeat(2999)}`; // 6000 bytes of UTF-16 in each record that names it
  h.sim.registerFilter(long, { altitude: '1' });
  const s = { simulator: h.endpoint };
  assert.deepEqual(
    (await manager.filters(s)).map((f) => f.name),
    [FILTER_NAME, long],
  );
  const mine = await manager.instances({ ...s, volume: C });
  assert.deepEqual(
    mine.map((i) => [i.filter, i.name]),
    [
      [FILTER_NAME, `${FILTER_NAME} Instance`],
      [long, `${long} Instance`],
    ],
  );
});

test('volumes(): device name, DOS name (none for \\Device\\Mup), file system, frame', async (t) => {
  const h = await start(t);
  assert.deepEqual(await manager.volumes({ simulator: h.endpoint }), [
    { name: C, dosName: 'C:', fileSystem: 'NTFS', frame: 0, detached: false },
    { name: D, dosName: 'D:', fileSystem: 'REFS', frame: 0, detached: false },
    { name: MUP, dosName: undefined, fileSystem: 'MUP', frame: 0, detached: false },
  ]);
});

test('instances(): all, by filter, by volume (device or DOS name), by both; ordered by volume then altitude', async (t) => {
  const h = await start(t);
  h.sim.registerFilter('low', { altitude: '370000' });
  const s = { simulator: h.endpoint };
  const all = await manager.instances(s);
  assert.deepEqual(
    all.map((i) => [i.volume, i.filter, i.name, i.altitude]),
    [C, D, MUP].flatMap((v) => [
      [v, FILTER_NAME, `${FILTER_NAME} Instance`, '385100'],
      [v, 'low', 'low Instance', '370000'],
    ]),
  );
  assert.deepEqual(all[0], {
    name: `${FILTER_NAME} Instance`,
    filter: FILTER_NAME,
    volume: C,
    altitude: '385100',
    frame: 0,
    fileSystem: 'NTFS',
    kind: 'minifilter',
  });
  assert.deepEqual(
    (await manager.instances({ ...s, filter: 'LOW' })).map((i) => i.volume),
    [C, D, MUP],
    'filter names ignore case',
  );
  assert.deepEqual(
    (await manager.instances({ ...s, volume: 'd:' })).map((i) => [i.filter, i.fileSystem]),
    [
      [FILTER_NAME, 'REFS'],
      ['low', 'REFS'],
    ],
  );
  assert.deepEqual(
    (await manager.instances({ ...s, volume: D, filter: 'low' })).map((i) => i.name),
    ['low Instance'],
  );
  await assert.rejects(
    manager.instances({ ...s, filter: 'nope' }),
    filterError(HR.ERROR_FLT_FILTER_NOT_FOUND, 'FilterInstanceFindFirst', /filter not found.*"nope"/),
  );
  await assert.rejects(
    manager.instances({ ...s, volume: 'Q:' }),
    filterError(HR.ERROR_FLT_VOLUME_NOT_FOUND, 'FilterVolumeInstanceFindFirst', /volume not found.*"Q:"/),
  );
  await assert.rejects(
    manager.instances({ ...s, volume: C, filter: 'nope' }),
    filterError(HR.ERROR_FLT_FILTER_NOT_FOUND, 'FilterInstanceFindFirst', /filter not found/),
    'both given, filter unknown: not an empty list',
  );
});

test('attach/detach: default and explicit altitude and name, and every refusal with its hint', async (t) => {
  let refuse = false;
  const h = await start(t);
  h.sim.registerFilter('extra', {
    altitude: '360000',
    instanceSetup: () => {
      if (refuse) throw new NtStatusError(NtStatus.STATUS_FLT_DO_NOT_ATTACH);
      return true;
    },
  });
  const s = { simulator: h.endpoint };
  // Registration attached "extra Instance" at 360000 on every volume; an altitude is one instance's per volume.
  assert.equal(
    await manager.attach('extra', C, { ...s, altitude: '360000.5' }),
    'extra Instance 2',
    'the default name is taken: the next one',
  );
  assert.equal(await manager.attach('extra', 'c:', { ...s, altitude: '360001', instanceName: 'mine' }), 'mine');
  assert.deepEqual(
    (await manager.instances({ ...s, volume: C, filter: 'extra' })).map((i) => [i.name, i.altitude]),
    [
      ['mine', '360001'],
      ['extra Instance 2', '360000.5'],
      ['extra Instance', '360000'],
    ],
  );
  await assert.rejects(
    manager.attach('extra', C, { ...s, instanceName: 'MINE', altitude: '1' }),
    filterError(HR.ERROR_FLT_INSTANCE_NAME_COLLISION, 'FilterAttachAtAltitude', /instance exists/),
  );
  await assert.rejects(
    manager.attach('extra', C, { ...s, altitude: '385100' }),
    filterError(HR.ERROR_FLT_INSTANCE_ALTITUDE_COLLISION, 'FilterAttachAtAltitude', /altitude taken/),
  );
  await assert.rejects(
    manager.attach('extra', D, s),
    filterError(HR.ERROR_FLT_INSTANCE_ALTITUDE_COLLISION, 'FilterAttach', /altitude taken/),
    "the default altitude is the filter's own, held by its automatic instance",
  );
  await assert.rejects(
    manager.attach('nope', C, s),
    filterError(HR.ERROR_FLT_FILTER_NOT_FOUND, 'FilterAttach', /filter not found: no filter "nope"/),
  );
  await assert.rejects(
    manager.attach('extra', 'Q:', s),
    filterError(HR.ERROR_FLT_VOLUME_NOT_FOUND, 'FilterAttach', /volume not found/),
  );
  refuse = true;
  await assert.rejects(
    manager.attach('extra', D, { ...s, altitude: '2', instanceName: 'refused' }),
    filterError(HR.ERROR_FLT_DO_NOT_ATTACH, 'FilterAttachAtAltitude', /refused the attach/),
  );

  await manager.detach('extra', C, { ...s, instanceName: 'mine' });
  await manager.detach('extra', 'c:', s); // the first in altitude order
  assert.deepEqual(
    (await manager.instances({ ...s, volume: C, filter: 'extra' })).map((i) => i.name),
    ['extra Instance'],
  );
  await assert.rejects(
    manager.detach('extra', C, { ...s, instanceName: 'gone' }),
    filterError(HR.ERROR_FLT_INSTANCE_NOT_FOUND, 'FilterDetach', /instance not found/),
  );
  await assert.rejects(
    manager.detach('nope', C, s),
    filterError(HR.ERROR_FLT_FILTER_NOT_FOUND, 'FilterDetach', /filter not found/),
  );
  await assert.rejects(
    manager.detach('extra', 'Q:', s),
    filterError(HR.ERROR_FLT_VOLUME_NOT_FOUND, 'FilterDetach', /volume not found/),
  );
});

test('dosName(): the drive letter; "" for a volume without one; an unknown volume rejects with a hint', async (t) => {
  const h = await start(t);
  const s = { simulator: h.endpoint };
  assert.equal(await manager.dosName(C, s), 'C:');
  assert.equal(await manager.dosName(D, s), 'D:');
  // No drive letter and no mount point: S_OK and an empty name (FilterGetDosName's documentation).
  assert.equal(await manager.dosName(MUP, s), '');
  await assert.rejects(
    manager.dosName('\\Device\\Nope', s),
    filterError(HR.ERROR_FLT_VOLUME_NOT_FOUND, 'FilterGetDosName', /volume not found/),
  );
});

test('load/unload: a loadable module; unload ends its connections first; the errors with hints', async (t) => {
  const h = await start(t);
  const s = { simulator: h.endpoint };
  h.sim.addLoadable('scanner', (sim) => {
    const filter = sim.registerFilter('scanner', { altitude: '320000' });
    filter.createCommunicationPort('\\ScannerPort', { maxConnections: 1 });
    return filter;
  });
  await assert.rejects(
    manager.unload('scanner', s),
    filterError(HR.ERROR_FLT_FILTER_NOT_FOUND, 'FilterUnload', /filter not found/),
  );
  await manager.load('scanner', s);
  assert.ok((await manager.filters(s)).some((f) => f.name === 'scanner' && f.altitude === '320000'));
  await assert.rejects(
    manager.load('scanner', s),
    filterError(HR.ERROR_SERVICE_ALREADY_RUNNING, 'FilterLoad', /already loaded/),
  );
  await assert.rejects(manager.load('nosuch', s), filterError(HR.ERROR_FILE_NOT_FOUND, 'FilterLoad', /not loadable/));
  const port = await FilterPort.connect('\\ScannerPort', { simulator: h.endpoint });
  const disconnected = new Promise<FilterError>((resolve) => port.once('disconnect', resolve));
  const iterator = port.messages()[Symbol.asyncIterator]();
  const receiving = iterator.next().catch((e: unknown) => e);
  await h.untilReceiving();
  await manager.unload('scanner', s);
  // Resolved only after the connection ended: the client hears of it.
  assert.ok((await disconnected).disconnected);
  await receiving;
  await port.close();
  assert.ok(!(await manager.filters(s)).some((f) => f.name === 'scanner'));
  await manager.load('scanner', s); // loadable again
  await manager.unload('SCANNER', s);
});

test('unload of a filter whose unload routine refuses: ERROR_FLT_DO_NOT_DETACH, it stays', async (t) => {
  const h = await start(t);
  const s = { simulator: h.endpoint };
  h.sim.registerFilter('stubborn', {
    altitude: '300000',
    unload: () => Promise.reject(new NtStatusError(NtStatus.STATUS_FLT_DO_NOT_DETACH)),
  });
  await assert.rejects(
    manager.unload('stubborn', s),
    filterError(HR.ERROR_FLT_DO_NOT_DETACH, 'FilterUnload', /refused to unload/),
  );
  assert.ok((await manager.filters(s)).some((f) => f.name === 'stubborn'));
});

test('ports(): the simulator lists its communication ports with their connections', async (t) => {
  const h = await start(t);
  const s = { simulator: h.endpoint };
  assert.deepEqual(await manager.ports(s), [
    { name: PORT_NAME, filter: FILTER_NAME, maxConnections: 16, connections: 0 },
  ]);
  const port = await FilterPort.connect(PORT_NAME, s);
  t.after(() => port.close());
  assert.equal((await manager.ports(s))[0]?.connections, 1);
});

test('the backend is chosen like FilterPort.connect: FLTMGR_SIMULATOR, simulator: true, simulator: false', async (t) => {
  const h = await start(t);
  const saved = process.env['FLTMGR_SIMULATOR'];
  t.after(() => {
    if (saved === undefined) delete process.env['FLTMGR_SIMULATOR'];
    else process.env['FLTMGR_SIMULATOR'] = saved;
  });
  process.env['FLTMGR_SIMULATOR'] = h.endpoint;
  assert.equal((await manager.filters()).length, 1);
  assert.equal((await manager.filters({ simulator: true })).length, 1);
  delete process.env['FLTMGR_SIMULATOR'];
  if (process.platform !== 'win32') {
    await assert.rejects(manager.filters(), { code: 'ERR_SIMULATOR_NOT_CONFIGURED' });
    await assert.rejects(manager.filters({ simulator: false }), { code: 'ERR_BACKEND_UNAVAILABLE' });
    await assert.rejects(manager.ports({ simulator: false }), { code: 'ERR_BACKEND_UNAVAILABLE' });
  }
  await assert.rejects(manager.filters({ simulator: 'bogus' }), { code: 'ERR_INVALID_ENDPOINT' });
  await assert.rejects(manager.volumes({ simulator: '' }), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('no simulator at the endpoint: ERROR_FILE_NOT_FOUND with a hint that says so', async () => {
  const h = await startSimulator();
  const endpoint = h.endpoint;
  await h.close();
  await assert.rejects(
    manager.filters({ simulator: endpoint }),
    filterError(HR.ERROR_FILE_NOT_FOUND, 'FilterFindFirst', /is it running/),
  );
  await assert.rejects(
    manager.load('x', { simulator: endpoint }),
    filterError(HR.ERROR_FILE_NOT_FOUND, 'FilterLoad', /no simulator runs at the endpoint/),
  );
});

test('the file system table: one name per FLT_FILESYSTEM_TYPE number', () => {
  assert.equal(manager.fileSystemName(2), 'NTFS');
  assert.equal(manager.fileSystemName(22), 'EXFAT');
  assert.equal(manager.fileSystemName(28), 'REFS');
  assert.equal(manager.fileSystemName(999), 'UNKNOWN');
  assert.equal(manager.fileSystemType('refs'), 28);
  assert.equal(manager.fileSystemType('nope'), undefined);
});
