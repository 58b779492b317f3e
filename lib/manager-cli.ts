#!/usr/bin/env node
// fltmgr: fltmc's verbs over fltmgr/manager (the real fltlib on Windows, the simulator elsewhere or with
// --simulator), plus what fltmc lacks: `ports`, --json output and exit codes a script can branch on.
import { parseArgs } from 'node:util';
import { FilterError } from './errors';
import * as manager from './manager';
import type { FilterInfo, InstanceInfo, ManagerOptions, PortInfo, VolumeInfo } from './manager';

const USAGE = `usage: fltmgr <command> [options] [--json] [--simulator [ENDPOINT]]
commands (as fltmc):
  filters                               the registered filters, highest altitude first
  instances [-f FILTER] [-v VOLUME]     filter instances (all, one filter's, or one volume's)
  volumes                               the volumes Filter Manager knows
  load NAME                             load a minifilter (its service name)
  unload NAME                           unload a minifilter
  attach NAME VOLUME [-a ALTITUDE] [-i INSTANCE]
                                        attach a filter to a volume (prints the instance name)
  detach NAME VOLUME [-i INSTANCE]      detach a filter instance from a volume
and beyond fltmc:
  ports                                 the simulator's communication ports (Filter Manager cannot list them)
  dosname VOLUME                        the DOS name of a volume (FilterGetDosName)
options:
  --json                 machine-readable output on stdout (errors too: {"error": {...}})
  --simulator [ENDPOINT] use the Filter Manager simulator (default endpoint: FLTMGR_SIMULATOR); off Windows
                         the simulator is the only backend
exit codes:
  0 done   1 Filter Manager refused (message + hint on stderr)   2 usage
  3 access denied: run elevated   4 not found (filter, volume, instance or service)
  5 Filter Manager (or the simulator) could not be reached`;

/** fltmgr's exit codes (also in USAGE and README). */
export const ExitCode = Object.freeze({
  ok: 0,
  failed: 1,
  usage: 2,
  accessDenied: 3,
  notFound: 4,
  unreachable: 5,
});

const ACCESS_DENIED = new Set([0x80070005, 0x80070522]);
// ERROR_FILE_NOT_FOUND (FilterLoad: no such service), ERROR_FLT_FILTER_/VOLUME_/INSTANCE_NOT_FOUND.
const NOT_FOUND = new Set([0x80070002, 0x801f0013, 0x801f0014, 0x801f0015]);
// ERROR_TIMEOUT: the simulator accepted the stream and never answered (FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS).
// A simulator that is not there at all answers like a missing driver, ERROR_FILE_NOT_FOUND: "not found".
const UNREACHABLE = new Set([0x800705b4]);

class UsageError extends Error {}

/** A parsed command line. */
export type Command =
  | { verb: 'filters' | 'volumes' | 'ports' }
  | { verb: 'instances'; filter: string | undefined; volume: string | undefined }
  | { verb: 'load' | 'unload'; name: string }
  | { verb: 'attach'; name: string; volume: string; altitude: string | undefined; instance: string | undefined }
  | { verb: 'detach'; name: string; volume: string; instance: string | undefined }
  | { verb: 'dosname'; volume: string };

/** The command line: the command, --json, and the backend choice. */
export interface CliInvocation {
  command: Command;
  json: boolean;
  options: ManagerOptions;
}

