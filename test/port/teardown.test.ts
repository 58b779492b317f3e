import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { FilterError, FilterPort, type FilterMessage } from '../../lib';
import { NtStatus } from '../../lib/status';
import { register } from '../fixtures/echo-filter';
import { PORT_NAME, startBase, startSimulator, type SimulatorBase } from '../helpers/sim';
import { tsWorker } from '../helpers/worker';
import { HR } from '../helpers/status';
import { HANG_GUARD_MS, nextEvent, until } from '../helpers/timing';

const fixtures = path.join(__dirname, '..', 'fixtures');

/** A simulator hosting the echo filter fixture, in-process. */
async function echoSimulator(): Promise<SimulatorBase> {
  const base = await startBase();
  register(base.sim);
  return base;
}

test('close() mid-stream: resolves, the iterator ends, the kernel side sees the disconnect', async (t) => {
  let disconnected = 0;
  const h = await startSimulator({ port: { disconnect: () => void disconnected++ } });
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const iterator = port.messages({ concurrency: 4 });
  const kernelSends = Array.from({ length: 10 }, (_, i) =>
    h.filter.sendMessage(client, Buffer.from([i]), { replyLength: 1, timeout: HANG_GUARD_MS }),
  );
  const first = (await iterator.next()).value as FilterMessage;
  await port.close();
  // Messages delivered but not yet handed out are abandoned; the iterator is done.
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });
  await assert.rejects(first.reply(Buffer.from([1])), { code: 'ERR_PORT_CLOSED' });
  const results = await Promise.all(kernelSends);
  for (const r of results) assert.equal(r.status, NtStatus.STATUS_PORT_DISCONNECTED);
  await until(() => disconnected === 1, { what: 'DisconnectNotify' });
  assert.equal(h.port.connections.size, 0);
  await port.close(); // twice is fine
  assert.equal(port.closed, true);
});

test('minifilter unload mid-stream: iterator and in-flight operations fail with a disconnect error, nothing hangs', async (t) => {
  let release!: () => void;
  const hang = new Promise<void>((resolve) => (release = resolve));
  const h = await startSimulator({ port: { message: () => hang.then(() => undefined) } });
  t.after(async () => {
    release();
    await h.close();
  });
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const disconnects: FilterError[] = [];
  port.on('disconnect', (error) => disconnects.push(error));
  const iterator = port.messages({ concurrency: 2 });
  void h.filter.sendMessage(client, Buffer.from('m'), { replyLength: 1, timeout: HANG_GUARD_MS });
  const held = (await iterator.next()).value as FilterMessage;
  const pendingSend = assert.rejects(port.send(Buffer.from('blocked')), {
    name: 'FilterError',
    hresult: HR.ERROR_INVALID_HANDLE,
  });
  const pendingNext = assert.rejects(iterator.next(), (error: unknown) => {
    assert.ok(error instanceof FilterError);
    assert.equal(error.hresult, HR.ERROR_INVALID_HANDLE);
    assert.equal(error.disconnected, true);
    return true;
  });
  await h.filter.unload();
  await Promise.all([pendingNext, pendingSend]);
  await assert.rejects(held.reply(Buffer.from([1])));
  await assert.rejects(port.send(Buffer.from('after')), { hresult: HR.ERROR_INVALID_HANDLE });
  assert.equal(disconnects.length, 1);
  assert.throws(() => port.messages(), { hresult: HR.ERROR_INVALID_HANDLE });
  await port.close();
});

test('FltCloseClientPort from the kernel side ends the connection the same way', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const serving = port.serve(() => undefined);
  client.close();
  await assert.rejects(serving, { name: 'FilterError', hresult: HR.ERROR_INVALID_HANDLE });
  await port.close();
});

test('the simulator process dying mid-stream rejects in-flight work and ends receiving', async (t) => {
  const cli = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, '..', '..', 'lib', 'simulator', 'cli.ts'),
      '--filter',
      path.join(fixtures, 'echo-filter.ts'),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => cli.kill('SIGKILL'));
  const { endpoint } = JSON.parse(await firstLine(cli.stdout!)) as { endpoint: string };
  const port = await FilterPort.connect(PORT_NAME, { simulator: endpoint });
  let handled = 0;
  const serving = port.serve(async (m) => {
    handled++;
    await new Promise((r) => setTimeout(r, 1));
    return m.data;
  });
  await port.send(Buffer.from('flood:200'), { outputSize: 2 });
  const hanging = port.send(Buffer.from('hang'));
  await until(() => handled >= 10, { what: 'messages to flow' });
  cli.kill('SIGKILL');
  await Promise.all([
    assert.rejects(serving, { name: 'FilterError', hresult: HR.ERROR_INVALID_HANDLE }),
    assert.rejects(hanging, { name: 'FilterError', hresult: HR.ERROR_INVALID_HANDLE }),
  ]);
  await port.close();
});

test('several worker threads, each with its own connection, run round trips and exit cleanly', async (t) => {
  const { sim, endpoint } = await echoSimulator();
  t.after(() => sim.close());
  const workers = Array.from({ length: 3 }, () =>
    tsWorker(path.join(fixtures, 'worker-agent.ts'), { workerData: { endpoint, mode: 'clean', count: 50 } }),
  );
  const results = await Promise.all(
    workers.map(async (worker) => {
      // Subscribe to both at once: a worker's 'exit' can be emitted before its last 'message'.
      const [[message], [code]] = await Promise.all([
        nextEvent<[Record<string, unknown>]>(worker, 'message', { what: "a worker agent's result" }),
        nextEvent<[number]>(worker, 'exit', { what: 'a worker agent to exit' }),
      ]);
      return { message, code };
    }),
  );
  for (const { message, code } of results) {
    assert.deepEqual(message, { replied: 50, echoOk: true });
    assert.equal(code, 0);
  }
});

