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
  for (const file of sources) objects.push(compile(cc, driverFlags, path.resolve(file), driverKey));

  const out = path.resolve(options.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  // -z defs: every symbol resolved now, so a routine the harness lacks is a link error with its name.
  run(cxx, ['-shared', '-o', tmp, ...objects, ...COMMON, ...flavour, '-Wl,-z,defs', '-ldl'], `linking ${out}`);
  fs.renameSync(tmp, out);
  return out;
}
