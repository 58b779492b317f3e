// The management model of the simulator: volumes, instances of each filter on each volume, loadable modules,
// and the operations fltlib's management calls ask for (docs/wire-protocol.md, "Management requests").
// FilterManagerSimulator's public methods (filters(), attach(), load(), ...) and the MANAGE requests both run
// these; failures are ManagementErrors carrying the HRESULT fltlib would return.
import { HResult, NtStatus, Win32, hresultFromNtStatus, hresultFromWin32 } from '../status';
import type { SimulatedFilter } from './filter';
import {
  ManagementError,
  NtStatusError,
  type FilterSnapshot,
  type InstanceSnapshot,
  type LoadableFilter,
  type PortSnapshot,
  type RegisterFilterOptions,
  type SimulatedVolume,
  type SimulatedVolumeOptions,
} from './types';

/** FLT_FILESYSTEM_TYPE numbers the default volumes use (mingw-w64 fltuserstructures.h enum order). */
const FSTYPE_NTFS = 2;
const FSTYPE_MUP = 13;
const FSTYPE_REFS = 28;
/** The altitude of a filter registered without one (simulator's choice, documented). */
export const DEFAULT_ALTITUDE = '0';
const ALTITUDE = /^\d+(\.\d+)?$/;
/** The longest name a MANAGE string carries (UNICODE_STRING's limit too). */
export const MAX_NAME_UNITS = 0x7fff;

const E_INVALIDARG = HResult.E_INVALIDARG;
const HR_FILE_NOT_FOUND = hresultFromWin32(Win32.ERROR_FILE_NOT_FOUND);
const HR_ALREADY_RUNNING = hresultFromWin32(Win32.ERROR_SERVICE_ALREADY_RUNNING);
const HR_GEN_FAILURE = hresultFromWin32(Win32.ERROR_GEN_FAILURE);
const HR = {
  DO_NOT_ATTACH: Win32.ERROR_FLT_DO_NOT_ATTACH,
  ALTITUDE_COLLISION: Win32.ERROR_FLT_INSTANCE_ALTITUDE_COLLISION,
  NAME_COLLISION: Win32.ERROR_FLT_INSTANCE_NAME_COLLISION,
  FILTER_NOT_FOUND: Win32.ERROR_FLT_FILTER_NOT_FOUND,
  VOLUME_NOT_FOUND: Win32.ERROR_FLT_VOLUME_NOT_FOUND,
  INSTANCE_NOT_FOUND: Win32.ERROR_FLT_INSTANCE_NOT_FOUND,
  DELETING_OBJECT: Win32.ERROR_FLT_DELETING_OBJECT,
} as const;

export const DEFAULT_VOLUMES: readonly SimulatedVolumeOptions[] = Object.freeze([
  { name: '\\Device\\HarddiskVolume1', dosName: 'C:', fileSystemType: FSTYPE_NTFS },
  { name: '\\Device\\HarddiskVolume2', dosName: 'D:', fileSystemType: FSTYPE_REFS },
  { name: '\\Device\\Mup', fileSystemType: FSTYPE_MUP },
]);

/** Names compare as Object Manager names do: ignoring case. */
export function nameKey(name: string): string {
  return name.toUpperCase();
}

/** Compares altitudes as decimal numbers: > 0 when `a` is higher. */
export function compareAltitudes(a: string, b: string): number {
  const [ai = '', af = ''] = a.split('.');
  const [bi = '', bf = ''] = b.split('.');
  const aInt = ai.replace(/^0+/, '');
  const bInt = bi.replace(/^0+/, '');
  if (aInt.length !== bInt.length) return aInt.length - bInt.length;
  if (aInt !== bInt) return aInt < bInt ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const aFrac = af.padEnd(width, '0');
  const bFrac = bf.padEnd(width, '0');
  return aFrac === bFrac ? 0 : aFrac < bFrac ? -1 : 1;
}

/** A filter's entry in the model: what registerFilter was given. */
interface FilterEntry {
  readonly filter: SimulatedFilter;
  readonly altitude: string;
  readonly options: RegisterFilterOptions;
  /** UNLOAD in progress (one unload however many ask). */
  unloading: Promise<void> | undefined;
}

interface Instance {
  readonly name: string;
  readonly entry: FilterEntry;
  readonly volume: SimulatedVolume;
  readonly altitude: string;
}

