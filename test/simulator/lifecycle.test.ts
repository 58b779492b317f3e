// Connection teardown from either side, unload, several connections, simulator close.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NtStatusError, type ClientPort } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { WireClient } from '../helpers/wire-client';
import { FILTER_NAME, PORT_NAME, connectNotifyRuns, startSimulator } from '../helpers/sim';
import { TEST_TIMEOUT_MS, stillPending, until, withTimeout } from '../helpers/timing';
import { HR } from '../helpers/status';

const OPTS = { timeout: TEST_TIMEOUT_MS };
const ROOT = path.resolve(__dirname, '..', '..');

test(
  'unload ends every connection: DISCONNECT, stream closed, DisconnectNotify once; the port is gone',
  OPTS,
  async (t) => {
    const disconnected: ClientPort[] = [];
    let finished = false;
    const h = await startSimulator({
      port: {
        disconnect: async (c) => {
          disconnected.push(c);
          c.close(); // what a real DisconnectNotify does (FltCloseClientPort): must be harmless here
          await new Promise((r) => setTimeout(r, 20));
          finished = true;
        },
      },
    });
    t.after(() => h.close());
    const a = await h.connectPair();
    const c = await h.connectPair();
    const second = h.filter.createCommunicationPort('\\Second', { maxConnections: 1 });
    const s = await h.connectPair({ portName: '\\Second' });
    const pending = h.filter.sendMessage(a.client, Buffer.from('never read'), { replyLength: 4 });
    await h.filter.unload();
    assert.equal(finished, true, 'unload waits for DisconnectNotify');
    for (const w of [a.wire, c.wire, s.wire]) {
      assert.equal(await withTimeout(w.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
      await withTimeout(w.closed, { what: 'stream closed' });
    }
    assert.deepEqual(await pending, { status: NtStatus.STATUS_PORT_DISCONNECTED });
    // \Second has no DisconnectNotify; the two on the first port ran once each.
    assert.equal(disconnected.length, 2);
    assert.deepEqual(new Set(disconnected), new Set([a.client, c.client]));
    assert.ok([a.client, c.client, s.client].every((x) => !x.connected));
    assert.equal(h.port.closed && second.closed, true);
    assert.equal(h.port.connections.size, 0);
    const late = await h.open();
    assert.equal(await late.connect({ portName: PORT_NAME }), HR.ERROR_FILE_NOT_FOUND);
    assert.throws(
      () => h.filter.createCommunicationPort('\\Third', { maxConnections: 1 }),
      (e: unknown) => e instanceof NtStatusError && e.status === NtStatus.STATUS_FLT_DELETING_OBJECT,
    );
    assert.equal(h.filter.unloaded, true);
    await h.filter.unload(); // idempotent
    // The filter name is free again.
    assert.equal(h.sim.registerFilter(FILTER_NAME).name, FILTER_NAME);
  },
);

test(
  'ClientPort.close (FltCloseClientPort): DISCONNECT, stream closed, DisconnectNotify; idempotent',
  OPTS,
  async (t) => {
    let disconnects = 0;
    const h = await startSimulator({ port: { disconnect: () => void disconnects++ } });
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const other = await h.connectPair();
    const get = wire.postGet(64);
    const ev = h.nextEvent('disconnect');
    client.close();
    client.close();
    assert.equal(await ev, client);
    assert.equal(await withTimeout(wire.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
    await withTimeout(wire.closed, { what: 'closed' });
    await assert.rejects(get.done, /stream closed/, 'no GET_COMPLETE follows DISCONNECT');
    assert.equal(disconnects, 1);
    assert.equal(client.connected, false);
    assert.deepEqual([...h.port.connections], [other.client]);
    // The other connection is untouched.
    const g = other.wire.postGet(64);
    await h.filter.sendMessage(other.client, Buffer.from('still here'));
    assert.equal((await g.done).data.toString(), 'still here');
  },
);

test('closing the handle runs DisconnectNotify once; a throwing DisconnectNotify is only logged', OPTS, async (t) => {
  const seen: number[] = [];
  const h = await startSimulator({
    port: {
      disconnect: (c) => {
        seen.push(c.id);
        throw new Error('disconnect bug');
      },
    },
  });
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const ev = h.nextEvent('disconnect');
  await wire.close();
  await ev;
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(seen, [client.id]);
  assert.ok(h.logs.some((l) => /disconnect callback .* failed with Error: disconnect bug/.test(l)));
  client.close(); // after the fact: nothing happens
  assert.deepEqual(seen, [client.id]);
});

test(
  'a client closed by the kernel during ConnectNotify gets S_OK and then DISCONNECT; unload waits for it',
  OPTS,
  async (t) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let disconnects = 0;
    const h = await startSimulator({ port: { connect: () => gate, disconnect: () => void disconnects++ } });
    t.after(() => h.close());
    const w = await h.open();
    const result = w.connect({ portName: PORT_NAME });
    await until(() => connectNotifyRuns(h), { what: 'ConnectNotify to run' });
    const unloaded = h.filter.unload();
    assert.equal(await stillPending(unloaded, 30), true, 'unload waits for ConnectNotify');
    release();
    assert.equal(await result, 0);
    assert.equal(await withTimeout(w.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
    await withTimeout(unloaded, { what: 'unload' });
    assert.equal(disconnects, 1);
  },
);

test('listener exceptions in connect/disconnect events do not break the simulator', OPTS, async (t) => {
  const h = await startSimulator({ port: { message: () => Buffer.from('ok') } });
  h.sim.on('connect', () => {
    throw new Error('listener bug');
  });
  t.after(() => h.close());
  const w = await h.connect();
  assert.equal((await w.send(Buffer.alloc(0), 2)).hresult, 0);
  assert.ok(h.logs.some((l) => /'connect' listener threw: listener bug/.test(l)));
});

test('close() ends connections, closes raw streams, removes the socket and its private directory', OPTS, async () => {
  const h = await startSimulator();
  const socketPath = h.endpoint.slice('unix:'.length);
  const { wire } = await h.connectPair();
  const raw = await h.open(); // never sends CONNECT
  assert.equal(fs.existsSync(socketPath), true);
  const closing = h.sim.close();
  assert.equal(h.sim.close(), closing, 'idempotent');
  await withTimeout(closing, { what: 'close' });
  assert.equal(await withTimeout(wire.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
  await withTimeout(wire.closed, { what: 'wire closed' });
  await withTimeout(raw.closed, { what: 'raw closed' });
  assert.equal(fs.existsSync(socketPath), false);
  assert.equal(fs.existsSync(path.dirname(socketPath)), false);
  await assert.rejects(WireClient.open(h.endpoint));
});

test('a client that never closes its side does not hold close() beyond its grace period', OPTS, async () => {
  const h = await startSimulator();
  const { wire } = await h.connectPair();
  wire.socket.allowHalfOpen = true; // keep our side open after the simulator's FIN
  await withTimeout(h.sim.close(), { what: 'close' });
  assert.equal(await withTimeout(wire.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
  wire.destroy();
});

test('a closed simulator does not keep the process alive', OPTS, async () => {
  // The child prints "closed", then arms an unref'd timer that prints "still running": it fires only if something
  // keeps the event loop alive. So a leak shows as that line (at once), a clean close as the exit.
  const script = path.join(__dirname, 'fixtures', 'exits-after-close.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const code = await withTimeout(
    new Promise<number | null>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/still running/.test(out)) reject(new Error(`something keeps the process alive after close():\n${out}`));
      });
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (c) => resolve(c));
    }),
    { what: 'child exit' },
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  assert.equal(code, 0, out);
  assert.match(out, /closed/);
});

test('a process that exits without close() does not leave its socket behind', OPTS, async () => {
  const script = path.join(__dirname, 'fixtures', 'exit-without-close.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await withTimeout(new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c))), {
    what: 'child exit',
  });
  assert.equal(code, 0);
  const socketPath = out.trim().slice('unix:'.length);
  assert.match(socketPath, /sim\.sock$/);
  assert.equal(fs.existsSync(socketPath), false);
  assert.equal(fs.existsSync(path.dirname(socketPath)), false);
});

test(
  'unload also waits for the DisconnectNotify of a connection the client ended just before (no callback after unload)',
  OPTS,
  async (t) => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    let finished = false;
    const h = await startSimulator({
      port: {
        disconnect: async () => {
          started = true;
          await held; // a DisconnectNotify still running (the kernel harness: the driver's C, on its thread)
          finished = true;
        },
      },
    });
    t.after(async () => {
      release();
      await h.close();
    });
    const a = await h.connectPair();
    a.wire.destroy(); // the client closes its handle: the connection ends, its DisconnectNotify starts
    await until(() => started, { what: 'DisconnectNotify to start' });
    const unloaded = h.filter.unload();
    assert.equal(await stillPending(unloaded, 30), true, 'unload returned while a DisconnectNotify was running');
    release();
    await unloaded;
    assert.equal(finished, true);
  },
);
