// Builds a driver image for the kernel harness: a minifilter's C sources compiled against the harness's own
// kernel headers (native/kernel/include) and linked, as a shared object, with the harness's routines
// (native/kernel/src). KernelDriver.load() runs the result. Linux with gcc/g++ (or CC/CXX).
//
// A routine the harness does not implement fails the link with its name (-z defs), never a silent success
// at run time. Objects are cached by the hash of their source, every header the harness ships, the flags
// and the compiler, so a rebuild compiles only what changed.
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../binding';

/** Options of {@link buildKernelImage}. */
export interface KernelImageBuildOptions {
  /** The driver's C sources. */
  sources: readonly string[];
  /** Where to write the image (a .so). */
  out: string;
  /** More include directories (the driver's own headers). */
  includeDirs?: readonly string[];
  /** Preprocessor definitions, `NAME` or `NAME=VALUE`. */
  defines?: readonly string[];
  /**
   * Build the driver and the harness with AddressSanitizer + UBSan. Default: FLTMGR_SANITIZED=1 in the
   * environment (the sanitizer lane runs Node with the ASan runtime preloaded; an instrumented image
   * cannot load without it).
   */
  sanitize?: boolean;
  /** Treat the driver's warnings as errors (the harness's own always are). Default true. */
  werror?: boolean;
  /** Object cache. Default: build/kernel under the package. */
  cacheDir?: string;
}

/** A failed compile or link; `output` is the compiler's. */
export class KernelImageBuildError extends Error {
  /** What the compiler or linker printed (with the missing routines named first, for a link). */
  readonly output: string;
  constructor(message: string, output: string) {
    super(`${message}\n${output}`);
    this.name = 'KernelImageBuildError';
    this.output = output;
  }
}

const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer'];
// Both languages: 16-bit wchar_t (WCHAR, L"..."), position-independent, nothing exported but the entry point.
const COMMON = ['-fshort-wchar', '-fPIC', '-fvisibility=hidden', '-g', '-O1', '-pthread'];
const C_FLAGS = ['-std=gnu11', '-Wall', '-Wextra', '-Wno-multichar', '-Wno-missing-field-initializers'];
const CXX_FLAGS = ['-std=c++17', '-Wall', '-Wextra', '-Wshadow', '-Werror'];

function kernelDir(): string {
  return path.join(packageRoot(), 'native', 'kernel');
}

/** Every file of the harness, for the cache key: a changed header rebuilds everything. */
function harnessFiles(): string[] {
  const out: string[] = [];
  for (const sub of ['include', 'src']) {
    const dir = path.join(kernelDir(), sub);
    for (const name of fs.readdirSync(dir).sort()) out.push(path.join(dir, name));
  }
  return out;
}