test('terminating a worker mid-stream neither crashes nor hangs, and the kernel side sees the disconnect', async (t) => {
  const { sim, endpoint } = await echoSimulator();
  t.after(() => sim.close());
  let disconnects = 0;
  sim.on('disconnect', () => void disconnects++);
  const worker = tsWorker(path.join(fixtures, 'worker-agent.ts'), {
    workerData: { endpoint, mode: 'abandon', count: 500 },
  });
  const [message] = await nextEvent<[Record<string, unknown>]>(worker, 'message', { what: "the worker's result" });
  assert.deepEqual(message, { flowing: true });
  await worker.terminate();
  await until(() => disconnects === 1, { what: 'the disconnect' });
  // The simulator still serves new clients.
  const port = await FilterPort.connect(PORT_NAME, { simulator: endpoint });
  assert.equal((await port.send(Buffer.from('hi'), { outputSize: 2 })).toString(), 'hi');
  await port.close();
});

interface ChildRun {
  stdout(): string;
  stderr(): string;
  /** Resolves true once stdout has `line` as a whole line, false if the child exits first. */
  sawLine(line: string): Promise<boolean>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
}

/**
 * Runs test/fixtures/child-agent.ts <scenario>. Nothing here is timed: the tests wait for the child's lines and
 * its exit. The only clock is the hang guard, which kills a child that is still running after HANG_GUARD_MS
 * (the test then fails on the SIGKILL it sees).
 */
function startChild(scenario: string, endpoint: string): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(fixtures, 'child-agent.ts'), scenario], {
    env: { ...process.env, FLTMGR_SIMULATOR: endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const lineWaiters: Array<() => void> = [];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const check of [...lineWaiters]) check();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  // 'close', not 'exit': all of stdout has been read by then.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal });
    });
  });
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    exit,
    kill: () => void child.kill('SIGKILL'),
    sawLine: (line) =>
      new Promise<boolean>((resolve) => {
        const check = (): void => {
          if (!stdout.split('\n').slice(0, -1).includes(line)) return;
          lineWaiters.splice(lineWaiters.indexOf(check), 1);
          resolve(true);
        };
        lineWaiters.push(check);
        check();
        void exit.then(() => resolve(stdout.split('\n').slice(0, -1).includes(line)));
      }),
  };
}

/** The first line a stream prints (the simulator CLI's endpoint line). */
function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const guard = setTimeout(
      () => reject(new Error(`no line within ${HANG_GUARD_MS} ms; got ${JSON.stringify(text)}`)),
      HANG_GUARD_MS,
    );
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(guard);
      resolve(text.slice(0, nl));
    });
    stream.on('end', () => {
      clearTimeout(guard);
      reject(new Error(`the stream ended before a whole line; got ${JSON.stringify(text)}`));
    });
  });
}

test('process.exit() while messages flow and a send hangs: exits promptly with its own code', async (t) => {
  const { sim, endpoint } = await echoSimulator();
  t.after(() => sim.close());
  const run = startChild('exit-while-receiving', endpoint);
  const result = await run.exit;
  assert.equal(result.signal, null, `child was killed (hung?): ${run.stderr()}`);
  assert.equal(result.code, 0, run.stderr());
});

test('unref(): a receiving port does not keep the process alive; by default it does', async (t) => {
  // Both children print "receiving" once their port receives, then arm an unref'd timer that prints "still
  // running": it can only fire while something else keeps the event loop alive. So the answer is an event
  // either way, not a wait: the unref'd child exits without that line, the ref'd one prints it (and is then
  // killed by the test).
  const { sim, endpoint } = await echoSimulator();
  t.after(() => sim.close());
  const unrefd = startChild('unref-receiving', endpoint);
  try {
    assert.equal(await unrefd.sawLine('still running'), false, "an unref'd receiving port kept the process alive");
    const unrefdExit = await unrefd.exit;
    assert.equal(unrefdExit.signal, null, `unref'd child did not exit by itself: ${unrefd.stderr()}`);
    assert.equal(unrefdExit.code, 0, unrefd.stderr());
    assert.equal(unrefd.stdout(), 'receiving\n');
  } finally {
    unrefd.kill();
    await unrefd.exit;
  }

  const refd = startChild('ref-receiving', endpoint);
  // Not t.after(): the child must be gone before sim.close() (t.after hooks run in registration order).
  try {
    if (!(await refd.sawLine('still running'))) {
      assert.fail(
        `a ref'd receiving port should keep the process alive; it exited: ${JSON.stringify(await refd.exit)} ${refd.stderr()}`,
      );
    }
    assert.equal(refd.stdout(), 'receiving\nstill running\n');
  } finally {
    refd.kill();
    await refd.exit;
  }
});

test("a 'disconnect' listener that closes the port still sees serve() reject with the disconnect", async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  port.on('disconnect', () => void port.close());
  const serving = port.serve(() => undefined);
  client.close();
  await assert.rejects(serving, { name: 'FilterError', hresult: HR.ERROR_INVALID_HANDLE });
  await port.close();
});
