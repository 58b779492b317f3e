// binding.gyp (node-gyp, MSVC and POSIX builds) and CMakeLists.txt (cmake-js, the mingw-w64 cross build) must
// build the same sources with the same defines. Both files are parsed here; any drift fails.
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

/** gyp files are Python literals: '#' comments, single or double quotes, trailing commas. */
function parseGyp(text: string): unknown {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let value = '';
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\') {
          value += text[i + 1] ?? '';
          i += 2;
          continue;
        }
        value += text[i];
        i++;
      }
      i++;
      out += JSON.stringify(value);
      continue;
    }
    out += c;
    i++;
  }
  return JSON.parse(out.replace(/,(\s*[\]}])/g, '$1'));
}

type GypTarget = {
  target_name: string;
  sources?: string[];
  defines?: string[];
  conditions?: Array<[string, GypTarget, GypTarget?]>;
  libraries?: string[];
};

function gypTarget(): GypTarget {
  const gyp = parseGyp(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')) as { targets: GypTarget[] };
  const target = gyp.targets.find((t) => t.target_name === 'fltmgr');
  assert.ok(target, 'binding.gyp has a target named fltmgr');
  return target;
}

function gypCondition(target: GypTarget, condition: string): GypTarget {
  const norm = (s: string) => s.replace(/\s+/g, '').replace(/"/g, "'");
  const found = (target.conditions ?? []).filter(([c]) => norm(c) === norm(condition));
  assert.equal(found.length, 1, `binding.gyp has exactly one condition ${condition}`);
  return (found[0] as [string, GypTarget])[1];
}

/** The values of every `set(NAME v1 v2 ...)` in CMakeLists.txt (comments removed). */
function cmakeSets(): Map<string, string[]> {
  const text = fs
    .readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8')
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, ''))
    .join('\n');
  const sets = new Map<string, string[]>();
  for (const m of text.matchAll(/\bset\(\s*([A-Za-z0-9_]+)\b([^)]*)\)/g)) {
    const name = m[1] as string;
    if (sets.has(name)) continue; // the first definition is the list
    sets.set(name, (m[2] as string).split(/\s+/).filter((s) => s.length > 0));
  }
  return sets;
}

function cmakeList(name: string): string[] {
  const list = cmakeSets().get(name);
  assert.ok(list, `CMakeLists.txt sets ${name}`);
  return list;
}

function sameSet(actual: string[], expected: string[], what: string) {
  assert.equal(new Set(actual).size, actual.length, `${what}: no duplicates in CMakeLists.txt`);
  assert.equal(new Set(expected).size, expected.length, `${what}: no duplicates in binding.gyp`);
  const missing = expected.filter((s) => !actual.includes(s));
  const extra = actual.filter((s) => !expected.includes(s));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${what}: CMakeLists.txt vs binding.gyp`);
}

describe('binding.gyp and CMakeLists.txt', () => {
  test('the common sources are the same', () => {
    sameSet(cmakeList('FLTMGR_SOURCES'), gypTarget().sources ?? [], 'common sources');
  });

  test("the POSIX sources are the same (OS!='win')", () => {
    sameSet(cmakeList('FLTMGR_POSIX_SOURCES'), gypCondition(gypTarget(), "OS!='win'").sources ?? [], 'POSIX sources');
  });

  test("the Windows sources are the same (OS=='win')", () => {
    sameSet(cmakeList('FLTMGR_WIN_SOURCES'), gypCondition(gypTarget(), "OS=='win'").sources ?? [], 'Windows sources');
  });

  test('the only CMake-only source is the mingw delay-load hook (node-gyp brings its own)', () => {
    assert.deepEqual(cmakeList('FLTMGR_MINGW_ONLY_SOURCES'), ['native/win/win_delay_load_hook.cc']);
    const gypText = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8');
    assert.ok(!gypText.includes('win_delay_load_hook'), 'binding.gyp must not list it: MSVC would get two hooks');
  });

  test('the defines are the same', () => {
    sameSet(cmakeList('FLTMGR_DEFINES'), gypTarget().defines ?? [], 'defines');
    sameSet(cmakeList('FLTMGR_WIN_DEFINES'), gypCondition(gypTarget(), "OS=='win'").defines ?? [], 'Windows defines');
  });

  test('both link fltlib and ws2_32 on Windows', () => {
    const libs = (gypCondition(gypTarget(), "OS=='win'").libraries ?? []).map((l) => l.replace(/\.lib$/i, '').toLowerCase());
    assert.deepEqual([...libs].sort(), ['fltlib', 'ws2_32']);
    const cmake = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
    assert.match(cmake, /target_link_libraries\(fltmgr PRIVATE "\$\{FLTMGR_NODE_DELAYLIB\}" fltlib ws2_32\)/);
  });

  test('every listed file exists, and the lists are what the targets build', () => {
    const sets = cmakeSets();
    for (const name of [
      'FLTMGR_SOURCES',
      'FLTMGR_POSIX_SOURCES',
      'FLTMGR_WIN_SOURCES',
      'FLTMGR_MINGW_ONLY_SOURCES',
      'FLTMGR_SUBSTITUTE_SOURCES',
    ]) {
      for (const file of sets.get(name) ?? []) assert.ok(fs.existsSync(path.join(root, file)), `${name}: ${file} exists`);
    }
    const cmake = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
    assert.match(cmake, /add_library\(fltmgr MODULE \$\{FLTMGR_SOURCES\} \$\{FLTMGR_WIN_SOURCES\} \$\{FLTMGR_MINGW_ONLY_SOURCES\}\)/);
    assert.match(cmake, /add_library\(fltmgr MODULE \$\{FLTMGR_SOURCES\} \$\{FLTMGR_POSIX_SOURCES\}\)/);
  });

  test('the substitute fltlib.dll is built from the same simulator-backed fltlib as the addon', () => {
    const substitute = cmakeList('FLTMGR_SUBSTITUTE_SOURCES');
    for (const file of cmakeList('FLTMGR_WIN_SOURCES')) assert.ok(substitute.includes(file), `substitute builds ${file}`);
  });

  test('no substitute fltlib.dll inside prebuilds/', () => {
    const walk = (dir: string): string[] =>
      fs.existsSync(dir)
        ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
            e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)],
          )
        : [];
    const dlls = walk(path.join(root, 'prebuilds')).filter((f) => /fltlib\.dll$/i.test(f));
    assert.deepEqual(dlls, []);
  });
});
