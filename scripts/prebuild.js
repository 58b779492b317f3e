#!/usr/bin/env node
// `npm run prebuilds`: every prebuilt binary that ships in the npm package and can be built on Linux, from ONE
// command. This is the only path that produces them (.github/workflows/prebuild.yml runs this script for these
// targets; the README's "Platforms and prebuilds" table says where each one is tested):
//   prebuilds/linux-x64/fltmgr.glibc.node    prebuildify --napi --strip --tag-libc (node-gyp, host g++)
//   prebuilds/linux-arm64/fltmgr.glibc.node  the same with g++-aarch64-linux-gnu (node-gyp --arch=arm64)
//   prebuilds/win32-x64/fltmgr.node          the mingw-w64 cross build (scripts/build-win.js), stripped
//   prebuilds/win32-ia32/fltmgr.node         the same with mingw-w64 i686 (build-win.js --arch ia32)
// node-gyp-build (the package's loader and install script) picks prebuilds/<platform>-<arch>/<name>[.tags].node;
// an untagged Node-API build matches any Node version, .glibc keeps musl systems on their own build.
// Tests: linux-x64 by `npm test` (and test/pack.test.ts from the packed tarball); win32-x64 under Wine
// (FLTMGR_WINE_BINDING=prebuilds/win32-x64/fltmgr.node npm run test:wine); linux-arm64 and win32-ia32 by
// scripts/emulated/smoke.js (qemu-user, Wine).
//
//   node scripts/prebuild.js [--targets=linux-x64,linux-arm64,win32-x64,win32-ia32] [--skip-win] [--no-build-win]
//     --targets       build only these (default: all four)
//     --skip-win      leave out the win32 targets
//     --no-build-win  copy the existing build-win*/Release/fltmgr.node instead of running scripts/build-win.js
//
// The Linux builds run in a staging copy (build-prebuild/), so the working tree's build/ is left alone. Each
// result is checked: linux-x64 is loaded through node-gyp-build with PREBUILDS_ONLY=1; linux-arm64 must be an
// AArch64 ELF shared object; a Windows one must be a PE DLL for its machine that does not import node.exe
// directly (delay-loaded, so it loads in Electron and in any host exe). The substitute fltlib.dll is never
// copied into prebuilds/.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const STAGING = path.join(ROOT, 'build-prebuild');
const PREBUILDS = path.join(ROOT, 'prebuilds');
const NAME = require(path.join(ROOT, 'package.json')).name;

