// The threading rule (native/src/blocking_calls.h): connect, send and close, the calls that can wait on the
// kernel side, run on the addon's own threads, never on libuv's pool; teardown during one of them neither
// hangs nor crashes. The clients run as processes with UV_THREADPOOL_SIZE=1, so one call held on libuv's pool
// would starve every fs call of that process (test/fixtures/blocking-calls-client.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FilterPort } from '../../lib';
import { FrameType } from '../../lib/simulator/wire';
import { startFakePeer } from '../helpers/fake-peer';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { HANG_GUARD_MS, TEST_TIMEOUT_MS, until } from '../helpers/timing';
import { tsWorker } from '../helpers/worker';

const root = path.join(__dirname, '..', '..');
const fixture = path.join(__dirname, '..', 'fixtures', 'blocking-calls-client.ts');

interface Child {
  process: ChildProcessWithoutNullStreams;
  lines: string[];
  stderr(): string;
  /** Resolves with [code, signal] once the child is gone and its output read. */
  closed: Promise<[number | null, string | null]>;
}

function startClient(endpoint: string, args: string[]): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
    cwd: root,
    // A connect that never answers stays pending for the whole test, not until the client's own deadline.
    env: {
      ...process.env,
      UV_THREADPOOL_SIZE: '1',
      FLTMGR_SIMULATOR: endpoint,
      FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS: '600000',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    const parts = stdout.split('\n');
    stdout = parts.pop() as string;
    lines.push(...parts);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined); // a child that already died: its exit code says why
  const closed = once(child, 'close') as Promise<[number | null, string | null]>;
  const killer = setTimeout(() => child.kill('SIGKILL'), 2 * HANG_GUARD_MS);
  void closed.then(() => clearTimeout(killer));
  return { process: child, lines, stderr: () => stderr, closed };
}

async function untilLine(child: Child, line: string): Promise<void> {
  await until(() => child.lines.includes(line) || child.process.exitCode !== null, {
    what: `the client to say '${line}'`,
  });
  assert.ok(
    child.lines.includes(line),
    `the client ended (${String(child.process.exitCode)}) without saying '${line}': ${child.lines.join(' | ')} ${child.stderr()}`,
  );
}

test(
  "a pending connect does not hold libuv's pool: fs calls complete while ConnectNotify never returns",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const peer = await startFakePeer({ handshake: 'never' });
    t.after(() => peer.close());
    const child = startClient(peer.endpoint, ['connect-pending', 'wait']);
    t.after(async () => {
      child.process.kill('SIGKILL');
      await child.closed;
    });
    await untilLine(child, 'connecting');
    await until(() => peer.connects === 1, { what: 'the CONNECT frame' });
    child.process.stdin.write('go\n');
    await untilLine(child, 'read');
    assert.deepEqual(child.lines, ['connecting', 'read']);
  },
);

test('process.exit() during a connect that never returns exits cleanly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const peer = await startFakePeer({ handshake: 'never' });
  t.after(() => peer.close());
  const child = startClient(peer.endpoint, ['connect-pending', 'exit']);
  await untilLine(child, 'connecting');
  await until(() => peer.connects === 1, { what: 'the CONNECT frame' });
  child.process.stdin.write('go\n');
  const [code, signal] = await child.closed;
  assert.equal(signal, null, `the client died of ${String(signal)}: ${child.stderr()}`);
  assert.equal(code, 0, child.stderr());
  assert.deepEqual(child.lines, ['connecting', 'read']);
});

test('worker.terminate() during a connect that never returns settles', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const peer = await startFakePeer({ handshake: 'never' });
  t.after(() => peer.close());
  // The native client reads the process environment, not the worker's copy.
  const saved = process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'];
  process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'] = '600000';
  t.after(() => {
    if (saved === undefined) delete process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'];
    else process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'] = saved;
  });
  const worker = tsWorker(fixture, {
    workerData: ['connect-pending', 'wait'],
    env: { ...process.env, FLTMGR_SIMULATOR: peer.endpoint },
  });
  t.after(() => worker.terminate());
  const [said] = (await once(worker, 'message', { signal: AbortSignal.timeout(HANG_GUARD_MS) })) as [string];
  assert.equal(said, 'connecting');
  await until(() => peer.connects === 1, { what: 'the CONNECT frame' });
  const exited = once(worker, 'exit');
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('worker.terminate() did not settle (hang)')), HANG_GUARD_MS);
  });
  try {
    await Promise.race([worker.terminate(), hang]);
    await Promise.race([exited, hang]);
  } finally {
    clearTimeout(timer);
  }
});

test(
  "connect, send and close settle while libuv's only thread is blocked; close rejects a send the peer never answers",
  { timeout: TEST_TIMEOUT_MS, skip: process.platform === 'win32' && 'no FIFOs on Windows' },
  async (t) => {
    const peer = await startFakePeer();
    t.after(() => peer.close());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-pool-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fifo = path.join(dir, 'fifo');
    const made = spawnSync('mkfifo', [fifo]);
    assert.equal(made.status, 0, `mkfifo: ${String(made.stderr)}`);
    const child = startClient(peer.endpoint, ['pool-blocked', 'wait', fifo]);
    t.after(async () => {
      child.process.kill('SIGKILL');
      await child.closed;
    });
    await untilLine(child, 'sending');
    await until(() => peer.frames.some((f) => f.type === FrameType.SEND), { what: 'the SEND frame' });
    child.process.stdin.write('go\n');
    await untilLine(child, 'done');
    assert.deepEqual(child.lines, ['sending', 'closed', 'done']);
    const [code] = await child.closed;
    assert.equal(code, 0, child.stderr());
  },
);

test(
  'a port dropped without close() is closed once collected: its send threads joined, the kernel side sees the disconnect',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const sim = await startSimulator({ port: { message: (_client, input) => input } });
    t.after(() => sim.close());
    const connected = sim.nextClient();
    await (async () => {
      const port = await FilterPort.connect(PORT_NAME, { simulator: sim.endpoint });
      assert.equal((await port.send(Buffer.from('echo'), { outputSize: 4 })).toString(), 'echo'); // starts its send threads
    })();
    await connected;
    assert.equal(sim.port.connections.size, 1);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await until(
      () => {
        gc();
        return sim.port.connections.size === 0;
      },
      { what: 'the dropped port to be closed' },
    );
  },
);
