// The published package: `npm pack` holds dist/, the prebuilds, the native sources and binding.gyp (and nothing
// that must not ship), and the packed tarball installs into an empty project and works WITHOUT a compiler:
// PATH holds only a `node` link, so node-gyp-build (the install script) must find the prebuild instead of
// compiling, and require('fltmgr') must load prebuilds/linux-x64 (a real round trip through the simulator).
// Needs `npm run prebuilds` (prebuilds/) and `npm run build:ts` (dist/) first; skips with that reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const LINUX_PREBUILD = `prebuilds/linux-x64/${PKG.name}.glibc.node`;
// What `npm run prebuilds` (scripts/prebuild.js) makes: each one present in prebuilds/ must ship, and nothing else
// may sit in prebuilds/ of the package.
const BUILT_ON_LINUX = [
  LINUX_PREBUILD,
  `prebuilds/linux-arm64/${PKG.name}.glibc.node`,
  `prebuilds/win32-x64/${PKG.name}.node`,
  `prebuilds/win32-ia32/${PKG.name}.node`,
];
// Built by .github/workflows/prebuild.yml on their own runners (not present in a Linux checkout).
const BUILT_ELSEWHERE = /^prebuilds\/(win32-arm64|darwin-x64|darwin-arm64)\/[^/]+\.node$/;

function skipReason(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the pack test checks the linux-x64 prebuild; this is ${process.platform}-${process.arch}`;
  if (process.env['FLTMGR_SANITIZED'] === '1') return "not the sanitizer lane's business (npm test runs it)";
  if (!fs.existsSync(path.join(ROOT, LINUX_PREBUILD)))
    return `${LINUX_PREBUILD} missing: run \`npm run prebuilds\` first`;
  if (!fs.existsSync(path.join(ROOT, 'dist', 'lib', 'index.js'))) return 'dist/ missing: run `npm run build:ts` first';
  return undefined;
}

/** npm's CLI script, run with this node (so PATH need not contain npm). */
function npmCli(): string {
  const fromEnv = process.env['npm_execpath'];
  if (fromEnv && fromEnv.endsWith('.js') && fs.existsSync(fromEnv)) return fromEnv;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'npm');
    if (!fs.existsSync(candidate)) continue;
    const real = fs.realpathSync(candidate);
    if (real.endsWith('.js')) return real;
    const cli = path.join(path.dirname(real), 'npm-cli.js');
    if (fs.existsSync(cli)) return cli;
  }
  const guess = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  if (fs.existsSync(guess)) return guess;
  throw new Error('npm-cli.js not found');
}

/** An environment with no compiler on PATH and no npm build settings inherited from the outer npm run. */
function cleanEnv(binDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: binDir, HOME: process.env['HOME'] ?? os.homedir(), LANG: 'C.UTF-8' };
  for (const k of [
    'npm_config_cache',
    'npm_config_registry',
    'HTTPS_PROXY',
    'https_proxy',
    'HTTP_PROXY',
    'http_proxy',
    'NO_PROXY',
    'no_proxy',
  ]) {
    if (process.env[k]) env[k] = process.env[k];
  }
  return env;
}

/** A hang guard for one npm/node run (npm install on a busy machine takes a while), not a budget. */
const STEP_HANG_GUARD_MS = 300_000;

function run(
  cmd: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    ...options,
    encoding: 'utf8',
    timeout: STEP_HANG_GUARD_MS,
    maxBuffer: 32 * 1024 * 1024,
  });
  assert.equal(
    r.status,
    0,
    `${path.basename(cmd)} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`,
  );
  return { stdout: r.stdout, stderr: r.stderr };
}

const CONSUMER = `
const { FilterPort } = require('fltmgr');
const { FilterManagerSimulator } = require('fltmgr/simulator');
(async () => {
  const sim = new FilterManagerSimulator();
  const endpoint = await sim.listen();
  sim.registerFilter('pack-test').createCommunicationPort('\\\\PackTestPort', {
    maxConnections: 1,
    message: (_client, input) => Buffer.from(input.toString('utf8').toUpperCase()),
  });
  const port = await FilterPort.connect('\\\\PackTestPort', { simulator: endpoint });
  const output = await port.send(Buffer.from('ping'), { outputSize: 16 });
  await port.close();
  await sim.close();
  const addons = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
  console.log(JSON.stringify({ output: output.toString('utf8'), addons }));
})().catch((err) => { console.error(err); process.exit(1); });
`;

// A TypeScript consumer of all three entry points: compiled under every moduleResolution a project may use.
const TYPES_CONSUMER = `
import { FilterPort, FilterError, type FilterErrorCode } from 'fltmgr';
import { FilterManagerSimulator, type SendMessageResult } from 'fltmgr/simulator';
import { struct, u32 } from 'fltmgr/struct';
const known: FilterErrorCode = 'ERROR_FILE_NOT_FOUND';
const unknown: FilterErrorCode = '0x8007FFFF';
export const all = [FilterPort, FilterError, FilterManagerSimulator, struct('X', { a: u32 }), known, unknown];
export type Result = SendMessageResult;
`;

