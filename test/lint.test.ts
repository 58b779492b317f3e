// The lint gate (scripts/lint.js: ESLint, Prettier, clang-format) on the whole tree, and proof that the runner
// fails on a planted finding of each tool and passes the same files once they are clean.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const lint = path.join(root, 'scripts', 'lint.js');

// The sanitizer lane reruns test/ against the sanitized addon; the sources are the same, linted once by npm test.
const skip = process.env.FLTMGR_SANITIZED === '1' ? 'sources are linted by npm test, not the sanitizer lane' : false;

function runLint(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [lint, ...args], { cwd: root, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test(
  'lint: the tree is clean under ESLint, Prettier and clang-format (npm run format fixes formatting)',
  { skip },
  () => {
    const { status, output } = runLint();
    assert.equal(status, 0, output);
  },
);

test('lint: the runner fails on a planted finding of each tool and passes the clean files', { skip }, (t) => {
  // Inside the tree (not a temp dir), so the tools find the project's own configs; test/ is linted, not ignored.
  const dir = fs.mkdtempSync(path.join(root, 'test', 'lint-probe-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const js = path.join(dir, 'probe.js');
  const mjs = path.join(dir, 'probe.mjs');
  const cc = path.join(dir, 'probe.cc');
  const files = [js, mjs, cc].map((f) => path.relative(root, f));

  // Clean: passes.
  fs.writeFileSync(js, "'use strict';\nmodule.exports = { probe: 1 };\n");
  fs.writeFileSync(mjs, "export const probe = 'clean';\n");
  fs.writeFileSync(cc, 'int Probe(int value) { return value + 1; }\n');
  const clean = runLint(...files);
  assert.equal(clean.status, 0, clean.output);

  // One finding per tool: an unused variable (ESLint), double quotes (Prettier), a misplaced brace (clang-format).
  fs.writeFileSync(js, "'use strict';\nconst unused = 1;\nmodule.exports = { probe: 1 };\n");
  fs.writeFileSync(mjs, 'export const probe = "planted";\n');
  fs.writeFileSync(cc, 'int Probe(int value)\n{\n  return value + 1;\n}\n');
  const planted = runLint(...files);
  assert.notEqual(planted.status, 0, planted.output);
  assert.match(planted.output, /no-unused-vars/);
  assert.match(planted.output, /lint: eslint \(exit 1\), prettier \(exit 1\), clang-format \(exit 1\)/);

  // --fix repairs the formatting; the unused variable is a defect for a person to remove.
  fs.writeFileSync(js, "'use strict';\nmodule.exports = { probe: 1 };\n");
  const fixed = runLint('--fix', ...files);
  assert.equal(fixed.status, 0, fixed.output);
  assert.equal(fs.readFileSync(mjs, 'utf8'), "export const probe = 'planted';\n");
  assert.equal(fs.readFileSync(cc, 'utf8'), 'int Probe(int value) { return value + 1; }\n');
  assert.equal(runLint(...files).status, 0);
});
