// Management requests (docs/wire-protocol.md, "Management requests"): every op over the wire, spoken by the
// tests' own client (test/helpers/wire-client.ts), every error HRESULT of the contract, privilege, ordering,
// snapshots, an UNLOAD racing its filter's DisconnectNotify, 100 load/unload cycles, hostile MANAGE streams;
// and the same model through FilterManagerSimulator's in-process API.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  FilterManagerSimulator,
  ManagementError,
  NtStatusError,
  type InstanceSnapshot,
  type PeerIdentity,
  type SimulatedFilter,
} from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { OP, T, frameBytes, manage, managePayload, type ManageAnswer } from '../helpers/wire-client';
import { startBase, type SimulatorBase, type StartOptions } from '../helpers/sim';
import { stillPending, until, withTimeout } from '../helpers/timing';

const HR = {
  S_OK: 0,
  E_ACCESSDENIED: 0x80070005,
  E_INVALIDARG: 0x80070057,
  FILE_NOT_FOUND: 0x80070002,
  ALREADY_RUNNING: 0x80070420,
  PRIVILEGE_NOT_HELD: 0x80070522,
  DO_NOT_ATTACH: 0x801f000f,
  DO_NOT_DETACH: 0x801f0010,
  ALTITUDE_COLLISION: 0x801f0011,
  NAME_COLLISION: 0x801f0012,
  FILTER_NOT_FOUND: 0x801f0013,
  VOLUME_NOT_FOUND: 0x801f0014,
  INSTANCE_NOT_FOUND: 0x801f0015,
} as const;
const C = '\\Device\\HarddiskVolume1';
const D = '\\Device\\HarddiskVolume2';
const MUP = '\\Device\\Mup';

async function start(t: { after(fn: () => Promise<void>): void }, o: StartOptions = {}): Promise<SimulatorBase> {
  const h = await startBase(o);
  t.after(() => h.close());
  return h;
}

function failed(a: ManageAnswer, hresult: number, what: string): void {
  assert.deepEqual(a, { hresult, records: [] }, `${what}: 0x${a.hresult.toString(16)}`);
}

const names = (a: ManageAnswer, field: string): unknown[] => a.records.map((r) => r[field]);

test('VOLUMES: the default set, in order, with DOS names and FLT_FILESYSTEM_TYPE numbers', async (t) => {
  const h = await start(t);
  const a = await manage(h.endpoint, OP.VOLUMES);
  assert.deepEqual(a, {
    hresult: 0,
    records: [
      { flags: 0, frameId: 0, fileSystemType: 2, volumeName: C, dosName: 'C:' },
      { flags: 0, frameId: 0, fileSystemType: 28, volumeName: D, dosName: 'D:' },
      { flags: 0, frameId: 0, fileSystemType: 13, volumeName: MUP, dosName: '' },
    ],
  });
  assert.deepEqual(
    h.sim.volumes().map((v) => [v.name, v.dosName, v.fileSystemType, v.detached]),
    [
      [C, 'C:', 2, false],
      [D, 'D:', 28, false],
      [MUP, undefined, 13, false],
    ],
  );
});

test('SimulatorOptions.volumes replaces the set (a detached volume has flag 1); bad entries throw', async (t) => {
  const h = await start(t, {
    options: {
      volumes: [
        { name: '\\Device\\Stick', dosName: 'e:', fileSystemType: 22 },
        { name: '\\Device\\Gone', detached: true },
      ],
    },
  });
  assert.deepEqual((await manage(h.endpoint, OP.VOLUMES)).records, [
    { flags: 0, frameId: 0, fileSystemType: 22, volumeName: '\\Device\\Stick', dosName: 'E:' },
    { flags: 1, frameId: 0, fileSystemType: 2, volumeName: '\\Device\\Gone', dosName: '' },
  ]);
  for (const volumes of [
    [{ name: 'C:' }],
    [{ name: '\\Device\\X' }, { name: '\\device\\x' }],
    [{ name: '\\Device\\X', dosName: 'C' }],
    [{ name: '\\Device\\X', fileSystemType: -1 }],
  ]) {
    assert.throws(() => new FilterManagerSimulator({ volumes }), TypeError, JSON.stringify(volumes));
  }
});