test(
  'npm pack ships dist, prebuilds, native sources; the tarball installs and loads its prebuild without a compiler',
  { skip: skipReason(), timeout: 3 * STEP_HANG_GUARD_MS },
  (t) => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-pack-'));
    t.after(() => fs.rmSync(work, { recursive: true, force: true }));
    const npm = npmCli();
    // Only `node` and `sh` (npm runs install scripts with it) on PATH: no gcc/g++/make/cc/python, so any
    // attempt to compile fails the install.
    const bin = path.join(work, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    const env = cleanEnv(bin);
    for (const tool of ['gcc', 'g++', 'cc', 'c++', 'make', 'python3']) {
      assert.notEqual(
        spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status,
        0,
        `${tool} is reachable on the test PATH`,
      );
    }

    // 1. npm pack: contents.
    const packed = run(process.execPath, [npm, 'pack', '--json', '--ignore-scripts', '--pack-destination', work], {
      cwd: ROOT,
      env,
    });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    assert.ok(info, 'npm pack printed no result');
    const files = new Set(info.files.map((f) => f.path));
    const must = [
      'package.json',
      'binding.gyp',
      'dist/lib/index.js',
      'dist/lib/index.d.ts',
      'dist/lib/simulator/index.js',
      LINUX_PREBUILD,
    ];
    for (const f of BUILT_ON_LINUX) if (f !== LINUX_PREBUILD && fs.existsSync(path.join(ROOT, f))) must.push(f);
    for (const f of must) assert.ok(files.has(f), `${f} is not in the package`);
    const nativeSources = [...files].filter((f) => /^native\/src\/.*\.(cc|h)$/.test(f));
    assert.ok(nativeSources.includes('native/src/addon.cc'), `native sources missing: ${nativeSources.join(', ')}`);
    for (const f of files) {
      assert.ok(!/^(build|build-[^/]*|test|\.cache|node_modules)\//.test(f), `${f} must not be in the package`);
      assert.ok(!/(^|\/)fltlib\.dll$/i.test(f), `${f}: the substitute fltlib must never ship`);
      if (f.startsWith('prebuilds/'))
        assert.ok(BUILT_ON_LINUX.includes(f) || BUILT_ELSEWHERE.test(f), `${f}: not a prebuild any release path makes`);
    }
    // Source and declaration maps point at lib/*.ts: those sources ship too, so every map resolves.
    const maps = [...files].filter((f) => f.endsWith('.map'));
    assert.ok(
      maps.includes('dist/lib/port.js.map') && maps.includes('dist/lib/port.d.ts.map'),
      `maps missing: ${maps.join(', ')}`,
    );
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(fs.readFileSync(path.join(ROOT, map), 'utf8')) as {
        sources: string[];
        sourceRoot?: string;
      };
      for (const source of sources) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(map), sourceRoot ?? '', source));
        assert.ok(files.has(target), `${map} points at ${target}, which is not in the package`);
      }
    }

    // 2. An empty project installs the tarball (runtime deps from npm's cache, or the registry when not cached).
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'pack-consumer', version: '1.0.0', private: true }),
    );
    run(
      process.execPath,
      [
        npm,
        'install',
        path.join(work, info.filename),
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        '--loglevel=error',
      ],
      { cwd: app, env },
    );
    const installed = path.join(app, 'node_modules', PKG.name);
    assert.ok(fs.existsSync(path.join(installed, LINUX_PREBUILD)), 'the prebuild was not installed');
    assert.ok(
      !fs.existsSync(path.join(installed, 'build')),
      'the install compiled the addon (build/ exists) instead of using the prebuild',
    );

    // 3. It loads the prebuild and talks to the simulator through it.
    fs.writeFileSync(path.join(app, 'consumer.js'), CONSUMER);
    const result = run(process.execPath, ['consumer.js'], { cwd: app, env });
    const out = JSON.parse(result.stdout.trim().split('\n').pop()!) as { output: string; addons: string[] };
    assert.equal(out.output, 'PING');
    assert.deepEqual(out.addons, [fs.realpathSync(path.join(installed, LINUX_PREBUILD))]);

    // 4. Its types resolve for TypeScript consumers: "node" (node10, which ignores `exports` and needs
    // typesVersions for the subpaths), node16 and bundler (which read `exports`).
    fs.writeFileSync(path.join(app, 'types.ts'), TYPES_CONSUMER);
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'lib', 'tsc.js');
    for (const [module, resolution] of [
      ['commonjs', 'node'],
      ['node16', 'node16'],
      ['esnext', 'bundler'],
    ] as const) {
      const r = spawnSync(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--target',
          'ES2022',
          '--module',
          module,
          '--moduleResolution',
          resolution,
          '--types',
          'node',
          '--typeRoots',
          path.join(ROOT, 'node_modules', '@types'),
          'types.ts',
        ],
        { cwd: app, env, encoding: 'utf8', timeout: STEP_HANG_GUARD_MS },
      );
      assert.equal(
        r.status,
        0,
        `moduleResolution ${resolution}: the consumer does not compile:\n${r.stdout}${r.stderr}`,
      );
    }
  },
);
