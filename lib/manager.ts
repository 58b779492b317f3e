// fltmgr/manager: the Filter Manager's management calls (what fltmc does): list filters, instances and volumes;
// load, unload, attach and detach filters; DOS names; and, with the simulator, its communication ports.
//
// Every call runs on the addon's own threads (native/src/manage.cc) and resolves a Promise; the backend is
// chosen exactly like FilterPort.connect's (real fltlib on Windows, the simulator elsewhere or when asked).
// Arguments are checked here, before any native call; Filter Manager's refusals are FilterErrors with the
// fltlib call in `syscall` and a hint in the message.
import {
  loadBinding,
  type Backend,
  type NativeInstanceRecord,
  type NativeManageOptions,
  type NativeManageResult,
} from './binding';
import { FilterError, invalidArgType, invalidArgValue, outOfRange, type ManagementSyscall } from './errors';
import { Win32 } from './status';
import { checkEndpoint, chooseBackend } from './port';

/** Where a management call goes, chosen exactly like FilterPort.connect's option of the same name. */
export interface ManagerOptions {
  /**
   * The Filter Manager simulator instead of the real one: an endpoint string (docs/wire-protocol.md), or true for
   * the FLTMGR_SIMULATOR environment variable. Default: the real Filter Manager on Windows unless FLTMGR_SIMULATOR
   * is set; the simulator (FLTMGR_SIMULATOR) elsewhere.
   */
  simulator?: string | boolean;
}

/**
 * FLT_FILESYSTEM_TYPE by number (fltuserstructures.h's enum order, FLT_FSTYPE_ dropped): the one table of
 * file system names, for the records here, the simulator's volumes and the CLI.
 */
export const FILE_SYSTEM_TYPES = [
  'UNKNOWN',
  'RAW',
  'NTFS',
  'FAT',
  'CDFS',
  'UDFS',
  'LANMAN',
  'WEBDAV',
  'RDPDR',
  'NFS',
  'MS_NETWARE',
  'NETWARE',
  'BSUDF',
  'MUP',
  'RSFX',
  'ROXIO_UDF1',
  'ROXIO_UDF2',
  'ROXIO_UDF3',
  'TACIT',
  'FS_REC',
  'INCD',
  'INCD_FAT',
  'EXFAT',
  'PSFS',
  'GPFS',
  'NPFS',
  'MSFS',
  'CSVFS',
  'REFS',
  'OPENAFS',
] as const;

/** A file system's name as Filter Manager reports it ('NTFS', 'REFS', ...; 'UNKNOWN' for numbers it lacks). */
export type FileSystemName = (typeof FILE_SYSTEM_TYPES)[number];

/** The name of an FLT_FILESYSTEM_TYPE number ('UNKNOWN' for numbers beyond the table). */
export function fileSystemName(type: number): FileSystemName {
  return FILE_SYSTEM_TYPES[type] ?? 'UNKNOWN';
}

/** The FLT_FILESYSTEM_TYPE number of a name from {@link FILE_SYSTEM_TYPES}, or undefined. */
export function fileSystemType(name: string): number | undefined {
  const i = (FILE_SYSTEM_TYPES as readonly string[]).indexOf(name.toUpperCase());
  return i < 0 ? undefined : i;
}

/** Whether a filter is a minifilter (Filter Manager's) or a legacy filter driver attached to the device stack. */
export type FilterKind = 'minifilter' | 'legacy';

/** A loaded filter (FILTER_AGGREGATE_STANDARD_INFORMATION), as `fltmc filters` lists it. */
export interface FilterInfo {
  /** The filter's name (its service name). */
  name: string;
  /** Its altitude as a string of digits, e.g. '385100' or '370000.5'. */
  altitude: string;
  /** 'minifilter', or 'legacy' (a legacy filter driver: no frame, no instances). */
  kind: FilterKind;
  /** The Filter Manager frame it is registered in; undefined for a legacy filter. */
  frame: number | undefined;
  /** How many instances it has (0 for a legacy filter). */
  instances: number;
}

