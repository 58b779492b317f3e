/**
 * Checks TypeScript struct layouts (lib/struct.ts) against a real C compiler.
 *
 * For every layout it emits C checks of sizeof/_Alignof of the struct and offsetof/sizeof of every
 * field, recursively (nested struct members as `a.b`, array elements as `a[i]`):
 * - mode 'static' (default, works with cross compilers that cannot run their output): the checks are
 *   `_Static_assert`s, so a mismatch is a compile error naming the field. When some fail, a second
 *   compile to assembly (`-S`) reads the compiler's actual values for the report.
 * - mode 'run' (host compiler only): builds and runs a program that prints every value.
 *
 * Usage: `await checkLayoutsWithCompiler({ compiler: 'x86_64-w64-mingw32-gcc', includes: ['"protocol.h"'],
 * includeDirs: ['driver-sample'], layouts: [MyMessage] })`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArrayType, StructType, type AnyFieldType, type Arch, type Fields } from '../../lib/struct';

export type AnyStruct = StructType<Fields>;
export type CheckKind = 'size' | 'alignment' | 'offset' | 'fieldSize';
export type CFieldNameMap =
  ((structName: string, field: string) => string) | Readonly<Record<string, Readonly<Record<string, string>>>>;

export interface ProbeLayout {
  readonly layout: AnyStruct;
  /** C type expression for this layout; default: cTypeNames[name] or the layout's name. */
  readonly cType?: string;
}

export interface CompilerCheckOptions {
  /** Compiler command, e.g. 'gcc', 'x86_64-w64-mingw32-gcc', 'clang'. */
  readonly compiler: string;
  /** Layouts to check (nested structs are checked through their parent's members). */
  readonly layouts: readonly (AnyStruct | ProbeLayout)[];
  /** Headers declaring the C types: '<windows.h>', '"protocol.h"', or a bare path (quoted for you). */
  readonly includes?: readonly string[];
  /** -I directories. */
  readonly includeDirs?: readonly string[];
  /** C code placed after the includes (e.g. the struct definitions themselves). */
  readonly prelude?: string;
  /** TS struct name -> C type expression (e.g. { SCAN_REQUEST: 'struct _SCAN_REQUEST' }). */
  readonly cTypeNames?: Readonly<Record<string, string>>;
  /** TS field name -> C member name, per struct name, or a function; default: the same name. */
  readonly cFieldNames?: CFieldNameMap;
  /** Extra compiler flags, before the source file (e.g. ['--target=aarch64-pc-windows-msvc']). */
  readonly cflags?: readonly string[];
  /** Fail early when a layout was computed for another arch (arch-independent layouts always pass). */
  readonly arch?: Arch;
  readonly mode?: 'static' | 'run';
  /**
   * 'c++' compiles the probe as C++ (for headers that are C++ only, such as native/compat/win32_compat.h);
   * the checks keep their C spelling through two macros. Default 'c'.
   */
  readonly language?: 'c' | 'c++';
  /** Per compiler/program invocation, a hang guard (not a budget); default COMPILER_HANG_GUARD_MS. */
  readonly timeoutMs?: number;
}

export interface LayoutCheck {
  /** 'SCAN_REQUEST' or 'SCAN_REQUEST.path' or 'NESTED.smalls[2].y'. */
  readonly path: string;
  readonly kind: CheckKind;
  readonly expected: number;
  readonly cExpression: string;
}

export interface LayoutMismatch extends LayoutCheck {
  /** What the compiler says; undefined when it could not be read back. */
  readonly actual: number | undefined;
  readonly message: string;
}

export interface CompilerCheckResult {
  readonly ok: boolean;
  readonly compiler: string;
  readonly mode: 'static' | 'run';
  readonly checks: readonly LayoutCheck[];
  readonly mismatches: readonly LayoutMismatch[];
  /** Compiler diagnostics that are not layout mismatches (missing header, unknown member...). */
  readonly errors: readonly string[];
  /** The generated C source (for debugging). */
  readonly source: string;
}

const MARKER = 'fltmgr-probe';

