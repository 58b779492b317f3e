// The management records (fltuserstructures.h) in our POSIX header (native/compat/win32_compat.h, which
// native/sim/manage.cc fills) against mingw-w64's <fltuser.h> for x64 and x86, through the struct probe: every
// record's size, alignment and member offsets/sizes, union members included, and the enum/flag values.
import { test, describe, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import { struct, u16, u32 } from '../lib/struct';
import { checkLayoutsWithCompiler, compilerAvailable, formatCheckResult } from './helpers/struct-probe';
import { fltuserConstants, fltuserRecordLayouts } from './fixtures/struct-probe/fltuser-records';

const COMPAT_H = join(__dirname, '..', 'native', 'compat', 'win32_compat.h');

function constantAsserts(): string {
  return Object.entries(fltuserConstants)
    .map(([name, value]) => `_Static_assert(${name} == ${value}, "fltmgr-probe-constant ${name} should be ${value}");`)
    .join('\n');
}

async function requireCompiler(t: TestContext, compiler: string): Promise<boolean> {
  if (await compilerAvailable(compiler)) return true;
  t.skip(`${compiler} not installed`);
  return false;
}

describe('fltuserstructures records', () => {
  test('native/compat/win32_compat.h (host g++, C++)', async (t) => {
    if (!(await requireCompiler(t, 'g++'))) return;
    const r = await checkLayoutsWithCompiler({
      compiler: 'g++',
      language: 'c++',
      includes: [COMPAT_H],
      prelude: constantAsserts(),
      layouts: fltuserRecordLayouts,
    });
    assert.ok(r.ok, formatCheckResult(r));
    assert.ok(r.checks.length > 150, `only ${r.checks.length} checks`);
  });

  for (const compiler of ['x86_64-w64-mingw32-gcc', 'i686-w64-mingw32-gcc']) {
    test(`mingw-w64 <fltuser.h> (${compiler})`, async (t) => {
      if (!(await requireCompiler(t, compiler))) return;
      const r = await checkLayoutsWithCompiler({
        compiler,
        includes: ['<windows.h>', '<fltuser.h>'],
        prelude: constantAsserts(),
        layouts: fltuserRecordLayouts,
      });
      assert.ok(r.ok, formatCheckResult(r));
    });
  }

  test('a wrong offset in the layouts is caught (the check can fail)', async (t) => {
    if (!(await requireCompiler(t, 'g++'))) return;
    const wrong = struct('INSTANCE_BASIC_INFORMATION', {
      NextEntryOffset: u32,
      InstanceNameBufferOffset: u16, // swapped with InstanceNameLength
      InstanceNameLength: u16,
    });
    const r = await checkLayoutsWithCompiler({
      compiler: 'g++',
      language: 'c++',
      includes: [COMPAT_H],
      layouts: [wrong],
    });
    assert.equal(r.ok, false);
    assert.deepEqual(r.mismatches.map((m) => [m.path, m.expected, m.actual]).sort(), [
      ['INSTANCE_BASIC_INFORMATION.InstanceNameBufferOffset', 4, 6],
      ['INSTANCE_BASIC_INFORMATION.InstanceNameLength', 6, 4],
    ]);
  });
});
