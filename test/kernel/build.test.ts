// buildKernelImage / fltmgr-kernel-image: a routine the harness does not implement fails the build with its
// name (never a silent success at run time); compile errors carry the compiler's output; the CLI's exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildKernelImage, KernelImageBuildError } from '../../lib/simulator/kernel-build';
import { KernelDriver, KernelVerifierError } from '../../lib/simulator/kernel-driver';
import { FilterManagerSimulator, NtStatusError } from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import { kernelHarnessAvailable } from '../../driver-sample/target';

const skip = kernelHarnessAvailable() ? false : 'the kernel harness runs on Linux only';
const CLI = join(__dirname, '..', '..', 'lib', 'simulator', 'kernel-image-cli.ts');

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fltmgr-kbuild-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a routine the harness lacks fails the link, by name', { skip }, (t) => {
  const dir = scratch(t);
  const source = join(dir, 'missing.c');
  // Declared by the driver itself (the harness's headers do not have it), so only the link can object.
  writeFileSync(
    source,
    '#include <fltKernel.h>\nVOID FltObjectDereference(PVOID Object);\n' +
      'NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { (void)d; (void)r; FltObjectDereference(0); return 0; }\n',
  );
  assert.throws(
    () => buildKernelImage({ sources: [source], out: join(dir, 'missing.so') }),
    (err: unknown) =>
      err instanceof KernelImageBuildError &&
      /not implemented by the kernel harness: FltObjectDereference/.test(err.message),
  );
});

test(
  'C library routines the kernel does not have (wide strings, getenv) fail the build by name, not bind to glibc',
  { skip },
  (t) => {
    const dir = scratch(t);
    const source = join(dir, 'libc.c');
    writeFileSync(
      source,
      '#include <fltKernel.h>\nint wcscmp(const wchar_t *a, const wchar_t *b);\nchar *getenv(const char *name);\n' +
        'NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n' +
        '  (void)d; (void)r;\n' +
        '  return wcscmp(L"a", L"b") == 0 && getenv("HOME") != NULL && memcmp("a", "b", 1) == 0 ? 1 : 0;\n}\n',
    );
    assert.throws(
      () => buildKernelImage({ sources: [source], out: join(dir, 'libc.so') }),
      (err: unknown) =>
        err instanceof KernelImageBuildError &&
        /not implemented by the kernel harness: getenv, wcscmp \(/.test(err.message) &&
        !/memcmp/.test(err.message.split('\n')[1] ?? ''),
    );
  },
);

test('a driver without DriverEntry does not link; a compile error carries the compiler output', { skip }, (t) => {
  const dir = scratch(t);
  const noEntry = join(dir, 'noentry.c');
  writeFileSync(noEntry, '#include <fltKernel.h>\nint unused_symbol;\n');
  assert.throws(
    () => buildKernelImage({ sources: [noEntry], out: join(dir, 'a.so') }),
    /the driver defines no DriverEntry/,
  );
  const broken = join(dir, 'broken.c');
  writeFileSync(
    broken,
    '#include <fltKernel.h>\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { return x; }\n',
  );
  assert.throws(
    () => buildKernelImage({ sources: [broken], out: join(dir, 'b.so') }),
    (err: unknown) =>
      err instanceof KernelImageBuildError &&
      /compiling .*broken\.c failed/.test(err.message) &&
      /undeclared/.test(err.output),
  );
  assert.throws(() => buildKernelImage({ sources: [], out: join(dir, 'c.so') }), TypeError);
});

test('fltmgr-kernel-image: exit 0 and the path; 1 on a build error; 2 on bad usage', { skip }, (t) => {
  const dir = scratch(t);
  const good = join(dir, 'good.c');
  writeFileSync(
    good,
    '#include <fltKernel.h>\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) { (void)d; (void)r; return STATUS_SUCCESS; }\n',
  );
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8' });
  const ok = cli(['--out', join(dir, 'good.so'), good]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), join(dir, 'good.so'));
  const bad = cli(['--out', join(dir, 'bad.so'), join(dir, 'nonexistent.c')]);
  assert.equal(bad.status, 1, bad.stderr);
  const usage = cli([good]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--out and at least one source are required/);
});

test(
  'a failing DriverEntry: NtStatusError with its status; one that leaves pool behind: KernelVerifierError',
  { skip },
  async (t) => {
    const dir = scratch(t);
    const sim = new FilterManagerSimulator();
    t.after(() => sim.close());
    const source = (name: string, body: string): string => {
      const file = join(dir, `${name}.c`);
      writeFileSync(
        file,
        `#include <fltKernel.h>\nNTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r) {\n  (void)d; (void)r;\n${body}\n}\n`,
      );
      return buildKernelImage({ sources: [file], out: join(dir, `${name}.so`) });
    };
    const clean = source('fails', '  return STATUS_INSUFFICIENT_RESOURCES;');
    await assert.rejects(
      KernelDriver.load(sim, clean),
      (err: unknown) => err instanceof NtStatusError && err.status === NtStatus.STATUS_INSUFFICIENT_RESOURCES,
    );
    const leaky = source(
      'leaks',
      "  (void)ExAllocatePool2(POOL_FLAG_PAGED, 32, 'kaeL');\n  return STATUS_UNSUCCESSFUL;",
    );
    await assert.rejects(
      KernelDriver.load(sim, leaky),
      (err: unknown) =>
        err instanceof KernelVerifierError &&
        /^DriverEntry of leaks failed \(0xC0000001\); the kernel harness's verifier found 1 violation/.test(
          err.message,
        ) &&
        /Leak/.test(err.violations.join('\n')),
    );
  },
);
