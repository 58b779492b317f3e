#!/usr/bin/env node
// `npm run build:native`: brings build/Release/fltmgr.node up to date without compiling what is already current.
// `npm ci` has just built the addon (its install script); `npm test` builds again, and `node-gyp rebuild`
// compiled everything a second time. Here:
// - `node-gyp configure` runs only when an input of the configuration changed: binding.gyp, the Node version and
//   arch, node-addon-api's version, npm's nodedir, FLTMGR_SANITIZE (scripts/asan.js builds with and without it).
//   These are recorded in build/fltmgr-config.json after each configure.
// - `node-gyp build` always runs. It is make (or MSBuild), which recompiles a file when it, a header it
//   includes, or its compiler command line changed (gyp records each command in the .d files), so a stale
//   object cannot survive a source, header or flag change. The loader's contract check (lib/binding.ts) is
//   the last line: a .node from another version of the sources is refused when it loads.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const record = path.join(root, 'build', 'fltmgr-config.json');
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });

function inputs() {
  return {
    bindingGyp: crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(root, 'binding.gyp')))
      .digest('hex'),
    node: `${process.version} ${process.platform}-${process.arch}`,
    nodeAddonApi: require(require.resolve('node-addon-api/package.json', { paths: [root] })).version,
    nodedir: process.env.npm_config_nodedir ?? '',
    sanitize: process.env.FLTMGR_SANITIZE === '1',
  };
}

function gyp(args) {
  const r = spawnSync(process.execPath, [nodeGyp, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
}

const wanted = inputs();
let recorded;
try {
  recorded = JSON.parse(fs.readFileSync(record, 'utf8'));
} catch {
  recorded = undefined;
}
const configured = fs.existsSync(path.join(root, 'build', process.platform === 'win32' ? 'binding.sln' : 'Makefile'));
if (!configured || JSON.stringify(recorded) !== JSON.stringify(wanted)) {
  gyp(['configure']);
  fs.writeFileSync(record, `${JSON.stringify(wanted, null, 2)}\n`);
}
gyp(['build']);
