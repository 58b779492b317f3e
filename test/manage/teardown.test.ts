// A management call whose peer never answers (test/helpers/fake-peer.ts): it ends with the connect-timeout
// bound instead of hanging, it does not hold libuv's pool, and process.exit() / worker.terminate() while it
// waits neither hang nor crash (the rule of native/src/blocking_calls.h, as test/port/threading.test.ts checks
// for connect).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { FrameType } from '../../lib/simulator/wire';
import { startFakePeer } from '../helpers/fake-peer';
import { HANG_GUARD_MS, TEST_TIMEOUT_MS, until } from '../helpers/timing';
import { tsWorker } from '../helpers/worker';

const root = path.join(__dirname, '..', '..');
const fixture = path.join(__dirname, '..', 'fixtures', 'manage-client.ts');

interface Child {
  lines: string[];
  stderr(): string;
  write(text: string): void;
  closed: Promise<[number | null, string | null]>;
  kill(): void;
}

function startClient(endpoint: string, args: string[], timeoutMs: string): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
    cwd: root,
    env: {
      ...process.env,
      UV_THREADPOOL_SIZE: '1',
      FLTMGR_SIMULATOR: endpoint,
      FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS: timeoutMs,
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
  child.stdin.on('error', () => undefined);
  const closed = once(child, 'close') as Promise<[number | null, string | null]>;
  const killer = setTimeout(() => child.kill('SIGKILL'), 2 * HANG_GUARD_MS);
  void closed.then(() => clearTimeout(killer));
  return {
    lines,
    stderr: () => stderr,
    write: (text) => child.stdin.write(text),
    closed,
    kill: () => child.kill('SIGKILL'),
  };
}

async function untilLine(child: Child, line: string): Promise<void> {
  await until(() => child.lines.includes(line), { what: `the client to say '${line}' (${child.stderr()})` });
}

test(
  'a peer that never answers: the call ends with the connect-timeout bound, as ERROR_TIMEOUT',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const peer = await startFakePeer();
    t.after(() => peer.close());
    const child = startClient(peer.endpoint, ['timeout', 'exit'], '200');
    t.after(() => child.kill());
    const [code] = await child.closed;
    assert.equal(code, 0, child.stderr());
    assert.deepEqual(child.lines, ['rejected ERROR_TIMEOUT FilterFindFirst']);
    assert.ok(
      peer.frames.some((f) => f.type === FrameType.MANAGE),
      'the request reached the peer',
    );
  },
);

test(
  "a call that waits does not hold libuv's pool; process.exit() then exits cleanly",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const peer = await startFakePeer();
    t.after(() => peer.close());
    const child = startClient(peer.endpoint, ['pending', 'exit'], '600000');
    t.after(() => child.kill());
    await untilLine(child, 'calling');
    await until(() => peer.frames.some((f) => f.type === FrameType.MANAGE), { what: 'the MANAGE frame' });
    child.write('go\n');
    const [code, signal] = await child.closed;
    assert.equal(signal, null, `the client died of ${String(signal)}: ${child.stderr()}`);
    assert.equal(code, 0, child.stderr());
    assert.deepEqual(child.lines, ['calling', 'read']);
  },
);

test('worker.terminate() while a management call waits settles', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const peer = await startFakePeer();
  t.after(() => peer.close());
  // The native client reads the process environment, not the worker's copy.
  const saved = process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'];
  process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'] = '600000';
  t.after(() => {
    if (saved === undefined) delete process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'];
    else process.env['FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS'] = saved;
  });
  const worker = tsWorker(fixture, {
    workerData: ['pending', 'wait'],
    env: { ...process.env, FLTMGR_SIMULATOR: peer.endpoint },
  });
  t.after(() => worker.terminate());
  const [said] = (await once(worker, 'message', { signal: AbortSignal.timeout(HANG_GUARD_MS) })) as [string];
  assert.equal(said, 'calling');
  await until(() => peer.frames.some((f) => f.type === FrameType.MANAGE), { what: 'the MANAGE frame' });
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
