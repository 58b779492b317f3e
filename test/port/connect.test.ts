import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterError, FilterPort, FltmgrError, MAX_CONTEXT_SIZE } from '../../lib';
import { NtStatusError } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { PORT_NAME, startSimulator, until } from '../helpers/sim';

test('connect delivers the context to ConnectNotify and the connection cookie is kept', async () => {
  let seen: Buffer | undefined;
  const t = await startSimulator({
    connect: (_client, context) => {
      seen = context;
      return 'cookie-1';
    },
  });
  try {
    const clientPromise = t.nextClient();
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint, context: Buffer.from('agent-context') });
    const client = await clientPromise;
    assert.equal(seen?.toString(), 'agent-context');
    assert.equal(client.cookie, 'cookie-1');
    assert.equal(client.processId, process.pid);
    assert.equal(port.backend, 'simulator');
    assert.equal(port.name, PORT_NAME);
    await port.close();
  } finally {
    await t.close();
  }
});

test('an unknown port gives FilterError ERROR_FILE_NOT_FOUND with a hint', async () => {
  const t = await startSimulator();
  try {
    await assert.rejects(FilterPort.connect('\\NoSuchPort', { simulator: t.endpoint }), (error: unknown) => {
      assert.ok(error instanceof FilterError);
      assert.equal(error.hresult, 0x80070002);
      assert.equal(error.code, 'ERROR_FILE_NOT_FOUND');
      assert.equal(error.win32, 2);
      assert.equal(error.syscall, 'FilterConnectCommunicationPort');
      assert.match(error.message, /minifilter loaded/);
      return true;
    });
  } finally {
    await t.close();
  }
});

test('a simulator endpoint nobody listens on reads as "driver not loaded"', async () => {
  const t = await startSimulator();
  const endpoint = t.endpoint;
  await t.close();
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint }), { hresult: 0x80070002 });
});

test('ConnectNotify refusing the connection surfaces its status as an HRESULT', async () => {
  const t = await startSimulator({
    connect: () => {
      throw new NtStatusError(NtStatus.STATUS_ACCESS_DENIED);
    },
  });
  try {
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: t.endpoint }), {
      name: 'FilterError',
      hresult: 0x80070005,
      code: 'ERROR_ACCESS_DENIED',
    });
  } finally {
    await t.close();
  }
});

test('MaxConnections is enforced (ERROR_CONNECTION_COUNT_LIMIT) and a slot frees on close', async () => {
  const t = await startSimulator({ maxConnections: 2 });
  try {
    const a = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    const b = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: t.endpoint }), {
      hresult: 0x800704d6,
      code: 'ERROR_CONNECTION_COUNT_LIMIT',
    });
    await a.close();
    const c = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    await Promise.all([b.close(), c.close()]);
  } finally {
    await t.close();
  }
});

test('the port security descriptor refuses identities that are not allowed (default: admins only)', async () => {
  // Nobody is an admin in this simulator, so the default descriptor refuses us.
  const t = await startSimulator({}, { admins: { uids: [] } });
  try {
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: t.endpoint }), { hresult: 0x80070005, code: 'ERROR_ACCESS_DENIED' });
  } finally {
    await t.close();
  }
});

test(
  'a port whose descriptor grants our uid admits us though we are no admin',
  { skip: process.platform === 'win32' ? 'uids exist only on POSIX; on Windows simulator clients are secret holders' : false },
  async () => {
    const t = await startSimulator({}, { admins: { uids: [] } });
    try {
      t.filter.createCommunicationPort('\\Granted', { maxConnections: 1, security: { allowUids: [process.getuid!()] } });
      const port = await FilterPort.connect('\\Granted', { simulator: t.endpoint });
      await port.close();
    } finally {
      await t.close();
    }
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
    await assert.rejects(FilterPort.connect(name as string, { simulator: endpoint }), { code }, `name ${String(name).slice(0, 20)}`);
  }
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint, context: Buffer.alloc(MAX_CONTEXT_SIZE + 1) }), {
    code: 'ERR_OUT_OF_RANGE',
  });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint, context: 'text' as unknown as Uint8Array }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  const detached = new Uint8Array(8);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: endpoint, context: detached }), { code: 'ERR_INVALID_ARG_VALUE' });
  await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: '' }), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('a context of exactly the maximum size is accepted', async () => {
  let size = -1;
  const t = await startSimulator({ connect: (_c, context) => void (size = context.length) });
  try {
    const port = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint, context: Buffer.alloc(MAX_CONTEXT_SIZE, 7) });
    assert.equal(size, MAX_CONTEXT_SIZE);
    await port.close();
  } finally {
    await t.close();
  }
});

test('without an endpoint the error says how to configure the simulator', async () => {
  const saved = process.env.FLTMGR_SIMULATOR;
  delete process.env.FLTMGR_SIMULATOR;
  try {
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: true }), (error: unknown) => {
      assert.ok(error instanceof FltmgrError);
      assert.equal(error.code, 'ERR_SIMULATOR_NOT_CONFIGURED');
      assert.match(error.message, /FLTMGR_SIMULATOR/);
      return true;
    });
  } finally {
    if (saved !== undefined) process.env.FLTMGR_SIMULATOR = saved;
  }
});

test('FLTMGR_SIMULATOR is used when no endpoint is given', async () => {
  const t = await startSimulator();
  const saved = process.env.FLTMGR_SIMULATOR;
  process.env.FLTMGR_SIMULATOR = t.endpoint;
  try {
    const port = await FilterPort.connect(PORT_NAME);
    assert.equal(port.backend, 'simulator');
    await port.close();
  } finally {
    if (saved === undefined) delete process.env.FLTMGR_SIMULATOR;
    else process.env.FLTMGR_SIMULATOR = saved;
    await t.close();
  }
});

test('connect honours an AbortSignal and does not leak the late connection', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inConnectNotify = new Promise<void>((resolve) => (entered = resolve));
  const t = await startSimulator({
    connect: () => {
      entered();
      return gate;
    },
  });
  try {
    const controller = new AbortController();
    const pending = FilterPort.connect(PORT_NAME, { simulator: t.endpoint, signal: controller.signal });
    await inConnectNotify;
    controller.abort(new Error('stop'));
    await assert.rejects(pending, { name: 'AbortError' });
    release();
    // The connection that completed after the abort is closed again.
    await until(() => t.port.connections.size === 0, 'the late connection to be closed');
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: t.endpoint, signal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
  } finally {
    release();
    await t.close();
  }
});

test('over the simulator\u2019s maxStreams, a connect fails with FilterError ERROR_NO_SYSTEM_RESOURCES', async () => {
  const t = await startSimulator({}, { limits: { maxStreams: 1 } });
  try {
    const first = await FilterPort.connect(PORT_NAME, { simulator: t.endpoint });
    await assert.rejects(FilterPort.connect(PORT_NAME, { simulator: t.endpoint }), (error: unknown) => {
      assert.ok(error instanceof FilterError);
      assert.equal(error.hresult, 0x800705aa);
      assert.equal(error.code, 'ERROR_NO_SYSTEM_RESOURCES');
      return true;
    });
    await first.close();
  } finally {
    await t.close();
  }
});
