#!/usr/bin/env node
// fltmgr-simulator: runs the Filter Manager simulator with one minifilter as its own process: a TypeScript
// module (--filter) or a driver's real C code built for the kernel harness (--driver, Linux).
// Prints {"endpoint":"..."} on one stdout line when ready; logs to stderr; exits 0 on SIGINT/SIGTERM.
// The filter is also loadable by its name: management clients (FilterUnload / FilterLoad, `fltmgr unload`)
// can unload it and load it again.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { SimulatedFilter } from './filter';
import { loadFilterModule } from './load-module';
import { KernelDriver, KernelVerifierError } from './kernel-driver';
import { FilterManagerSimulator, simulatorLogFromEnv, type ListenTarget } from './server';
import type { SimulatedVolumeOptions } from './types';

const USAGE = `usage: fltmgr-simulator (--filter <module.js> [--option key=value ...] |
                         --driver <image.so> [--name NAME] [--altitude A] [--parameter NAME=VALUE ...])
                        [--volume SPEC ...] [--listen <unix socket path> | --tcp [port]] [--verbose]
  --filter   CommonJS module exporting register(simulator, options)
  --driver   a driver image (fltmgr-kernel-image): the driver's C code runs in this process (Linux); on
             SIGINT/SIGTERM it is unloaded and the verifier's findings, if any, make the exit code 3
             The filter is loaded at start and loadable by its name afterwards (FilterUnload / FilterLoad).
  --name     the driver's service / filter name (default: the image's base name)
  --altitude the driver's altitude (default "0")
  --volume   a volume of the model instead of the default set: DEVICE[,dos=X:][,fs=N][,detached]
             (fs: an FLT_FILESYSTEM_TYPE number, default 2 = NTFS); repeatable
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
  altitude: string | undefined;
  parameters: Record<string, string | number>;
  /** Undefined: the simulator's default volumes. */
  volumes: SimulatedVolumeOptions[] | undefined;
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
        altitude: { type: 'string' },
        parameter: { type: 'string', multiple: true },
        volume: { type: 'string', multiple: true },
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
  if (v.driver === undefined && (v.name !== undefined || v.parameter !== undefined || v.altitude !== undefined)) {
    throw new UsageError('--name, --altitude and --parameter go with --driver');
  }
  if (v.altitude !== undefined && !/^\d+(\.\d+)?$/.test(v.altitude)) {
    throw new UsageError(`bad --altitude ${v.altitude}: digits with an optional fraction`);
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
    altitude: v.altitude,
    parameters,
    volumes: v.volume === undefined ? undefined : v.volume.map(parseVolume),
    listen,
    options,
    verbose: v.verbose === true,
  };
}

/** --volume DEVICE[,dos=X:][,fs=N][,detached] */
function parseVolume(spec: string): SimulatedVolumeOptions {
  const [name = '', ...parts] = spec.split(',');
  if (!name.startsWith('\\'))
    throw new UsageError(`--volume ${spec}: starts with a device name such as \\Device\\HarddiskVolume3`);
  const volume: SimulatedVolumeOptions = { name };
  for (const part of parts) {
    const dos = /^dos=([A-Za-z]:)$/.exec(part);
    const fs = /^fs=(\d+)$/.exec(part);
    if (dos) volume.dosName = dos[1] as string;
    else if (fs && Number(fs[1]) <= 0xffffffff) volume.fileSystemType = Number(fs[1]);
    else if (part === 'detached') volume.detached = true;
    else throw new UsageError(`--volume ${spec}: unknown part ${part} (dos=X:, fs=N, detached)`);
  }
  return volume;
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
  let sim: FilterManagerSimulator;
  try {
    sim = new FilterManagerSimulator({
      log,
      verbose,
      ...(config.volumes === undefined ? {} : { volumes: config.volumes }),
    });
  } catch (err) {
    process.stderr.write(`fltmgr-simulator: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  // Every image loaded (each LOAD maps a fresh one); the last is the live one, unless it was unloaded.
  const drivers: KernelDriver[] = [];
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    if (verbose) log(`${signal}: closing`);
    // A C driver is unloaded first, as `fltmc unload` would: its unload runs and the verifier reports.
    const unload = async (): Promise<number> => {
      let code = 0;
      for (const driver of drivers) {
        try {
          if (!driver.unloaded) await driver.unload();
        } catch (err) {
          log(err instanceof Error ? err.message : String(err));
          code = Math.max(code, err instanceof KernelVerifierError ? 3 : 1);
        } finally {
          await driver.close();
        }
        // An unload requested over the wire reported its findings in the log; they count here too.
        if (driver.violations.length > 0) code = Math.max(code, 3);
      }
      return code;
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
      const image = config.driver;
      const name = config.name ?? path.basename(image).replace(/\.[^.]*$/, '');
      const loadDriver = async (s: FilterManagerSimulator): Promise<SimulatedFilter> => {
        // The images of earlier loads are unloaded by now (the name was free): unmap them.
        for (const old of drivers) if (old.unloaded) await old.close();
        const driver = await KernelDriver.load(s, image, {
          name,
          ...(config.altitude === undefined ? {} : { altitude: config.altitude }),
          parameters: config.parameters,
          log: (line, level) => {
            if (level <= 1 || verbose) log(`[driver] ${line}`); // errors and warnings; everything with --verbose
          },
        });
        drivers.push(driver);
        return driver.filter;
      };
      await loadDriver(sim);
      sim.addLoadable(name, loadDriver);
    } else if (config.filter !== undefined) {
      const module = loadFilterModule(config.filter);
      const options = config.options;
      const filter = await module.register(sim, options);
      if (filter instanceof SimulatedFilter) sim.addLoadable(filter.name, (s) => module.register(s, options));
      else log('register() returned no SimulatedFilter: the filter cannot be loaded by name');
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
