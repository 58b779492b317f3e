// The kernel harness's verifier (issue 7, §2): one deliberately buggy minifilter per check
// (test/fixtures/kernel/*.c, each the clean skeleton.h plus one bug), built with buildKernelImage, loaded into a
// simulator and driven until the bug happens; unload() must reject with a KernelVerifierError that names the
// routine and the reason. clean.c uses the same routines correctly and must unload without a violation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FilterPort } from '../../lib';
import { packageRoot } from '../../lib/binding';
import { buildKernelImage } from '../../lib/simulator/kernel-build';
import { KernelDriver, KernelVerifierError } from '../../lib/simulator/kernel-driver';
import { kernelHarnessAvailable } from '../../driver-sample/target';
import { startBase, type SimulatorBase } from '../helpers/sim';
import { until } from '../helpers/timing';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'kernel');
const PORT_NAME = '\\KvFixturePort';
const OPENER_PID = 4321;
const FILE = '\\Device\\HarddiskVolume1\\docs\\report.txt';

interface Rig {
  base: SimulatorBase;
  driver: KernelDriver;
  logs: string[];
  connect(): Promise<FilterPort>;
  open(): ReturnType<KernelDriver['openFile']>;
}

function image(fixture: string): string {
  const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
  return buildKernelImage({
    sources: [path.join(FIXTURES, `${fixture}.c`)],
    out: path.join(packageRoot(), 'build', 'kernel', 'fixtures', `${fixture}${sanitized ? '-asan' : ''}.so`),
  });
}

async function load(t: { after(fn: () => Promise<void>): void }, fixture: string): Promise<Rig> {
  const file = image(fixture);
  const logs: string[] = [];
  const ports: FilterPort[] = [];
  const loadedDriver: { driver?: KernelDriver } = {};
  const base = await startBase({}, async () => {
    await Promise.all(ports.map((p) => p.close().catch(() => undefined)));
    await loadedDriver.driver?.close(); // unload() is each test's: it is what the test asserts
  });
  t.after(() => base.close());
  const loaded = await KernelDriver.load(base.sim, file, { name: `kv-${fixture}`, log: (line) => logs.push(line) });
  loadedDriver.driver = loaded;
  return {
    base,
    driver: loaded,
    logs,
    async connect() {
      const port = await FilterPort.connect(PORT_NAME, { simulator: base.endpoint });
      ports.push(port);
      return port;
    },
    open: () => loaded.openFile({ path: FILE, content: Buffer.from('hello'), processId: OPENER_PID }),
  };
}

/**
 * `p` (an unload) rejects with a KernelVerifierError whose violations are exactly `expected`, in order, each
 * "routine: reason" matched by its pattern: the bug is reported, by the right routine, and nothing else is.
 */
async function rejectsWithViolations(p: Promise<void>, expected: readonly RegExp[]): Promise<void> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof KernelVerifierError, `expected a KernelVerifierError, got ${String(error)}`);
  const got = error.violations;
  assert.equal(got.length, expected.length, `violations:\n  ${got.join('\n  ')}`);
  expected.forEach((re, i) => assert.match(got[i] ?? '', re, `violation ${i} of:\n  ${got.join('\n  ')}`));
}

