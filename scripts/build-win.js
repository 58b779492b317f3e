#!/usr/bin/env node
// Cross-builds the Windows addon on Linux with mingw-w64, through cmake-js and CMakeLists.txt (x64 by default;
// --arch ia32: i686 toolchain, default output build-win-ia32/):
//   build-win/Release/fltmgr.node   the addon (Node-API 8; static libstdc++/libgcc/winpthread; delay-loads
//                                   the Node-API from the host executable, so it also loads in Electron)
//   build-win/fltlib.dll            the substitute fltlib.dll (test tool: never in prebuilds/)
//   build-win/scanner_client.exe    the C client (classic scanner pattern), linked against the real import
//                                   library (-lfltlib); build-win/edge_client.exe: the edge cases;
//                                   build-win/manage_client.exe: the management calls (FilterFindFirst, ...)
// fltlib.dll sits outside Release/ on purpose: prebuildify copies every .dll of its output folder into
// prebuilds/.
//
// usage: node scripts/build-win.js [--arch x64|ia32] [--clean] [--out DIR] [--no-tools] [--quiet]
// Needs: cmake >= 3.15, g++-mingw-w64-x86-64-posix, mingw-w64-x86-64-dev (binutils' dlltool), and the
// devDependencies (cmake-js, node-api-headers, node-addon-api). No network access: Node-API needs no Node
// headers beyond node-api-headers. docs/windows.md has the details.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
// Node's arch name -> the mingw target, its cmake toolchain file, the Debian packages and the default output.
const ARCHES = {
  x64: {
    triple: 'x86_64-w64-mingw32',
    toolchain: 'mingw-w64-x86_64.cmake',
    apt: 'g++-mingw-w64-x86-64-posix mingw-w64-x86-64-dev',
    out: 'build-win',
  },
  ia32: {
    triple: 'i686-w64-mingw32',
    toolchain: 'mingw-w64-i686.cmake',
    apt: 'g++-mingw-w64-i686-posix mingw-w64-i686-dev',
    out: 'build-win-ia32',
  },
};
// DLLs a correctly linked module must not import (they are not on a user's machine).
const FORBIDDEN_IMPORTS = /^(libstdc\+\+|libgcc_s|libwinpthread|libssp)/i;

function parseArgs(argv) {
  const opts = { arch: 'x64', clean: false, out: undefined, tools: true, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch' && i + 1 < argv.length && ARCHES[argv[i + 1]]) opts.arch = argv[++i];
    else if (a === '--clean') opts.clean = true;
    else if (a === '--no-tools') opts.tools = false;
    else if (a === '--quiet') opts.quiet = true;
    else if (a === '--out' && i + 1 < argv.length) opts.out = path.resolve(argv[++i]);
    else
      throw new Error(
        `unknown argument: ${a}\nusage: node scripts/build-win.js [--arch x64|ia32] [--clean] [--out DIR] [--no-tools] [--quiet]`,
      );
  }
  return opts;
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function checkPrerequisites(target) {
  const TRIPLE = target.triple;
  const missing = [];
  for (const tool of [
    'cmake',
    `${TRIPLE}-g++-posix`,
    `${TRIPLE}-gcc-posix`,
    `${TRIPLE}-dlltool`,
    `${TRIPLE}-objdump`,
  ]) {
    if (!which(tool)) missing.push(tool);
  }
  if (missing.length > 0) {
    throw new Error(`missing tools: ${missing.join(', ')}\n` + `Debian/Ubuntu: apt-get install cmake ${target.apt}`);
  }
  for (const pkg of ['cmake-js', 'node-api-headers', 'node-addon-api']) {
    try {
      require.resolve(`${pkg}/package.json`, { paths: [ROOT] });
    } catch {
      throw new Error(`missing devDependency ${pkg}: run npm install`);
    }
  }
}

/** Imported DLL names of a PE file (objdump -p). */
function importedDlls(file) {
  // objdump of either mingw target reads both PE32 and PE32+.
  const r = spawnSync('x86_64-w64-mingw32-objdump', ['-p', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`objdump -p ${file} failed: ${r.stderr}`);
  return [...r.stdout.matchAll(/DLL Name: (\S+)/g)].map((m) => m[1]);
}

function checkImports(file) {
  const dlls = importedDlls(file);
  const bad = dlls.filter((d) => FORBIDDEN_IMPORTS.test(d));
  if (bad.length > 0) throw new Error(`${file} imports ${bad.join(', ')}: the mingw runtime must be linked statically`);
  return dlls;
}

async function buildWin(options = {}) {
  const opts = { ...parseArgs([]), ...options };
  const target = ARCHES[opts.arch];
  if (!target) throw new Error(`unknown arch ${opts.arch} (x64 or ia32)`);
  if (opts.out === undefined) opts.out = path.join(ROOT, target.out);
  checkPrerequisites(target);
  const started = Date.now();
  const { BuildSystem } = require(require.resolve('cmake-js', { paths: [ROOT] }));
  const buildSystem = new BuildSystem({
    directory: ROOT,
    out: opts.out,
    config: 'Release',
    arch: opts.arch,
    runtime: 'node',
    parallel: Math.max(1, os.cpus().length),
    silent: opts.quiet,
    cMakeOptions: {
      CMAKE_TOOLCHAIN_FILE: path.join(ROOT, 'cmake', target.toolchain),
      FLTMGR_BUILD_SUBSTITUTE: opts.tools ? 'ON' : 'OFF',
      FLTMGR_TOOLS_DIR: opts.out,
    },
  });
  // A Node-API module: compile against node-api-headers and never download Node's headers (no network in
  // CI). cmake-js decides this from package.json's binary.napi_versions; say it here as well so that the
  // build does not depend on that field.
  buildSystem.options.isNodeApi = true;
  if (opts.clean) await buildSystem.rebuild();
  else await buildSystem.build();

  const outputs = {
    addon: path.join(opts.out, 'Release', 'fltmgr.node'),
    ...(opts.tools
      ? {
          substitute: path.join(opts.out, 'fltlib.dll'),
          // The C clients link mingw's libfltlib.a, which only the x64 target has (CMakeLists.txt).
          ...(opts.arch === 'x64'
            ? {
                cClient: path.join(opts.out, 'scanner_client.exe'),
                edgeClient: path.join(opts.out, 'edge_client.exe'),
                manageClient: path.join(opts.out, 'manage_client.exe'),
              }
            : {}),
        }
      : {}),
  };
  const imports = {};
  for (const [name, file] of Object.entries(outputs)) {
    if (!fs.existsSync(file)) throw new Error(`build finished but ${file} is missing`);
    imports[name] = checkImports(file);
  }
  return { outputs, imports, seconds: (Date.now() - started) / 1000 };
}

module.exports = { buildWin };

if (require.main === module) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
  buildWin(opts).then(
    (result) => {
      for (const [name, file] of Object.entries(result.outputs)) {
        console.log(`${name.padEnd(10)} ${path.relative(ROOT, file)}  (imports: ${result.imports[name].join(', ')})`);
      }
      console.log(`build-win: done in ${result.seconds.toFixed(1)} s`);
    },
    (error) => {
      console.error(`build-win: ${error && error.message ? error.message : error}`);
      process.exit(1);
    },
  );
}
