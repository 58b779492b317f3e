// A client must never take its host down: no crash or hang at teardown, nothing unwritten reaches JS, no slot
// leaks, and errors that say what happened. Peers here misbehave on purpose (test/helpers/fake-peer.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { FilterError, FilterPort, FltmgrError, type FilterMessage } from '../../lib';
import { FrameType } from '../../lib/simulator/wire';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { startFakePeer, type FakePeer } from '../helpers/fake-peer';
import { tsWorker } from '../helpers/worker';
import { HANG_GUARD_MS, nextEvent, until, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';

const root = path.join(__dirname, '..', '..');
const fixtures = path.join(__dirname, '..', 'fixtures');

/** A peer that hands every GET one message expecting a reply, and never answers a REPLY. */
async function peerThatNeverAnswersReplies(): Promise<FakePeer> {
  const peer = await startFakePeer();
  let next = 1n;
  peer.onFrame = (frame, socket) => {
    if (frame.type === FrameType.GET)
      peer.complete(socket, frame.id, { replyLength: 32, id: next++, data: Buffer.from('m') });
  };
  return peer;
}

async function runNode(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  // 'close', not 'exit': stdout is asserted on, and all of it has been read only by then.
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  clearTimeout(killer);
  return { code, signal, stdout, stderr };
}

async function startSimulatorProcess(): Promise<{ endpoint: string; stop(): void }> {
  const cli = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(root, 'lib', 'simulator', 'cli.ts'),
      '--filter',
      path.join(fixtures, 'echo-filter.ts'),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  // The endpoint line, however the pipe splits it.
  let text = '';
  const onData = (chunk: Buffer): void => void (text += chunk.toString());
  cli.stdout.on('data', onData);
  await until(() => text.includes('\n'), { what: 'the simulator CLI to print its endpoint' });
  cli.stdout.off('data', onData);
  const { endpoint } = JSON.parse(text.split('\n')[0]!) as { endpoint: string };
  return { endpoint, stop: () => cli.kill('SIGKILL') };
}

for (const mode of ['hang', 'echo']) {
  test(`terminating the only worker that loaded the addon, with sends in flight (${mode}), never crashes the process`, async (t) => {
    const sim = await startSimulatorProcess();
    t.after(() => sim.stop());
    const result = await runNode([path.join(fixtures, 'worker-teardown.ts'), sim.endpoint, mode, '15']);
    assert.equal(result.signal, null, `the process died of ${String(result.signal)}: ${result.stderr}`);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /done/);
  });
}

test('close() settles while the receive thread waits for a reply the peer never acknowledges', async (t) => {
  const peer = await peerThatNeverAnswersReplies();
  t.after(() => peer.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: peer.endpoint });
  const iterator = port.messages({ concurrency: 1 });
  const message = (await iterator.next()).value as FilterMessage;
  const replying = assert.rejects(message.reply(Buffer.from('r')), { code: 'ERR_PORT_CLOSED' });
  await until(() => peer.frames.some((f) => f.type === FrameType.REPLY), { what: 'the REPLY frame' });
  await withTimeout(port.close(), { what: 'close()' });
  await replying;
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });
});

test('an unref()d process exits while its peer never acknowledges a reply', async (t) => {
  const peer = await peerThatNeverAnswersReplies();
  t.after(() => peer.close());
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(fixtures, 'stuck-peer-client.ts')], {
    cwd: root,
    env: { ...process.env, FLTMGR_SIMULATOR: peer.endpoint },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined); // a child that already died: its exit code says why
  const killer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  const closed = once(child, 'close') as Promise<[number | null, string | null]>;
  // Not t.after(): the child must be gone before peer.close() (t.after hooks run in registration order).
  try {
    await until(() => /replied/.test(stdout) || child.exitCode !== null, { what: 'the child to reply' });
    await until(() => peer.frames.some((f) => f.type === FrameType.REPLY) || child.exitCode !== null, {
      what: 'the REPLY frame',
    });
    child.stdin.write('go\n'); // the child stops reading stdin: only the unref()d port, waiting, is left
    const [code, signal] = await closed;
    assert.equal(code, 0, `exit ${String(code)} / ${String(signal)}: ${stderr}`);
    assert.match(stdout, /replied/);
    assert.ok(peer.frames.some((f) => f.type === FrameType.REPLY));
  } finally {
    clearTimeout(killer);
    child.kill('SIGKILL');
    await closed;
  }
});

test('worker.terminate() settles while the worker waits for a reply the peer never acknowledges', async (t) => {
  const peer = await peerThatNeverAnswersReplies();
  t.after(() => peer.close());
  const worker = tsWorker(path.join(fixtures, 'stuck-peer-client.ts'), {
    env: { ...process.env, FLTMGR_SIMULATOR: peer.endpoint },
  });
  const [said] = await nextEvent<[string]>(worker, 'message', { what: 'the worker to say it replied' });
  assert.equal(said, 'replied');
  await until(() => peer.frames.some((f) => f.type === FrameType.REPLY), { what: 'the REPLY frame' });
  await withTimeout(worker.terminate(), { what: 'worker.terminate()' });
});

