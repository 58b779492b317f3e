#!/usr/bin/env node
// Lint and format gate: ESLint, Prettier (TypeScript/JavaScript) and clang-format (C/C++), all from
// devDependencies so every machine that runs `npm test` runs the same versions.
//   node scripts/lint.js            check (npm run lint); exit 1 on any finding
//   node scripts/lint.js --fix      fix what the tools can (npm run format)
//   node scripts/lint.js [--fix] FILE...   only these files (test/lint.test.ts plants findings this way)
// Each tool runs even when an earlier one found something, so one run shows everything.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
// devDependencies sit at the top of node_modules (some do not export their package.json to require.resolve).
const bin = (pkg, rel) => path.join(root, 'node_modules', pkg, rel);

// C/C++ under clang-format: the style files are .clang-format (C++), driver-sample/.clang-format,
// native/kernel/include/.clang-format (the harness's kernel headers) and
// test/fixtures/c-client/.clang-format (C).
const cRoots = ['native', 'driver-sample/driver', 'driver-sample/include', 'bench/native', 'test/fixtures/c-client'];
const cSkip = ['native/test/fuzz/corpus'];
const cExt = /\.(c|cc|cpp|h|hpp)$/;

function walk(dir, out) {
  const rel = path.relative(root, dir).split(path.sep).join('/');
  if (cSkip.includes(rel) || !fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (cExt.test(entry.name)) out.push(path.relative(root, full));
  }
  return out;
}

const args = process.argv.slice(2);
const fix = args.includes('--fix');
const files = args.filter((a) => a !== '--fix');
const jsFiles = files.filter((f) => /\.(ts|js|mjs|cjs)$/.test(f));
const cFiles = files.length ? files.filter((f) => cExt.test(f)) : cRoots.flatMap((d) => walk(path.join(root, d), []));

const steps = [];
if (!files.length || jsFiles.length) {
  const targets = files.length ? jsFiles : ['.'];
  steps.push([
    'eslint',
    [
      bin('eslint', 'bin/eslint.js'),
      '--max-warnings=0',
      '--report-unused-disable-directives',
      ...(fix ? ['--fix'] : []),
      ...targets,
    ],
  ]);
  const prettier = (mode) => [bin('prettier', 'bin/prettier.cjs'), mode, '--log-level=warn', ...targets];
  steps.push(['prettier', prettier(fix ? '--write' : '--check')]);
  // Prettier is not always idempotent (a long member chain can settle only on the second pass): a second
  // --write makes `npm run format` leave a tree that `npm run lint` accepts.
  if (fix) steps.push(['prettier (second pass)', prettier('--write')]);
}
if (cFiles.length) {
  const cf = bin('@wasm-fmt/clang-format', 'clang-format-cli.cjs');
  steps.push(['clang-format', [cf, ...(fix ? ['-i'] : ['--dry-run', '-Werror']), ...cFiles]]);
}

const failed = [];
for (const [name, argv] of steps) {
  const result = spawnSync(process.execPath, argv, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) failed.push(`${name} (exit ${result.status ?? result.signal})`);
}
if (failed.length) {
  console.error(`lint: ${failed.join(', ')}${fix ? '' : '; `npm run format` fixes formatting and what ESLint can'}`);
  process.exit(1);
}
console.log(`lint: clean (${steps.map(([name]) => name).join(', ')})`);
