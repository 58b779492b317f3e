// Who may connect to the twin's port and what they may do: administrators only by default; the opt-in group
// (portGroupGid, the registry's PortGroupSid) may connect and use GET_STATS / GET_CONFIG / ECHO / PROBE, but
// neither SET_CONFIG nor the scanner role. Identities are injected through the simulator's `peerCredentials` and
// `admins` options, and, when running as root, also come from a real process running as another uid.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ClientPort, PeerIdentity } from '../../lib/simulator';
import * as P from '../../driver-sample/protocol';
import { SAMPLE_TARGETS, rejectsWith, serveRaw, startSample } from '../helpers/sample';
import { HANG_GUARD_MS } from '../helpers/timing';
import { HR } from '../helpers/status';

for (const target of SAMPLE_TARGETS) {
  describe(`[${target}] injected identities`, () => {
    test('default security: administrators only; a non-admin is refused by the port itself', async (t) => {
      let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
      const h = await startSample({ target, sim: { peerCredentials: () => who } });
      t.after(() => h.close());
      await rejectsWith(h.connect(), HR.ERROR_ACCESS_DENIED);
      await rejectsWith(h.connect({ scanner: true }), HR.ERROR_ACCESS_DENIED);
      assert.equal((await h.driver.stats()).connectionsTotal, 0n, 'ConnectNotify never ran');
      who = { uid: 0, gid: 0, via: 'unix' }; // root is one of the simulator's default administrators
      const admin = await h.connect({ scanner: true });
      await P.setConfig(admin, P.defaultConfig());
    });

    test('portGroupGid admits the group for commands, not for SET_CONFIG or scanning', async (t) => {
      let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
      const h = await startSample({ target, sim: { peerCredentials: () => who }, driver: { portGroupGid: 1000 } });
      t.after(() => h.close());
      const ui = await h.connect();
      const stats = await P.getStats(ui);
      assert.equal(stats.connectionsCurrent, 1);
      assert.deepEqual(await P.getConfig(ui), P.defaultConfig());
      assert.deepEqual(await P.echo(ui, Buffer.from('ping')), Buffer.from('ping'));
      serveRaw(ui);
      await h.untilReceiving();
      assert.equal((await P.probe(ui, { count: 3, timeoutMs: 10_000 })).replied, 3);
      await rejectsWith(P.setConfig(ui, { ...P.defaultConfig(), failClosed: true }), HR.ERROR_ACCESS_DENIED);
      assert.equal((await h.driver.configuration()).failClosed, false);
      await rejectsWith(h.connect({ scanner: true }), HR.ERROR_ACCESS_DENIED);
      who = { uid: 1001, gid: 1001, via: 'unix' }; // not in the group
      await rejectsWith(h.connect(), HR.ERROR_ACCESS_DENIED);
      who = { uid: 0, gid: 0, via: 'unix' }; // administrators keep their access
      const admin = await h.connect({ scanner: true });
      assert.equal((await P.setConfig(admin, { ...P.defaultConfig(), failClosed: true })).failClosed, true);
    });

    test("the simulator's administrators (by uid or gid) are the driver's administrators", async (t) => {
      let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
      const h = await startSample({
        target,
        sim: { peerCredentials: () => who, admins: { uids: [1000], gids: [27] } },
      });
      t.after(() => h.close());
      const byUid = await h.connect({ scanner: true });
      await P.setConfig(byUid, P.defaultConfig());
      who = { uid: 2000, gid: 27, via: 'unix' };
      const byGid = await h.connect({ scanner: true });
      await P.setConfig(byGid, P.defaultConfig());
      who = { uid: 0, gid: 0, via: 'unix' }; // with an explicit admins list, root is not special
      await rejectsWith(h.connect(), HR.ERROR_ACCESS_DENIED);
      assert.equal((await h.driver.stats()).scannerConnections, 2);
    });

    test('the CLI form of the option is decimal text; an invalid value is logged and ignored (admin-only)', async (t) => {
      let who: PeerIdentity = { uid: 1000, gid: 1000, via: 'unix' };
      const textual = await startSample({
        target,
        sim: { peerCredentials: () => who },
        driver: { portGroupGid: '1000' },
      });
      t.after(() => textual.close());
      await P.getStats(await textual.connect());
      const invalid = await startSample({
        target,
        sim: { peerCredentials: () => who },
        driver: { portGroupGid: 'staff' },
      });
      t.after(() => invalid.close());
      assert.equal(invalid.driver.portGroupGid, undefined);
      assert.ok(
        invalid.logs.some((l) => /PortGroupSid staff .*admin-only/.test(l)),
        invalid.logs.join('\n'),
      );
      await rejectsWith(invalid.connect(), HR.ERROR_ACCESS_DENIED);
      who = { uid: 0, gid: 0, via: 'unix' };
      await invalid.connect();
    });
  });

  const NOBODY = 65534;
  const notRoot =
    process.platform === 'win32' || process.getuid?.() !== 0 ? 'needs root to run a client as uid 65534' : false;

  const ROOT = resolve(__dirname, '..', '..');

  /** The addon this process loads (the sanitizer lane's FLTMGR_BINDING, else what node-gyp-build finds). */
  function addonPath(): string {
    const override = process.env['FLTMGR_BINDING'];
    if (override) return resolve(override);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped CommonJS package
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    return nodeGypBuild.resolve(ROOT);
  }

  /**
   * Stages everything the uid-65534 child needs in a fresh world-readable folder (0755, files 0644), because the
   * checkout may lie where that user cannot enter (a clone under /root, a mktemp -d folder: mode 0700). The
   * child is fixtures/unprivileged-client.ts bundled with the library and the protocol into one CommonJS file by
   * esbuild (the bundler tsx itself runs on, so it is installed with tsx), plus a copy of the addon this process
   * loaded. Nothing under the checkout is read by the child.
   */
  function stageChild(): { dir: string; script: string; addon: string } {
    type BuildSync = (options: Record<string, unknown>) => { errors: unknown[] };
    const esbuildPath = require.resolve('esbuild', { paths: [dirname(require.resolve('tsx/package.json'))] });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- tsx's own esbuild, found at run time
    const esbuild = require(esbuildPath) as { buildSync: BuildSync };
    const dir = mkdtempSync(join(tmpdir(), 'fltmgr-sample-child-'));
    try {
      const script = join(dir, 'unprivileged-client.js');
      esbuild.buildSync({
        entryPoints: [join(__dirname, 'fixtures', 'unprivileged-client.ts')],
        outfile: script,
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: `node${process.versions.node.split('.')[0]}`,
        // FLTMGR_BINDING names the staged addon, so node-gyp-build's search is never used.
        external: ['node-gyp-build'],
        logLevel: 'error',
      });
      const addon = join(dir, 'fltmgr.node');
      copyFileSync(addonPath(), addon);
      for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
      chmodSync(dir, 0o755);
      return { dir, script, addon };
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  describe(`[${target}] a real client process as uid 65534 (peer credentials from the OS)`, { skip: notRoot }, () => {
    async function runAsNobody(
      portGroupGid: number | undefined,
    ): Promise<{ result: Record<string, number>; seen: ClientPort[] }> {
      // The socket must be reachable by the other user: a 0755 directory and a 0777 socket.
      const dir = mkdtempSync(join(tmpdir(), 'fltmgr-sample-sec-'));
      chmodSync(dir, 0o755);
      const home = mkdtempSync(join(tmpdir(), 'fltmgr-sample-home-'));
      chmodSync(home, 0o777);
      const staged = stageChild();
      const socket = join(dir, 'sim.sock');
      const h = await startSample({
        target,
        listen: { path: socket },
        ...(portGroupGid === undefined ? {} : { driver: { portGroupGid } }),
      });
      const seen: ClientPort[] = [];
      h.sim.on('connect', (c) => seen.push(c));
      try {
        chmodSync(socket, 0o777);
        const child = spawn(process.execPath, [staged.script], {
          uid: NOBODY,
          gid: NOBODY,
          cwd: staged.dir,
          env: { ...process.env, FLTMGR_SIMULATOR: h.endpoint, FLTMGR_BINDING: staged.addon, HOME: home, TMPDIR: home },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
        child.stderr.setEncoding('utf8').on('data', (t: string) => (out += t));
        const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
        const guard = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS); // a hang guard, not a budget
        const [code, signal] = await exited;
        clearTimeout(guard);
        assert.deepEqual([code, signal], [0, null], out);
        const line = out.split('\n').find((l) => l.startsWith('{'));
        assert.ok(line, out);
        return { result: JSON.parse(line) as Record<string, number>, seen };
      } finally {
        await h.close();
        rmSync(dir, { recursive: true, force: true });
        rmSync(home, { recursive: true, force: true });
        rmSync(staged.dir, { recursive: true, force: true });
      }
    }

    test('refused by default (HR.ERROR_ACCESS_DENIED)', async () => {
      const { result, seen } = await runAsNobody(undefined);
      assert.equal(result['uid'], NOBODY);
      assert.equal(result['connect'], HR.ERROR_ACCESS_DENIED);
      assert.equal(result['scanner'], HR.ERROR_ACCESS_DENIED);
      assert.equal(seen.length, 0);
    });

    test('admitted through portGroupGid for commands, refused SET_CONFIG and the scanner role', async () => {
      const { result, seen } = await runAsNobody(NOBODY);
      assert.deepEqual(
        [result['connect'], result['getStats'], result['echo'], result['setConfig'], result['scanner']],
        [0, 0, 0, HR.ERROR_ACCESS_DENIED, HR.ERROR_ACCESS_DENIED],
      );
      // The connection the driver saw: the OS's credentials of the child, and its pid (the PID rule held).
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.identity.uid, NOBODY);
      assert.equal(seen[0]?.identity.gid, NOBODY);
      assert.equal(seen[0]?.processId, result['pid']);
    });
  });
}