describe('kernel harness verifier: buggy minifilters', { skip: !kernelHarnessAvailable() }, () => {
  test('clean: the same routines used correctly unload without a violation', async (t) => {
    const rig = await load(t, 'clean');
    const port = await rig.connect();
    const seen: number[] = [];
    void port
      .serve((message) => {
        seen.push(message.data.readUInt32LE(0));
        return Buffer.alloc(4);
      })
      .catch(() => undefined);
    await rig.base.untilReceiving();
    const r = await rig.open();
    assert.equal(r.status, 0);
    assert.equal(r.sends, 1);
    assert.equal(r.sendStatus, 0, 'FltSendMessage got its reply');
    assert.deepEqual(seen, [OPENER_PID], 'FltGetRequestorProcessId is the opener');
    await port.send(Buffer.from([7, 0, 0, 0]));
    await port.close();
    await until(() => rig.base.clients.every((c) => !c.connected), { what: 'the connection to end' });
    await rig.driver.unload();
    assert.deepEqual(rig.driver.violations, []);
    assert.ok(!rig.logs.some((l) => l.startsWith('VERIFIER')), rig.logs.join('\n'));
  });

  test('clean: unload with a client still connected ends it through DisconnectNotify, no violation', async (t) => {
    const rig = await load(t, 'clean');
    await rig.connect();
    await rig.driver.unload();
    assert.deepEqual(rig.driver.violations, []);
  });

  test('pool leaked at unload is reported by tag', async (t) => {
    const rig = await load(t, 'pool-leak');
    await rejectsWithViolations(rig.driver.unload(), [
      /^DriverUnload: leaked pool tag 'KvLk': 1 allocation, 48 bytes \(from ExAllocatePool2\)$/,
    ]);
  });

  test('double free', async (t) => {
    const rig = await load(t, 'double-free');
    await rejectsWithViolations(rig.driver.unload(), [/^ExFreePoolWithTag: double free of .* \(already freed\)$/]);
  });

  test('wrong tag on free (the block is not freed, so it also leaks)', async (t) => {
    const rig = await load(t, 'wrong-tag');
    await rejectsWithViolations(rig.driver.unload(), [
      /^ExFreePoolWithTag: 0x[0-9a-f]+ was allocated with tag 'KvBf' but freed with tag 'KvXx'$/,
      /^DriverUnload: leaked pool tag 'KvBf': 1 allocation, 32 bytes \(from ExAllocatePool2\)$/,
    ]);
  });

  test('a context reference not released (FltGetInstanceContext without FltReleaseContext)', async (t) => {
    const rig = await load(t, 'context-leak');
    assert.equal((await rig.open()).status, 0);
    await rejectsWithViolations(rig.driver.unload(), [
      /^DriverUnload: a context \(type 2, tag KvCx\) still has 1 reference\(s\): FltReleaseContext not called$/,
      /^DriverUnload: leaked pool tag 'KvCx': 1 allocation, \d+ bytes \(from FltAllocateContext\)$/,
    ]);
  });

  test('file name information not released', async (t) => {
    const rig = await load(t, 'name-leak');
    assert.equal((await rig.open()).status, 0);
    await until(() => rig.logs.includes('kv: opened report.txt'), { what: "the driver's DbgPrintEx line" });
    await rejectsWithViolations(rig.driver.unload(), [
      /^DriverUnload: file name information for \\Device\\HarddiskVolume1\\docs\\report\.txt still has 1 reference\(s\): FltReleaseFileNameInformation not called$/,
    ]);
  });

  test('FltCloseClientPort not called in DisconnectNotify', async (t) => {
    const rig = await load(t, 'client-port-not-closed');
    const port = await rig.connect();
    await port.close();
    await until(() => rig.driver.violations.length > 0, { what: 'DisconnectNotify to return' });
    await rejectsWithViolations(rig.driver.unload(), [
      /^DisconnectNotify: returned without calling FltCloseClientPort for connection \d+$/,
    ]);
  });

  test('a push lock released that was not held', async (t) => {
    const rig = await load(t, 'push-lock-not-held');
    const port = await rig.connect();
    await port.send(Buffer.from('x'));
    // Reported while the driver runs, not only at unload.
    await until(() => rig.driver.violations.length > 0, { what: 'the violation of MessageNotify' });
    assert.match(
      rig.driver.violations[0] ?? '',
      /^FltReleasePushLock: push lock 0x[0-9a-f]+ is not held by this thread$/,
    );
    await port.close();
    await rejectsWithViolations(rig.driver.unload(), [/^FltReleasePushLock: push lock .* is not held by this thread$/]);
  });

  test('FltSendMessage after FltUnregisterFilter returned', async (t) => {
    const rig = await load(t, 'send-after-unregister');
    await rejectsWithViolations(rig.driver.unload(), [
      /^FltSendMessage: called with a filter that is not registered \(after FltUnregisterFilter returned\?\)$/,
    ]);
  });

  test('a server port left open at FltUnregisterFilter', async (t) => {
    const rig = await load(t, 'server-port-open');
    await rejectsWithViolations(rig.driver.unload(), [
      /^FltUnregisterFilter: server port \\KvFixturePort is still open \(FltCloseCommunicationPort first/,
    ]);
  });

  test('SeCaptureSubjectContext without SeReleaseSubjectContext', async (t) => {
    const rig = await load(t, 'subject-context-leak');
    const port = await rig.connect();
    await port.close();
    await rejectsWithViolations(rig.driver.unload(), [
      /^DriverUnload: 1 subject context\(s\) captured by SeCaptureSubjectContext and never released \(SeReleaseSubjectContext\)$/,
    ]);
  });

  test('a rundown reference never released (the unload does not wait for it)', async (t) => {
    const rig = await load(t, 'rundown-leak');
    assert.equal((await rig.open()).status, 0);
    await rejectsWithViolations(rig.driver.unload(), [
      /^DriverUnload: EX_RUNDOWN_REF 0x[0-9a-f]+ still has 1 acquired reference\(s\)$/,
    ]);
  });

  test('FilterUnloadCallback returning success without FltUnregisterFilter', async (t) => {
    const rig = await load(t, 'unload-without-unregister');
    await rejectsWithViolations(rig.driver.unload(), [
      /^FilterUnloadCallback: returned success without calling FltUnregisterFilter$/,
    ]);
  });
});