test('FILTERS: highest altitude first (numeric), ties in registration order; names unique ignoring case', async (t) => {
  const h = await start(t);
  h.sim.registerFilter('Low', { altitude: '45000' });
  h.sim.registerFilter('Frac', { altitude: '370000.5' });
  h.sim.registerFilter('NoAltitude');
  h.sim.registerFilter('High', { altitude: '385100' });
  h.sim.registerFilter('FracTie', { altitude: '370000.50' });
  assert.throws(
    () => h.sim.registerFilter('HIGH', { altitude: '1' }),
    (e: unknown) => e instanceof NtStatusError && e.status === NtStatus.STATUS_OBJECT_NAME_COLLISION,
  );
  const a = await manage(h.endpoint, OP.FILTERS);
  assert.equal(a.hresult, 0);
  assert.deepEqual(names(a, 'name'), ['High', 'Frac', 'FracTie', 'Low', 'NoAltitude']);
  assert.deepEqual(names(a, 'altitude'), ['385100', '370000.5', '370000.50', '45000', '0']);
  assert.deepEqual(names(a, 'flags'), [1, 1, 1, 1, 1]);
  // Every filter got an instance on each of the 3 volumes, except FracTie: its altitude equals Frac's.
  assert.deepEqual(names(a, 'numberOfInstances'), [3, 3, 0, 3, 3]);
  assert.deepEqual(
    h.sim.filters().map((f) => f.name),
    names(a, 'name'),
  );
  assert.ok(h.logs.some((l) => /FracTie: no instance on .*altitude 370000\.50 on .* is taken by Frac/.test(l)));
});

test('INSTANCES: by volume, then highest altitude; filtered by filter and/or volume (any spelling)', async (t) => {
  const h = await start(t);
  h.sim.registerFilter('Low', { altitude: '45000' });
  const declined: string[] = [];
  h.sim.registerFilter('High', {
    altitude: '385100',
    // Local disks only, as the sample driver's InstanceSetup decides.
    instanceSetup: ({ volume, automatic }) => {
      assert.equal(automatic, true);
      if (volume.fileSystemType === 13) declined.push(volume.name);
      return volume.fileSystemType !== 13;
    },
  });
  assert.deepEqual(declined, [MUP]);
  const all = await manage(h.endpoint, OP.INSTANCES, ['', '']);
  assert.deepEqual(
    all.records.map((r) => [r['volumeName'], r['filterName'], r['instanceName'], r['altitude']]),
    [
      [C, 'High', 'High Instance', '385100'],
      [C, 'Low', 'Low Instance', '45000'],
      [D, 'High', 'High Instance', '385100'],
      [D, 'Low', 'Low Instance', '45000'],
      [MUP, 'Low', 'Low Instance', '45000'],
    ],
  );
  assert.deepEqual(all.records[0], {
    flags: 1,
    frameId: 0,
    volumeFileSystemType: 2,
    instanceName: 'High Instance',
    altitude: '385100',
    volumeName: C,
    filterName: 'High',
  });
  assert.deepEqual(names(await manage(h.endpoint, OP.INSTANCES, ['high', '']), 'volumeName'), [C, D]);
  for (const volume of [D, 'd:', 'D:\\', '\\device\\harddiskvolume2\\']) {
    assert.deepEqual(
      names(await manage(h.endpoint, OP.INSTANCES, ['', volume]), 'filterName'),
      ['High', 'Low'],
      volume,
    );
  }
  assert.deepEqual(names(await manage(h.endpoint, OP.INSTANCES, ['LOW', MUP]), 'instanceName'), ['Low Instance']);
  assert.deepEqual(await manage(h.endpoint, OP.INSTANCES, ['High', MUP]), { hresult: 0, records: [] });
  failed(await manage(h.endpoint, OP.INSTANCES, ['Nope', '']), HR.FILTER_NOT_FOUND, 'unknown filter');
  failed(await manage(h.endpoint, OP.INSTANCES, ['', 'Q:']), HR.VOLUME_NOT_FOUND, 'unknown volume');
  failed(await manage(h.endpoint, OP.INSTANCES, ['', '\\Device\\Nope']), HR.VOLUME_NOT_FOUND, 'unknown volume');
});

