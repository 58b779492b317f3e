// Checks lib/struct.ts layouts against real C compilers: the host gcc (always), mingw-w64 x86_64 and
// i686 (skipped when not installed; CI installs them) and clang's *-windows-msvc targets (optional).
import { test, describe, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import { FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER, struct, u32, u64, type Arch } from '../lib/struct';
import {
  checkLayoutsWithCompiler,
  compilerAvailable,
  formatCheckResult,
  layoutChecks,
  parseAsmValues,
  staticAssertSource,
  type AnyStruct,
  type CompilerCheckResult,
} from './helpers/struct-probe';
import { probeLayouts } from './fixtures/struct-probe/layouts';

const PROBE_H = join(__dirname, 'fixtures', 'struct-probe', 'probe.h');
const layoutsFor = (arch: Arch): AnyStruct[] => Object.values(probeLayouts(arch));
// Structs whose layout contains a pointer, directly or through a member.
const WITH_POINTERS = ['WITH_PTR', 'NESTED', 'PACKED1', 'PACKED4', 'PACKED8', 'HOLDS_PACKED'];
const capitalize = (_struct: string, field: string): string => field.charAt(0).toUpperCase() + field.slice(1);

function assertOk(r: CompilerCheckResult): void {
  assert.ok(r.ok, formatCheckResult(r));
  assert.ok(r.checks.length > 0);
}

function rootsOf(r: CompilerCheckResult): string[] {
  return [...new Set(r.mismatches.map((m) => m.path.split(/[.[]/)[0] as string))].sort();
}

async function requireCompiler(t: TestContext, compiler: string): Promise<boolean> {
  if (await compilerAvailable(compiler)) return true;
  t.skip(`${compiler} not installed`);
  return false;
}

describe('check generation', () => {
  test('covers struct size/alignment and every member, recursively', () => {
    const { SCAN_REQUEST, NESTED } = probeLayouts('x64');
    const checks = layoutChecks([SCAN_REQUEST, NESTED]);
    const find = (path: string, kind: string) => checks.find((c) => c.path === path && c.kind === kind);
    assert.deepEqual(find('SCAN_REQUEST', 'size'), {
      path: 'SCAN_REQUEST',
      kind: 'size',
      expected: 1576,
      cExpression: 'sizeof(SCAN_REQUEST)',
    });
    assert.equal(find('SCAN_REQUEST', 'alignment')?.cExpression, '_Alignof(SCAN_REQUEST)');
    assert.deepEqual(find('SCAN_REQUEST.path', 'offset'), {
      path: 'SCAN_REQUEST.path',
      kind: 'offset',
      expected: 24,
      cExpression: 'offsetof(SCAN_REQUEST, path)',
    });
    assert.equal(find('SCAN_REQUEST.flags[3]', 'offset')?.expected, 1574);
    assert.equal(find('NESTED.smalls[2].y', 'offset')?.cExpression, 'offsetof(NESTED, smalls[2].y)');
    assert.equal(find('NESTED.inner.j', 'fieldSize')?.cExpression, 'sizeof(((NESTED *)0)->inner.j)');
  });

  test('C type and member names can be mapped', () => {
    const checks = layoutChecks(
      [FILTER_MESSAGE_HEADER],
      { FILTER_MESSAGE_HEADER: 'struct _FILTER_MESSAGE_HEADER' },
      { FILTER_MESSAGE_HEADER: { messageId: 'MessageId' } },
    );
    assert.ok(checks.some((c) => c.cExpression === 'offsetof(struct _FILTER_MESSAGE_HEADER, MessageId)'));
    assert.ok(checks.some((c) => c.cExpression === 'offsetof(struct _FILTER_MESSAGE_HEADER, replyLength)'));
    const src = staticAssertSource({
      compiler: 'cc',
      layouts: [{ layout: FILTER_MESSAGE_HEADER, cType: 'FMH' }],
      includes: ['<a.h>', '"b.h"', 'c/d.h'],
    });
    assert.match(src, /#include <a\.h>\n#include "b\.h"\n#include "c\/d\.h"\n/);
    assert.match(
      src,
      /_Static_assert\(offsetof\(FMH, messageId\) == 8, "fltmgr-probe\|\d+\|FILTER_MESSAGE_HEADER\.messageId: offset should be 8"\);/,
    );
  });

  test('reads values back from gcc and clang assembly', () => {
    const gcc =
      '\t.globl\t_fltmgr_probe_values\n\t.section .rdata,"dr"\n\t.align 4\n_fltmgr_probe_values:\n\t.long\t17\n\t.long\t1\n\t.ident\t"GCC"\n';
    assert.deepEqual(parseAsmValues(gcc, 2), [16, 0]);
    const clangArm = 'fltmgr_probe_values:\n\t.word\t25                              // 0x19\n\t.word\t0x9\n\n';
    assert.deepEqual(parseAsmValues(clangArm, 2), [24, 8]);
    assert.equal(parseAsmValues(gcc, 3), undefined);
    assert.equal(parseAsmValues('nothing here', 1), undefined);
  });

  test('an unknown compiler is reported, not skipped silently', async () => {
    assert.equal(await compilerAvailable('fltmgr-no-such-cc'), false);
    await assert.rejects(
      checkLayoutsWithCompiler({ compiler: 'fltmgr-no-such-cc', layouts: [FILTER_MESSAGE_HEADER] }),
      /not found/,
    );
  });

  test('refuses layouts computed for another arch', async () => {
    await assert.rejects(
      checkLayoutsWithCompiler({ compiler: 'gcc', arch: 'x86', layouts: [probeLayouts('x64').WITH_PTR] }),
      /WITH_PTR was computed for x64, not x86/,
    );
  });
});

describe('host gcc (x86_64 SysV = MSVC x64 for these types)', () => {
  for (const mode of ['static', 'run'] as const) {
    test(`probe layouts match (${mode})`, async () => {
      const r = await checkLayoutsWithCompiler({
        compiler: 'gcc',
        mode,
        arch: 'x64',
        includes: [PROBE_H],
        layouts: layoutsFor('x64'),
      });
      assertOk(r);
      assert.ok(r.checks.length > 400, `only ${r.checks.length} checks`);
    });

    test(`x86 layouts differ exactly where pointers are (${mode})`, async () => {
      const r = await checkLayoutsWithCompiler({
        compiler: 'gcc',
        mode,
        includes: [PROBE_H],
        layouts: layoutsFor('x86'),
      });
      assert.equal(r.ok, false);
      assert.deepEqual(r.errors, []);
      assert.deepEqual(rootsOf(r), [...WITH_POINTERS].sort());
      const p = r.mismatches.find((m) => m.path === 'WITH_PTR.p' && m.kind === 'offset');
      assert.deepEqual([p?.expected, p?.actual], [4, 8]);
      assert.match(p?.message ?? '', /^WITH_PTR\.p: offset should be 4, compiler's offsetof\(WITH_PTR, p\) is 8$/);
    });

    test(`a 12-byte packed FILTER_MESSAGE_HEADER is caught (${mode})`, async () => {
      const packed = struct('FILTER_MESSAGE_HEADER', { replyLength: u32, messageId: u64 }, { pack: 4 });
      const r = await checkLayoutsWithCompiler({ compiler: 'gcc', mode, includes: [PROBE_H], layouts: [packed] });
      assert.deepEqual(
        r.mismatches.map((m) => [m.path, m.kind, m.expected, m.actual]),
        [
          ['FILTER_MESSAGE_HEADER', 'size', 12, 16],
          ['FILTER_MESSAGE_HEADER', 'alignment', 4, 8],
          ['FILTER_MESSAGE_HEADER.messageId', 'offset', 4, 8],
        ],
      );
    });

    test(`a member missing in C is an error, not a pass (${mode})`, async () => {
      const wrong = struct('SMALL', { x: u32, nope: u32 });
      const r = await checkLayoutsWithCompiler({ compiler: 'gcc', mode, includes: [PROBE_H], layouts: [wrong] });
      assert.equal(r.ok, false);
      assert.ok(
        r.errors.some((e) => /no member named .nope/.test(e)),
        r.errors.join('\n'),
      );
    });
  }

  test('a missing header is an error', async () => {
    const r = await checkLayoutsWithCompiler({
      compiler: 'gcc',
      includes: ['fltmgr-missing.h'],
      layouts: [FILTER_MESSAGE_HEADER],
    });
    assert.equal(r.ok, false);
    assert.ok(
      r.errors.some((e) => e.includes('fltmgr-missing.h')),
      r.errors.join('\n'),
    );
  });
});

const MINGW: [string, Arch][] = [
  ['x86_64-w64-mingw32-gcc', 'x64'],
  ['i686-w64-mingw32-gcc', 'x86'],
];
for (const [compiler, arch] of MINGW) {
  describe(`${compiler} (compile-time checks only)`, () => {
    test('probe layouts match', async (t) => {
      if (!(await requireCompiler(t, compiler))) return;
      assertOk(await checkLayoutsWithCompiler({ compiler, arch, includes: [PROBE_H], layouts: layoutsFor(arch) }));
    });

    test('FILTER_MESSAGE_HEADER / FILTER_REPLY_HEADER match <fltuser.h>', async (t) => {
      if (!(await requireCompiler(t, compiler))) return;
      const r = await checkLayoutsWithCompiler({
        compiler,
        includes: ['<windows.h>', '<fltuser.h>'],
        cFieldNames: capitalize,
        layouts: [FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER],
      });
      assertOk(r);
      assert.ok(r.checks.some((c) => c.cExpression === 'offsetof(FILTER_REPLY_HEADER, MessageId)' && c.expected === 8));
    });

    test('a packed header is caught against <fltuser.h>', async (t) => {
      if (!(await requireCompiler(t, compiler))) return;
      const packed = struct('FILTER_REPLY_HEADER', { status: u32, messageId: u64 }, { pack: 1 });
      const r = await checkLayoutsWithCompiler({
        compiler,
        includes: ['<windows.h>', '<fltuser.h>'],
        cFieldNames: capitalize,
        layouts: [packed],
      });
      const m = r.mismatches.find((x) => x.path === 'FILTER_REPLY_HEADER.messageId');
      assert.deepEqual([m?.expected, m?.actual], [4, 8]);
    });
  });
}

test('i686 mingw aligns 64-bit members to 8 inside structs (MSVC x86 rule, not i386 SysV)', async (t) => {
  const compiler = 'i686-w64-mingw32-gcc';
  if (!(await requireCompiler(t, compiler))) return;
  const { MIXED } = probeLayouts('x86');
  assert.equal(MIXED.offsetOf('b'), 8);
  // The i386 SysV rule (8-byte members aligned to 4) is what pack(4) produces: it must not match.
  const sysv = struct('MIXED', Object.fromEntries(MIXED.fields.map((f) => [f.name, f.type])), { arch: 'x86', pack: 4 });
  const r = await checkLayoutsWithCompiler({ compiler, includes: [PROBE_H], layouts: [sysv] });
  const b = r.mismatches.find((m) => m.path === 'MIXED.b' && m.kind === 'offset');
  assert.deepEqual([b?.expected, b?.actual], [4, 8]);
});

describe('clang *-windows-msvc targets (optional: MSVC layout rules, incl. arm64)', () => {
  const targets: [string, Arch][] = [
    ['aarch64-pc-windows-msvc', 'arm64'],
    ['i686-pc-windows-msvc', 'x86'],
    ['x86_64-pc-windows-msvc', 'x64'],
  ];
  let clang: string | undefined | null = null;
  const findClang = async (): Promise<string | undefined> => {
    if (clang === null) {
      clang = undefined;
      for (const c of ['clang', 'clang-19', 'clang-18', 'clang-17', 'clang-16', 'clang-15', 'clang-14']) {
        if (await compilerAvailable(c)) {
          clang = c;
          break;
        }
      }
    }
    return clang;
  };
  for (const [target, arch] of targets) {
    test(`${target}: probe layouts match`, async (t) => {
      const cc = await findClang();
      if (cc === undefined) return t.skip('clang not installed');
      const cflags = [`--target=${target}`, '-ffreestanding'];
      assertOk(
        await checkLayoutsWithCompiler({ compiler: cc, cflags, arch, includes: [PROBE_H], layouts: layoutsFor(arch) }),
      );
      if (arch !== 'x86') {
        // The other pointer size must fail, and be reported completely despite clang's error limit.
        const r = await checkLayoutsWithCompiler({
          compiler: cc,
          cflags,
          includes: [PROBE_H],
          layouts: layoutsFor('x86'),
        });
        assert.deepEqual(rootsOf(r), [...WITH_POINTERS].sort());
        assert.ok(r.mismatches.length > 20 && r.mismatches.every((m) => m.actual !== undefined));
        assert.deepEqual(r.errors, []);
      }
    });
  }
});
