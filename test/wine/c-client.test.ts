// Wine lane only: the plain Win32 C client (test/fixtures/c-client/scanner_client.c: one IOCP, 2 threads x 4
// outstanding overlapped FilterGetMessage calls, CONTAINING_RECORD, replies sized header + data), linked
// against the real import library (-lfltlib), runs unchanged against the substitute fltlib.dll that
// scripts/wine/run-tests.js put in the prefix's system32 (the exe is run from a folder without a fltlib.dll),
// and the sample minifilter's twin hosted by a simulator in this Windows node process: named pipe and TCP.
// The substitute is checked independently of our addon. FLTMGR_WINE_C_CLIENT names the exe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSample } from '../helpers/sample';
import { HANG_GUARD_MS } from '../helpers/timing';

const exe = process.env['FLTMGR_WINE_C_CLIENT'];
const skip =
  process.env['FLTMGR_TEST_TARGET'] !== 'wine'
    ? 'not the Wine lane'
    : !exe
      ? 'FLTMGR_WINE_C_CLIENT not set (no scanner_client.exe in build-win/)'
      : false;

function runClient(args: string[], endpoint: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(exe!, args, {
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