/** Lists the checks for some layouts (exported for tests and for custom generators). */
export function layoutChecks(
  layouts: readonly (AnyStruct | ProbeLayout)[],
  cTypeNames: Readonly<Record<string, string>> = {},
  cFieldNames?: CFieldNameMap,
): LayoutCheck[] {
  const fieldName = toFieldNameFn(cFieldNames);
  const checks: LayoutCheck[] = [];
  for (const entry of layouts) {
    const { layout, cType: explicitType } = entry instanceof StructType ? { layout: entry, cType: undefined } : entry;
    if (!(layout instanceof StructType)) throw new TypeError('layouts: every entry must be a struct() layout');
    const cType = explicitType ?? cTypeNames[layout.name] ?? layout.name;
    checks.push({ path: layout.name, kind: 'size', expected: layout.size, cExpression: `sizeof(${cType})` });
    checks.push({
      path: layout.name,
      kind: 'alignment',
      expected: layout.alignment,
      cExpression: `_Alignof(${cType})`,
    });
    const walkStruct = (s: AnyStruct, base: number, tsPrefix: string, cPrefix: string): void => {
      for (const f of s.fields) {
        const tsPath = `${tsPrefix}.${f.name}`;
        const cMember = `${cPrefix}${cPrefix === '' ? '' : '.'}${fieldName(s.name, f.name)}`;
        walkMember(f.type, base + f.offset, f.size, tsPath, cMember);
      }
    };
    const walkMember = (type: AnyFieldType, offset: number, size: number, tsPath: string, cMember: string): void => {
      checks.push({ path: tsPath, kind: 'offset', expected: offset, cExpression: `offsetof(${cType}, ${cMember})` });
      checks.push({
        path: tsPath,
        kind: 'fieldSize',
        expected: size,
        cExpression: `sizeof(((${cType} *)0)->${cMember})`,
      });
      if (type instanceof StructType) {
        walkStruct(type, offset, tsPath, cMember);
      } else if (type instanceof ArrayType) {
        const el = type.element as AnyFieldType;
        const stride = size / type.length;
        // The first and last elements pin down the stride; the middle adds nothing.
        const indices = type.length > 1 ? [0, type.length - 1] : [0];
        for (const i of indices) walkMember(el, offset + i * stride, stride, `${tsPath}[${i}]`, `${cMember}[${i}]`);
      }
    };
    walkStruct(layout, 0, layout.name, '');
  }
  return checks;
}

function toFieldNameFn(map: CFieldNameMap | undefined): (structName: string, field: string) => string {
  if (map === undefined) return (_s, f) => f;
  if (typeof map === 'function') return map;
  return (s, f) => map[s]?.[f] ?? f;
}

function includeLine(inc: string): string {
  const t = inc.trim();
  return t.startsWith('<') || t.startsWith('"') ? `#include ${t}` : `#include ${JSON.stringify(t)}`;
}

function sourceHeader(opts: CompilerCheckOptions): string {
  const lines = ['/* generated by fltmgr test/helpers/struct-probe.ts */', '#include <stddef.h>'];
  if (opts.language === 'c++') lines.push('#define _Static_assert static_assert', '#define _Alignof alignof');
  for (const inc of opts.includes ?? []) lines.push(includeLine(inc));
  if (opts.prelude !== undefined) lines.push(opts.prelude);
  return lines.join('\n') + '\n';
}

/** C source of `_Static_assert`s for the layouts: a mismatch is a compile error naming the field. */
export function staticAssertSource(opts: CompilerCheckOptions, checks = checksFor(opts)): string {
  const body = checks.map(
    (c, i) =>
      `_Static_assert(${c.cExpression} == ${c.expected}, "${MARKER}|${i}|${c.path}: ${c.kind} should be ${c.expected}");`,
  );
  return sourceHeader(opts) + body.join('\n') + '\n';
}

function valuesSource(opts: CompilerCheckOptions, checks: readonly LayoutCheck[]): string {
  // +1 so that no value is 0: gcc may fold runs of zeros into `.zero N` in the assembly.
  const values = checks.map((c) => `  (unsigned int)(${c.cExpression}) + 1u,`);
  // C++: extern "C" gives the const array external linkage (and an unmangled name) so that it is emitted.
  const linkage = opts.language === 'c++' ? 'extern "C" ' : '';
  return sourceHeader(opts) + `${linkage}const unsigned int fltmgr_probe_values[] = {\n${values.join('\n')}\n};\n`;
}