/** Parses fltmgr's arguments; throws UsageError on bad ones, returns 'help' for -h/--help/help. */
export function parseManagerCli(argv: readonly string[]): CliInvocation | 'help' {
  // `--simulator` takes an optional endpoint, which parseArgs cannot express: rewrite it first.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = /^--simulator=(.*)$/s.exec(a);
    if (eq) args.push('--simulator', '--endpoint', eq[1] ?? '');
    else if (a === '--simulator' && argv[i + 1] !== undefined && looksLikeEndpoint(argv[i + 1] as string)) {
      args.push('--simulator', '--endpoint', argv[i + 1] as string);
      i++;
    } else args.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        simulator: { type: 'boolean' },
        endpoint: { type: 'string' },
        filter: { type: 'string', short: 'f' },
        volume: { type: 'string', short: 'v' },
        altitude: { type: 'string', short: 'a' },
        instance: { type: 'string', short: 'i' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  const [verb, ...rest] = parsed.positionals;
  if (v.help || verb === 'help') return 'help';
  if (verb === undefined) throw new UsageError('a command is required');
  if (v.endpoint !== undefined && v.endpoint.length === 0) throw new UsageError('--simulator= needs an endpoint');
  const options: ManagerOptions =
    v.endpoint !== undefined ? { simulator: v.endpoint } : v.simulator ? { simulator: true } : {};
  const positionals = (n: number, names: string): string[] => {
    if (rest.length !== n) {
      throw new UsageError(`${verb} takes ${n === 0 ? 'no arguments' : names}, got ${rest.length} argument(s)`);
    }
    return rest;
  };
  const allow = (...allowed: Array<'filter' | 'volume' | 'altitude' | 'instance'>): void => {
    for (const key of ['filter', 'volume', 'altitude', 'instance'] as const) {
      if (v[key] !== undefined && !allowed.includes(key)) throw new UsageError(`${verb} does not take --${key}`);
    }
  };
  let command: Command;
  switch (verb) {
    case 'filters':
    case 'volumes':
    case 'ports':
      positionals(0, '');
      allow();
      command = { verb };
      break;
    case 'instances':
      positionals(0, '');
      allow('filter', 'volume');
      command = { verb, filter: v.filter, volume: v.volume };
      break;
    case 'load':
    case 'unload': {
      const [name] = positionals(1, 'NAME');
      allow();
      command = { verb, name: name as string };
      break;
    }
    case 'attach': {
      const [name, volume] = positionals(2, 'NAME VOLUME');
      allow('altitude', 'instance');
      command = { verb, name: name as string, volume: volume as string, altitude: v.altitude, instance: v.instance };
      break;
    }
    case 'detach': {
      const [name, volume] = positionals(2, 'NAME VOLUME');
      allow('instance');
      command = { verb, name: name as string, volume: volume as string, instance: v.instance };
      break;
    }
    case 'dosname': {
      const [volume] = positionals(1, 'VOLUME');
      allow();
      command = { verb, volume: volume as string };
      break;
    }
    default:
      throw new UsageError(`unknown command: ${verb}`);
  }
  return { command, json: v.json === true, options };
}

function looksLikeEndpoint(s: string): boolean {
  return /^(unix:|tcp:|pipe:|\/)/.test(s);
}

/** Where the CLI writes (process.stdout/stderr when run as a program; buffers in tests). */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

/** Runs one fltmgr command line; resolves with the exit code. */
export async function runManagerCli(argv: readonly string[], io: CliOutput): Promise<number> {
  let inv: CliInvocation | 'help';
  try {
    inv = parseManagerCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`fltmgr: ${err.message}\n${USAGE}\n`);
    return ExitCode.usage;
  }
  if (inv === 'help') {
    io.out(`${USAGE}\n`);
    return ExitCode.ok;
  }
  const { command, json, options } = inv;
  try {
    const result = await execute(command, options);
    io.out(json ? `${JSON.stringify(result.json, null, 2)}\n` : result.text);
    return ExitCode.ok;
  } catch (err) {
    const code = exitCodeOf(err);
    if (json) io.out(`${JSON.stringify({ error: errorJson(err) }, null, 2)}\n`);
    io.err(`fltmgr ${command.verb}: ${err instanceof Error ? err.message : String(err)}\n`);
    return code;
  }
}

function exitCodeOf(err: unknown): number {
  if (err instanceof FilterError) {
    if (ACCESS_DENIED.has(err.hresult)) return ExitCode.accessDenied;
    if (NOT_FOUND.has(err.hresult)) return ExitCode.notFound;
    if (UNREACHABLE.has(err.hresult)) return ExitCode.unreachable;
    return ExitCode.failed;
  }
  // Argument errors the library raises before calling Filter Manager (ERR_INVALID_ARG_VALUE, ...) are usage
  // errors; no backend at all (no simulator endpoint off Windows) means nothing can be reached.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_INVALID_ARG')) return ExitCode.usage;
  if (code === 'ERR_OUT_OF_RANGE') return ExitCode.usage;
  if (code === 'ERR_INVALID_ENDPOINT') return ExitCode.usage;
  if (code === 'ERR_BACKEND_UNAVAILABLE' || code === 'ERR_SIMULATOR_NOT_CONFIGURED') return ExitCode.unreachable;
  return ExitCode.failed;
}

