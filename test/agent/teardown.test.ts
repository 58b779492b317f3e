// The agent and the process / worker around it: process.exit() while waiting, a worker terminated while its
// agent reconnects, and close() leaving nothing that keeps the process alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { FilterPort } from '../../lib';
import type { ClientPort } from '../../lib/simulator';
import { tsWorker } from '../helpers/worker';
import { HANG_GUARD_MS, nextEvent, until } from '../helpers/timing';
import { PORT_NAME, startAgentSim } from './harness';

const fixtures = path.join(__dirname, 'fixtures');

/** Runs fixtures/agent-child.ts; resolves with its exit and output. The only clock is the hang guard. */
function runChild(
  scenario: string,
  endpoint: string,
  onLine: (line: string) => void = () => undefined,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(fixtures, 'agent-child.ts'), scenario], {
    env: { ...process.env, FLTMGR_SIMULATOR: endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    const before = stdout.split('\n').length - 1;
    stdout += d.toString();
    for (const line of stdout.split('\n').slice(before, -1)) onLine(line);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test('process.exit() while the agent waits for the port: exits with that code, nothing crashes', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  const r = await runChild('exit-while-waiting', h.endpoint);
  assert.deepEqual([r.code, r.signal], [7, null], r.stdout + r.stderr);
  assert.match(r.stdout, /state waiting 3/);
  assert.equal(r.stderr, '');
});

test('close() while waiting leaves no timer or handle: the process ends by itself', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  const r = await runChild('close-while-waiting', h.endpoint);
  assert.deepEqual([r.code, r.signal], [0, null], r.stdout + r.stderr);
  assert.match(r.stdout, /state waiting 3\nstate closed\nclosed\n$/);
});

test('close() while a handler runs: the process ends by itself; the sender sees the disconnect', async (t) => {
  const h = await startAgentSim();
  t.after(() => h.close());
  let sent: Promise<{ status: number }> | undefined;
  const r = await runChild('close-while-handling', h.endpoint, (line) => {
    if (line === 'state connected') sent = h.filter!.sendMessage(h.client(), Buffer.from('x'), { replyLength: 1 });
  });
  assert.deepEqual([r.code, r.signal], [0, null], r.stdout + r.stderr);
  assert.match(r.stdout, /handling\n[^]*state closed\nclosed\n$/);
  assert.equal((await sent)?.status, 0xc0000037); // STATUS_PORT_DISCONNECTED
});

for (const mode of ['no port', 'the filter closes every connection'] as const) {
  test(`terminating a worker while its agent reconnects (${mode}) neither crashes nor leaves a connection`, async (t) => {
    const h = await startAgentSim({ loaded: mode !== 'no port' });
    t.after(() => h.close());
    const closeAtOnce = (client: ClientPort): void => void setImmediate(() => client.close());
    if (mode !== 'no port') h.sim.on('connect', closeAtOnce);
    const worker = tsWorker(path.join(fixtures, 'agent-worker.ts'), { workerData: { endpoint: h.endpoint } });
    const exited = nextEvent<[number]>(worker, 'exit', { what: 'the worker to exit' });
    const [message] = await nextEvent<[string]>(worker, 'message', { what: 'the worker agent to be reconnecting' });
    assert.equal(message, 'reconnecting');
    await worker.terminate();
    assert.deepEqual(await exited, [1]);
    await until(() => h.sim.streamStats().length === 0, { what: "the worker's connections to end" });
    if (mode !== 'no port') {
      // The simulator still serves this thread.
      h.sim.off('connect', closeAtOnce);
      const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
      await port.close();
    }
  });
}
