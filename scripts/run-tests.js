#!/usr/bin/env node
// Runs the test suite with node's built-in test runner (TypeScript through tsx).
// FLTMGR_TEST_TARGET picks the target: simulator-native (default here), wine, windows-sim, windows-driver.
// Extra arguments are test files or folders (default: all of test/).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
function collect(target, out) {
  const stat = fs.statSync(target);
  if (stat.isDirectory()) {
    for (const entry of fs.readdirSync(target).sort()) {
      if (entry === 'fixtures' || entry === 'helpers') continue;
      collect(path.join(target, entry), out);
    }
  } else if (/\.test\.ts$/.test(target)) {
    out.push(path.relative(root, target));
  }
  return out;
}

const args = process.argv.slice(2);
const files = (args.length ? args : ['test']).flatMap((a) => collect(path.resolve(root, a), []));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  // --test-timeout: the outer hang guard for a test; the waits inside tests are guarded by test/helpers/timing.ts.
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', ...files],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, FLTMGR_TEST_TARGET: process.env.FLTMGR_TEST_TARGET || 'simulator-native' },
  },
);
process.exit(result.status === null ? 1 : result.status);