/** An instance of a filter on a volume (INSTANCE_AGGREGATE_STANDARD_INFORMATION), as `fltmc instances` lists it. */
export interface InstanceInfo {
  /** The instance name ('' for a legacy filter, whose attachments have none). */
  name: string;
  /** The filter's name. */
  filter: string;
  /** The volume's device name, e.g. \\Device\\HarddiskVolume1. */
  volume: string;
  /** The instance's altitude. */
  altitude: string;
  /** The frame; undefined for a legacy filter. */
  frame: number | undefined;
  /** The volume's file system; 'UNKNOWN' for a legacy filter (not reported). */
  fileSystem: FileSystemName;
  /** 'minifilter' or 'legacy'. */
  kind: FilterKind;
}

/** A volume Filter Manager knows (FILTER_VOLUME_STANDARD_INFORMATION + FilterGetDosName), as `fltmc volumes`. */
export interface VolumeInfo {
  /** The device name, e.g. \\Device\\HarddiskVolume1. */
  name: string;
  /** Its drive letter ('C:') or mount point; undefined when it has none. */
  dosName: string | undefined;
  /** Its file system. */
  fileSystem: FileSystemName;
  /** The frame. */
  frame: number;
  /** True for a detached volume (FLTFL_VSI_DETACHED_VOLUME: dismounted, Filter Manager still tracks it). */
  detached: boolean;
}

/** A communication port of the simulator (no Windows API lists them). */
export interface PortInfo {
  /** The port name, e.g. \\ScanPort. */
  name: string;
  /** The filter that created it. */
  filter: string;
  /** Its MaxConnections. */
  maxConnections: number;
  /** Clients connected now. */
  connections: number;
}

/** Options of {@link instances}. */
export interface InstancesOptions extends ManagerOptions {
  /** Only this filter's instances. */
  filter?: string;
  /** Only the instances on this volume (device name, or a DOS name such as C:). */
  volume?: string;
}

/** Options of {@link attach}. */
export interface AttachOptions extends ManagerOptions {
  /** The altitude (digits, optionally .digits); default: the filter's own. FilterAttachAtAltitude. */
  altitude?: string;
  /** The instance's name; default: the filter's default instance (Windows) or "<filter> Instance" (simulator). */
  instanceName?: string;
}

/** Options of {@link detach}. */
export interface DetachOptions extends ManagerOptions {
  /** Which instance; default: the filter's only (or first) instance on that volume. */
  instanceName?: string;
}

// fltuserstructures.h's limits (FILTER_NAME_MAX_CHARS, INSTANCE_NAME_MAX_CHARS, VOLUME_NAME_MAX_CHARS).
const MAX_FILTER_NAME = 255;
const MAX_INSTANCE_NAME = 255;
const MAX_VOLUME_NAME = 1024;
// An altitude is a decimal number: digits, optionally a fraction.
const ALTITUDE = /^\d+(\.\d+)?$/;
const MAX_ALTITUDE = 64;

const IS_MINIFILTER = 1;
const DETACHED_VOLUME = 1;

/** FilterFindFirst/Next (FilterAggregateStandardInformation): every loaded filter, highest altitude first. */
export async function filters(options?: ManagerOptions): Promise<FilterInfo[]> {
  const where = target(options, 'options');
  const result = await loadBinding().manage('filters', where);
  return records(result, '').map((r) => {
    const mini = r.flags === IS_MINIFILTER;
    return {
      name: r.name,
      altitude: r.altitude,
      kind: mini ? 'minifilter' : 'legacy',
      frame: mini ? r.frame : undefined,
      instances: mini ? r.instances : 0,
    };
  });
}

/**
 * The instances of every filter on every volume, or of one filter (FilterInstanceFindFirst/Next), or on one
 * volume (FilterVolumeInstanceFindFirst/Next), or both. The simulator orders them by volume (as {@link volumes}
 * lists them), then highest altitude first; on Windows the order is Filter Manager's.
 */