test('ATTACH: created names, default altitude, every error HRESULT; the setup callback sees the volume', async (t) => {
  const h = await start(t);
  h.sim.registerFilter('Other', { altitude: '300000' });
  const calls: string[] = [];
  h.sim.registerFilter('Flt', {
    altitude: '320000',
    instanceSetup: async ({ volume, altitude, automatic }) => {
      calls.push(`${volume.name}@${altitude}${automatic ? ' auto' : ''}`);
      await new Promise((r) => setImmediate(r));
      if (altitude === '310000') throw new NtStatusError(NtStatus.STATUS_FLT_DO_NOT_ATTACH);
      if (altitude === '310001') throw new NtStatusError(NtStatus.STATUS_ACCESS_DENIED);
      return altitude !== '310002';
    },
  });
  await until(() => h.sim.instances({ filter: 'Flt' }).length === 3, { what: 'the automatic instances' });
  const attach = (args: string[]): Promise<ManageAnswer> => manage(h.endpoint, OP.ATTACH, args);
  assert.deepEqual(await attach(['Flt', 'C:', '320000.1', '']), { hresult: 0, records: [{ name: 'Flt Instance 2' }] });
  assert.deepEqual(await attach(['flt', C, '320000.2', 'Mine']), { hresult: 0, records: [{ name: 'Mine' }] });
  assert.deepEqual(await attach(['Flt', C, '320000.3', '']), { hresult: 0, records: [{ name: 'Flt Instance 3' }] });
  assert.deepEqual(calls.slice(3), [`${C}@320000.1`, `${C}@320000.2`, `${C}@320000.3`]);
  failed(await attach(['Nope', C, '', '']), HR.FILTER_NOT_FOUND, 'filter');
  failed(await attach(['Flt', 'Z:', '', '']), HR.VOLUME_NOT_FOUND, 'volume');
  failed(await attach(['Flt', C, '1', 'MINE']), HR.NAME_COLLISION, 'instance name (ignoring case)');
  failed(await attach(['Flt', C, '', '']), HR.ALTITUDE_COLLISION, 'its own default altitude');
  failed(await attach(['Flt', C, '300000', '']), HR.ALTITUDE_COLLISION, "another filter's altitude");
  failed(await attach(['Flt', C, '310000', '']), HR.DO_NOT_ATTACH, 'setup: STATUS_FLT_DO_NOT_ATTACH');
  failed(await attach(['Flt', C, '310002', '']), HR.DO_NOT_ATTACH, 'setup: false');
  failed(await attach(['Flt', C, '310001', '']), HR.E_ACCESSDENIED, 'setup: another NTSTATUS');
  failed(await attach(['Flt', C, '12a', '']), HR.E_INVALIDARG, 'bad altitude');
  failed(await attach(['', C, '', '']), HR.E_INVALIDARG, 'no filter');
  failed(await attach(['Flt', '', '', '']), HR.E_INVALIDARG, 'no volume');
  // An instance name is per filter: another filter may use it on the same volume.
  assert.deepEqual(await attach(['Other', C, '300001', 'Mine']), { hresult: 0, records: [{ name: 'Mine' }] });
  assert.deepEqual(
    h.sim.instances({ volume: C }).map((i) => `${i.filter}/${i.name}@${i.altitude}`),
    [
      'Flt/Flt Instance 3@320000.3',
      'Flt/Mine@320000.2',
      'Flt/Flt Instance 2@320000.1',
      'Flt/Flt Instance@320000',
      'Other/Mine@300001',
      'Other/Other Instance@300000',
    ],
  );
  assert.equal(h.sim.filters().find((f) => f.name === 'Flt')?.instances, 6);
});

test('DETACH: by name or the highest; teardown runs before the answer; every error HRESULT', async (t) => {
  const h = await start(t);
  const torn: InstanceSnapshot[] = [];
  let teardownDone = false;
  h.sim.registerFilter('Flt', {
    altitude: '320000',
    instanceTeardown: async (i) => {
      torn.push(i);
      await new Promise((r) => setTimeout(r, 10));
      teardownDone = true;
    },
  });
  await h.sim.attach('Flt', 'C:', { altitude: '320001', instanceName: 'Second' });
  const detach = (args: string[]): Promise<ManageAnswer> => manage(h.endpoint, OP.DETACH, args);
  assert.deepEqual(await detach(['Flt', 'c:\\', 'second']), { hresult: 0, records: [] });
  assert.equal(teardownDone, true);
  assert.deepEqual(
    torn.map((i) => [i.name, i.filter, i.volume, i.altitude, i.fileSystemType]),
    [['Second', 'Flt', C, '320001', 2]],
  );
  failed(await detach(['Flt', C, 'Second']), HR.INSTANCE_NOT_FOUND, 'detached already');
  assert.deepEqual(await detach(['Flt', D, '']), { hresult: 0, records: [] });
  failed(await detach(['Flt', D, '']), HR.INSTANCE_NOT_FOUND, 'no instance left');
  failed(await detach(['Nope', D, '']), HR.FILTER_NOT_FOUND, 'filter');
  failed(await detach(['Flt', 'Y:', '']), HR.VOLUME_NOT_FOUND, 'volume');
  assert.deepEqual(
    h.sim.instances({ filter: 'Flt' }).map((i) => i.volume),
    [C, MUP],
  );
});

