/**
 * Compile checks for the sample minifilter (driver-sample/), the parts that can be checked off Windows:
 * - the shared protocol header compiles as C11, C99 and C++ with the host gcc (64- and 32-bit) and
 *   mingw-w64 (x86_64, i686), and its static layout assertions hold on every one of them;
 * - the assertions really fire when a layout is wrong;
 * - the header coexists with <windows.h> + <fltuser.h> (what a C agent includes);
 * - the SID string parser of the driver, built and run on the host;
 * - driver.c's DriverEntry, built and run on the host against fakes of the KMDF routines it calls
 *   (native/kernel/include/wdf.h; a stand-in fltsample.h with Windows' type sizes): non-PnP WdfDriverCreate first, the
 *   PortGroupSid value's type, size and NUL rules, the key closed on every path, EvtDriverUnload -> FsTeardown;
 * - every C file of the driver compiles with mingw-w64 against mingw's ntifs.h/wdm.h plus
 *   native/kernel/include/fltKernel.h and wdf.h (transcriptions of the Filter Manager and KMDF
 *   declarations and the WDM pieces mingw lacks: see those files for what this does and does not prove).
 * A missing compiler skips its cases (CI installs gcc-mingw-w64 and gcc-multilib).
 */
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
        await writeFile(
          file,
          '#include <stddef.h>\nint probe(void) { return (int)offsetof(struct { int a; int b; }, b); }\n',
        );
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
    const { stdout, stderr } = await run(cc, [...args], {
      timeout: COMPILER_HANG_GUARD_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
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

test('driver: DriverEntry (KMDF) reads PortGroupSid (driver.c built and run on the host against fakes)', async (t) => {
  if (!(await available('gcc', ['-fshort-wchar']))) {
    t.skip('gcc not installed');
    return;
  }
  await withTempDir(async (dir) => {
    // driver.c's `#include "fltsample.h"` finds this stand-in next to the copy: only the kernel types and
    // routines driver.c uses, with Windows' LLP64 sizes (ULONG is 32-bit) and 16-bit WCHAR (-fshort-wchar).
    // Its `#include <wdf.h>` finds native/kernel/include/wdf.h (the KMDF calls as plain functions), copied next to it.
    await writeFile(
      join(dir, 'fltsample.h'),
      `#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>
typedef void VOID;
typedef void *PVOID;
typedef int32_t NTSTATUS;
typedef int32_t LONG;
typedef uint32_t ULONG;
typedef ULONG *PULONG;
typedef uint16_t USHORT;
typedef uint8_t UCHAR;
typedef uint16_t WCHAR;
typedef WCHAR *PWCH;
typedef ULONG ACCESS_MASK;
typedef struct _UNICODE_STRING { USHORT Length; USHORT MaximumLength; PWCH Buffer; } UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;
typedef struct _DRIVER_OBJECT { int Unused; } DRIVER_OBJECT, *PDRIVER_OBJECT;
typedef NTSTATUS DRIVER_INITIALIZE(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);
#define NT_SUCCESS(status) ((NTSTATUS)(status) >= 0)
#define STATUS_SUCCESS ((NTSTATUS)0)
#define STATUS_BUFFER_OVERFLOW ((NTSTATUS)0x80000005u)
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000Du)
#define STATUS_OBJECT_TYPE_MISMATCH ((NTSTATUS)0xC0000024u)
#define STATUS_OBJECT_NAME_NOT_FOUND ((NTSTATUS)0xC0000034u)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009Au)
#define REG_SZ 1u
#define KEY_READ 0x20019u
#define DPFLTR_IHVDRIVER_ID 77u
#define DPFLTR_WARNING_LEVEL 1u
#define DPFLTR_INFO_LEVEL 3u
#define FS_TAG_FRAMEWORK 0x46574b4du
#define RTL_CONSTANT_STRING(s) { sizeof(s) - sizeof((s)[0]), sizeof(s), (PWCH)(s) }
#define RtlZeroMemory(destination, length) memset((destination), 0, (length))
#define PAGED_CODE() ((void)0)
#define UNREFERENCED_PARAMETER(p) ((void)(p))
#define _IRQL_requires_(irql)
#define _In_
#define _Out_
#define _Use_decl_annotations_
ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, const char *Format, ...);
NTSTATUS FsInitialize(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING PortGroupSidString);
VOID FsTeardown(VOID);
`,
    );
    await writeFile(join(dir, 'wdf.h'), await readFile(join(root, 'native', 'kernel', 'include', 'wdf.h')));
    // The fakes check every argument driver.c passes and follow the framework's documented behaviour and
    // source: WdfRegistryQueryValue sets the length and type and returns STATUS_BUFFER_OVERFLOW, copying
    // nothing, when the data does not fit (FxRegKey::_QueryValue). The bytes after the data are garbage.
    // argv: "createfails" | "initfails" | "nokey" | "absent" | <type> <data as hex bytes>. Prints what
    // FsInitialize received, DriverEntry's status, then, as the framework would after a successful
    // DriverEntry, calls the registered EvtDriverUnload and prints FsTeardown's call count before and after.
    await writeFile(
      join(dir, 'harness.c'),
      `#include <stdio.h>
#include <stdlib.h>
#include "fltsample.h"
#include <wdf.h>
static DRIVER_OBJECT driverObject;
static UNICODE_STRING registryPath;
static int frameworkDriver, frameworkKey;
static int createFails, initFails, keyExists = 1, valueExists = 1;
static int drivers, openKeys, warnings, initCalls, teardowns;
static PFN_WDF_DRIVER_UNLOAD unloadRoutine;
static ULONG valueType, valueLength;
static UCHAR valueData[4096];
NTSTATUS WdfDriverCreate(PDRIVER_OBJECT d, PCUNICODE_STRING path, PWDF_OBJECT_ATTRIBUTES attributes,
                         PWDF_DRIVER_CONFIG config, WDFDRIVER *driver) {
    if (d != &driverObject || path != &registryPath || attributes != WDF_NO_OBJECT_ATTRIBUTES || driver == NULL) abort();
    /* The first call, before anything else; non-PnP: no EvtDriverDeviceAdd, an EvtDriverUnload. */
    if (drivers++ != 0 || initCalls != 0 || openKeys != 0) abort();
    if (config->Size != sizeof(*config) || config->EvtDriverDeviceAdd != NULL || config->EvtDriverUnload == NULL) abort();
    if (config->DriverInitFlags != WdfDriverInitNonPnpDriver || config->DriverPoolTag != FS_TAG_FRAMEWORK) abort();
    if (createFails) return STATUS_INSUFFICIENT_RESOURCES;
    unloadRoutine = config->EvtDriverUnload;
    *driver = (WDFDRIVER)&frameworkDriver;
    return STATUS_SUCCESS;
}
NTSTATUS WdfDriverOpenParametersRegistryKey(WDFDRIVER driver, ACCESS_MASK access, PWDF_OBJECT_ATTRIBUTES attributes, WDFKEY *key) {
    if (driver != (WDFDRIVER)&frameworkDriver || access != KEY_READ || attributes != WDF_NO_OBJECT_ATTRIBUTES) abort();
    if (!keyExists) return STATUS_OBJECT_NAME_NOT_FOUND;
    openKeys++;
    *key = (WDFKEY)&frameworkKey;
    return STATUS_SUCCESS;
}
NTSTATUS WdfRegistryQueryValue(WDFKEY key, PCUNICODE_STRING name, ULONG length, PVOID value, PULONG queried, PULONG type) {
    static const char expected[] = "PortGroupSid";
    ULONG i;
    if (key != (WDFKEY)&frameworkKey || openKeys != 1 || value == NULL || queried == NULL || type == NULL) abort();
    if (name->Length != 2 * (sizeof(expected) - 1)) abort();
    for (i = 0; i < sizeof(expected) - 1; i++) if (name->Buffer[i] != (WCHAR)expected[i]) abort();
    if (!valueExists) return STATUS_OBJECT_NAME_NOT_FOUND;
    *queried = valueLength;
    *type = valueType;
    if (length < valueLength) return STATUS_BUFFER_OVERFLOW;
    memcpy(value, valueData, valueLength);
    memset((UCHAR *)value + valueLength, 0x5a, length - valueLength);
    return STATUS_SUCCESS;
}
VOID WdfRegistryClose(WDFKEY key) {
    if (key != (WDFKEY)&frameworkKey || openKeys != 1) abort();
    openKeys--;
}
ULONG DbgPrintEx(ULONG component, ULONG level, const char *format, ...) {
    (void)component; (void)format;
    if (level == DPFLTR_WARNING_LEVEL) warnings++;
    return 0;
}
NTSTATUS FsInitialize(PDRIVER_OBJECT d, PCUNICODE_STRING s) {
    USHORT i;
    /* After the framework driver object exists (see driver.c's header), with the key closed. */
    if (d != &driverObject || drivers != 1 || openKeys != 0 || initCalls++ != 0) abort();
    if (s == NULL) printf("init NULL");
    else {
        if (s->Length % 2 != 0 || s->MaximumLength < s->Length || (s->Length != 0 && s->Buffer == NULL)) abort();
        printf("init \\"");
        for (i = 0; i < s->Length / 2; i++) {
            if (s->Buffer[i] >= 0x20 && s->Buffer[i] < 0x7f) putchar(s->Buffer[i]); else printf("<%04x>", s->Buffer[i]);
        }
        printf("\\"");
    }
    return initFails ? STATUS_INSUFFICIENT_RESOURCES : STATUS_SUCCESS;
}
VOID FsTeardown(VOID) { teardowns++; }
DRIVER_INITIALIZE DriverEntry;
int main(int argc, char **argv) {
    const char *hex;
    NTSTATUS status;
    int before;
    if (argc < 2) return 2;
    if (strcmp(argv[1], "createfails") == 0) createFails = 1;
    else if (strcmp(argv[1], "initfails") == 0) { initFails = 1; valueExists = 0; }
    else if (strcmp(argv[1], "nokey") == 0) keyExists = 0;
    else if (strcmp(argv[1], "absent") == 0) valueExists = 0;
    else {
        if (argc < 3) return 2;
        valueType = (ULONG)strtoul(argv[1], NULL, 10);
        for (hex = argv[2]; hex[0] && hex[1] && valueLength < sizeof(valueData); hex += 2) {
            char byte[3] = { hex[0], hex[1], 0 };
            valueData[valueLength++] = (UCHAR)strtoul(byte, NULL, 16);
        }
    }
    status = DriverEntry(&driverObject, &registryPath);
    printf(" status %d warnings %d open %d", (int)status, warnings, openKeys);
    /* The framework calls EvtDriverUnload only after a successful DriverEntry. */
    if (NT_SUCCESS(status)) {
        before = teardowns;
        unloadRoutine((WDFDRIVER)&frameworkDriver);
        printf(" unload teardown %d->%d", before, teardowns);
    }
    printf("\\n");
    return 0;
}
`,
    );
    await writeFile(join(dir, 'driver.c'), await readFile(join(driverDir, 'driver.c')));
    const exe = join(dir, 'harness');
    const built = await compile('gcc', [
      '-std=c11',
      '-fshort-wchar',
      ...strict,
      '-Wconversion',
      '-Wno-unknown-pragmas',
      `-I${dir}`,
      join(dir, 'harness.c'),
      join(dir, 'driver.c'),
      '-o',
      exe,
    ]);
    assert.ok(built.ok, built.output);

    const REG_SZ = 1;
    const REG_EXPAND_SZ = 2;
    const REG_DWORD = 4;
    const STATUS_INSUFFICIENT_RESOURCES = 0xc000009a | 0;
    const utf16 = (text: string) => Buffer.from(text, 'utf16le').toString('hex');
    const entry = async (...args: string[]) => (await run(exe, args)).stdout.trim();
    // A successful DriverEntry; then EvtDriverUnload runs FsTeardown once (a no-op after FilterUnload).
    const loaded = 'status 0 warnings 0 open 0 unload teardown 0->1';
    const accepted = (text: string) => `init ${JSON.stringify(text)} ${loaded}`;
    const ignored = (warnings: number) => `init NULL status 0 warnings ${warnings} open 0 unload teardown 0->1`;

    // Absent value or Parameters key: normal, silent.
    assert.equal(await entry('absent'), `init NULL ${loaded}`);
    assert.equal(await entry('nokey'), `init NULL ${loaded}`);
    // WdfDriverCreate fails: nothing else runs. FsInitialize fails: its status is DriverEntry's, no unload.
    assert.equal(await entry('createfails'), `status ${STATUS_INSUFFICIENT_RESOURCES} warnings 0 open 0`);
    assert.equal(await entry('initfails'), `init NULL status ${STATUS_INSUFFICIENT_RESOURCES} warnings 0 open 0`);
    // REG_SZ with or without terminating NULs: FsInitialize gets the characters only.
    assert.equal(await entry(String(REG_SZ), utf16('S-1-5-32-545\0')), accepted('S-1-5-32-545'));
    assert.equal(await entry(String(REG_SZ), utf16('S-1-5-32-545')), accepted('S-1-5-32-545'));
    assert.equal(await entry(String(REG_SZ), utf16('S-1-5-32-545\0\0')), accepted('S-1-5-32-545'));
    assert.equal(await entry(String(REG_SZ), ''), accepted(''));
    assert.equal(await entry(String(REG_SZ), utf16('\0')), accepted(''));
    // The bound: 255 characters (with or without a NUL) pass; 256 characters do not, nor does more data.
    assert.equal(await entry(String(REG_SZ), utf16(`${'7'.repeat(255)}\0`)), accepted('7'.repeat(255)));
    assert.equal(await entry(String(REG_SZ), utf16('7'.repeat(255))), accepted('7'.repeat(255)));
    assert.equal(await entry(String(REG_SZ), utf16('7'.repeat(256))), ignored(1));
    assert.equal(await entry(String(REG_SZ), utf16(`${'7'.repeat(256)}\0`)), ignored(1));
    assert.equal(await entry(String(REG_SZ), utf16('7'.repeat(1000))), ignored(1));
    // Shape errors: another type, an odd byte count, a NUL inside the string.
    assert.equal(await entry(String(REG_DWORD), '20020000'), ignored(1));
    assert.equal(await entry(String(REG_EXPAND_SZ), utf16('S-1-5-32-545\0')), ignored(1));
    assert.equal(await entry(String(REG_SZ), `${utf16('S-1-5')}00`), ignored(1));
    assert.equal(await entry(String(REG_SZ), utf16('S-1-5\0-32-545\0')), ignored(1));
    // Non-ASCII passes through unchanged: FsSidParse (tested above) is the one that refuses it.
    assert.equal(await entry(String(REG_SZ), utf16('S-1-\u00e9')), `init "S-1-<00e9>" ${loaded}`);
  });
});

test('driver: C files compile with mingw-w64 (NTIFS/WDM from mingw, Filter Manager and KMDF from native/kernel/include)', async (t) => {
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
  const files = readdirSync(driverDir)
    .filter((f) => f.endsWith('.c'))
    .sort();
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
      `-I${join(root, 'native', 'kernel', 'include')}`,
      `-I${includeDir}`,
      `-I${driverDir}`,
      '-D_AMD64_',
      join(driverDir, file),
    ]);
    assert.ok(r.ok, `${file}:\n${r.output}`);
  }
});
