import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError, FilterPort, FltmgrError, MAX_CONTEXT_SIZE } from '../../lib';
import { NtStatusError } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { until } from '../helpers/timing';
import { HR } from '../helpers/status';

test('connect delivers the context to ConnectNotify and the connection cookie is kept', async (t) => {
  let seen: Buffer | undefined;
  const h = await startSimulator({
    port: {
      connect: (_client, context) => {
        seen = context;
        return 'cookie-1';
      },
    },
  });
  t.after(() => h.close());
  const clientPromise = h.nextClient();
  const port = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint, context: Buffer.from('agent-context') });
  const client = await clientPromise;
  assert.equal(seen?.toString(), 'agent-context');
  assert.equal(client.cookie, 'cookie-1');
  assert.equal(client.processId, process.pid);
  assert.equal(port.backend, 'simulator');
  assert.equal(port.name, PORT_NAME);
  await port.close();
});

test('an unknown port gives FilterError ERROR_FILE_NOT_FOUND with a hint', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  await assert.rejects(FilterPort.connect('\\NoSuchPort', { simulator: h.endpoint }), (error: unknown) => {
    assert.ok(error instanceof FilterError);
    assert.equal(error.hresult, HR.ERROR_FILE_NOT_FOUND);
    assert.equal(error.code, 'ERROR_FILE_NOT_FOUND');
    assert.equal(error.win32, 2);
    assert.equal(error.syscall, 'FilterConnectCommunicationPort');
    assert.match(error.message, /minifilter loaded/);
    return true;
  });
});

test('a simulator endpoint nobody listens on reads as "driver not loaded"', async () => {
  const h = await startSimulator();
  const endpoint = h.endpoint;
  await h.close();
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint }), { hresult: HR.ERROR_FILE_NOT_FOUND });
});

test('ConnectNotify refusing the connection surfaces its status as an HRESULT', async (t) => {
  const h = await startSimulator({
    port: {
      connect: () => {
        throw new NtStatusError(NtStatus.STATUS_ACCESS_DENIED);
      },
    },
  });
  t.after(() => h.close());
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: h.endpoint }), {
    name: 'FilterError',
    hresult: HR.ERROR_ACCESS_DENIED,
    code: 'ERROR_ACCESS_DENIED',
  });
});

test('MaxConnections is enforced (ERROR_CONNECTION_COUNT_LIMIT) and a slot frees on close', async (t) => {
  const h = await startSimulator({ port: { maxConnections: 2 } });
  t.after(() => h.close());
  const a = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const b = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: h.endpoint }), {
    hresult: HR.ERROR_CONNECTION_COUNT_LIMIT,
    code: 'ERROR_CONNECTION_COUNT_LIMIT',
  });
  await a.close();
  // close() resolves once our handle is closed; the simulator hears of it through its socket, later. Under
  // Wine on a busy machine the next CONNECT once arrived first and found both slots taken (a race in the
  // simulator's transport, not a rule of Filter Manager: whether Windows frees the slot before CloseHandle
  // returns is [unverified]), so the freed slot is asserted once the simulator has seen the close.
  await until(() => h.port.connections.size === 1, { what: 'the simulator to see the first connection close' });
  const c = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await Promise.all([b.close(), c.close()]);
});

test('the port security descriptor refuses identities that are not allowed (default: admins only)', async (t) => {
  // Nobody is an admin in this simulator, so the default descriptor refuses us.
  const h = await startSimulator({ options: { admins: { uids: [] } } });
  t.after(() => h.close());
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: h.endpoint }), {
    hresult: HR.ERROR_ACCESS_DENIED,
    code: 'ERROR_ACCESS_DENIED',
  });
});

test(
  'a port whose descriptor grants our uid admits us though we are no admin',
  {
    skip:
      process.platform === 'win32'
        ? 'uids exist only on POSIX; on Windows simulator clients are secret holders'
        : false,
  },
  async (t) => {
    const h = await startSimulator({ options: { admins: { uids: [] } } });
    t.after(() => h.close());
    h.filter.createCommunicationPort('\\Granted', { maxConnections: 1, security: { allowUids: [process.getuid!()] } });
    const port = await FilterPort.connect('\\Granted', { simulator: h.endpoint });
    await port.close();
  },
);

