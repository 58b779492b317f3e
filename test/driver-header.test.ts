/**
 * Compile checks for the sample minifilter (driver-sample/), the parts that can be checked off Windows:
 * - the shared protocol header compiles as C11, C99 and C++ with the host gcc (64- and 32-bit) and
 *   mingw-w64 (x86_64, i686), and its static layout assertions hold on every one of them;
 * - the assertions really fire when a layout is wrong;
 * - the header coexists with <windows.h> + <fltuser.h> (what a C agent includes);
 * - the SID string parser of the driver, built and run on the host;
 * - every C file of the driver compiles with mingw-w64 against mingw's ntifs.h/wdm.h plus
 *   driver-sample/driver/check/fltKernel.h (a transcription of the Filter Manager declarations and the WDM
 *   pieces mingw lacks: see that file for what this does and does not prove).
 * A missing compiler skips its cases (CI installs gcc-mingw-w64 and gcc-multilib).
 */
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** A hang guard for one compiler run (a busy 2-core CI machine, libasan preloaded in the sanitizer lane). */
const COMPILER_HANG_GUARD_MS = 300_000;
/** execFile's error when the hang guard killed the compiler: a failure, never "not installed" or "refused". */
const timedOut = (error: unknown): boolean => (error as { killed?: boolean }).killed === true;

const root = resolve(__dirname, '..');
const includeDir = join(root, 'driver-sample', 'include');
const driverDir = join(root, 'driver-sample', 'driver');
const header = join(includeDir, 'fltmgr_sample_protocol.h');
const strict = ['-Wall', '-Wextra', '-Wpedantic', '-Werror'];

interface Compiler {
  readonly name: string;
  readonly cc: string;
  readonly cxx?: string;
  readonly flags: readonly string[];
}

const compilers: readonly Compiler[] = [
  { name: 'gcc (host, 64-bit)', cc: 'gcc', cxx: 'g++', flags: [] },
  { name: 'gcc -m32 (host, i386 SysV alignment)', cc: 'gcc', flags: ['-m32'] },
  { name: 'x86_64-w64-mingw32-gcc', cc: 'x86_64-w64-mingw32-gcc', cxx: 'x86_64-w64-mingw32-g++', flags: [] },
  { name: 'i686-w64-mingw32-gcc', cc: 'i686-w64-mingw32-gcc', cxx: 'i686-w64-mingw32-g++', flags: [] },
];

const availability = new Map<string, Promise<boolean>>();

/** True when `cc flags` can compile a trivial C file (catches both "not installed" and "no -m32"). */
function available(cc: string, flags: readonly string[] = []): Promise<boolean> {
  const key = [cc, ...flags].join(' ');
  let probe = availability.get(key);
  if (!probe) {
    probe = (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fltmgr-cc-'));
      try {
        const file = join(dir, 'probe.c');
        await writeFile(file, '#include <stddef.h>\nint probe(void) { return (int)offsetof(struct { int a; int b; }, b); }\n');
        await run(cc, [...flags, '-c', file, '-o', join(dir, 'probe.o')], { timeout: COMPILER_HANG_GUARD_MS });
        return true;
      } catch (error) {
        if (timedOut(error)) throw new Error(`${key}: no answer within ${COMPILER_HANG_GUARD_MS} ms`);
        return false;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    })();
    availability.set(key, probe);
  }
  return probe;
}

interface CompileResult {
  readonly ok: boolean;
  readonly output: string;
}

