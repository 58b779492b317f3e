/**
 * The kernel harness's first slice (issue 7, native/kernel/README.md):
 * - every C file of the sample driver compiles on Linux with gcc against the harness's own headers
 *   (native/kernel/include), LLP64 types and -fshort-wchar, warning-free;
 * - native/kernel/IMPORTS.json lists exactly the routines the compiled objects import (`nm`, not grep):
 *   a routine the driver starts calling fails this test until it is listed, and so does a listed one the
 *   driver no longer calls;
 * - the headers refuse a build without -fshort-wchar (L"..." would silently be 32-bit);
 * - the NTSTATUS values the harness header defines are lib/status.ts's (one fact, checked in both places).
 * A missing gcc or nm skips the cases that need it.
 */
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { NtStatus } from '../lib/status';
import { buildKernelImage } from '../lib/simulator/kernel-build';

const run = promisify(execFile);
/** A hang guard for one tool run on a busy 2-core machine; a killed tool fails the test. */
const TOOL_HANG_GUARD_MS = 300_000;

const root = resolve(__dirname, '..');
const driverDir = join(root, 'driver-sample', 'driver');
const kernelDir = join(root, 'native', 'kernel');
const harnessInclude = join(kernelDir, 'include');
const protocolInclude = join(root, 'driver-sample', 'include');

/** The compile line a driver is built with for the harness (native/kernel/README.md says why each flag). */
const driverFlags: readonly string[] = [
  '-std=gnu11',
  '-fshort-wchar',
  '-Wall',
  '-Wextra',
  '-Werror',
  // MSVC-isms the driver uses on purpose: pool tags are multi-character constants and aggregate
  // initialisers leave trailing members zero. (#pragma alloc_text is behind ALLOC_PRAGMA, not defined here.)
  '-Wno-multichar',
  '-Wno-missing-field-initializers',
  `-I${harnessInclude}`,
  `-I${protocolInclude}`,
  `-I${driverDir}`,
];

interface Inventory {
  readonly imports: readonly {
    readonly name: string;
    readonly status: string;
    readonly implementedBy?: string;
    readonly reference: string;
  }[];
}

interface ToolResult {
  readonly ok: boolean;
  readonly output: string;
}