export async function instances(options?: InstancesOptions): Promise<InstanceInfo[]> {
  const where = target(options, 'options');
  const o = options ?? {};
  const filter = o.filter === undefined ? undefined : checkName('options.filter', o.filter, MAX_FILTER_NAME);
  const volume = o.volume === undefined ? undefined : checkName('options.volume', o.volume, MAX_VOLUME_NAME);
  const binding = loadBinding();
  if (volume !== undefined) {
    const onVolume = records(await binding.manage('volumeInstances', where, volume), JSON.stringify(volume));
    if (filter === undefined) return onVolume.map(instanceInfo);
    const mine = onVolume.filter((r) => sameName(r.filter, filter));
    // None on the volume: the filter may not exist at all, which is an error (as without the volume).
    if (mine.length === 0) records(await binding.manage('filterInstances', where, filter), JSON.stringify(filter));
    return mine.map(instanceInfo);
  }
  if (filter !== undefined) {
    const all = records(await binding.manage('filterInstances', where, filter), JSON.stringify(filter));
    return all.map(instanceInfo);
  }
  const result: InstanceInfo[] = [];
  for (const v of records(await binding.manage('volumes', where), '')) {
    const onVolume = await binding.manage('volumeInstances', where, v.name);
    // A volume that went away since it was listed has no instances to show.
    if (onVolume.hresult >>> 0 === Win32.ERROR_FLT_VOLUME_NOT_FOUND) continue;
    result.push(...records(onVolume, JSON.stringify(v.name)).map(instanceInfo));
  }
  return result;
}

/** FilterVolumeFindFirst/Next (FilterVolumeStandardInformation) and each volume's FilterGetDosName. */
export async function volumes(options?: ManagerOptions): Promise<VolumeInfo[]> {
  const where = target(options, 'options');
  const binding = loadBinding();
  const list = records(await binding.manage('volumes', where), '');
  return Promise.all(
    list.map(async (v) => {
      // A volume without a DOS name (S_OK and '', documented), or one that went away meanwhile, is listed
      // without one: the listing does not fail for it.
      const dos = await binding.manage('dosName', where, v.name);
      return {
        name: v.name,
        dosName: dos.hresult === 0 && dos.value !== undefined && dos.value !== '' ? dos.value : undefined,
        fileSystem: fileSystemName(v.fileSystem),
        frame: v.frame,
        detached: (v.flags & DETACHED_VOLUME) !== 0,
      };
    }),
  );
}

/** FilterLoad: loads a minifilter by its service name. Needs SeLoadDriverPrivilege (an elevated Administrator). */
export async function load(name: string, options?: ManagerOptions): Promise<void> {
  const filter = checkName('name', name, MAX_FILTER_NAME);
  const where = target(options, 'options');
  done(await loadBinding().manage('load', where, filter), JSON.stringify(filter));
}

/**
 * FilterUnload: unloads a minifilter (its FilterUnloadCallback runs; its communication ports close, so clients
 * see the disconnect). Needs SeLoadDriverPrivilege. Resolves once the unload finished.
 */
export async function unload(name: string, options?: ManagerOptions): Promise<void> {
  const filter = checkName('name', name, MAX_FILTER_NAME);
  const where = target(options, 'options');
  done(await loadBinding().manage('unload', where, filter), JSON.stringify(filter));
}

/**
 * FilterAttach (FilterAttachAtAltitude with `altitude`): attaches a new instance of the filter to the volume
 * (device name or DOS name). Resolves with the created instance's name.
 */
export async function attach(filter: string, volume: string, options?: AttachOptions): Promise<string> {
  const f = checkName('filter', filter, MAX_FILTER_NAME);
  const v = checkName('volume', volume, MAX_VOLUME_NAME);
  const where = target(options, 'options');
  const o = options ?? {};
  const altitude = o.altitude === undefined ? undefined : checkAltitude('options.altitude', o.altitude);
  const instanceName =
    o.instanceName === undefined ? undefined : checkName('options.instanceName', o.instanceName, MAX_INSTANCE_NAME);
  const result = await loadBinding().manage('attach', where, f, v, altitude, instanceName);
  done(result, JSON.stringify(f));
  return result.value ?? '';
}

