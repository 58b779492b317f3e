import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FilterManagerSimulator, NtStatusError, type ClientPort, type PeerIdentity } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { WireClient, WireConnectError } from '../helpers/wire-client';
import { PORT_NAME, connectNotifyRuns, startSimulator } from '../helpers/sim';
import { TEST_TIMEOUT_MS, stillPending, until, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';

const OPTS = { timeout: TEST_TIMEOUT_MS };

/** Identities handed out per connection, in order, through the peerCredentials hook. */
function identities(...ids: (PeerIdentity | undefined)[]): () => PeerIdentity | undefined {
  return () => ids.shift();
}

async function connectResult(
  endpoint: string,
  portName: string,
  extra: { options?: number; secret?: string } = {},
): Promise<number> {
  const w = await WireClient.open(endpoint);
  try {
    return await w.connect({ portName, ...extra });
  } finally {
    w.destroy();
  }
}

test(
  'a connection carries context, identity and pid to ConnectNotify; its return value is the cookie',
  OPTS,
  async (t) => {
    const seen: { context: string; cookieDuring: unknown }[] = [];
    const h = await startSimulator({
      options: { peerCredentials: identities({ uid: 0, gid: 0, pid: 777, via: 'unix' }, { uid: 0, via: 'unix' }) },
      port: {
        cookie: 'server-cookie',
        connect: async (client, context) => {
          seen.push({ context: context.toString(), cookieDuring: client.cookie });
          await new Promise((r) => setTimeout(r, 5));
          return { tag: context.toString() };
        },
      },
    });
    t.after(() => h.close());
    const { client } = await h.connectPair({ context: Buffer.from('hello'), pid: 1234 });
    assert.deepEqual(seen, [{ context: 'hello', cookieDuring: undefined }]);
    assert.deepEqual(client.cookie, { tag: 'hello' });
    assert.equal(client.context.toString(), 'hello');
    assert.deepEqual(client.identity, { uid: 0, gid: 0, pid: 777, via: 'unix' });
    assert.equal(client.processId, 777, 'the OS pid wins over the one the client reports');
    assert.equal(client.portName, PORT_NAME);
    assert.equal(client.serverPort, h.port);
    assert.equal(client.serverPort.cookie, 'server-cookie');
    assert.equal(client.connected, true);
    assert.ok(h.port.connections.has(client));
    // Without an OS pid the reported one is used; 0 means unknown.
    const second = await h.connectPair({ pid: 4321 });
    assert.equal(second.client.processId, 4321);
    assert.notEqual(second.client.id, client.id);
  },
);

test('unknown and closed ports answer ERROR_FILE_NOT_FOUND; names are case-insensitive', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  assert.equal(await connectResult(h.endpoint, '\\NoSuchPort'), HR.ERROR_FILE_NOT_FOUND);
  assert.equal(await connectResult(h.endpoint, ''), HR.ERROR_FILE_NOT_FOUND);
  const w = await h.connect({ portName: PORT_NAME.toUpperCase() });
  assert.equal(w.isOpen, true);
});

test('the default security admits only admins (uid 0 and the owner by default)', OPTS, async (t) => {
  const h = await startSimulator({
    options: { peerCredentials: identities({ uid: 1000, gid: 1000, via: 'unix' }, { uid: 0, gid: 0, via: 'unix' }) },
  });
  t.after(() => h.close());
  assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_ACCESS_DENIED);
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0);
});

test('admins can be configured by uid and gid', OPTS, async (t) => {
  const h = await startSimulator({
    options: {
      admins: { uids: [500], gids: [27] },
      peerCredentials: identities(
        { uid: 500, gid: 1, via: 'unix' },
        { uid: 1, gid: 27, via: 'unix' },
        { uid: 0, gid: 0, via: 'unix' }, // root is not an admin when the list says otherwise
        undefined, // no credentials on a private socket = the owner, who is not listed either
      ),
    },
  });
  t.after(() => h.close());
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0);
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0);
  assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_ACCESS_DENIED);
  const ownUid = process.getuid?.();
  assert.equal(await connectResult(h.endpoint, PORT_NAME), ownUid === 500 ? 0 : HR.ERROR_ACCESS_DENIED);
});

