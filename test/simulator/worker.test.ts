// The simulator in a worker thread, hosting a filter module.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSimulatorWorker } from '../../lib/simulator';
import { WireClient, withTimeout } from '../helpers/wire-client';
import { TEST_TIMEOUT_MS, pollUntil } from '../helpers/timing';

const FIXTURES = path.join(__dirname, 'fixtures');
const OPTS = { timeout: TEST_TIMEOUT_MS };

test('a worker hosts the filter module: both directions work, terminate() ends connections', OPTS, async () => {
  const logs: string[] = [];
  const w = await startSimulatorWorker(path.join(FIXTURES, 'echo-filter.ts'), {
    filterOptions: { greeting: 'hi ' },
    log: (l) => logs.push(l),
  });
  let client: WireClient | undefined;
  try {
    assert.match(w.endpoint, /^unix:\//);
    client = await WireClient.connect(w.endpoint, { portName: '\\EchoPort' });
    const welcome = await client.get(128);
    assert.equal(welcome.data.toString(), 'welcome:hi ');
    assert.equal(welcome.replyLength, 32);
    assert.equal(await client.reply(welcome.messageId, Buffer.from('thanks')), 0);
    assert.deepEqual((await client.send(Buffer.from('there'), 64)).output, Buffer.from('hi there'));
    assert.deepEqual((await client.send(Buffer.from('last-reply'), 64)).output, Buffer.from('thanks'));
    // A protocol error in the worker is logged through the main thread's log option.
    const bad = await WireClient.open(w.endpoint);
    bad.writeRaw(Buffer.from([8, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0]));
    await withTimeout(bad.closed, 'bad stream closed');
    // The log line comes from the worker thread through a message: wait for it.
    await pollUntil('the worker to log the protocol error', () => logs.some((l) => /version 9/.test(l))).catch(() => undefined);
    assert.ok(logs.some((l) => /protocol error .*version 9/.test(l)), logs.join('\n'));
  } finally {
    await withTimeout(w.terminate(), 'terminate');
  }
  assert.equal(await withTimeout(client.disconnected, 'DISCONNECT'), 0xc0000037);
  await withTimeout(client.closed, 'closed');
  assert.equal(fs.existsSync(w.endpoint.slice(5)), false, 'socket removed');
  await w.terminate(); // idempotent
});

test('a worker can listen on TCP with a secret', OPTS, async (t) => {
  const w = await startSimulatorWorker(path.join(FIXTURES, 'echo-filter.ts'), { listen: { tcp: {} } });
  t.after(() => w.terminate());
  assert.match(w.endpoint, /^tcp:127\.0\.0\.1:\d+#[0-9a-f]+$/);
  const c = await WireClient.connect(w.endpoint, { portName: '\\EchoPort' });
  assert.equal((await c.send(Buffer.from('x'), 8)).hresult, 0);
  const wrong = await WireClient.open(w.endpoint);
  assert.equal(await wrong.connect({ portName: '\\EchoPort', secret: 'guess' }), 0x80070005);
  c.destroy();
});

test('worker start failures reject with the reason', OPTS, async () => {
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'no-register.ts')), /does not export register/);
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'register-throws.ts')), /register failed on purpose/);
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'missing-module.ts')), /Cannot find module/);
  await assert.rejects(startSimulatorWorker(''), TypeError);
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'echo-filter.ts'), { listen: { tcp: { port: -1 } } }), /tcp\.port/);
});

test('limits reach the worker\u2019s simulator', OPTS, async (t) => {
  const logs: string[] = [];
  const w = await startSimulatorWorker(path.join(FIXTURES, 'echo-filter.ts'), { limits: { maxStreams: 1 }, log: (l) => logs.push(l) });
  t.after(() => withTimeout(w.terminate(), 'terminate'));
  const first = await WireClient.connect(w.endpoint, { portName: '\\EchoPort' });
  const second = await WireClient.open(w.endpoint);
  await withTimeout(second.closed, 'the stream over maxStreams to close');
  assert.deepEqual(second.unexpected.map((f) => f.payload.readUInt32LE(0)), [0x800705aa]);
  // The log line travels from the worker thread by message: it may come after the close is seen here.
  await pollUntil('the worker to log it', () => logs.some((l) => /too many streams/.test(l))).catch(() => undefined);
  assert.ok(logs.some((l) => /too many streams: more than 1 open/.test(l)), logs.join('\n'));
  first.destroy();
});
