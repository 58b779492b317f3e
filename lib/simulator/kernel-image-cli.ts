#!/usr/bin/env node
// fltmgr-kernel-image: builds a driver image for the kernel harness (buildKernelImage), which
// `fltmgr-simulator --driver` and KernelDriver.load() run. Linux, gcc/g++ (or CC/CXX).
import { parseArgs } from 'node:util';
import { buildKernelImage, KernelImageBuildError } from './kernel-build';

const USAGE = `usage: fltmgr-kernel-image --out <image.so> [-I <dir> ...] [-D NAME[=VALUE] ...] [--sanitize]
                           [--no-werror] <driver source.c> ...
  --out        the image to write
  -I           an include directory of the driver's own headers; repeatable
  -D           a preprocessor definition; repeatable
  --sanitize   build the driver and the harness with AddressSanitizer + UBSan (load it only in a Node
               started with the ASan runtime preloaded)
  --no-werror  the driver's warnings are not errors (the harness's always are)
A routine the harness does not implement fails the link with its name.`;

function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string', short: 'o' },
        include: { type: 'string', short: 'I', multiple: true },
        define: { type: 'string', short: 'D', multiple: true },
        sanitize: { type: 'boolean' },
        'no-werror': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`fltmgr-kernel-image: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (v.out === undefined || parsed.positionals.length === 0) {
    process.stderr.write(`fltmgr-kernel-image: --out and at least one source are required\n${USAGE}\n`);
    return 2;
  }
  try {
    const out = buildKernelImage({
      sources: parsed.positionals,
      out: v.out,
      includeDirs: v.include ?? [],
      defines: v.define ?? [],
      ...(v.sanitize === undefined ? {} : { sanitize: v.sanitize }),
      werror: v['no-werror'] !== true,
    });
    process.stdout.write(`${out}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `fltmgr-kernel-image: ${err instanceof KernelImageBuildError || err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