test('port security lists uids and gids, with or without admins', OPTS, async (t) => {
  const h = await startSimulator({
    options: {
      peerCredentials: identities(
        { uid: 1000, gid: 100, via: 'unix' },
        { uid: 1001, gid: 200, via: 'unix' },
        { uid: 1002, gid: 100, via: 'unix' },
        { uid: 0, gid: 0, via: 'unix' },
        { uid: 0, gid: 0, via: 'unix' },
        { uid: 1000, gid: 5, via: 'unix' },
      ),
    },
    port: { security: { allowUids: [1000], allowGids: [100] } },
  });
  t.after(() => h.close());
  const noAdmins = h.filter.createCommunicationPort('\\UsersOnly', {
    maxConnections: 4,
    security: { allowUids: [1000], includeAdmins: false },
  });
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0, 'listed uid');
  assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_ACCESS_DENIED, 'neither uid nor gid listed');
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0, 'listed gid');
  assert.equal(await connectResult(h.endpoint, PORT_NAME), 0, 'admins included by default');
  assert.equal(await connectResult(h.endpoint, noAdmins.name), HR.ERROR_ACCESS_DENIED, 'includeAdmins: false');
  assert.equal(await connectResult(h.endpoint, noAdmins.name), 0);
});

test('without peer credentials only a socket in a private directory makes the peer the owner', OPTS, async (t) => {
  const noCreds = (): undefined => undefined;
  // Default listen: private 0700 directory -> the peer is the owner, an admin by default.
  const priv = await startSimulator({ options: { peerCredentials: noCreds } });
  t.after(() => priv.close());
  const { client } = await priv.connectPair();
  assert.deepEqual(client.identity, { via: 'unix' });
  assert.equal(client.processId, process.pid);
  assert.equal(fs.statSync(path.dirname(priv.endpoint.slice(5))).mode & 0o777, 0o700);
  // A socket in a directory others can enter: no identity, so access is denied.
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-shared-'));
  fs.chmodSync(shared, 0o755);
  const pub = await startSimulator({
    options: { peerCredentials: noCreds },
    listen: { path: path.join(shared, 's.sock') },
  });
  t.after(async () => {
    await pub.close();
    fs.rmSync(shared, { recursive: true, force: true });
  });
  assert.equal(pub.endpoint, `unix:${path.join(shared, 's.sock')}`);
  assert.equal(await connectResult(pub.endpoint, PORT_NAME), HR.ERROR_ACCESS_DENIED);
  // An explicit path in a private directory is trusted like the default one.
  const mine = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-mine-'));
  fs.chmodSync(mine, 0o700);
  const own = await startSimulator({
    options: { peerCredentials: noCreds },
    listen: { path: path.join(mine, 's.sock') },
  });
  t.after(async () => {
    await own.close();
    assert.equal(fs.existsSync(path.join(mine, 's.sock')), false, 'socket file removed on close');
    fs.rmSync(mine, { recursive: true, force: true });
  });
  assert.equal(await connectResult(own.endpoint, PORT_NAME), 0);
});

test('a throwing peerCredentials hook is logged and treated as no credentials', OPTS, async (t) => {
  const h = await startSimulator({
    options: {
      peerCredentials: () => {
        throw new Error('boom');
      },
    },
  });
  t.after(() => h.close());
  const { client } = await h.connectPair();
  assert.deepEqual(client.identity, { via: 'unix' });
  assert.ok(h.logs.some((l) => /peerCredentials failed: boom/.test(l)));
});

test(
  'MaxConnections is enforced, counting connects still in ConnectNotify; a freed slot can be reused',
  OPTS,
  async (t) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const h = await startSimulator({
      port: {
        maxConnections: 2,
        connect: async () => {
          if (++calls === 2) await gate;
        },
      },
    });
    t.after(() => h.close());
    const first = await h.connect();
    const slow = await h.open();
    const slowResult = slow.connect({ portName: PORT_NAME });
    await until(() => calls >= 2, { what: 'both connects to reach ConnectNotify' });
    assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_CONNECTION_COUNT_LIMIT);
    release();
    assert.equal(await slowResult, 0);
    assert.equal(h.port.connections.size, 2);
    assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_CONNECTION_COUNT_LIMIT);
    const gone = h.nextEvent('disconnect');
    await first.close();
    await gone;
    assert.equal(await connectResult(h.endpoint, PORT_NAME), 0);
  },
);

test('ConnectNotify can refuse with an NTSTATUS, mapped through RtlNtStatusToDosError', OPTS, async (t) => {
  const verdicts: unknown[] = [
    new NtStatusError(NtStatus.STATUS_ACCESS_DENIED),
    new NtStatusError(NtStatus.STATUS_INSUFFICIENT_RESOURCES),
    async () => {
      throw new NtStatusError(NtStatus.STATUS_CONNECTION_REFUSED);
    },
    new NtStatusError(NtStatus.STATUS_FLT_DELETING_OBJECT),
    new NtStatusError(0xc0ffee01),
    new Error('not an NtStatusError'),
    new NtStatusError(NtStatus.STATUS_TIMEOUT), // a success code is no refusal reason
  ];
  let disconnects = 0;
  const h = await startSimulator({
    port: {
      maxConnections: 1,
      connect: () => {
        const v = verdicts.shift();
        if (typeof v === 'function') return (v as () => Promise<never>)();
        throw v;
      },
      disconnect: () => void disconnects++,
    },
  });
  t.after(() => h.close());
  const results = [];
  for (let i = 0; i < 7; i++) results.push(await connectResult(h.endpoint, PORT_NAME));
  assert.deepEqual(results, [
    HR.ERROR_ACCESS_DENIED,
    HR.ERROR_NO_SYSTEM_RESOURCES,
    HR.ERROR_CONNECTION_REFUSED,
    HR.ERROR_FLT_DELETING_OBJECT,
    HR.ERROR_MR_MID_NOT_FOUND,
    HR.ERROR_GEN_FAILURE,
    HR.ERROR_GEN_FAILURE,
  ]);
  assert.equal(disconnects, 0, 'refused connections never connected');
  assert.equal(h.port.connections.size, 0, 'and hold no slot');
  assert.ok(h.logs.some((l) => /connect callback .* failed with Error: not an NtStatusError/.test(l)));
});