function log(line) {
  console.log(`prebuild: ${line}`);
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`);
  }
  return r;
}

/** node-gyp needs Node's headers; npm passes its nodedir config only to scripts it runs itself. */
function nodedirEnv() {
  const env = { ...process.env };
  if (!env.npm_config_nodedir) {
    const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['config', 'get', 'nodedir'], {
      encoding: 'utf8',
    });
    const dir = r.status === 0 ? r.stdout.trim() : '';
    if (dir && dir !== 'undefined' && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')))
      env.npm_config_nodedir = dir;
  }
  return env;
}

// Node's arch -> the cross compiler prefix (none: the host's) and the ELF e_machine the result must have.
const LINUX = {
  x64: { cross: undefined, machine: 62 /* EM_X86_64 */, apt: 'g++' },
  arm64: { cross: 'aarch64-linux-gnu-', machine: 183 /* EM_AARCH64 */, apt: 'g++-aarch64-linux-gnu' },
};

function elfMachine(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 20 || buf.toString('latin1', 0, 4) !== '\x7fELF') return undefined;
  return buf.readUInt16LE(18);
}

function linuxPrebuild(arch) {
  const target = LINUX[arch];
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`the Linux prebuilds are built on linux-x64; this is ${process.platform}-${process.arch}`);
  // Staging: only what node-gyp needs, plus node_modules (binding.gyp asks node-addon-api for its include dir).
  fs.rmSync(STAGING, { recursive: true, force: true });
  fs.mkdirSync(STAGING, { recursive: true });
  for (const entry of ['binding.gyp', 'package.json', 'native']) {
    fs.cpSync(path.join(ROOT, entry), path.join(STAGING, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(STAGING, 'node_modules'), 'dir');
  const out = path.join(PREBUILDS, `linux-${arch}`);
  fs.rmSync(out, { recursive: true, force: true });
  const env = nodedirEnv();
  const args = [
    '--napi',
    '--strip',
    '--tag-libc',
    `--arch=${arch}`,
    `--target=node@${process.versions.node}`,
    `--out=${ROOT}`,
  ];
  if (target.cross) {
    const missing = ['gcc', 'g++', 'strip']
      .map((t) => target.cross + t)
      .filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
    if (missing.length) throw new Error(`missing ${missing.join(', ')} (Debian: apt-get install ${target.apt})`);
    Object.assign(env, {
      CC: `${target.cross}gcc`,
      CXX: `${target.cross}g++`,
      LINK: `${target.cross}g++`,
      AR: `${target.cross}ar`,
    });
    args.push(`--strip-bin=${target.cross}strip`);
  }
  log(`linux-${arch}: prebuildify ${args.slice(0, 4).join(' ')}${target.cross ? ` (${target.cross}g++)` : ''}`);
  const prebuildify = require.resolve('prebuildify/bin.js', { paths: [ROOT] });
  run(process.execPath, [prebuildify, ...args, STAGING], { cwd: STAGING, env });
  const files = fs.readdirSync(out);
  const expected = `${NAME}.glibc.node`;
  if (!files.includes(expected))
    throw new Error(`prebuildify wrote ${files.join(', ') || 'nothing'} into ${out}, expected ${expected}`);
  const file = path.join(out, expected);
  const machine = elfMachine(file);
  if (machine !== target.machine)
    throw new Error(`${file}: ELF machine ${machine}, expected ${target.machine} (linux-${arch})`);
  if (arch === process.arch) {
    // node-gyp-build must pick exactly this file (PREBUILDS_ONLY: ignore build/Release).
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        `const b = require('node-gyp-build'); const p = b.resolve(${JSON.stringify(ROOT)}); const m = require(p); console.log(p + ' ' + typeof m.connect)`,
      ],
      { cwd: ROOT, env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' },
    );
    const line = probe.stdout.trim();
    if (probe.status !== 0 || line !== `${file} function`) {
      throw new Error(`node-gyp-build did not load ${expected}: ${line} ${probe.stderr}`);
    }
  }
  const how =
    arch === process.arch
      ? 'loads through node-gyp-build'
      : 'AArch64 ELF; loaded under qemu by scripts/emulated/smoke.js';
  log(`linux-${arch}: ${path.relative(ROOT, file)} (${fs.statSync(file).size} bytes), ${how}`);
}

function peInfo(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 2) !== 'MZ') return undefined;
  const pe = buf.readUInt32LE(0x3c);
  if (buf.toString('latin1', pe, pe + 4) !== 'PE\0\0') return undefined;
  const machine = buf.readUInt16LE(pe + 4);
  const characteristics = buf.readUInt16LE(pe + 22);
  const magic = buf.readUInt16LE(pe + 24);
  return { machine, dll: (characteristics & 0x2000) !== 0, pe32plus: magic === 0x20b };
}

/** DLL names in the normal import table (objdump); delay imports are listed separately and are fine. */
function directImports(file) {
  // x86_64-w64-mingw32-objdump reads PE32 (i686) as well as PE32+.
  const r = spawnSync('x86_64-w64-mingw32-objdump', ['-p', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) return undefined;
  const names = [];
  let inDelay = false;
  for (const l of r.stdout.split('\n')) {
    if (/Delay Import/i.test(l)) inDelay = true;
    else if (/^The Import Tables/i.test(l) || /^There is an import table/i.test(l)) inDelay = false;
    const m = /DLL Name:\s*(\S+)/.exec(l);
    if (m && !inDelay) names.push(m[1].toLowerCase());
  }
  return names;
}

// Node's arch -> build-win.js's output folder and the PE header the result must have.
const WIN = {
  x64: { out: 'build-win', machine: 0x8664, pe32plus: true, strip: 'x86_64-w64-mingw32-strip' },
  ia32: { out: 'build-win-ia32', machine: 0x14c, pe32plus: false, strip: 'i686-w64-mingw32-strip' },
};

function winPrebuild(arch, buildIt) {
  const target = WIN[arch];
  const buildScript = path.join(ROOT, 'scripts', 'build-win.js');
  if (buildIt) {
    if (!fs.existsSync(buildScript))
      throw new Error(`scripts/build-win.js is missing: no win32-${arch} cross build (use --skip-win for Linux only)`);
    log(`win32-${arch}: node scripts/build-win.js --arch ${arch}`);
    run(process.execPath, [buildScript, '--arch', arch], { cwd: ROOT, env: nodedirEnv() });
  }
  const built = path.join(ROOT, target.out, 'Release', `${NAME}.node`);
  if (!fs.existsSync(built)) throw new Error(`${path.relative(ROOT, built)} does not exist`);
  const info = peInfo(built);
  if (!info || info.machine !== target.machine || !info.dll || info.pe32plus !== target.pe32plus) {
    throw new Error(
      `${built} is not a ${target.pe32plus ? 'PE32+' : 'PE32'} DLL for machine 0x${target.machine.toString(16)} (${JSON.stringify(info)})`,
    );
  }
  const imports = directImports(built);
  if (imports && imports.includes('node.exe')) {
    throw new Error(
      `${built} imports node.exe directly: it would not load in Electron or a renamed host (delay-load it)`,
    );
  }
  const out = path.join(PREBUILDS, `win32-${arch}`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const dest = path.join(out, `${NAME}.node`);
  fs.copyFileSync(built, dest);
  // As prebuildify --strip does for the Linux build: no symbol table in what ships (the code is unchanged).
  run(target.strip, ['--strip-unneeded', dest]);
  if (!peInfo(dest)) throw new Error(`${dest}: not a PE file after strip`);
  log(
    `win32-${arch}: ${path.relative(ROOT, dest)} (${fs.statSync(dest).size} bytes; imports: ${imports ? imports.join(', ') : 'objdump unavailable'})`,
  );
}

const TARGETS = ['linux-x64', 'linux-arm64', 'win32-x64', 'win32-ia32'];

function main() {
  let targets = TARGETS;
  const flags = new Set();
  for (const a of process.argv.slice(2)) {
    if (a.startsWith('--targets=')) targets = a.slice('--targets='.length).split(',').filter(Boolean);
    else if (['--skip-win', '--no-build-win'].includes(a)) flags.add(a);
    else throw new Error(`unknown option ${a}`);
  }
  for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t} (${TARGETS.join(', ')})`);
  if (flags.has('--skip-win')) targets = targets.filter((t) => !t.startsWith('win32-'));
  for (const t of targets) {
    const [platform, arch] = t.split('-');
    if (platform === 'linux') linuxPrebuild(arch);
    else winPrebuild(arch, !flags.has('--no-build-win'));
  }
  for (const dir of fs.readdirSync(PREBUILDS)) {
    for (const f of fs.readdirSync(path.join(PREBUILDS, dir))) {
      if (/^fltlib\.dll$/i.test(f)) throw new Error(`prebuilds/${dir}/${f}: the substitute fltlib must never ship`);
    }
  }
  log(
    `done: ${fs
      .readdirSync(PREBUILDS)
      .map((d) => `prebuilds/${d}/${fs.readdirSync(path.join(PREBUILDS, d)).join(',')}`)
      .join('  ')}`,
  );
}

try {
  main();
} catch (err) {
  console.error(`prebuild: FAILED: ${err.message}`);
  process.exit(1);
}