/** What the model needs from the simulator that owns it. */
export interface ModelHost {
  log(line: string): void;
  /** Registered filters, in registration order. */
  filters(): Iterable<SimulatedFilter>;
  /** Looks a filter up by name (ignoring case). */
  filter(name: string): SimulatedFilter | undefined;
  /** Open server ports, in creation order. */
  ports(): Iterable<{ name: string; filter: SimulatedFilter; maxConnections: number; connectionCount: number }>;
  /** Runs a loadable (it registers through the simulator). */
  runLoadable(register: LoadableFilter): SimulatedFilter | Promise<SimulatedFilter>;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function requireName(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string`);
  if (value.length === 0) throw new ManagementError(E_INVALIDARG, `${what} is required`);
  if (value.length > MAX_NAME_UNITS) throw new ManagementError(E_INVALIDARG, `${what} is too long`);
  return value;
}

function optionalName(value: unknown, what: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  return requireName(value, what);
}

function validateVolumes(given: readonly SimulatedVolumeOptions[]): SimulatedVolume[] {
  if (!Array.isArray(given)) throw new TypeError('volumes must be an array');
  const names = new Set<string>();
  const dosNames = new Set<string>();
  return (given as readonly unknown[]).map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw new TypeError(`volumes[${i}] must be an object`);
    const v = raw as { [K in keyof SimulatedVolumeOptions]?: unknown };
    const { name, dosName, fileSystemType = FSTYPE_NTFS, detached = false } = v;
    if (typeof name !== 'string' || !name.startsWith('\\') || name.length < 2 || name.length > MAX_NAME_UNITS) {
      throw new TypeError(`volumes[${i}].name must be an NT device name such as \\Device\\HarddiskVolume1`);
    }
    if (names.has(nameKey(name))) throw new TypeError(`volumes[${i}]: ${name} is given twice`);
    names.add(nameKey(name));
    if (dosName !== undefined) {
      if (typeof dosName !== 'string' || !/^[A-Za-z]:$/.test(dosName)) {
        throw new TypeError(`volumes[${i}].dosName must be a drive letter such as C:`);
      }
      if (dosNames.has(nameKey(dosName))) throw new TypeError(`volumes[${i}]: ${dosName} is given twice`);
      dosNames.add(nameKey(dosName));
    }
    if (
      typeof fileSystemType !== 'number' ||
      !Number.isInteger(fileSystemType) ||
      fileSystemType < 0 ||
      fileSystemType > 0xffffffff
    ) {
      throw new TypeError(`volumes[${i}].fileSystemType must be an FLT_FILESYSTEM_TYPE number`);
    }
    if (typeof detached !== 'boolean') throw new TypeError(`volumes[${i}].detached must be a boolean`);
    return Object.freeze({ name, dosName: (dosName as string | undefined)?.toUpperCase(), fileSystemType, detached });
  });
}

/** Checks registerFilter's options; returns the altitude to use. */
export function validateFilterOptions(options: RegisterFilterOptions): string {
  if (typeof options !== 'object' || options === null) {
    throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, 'options must be an object');
  }
  const altitude = options.altitude;
  if (altitude !== undefined && (typeof altitude !== 'string' || !ALTITUDE.test(altitude))) {
    throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, `bad altitude ${String(altitude)}`);
  }
  for (const key of ['instanceSetup', 'instanceTeardown', 'unload'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'function') {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, `${key} must be a function`);
    }
  }
  return altitude ?? DEFAULT_ALTITUDE;
}

export class ManagementModel {
  readonly volumes: readonly SimulatedVolume[];
  private readonly entries = new Map<SimulatedFilter, FilterEntry>();
  /** Every instance, in creation order (listings sort a copy). */
  private instances: Instance[] = [];
  private readonly loadables = new Map<string, { name: string; register: LoadableFilter }>();
  private readonly loading = new Set<string>();

  constructor(
    private readonly host: ModelHost,
    volumes: readonly SimulatedVolumeOptions[] | undefined,
  ) {
    this.volumes = Object.freeze(validateVolumes(volumes ?? DEFAULT_VOLUMES));
  }

  // ---- registration --------------------------------------------------------------------------------------

  /** A filter was registered: its entry, and its automatic instances (one per volume, where they can be). */
  filterRegistered(filter: SimulatedFilter, options: RegisterFilterOptions, altitude: string): void {
    const entry: FilterEntry = { filter, altitude, options: { ...options }, unloading: undefined };
    this.entries.set(filter, entry);
    for (const volume of this.volumes) {
      let result: string | Promise<string>;
      try {
        result = this.attachEntry(entry, volume, altitude, undefined, true);
      } catch (err) {
        this.host.log(`filter ${filter.name}: no instance on ${volume.name} (${describe(err)})`);
        continue;
      }
      if (typeof result !== 'string') {
        result.catch((err: unknown) =>
          this.host.log(`filter ${filter.name}: no instance on ${volume.name} (${describe(err)})`),
        );
      }
    }
  }

  /** The filter's unload finished (FltUnregisterFilter): its instances go, their teardowns run. */
  async filterUnloaded(filter: SimulatedFilter): Promise<void> {
    const entry = this.entries.get(filter);
    if (!entry) return;
    const gone = this.instances.filter((i) => i.entry === entry);
    this.instances = this.instances.filter((i) => i.entry !== entry);
    await Promise.all(gone.map((i) => this.teardown(i)));
    this.entries.delete(filter);
  }

  // ---- queries -------------------------------------------------------------------------------------------

  /** Filters, highest altitude first (equal altitudes in registration order). */
  filters(): FilterSnapshot[] {
    const out: FilterSnapshot[] = [];
    for (const filter of this.host.filters()) {
      const entry = this.entries.get(filter);
      if (!entry) continue;
      out.push(
        Object.freeze({
          name: filter.name,
          altitude: entry.altitude,
          kind: 'minifilter' as const,
          frameId: 0,
          instances: this.instances.reduce((n, i) => n + (i.entry === entry ? 1 : 0), 0),
        }),
      );
    }
    return out.sort((a, b) => compareAltitudes(b.altitude, a.altitude));
  }

  /** Instances, by volume (the volume order), then highest altitude first. */
  listInstances(o: { filter?: string; volume?: string } = {}): InstanceSnapshot[] {
    if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
    const filterName = optionalName(o.filter, 'filter');
    const volumeName = optionalName(o.volume, 'volume');
    const entry = filterName === undefined ? undefined : this.entry(filterName);
    const volume = volumeName === undefined ? undefined : this.volume(volumeName);
    const order = new Map(this.volumes.map((v, i) => [v, i]));
    return this.instances
      .filter((i) => (entry === undefined || i.entry === entry) && (volume === undefined || i.volume === volume))
      .sort(
        (a, b) => (order.get(a.volume) ?? 0) - (order.get(b.volume) ?? 0) || compareAltitudes(b.altitude, a.altitude),
      )
      .map((i) => this.snapshot(i));
  }

  /** The DOS name of a volume. */
  dosName(volumeName: string): string {
    const volume = this.volume(requireName(volumeName, 'volume'));
    if (volume.dosName === undefined) throw new ManagementError(HR_FILE_NOT_FOUND, `${volume.name} has no DOS name`);
    return volume.dosName;
  }

  ports(): PortSnapshot[] {
    const out: PortSnapshot[] = [];
    for (const p of this.host.ports()) {
      out.push(
        Object.freeze({
          name: p.name,
          filter: p.filter.name,
          maxConnections: p.maxConnections,
          connections: p.connectionCount,
        }),
      );
    }
    return out;
  }

  // ---- attach / detach -----------------------------------------------------------------------------------

  async attach(
    filterName: string,
    volumeName: string,
    o: { altitude?: string; instanceName?: string } = {},
  ): Promise<string> {
    if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
    const entry = this.entry(requireName(filterName, 'filter'));
    const volume = this.volume(requireName(volumeName, 'volume'));
    const altitude = optionalName(o.altitude, 'altitude');
    if (altitude !== undefined && !ALTITUDE.test(altitude)) {
      throw new ManagementError(E_INVALIDARG, `bad altitude ${altitude}`);
    }
    const instanceName = optionalName(o.instanceName, 'instance name');
    return this.attachEntry(entry, volume, altitude ?? entry.altitude, instanceName, false);
  }

  async detach(filterName: string, volumeName: string, o: { instanceName?: string } = {}): Promise<void> {
    if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
    const entry = this.entry(requireName(filterName, 'filter'));
    const volume = this.volume(requireName(volumeName, 'volume'));
    const instanceName = optionalName(o.instanceName, 'instance name');
    const candidates = this.instances
      .filter((i) => i.entry === entry && i.volume === volume)
      .sort((a, b) => compareAltitudes(b.altitude, a.altitude));
    const instance =
      instanceName === undefined ? candidates[0] : candidates.find((i) => nameKey(i.name) === nameKey(instanceName));
    if (!instance) {
      const which = instanceName === undefined ? 'no instance' : `no instance ${instanceName}`;
      throw new ManagementError(HR.INSTANCE_NOT_FOUND, `${entry.filter.name} has ${which} on ${volume.name}`);
    }
    this.instances = this.instances.filter((i) => i !== instance);
    await this.teardown(instance);
  }

  /**
   * Creates an instance: the collision checks, then the filter's instanceSetup, then the checks again (the model
   * may have changed while it ran). Synchronous when instanceSetup is (registration lists its instances at once).
   */
  private attachEntry(
    entry: FilterEntry,
    volume: SimulatedVolume,
    altitude: string,
    instanceName: string | undefined,
    automatic: boolean,
  ): string | Promise<string> {
    this.checkAttach(entry, volume, altitude, instanceName);
    const setup = entry.options.instanceSetup;
    const insert = (): string => {
      this.checkAttach(entry, volume, altitude, instanceName);
      const name = instanceName ?? this.defaultInstanceName(entry, volume);
      this.instances.push({ name, entry, volume, altitude });
      return name;
    };
    if (!setup) return insert();
    const context = Object.freeze({ volume, altitude, automatic });
    let result: unknown;
    try {
      result = setup(context);
    } catch (err) {
      throw this.setupFailure(entry, err);
    }
    const decide = (accepted: unknown): string => {
      if (accepted === false) {
        throw new ManagementError(HR.DO_NOT_ATTACH, `${entry.filter.name} declined ${volume.name}`);
      }
      return insert();
    };
    if (!isThenable(result)) return decide(result);
    return Promise.resolve(result).then(decide, (err: unknown) => {
      throw this.setupFailure(entry, err);
    });
  }

  private checkAttach(
    entry: FilterEntry,
    volume: SimulatedVolume,
    altitude: string,
    instanceName: string | undefined,
  ): void {
    if (this.entries.get(entry.filter) !== entry) {
      throw new ManagementError(HR.FILTER_NOT_FOUND, `filter ${entry.filter.name} is not registered`);
    }
    if (entry.filter.unloaded) {
      throw new ManagementError(HR.DELETING_OBJECT, `filter ${entry.filter.name} is unloading`);
    }
    const onVolume = this.instances.filter((i) => i.volume === volume);
    if (
      instanceName !== undefined &&
      onVolume.some((i) => i.entry === entry && nameKey(i.name) === nameKey(instanceName))
    ) {
      throw new ManagementError(
        HR.NAME_COLLISION,
        `${entry.filter.name} has an instance ${instanceName} on ${volume.name}`,
      );
    }
    const holder = onVolume.find((i) => compareAltitudes(i.altitude, altitude) === 0);
    if (holder) {
      throw new ManagementError(
        HR.ALTITUDE_COLLISION,
        `altitude ${altitude} on ${volume.name} is taken by ${holder.entry.filter.name} (${holder.name})`,
      );
    }
  }

  private setupFailure(entry: FilterEntry, err: unknown): ManagementError {
    if (err instanceof NtStatusError) {
      const hr = hresultFromNtStatus(err.status);
      if (hr !== 0) return new ManagementError(hr, `instance setup of ${entry.filter.name} failed`);
    }
    this.host.log(`instance setup of ${entry.filter.name} threw ${describe(err)}; the attach fails`);
    return new ManagementError(HR.DO_NOT_ATTACH, `instance setup of ${entry.filter.name} failed`);
  }

  /** "<filter> Instance", then "<filter> Instance 2", 3, ...: the first this filter does not use on the volume. */
  private defaultInstanceName(entry: FilterEntry, volume: SimulatedVolume): string {
    const taken = new Set(
      this.instances.filter((i) => i.entry === entry && i.volume === volume).map((i) => nameKey(i.name)),
    );
    const base = `${entry.filter.name} Instance`;
    if (!taken.has(nameKey(base))) return base;
    for (let n = 2; ; n++) if (!taken.has(nameKey(`${base} ${n}`))) return `${base} ${n}`;
  }

  private async teardown(instance: Instance): Promise<void> {
    const callback = instance.entry.options.instanceTeardown;
    if (!callback) return;
    try {
      await callback(this.snapshot(instance));
    } catch (err) {
      this.host.log(`instance teardown of ${instance.name} (${instance.entry.filter.name}) failed: ${describe(err)}`);
    }
  }

  // ---- load / unload -------------------------------------------------------------------------------------

  addLoadable(name: string, register: LoadableFilter): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_UNITS) {
      throw new TypeError('a loadable needs a non-empty name');
    }
    if (typeof register !== 'function') throw new TypeError('register must be a function');
    if (this.loadables.has(nameKey(name))) throw new TypeError(`a loadable named ${name} exists already`);
    this.loadables.set(nameKey(name), { name, register });
  }

  loadableNames(): string[] {
    return [...this.loadables.values()].map((l) => l.name);
  }

  /** FilterLoad: runs the loadable of that name. */
  async load(name: string): Promise<SimulatedFilter> {
    const key = nameKey(requireName(name, 'filter name'));
    const loadable = this.loadables.get(key);
    if (!loadable) throw new ManagementError(HR_FILE_NOT_FOUND, `nothing loadable is named ${name}`);
    if (this.loading.has(key) || this.host.filter(name) !== undefined) {
      throw new ManagementError(HR_ALREADY_RUNNING, `${name} is loaded`);
    }
    this.loading.add(key);
    try {
      return await this.host.runLoadable(loadable.register);
    } catch (err) {
      if (err instanceof ManagementError) throw err;
      if (err instanceof NtStatusError && hresultFromNtStatus(err.status) !== 0) {
        throw new ManagementError(hresultFromNtStatus(err.status), `loading ${name} failed`);
      }
      this.host.log(`loading ${name} failed: ${describe(err)}`);
      throw new ManagementError(HR_GEN_FAILURE, `loading ${name} failed`);
    } finally {
      this.loading.delete(key);
    }
  }

  /**
   * FilterUnload: the filter's unload routine (RegisterFilterOptions.unload) or FltUnregisterFilter; resolves once
   * the unload finished (connections ended, DisconnectNotify returned, instances torn down).
   */
  unload(name: string): Promise<void> {
    const filter = this.host.filter(requireName(name, 'filter name'));
    const entry = filter && this.entries.get(filter);
    if (!filter || !entry) {
      return Promise.reject(new ManagementError(HR.FILTER_NOT_FOUND, `filter ${name} is not loaded`));
    }
    entry.unloading ??= this.runUnload(entry).catch((err: unknown) => {
      entry.unloading = undefined; // refused: it stays loaded, a later UNLOAD may try again
      throw err;
    });
    return entry.unloading;
  }

  private async runUnload(entry: FilterEntry): Promise<void> {
    const filter = entry.filter;
    const hook = entry.options.unload;
    if (hook && !filter.unloaded) {
      try {
        await hook();
      } catch (err) {
        if (!filter.unloaded) {
          if (err instanceof NtStatusError && hresultFromNtStatus(err.status) !== 0) {
            throw new ManagementError(hresultFromNtStatus(err.status), `${filter.name} refused to unload`);
          }
          this.host.log(`unload of ${filter.name} failed: ${describe(err)}`);
          throw new ManagementError(HR_GEN_FAILURE, `unload of ${filter.name} failed`);
        }
        // It did unload, and reported something on the way (e.g. the kernel harness's verifier findings).
        this.host.log(`unload of ${filter.name}: ${describe(err)}`);
      }
    }
    await filter.unload();
  }

  // ---- lookups -------------------------------------------------------------------------------------------

  private entry(name: string): FilterEntry {
    const filter = this.host.filter(name);
    const entry = filter && this.entries.get(filter);
    if (!entry) throw new ManagementError(HR.FILTER_NOT_FOUND, `no filter ${name}`);
    return entry;
  }

  /** A volume by device name or DOS name, a trailing backslash optional, ignoring case (as FilterAttach takes). */
  volume(name: string): SimulatedVolume {
    const bare = name.length > 1 && name.endsWith('\\') ? name.slice(0, -1) : name;
    const key = nameKey(bare);
    const found = /^[A-Za-z]:$/.test(bare)
      ? this.volumes.find((v) => v.dosName !== undefined && nameKey(v.dosName) === key)
      : this.volumes.find((v) => nameKey(v.name) === key);
    if (!found) throw new ManagementError(HR.VOLUME_NOT_FOUND, `no volume ${name}`);
    return found;
  }

  private snapshot(i: Instance): InstanceSnapshot {
    return Object.freeze({
      name: i.name,
      filter: i.entry.filter.name,
      volume: i.volume.name,
      altitude: i.altitude,
      fileSystemType: i.volume.fileSystemType,
      kind: 'minifilter' as const,
      frameId: 0,
    });
  }
}