test('the stream is closed after a failed CONNECT_RESULT', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const w = await h.open();
  assert.equal(await w.connect({ portName: '\\Nope' }), HR.ERROR_FILE_NOT_FOUND);
  await withTimeout(w.closed, { what: 'stream close after refusal' });
});

test('CONNECT options other than FLT_PORT_FLAG_SYNC_HANDLE are invalid', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  assert.equal(await connectResult(h.endpoint, PORT_NAME, { options: 1 }), 0);
  assert.equal(await connectResult(h.endpoint, PORT_NAME, { options: 2 }), HR.ERROR_INVALID_PARAMETER);
});

test(
  'closing a server port refuses new connections while existing ones live on; the name becomes free',
  OPTS,
  async (t) => {
    const h = await startSimulator({ port: { message: () => Buffer.from('alive') } });
    t.after(() => h.close());
    const w = await h.connect();
    h.port.close();
    h.port.close(); // idempotent
    assert.equal(h.port.closed, true);
    assert.equal(await connectResult(h.endpoint, PORT_NAME), HR.ERROR_FILE_NOT_FOUND);
    assert.deepEqual(await w.send(Buffer.alloc(0), 16), { hresult: 0, output: Buffer.from('alive') });
    assert.equal(h.port.connections.size, 1);
    const again = h.filter.createCommunicationPort(PORT_NAME, { maxConnections: 1, message: () => Buffer.from('new') });
    const w2 = await h.connect();
    assert.deepEqual((await w2.send(Buffer.alloc(0), 16)).output, Buffer.from('new'));
    assert.equal(again.connections.size, 1);
  },
);

test('createCommunicationPort validates its arguments and port names are unique across filters', OPTS, async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const status = (fn: () => unknown): number => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof NtStatusError, String(e));
      return e.status;
    }
    assert.fail('expected an NtStatusError');
  };
  const other = h.sim.registerFilter('Other');
  assert.equal(
    status(() => other.createCommunicationPort(PORT_NAME, { maxConnections: 1 })),
    NtStatus.STATUS_OBJECT_NAME_COLLISION,
  );
  assert.equal(
    status(() => h.filter.createCommunicationPort(PORT_NAME.toLowerCase(), { maxConnections: 1 })),
    NtStatus.STATUS_OBJECT_NAME_COLLISION,
  );
  for (const maxConnections of [0, -1, 1.5, Number.NaN, undefined as unknown as number, '2' as unknown as number]) {
    assert.equal(
      status(() => h.filter.createCommunicationPort('\\P', { maxConnections })),
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  assert.equal(
    status(() => h.filter.createCommunicationPort('', { maxConnections: 1 })),
    NtStatus.STATUS_OBJECT_NAME_INVALID,
  );
  assert.equal(
    status(() =>
      h.filter.createCommunicationPort('\\P', { maxConnections: 1, security: 'everyone' as unknown as 'admins' }),
    ),
    NtStatus.STATUS_INVALID_PARAMETER,
  );
  assert.equal(
    status(() => h.filter.createCommunicationPort('\\P', { maxConnections: 1, security: { allowUids: [-1] } })),
    NtStatus.STATUS_INVALID_PARAMETER,
  );
  assert.equal(
    status(() => h.filter.createCommunicationPort('\\P', { maxConnections: 1, message: 'x' as unknown as undefined })),
    NtStatus.STATUS_INVALID_PARAMETER,
  );
  // None of the failures above registered the name.
  assert.equal(h.filter.createCommunicationPort('\\P', { maxConnections: 1 }).name, '\\P');
  // Filters: unique names, numeric altitudes.
  assert.equal(
    status(() => h.sim.registerFilter('Other')),
    NtStatus.STATUS_OBJECT_NAME_COLLISION,
  );
  assert.equal(
    status(() => h.sim.registerFilter('')),
    NtStatus.STATUS_OBJECT_NAME_INVALID,
  );
  assert.equal(
    status(() => h.sim.registerFilter('F', { altitude: 'high' })),
    NtStatus.STATUS_INVALID_PARAMETER,
  );
  assert.equal(h.sim.registerFilter('F', { altitude: '370030.5' }).altitude, '370030.5');
});

