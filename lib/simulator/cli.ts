#!/usr/bin/env node
// fltmgr-simulator: runs the Filter Manager simulator with one minifilter as its own process: a TypeScript
// module (--filter) or a driver's real C code built for the kernel harness (--driver, Linux).
// Prints {"endpoint":"..."} on one stdout line when ready; logs to stderr; exits 0 on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { loadFilterModule } from './load-module';
import { KernelDriver, KernelVerifierError } from './kernel-driver';
import { FilterManagerSimulator, simulatorLogFromEnv, type ListenTarget } from './server';

const USAGE = `usage: fltmgr-simulator (--filter <module.js> [--option key=value ...] |
                         --driver <image.so> [--name NAME] [--parameter NAME=VALUE ...])
                        [--listen <unix socket path> | --tcp [port]] [--verbose]
  --filter   CommonJS module exporting register(simulator, options)
  --driver   a driver image (fltmgr-kernel-image): the driver's C code runs in this process (Linux); on
             SIGINT/SIGTERM it is unloaded and the verifier's findings, if any, make the exit code 3
  --name     the driver's service / filter name (default: the image's base name)
  --parameter  a value of the driver's Parameters registry key: NAME=text (REG_SZ) or NAME=dword:N
             (REG_DWORD); repeatable
  --listen   Unix socket path (default: a fresh socket in a private temp directory)
  --tcp      listen on 127.0.0.1 (port 0 = any) with a per-run secret in the endpoint
  --option   passed to register() as options[key] = value (strings); repeatable
  --verbose  also log connects, disconnects and shutdown to stderr (FLTMGR_SIM_LOG=1 does the same); by
             default only problems are logged`;

class UsageError extends Error {}

/** What the command line asks for (parseCli). */
export interface CliConfig {
  /** A TypeScript filter module, or undefined with `driver`. */
  filter: string | undefined;
  /** A driver image, or undefined with `filter`. */
  driver: string | undefined;
  name: string | undefined;
  parameters: Record<string, string | number>;
  listen: ListenTarget;
  options: Record<string, string>;
  verbose: boolean;
}

/** Parses the CLI's arguments; throws a UsageError (exit 2) on bad ones. */
export function parseCli(argv: readonly string[]): CliConfig | 'help' {
  // `--tcp` takes an optional port, which parseArgs cannot express: rewrite it first.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = /^--tcp=(.*)$/.exec(a);
    if (eq) args.push('--tcp', '--tcp-port', eq[1] ?? '');
    else if (a === '--tcp' && /^\d+$/.test(argv[i + 1] ?? '')) {
      args.push('--tcp', '--tcp-port', argv[i + 1] as string);
      i++;
    } else args.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        filter: { type: 'string' },
        driver: { type: 'string' },
        name: { type: 'string' },
        parameter: { type: 'string', multiple: true },
        listen: { type: 'string' },
        tcp: { type: 'boolean' },
        'tcp-port': { type: 'string' },
        option: { type: 'string', multiple: true },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.filter === undefined && v.driver === undefined) throw new UsageError('--filter or --driver is required');
  if (v.filter !== undefined && v.driver !== undefined) throw new UsageError('--filter and --driver are exclusive');
  if (v.driver === undefined && (v.name !== undefined || v.parameter !== undefined)) {
    throw new UsageError('--name and --parameter go with --driver');
  }
  if (v.filter === undefined && v.option !== undefined) throw new UsageError('--option goes with --filter');
  if (v.listen !== undefined && v.tcp) throw new UsageError('--listen and --tcp are exclusive');
  let listen: ListenTarget = {};
  if (v.tcp) {
    const portText = v['tcp-port'] ?? '0';
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`bad --tcp port: ${portText}`);
    listen = { tcp: { host: '127.0.0.1', port } };
  } else if (v['tcp-port'] !== undefined) {
    throw new UsageError('--tcp-port needs --tcp');
  } else if (v.listen !== undefined) {
    listen = { path: v.listen };
  }
  const options: Record<string, string> = {};
  for (const kv of v.option ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--option wants key=value, got: ${kv}`);
    options[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const parameters: Record<string, string | number> = {};
  for (const kv of v.parameter ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--parameter wants NAME=VALUE, got: ${kv}`);
    const value = kv.slice(i + 1);
    const dword = /^dword:(\d+)$/.exec(value);
    if (dword && Number(dword[1]) > 0xffffffff)
      throw new UsageError(`--parameter ${kv}: a dword is at most 4294967295`);
    parameters[kv.slice(0, i)] = dword ? Number(dword[1]) : value;
  }
  return {
    filter: v.filter,
    driver: v.driver,
    name: v.name,
    parameters,
    listen,
    options,
    verbose: v.verbose === true,
  };
}

async function main(argv: readonly string[]): Promise<number> {
  let config: CliConfig | 'help';
  try {
    config = parseCli(argv);
  } catch (err) {
    process.stderr.write(`fltmgr-simulator: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (config === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const log = (line: string): void => {
    process.stderr.write(`[fltmgr-simulator] ${line}\n`);
  };
  const verbose = config.verbose || simulatorLogFromEnv();
  const sim = new FilterManagerSimulator({ log, verbose });
  let driver: KernelDriver | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    if (verbose) log(`${signal}: closing`);
    // A C driver is unloaded first, as `fltmc unload` would: its unload runs and the verifier reports.
    const unload = async (): Promise<number> => {
      if (driver === undefined) return 0;
      try {
        await driver.unload();
        return 0;
      } catch (err) {
        log(err instanceof Error ? err.message : String(err));
        return err instanceof KernelVerifierError ? 3 : 1;
      } finally {
        await driver.close();
      }
    };
    unload()
      .then(async (code) => {
        await sim.close();
        return code;
      })
      .then(
        (code) => process.exit(code),
        (err: unknown) => {
          log(`close failed: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    if (config.driver !== undefined) {
      driver = await KernelDriver.load(sim, config.driver, {
        ...(config.name === undefined ? {} : { name: config.name }),
        parameters: config.parameters,
        log: (line, level) => {
          if (level <= 1 || verbose) log(`[driver] ${line}`); // errors and warnings; everything with --verbose
        },
      });
    } else if (config.filter !== undefined) {
      await loadFilterModule(config.filter).register(sim, config.options);
    }
    const endpoint = await sim.listen(config.listen);
    process.stdout.write(`${JSON.stringify({ endpoint })}\n`);
  } catch (err) {
    log(`start failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await sim.close();
    return 1;
  }
  return -1; // keep running until a signal
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`fltmgr-simulator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