async function tool(cmd: string, args: readonly string[]): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(cmd, [...args], { timeout: TOOL_HANG_GUARD_MS, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { killed?: boolean; stdout?: string; stderr?: string; message: string };
    if (e.killed === true) throw new Error(`${cmd} ${args.join(' ')}: no answer within ${TOOL_HANG_GUARD_MS} ms`);
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

async function installed(cmd: string): Promise<boolean> {
  return (await tool(cmd, ['--version'])).ok;
}

/** Global symbol names from `nm` output lines ("  U name" / "0000 T name"). */
function symbols(nmOutput: string): Set<string> {
  const names = new Set<string>();
  for (const line of nmOutput.split('\n')) {
    const name = line.trim().split(/\s+/).pop();
    if (name && !name.endsWith(':')) names.add(name);
  }
  return names;
}

test('kernel harness: every driver C file compiles warning-free on Linux, and IMPORTS.json lists exactly its imports', async (t) => {
  if (!(await installed('gcc')) || !(await installed('nm'))) {
    t.skip('gcc or nm (binutils) not installed');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'fltmgr-kernel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  // Every C file in the folder, so that a new one is checked without editing this list.
  const files = readdirSync(driverDir)
    .filter((f) => f.endsWith('.c'))
    .sort();
  assert.ok(files.includes('driver.c') && files.includes('port.c'), `driver sources not found: ${files.join(', ')}`);
  const objects: string[] = [];
  for (const file of files) {
    const object = join(dir, file.replace(/\.c$/, '.o'));
    const r = await tool('gcc', [...driverFlags, '-c', join(driverDir, file), '-o', object]);
    assert.ok(r.ok, `${file} does not compile against native/kernel/include:\n${r.output}`);
    assert.equal(r.output.trim(), '', `${file}: the compiler said something:\n${r.output}`);
    objects.push(object);
  }

  const undefinedNames = await tool('nm', ['-u', ...objects]);
  const definedNames = await tool('nm', ['-g', '--defined-only', ...objects]);
  assert.ok(undefinedNames.ok && definedNames.ok, undefinedNames.output + definedNames.output);
  // The objects' calls to each other (FsAllocate, FsGlobals, ...) are not imports.
  const defined = symbols(definedNames.output);
  const imported = [...symbols(undefinedNames.output)].filter((name) => !defined.has(name)).sort();
  assert.ok(imported.includes('FltSendMessage'), `nm found no Filter Manager import: ${imported.join(' ')}`);

  const inventory = JSON.parse(readFileSync(join(kernelDir, 'IMPORTS.json'), 'utf8')) as Inventory;
  const listed = inventory.imports.map((entry) => entry.name);
  assert.equal(new Set(listed).size, listed.length, 'IMPORTS.json lists a routine twice');
  for (const entry of inventory.imports) {
    assert.ok(['not yet', 'implemented'].includes(entry.status), `${entry.name}: unknown status "${entry.status}"`);
    assert.ok(entry.reference.length > 0, `${entry.name}: no semantics reference`);
  }
  const missing = imported.filter((name) => !listed.includes(name));
  const stale = listed.filter((name) => !imported.includes(name)).sort();
  assert.deepEqual(
    missing,
    [],
    `the driver imports routines missing from native/kernel/IMPORTS.json: ${missing.join(', ')}`,
  );
  assert.deepEqual(
    stale,
    [],
    `native/kernel/IMPORTS.json lists routines the driver no longer imports: ${stale.join(', ')}`,
  );
});

test('kernel harness: the headers refuse a build without -fshort-wchar', async (t) => {
  if (!(await installed('gcc'))) {
    t.skip('gcc not installed');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'fltmgr-kernel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const source = join(dir, 'wide.c');
  await writeFile(source, '#include <fltKernel.h>\nconst WCHAR *name = L"x";\n');
  const flags = driverFlags.filter((flag) => flag !== '-fshort-wchar');
  const refused = await tool('gcc', [...flags, '-fsyntax-only', source]);
  assert.equal(refused.ok, false, 'compiled with a 32-bit wchar_t');
  assert.match(refused.output, /-fshort-wchar/);
  const accepted = await tool('gcc', [...driverFlags, '-fsyntax-only', source]);
  assert.ok(accepted.ok, accepted.output);
});

test('kernel harness: its NTSTATUS values are the ones in lib/status.ts', () => {
  const header = readFileSync(join(harnessInclude, 'fltmgr_kernel_nt.h'), 'utf8');
  const defined = [...header.matchAll(/^#define (STATUS_[A-Z_]+) \(\(NTSTATUS\)(0x[0-9A-Fa-f]+)u?\)/gm)];
  assert.ok(defined.length >= 10, `found only ${defined.length} STATUS_ definitions in fltmgr_kernel_nt.h`);
  const known: Record<string, number> = NtStatus;
  for (const [, name, value] of defined) {
    const expected = known[name as string];
    if (expected === undefined) continue; // a status only the driver side needs
    assert.equal(Number(value) >>> 0, expected >>> 0, `${name as string} differs from lib/status.ts`);
  }
});

test('kernel harness: each routine IMPORTS.json marks implemented is defined in the image, in the file it names', async (t) => {
  if (process.platform !== 'linux' || !(await installed('gcc')) || !(await installed('nm'))) {
    t.skip('needs Linux with gcc and nm (binutils)');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'fltmgr-kernel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sources = readdirSync(driverDir)
    .filter((f) => f.endsWith('.c'))
    .map((f) => join(driverDir, f));
  // -z defs: the link itself fails, naming the routine, when one is missing (lib/simulator/kernel-build.ts).
  const image = buildKernelImage({ sources, includeDirs: [protocolInclude], out: join(dir, 'fltsample.so') });
  const all = await tool('nm', ['--defined-only', image]);
  const undefinedNames = await tool('nm', ['-u', image]);
  assert.ok(all.ok && undefinedNames.ok, all.output + undefinedNames.output);
  const definedInImage = symbols(all.output);
  const fromLibraries = new Set([...symbols(undefinedNames.output)].map((n) => n.replace(/@.*$/, '')));
  const inventory = JSON.parse(readFileSync(join(kernelDir, 'IMPORTS.json'), 'utf8')) as Inventory;
  for (const entry of inventory.imports) {
    if (entry.status !== 'implemented') {
      assert.ok(!definedInImage.has(entry.name), `${entry.name} is defined by the harness: mark it implemented`);
      continue;
    }
    const by = entry.implementedBy ?? '';
    if (by.startsWith('the C library')) {
      assert.ok(fromLibraries.has(entry.name), `${entry.name}: expected from the C library, not in the image`);
      continue;
    }
    assert.ok(definedInImage.has(entry.name), `${entry.name} is marked implemented but the image does not define it`);
    const file = readFileSync(join(kernelDir, 'src', by), 'utf8');
    assert.match(file, new RegExp(`\\b${entry.name}\\(`), `${entry.name}: not in native/kernel/src/${by}`);
  }
});
