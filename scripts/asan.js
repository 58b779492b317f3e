#!/usr/bin/env node
// The sanitizer lane: builds the addon with AddressSanitizer + UBSan into build-asan/, then runs the
// integration tests against it (FLTMGR_BINDING) with the ASan runtime preloaded into the uninstrumented node.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const run = (cmd, args, env) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
};

if (process.platform !== 'linux') {
  console.error('the sanitizer lane runs on Linux (gcc): skipped on', process.platform);
  process.exit(1);
}
// Through npm, so node-gyp sees npm's configuration (e.g. nodedir for local Node headers).
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// node-gyp has one build folder: build the sanitized addon, keep a copy, then restore the normal build.
run(npm, ['run', '--silent', 'build:native'], { FLTMGR_SANITIZE: '1' });
const out = path.join(root, 'build-asan', 'fltmgr-asan.node');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.copyFileSync(path.join(root, 'build', 'Release', 'fltmgr.node'), out);
run(npm, ['run', '--silent', 'build:native'], { FLTMGR_SANITIZE: '0' });

const libasan = execFileSync('gcc', ['-print-file-name=libasan.so']).toString().trim();
const files = process.argv.slice(2);
run(process.execPath, [path.join(__dirname, 'run-tests.js'), ...(files.length ? files : ['test'])], {
  FLTMGR_BINDING: out,
  FLTMGR_SANITIZED: '1',
  LD_PRELOAD: libasan,
  // Node itself is not instrumented and keeps allocations alive at exit: leak checking would report Node.
  ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
});
