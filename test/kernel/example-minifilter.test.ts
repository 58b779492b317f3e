// examples/kernel-minifilter/lockfilter.c, a minifilter written from the documentation only, run in the kernel
// harness: opens of *.locked are denied (FLT_PREOP_COMPLETE with STATUS_ACCESS_DENIED) unless the opener's pid is
// on the allow list its port manages; GET_COUNT reports the denials; it unloads without a verifier violation and
// a reload starts from a fresh image (empty list, count 0).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FilterPort } from '../../lib';
import { packageRoot } from '../../lib/binding';
import { NtStatus } from '../../lib/status';
import { buildKernelImage } from '../../lib/simulator/kernel-build';
import { KernelDriver } from '../../lib/simulator/kernel-driver';
import type { PeerIdentity } from '../../lib/simulator';
import { kernelHarnessAvailable } from '../../driver-sample/target';
import { startBase, type SimulatorBase } from '../helpers/sim';
import { rejectsWith } from '../helpers/sample';
import { HR } from '../helpers/status';
import { until } from '../helpers/timing';

const PORT_NAME = '\\LockFilterPort';
const ALLOW_PID = 1;
const REVOKE_PID = 2;
const GET_COUNT = 3;
const FLT_PREOP_SUCCESS_NO_CALLBACK = 1;
const FLT_PREOP_COMPLETE = 4;
const VOLUME = '\\Device\\HarddiskVolume1';

function lockfilterImage(): string {
  const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
  return buildKernelImage({
    sources: [path.join(packageRoot(), 'examples', 'kernel-minifilter', 'lockfilter.c')],
    out: path.join(packageRoot(), 'build', 'kernel', sanitized ? 'lockfilter-asan.so' : 'lockfilter.so'),
  });
}

function command(code: number, processId = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(code, 0);
  b.writeUInt32LE(processId, 4);
  return b;
}

async function denials(port: FilterPort): Promise<number> {
  const out = await port.send(command(GET_COUNT), { outputSize: 4 });
  assert.equal(out.length, 4);
  return out.readUInt32LE(0);
}

interface Rig {
  base: SimulatorBase;
  driver: KernelDriver;
  logs: string[];
  load(): Promise<KernelDriver>;
  connect(): Promise<FilterPort>;
  open(file: string, processId: number): ReturnType<KernelDriver['openFile']>;
}

async function start(t: { after(fn: () => Promise<void>): void }, who?: () => PeerIdentity): Promise<Rig> {
  const file = lockfilterImage();
  const ports: FilterPort[] = [];
  let unloadError: Error | undefined;
  const base = await startBase(who === undefined ? {} : { options: { peerCredentials: who } }, async () => {
    await Promise.all(ports.map((p) => p.close().catch(() => undefined)));
    // A driver that leaks fails its test here (KernelVerifierError), after the simulator closed.
    if (!rig.driver.unloaded)
      await rig.driver.unload().catch((err: unknown) => {
        unloadError = err instanceof Error ? err : new Error(String(err));
      });
    await rig.driver.close();
  });
  t.after(async () => {
    await base.close();
    if (unloadError !== undefined) throw unloadError;
  });
  const logs: string[] = [];
  const rig: Rig = {
    base,
    driver: undefined as unknown as KernelDriver, // set below
    logs,
    async load() {
      rig.driver = await KernelDriver.load(base.sim, file, { name: 'lockfilter', log: (l) => logs.push(l) });
      return rig.driver;
    },
    async connect() {
      const port = await FilterPort.connect(PORT_NAME, { simulator: base.endpoint });
      ports.push(port);
      return port;
    },
    open: (name, processId) =>
      rig.driver.openFile({ path: `${VOLUME}${name}`, content: Buffer.from('secret'), processId }),
  };
  await rig.load();
  return rig;
}