test('DOS_NAME and PORTS', async (t) => {
  const h = await start(t);
  assert.deepEqual(await manage(h.endpoint, OP.DOS_NAME, [C]), { hresult: 0, records: [{ name: 'C:' }] });
  assert.deepEqual(await manage(h.endpoint, OP.DOS_NAME, ['d:\\']), { hresult: 0, records: [{ name: 'D:' }] });
  failed(await manage(h.endpoint, OP.DOS_NAME, [MUP]), HR.FILE_NOT_FOUND, 'no DOS name');
  failed(await manage(h.endpoint, OP.DOS_NAME, ['\\Device\\Nope']), HR.VOLUME_NOT_FOUND, 'unknown');
  assert.equal(h.sim.dosName('\\device\\harddiskvolume1\\'), 'C:');
  const f = h.sim.registerFilter('Flt', { altitude: '1' });
  f.createCommunicationPort('\\B', { maxConnections: 2 });
  const a = f.createCommunicationPort('\\A', { maxConnections: 5 });
  const w = await h.connect({ portName: '\\A' });
  const answer = await manage(h.endpoint, OP.PORTS);
  assert.deepEqual(answer.records, [
    { maxConnections: 2, connections: 0, portName: '\\B', filterName: 'Flt' },
    { maxConnections: 5, connections: 1, portName: '\\A', filterName: 'Flt' },
  ]);
  a.close();
  assert.deepEqual(names(await manage(h.endpoint, OP.PORTS), 'portName'), ['\\B']);
  await w.close();
});

test('privilege: non-administrators get ERROR_PRIVILEGE_NOT_HELD for LOAD/UNLOAD, E_ACCESSDENIED otherwise', async (t) => {
  let who: PeerIdentity = { uid: 4242, gid: 4242, via: 'unix' };
  const h = await start(t, { options: { admins: { uids: [7] }, peerCredentials: () => who } });
  h.sim.registerFilter('Flt', { altitude: '1' });
  h.sim.addLoadable('Flt', (sim) => sim.registerFilter('Flt', { altitude: '1' }));
  const requests: [number, string[]][] = [
    [OP.FILTERS, []],
    [OP.INSTANCES, ['', '']],
    [OP.VOLUMES, []],
    [OP.LOAD, ['Flt']],
    [OP.UNLOAD, ['Flt']],
    [OP.ATTACH, ['Flt', C, '2', '']],
    [OP.DETACH, ['Flt', C, '']],
    [OP.DOS_NAME, [C]],
    [OP.PORTS, []],
  ];
  for (const [op, args] of requests) {
    const expected = op === OP.LOAD || op === OP.UNLOAD ? HR.PRIVILEGE_NOT_HELD : HR.E_ACCESSDENIED;
    failed(await manage(h.endpoint, op, args), expected, `op ${op}`);
  }
  assert.equal(h.sim.filters().length, 1, 'nothing was unloaded');
  assert.equal(h.sim.instances().length, 3, 'nothing was attached or detached');
  who = { uid: 7, via: 'unix' };
  assert.equal((await manage(h.endpoint, OP.FILTERS)).hresult, 0);
  assert.equal((await manage(h.endpoint, OP.UNLOAD, ['Flt'])).hresult, 0);
  assert.equal((await manage(h.endpoint, OP.LOAD, ['Flt'])).hresult, 0);
});

