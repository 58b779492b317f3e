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
    sets.set(
      name,
      (m[2] as string).split(/\s+/).filter((s) => s.length > 0),
    );
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
    const libs = (gypCondition(gypTarget(), "OS=='win'").libraries ?? []).map((l) =>
      l.replace(/\.lib$/i, '').toLowerCase(),
    );
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
      for (const file of sets.get(name) ?? [])
        assert.ok(fs.existsSync(path.join(root, file)), `${name}: ${file} exists`);
    }
    const cmake = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
    assert.match(
      cmake,
      /add_library\(fltmgr MODULE \$\{FLTMGR_SOURCES\} \$\{FLTMGR_WIN_SOURCES\} \$\{FLTMGR_MINGW_ONLY_SOURCES\}\)/,
    );
    assert.match(cmake, /add_library\(fltmgr MODULE \$\{FLTMGR_SOURCES\} \$\{FLTMGR_POSIX_SOURCES\}\)/);
  });

  test('the substitute fltlib.dll is built from the same simulator-backed fltlib as the addon', () => {
    const substitute = cmakeList('FLTMGR_SUBSTITUTE_SOURCES');
    for (const file of cmakeList('FLTMGR_WIN_SOURCES'))
      assert.ok(substitute.includes(file), `substitute builds ${file}`);
  });

  test('no substitute fltlib.dll inside prebuilds/', () => {
    const walk = (dir: string): string[] =>
      fs.existsSync(dir)
        ? fs
            .readdirSync(dir, { withFileTypes: true })
            .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
        : [];
    const dlls = walk(path.join(root, 'prebuilds')).filter((f) => /fltlib\.dll$/i.test(f));
    assert.deepEqual(dlls, []);
  });
});

// The sample minifilter is KMDF-based (driver-sample/README.md says why): the build files must agree on that, the VS
// project must build every C file the Linux compile check covers, and the framework stays in driver.c.
describe('driver-sample build files', () => {
  const driverDir = path.join(root, 'driver-sample', 'driver');
  const read = (name: string) => fs.readFileSync(path.join(driverDir, name), 'utf8');
  const vcxproj = () => read('fltsample.vcxproj').replace(/<!--[\s\S]*?-->/g, '');
  const withoutCComments = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const settings = (name: string) =>
    [...vcxproj().matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1] as string);

  test('the project is a KMDF driver with one KMDF version, the INF agreeing if it names one', () => {
    assert.deepEqual(settings('DriverType'), ['KMDF']);
    assert.doesNotMatch(vcxproj(), /UMDF/i);
    const major = settings('KMDF_VERSION_MAJOR');
    const minor = settings('KMDF_VERSION_MINOR');
    assert.equal(major.length, 1, 'KMDF_VERSION_MAJOR is set once');
    assert.equal(minor.length, 1, 'KMDF_VERSION_MINOR is set once');
    assert.match(`${major[0]}.${minor[0]}`, /^1\.\d+$/);
    const inf = read('fltsample.inf')
      .split('\n')
      .map((line) => line.replace(/;.*$/, ''))
      .join('\n');
    // A [<DDInstall>.Wdf] section is optional for a framework that ships with Windows; when present, its
    // KmdfLibraryVersion must be the version the driver is built against.
    if (/^\s*\[[^\]]+\.Wdf\]/im.test(inf)) {
      const versions = [...inf.matchAll(/^\s*KmdfLibraryVersion\s*=\s*([\d.]+)\s*$/gim)].map((m) => m[1]);
      assert.ok(versions.length > 0, 'the INF has a .Wdf section but no KmdfLibraryVersion');
      for (const version of versions) assert.equal(version, `${major[0]}.${minor[0]}`, 'INF KmdfLibraryVersion');
    }
    assert.doesNotMatch(inf, /CoInstaller/i, 'KMDF 1.15 is part of Windows 10: no co-installer');
  });

  test('the project builds every C file in driver-sample/driver, and links fltMgr.lib', () => {
    const built = [...vcxproj().matchAll(/<ClCompile Include="([^"]+)"/g)].map((m) => m[1] as string).sort();
    const onDisk = fs
      .readdirSync(driverDir)
      .filter((f) => f.endsWith('.c'))
      .sort();
    assert.deepEqual(built, onDisk);
    assert.match(vcxproj(), /<AdditionalDependencies>[^<]*\\fltMgr\.lib<\/AdditionalDependencies>/);
  });

  test('KMDF is used in driver.c only, and no source writes DriverObject->DriverUnload', () => {
    const files = fs.readdirSync(driverDir).filter((f) => /\.[ch]$/.test(f));
    assert.ok(files.includes('driver.c'), 'driver.c is in driver-sample/driver');
    assert.match(read('driver.c'), /#\s*include\s*<wdf\.h>/);
    for (const file of files) {
      const code = withoutCComments(read(file));
      // WdfDriverCreate and FltRegisterFilter each install their own unload routine and chain the one before
      // (driver.c's header); a driver that assigns DriverUnload itself cuts one of them out.
      assert.doesNotMatch(code, /\bDriverUnload\s*=[^=]/, `${file} assigns DriverUnload`);
      if (file === 'driver.c') continue;
      assert.doesNotMatch(code, /#\s*include\s*[<"]wdf/i, `${file} includes a WDF header`);
      assert.doesNotMatch(code, /\b(?:Wdf|WDF_|EVT_WDF_)[A-Za-z_]/, `${file} uses a WDF name`);
    }
  });
});

test("cmake/fltlib-x86.def imports every fltlib call the addon makes (mingw's i686 target has no libfltlib.a)", () => {
  // The calls: `return FilterXxx(` in the real-fltlib adapters of native/src/fltapi.cc.
  const source = fs.readFileSync(path.join(root, 'native', 'src', 'fltapi.cc'), 'utf8');
  const called = new Set([...source.matchAll(/return (Filter\w+)\(/g)].map((m) => m[1] as string));
  const def = fs.readFileSync(path.join(root, 'cmake', 'fltlib-x86.def'), 'utf8');
  const imported = new Set([...def.matchAll(/^\s+(Filter\w+)@\d+\s*$/gm)].map((m) => m[1] as string));
  assert.ok(called.size >= 22, `found only ${called.size} fltlib calls in fltapi.cc: did its form change?`);
  assert.deepEqual([...called].filter((c) => !imported.has(c)).sort(), [], 'missing from cmake/fltlib-x86.def');
});
