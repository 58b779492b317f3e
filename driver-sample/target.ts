/**
 * One interface over the two implementations of the sample minifilter, so that tests, the demo and the
 * differential test run against either: 'c' = the driver's real C code in the kernel harness
 * (driver-sample/harness, Linux), 'twin' = its TypeScript twin (driver-sample/twin, any platform).
 */
import type { FilterManagerSimulator, SimulatedFilter } from '../lib/simulator';
import type * as P from './protocol';
import { SampleKernelDriver } from './harness';
import { SampleMinifilter, type OpenFileOptions, type OpenFileResult, type SampleMinifilterOptions } from './twin';

export type SampleTargetKind = 'c' | 'twin';

/** The sample driver, loaded (DriverEntry ran). */
export interface SampleDriver {
  readonly kind: SampleTargetKind;
  readonly filter: SimulatedFilter;
  /** The gid PortGroupSid names when it is valid (undefined: admin-only). */
  readonly portGroupGid: number | undefined;
  readonly unloaded: boolean;
  /** What GET_CONFIG would return. */
  configuration(): Promise<P.SampleConfig>;
  /** Sets the configuration as SET_CONFIG does (rejects with NtStatusError when invalid). */
  configure(config: P.SampleConfig): Promise<void>;
  /** What GET_STATS would return. */
  stats(): Promise<P.Stats>;
  /** A simulated open by another process. */
  openFile(options: OpenFileOptions): Promise<OpenFileResult>;
  /** fltmc unload. */
  unload(): Promise<void>;
  /** Frees what the implementation holds once unloaded (the C driver's image). */
  close(): Promise<void>;
}

class TwinDriver implements SampleDriver {
  readonly kind = 'twin';
  constructor(readonly twin: SampleMinifilter) {}
  get filter(): SimulatedFilter {
    return this.twin.filter;
  }
  get portGroupGid(): number | undefined {
    return this.twin.portGroupGid;
  }
  get unloaded(): boolean {
    return this.twin.unloaded;
  }
  configuration(): Promise<P.SampleConfig> {
    return Promise.resolve(this.twin.configuration);
  }
  configure(config: P.SampleConfig): Promise<void> {
    return new Promise((resolve) => resolve(this.twin.configure(config)));
  }
  stats(): Promise<P.Stats> {
    return Promise.resolve(this.twin.stats());
  }
  openFile(options: OpenFileOptions): Promise<OpenFileResult> {
    return this.twin.openFile(options);
  }
  unload(): Promise<void> {
    return this.twin.unload();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Loads the sample driver of the given kind into `sim`. */
export async function loadSampleDriver(
  kind: SampleTargetKind,
  sim: FilterManagerSimulator,
  options: SampleMinifilterOptions = {},
): Promise<SampleDriver> {
  if (kind === 'twin') return new TwinDriver(new SampleMinifilter(sim, options));
  return SampleKernelDriver.load(sim, options);
}

/** Where the C driver can run: Linux (the harness's images are Linux shared objects). */
export function kernelHarnessAvailable(): boolean {
  return process.platform === 'linux';
}
