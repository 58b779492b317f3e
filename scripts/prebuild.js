#!/usr/bin/env node
// `npm run prebuild`: the prebuilt binaries that ship in the npm package, from ONE command on Linux.
//   prebuilds/linux-x64/fltmgr.glibc.node   prebuildify --napi --strip --tag-libc (node-gyp, host gcc)
//   prebuilds/win32-x64/fltmgr.node         the mingw-w64 cross build (scripts/build-win.js), copied and
//                                           stripped (test that very file under Wine:
//                                           FLTMGR_WINE_BINDING=prebuilds/win32-x64/fltmgr.node npm run test:wine)
// node-gyp-build (the package's loader and install script) picks prebuilds/<platform>-<arch>/<name>[.tags].node;
// an untagged Node-API build matches any Node version, .glibc keeps musl systems on their own build.
//
//   node scripts/prebuild.js [--skip-win] [--no-build-win]
//     --skip-win      only the native Linux prebuild
//     --no-build-win  copy the existing build-win/Release/fltmgr.node instead of running scripts/build-win.js
//
// The native build runs in a staging copy (build-prebuild/), so the working tree's build/ is left alone. Each
// result is checked: the Linux one is loaded through node-gyp-build with PREBUILDS_ONLY=1; the Windows one
// must be a PE32+ x64 DLL that does not import node.exe directly (delay-loaded, so it loads in Electron and in
// any host exe). The substitute fltlib.dll is never copied into prebuilds/.
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
    const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' });
    const dir = r.status === 0 ? r.stdout.trim() : '';
    if (dir && dir !== 'undefined' && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = dir;
  }
  return env;
}

function linuxPrebuild() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the native prebuild here is linux-x64; this is ${process.platform}-${process.arch}`);
  // Staging: only what node-gyp needs, plus node_modules (binding.gyp asks node-addon-api for its include dir).
  fs.rmSync(STAGING, { recursive: true, force: true });
  fs.mkdirSync(STAGING, { recursive: true });
  for (const entry of ['binding.gyp', 'package.json', 'native']) {
    fs.cpSync(path.join(ROOT, entry), path.join(STAGING, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(STAGING, 'node_modules'), 'dir');
  const out = path.join(PREBUILDS, 'linux-x64');
  fs.rmSync(out, { recursive: true, force: true });
  log('linux-x64: prebuildify --napi --strip --tag-libc');
  const prebuildify = require.resolve('prebuildify/bin.js', { paths: [ROOT] });
  run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', `--target=node@${process.versions.node}`, `--out=${ROOT}`, STAGING], {
    cwd: STAGING,
    env: nodedirEnv(),
  });
  const files = fs.readdirSync(out);
  const expected = `${NAME}.glibc.node`;
  if (!files.includes(expected)) throw new Error(`prebuildify wrote ${files.join(', ') || 'nothing'} into ${out}, expected ${expected}`);
  // node-gyp-build must pick exactly this file (PREBUILDS_ONLY: ignore build/Release).
  const probe = spawnSync(
    process.execPath,
    ['-e', `const b = require('node-gyp-build'); const p = b.resolve(${JSON.stringify(ROOT)}); const m = require(p); console.log(p + ' ' + typeof m.connect)`],
    { cwd: ROOT, env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' },
  );
  const line = probe.stdout.trim();
  if (probe.status !== 0 || line !== `${path.join(out, expected)} function`) {
    throw new Error(`node-gyp-build did not load ${expected}: ${line} ${probe.stderr}`);
  }
  log(`linux-x64: ${path.relative(ROOT, path.join(out, expected))} (${fs.statSync(path.join(out, expected)).size} bytes), loads through node-gyp-build`);
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

function winPrebuild(buildIt) {
  const buildScript = path.join(ROOT, 'scripts', 'build-win.js');
  if (buildIt) {
    if (!fs.existsSync(buildScript)) throw new Error('scripts/build-win.js is missing: no win32-x64 cross build (use --skip-win for linux-x64 only)');
    log('win32-x64: node scripts/build-win.js');
    run(process.execPath, [buildScript], { cwd: ROOT, env: nodedirEnv() });
  }
  const built = path.join(ROOT, 'build-win', 'Release', `${NAME}.node`);
  if (!fs.existsSync(built)) throw new Error(`${path.relative(ROOT, built)} does not exist`);
  const info = peInfo(built);
  if (!info || info.machine !== 0x8664 || !info.dll || !info.pe32plus) {
    throw new Error(`${built} is not a PE32+ x64 DLL (${JSON.stringify(info)})`);
  }
  const imports = directImports(built);
  if (imports && imports.includes('node.exe')) {
    throw new Error(`${built} imports node.exe directly: it would not load in Electron or a renamed host (delay-load it)`);
  }
  const out = path.join(PREBUILDS, 'win32-x64');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const dest = path.join(out, `${NAME}.node`);
  fs.copyFileSync(built, dest);
  // As prebuildify --strip does for the Linux build: no symbol table in what ships (the code is unchanged).
  run('x86_64-w64-mingw32-strip', ['--strip-unneeded', dest]);
  if (!peInfo(dest)) throw new Error(`${dest}: not a PE file after strip`);
  log(`win32-x64: ${path.relative(ROOT, dest)} (${fs.statSync(dest).size} bytes; imports: ${imports ? imports.join(', ') : 'objdump unavailable'})`);
}

function main() {
  const args = new Set(process.argv.slice(2));
  for (const a of args) if (!['--skip-win', '--no-build-win'].includes(a)) throw new Error(`unknown option ${a}`);
  linuxPrebuild();
  if (!args.has('--skip-win')) winPrebuild(!args.has('--no-build-win'));
  for (const dir of fs.readdirSync(PREBUILDS)) {
    for (const f of fs.readdirSync(path.join(PREBUILDS, dir))) {
      if (/^fltlib\.dll$/i.test(f)) throw new Error(`prebuilds/${dir}/${f}: the substitute fltlib must never ship`);
    }
  }
  log(`done: ${fs.readdirSync(PREBUILDS).map((d) => `prebuilds/${d}/${fs.readdirSync(path.join(PREBUILDS, d)).join(',')}`).join('  ')}`);
}

try {
  main();
} catch (err) {
  console.error(`prebuild: FAILED: ${err.message}`);
  process.exit(1);
}