describe('examples/kernel-minifilter/lockfilter.c in the kernel harness', { skip: !kernelHarnessAvailable() }, () => {
  test('denies *.locked unless the pid is allowed through the port; counts denials', async (t) => {
    const rig = await start(t);
    const port = await rig.connect();
    assert.equal(await denials(port), 0);

    const denied = await rig.open('\\vault\\plan.locked', 100);
    assert.equal(denied.status, NtStatus.STATUS_ACCESS_DENIED);
    assert.equal(denied.preStatus, FLT_PREOP_COMPLETE);
    assert.equal(denied.postCalled, false);
    assert.equal((await rig.open('\\vault\\PLAN.LOCKED', 100)).status, NtStatus.STATUS_ACCESS_DENIED, 'any case');
    const other = await rig.open('\\vault\\plan.txt', 100);
    assert.equal(other.status, NtStatus.STATUS_SUCCESS);
    assert.equal(other.preStatus, FLT_PREOP_SUCCESS_NO_CALLBACK);
    assert.equal((await rig.open('\\vault\\locked', 100)).status, NtStatus.STATUS_SUCCESS, 'a name, not an extension');
    assert.equal((await rig.open('\\vault\\a.locked.txt', 100)).status, NtStatus.STATUS_SUCCESS);
    assert.equal(await denials(port), 2);
    await until(() => rig.logs.includes('lockfilter: denied an open by process 100'), { what: 'the denial log line' });

    await port.send(command(ALLOW_PID, 100));
    assert.equal((await rig.open('\\vault\\plan.locked', 100)).status, NtStatus.STATUS_SUCCESS, 'allowed now');
    assert.equal((await rig.open('\\vault\\plan.locked', 200)).status, NtStatus.STATUS_ACCESS_DENIED, 'others not');
    assert.equal(await denials(port), 3);

    await port.send(command(REVOKE_PID, 100));
    assert.equal((await rig.open('\\vault\\plan.locked', 100)).status, NtStatus.STATUS_ACCESS_DENIED, 'revoked');
    await rejectsWith(port.send(command(REVOKE_PID, 100)), HR.ERROR_NOT_FOUND);
    await rejectsWith(port.send(command(99)), HR.ERROR_INVALID_PARAMETER);
    await rejectsWith(port.send(Buffer.from([1])), HR.ERROR_INVALID_PARAMETER);
    await rejectsWith(port.send(command(GET_COUNT), { outputSize: 2 }), HR.ERROR_INSUFFICIENT_BUFFER);
    assert.equal(await denials(port), 4);
  });

  test('the allow list is bounded (16 pids)', async (t) => {
    const rig = await start(t);
    const port = await rig.connect();
    for (let pid = 1000; pid < 1016; pid++) await port.send(command(ALLOW_PID, pid));
    await port.send(command(ALLOW_PID, 1000)); // already there: still a success
    await rejectsWith(port.send(command(ALLOW_PID, 2000)), HR.ERROR_NO_SYSTEM_RESOURCES);
    assert.equal((await rig.open('\\x.locked', 1015)).status, NtStatus.STATUS_SUCCESS);
    assert.equal((await rig.open('\\x.locked', 2000)).status, NtStatus.STATUS_ACCESS_DENIED);
  });

  test('only administrators may connect (FltBuildDefaultSecurityDescriptor)', async (t) => {
    let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
    const rig = await start(t, () => who);
    await rejectsWith(rig.connect(), HR.ERROR_ACCESS_DENIED);
    who = { uid: 0, gid: 0, via: 'unix' };
    assert.equal(await denials(await rig.connect()), 0);
  });

  test('unloads with a client connected and no violation; a reload starts from a fresh image', async (t) => {
    const rig = await start(t);
    const port = await rig.connect();
    await port.send(command(ALLOW_PID, 100));
    assert.equal((await rig.open('\\x.locked', 200)).status, NtStatus.STATUS_ACCESS_DENIED);
    await rig.driver.unload(); // rejects with KernelVerifierError on any leak or misuse
    assert.deepEqual(rig.driver.violations, []);
    assert.equal((await rig.open('\\x.locked', 200)).status, NtStatus.STATUS_SUCCESS, 'unloaded: not filtered');
    await rig.driver.close();
    await until(() => rig.base.clients.every((c) => !c.connected), { what: 'the connection to end' });

    await rig.load();
    const again = await rig.connect();
    assert.equal(await denials(again), 0, 'a fresh image: the count starts over');
    assert.equal((await rig.open('\\x.locked', 100)).status, NtStatus.STATUS_ACCESS_DENIED, 'the list starts empty');
    assert.equal(await denials(again), 1);
  });
});