async function compile(cc: string, args: readonly string[]): Promise<CompileResult> {
  try {
    const { stdout, stderr } = await run(cc, [...args], { timeout: COMPILER_HANG_GUARD_MS, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    // A killed compiler did not refuse the code: that must not pass a test that expects a refusal.
    if (timedOut(error)) throw new Error(`${cc} ${args.join(' ')}: no answer within ${COMPILER_HANG_GUARD_MS} ms`);
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'fltmgr-driver-test-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const c of compilers) {
  test(`protocol header: ${c.name}`, async (t) => {
    if (!(await available(c.cc, c.flags))) {
      t.skip(`${c.cc} ${c.flags.join(' ')} not installed`);
      return;
    }
    for (const std of ['c11', 'c99']) {
      const r = await compile(c.cc, [...c.flags, `-std=${std}`, '-fsyntax-only', ...strict, '-x', 'c', header]);
      assert.ok(r.ok, `${c.cc} -std=${std}:\n${r.output}`);
    }
    if (c.cxx && (await available(c.cxx, c.flags))) {
      const r = await compile(c.cxx, [...c.flags, '-std=c++17', '-fsyntax-only', ...strict, '-x', 'c++', header]);
      assert.ok(r.ok, `${c.cxx} -std=c++17:\n${r.output}`);
    }
  });
}

test('protocol header: a wrong layout fails the build in every assertion mode', async (t) => {
  if (!(await available('gcc'))) {
    t.skip('gcc not installed');
    return;
  }
  await withTempDir(async (dir) => {
    const source = join(dir, 'wrong.c');
    await writeFile(
      source,
      `#include "fltmgr_sample_protocol.h"\nFLTSAMPLE_CHECK_FIELD(FLTSAMPLE_SCAN_REQUEST, Content, 567);\n`,
    );
    const cases: readonly [string, readonly string[]][] = [
      ['gcc', ['-std=c11', '-x', 'c']],
      ['gcc', ['-std=c99', '-x', 'c']],
      ['g++', ['-std=c++17', '-x', 'c++']],
    ];
    for (const [cc, flags] of cases) {
      if (!(await available(cc))) continue;
      const r = await compile(cc, [...flags, '-fsyntax-only', `-I${includeDir}`, source]);
      assert.equal(r.ok, false, `${cc} ${flags.join(' ')} accepted a wrong offset`);
      assert.match(r.output, /FLTSAMPLE_SCAN_REQUEST_Content|negative|static assert/i);
    }
  });
});

test('protocol header: usable with <windows.h> and <fltuser.h> (mingw-w64)', async (t) => {
  const targets = ['x86_64-w64-mingw32-gcc', 'i686-w64-mingw32-gcc'];
  let ran = 0;
  await withTempDir(async (dir) => {
    const source = join(dir, 'agent.c');
    await writeFile(
      source,
      [
        '#include <windows.h>',
        '#include <fltuser.h>',
        '#include "fltmgr_sample_protocol.h"',
        'typedef struct { FILTER_MESSAGE_HEADER Header; FLTSAMPLE_SCAN_REQUEST Request; } SAMPLE_MESSAGE;',
        'typedef struct { FILTER_REPLY_HEADER Header; FLTSAMPLE_SCAN_REPLY Reply; } SAMPLE_REPLY_MESSAGE;',
        '_Static_assert(sizeof(FILTER_MESSAGE_HEADER) == 16, "FILTER_MESSAGE_HEADER");',
        '_Static_assert(sizeof(SAMPLE_MESSAGE) == 16 + sizeof(FLTSAMPLE_SCAN_REQUEST), "message");',
        '_Static_assert(offsetof(SAMPLE_MESSAGE, Request) == 16, "payload offset");',
        '_Static_assert(sizeof(SAMPLE_REPLY_MESSAGE) == FLTSAMPLE_SCAN_REPLY_MESSAGE_BYTES, "reply bytes");',
        'const WCHAR *SamplePortName(void) { return FLTSAMPLE_PORT_NAME; }',
        '',
      ].join('\n'),
    );
    for (const cc of targets) {
      if (!(await available(cc))) continue;
      ran++;
      const r = await compile(cc, ['-std=c11', '-fsyntax-only', ...strict, `-I${includeDir}`, source]);
      assert.ok(r.ok, `${cc}:\n${r.output}`);
    }
  });
  if (ran === 0) t.skip('no mingw-w64 compiler installed');
});

test('driver: SID string parser (built and run on the host)', async (t) => {
  if (!(await available('gcc'))) {
    t.skip('gcc not installed');
    return;
  }
  await withTempDir(async (dir) => {
    const harness = join(dir, 'harness.c');
    await writeFile(
      harness,
      `#include <stdio.h>
#include <string.h>
#include "sidparse.h"
/* argv[1] as UTF-16 units -> "ok <hex>" | "invalid" | "small <size>" */
int main(int argc, char **argv) {
    FLTSAMPLE_WCHAR text[256];
    FLTSAMPLE_U8 sid[68];
    FLTSAMPLE_U32 size = 0, i, n;
    int r;
    if (argc < 2) return 2;
    n = (FLTSAMPLE_U32)strlen(argv[1]);
    if (n > 255) return 2;
    for (i = 0; i < n; i++) text[i] = (FLTSAMPLE_WCHAR)(unsigned char)argv[1][i];
    r = FsSidParse(text, n, sid, argc > 2 ? 8u : (FLTSAMPLE_U32)sizeof(sid), &size);
    if (r == FS_SID_PARSE_INVALID) { puts("invalid"); return 0; }
    if (r == FS_SID_PARSE_BUFFER_TOO_SMALL) { printf("small %u\\n", size); return 0; }
    printf("ok ");
    for (i = 0; i < size; i++) printf("%02x", sid[i]);
    puts("");
    return 0;
}
`,
    );
    const exe = join(dir, 'harness');
    const built = await compile('gcc', [
      '-std=c11',
      ...strict,
      '-Wconversion',
      `-I${includeDir}`,
      `-I${driverDir}`,
      harness,
      join(driverDir, 'sidparse.c'),
      '-o',
      exe,
    ]);
    assert.ok(built.ok, built.output);

    const parse = async (text: string, small = false): Promise<string> =>
      (await run(exe, small ? [text, 'small'] : [text])).stdout.trim();

    // Expected binary SIDs computed independently: revision 1, count, 6-byte big-endian authority,
    // little-endian 32-bit sub-authorities (the layout of SID in winnt.h).
    const sidHex = (authority: bigint, subs: readonly number[]): string => {
      const b = Buffer.alloc(8 + 4 * subs.length);
      b[0] = 1;
      b[1] = subs.length;
      for (let i = 0; i < 6; i++) b[2 + i] = Number((authority >> BigInt(8 * (5 - i))) & 0xffn);
      subs.forEach((v, i) => b.writeUInt32LE(v, 8 + 4 * i));
      return `ok ${b.toString('hex')}`;
    };
    assert.equal(await parse('S-1-5-32-545'), sidHex(5n, [32, 545])); // BUILTIN\Users
    assert.equal(await parse('S-1-5-18'), sidHex(5n, [18])); // LocalSystem
    assert.equal(await parse('s-1-1-0'), sidHex(1n, [0])); // Everyone, lower-case s
    assert.equal(
      await parse('S-1-5-21-3623811015-3361044348-30300820-1013'),
      sidHex(5n, [21, 3623811015, 3361044348, 30300820, 1013]),
    );
    assert.equal(await parse('S-1-0x123456789abc-7'), sidHex(0x123456789abcn, [7])); // hex authority
    assert.equal(await parse('S-1-5'), sidHex(5n, [])); // no sub-authorities
    assert.equal(await parse('S-1-5-4294967295'), sidHex(5n, [4294967295]));
    const fifteen = Array.from({ length: 15 }, (_, i) => i + 1);
    assert.equal(await parse(`S-1-5-${fifteen.join('-')}`), sidHex(5n, fifteen));
    assert.equal(await parse('S-1-5-32-545', true), 'small 16');

    for (const bad of [
      '',
      'S',
      'S-',
      'S-1',
      'S-1-',
      'S-2-5-32',
      'X-1-5-32',
      'S-1-5-',
      'S-1-5--32',
      'S-1-5-32-545-',
      'S-1-5-4294967296',
      'S-1-281474976710656-1',
      'S-1-0x1234567890abc-1',
      'S-1-0x-1',
      'S-1-5-+32',
      'S-1-5-32 ',
      'S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16',
    ]) {
      assert.equal(await parse(bad), 'invalid', `accepted ${JSON.stringify(bad)}`);
    }
  });
});

test('driver: C files compile with mingw-w64 (NTIFS/WDM from mingw, Filter Manager from check/fltKernel.h)', async (t) => {
  const cc = 'x86_64-w64-mingw32-gcc';
  if (!(await available(cc))) {
    t.skip(`${cc} not installed`);
    return;
  }
  // mingw-w64 keeps the DDK headers in <its include dir>/ddk; ask the compiler for its include dirs.
  const search = await compile(cc, ['-xc', '-E', '-v', '/dev/null']);
  const includeDirs = search.output
    .split('\n')
    .filter((line) => line.startsWith(' /'))
    .map((line) => line.trim());
  const ddkDir = includeDirs.map((dir) => join(dir, 'ddk')).find((dir) => existsSync(join(dir, 'ntifs.h')));
  if (!ddkDir) {
    t.skip(`mingw-w64 DDK headers (ddk/ntifs.h) not found in ${includeDirs.join(', ')}`);
    return;
  }
  const probe = await compile(cc, ['-fsyntax-only', '-x', 'c', `-isystem`, ddkDir, '-include', 'ntifs.h', '/dev/null']);
  if (!probe.ok) {
    t.skip(`mingw-w64 DDK headers (ntifs.h) not usable: ${probe.output.split('\n')[0] ?? ''}`);
    return;
  }
  // Every C file in the folder, so that a new one is checked without editing this list.
  const files = readdirSync(driverDir).filter((f) => f.endsWith('.c')).sort();
  assert.ok(files.includes('driver.c') && files.includes('filter.c'), `driver sources not found: ${files.join(', ')}`);
  for (const file of files) {
    const r = await compile(cc, [
      '-std=gnu11',
      '-fsyntax-only',
      '-Wall',
      '-Wextra',
      '-Werror',
      // MSVC-isms the driver uses on purpose: pool tags are multi-character constants, aggregate
      // initialisers leave trailing members zero, and #pragma alloc_text is MSVC's.
      '-Wno-multichar',
      '-Wno-missing-field-initializers',
      '-Wno-unknown-pragmas',
      '-isystem',
      ddkDir,
      `-I${join(driverDir, 'check')}`,
      `-I${includeDir}`,
      `-I${driverDir}`,
      '-D_AMD64_',
      join(driverDir, file),
    ]);
    assert.ok(r.ok, `${file}:\n${r.output}`);
  }
});