function errorJson(err: unknown): Record<string, unknown> {
  if (err instanceof FilterError) {
    return { code: err.code, hresult: err.hresult, syscall: err.syscall, message: err.message };
  }
  const e = err as { code?: unknown; message?: unknown } | null;
  return {
    code: typeof e?.code === 'string' ? e.code : 'ERR_UNKNOWN',
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}

interface Result {
  json: unknown;
  text: string;
}

async function execute(c: Command, o: ManagerOptions): Promise<Result> {
  switch (c.verb) {
    case 'filters': {
      const list = await manager.filters(o);
      return { json: list, text: filtersTable(list) };
    }
    case 'instances': {
      const list = await manager.instances({
        ...o,
        ...(c.filter === undefined ? {} : { filter: c.filter }),
        ...(c.volume === undefined ? {} : { volume: c.volume }),
      });
      // fltmc shows a volume by its DOS name when it has one.
      const dos = await dosNames(o);
      return { json: list, text: instancesTable(list, dos) };
    }
    case 'volumes': {
      const list = await manager.volumes(o);
      return { json: list, text: volumesTable(list) };
    }
    case 'ports': {
      const list = await manager.ports(o);
      return { json: list, text: portsTable(list) };
    }
    case 'load':
      await manager.load(c.name, o);
      return { json: { loaded: c.name }, text: '' };
    case 'unload':
      await manager.unload(c.name, o);
      return { json: { unloaded: c.name }, text: '' };
    case 'attach': {
      const instance = await manager.attach(c.name, c.volume, {
        ...o,
        ...(c.altitude === undefined ? {} : { altitude: c.altitude }),
        ...(c.instance === undefined ? {} : { instanceName: c.instance }),
      });
      return {
        json: { filter: c.name, volume: c.volume, instance },
        text: `Attach successful.  Instance name: "${instance}"\n`,
      };
    }
    case 'detach':
      await manager.detach(c.name, c.volume, {
        ...o,
        ...(c.instance === undefined ? {} : { instanceName: c.instance }),
      });
      return { json: { detached: c.name, volume: c.volume, instance: c.instance ?? null }, text: '' };
    case 'dosname': {
      const dosName = await manager.dosName(c.volume, o);
      return { json: { volume: c.volume, dosName }, text: `${dosName}\n` };
    }
  }
}

async function dosNames(o: ManagerOptions): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const v of await manager.volumes(o)) if (v.dosName !== undefined) map.set(v.name.toLowerCase(), v.dosName);
  return map;
}

/** Left-aligned columns with fltmc's dashed rule under the header; `right` columns are right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], right: number[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (right.includes(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

function filtersTable(list: readonly FilterInfo[]): string {
  return table(
    ['Filter Name', 'Num Instances', 'Altitude', 'Frame'],
    list.map((f) => [
      f.kind === 'legacy' ? `${f.name} (legacy)` : f.name,
      String(f.instances),
      f.altitude,
      String(f.frame),
    ]),
    [1, 2, 3],
  );
}

function instancesTable(list: readonly InstanceInfo[], dos: ReadonlyMap<string, string>): string {
  return table(
    ['Filter', 'Volume Name', 'Altitude', 'Instance Name', 'Frame', 'FileSystem'],
    list.map((i) => [
      i.filter,
      dos.get(i.volume.toLowerCase()) ?? i.volume,
      i.altitude,
      i.name,
      String(i.frame),
      i.fileSystem,
    ]),
    [2, 4],
  );
}

function volumesTable(list: readonly VolumeInfo[]): string {
  return table(
    ['Dos Name', 'Volume Name', 'FileSystem', 'Status'],
    list.map((v) => [v.dosName ?? '', v.name, v.fileSystem, v.detached ? 'Detached' : '']),
  );
}

function portsTable(list: readonly PortInfo[]): string {
  return table(
    ['Port Name', 'Filter', 'Connections', 'Max'],
    list.map((p) => [p.name, p.filter, String(p.connections), String(p.maxConnections)]),
    [2, 3],
  );
}

if (require.main === module) {
  runManagerCli(process.argv.slice(2), {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`fltmgr: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = ExitCode.failed;
    },
  );
}