/** FilterDetach: detaches an instance of the filter from the volume. */
export async function detach(filter: string, volume: string, options?: DetachOptions): Promise<void> {
  const f = checkName('filter', filter, MAX_FILTER_NAME);
  const v = checkName('volume', volume, MAX_VOLUME_NAME);
  const where = target(options, 'options');
  const o = options ?? {};
  const instanceName =
    o.instanceName === undefined ? undefined : checkName('options.instanceName', o.instanceName, MAX_INSTANCE_NAME);
  done(await loadBinding().manage('detach', where, f, v, instanceName), JSON.stringify(f));
}

/**
 * FilterGetDosName: the volume's drive letter ('C:'), or a mount point path when it has no letter. A volume
 * with neither: '' (S_OK and an empty name, as FilterGetDosName's documentation says; the simulator does the same).
 */
export async function dosName(volume: string, options?: ManagerOptions): Promise<string> {
  const v = checkName('volume', volume, MAX_VOLUME_NAME);
  const where = target(options, 'options');
  const result = await loadBinding().manage('dosName', where, v);
  done(result, JSON.stringify(v));
  return result.value ?? '';
}

/**
 * The simulator's communication ports. Windows has no API that lists them: with the real Filter Manager this
 * rejects with FilterError ERROR_NOT_SUPPORTED.
 */
export async function ports(options?: ManagerOptions): Promise<PortInfo[]> {
  const where = target(options, 'options');
  if (where.backend === 'fltlib') {
    throw new FilterError((0x80070000 | Win32.ERROR_NOT_SUPPORTED) >>> 0, 'SimulatorListPorts');
  }
  return records(await loadBinding().manage('ports', where), '').map((p) => ({
    name: p.name,
    filter: p.filter,
    maxConnections: p.maxConnections,
    connections: p.connections,
  }));
}

function target(options: unknown, what: string): NativeManageOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null))
    throw invalidArgType(what, 'an object', options);
  const simulator = (options as ManagerOptions | undefined)?.simulator;
  const binding = loadBinding();
  const chosen: { backend: Backend; endpoint?: string } = chooseBackend(simulator, binding.info().fltlib);
  if (chosen.endpoint !== undefined)
    checkEndpoint(binding, chosen.endpoint, simulator === undefined || simulator === true);
  return chosen;
}

function checkName(what: string, value: unknown, max: number): string {
  if (typeof value !== 'string') throw invalidArgType(what, 'a string', value);
  if (value.length === 0) throw invalidArgValue(what, 'must not be empty');
  if (value.includes('\0')) throw invalidArgValue(what, 'must not contain NUL characters');
  if (value.length > max) throw outOfRange(`${what}.length`, `at most ${max}`, value.length);
  return value;
}

function checkAltitude(what: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(what, 'a string', value);
  if (!ALTITUDE.test(value) || value.length > MAX_ALTITUDE)
    throw invalidArgValue(
      what,
      `must be digits with an optional .fraction (e.g. '385100'), got ${JSON.stringify(value)}`,
    );
  return value;
}

/** The records of a successful call, or its FilterError. */
function records<R>(result: NativeManageResult<R>, subject: string): R[] {
  done(result, subject);
  return result.records ?? [];
}

function done(result: NativeManageResult<unknown>, subject: string): void {
  if (result.hresult === 0) return;
  // ERROR_INVALID_DATA from the decoder names what was wrong with the record instead of a subject.
  throw new FilterError(result.hresult, result.syscall as ManagementSyscall, result.detail ?? subject);
}

function instanceInfo(r: NativeInstanceRecord): InstanceInfo {
  const mini = r.flags === IS_MINIFILTER;
  return {
    name: r.name,
    filter: r.filter,
    volume: r.volume,
    altitude: r.altitude,
    frame: mini ? r.frame : undefined,
    fileSystem: mini ? fileSystemName(r.fileSystem) : 'UNKNOWN',
    kind: mini ? 'minifilter' : 'legacy',
  };
}

// Filter and volume names compare case-insensitively on Windows.
function sameName(a: string, b: string): boolean {
  return a.toUpperCase() === b.toUpperCase();
}