function runSource(opts: CompilerCheckOptions, checks: readonly LayoutCheck[]): string {
  const prints = checks.map((c) => `  printf("%lu\\n", (unsigned long)(${c.cExpression}));`);
  return sourceHeader(opts) + `#include <stdio.h>\nint main(void) {\n${prints.join('\n')}\n  return 0;\n}\n`;
}

function checksFor(opts: CompilerCheckOptions): LayoutCheck[] {
  return layoutChecks(opts.layouts, opts.cTypeNames, opts.cFieldNames);
}

interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * How long one compiler or probe run may take before it counts as hung. Generous on purpose: CI runs on a busy
 * 2-core machine (and the sanitizer lane preloads libasan into every child, compilers included).
 */
export const COMPILER_HANG_GUARD_MS = 300_000;

class TimedOut extends Error {}

function run(cmd: string, args: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
      if (e.code === 'ENOENT') return reject(new Error(`${cmd}: not found`));
      if (e.killed === true) return reject(new TimedOut(`${cmd}: timed out after ${timeoutMs} ms`));
      resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr });
    });
  });
}

/** True when `compiler --version` runs. */
export async function compilerAvailable(compiler: string): Promise<boolean> {
  try {
    return (await run(compiler, ['--version'], COMPILER_HANG_GUARD_MS)).code === 0;
  } catch (error) {
    // A compiler that hangs is a failure, not a reason to skip its checks.
    if (error instanceof TimedOut) throw error;
    return false;
  }
}

function compileArgs(opts: CompilerCheckOptions, file: string, extra: readonly string[]): string[] {
  const language = opts.language ?? 'c';
  return [...(opts.includeDirs ?? []).map((d) => `-I${d}`), ...(opts.cflags ?? []), ...extra, '-x', language, file];
}

/** Reads the values of `fltmgr_probe_values` from gcc/clang assembly output. */
export function parseAsmValues(asm: string, count: number): number[] | undefined {
  const lines = asm.split('\n');
  const start = lines.findIndex((l) => /^_*fltmgr_probe_values:/.test(l.trim()));
  if (start < 0) return undefined;
  const out: number[] = [];
  for (let i = start + 1; i < lines.length && out.length < count; i++) {
    const l = (lines[i] as string).trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';') || l.startsWith('//')) continue;
    const m = /^\.(?:long|int|word|4byte)\s+(0x[0-9a-fA-F]+|\d+)\b/.exec(l);
    if (m === null) break;
    out.push(Number(m[1]) - 1);
  }
  return out.length === count ? out : undefined;
}

// gcc: `error: static assertion failed: "<msg>"`; clang: `error: static_assert failed due to
// requirement '...' "<msg>"` or `error: static assertion failed due to requirement '...': <msg>`.
// Only such lines count: compilers also echo the offending source line, which holds the marker too.
const ASSERT_FAILED = new RegExp(`static[ _]?assert(?:ion)? failed.*${MARKER}\\|(\\d+)\\|`, 'i');

function failedAssertions(stderr: string): Set<number> {
  const failed = new Set<number>();
  for (const line of stderr.split('\n')) {
    const m = ASSERT_FAILED.exec(line);
    if (m !== null) failed.add(Number(m[1]));
  }
  return failed;
}

function diagnosticErrors(stderr: string, dir?: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => /\berror\b/i.test(l) && !ASSERT_FAILED.test(l) && !/too many errors emitted/.test(l))
    .map((l) => (dir === undefined ? l : l.split(dir + '/').join('')));
}

function mismatch(c: LayoutCheck, actual: number | undefined): LayoutMismatch {
  const got = actual === undefined ? 'differs' : `is ${actual}`;
  return { ...c, actual, message: `${c.path}: ${c.kind} should be ${c.expected}, compiler's ${c.cExpression} ${got}` };
}

