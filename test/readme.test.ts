// README.md's ```ts snippets are complete programs: each is compiled as an ES module (.mts) against the package's
// published types, resolved through its own name and `exports` (so dist/ must be built: `npm run build:ts`).
// The simulator example (the one that starts a FilterManagerSimulator and needs no Windows) is also run.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TEST_TIMEOUT_MS } from './helpers/timing';

const ROOT = path.resolve(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'lib', 'tsc.js');

function snippets(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
}

function skipReason(): string | undefined {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'lib', 'index.d.ts')))
    return 'dist/ missing: run `npm run build:ts` first';
  return undefined;
}

test(
  'README: every ```ts snippet type-checks against the published types; the simulator example runs',
  { skip: skipReason(), timeout: TEST_TIMEOUT_MS },
  (t) => {
    const blocks = snippets();
    assert.ok(blocks.length >= 4, `found ${blocks.length} ts snippets in README.md`);
    // Inside the package (so `import 'fltmgr'` resolves to this package by name), in a gitignored folder.
    fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
    const dir = fs.mkdtempSync(path.join(ROOT, '.cache', 'readme-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const files = blocks.map((code, i) => {
      const file = path.join(dir, `snippet${i + 1}.mts`);
      fs.writeFileSync(file, code);
      return file;
    });
    const tsc = spawnSync(
      process.execPath,
      [
        TSC,
        '--module',
        'node16',
        '--moduleResolution',
        'node16',
        '--target',
        'ES2022',
        '--strict',
        '--noUncheckedIndexedAccess',
        '--types',
        'node',
        '--typeRoots',
        path.join(ROOT, 'node_modules', '@types'),
        '--skipLibCheck',
        'false',
        '--rootDir',
        dir,
        '--outDir',
        dir,
        ...files,
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    assert.equal(
      tsc.status,
      0,
      `README snippets do not compile:\n${tsc.stdout}${tsc.stderr}\n(snippetN = the Nth \`\`\`ts block)`,
    );

    const runnable = blocks.findIndex((code) => code.includes('new FilterManagerSimulator('));
    assert.ok(runnable >= 0, 'the README has no simulator example');
    const run = spawnSync(process.execPath, [path.join(dir, `snippet${runnable + 1}.mjs`)], {
      cwd: dir,
      encoding: 'utf8',
      timeout: TEST_TIMEOUT_MS,
    });
    assert.equal(
      run.status,
      0,
      `the simulator example failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stdout}${run.stderr}`,
    );
    assert.match(run.stdout, /^true <Buffer 05> 0$/m);
  },
);
