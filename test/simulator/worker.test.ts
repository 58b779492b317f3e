// The simulator in a worker thread, hosting a filter module.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSimulatorWorker } from '../../lib/simulator';
import { PORT_NAME } from '../helpers/sim';
import { WireClient } from '../helpers/wire-client';
import { TEST_TIMEOUT_MS, until, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';
import { NtStatus } from '../../lib/status';

const FIXTURES = path.join(__dirname, 'fixtures');
const ECHO_FILTER = path.join(__dirname, '..', 'fixtures', 'echo-filter.ts');
const OPTS = { timeout: TEST_TIMEOUT_MS };

test('a worker hosts the filter module: both directions work, terminate() ends connections', OPTS, async () => {
  const logs: string[] = [];
  const w = await startSimulatorWorker(ECHO_FILTER, {
    filterOptions: { greeting: 'hi ' },
    log: (l) => logs.push(l),
  });
  let client: WireClient | undefined;
  try {
    assert.match(w.endpoint, /^unix:\//);
    client = await WireClient.connect(w.endpoint, { portName: PORT_NAME });
    const welcome = await client.get(128);
    assert.equal(welcome.data.toString(), 'welcome:hi ');
    assert.equal(welcome.replyLength, 32);
    assert.equal(await client.reply(welcome.messageId, Buffer.from('thanks')), 0);
    assert.deepEqual((await client.send(Buffer.from('there'), 64)).output, Buffer.from('hi there'));
    assert.deepEqual((await client.send(Buffer.from('last-reply'), 64)).output, Buffer.from('thanks'));
    // A protocol error in the worker is logged through the main thread's log option.
    const bad = await WireClient.open(w.endpoint);
    bad.writeRaw(Buffer.from([8, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0]));
    await withTimeout(bad.closed, { what: 'bad stream closed' });
    // The log line comes from the worker thread through a message: wait for it.
    await until(() => logs.some((l) => /version 9/.test(l)), { what: 'the worker to log the protocol error' }).catch(
      () => undefined,
    );
    assert.ok(
      logs.some((l) => /protocol error .*version 9/.test(l)),
      logs.join('\n'),
    );
  } finally {
    await withTimeout(w.terminate(), { what: 'terminate' });
  }
  assert.equal(await withTimeout(client.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
  await withTimeout(client.closed, { what: 'closed' });
  assert.equal(fs.existsSync(w.endpoint.slice(5)), false, 'socket removed');
  await w.terminate(); // idempotent
});

test('a worker can listen on TCP with a secret', OPTS, async (t) => {
  const w = await startSimulatorWorker(ECHO_FILTER, { listen: { tcp: {} } });
  t.after(() => w.terminate());
  assert.match(w.endpoint, /^tcp:127\.0\.0\.1:\d+#[0-9a-f]+$/);
  const c = await WireClient.connect(w.endpoint, { portName: PORT_NAME });
  assert.equal((await c.send(Buffer.from('x'), 8)).hresult, 0);
  const wrong = await WireClient.open(w.endpoint);
  assert.equal(await wrong.connect({ portName: PORT_NAME, secret: 'guess' }), HR.ERROR_ACCESS_DENIED);
  c.destroy();
});

test('worker start failures reject with the reason', OPTS, async () => {
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'no-register.ts')), /does not export register/);
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'register-throws.ts')), /register failed on purpose/);
  await assert.rejects(startSimulatorWorker(path.join(FIXTURES, 'missing-module.ts')), /Cannot find module/);
  await assert.rejects(startSimulatorWorker(''), TypeError);
  await assert.rejects(startSimulatorWorker(ECHO_FILTER, { listen: { tcp: { port: -1 } } }), /tcp\.port/);
});

test('limits reach the worker\u2019s simulator', OPTS, async (t) => {
  const logs: string[] = [];
  const w = await startSimulatorWorker(ECHO_FILTER, { limits: { maxStreams: 1 }, log: (l) => logs.push(l) });
  t.after(() => withTimeout(w.terminate(), { what: 'terminate' }));
  const first = await WireClient.connect(w.endpoint, { portName: PORT_NAME });
  const second = await WireClient.open(w.endpoint);
  await withTimeout(second.closed, { what: 'the stream over maxStreams to close' });
  assert.deepEqual(
    second.unexpected.map((f) => f.payload.readUInt32LE(0)),
    [HR.ERROR_NO_SYSTEM_RESOURCES],
  );
  // The log line travels from the worker thread by message: it may come after the close is seen here.
  await until(() => logs.some((l) => /too many streams/.test(l)), { what: 'the worker to log it' }).catch(
    () => undefined,
  );
  assert.ok(
    logs.some((l) => /too many streams: more than 1 open/.test(l)),
    logs.join('\n'),
  );
  first.destroy();
});