test('close() settles while sends are blocked writing to a peer that stopped reading', async (t) => {
  const peer = await startFakePeer();
  t.after(() => peer.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: peer.endpoint });
  await until(() => peer.sockets.length === 1, { what: 'the connection' });
  peer.sockets[0]!.pause(); // reads nothing more: the client's writes fill the socket and block
  const big = Buffer.alloc(8 * 1024 * 1024, 1);
  const sends = Array.from({ length: 4 }, () => port.send(big));
  const outcomes = Promise.allSettled(sends);
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the send threads reach the socket
  await withTimeout(port.close(), { what: 'close()' });
  for (const outcome of await outcomes) {
    assert.equal(outcome.status, 'rejected');
    assert.ok(outcome.reason instanceof FilterError);
    assert.equal(outcome.reason.hresult, HR.ERROR_OPERATION_ABORTED);
    assert.equal(outcome.reason.syscall, 'FilterSendMessage');
  }
});

test('stuck sends: at most maxSendThreads run, an aborted queued send never reaches MessageNotify, close() settles', async (t) => {
  const seen: string[] = [];
  const gates = new Map<string, () => void>();
  const h = await startSimulator({
    port: {
      message: (_client, input) => {
        const name = input.toString();
        seen.push(name);
        if (!name.startsWith('stuck')) return input;
        return new Promise<Buffer>((resolve) => gates.set(name, () => resolve(input)));
      },
    },
  });
  t.after(async () => {
    for (const open of gates.values()) open();
    await h.close();
  });
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const stuck = [0, 1, 2, 3].map((i) => port.send(Buffer.from(`stuck${i}`), { outputSize: 8 }));
  const stuckOutcomes = Promise.allSettled(stuck);
  await until(() => seen.length === 4, { what: 'four sends in MessageNotify' });
  // Every send thread is busy: these wait in the queue.
  const controller = new AbortController();
  const withdrawn = port.send(Buffer.from('withdrawn'), { outputSize: 16, signal: controller.signal });
  const next = port.send(Buffer.from('next'), { outputSize: 8 });
  controller.abort();
  await assert.rejects(withdrawn, { name: 'AbortError' });
  gates.get('stuck0')!(); // one thread comes free: the next queued send is 'next', not the withdrawn one
  assert.equal((await next).toString(), 'next');
  // The four stuck sends reach MessageNotify in any order (four threads); then 'next', never 'withdrawn'.
  assert.deepEqual([...seen.slice(0, 4)].sort(), ['stuck0', 'stuck1', 'stuck2', 'stuck3']);
  assert.deepEqual(seen.slice(4), ['next']);
  // Aborting a send already in MessageNotify rejects it; close() still settles with four stuck.
  const running = new AbortController();
  const stuckAborted = port.send(Buffer.from('stuck4'), { outputSize: 8, signal: running.signal });
  await until(() => seen.includes('stuck4'), { what: 'stuck4 in MessageNotify' });
  running.abort();
  await assert.rejects(stuckAborted, { name: 'AbortError' });
  await withTimeout(port.close(), { what: 'close()' });
  const outcomes = await stuckOutcomes;
  assert.equal(outcomes[0]!.status, 'fulfilled');
  for (const outcome of outcomes.slice(1)) {
    assert.equal(outcome.status, 'rejected');
    assert.equal((outcome.reason as FilterError).hresult, HR.ERROR_OPERATION_ABORTED);
    assert.match((outcome.reason as FilterError).message, /may or may not have been processed/);
  }
  await until(() => h.port.connections.size === 0, { what: 'the kernel side to see the disconnect' });
});

for (const status of [0x102, 0x1, 0x40000000]) {
  test(`a get completing with status 0x${status.toString(16)} and no data is never handed out as a message`, async (t) => {
    const peer = await startFakePeer();
    peer.onFrame = (frame, socket) => {
      if (frame.type === FrameType.GET)
        peer.complete(socket, frame.id, { status, replyLength: 0xbebebebe, id: 0xbebebebebebebeben });
    };
    t.after(() => peer.close());
    const port = await FilterPort.connect(PORT_NAME, { simulator: peer.endpoint });
    const iterator = port.messages({ concurrency: 2 });
    await assert.rejects(iterator.next(), (error: unknown) => {
      assert.ok(error instanceof FilterError, String(error));
      assert.equal(error.syscall, 'FilterGetMessage');
      return true;
    });
    assert.equal(
      peer.frames.filter((f) => f.type === FrameType.REPLY).length,
      0,
      'the client replied to a message that never was',
    );
    await port.close();
  });
}