test('bad port names and contexts are refused before anything is sent', async () => {
  const endpoint = 'unix:/nonexistent/never-used.sock';
  const cases: Array<[unknown, string | RegExp]> = [
    [42, 'ERR_INVALID_ARG_TYPE'],
    [undefined, 'ERR_INVALID_ARG_TYPE'],
    ['', 'ERR_INVALID_ARG_VALUE'],
    ['NoBackslash', 'ERR_INVALID_ARG_VALUE'],
    ['\\a\0b', 'ERR_INVALID_ARG_VALUE'],
    ['\\' + 'x'.repeat(40_000), 'ERR_OUT_OF_RANGE'],
  ];
  for (const [name, code] of cases) {
    await assert.rejects(
      FilterPort.connect(name as string, { simulator: endpoint }),
      { code },
      `name ${String(name).slice(0, 20)}`,
    );
  }
  await assert.rejects(
    FilterPort.connect(PORT_NAME, { simulator: endpoint, context: Buffer.alloc(MAX_CONTEXT_SIZE + 1) }),
    {
      code: 'ERR_OUT_OF_RANGE',
    },
  );
  await assert.rejects(
    FilterPort.connect(PORT_NAME, { simulator: endpoint, context: 'text' as unknown as Uint8Array }),
    {
      code: 'ERR_INVALID_ARG_TYPE',
    },
  );
  const detached = new Uint8Array(8);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint, context: detached }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: '' }), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('a context of exactly the maximum size is accepted', async (t) => {
  let size = -1;
  const h = await startSimulator({ port: { connect: (_c, context) => void (size = context.length) } });
  t.after(() => h.close());
  const port = await FilterPort.connect(PORT_NAME, {
    simulator: h.endpoint,
    context: Buffer.alloc(MAX_CONTEXT_SIZE, 7),
  });
  assert.equal(size, MAX_CONTEXT_SIZE);
  await port.close();
});

test('without an endpoint the error says how to configure the simulator', async (t) => {
  const saved = process.env.FLTMGR_SIMULATOR;
  delete process.env.FLTMGR_SIMULATOR;
  t.after(() => {
    if (saved !== undefined) process.env.FLTMGR_SIMULATOR = saved;
  });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: true }), (error: unknown) => {
    assert.ok(error instanceof FltmgrError);
    assert.equal(error.code, 'ERR_SIMULATOR_NOT_CONFIGURED');
    assert.match(error.message, /FLTMGR_SIMULATOR/);
    return true;
  });
});

test('FLTMGR_SIMULATOR is used when no endpoint is given', async (t) => {
  const h = await startSimulator();
  const saved = process.env.FLTMGR_SIMULATOR;
  process.env.FLTMGR_SIMULATOR = h.endpoint;
  t.after(async () => {
    if (saved === undefined) delete process.env.FLTMGR_SIMULATOR;
    else process.env.FLTMGR_SIMULATOR = saved;
    await h.close();
  });
  const port = await FilterPort.connect(PORT_NAME);
  assert.equal(port.backend, 'simulator');
  await port.close();
});

test('connect honours an AbortSignal and does not leak the late connection', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inConnectNotify = new Promise<void>((resolve) => (entered = resolve));
  const h = await startSimulator({
    port: {
      connect: () => {
        entered();
        return gate;
      },
    },
  });
  t.after(async () => {
    release();
    await h.close();
  });
  const controller = new AbortController();
  const pending = FilterPort.connect(PORT_NAME, { simulator: h.endpoint, signal: controller.signal });
  await inConnectNotify;
  controller.abort(new Error('stop'));
  await assert.rejects(pending, { name: 'AbortError' });
  release();
  // The connection that completed after the abort is closed again.
  await until(() => h.port.connections.size === 0, { what: 'the late connection to be closed' });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: h.endpoint, signal: AbortSignal.abort() }), {
    name: 'AbortError',
  });
});

test('over the simulator\u2019s maxStreams, a connect fails with FilterError ERROR_NO_SYSTEM_RESOURCES', async (t) => {
  const h = await startSimulator({ options: { limits: { maxStreams: 1 } } });
  t.after(() => h.close());
  const first = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: h.endpoint }), (error: unknown) => {
    assert.ok(error instanceof FilterError);
    assert.equal(error.hresult, HR.ERROR_NO_SYSTEM_RESOURCES);
    assert.equal(error.code, 'ERROR_NO_SYSTEM_RESOURCES');
    return true;
  });
  await first.close();
});