test('frames sent right behind CONNECT wait for ConnectNotify and are then served in order', OPTS, async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await startSimulator({ port: { connect: () => gate, message: (_c, input) => input } });
  t.after(() => h.close());
  const w = await h.open();
  const connected = w.connect({ portName: PORT_NAME });
  const get = w.postGet(64);
  const sent = w.send(Buffer.from('early'), 16);
  assert.equal(await stillPending(connected), true);
  release();
  assert.equal(await connected, 0);
  assert.deepEqual((await sent).output, Buffer.from('early'));
  const client = [...h.port.connections][0] as ClientPort;
  const r = await h.filter.sendMessage(client, Buffer.from('to the early get'));
  assert.equal(r.status, 0);
  assert.equal((await withTimeout(get.done, { what: 'early get' })).data.toString(), 'to the early get');
});

test('a client that leaves during ConnectNotify gets no connect event, but DisconnectNotify runs', OPTS, async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const disconnected: ClientPort[] = [];
  let connects = 0;
  const h = await startSimulator({ port: { connect: () => gate, disconnect: (c) => void disconnected.push(c) } });
  h.sim.on('connect', () => connects++);
  t.after(() => h.close());
  const w = await h.open();
  void w.connect({ portName: PORT_NAME }).catch(() => undefined);
  await until(() => h.port.connections.size > 0 || connectNotifyRuns(h), { what: 'ConnectNotify to run' });
  w.destroy();
  await withTimeout(w.closed, { what: 'close' });
  // The simulator's side of the stream must have seen the close before ConnectNotify returns.
  await until(() => h.sim.streamStats().length === 0, { what: 'the simulator to see the stream close' });
  release();
  await until(() => disconnected.length > 0, { what: 'DisconnectNotify' });
  assert.equal(disconnected.length, 1);
  assert.equal(disconnected[0]?.connected, false);
  assert.equal(connects, 0);
  assert.equal(h.port.connections.size, 0);
});

test('TCP: the per-run secret is required and compared exactly', OPTS, async (t) => {
  const h = await startSimulator({ listen: { tcp: { port: 0 } } });
  t.after(() => h.close());
  const m = /^tcp:127\.0\.0\.1:(\d+)#([0-9a-f]{48})$/.exec(h.endpoint);
  assert.ok(m, h.endpoint);
  assert.equal(h.sim.endpoint, h.endpoint);
  const { client } = await h.connectPair();
  assert.deepEqual(client.identity, { via: 'secret' });
  const secret = m[2] as string;
  for (const wrong of ['', secret.slice(1), `${secret}x`, secret.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))]) {
    const w = await h.open();
    assert.equal(
      await w.connect({ portName: PORT_NAME, secret: wrong }),
      HR.ERROR_ACCESS_DENIED,
      `secret ${JSON.stringify(wrong)}`,
    );
    await withTimeout(w.closed, { what: 'close after wrong secret' });
  }
  // The secret is checked before the port name, so a wrong secret cannot probe for ports.
  const probe = await h.open();
  assert.equal(await probe.connect({ portName: '\\NoSuchPort', secret: 'x' }), HR.ERROR_ACCESS_DENIED);
});

test('listen refuses non-loopback hosts, bad ports, a second listen and listening after close', OPTS, async () => {
  const sim = new FilterManagerSimulator();
  await assert.rejects(sim.listen({ tcp: { host: '0.0.0.0' as '127.0.0.1' } }), /127\.0\.0\.1 only/);
  await assert.rejects(sim.listen({ tcp: { port: 70000 } }), RangeError);
  await assert.rejects(sim.listen({ path: '' }), TypeError);
  const endpoint = await sim.listen();
  assert.match(endpoint, /^unix:\/.*sim\.sock$/);
  await assert.rejects(sim.listen(), /already listening/);
  await sim.close();
  await assert.rejects(sim.listen(), /closed/);
  assert.throws(() => sim.registerFilter('late'), NtStatusError);
});

test(
  'a connect to a missing endpoint is the client\u2019s problem, and close() without listen() works',
  OPTS,
  async () => {
    const sim = new FilterManagerSimulator();
    await sim.close();
    await assert.rejects(WireClient.open('unix:/nonexistent/fltmgr.sock'));
    await assert.rejects(
      WireClient.connect('unix:/nonexistent/fltmgr.sock', { portName: PORT_NAME }),
      (e: unknown) => !(e instanceof WireConnectError),
    );
  },
);
