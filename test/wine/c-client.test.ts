// Wine lane only: the plain Win32 C client (test/fixtures/c-client/scanner_client.c: one IOCP, 2 threads x 4
// outstanding overlapped FilterGetMessage calls, CONTAINING_RECORD, replies sized header + data), linked
// against the real import library (-lfltlib), runs unchanged against the substitute fltlib.dll that
// scripts/wine/run-tests.js put in the prefix's system32 (the exe is run from a folder without a fltlib.dll),
// and the sample minifilter's twin hosted by a simulator in this Windows node process: named pipe and TCP.
// The substitute is checked independently of our addon. FLTMGR_WINE_C_CLIENT names the exe. Next to it,
// manage_client.exe (test/fixtures/c-client/manage_client.c) makes fltlib's management calls (FilterFindFirst/
// Next, FilterVolumeFindFirst, FilterInstanceFindFirst, FilterVolumeInstanceFindFirst, FilterGetDosName,
// FilterAttachAtAltitude, FilterDetach) through the same substitute; what it prints is compared with the
// simulator's own model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSample } from '../helpers/sample';
import { startBase } from '../helpers/sim';
import { HANG_GUARD_MS } from '../helpers/timing';

const exe = process.env['FLTMGR_WINE_C_CLIENT'];
const skip =
  process.env['FLTMGR_TEST_TARGET'] !== 'wine'
    ? 'not the Wine lane'
    : !exe
      ? 'FLTMGR_WINE_C_CLIENT not set (no scanner_client.exe in build-win/)'
      : false;

function runClient(
  args: string[],
  endpoint: string,
  program: string = exe!,
): Promise<{ code: number | null; out: string }> {
  const child = spawn(program, args, {
    env: { ...process.env, FLTMGR_SIMULATOR: endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill(), HANG_GUARD_MS); // a hang guard, not a budget
  // 'close', not 'exit': the exit can be reported before the last bytes of stdout have been read.
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test(
  'the C client runs against the substitute fltlib.dll in system32 (no fltlib.dll next to the exe)',
  { skip },
  () => {
    assert.equal(fs.existsSync(path.join(path.dirname(exe!), 'fltlib.dll')), false);
    const system32 = path.join(process.env['SystemRoot'] ?? 'C:\\windows', 'system32', 'fltlib.dll');
    assert.ok(fs.existsSync(system32), `${system32} missing`);
  },
);

for (const transport of ['pipe', 'tcp'] as const) {
  test(
    `the C client (scanner pattern) against the sample twin over ${transport}: echo, 200 messages answered, clean shutdown`,
    { skip },
    async (t) => {
      const h = await startSample(transport === 'tcp' ? { target: 'twin', listen: { tcp: {} } } : { target: 'twin' });
      t.after(() => h.close());
      assert.ok(h.endpoint.startsWith(`${transport}:`), h.endpoint);
      for (const args of [
        ['--count', '200'],
        ['--scanner', '--count', '200'],
        ['--no-reply', '--count', '50'],
      ]) {
        const r = await runClient(args, h.endpoint);
        assert.equal(r.code, 0, `scanner_client ${args.join(' ')} exited ${r.code}:\n${r.out}`);
        assert.match(r.out, /echo ok/);
        assert.match(r.out, /^PASS\s*$/m);
      }
    },
  );
}

const manageExe = exe ? path.join(path.dirname(exe), 'manage_client.exe') : '';
const manageSkip = skip || (fs.existsSync(manageExe) ? false : `${manageExe} not built`);

/** Highest altitude first, compared as numbers (the simulator's and Filter Manager's order). */
const byAltitude = (a: { altitude: string }, b: { altitude: string }): number =>
  Number(b.altitude) - Number(a.altitude);

for (const transport of ['pipe', 'tcp'] as const) {
  test(
    `the management calls through the substitute fltlib.dll over ${transport}: enumerations, DOS names, attach, detach`,
    { skip: manageSkip },
    async (t) => {
      const h = await startBase(transport === 'tcp' ? { listen: { tcp: {} } } : {});
      t.after(() => h.close());
      assert.ok(h.endpoint.startsWith(`${transport}:`), h.endpoint);
      h.sim.registerFilter('fltmgr-manage', { altitude: '370030' });
      h.sim.registerFilter('fltmgr-other', { altitude: '385100' });
      const volume = '\\Device\\HarddiskVolume2';
      const extra = 'fltmgr-manage extra';
      const filters = h.sim.filters();
      const volumes = h.sim.volumes();
      const instances = h.sim.instances({ filter: 'fltmgr-manage' });
      const onVolume = h.sim.instances({ volume });
      assert.ok(filters.length >= 2 && volumes.length >= 3 && instances.length >= 1);

      const r = await runClient(['fltmgr-manage', volume, extra, '123456.5'], h.endpoint, manageExe);
      assert.equal(r.code, 0, `manage_client exited ${r.code}:\n${r.out}`);
      const lines = r.out.split(/\r?\n/).filter((l) => l !== '');
      const rows = (kind: string): string[][] =>
        lines.filter((l) => l.startsWith(`${kind}\t`)).map((l) => l.split('\t').slice(1));
      const dash = (s: string | undefined): string => (s === undefined || s === '' ? '-' : s);

      const output = `manage_client's output:\n${r.out}`;
      assert.deepEqual(
        rows('filter'),
        filters.map((f) => [f.name, f.altitude, String(f.instances), 'minifilter']),
        output,
      );
      assert.deepEqual(
        rows('volume'),
        volumes.map((v) => [v.name, String(v.fileSystemType), v.detached ? '1' : '0', dash(v.dosName)]),
        output,
      );
      assert.deepEqual(
        rows('instance'),
        instances.map((i) => [i.name, i.altitude, i.volume, i.filter]),
        output,
      );
      assert.deepEqual(rows('attached'), [[extra]], output);
      assert.deepEqual(
        rows('volinstance'),
        [...onVolume, { name: extra, altitude: '123456.5' }].sort(byAltitude).map((i) => [i.name, i.altitude]),
        output,
      );
      assert.ok(lines.includes('detached'), r.out);
      assert.equal(lines.at(-1), 'PASS', r.out);
      // Detached again: the volume is as it was.
      assert.deepEqual(h.sim.instances({ volume }), onVolume);
    },
  );
}