test('ReplyLength below FILTER_REPLY_HEADER: reply() says why, releases the slot, and receiving goes on', async (t) => {
  const peer = await startFakePeer();
  let next = 1n;
  peer.onFrame = (frame, socket) => {
    if (frame.type === FrameType.GET)
      peer.complete(socket, frame.id, { replyLength: Number(next % 15n) + 1, id: next++, data: Buffer.from('m') });
  };
  t.after(() => peer.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: peer.endpoint });
  // The iterator: the rejection says why, and the message is settled (its slot given back).
  const iterator = port.messages({ concurrency: 1 });
  for (let i = 0; i < 3; i++) {
    const message = (await iterator.next()).value as FilterMessage;
    await assert.rejects(message.reply(), (error: unknown) => {
      assert.ok(error instanceof FltmgrError);
      assert.equal(error.code, 'ERR_REPLY_TOO_LARGE');
      assert.match(error.message, /less than the 16-byte FILTER_REPLY_HEADER/);
      return true;
    });
    assert.equal(message.settled, true);
  }
  await iterator.return!();
  // serve(): many more messages than slots all reach the handler.
  const errors: unknown[] = [];
  let handled = 0;
  const serving = port.serve(
    () => {
      handled++;
      return Buffer.from('x');
    },
    { concurrency: 2, onError: (error) => errors.push(error) },
  );
  await until(() => handled >= 20, { what: '20 messages through 2 slots' });
  await port.close();
  await serving;
  assert.ok(errors.length >= 20);
  assert.ok(errors.every((e) => e instanceof FltmgrError && e.code === 'ERR_REPLY_TOO_LARGE'));
});

test('serve(): a handler result too large for the reply is reported and its slot released', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const client = await clientPromise;
  const errors: unknown[] = [];
  const serving = port.serve(() => Buffer.alloc(64), { concurrency: 1, onError: (error) => errors.push(error) });
  for (let i = 0; i < 3; i++) {
    // A get is pending, so the message is delivered at once (it cannot time out in the queue before the handler
    // saw it); released unanswered, the minifilter's wait ends with its own timeout.
    await h.untilReceiving(client);
    const result = await h.filter.sendMessage(client, Buffer.from([i]), { replyLength: 4, timeout: 200 });
    assert.notEqual(result.status, 0, 'the minifilter got no reply');
    await until(() => errors.length === i + 1, { what: 'onError for the oversized result' });
  }
  assert.equal(errors.length, 3);
  assert.ok(errors.every((e) => e instanceof FltmgrError && e.code === 'ERR_REPLY_TOO_LARGE'));
  await port.close();
  await serving;
});

test('a peer that answers the handshake with something else: ERROR_INVALID_DATA that says so', async (t) => {
  const peer = await startFakePeer({ handshake: Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n') });
  t.after(() => peer.close());
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: peer.endpoint }), (error: unknown) => {
    assert.ok(error instanceof FilterError);
    assert.equal(error.code, 'ERROR_INVALID_DATA');
    assert.match(error.message, /other than the fltmgr simulator protocol/);
    return true;
  });
});

test('unusable endpoints are refused before connecting, with the reason', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['garbage', /garbage/],
    [
      `unix:/tmp/${'x'.repeat(200)}.sock`,
      process.platform === 'win32' ? /not supported on Windows/ : /at most 107 fit/,
    ],
    ['tcp:10.1.2.3:5000#secret', /loopback/],
    ['tcp:127.0.0.1:5000', /#SECRET/],
    ['tcp:127.0.0.1:0#secret', /1\.\.65535/],
    ['unix:/tmp/a\0b.sock', /NUL/],
  ];
  if (process.platform !== 'win32') cases.push(['pipe:\\\\.\\pipe\\fltmgr#secret', /Windows named pipes/]);
  for (const [endpoint, why] of cases) {
    await assert.rejects(
      FilterPort.connect(PORT_NAME, { simulator: endpoint }),
      (error: unknown) => {
        assert.ok(error instanceof FltmgrError, String(error));
        assert.equal(error.code, 'ERR_INVALID_ENDPOINT');
        assert.match(error.message, why);
        assert.match(error.message, /options\.simulator/);
        return true;
      },
      endpoint,
    );
  }
  const saved = process.env['FLTMGR_SIMULATOR'];
  process.env['FLTMGR_SIMULATOR'] = 'nonsense';
  t.after(() => {
    if (saved === undefined) delete process.env['FLTMGR_SIMULATOR'];
    else process.env['FLTMGR_SIMULATOR'] = saved;
  });
  await assert.rejects(FilterPort.connect(PORT_NAME), { code: 'ERR_INVALID_ENDPOINT', message: /FLTMGR_SIMULATOR/ });
});

test('a send above the simulator wire limit is refused with the reason', async (t) => {
  const h = await startSimulator({ port: { message: (_client, input) => input } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(port.send(Buffer.alloc(16 * 1024 * 1024)), { code: 'ERR_OUT_OF_RANGE', message: /16 MiB/ });
  assert.equal((await port.send(Buffer.from('still fine'), { outputSize: 10 })).toString(), 'still fine');
  await port.close();
});