function compilerId(compiler: string): string {
  try {
    return execFileSync(compiler, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? compiler;
  } catch {
    throw new KernelImageBuildError(`the C compiler ${compiler} is not installed (apt-get install g++)`, '');
  }
}

function run(compiler: string, args: string[], what: string): void {
  const r = spawnSync(compiler, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    let output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    // The link's "undefined reference to `FltFoo'" means the harness lacks that routine: say so by name.
    const missing = [...new Set([...output.matchAll(/undefined reference to `([A-Za-z_]\w*)'/g)].map((m) => m[1]))];
    const routines = missing.filter((name) => name !== 'DriverEntry');
    if (routines.length > 0) {
      output = `not implemented by the kernel harness: ${routines.join(', ')} (native/kernel/IMPORTS.json lists what is)\n${output}`;
    }
    if (missing.includes('DriverEntry')) output = `the driver defines no DriverEntry\n${output}`;
    throw new KernelImageBuildError(`${what} failed`, output);
  }
}

/**
 * The C library routines a driver may call: the kernel has them too, with the same meaning (the kernel CRT's
 * narrow string and memory routines). Anything else the driver imports must come from the harness: glibc's
 * wide-character routines count 32-bit wchar_t (wrong under -fshort-wchar), and malloc or printf do not exist
 * in the kernel, so linking them silently would be a success that lies.
 */
const KERNEL_CRT = new Set([
  'memcpy',
  'memmove',
  'memset',
  'memcmp',
  'memchr',
  'strlen',
  'strnlen',
  'strcmp',
  'strncmp',
  'strchr',
  'strrchr',
  'strstr',
]);

/** Global symbols of object files: defined ones, or the undefined ones (`nm`). */
function symbolsOf(objectFiles: readonly string[], which: 'defined' | 'undefined'): Set<string> {
  const r = spawnSync('nm', [which === 'defined' ? '--defined-only' : '--undefined-only', ...objectFiles], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error !== undefined || r.status !== 0) {
    throw new KernelImageBuildError(
      'nm (binutils) failed; it comes with gcc',
      `${r.stderr ?? ''}${String(r.error ?? '')}`,
    );
  }
  const names = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const [, type, name] = m as unknown as [string, string, string];
    if (which === 'undefined' || type === type.toUpperCase()) names.add(name); // globals only
  }
  return names;
}

/**
 * Every routine the driver's objects import is the harness's (or the kernel CRT's, or the compiler's and
 * sanitizers' own `__` runtime): otherwise the build fails naming it, before the link could bind it to glibc.
 */
function checkDriverImports(driverObjects: readonly string[], harnessObjects: readonly string[]): void {
  const ownDefinitions = symbolsOf(driverObjects, 'defined');
  const harness = symbolsOf(harnessObjects, 'defined');
  const missing = [...symbolsOf(driverObjects, 'undefined')]
    .filter((name) => !ownDefinitions.has(name) && !harness.has(name) && !KERNEL_CRT.has(name))
    .filter((name) => !name.startsWith('__') && name !== '_GLOBAL_OFFSET_TABLE_')
    .sort();
  if (missing.length > 0) {
    throw new KernelImageBuildError(
      'the driver calls routines the kernel harness does not implement',
      `not implemented by the kernel harness: ${missing.join(', ')} (native/kernel/IMPORTS.json lists what is; ` +
        "the C library's versions are not the kernel's)",
    );
  }
}

/**
 * Compiles and links a driver image. Returns `options.out`. Throws KernelImageBuildError with the compiler's
 * output when a source does not compile or the link needs a routine the harness lacks.
 */
export function buildKernelImage(options: KernelImageBuildOptions): string {
  if (process.platform !== 'linux') throw new Error('driver images are built and run on Linux');
  const sources: readonly string[] = options.sources;
  if (sources.length === 0 || sources.some((f) => typeof f !== 'string')) {
    throw new TypeError('sources: one or more file names');
  }
  const sanitize = options.sanitize ?? process.env['FLTMGR_SANITIZED'] === '1';
  const cc = process.env['CC'] ?? 'gcc';
  const cxx = process.env['CXX'] ?? 'g++';
  const cache = options.cacheDir ?? path.join(packageRoot(), 'build', 'kernel');
  fs.mkdirSync(cache, { recursive: true });
  const include = path.join(kernelDir(), 'include');
  const src = path.join(kernelDir(), 'src');
  const flavour = sanitize ? SANITIZE : [];
  const headers = crypto.createHash('sha256');
  for (const f of harnessFiles()) headers.update(f).update(fs.readFileSync(f));
  const headersKey = headers.digest('hex');

  const compile = (compiler: string, flags: string[], file: string, extraKey: string): string => {
    const hash = crypto
      .createHash('sha256')
      .update(compilerId(compiler))
      .update(flags.join('\0'))
      .update(headersKey)
      .update(extraKey)
      .update(fs.readFileSync(file))
      .digest('hex')
      .slice(0, 24);
    const object = path.join(cache, `${path.basename(file).replace(/\W/g, '_')}-${hash}.o`);
    if (!fs.existsSync(object)) {
      const tmp = `${object}.${process.pid}.tmp`;
      run(compiler, [...flags, '-c', file, '-o', tmp], `compiling ${file}`);
      fs.renameSync(tmp, object); // atomic: a concurrent build never sees half an object
    }
    return object;
  };

  const objects: string[] = [];
  const harnessObjects: string[] = [];
  // The harness.
  for (const name of fs.readdirSync(src).sort()) {
    const file = path.join(src, name);
    if (name.endsWith('.cc'))
      objects.push(compile(cxx, [...CXX_FLAGS, ...COMMON, ...flavour, `-I${include}`, `-I${src}`], file, ''));
    else if (name.endsWith('.c'))
      objects.push(compile(cc, [...C_FLAGS, '-Werror', ...COMMON, ...flavour, `-I${include}`, `-I${src}`], file, ''));
  }
  // The driver: its headers can change too, so they join the key.
  const includeDirs = (options.includeDirs ?? []).map((d) => path.resolve(d));
  const driverHeaders = crypto.createHash('sha256');
  for (const dir of includeDirs) {
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
      if (/\.(h|inc)$/.test(name)) driverHeaders.update(name).update(fs.readFileSync(path.join(dir, name)));
    }
  }
  for (const file of sources) {
    const abs = path.resolve(file);
    const dir = path.dirname(abs);
    for (const name of fs.readdirSync(dir).sort()) {
      if (name.endsWith('.h')) driverHeaders.update(name).update(fs.readFileSync(path.join(dir, name)));
    }
  }
  const driverKey = driverHeaders.digest('hex');
  const driverFlags = [
    ...C_FLAGS,
    ...(options.werror === false ? [] : ['-Werror']),
    ...COMMON,
    ...flavour,
    `-I${include}`,
    ...includeDirs.map((d) => `-I${d}`),
    ...(options.defines ?? []).map((d) => `-D${d}`),
  ];
  const driverObjects = sources.map((file) => compile(cc, driverFlags, path.resolve(file), driverKey));
  harnessObjects.push(...objects);
  objects.push(...driverObjects);
  checkDriverImports(driverObjects, harnessObjects);

  const out = path.resolve(options.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  // -z defs: every symbol resolved now, so a routine the harness lacks is a link error with its name.
  run(cxx, ['-shared', '-o', tmp, ...objects, ...COMMON, ...flavour, '-Wl,-z,defs', '-ldl'], `linking ${out}`);
  fs.renameSync(tmp, out);
  return out;
}
