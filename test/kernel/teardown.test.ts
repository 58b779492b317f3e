// The kernel harness's bridge under teardown (native/src/kernel_bridge.h): the sample's C driver blocked in
// FltSendMessage (its agent holds the scan and never answers, reply timeout 10 minutes) while the process
// exits, the image is closed, or the worker thread that loaded it is terminated. None of them may hang or
// crash: the bridge fails the driver's waits (STATUS_PORT_DISCONNECTED) and joins its threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { kernelHarnessAvailable } from '../../driver-sample/target';
import { sampleImage } from '../../driver-sample/harness';
import { HANG_GUARD_MS, withTimeout } from '../helpers/timing';
import { tsWorker } from '../helpers/worker';

const root = path.join(__dirname, '..', '..');
const fixture = path.join(__dirname, '..', 'fixtures', 'kernel-teardown-child.ts');
const skip = kernelHarnessAvailable() ? false : 'the kernel harness runs on Linux only';

async function runChild(mode: string): Promise<{ code: number | null; signal: string | null; out: string }> {
  sampleImage(); // built (or found) here, so the child does not spend its time compiling
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, mode], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  clearTimeout(killer);
  return { code, signal, out };
}

test('process.exit() while the driver waits in FltSendMessage: the process exits 0', { skip }, async () => {
  const r = await runChild('exit');
  assert.match(r.out, /^blocked$/m, r.out);
  assert.deepEqual([r.code, r.signal], [0, null], `the child did not exit cleanly (SIGKILL = hang):\n${r.out}`);
});

test(
  'close() while the driver waits: FltSendMessage returns STATUS_PORT_DISCONNECTED, the open settles',
  { skip },
  async () => {
    const r = await runChild('close');
    assert.match(r.out, /^blocked$/m, r.out);
    // The driver's own failure policy (fail-open) then lets the open through as a scan error.
    assert.match(r.out, /^open scan-error c0000037 allowed=true$/m, r.out);
    assert.deepEqual([r.code, r.signal], [0, null], r.out);
  },
);

test("worker.terminate() while the worker's driver waits in FltSendMessage settles", { skip }, async () => {
  sampleImage();
  const worker = tsWorker(fixture, { workerData: { mode: 'wait' } });
  const messages: string[] = [];
  worker.on('message', (m: string) => messages.push(m));
  const errors: unknown[] = [];
  worker.on('error', (e) => errors.push(e));
  await withTimeout(
    new Promise<void>((resolve) => {
      const check = (): void => (messages.includes('blocked') ? resolve() : void setTimeout(check, 5));
      check();
    }),
    { what: `the worker's driver to block (messages: ${messages.join(' | ')})` },
  );
  const code = await withTimeout(worker.terminate(), { what: 'worker.terminate() to settle (hang)' });
  assert.equal(code, 1, 'terminated');
  assert.deepEqual(errors, []);
});