test('verbose: one log line per request, with the caller and the answer', async (t) => {
  const h = await start(t, { options: { verbose: true } });
  failed(await manage(h.endpoint, OP.DOS_NAME, [MUP]), HR.FILE_NOT_FOUND, 'no DOS name');
  assert.ok(
    h.logs.some((l) => new RegExp(`^manage: op 8 \\[\\\\Device\\\\Mup\\], pid \\d+: 0x80070002$`).test(l)),
    h.logs.join('\n'),
  );
});

test('TCP: the secret is checked first (even an unknown op); with it, requests are served', async (t) => {
  const h = await start(t, { listen: { tcp: {} } });
  assert.match(h.endpoint, /^tcp:/);
  failed(await manage(h.endpoint, OP.FILTERS, [], { secret: 'wrong' }), HR.E_ACCESSDENIED, 'wrong secret');
  failed(await manage(h.endpoint, 99, [], { secret: '' }), HR.E_ACCESSDENIED, 'unknown op, no secret');
  failed(await manage(h.endpoint, 99, ['x']), HR.E_INVALIDARG, 'unknown op');
  assert.equal((await manage(h.endpoint, OP.VOLUMES)).records.length, 3);
});

test('LOAD / UNLOAD: every error HRESULT; a refusing unload keeps the filter; the name is free after', async (t) => {
  const h = await start(t);
  let refuse = true;
  let unloads = 0;
  const register = (sim: FilterManagerSimulator): SimulatedFilter => {
    const filter = sim.registerFilter('Mod', {
      altitude: '2',
      unload: async () => {
        unloads++;
        if (refuse) throw new NtStatusError(NtStatus.STATUS_FLT_DO_NOT_DETACH);
        await filter.unload();
      },
    });
    return filter;
  };
  h.sim.addLoadable('Mod', register);
  assert.throws(() => h.sim.addLoadable('MOD', register), TypeError);
  failed(await manage(h.endpoint, OP.LOAD, ['Nothing']), HR.FILE_NOT_FOUND, 'not loadable');
  failed(await manage(h.endpoint, OP.LOAD, ['']), HR.E_INVALIDARG, 'no name');
  failed(await manage(h.endpoint, OP.UNLOAD, ['Mod']), HR.FILTER_NOT_FOUND, 'not loaded');
  assert.deepEqual(await manage(h.endpoint, OP.LOAD, ['mod']), { hresult: 0, records: [] });
  failed(await manage(h.endpoint, OP.LOAD, ['Mod']), HR.ALREADY_RUNNING, 'loaded');
  failed(await manage(h.endpoint, OP.UNLOAD, ['Mod']), HR.DO_NOT_DETACH, 'refused');
  assert.deepEqual(
    h.sim.filters().map((f) => f.name),
    ['Mod'],
  );
  refuse = false;
  assert.deepEqual(await manage(h.endpoint, OP.UNLOAD, ['MOD']), { hresult: 0, records: [] });
  assert.equal(unloads, 2);
  assert.deepEqual(h.sim.filters(), []);
  assert.deepEqual(h.sim.instances(), []);
  // A filter registered directly unloads by name too (FltUnregisterFilter); loading it again needs a loadable.
  h.sim.registerFilter('Direct', { altitude: '3' });
  assert.equal((await manage(h.endpoint, OP.UNLOAD, ['direct'])).hresult, 0);
  failed(await manage(h.endpoint, OP.LOAD, ['Direct']), HR.FILE_NOT_FOUND, 'no loadable');
  h.sim.registerFilter('DIRECT', { altitude: '3' }); // the name is free again
  // In process: the same operations, ManagementError with the HRESULT.
  await assert.rejects(
    h.sim.load('Nothing'),
    (e: unknown) => e instanceof ManagementError && e.hresult === HR.FILE_NOT_FOUND,
  );
  await assert.rejects(
    h.sim.unloadFilter('Nothing'),
    (e: unknown) => e instanceof ManagementError && e.hresult === HR.FILTER_NOT_FOUND && /0x801F0013/.test(e.message),
  );
  assert.equal((await h.sim.load('Mod')).name, 'Mod');
});