/** Compiles checks of `layouts` against the C types with `compiler`; see the module comment. */
export async function checkLayoutsWithCompiler(opts: CompilerCheckOptions): Promise<CompilerCheckResult> {
  if (opts.arch !== undefined) {
    for (const entry of opts.layouts) {
      const l = entry instanceof StructType ? entry : entry.layout;
      if (l.archDependent && l.arch !== opts.arch) {
        throw new Error(`layout ${l.name} was computed for ${l.arch}, not ${opts.arch}`);
      }
    }
  }
  const mode = opts.mode ?? 'static';
  const timeoutMs = opts.timeoutMs ?? COMPILER_HANG_GUARD_MS;
  const checks = checksFor(opts);
  const dir = await mkdtemp(join(tmpdir(), 'fltmgr-struct-probe-'));
  try {
    if (mode === 'run') {
      const source = runSource(opts, checks);
      const file = join(dir, 'probe.c');
      const exe = join(dir, 'probe');
      await writeFile(file, source);
      const cc = await run(opts.compiler, compileArgs(opts, file, ['-o', exe]), timeoutMs);
      if (cc.code !== 0) {
        const errors = diagnosticErrors(cc.stderr, dir);
        if (errors.length === 0) errors.push(cc.stderr.trim() || `${opts.compiler} exited with ${cc.code}`);
        return { ok: false, compiler: opts.compiler, mode, checks, mismatches: [], errors, source };
      }
      const out = await run(exe, [], timeoutMs);
      const values = out.stdout.trim().split('\n').map(Number);
      if (out.code !== 0 || values.length !== checks.length) {
        return {
          ok: false,
          compiler: opts.compiler,
          mode,
          checks,
          mismatches: [],
          errors: [`probe program failed (exit ${out.code}): ${out.stderr.trim()}`],
          source,
        };
      }
      const mismatches = checks.flatMap((c, i) => (values[i] === c.expected ? [] : [mismatch(c, values[i])]));
      return { ok: mismatches.length === 0, compiler: opts.compiler, mode, checks, mismatches, errors: [], source };
    }

    const source = staticAssertSource(opts, checks);
    const file = join(dir, 'probe.c');
    await writeFile(file, source);
    const cc = await run(opts.compiler, compileArgs(opts, file, ['-fsyntax-only']), timeoutMs);
    if (cc.code === 0) return { ok: true, compiler: opts.compiler, mode, checks, mismatches: [], errors: [], source };

    const failed = failedAssertions(cc.stderr);
    const errors = diagnosticErrors(cc.stderr, dir);
    if (failed.size === 0 && errors.length === 0)
      errors.push(cc.stderr.trim() || `${opts.compiler} exited with ${cc.code}`);
    let mismatches: LayoutMismatch[] | undefined;
    if (failed.size > 0) {
      // Read every value back: compilers may stop reporting after N errors (clang: 20), and the
      // report should say what the compiler's value is, not only that it differs.
      const vfile = join(dir, 'values.c');
      await writeFile(vfile, valuesSource(opts, checks));
      const asm = await run(opts.compiler, compileArgs(opts, vfile, ['-S', '-o', '-']), timeoutMs);
      const actual = asm.code === 0 ? parseAsmValues(asm.stdout, checks.length) : undefined;
      if (actual !== undefined) {
        mismatches = checks.flatMap((c, i) => (actual[i] === c.expected ? [] : [mismatch(c, actual[i])]));
      }
    }
    mismatches ??= [...failed].sort((a, b) => a - b).map((i) => mismatch(checks[i] as LayoutCheck, undefined));
    return { ok: false, compiler: opts.compiler, mode, checks, mismatches, errors, source };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Human-readable summary of a result. */
export function formatCheckResult(r: CompilerCheckResult): string {
  if (r.ok) return `${r.compiler} (${r.mode}): ${r.checks.length} checks passed`;
  const lines = [`${r.compiler} (${r.mode}): ${r.mismatches.length} mismatches, ${r.errors.length} errors`];
  for (const m of r.mismatches) lines.push(`  ${m.message}`);
  for (const e of r.errors) lines.push(`  ${e}`);
  return lines.join('\n');
}
