// Who may connect to the twin's port and what they may do: administrators only by default; the opt-in group
// (portGroupGid, the registry's PortGroupSid) may connect and use GET_STATS / GET_CONFIG / ECHO / PROBE, but
// neither SET_CONFIG nor the scanner role. Identities are injected through the simulator's `peerCredentials` and
// `admins` options, and, when running as root, also come from a real process running as another uid.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientPort, PeerIdentity } from '../../lib/simulator';
import * as P from '../../driver-sample/protocol';
import { E_ACCESSDENIED, rejectsWith, serveRaw, startSample } from './harness';

describe('injected identities', () => {
  test('default security: administrators only; a non-admin is refused by the port itself', async () => {
    let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
    const h = await startSample({ sim: { peerCredentials: () => who } });
    try {
      await rejectsWith(h.connect(), E_ACCESSDENIED);
      await rejectsWith(h.connect({ scanner: true }), E_ACCESSDENIED);
      assert.equal(h.twin.stats().connectionsTotal, 0n, 'ConnectNotify never ran');
      who = { uid: 0, gid: 0, via: 'unix' }; // root is one of the simulator's default administrators
      const admin = await h.connect({ scanner: true });
      await P.setConfig(admin, P.defaultConfig());
    } finally {
      await h.close();
    }
  });

  test('portGroupGid admits the group for commands, not for SET_CONFIG or scanning', async () => {
    let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
    const h = await startSample({ sim: { peerCredentials: () => who }, twin: { portGroupGid: 1000 } });
    try {
      const ui = await h.connect();
      const stats = await P.getStats(ui);
      assert.equal(stats.connectionsCurrent, 1);
      assert.deepEqual(await P.getConfig(ui), P.defaultConfig());
      assert.deepEqual(await P.echo(ui, Buffer.from('ping')), Buffer.from('ping'));
      serveRaw(ui);
      assert.equal((await P.probe(ui, { count: 3 })).replied, 3);
      await rejectsWith(P.setConfig(ui, { ...P.defaultConfig(), failClosed: true }), E_ACCESSDENIED);
      assert.equal(h.twin.configuration.failClosed, false);
      await rejectsWith(h.connect({ scanner: true }), E_ACCESSDENIED);
      who = { uid: 1001, gid: 1001, via: 'unix' }; // not in the group
      await rejectsWith(h.connect(), E_ACCESSDENIED);
      who = { uid: 0, gid: 0, via: 'unix' }; // administrators keep their access
      const admin = await h.connect({ scanner: true });
      assert.equal((await P.setConfig(admin, { ...P.defaultConfig(), failClosed: true })).failClosed, true);
    } finally {
      await h.close();
    }
  });

  test("the simulator's administrators (by uid or gid) are the driver's administrators", async () => {
    let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
    const h = await startSample({ sim: { peerCredentials: () => who, admins: { uids: [1000], gids: [27] } } });
    try {
      const byUid = await h.connect({ scanner: true });
      await P.setConfig(byUid, P.defaultConfig());
      who = { uid: 2000, gid: 27, via: 'unix' };
      const byGid = await h.connect({ scanner: true });
      await P.setConfig(byGid, P.defaultConfig());
      who = { uid: 0, gid: 0, via: 'unix' }; // with an explicit admins list, root is not special
      await rejectsWith(h.connect(), E_ACCESSDENIED);
      assert.equal(h.twin.stats().scannerConnections, 2);
    } finally {
      await h.close();
    }
  });

  test('the CLI form of the option is decimal text; an invalid value is logged and ignored (admin-only)', async () => {
    let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
    const textual = await startSample({ sim: { peerCredentials: () => who }, twin: { portGroupGid: '1000' } });
    try {
      await P.getStats(await textual.connect());
    } finally {
      await textual.close();
    }
    const invalid = await startSample({ sim: { peerCredentials: () => who }, twin: { portGroupGid: 'staff' } });
    try {
      assert.equal(invalid.twin.portGroupGid, undefined);
      assert.ok(invalid.logs.some((l) => /PortGroupSid staff .*admin-only/.test(l)), invalid.logs.join('\n'));
      await rejectsWith(invalid.connect(), E_ACCESSDENIED);
      who = { uid: 0, gid: 0, via: 'unix' };
      await invalid.connect();
    } finally {
      await invalid.close();
    }
  });
});

const NOBODY = 65534;
const notRoot = process.platform === 'win32' || process.getuid?.() !== 0 ? 'needs root to run a client as uid 65534' : false;

describe('a real client process as uid 65534 (peer credentials from the OS)', { skip: notRoot }, () => {
  async function runAsNobody(portGroupGid: number | undefined): Promise<{ result: Record<string, number>; seen: ClientPort[] }> {
    // The socket must be reachable by the other user: a 0755 directory and a 0777 socket.
    const dir = mkdtempSync(join(tmpdir(), 'fltmgr-sample-sec-'));
    chmodSync(dir, 0o755);
    const home = mkdtempSync(join(tmpdir(), 'fltmgr-sample-home-'));
    chmodSync(home, 0o777);
    const socket = join(dir, 'sim.sock');
    const h = await startSample({ listen: { path: socket }, ...(portGroupGid === undefined ? {} : { twin: { portGroupGid } }) });
    const seen: ClientPort[] = [];
    h.sim.on('connect', (c) => seen.push(c));
    try {
      chmodSync(socket, 0o777);
      const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'unprivileged-client.ts')], {
        uid: NOBODY,
        gid: NOBODY,
        cwd: join(__dirname, '..', '..'),
        env: { ...process.env, FLTMGR_SIMULATOR: h.endpoint, HOME: home, TMPDIR: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
      child.stderr.setEncoding('utf8').on('data', (t: string) => (out += t));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(timer);
      assert.equal(code, 0, out);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      assert.ok(line, out);
      return { result: JSON.parse(line) as Record<string, number>, seen };
    } finally {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    }
  }

  test('refused by default (E_ACCESSDENIED)', async () => {
    const { result, seen } = await runAsNobody(undefined);
    assert.equal(result['uid'], NOBODY);
    assert.equal(result['connect'], E_ACCESSDENIED);
    assert.equal(result['scanner'], E_ACCESSDENIED);
    assert.equal(seen.length, 0);
  });

  test('admitted through portGroupGid for commands, refused SET_CONFIG and the scanner role', async () => {
    const { result, seen } = await runAsNobody(NOBODY);
    assert.deepEqual(
      [result['connect'], result['getStats'], result['echo'], result['setConfig'], result['scanner']],
      [0, 0, 0, E_ACCESSDENIED, E_ACCESSDENIED],
    );
    // The connection the driver saw: the OS's credentials of the child, and its pid (the PID rule held).
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.identity.uid, NOBODY);
    assert.equal(seen[0]?.identity.gid, NOBODY);
    assert.equal(seen[0]?.processId, result['pid']);
  });
});