test('a loadable that fails: its NTSTATUS as HRESULT; a load in progress counts as loaded', async (t) => {
  const h = await start(t);
  h.sim.addLoadable('Bad', () => {
    throw new NtStatusError(NtStatus.STATUS_INSUFFICIENT_RESOURCES);
  });
  failed(await manage(h.endpoint, OP.LOAD, ['Bad']), 0x800705aa, 'STATUS_INSUFFICIENT_RESOURCES');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  h.sim.addLoadable('Slow', async (sim) => {
    await gate;
    return sim.registerFilter('Slow', { altitude: '9' });
  });
  const first = manage(h.endpoint, OP.LOAD, ['Slow']);
  await until(() => h.sim.streamStats().some((s) => s.state === 'managing'), { what: 'the LOAD to be served' });
  failed(await manage(h.endpoint, OP.LOAD, ['Slow']), HR.ALREADY_RUNNING, 'loading');
  // Snapshot: a FILTERS served meanwhile does not see it; the one after the load does.
  assert.deepEqual((await manage(h.endpoint, OP.FILTERS)).records, []);
  release();
  assert.equal((await first).hresult, 0);
  assert.deepEqual(names(await manage(h.endpoint, OP.FILTERS), 'name'), ['Slow']);
});

test('UNLOAD is answered only after DisconnectNotify ran; the filter is listed until then', async (t) => {
  const h = await start(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let disconnectDone = false;
  const register = (sim: FilterManagerSimulator): SimulatedFilter => {
    const f = sim.registerFilter('Busy', { altitude: '5' });
    f.createCommunicationPort('\\BusyPort', {
      maxConnections: 1,
      disconnect: async () => {
        await gate;
        disconnectDone = true;
      },
    });
    return f;
  };
  register(h.sim);
  h.sim.addLoadable('Busy', register);
  const w = await h.connect({ portName: '\\BusyPort' });
  const unloading = manage(h.endpoint, OP.UNLOAD, ['Busy']);
  assert.equal(await withTimeout(w.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
  assert.equal(await stillPending(unloading), true, 'UNLOAD answered before DisconnectNotify returned');
  assert.deepEqual(names(await manage(h.endpoint, OP.FILTERS), 'name'), ['Busy']);
  failed(await manage(h.endpoint, OP.LOAD, ['Busy']), HR.ALREADY_RUNNING, 'still unloading');
  const second = manage(h.endpoint, OP.UNLOAD, ['BUSY']); // joins the unload in progress
  await until(() => h.sim.streamStats().filter((s) => s.state === 'managing').length === 2, {
    what: 'the second UNLOAD to be served',
  });
  assert.equal(await stillPending(second), true);
  release();
  assert.deepEqual(await unloading, { hresult: 0, records: [] });
  assert.equal(disconnectDone, true);
  assert.deepEqual(await second, { hresult: 0, records: [] });
  assert.deepEqual((await manage(h.endpoint, OP.FILTERS)).records, []);
  assert.deepEqual((await manage(h.endpoint, OP.PORTS)).records, []);
});

test('100 LOAD / connect / UNLOAD cycles over the wire', async (t) => {
  const h = await start(t);
  let disconnects = 0;
  h.sim.addLoadable('Cycle', (sim) => {
    const f = sim.registerFilter('Cycle', { altitude: '7' });
    f.createCommunicationPort('\\CyclePort', { maxConnections: 1, disconnect: () => void disconnects++ });
    return f;
  });
  for (let i = 0; i < 100; i++) {
    assert.equal((await manage(h.endpoint, OP.LOAD, ['Cycle'])).hresult, 0, `load ${i}`);
    const w = await h.connect({ portName: '\\CyclePort' });
    assert.equal((await manage(h.endpoint, OP.UNLOAD, ['Cycle'])).hresult, 0, `unload ${i}`);
    assert.equal(disconnects, i + 1);
    await withTimeout(w.closed, { what: 'the connection to end' });
  }
  assert.deepEqual(h.sim.filters(), []);
  await until(() => h.sim.streamStats().length === 0, { what: 'every stream to be gone (no leak)' });
});

// ---- hostile MANAGE streams ------------------------------------------------------------------------------

interface Hostile {
  name: string;
  bytes: () => Buffer;
  reason: RegExp;
}
const hostile: Hostile[] = [
  {
    name: 'a known op with the wrong string count',
    bytes: () => frameBytes(T.MANAGE, 0, managePayload({ op: OP.LOAD, args: [], secret: '' })),
    reason: /op 4 takes 1 strings, got 0/,
  },
  {
    name: 'an odd string length',
    bytes: () => {
      const p = managePayload({ op: OP.DOS_NAME, args: ['C:'], secret: '' });
      p.writeUInt16LE(3, 10);
      return frameBytes(T.MANAGE, 0, p);
    },
    reason: /odd UTF-16 string length/,
  },
  {
    name: 'trailing bytes',
    bytes: () =>
      frameBytes(
        T.MANAGE,
        0,
        Buffer.concat([managePayload({ op: OP.FILTERS, args: [], secret: '' }), Buffer.from([1])]),
      ),
    reason: /MANAGE: 1 unexpected trailing/,
  },
  {
    name: 'a truncated payload',
    bytes: () => frameBytes(T.MANAGE, 0, Buffer.alloc(9)),
    reason: /MANAGE: payload truncated/,
  },
  {
    name: 'a nonzero id',
    bytes: () => frameBytes(T.MANAGE, 3, managePayload({ op: OP.FILTERS, args: [], secret: '' })),
    reason: /MANAGE id must be 0/,
  },
  {
    name: 'MANAGE after CONNECT',
    bytes: () => frameBytes(T.MANAGE, 0, managePayload({ op: OP.FILTERS, args: [], secret: '' })),
    reason: /unexpected frame type 0x6/,
  },
];

for (const c of hostile) {
  test(`hostile MANAGE: ${c.name} closes the stream without an answer`, async (t) => {
    const h = await start(t);
    const f = h.sim.registerFilter('Flt', { altitude: '1' });
    f.createCommunicationPort('\\P', { maxConnections: 4 });
    const w = c.name === 'MANAGE after CONNECT' ? await h.connect({ portName: '\\P' }) : await h.open();
    const event = h.nextEvent('protocol-error');
    w.writeRaw(c.bytes());
    const e = (await event) as { reason: string };
    assert.match(e.reason, c.reason);
    await withTimeout(w.closed, { what: 'the stream to close' });
    assert.deepEqual(
      w.unexpected.filter((fr) => fr.type === T.MANAGE_RESULT),
      [],
    );
    assert.equal((await manage(h.endpoint, OP.FILTERS)).records.length, 1, 'the simulator serves on');
  });
}

test('hostile MANAGE: a frame after MANAGE is a protocol error; the UNLOAD it asked for still completes', async (t) => {
  const h = await start(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const f = h.sim.registerFilter('Slow', { altitude: '1', unload: () => gate.then(() => f.unload()) });
  const w = await h.open();
  const event = h.nextEvent('protocol-error');
  const answer = w.manageRaw({ op: OP.UNLOAD, args: ['Slow'] });
  answer.catch(() => undefined);
  await until(() => h.sim.streamStats().some((s) => s.state === 'managing'), { what: 'the UNLOAD to be served' });
  w.writeRaw(frameBytes(T.GET, 1, Buffer.alloc(4)));
  assert.match(((await event) as { reason: string }).reason, /frame type 0x2 after MANAGE/);
  await withTimeout(w.closed, { what: 'the stream to close' });
  await assert.rejects(answer, /stream closed/);
  release();
  await until(() => h.sim.filters().length === 0, { what: 'the unload to finish' });
});

test('hostile MANAGE: trickled past the handshake deadline it is closed; within it, answered', async (t) => {
  const h = await start(t, { options: { limits: { handshakeTimeoutMs: 300 } } });
  const frame = frameBytes(T.MANAGE, 0, managePayload({ op: OP.VOLUMES, args: [], secret: '' }));
  const slow = await h.open();
  const event = h.nextEvent('protocol-error');
  let sent = 0;
  const timer = setInterval(() => {
    // All but the last byte, one every 40 ms: the frame can never complete before the deadline.
    if (sent < frame.length - 1 && slow.isOpen) slow.writeRaw(frame.subarray(sent, ++sent));
  }, 40);
  t.after(() => clearInterval(timer));
  assert.match(((await event) as { reason: string }).reason, /no complete CONNECT within 300 ms/);
  await withTimeout(slow.closed, { what: 'the trickling stream to close' });
  clearInterval(timer);
  // Byte by byte but in time: answered.
  const quick = await h.open();
  const result = quick.manageResult();
  for (let i = 0; i < frame.length; i++) quick.writeRaw(frame.subarray(i, i + 1));
  const payload = await result;
  assert.equal(payload.readUInt32LE(4), 3);
});
