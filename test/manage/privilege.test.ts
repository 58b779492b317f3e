// Who may manage filters: the simulator's administrators (its admin rule, as for ports). Anyone else gets what
// Windows gives a process that is not elevated: ERROR_PRIVILEGE_NOT_HELD for FilterLoad/FilterUnload (no
// SeLoadDriverPrivilege), E_ACCESSDENIED for the rest; each FilterError says "not elevated". Identities are
// injected through the simulator's `peerCredentials` option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError } from '../../lib';
import * as manager from '../../lib/manager';
import type { PeerIdentity } from '../../lib/simulator';
import { FILTER_NAME, PORT_NAME, startSimulator } from '../helpers/sim';
import { HR } from '../helpers/status';

test('a caller who is not an administrator: every call refused, with the "not elevated" hint', async (t) => {
  let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
  const h = await startSimulator({ options: { peerCredentials: () => who } });
  t.after(() => h.close());
  h.sim.addLoadable('other', (sim) => sim.registerFilter('other', { altitude: '100' }));
  const s = { simulator: h.endpoint };
  const C = '\\Device\\HarddiskVolume1';
  const calls: Array<[string, () => Promise<unknown>, number]> = [
    ['FilterFindFirst', () => manager.filters(s), HR.ERROR_ACCESS_DENIED],
    ['FilterVolumeFindFirst', () => manager.volumes(s), HR.ERROR_ACCESS_DENIED],
    ['FilterVolumeFindFirst', () => manager.instances(s), HR.ERROR_ACCESS_DENIED],
    ['FilterInstanceFindFirst', () => manager.instances({ ...s, filter: FILTER_NAME }), HR.ERROR_ACCESS_DENIED],
    ['FilterVolumeInstanceFindFirst', () => manager.instances({ ...s, volume: C }), HR.ERROR_ACCESS_DENIED],
    ['FilterAttach', () => manager.attach(FILTER_NAME, C, s), HR.ERROR_ACCESS_DENIED],
    ['FilterAttachAtAltitude', () => manager.attach(FILTER_NAME, C, { ...s, altitude: '1' }), HR.ERROR_ACCESS_DENIED],
    ['FilterDetach', () => manager.detach(FILTER_NAME, C, s), HR.ERROR_ACCESS_DENIED],
    ['FilterGetDosName', () => manager.dosName(C, s), HR.ERROR_ACCESS_DENIED],
    ['SimulatorListPorts', () => manager.ports(s), HR.ERROR_ACCESS_DENIED],
    ['FilterLoad', () => manager.load('other', s), HR.ERROR_PRIVILEGE_NOT_HELD],
    ['FilterUnload', () => manager.unload(FILTER_NAME, s), HR.ERROR_PRIVILEGE_NOT_HELD],
  ];
  for (const [syscall, call, hresult] of calls) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof FilterError, String(error));
      assert.equal(error.hresult, hresult, `${syscall}: ${error.message}`);
      assert.equal(error.syscall, syscall);
      assert.match(error.message, /not elevated/);
      return true;
    });
  }
  // Nothing changed: an administrator sees the filter loaded and attached as before.
  who = { uid: 0, gid: 0, via: 'unix' };
  assert.deepEqual(
    (await manager.filters(s)).map((f) => f.name),
    [FILTER_NAME],
  );
  assert.equal((await manager.instances({ ...s, filter: FILTER_NAME })).length, 3);
  assert.deepEqual(
    (await manager.ports(s)).map((p) => p.name),
    [PORT_NAME],
  );
});
