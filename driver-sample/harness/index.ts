/**
 * The sample minifilter's real C code (driver-sample/driver) in the kernel harness (native/kernel), with the
 * same interface as its TypeScript twin (driver-sample/twin), so that the tests, the demo and the
 * differential test can run either.
 *
 * - The image: driver-sample/driver/*.c plus harness/hooks.c (a test hook reading statistics and
 *   configuration as GET_STATS / GET_CONFIG / SET_CONFIG do), built by buildKernelImage on first use and
 *   cached under build/kernel.
 * - `portGroupGid` (the twin's stand-in for the PortGroupSid registry value) becomes the real registry value
 *   PortGroupSid = "S-1-22-2-<gid>" (the "Unix Group" SID of that gid, harness.h); a value that is not a gid
 *   is passed through as is, and the driver logs and ignores it as it would any non-SID string.
 * - openFile() results: allowed / status are what the driver did to the open; `reason` is read from what
 *   the callbacks did (the routines they called, in order: KernelOpenResult.trace), with the same meanings
 *   as the twin's, so that one test can assert it for both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FilterManagerSimulator, SimulatedFilter } from '../../lib/simulator';
import { buildKernelImage } from '../../lib/simulator/kernel-build';
import { KernelDriver, type KernelOpenResult } from '../../lib/simulator/kernel-driver';
import { packageRoot } from '../../lib/binding';
import { NtStatus } from '../../lib/status';
import * as P from '../protocol';
import type { SampleDriver } from '../target';
import {
  FileAccess,
  type OpenFileOptions,
  type OpenFileResult,
  type OpenReason,
  type SampleMinifilterOptions,
} from '../twin';

const HOOK_GET_STATS = 1;
const HOOK_GET_CONFIG = 2;
const HOOK_SET_CONFIG = 3;
// FLT_PREOP_CALLBACK_STATUS values the reason depends on.
const FLT_PREOP_SUCCESS_NO_CALLBACK = 1;
const FILE_DIRECTORY_FILE = 0x1;
const DATA_ACCESS = FileAccess.READ_DATA | FileAccess.WRITE_DATA | FileAccess.APPEND_DATA | FileAccess.EXECUTE;

let imagePath: string | undefined;

/** Builds (or finds, when nothing changed) the sample driver's harness image; returns its path. */
export function sampleImage(): string {
  if (imagePath !== undefined) return imagePath;
  const root = packageRoot();
  const driverDir = path.join(root, 'driver-sample', 'driver');
  const sources = fs
    .readdirSync(driverDir)
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => path.join(driverDir, f));
  sources.push(path.join(root, 'driver-sample', 'harness', 'hooks.c'));
  const sanitized = process.env['FLTMGR_SANITIZED'] === '1';
  imagePath = buildKernelImage({
    sources,
    includeDirs: [path.join(root, 'driver-sample', 'include')],
    out: path.join(root, 'build', 'kernel', sanitized ? 'fltsample-asan.so' : 'fltsample.so'),
  });
  return imagePath;
}

function gidOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) {
    const n = Number(value.trim());
    if (n <= 0xffffffff) return n;
  }
  return undefined;
}

/** The sample driver's C code loaded into a simulator: the twin's interface over a KernelDriver. */
export class SampleKernelDriver implements SampleDriver {
  readonly kind = 'c';
  readonly driver: KernelDriver;
  /** The gid the PortGroupSid value names, when it is a valid one (the twin's portGroupGid). */
  readonly portGroupGid: number | undefined;
  readonly #fileIds = new Map<string, bigint>();

  private constructor(driver: KernelDriver, portGroupGid: number | undefined) {
    this.driver = driver;
    this.portGroupGid = portGroupGid;
  }

  /** DriverEntry with the options the twin takes (portGroupGid, log, filterName). */
  static async load(sim: FilterManagerSimulator, options: SampleMinifilterOptions = {}): Promise<SampleKernelDriver> {
    const gid = gidOf(options.portGroupGid);
    const raw = options.portGroupGid;
    const parameters: Record<string, string> = {};
    if (raw !== undefined && raw !== '')
      parameters['PortGroupSid'] = gid !== undefined ? `S-1-22-2-${gid}` : String(raw);
    const log = options.log ?? ((line: string) => process.stderr.write(`fltsample: ${line}\n`));
    const driver = await KernelDriver.load(sim, sampleImage(), {
      name: options.filterName ?? P.FILTER_NAME,
      altitude: P.SAMPLE_ALTITUDE,
      parameters,
      log,
    });
    return new SampleKernelDriver(driver, gid);
  }

  get filter(): SimulatedFilter {
    return this.driver.filter;
  }

  get unloaded(): boolean {
    return this.driver.unloaded;
  }

  /** The configuration in effect (what GET_CONFIG returns). */
  async configuration(): Promise<P.SampleConfig> {
    return P.decodeConfig(await this.driver.query(HOOK_GET_CONFIG, P.CONFIG.size));
  }

  /** Replaces the configuration as SET_CONFIG does (NtStatusError STATUS_INVALID_PARAMETER when invalid). */
  async configure(config: P.SampleConfig): Promise<void> {
    await this.driver.query(HOOK_SET_CONFIG, P.CONFIG.size, P.encodeConfig(config));
  }

  /** FsFillStats: what GET_STATS returns. */
  async stats(): Promise<P.Stats> {
    return P.decodeStats(await this.driver.query(HOOK_GET_STATS, P.STATS.size));
  }

  /** Unloads the driver (FsFilterUnload / FsEvtDriverUnload); rejects with the verifier's findings if any. */
  unload(): Promise<void> {
    return this.driver.unload();
  }

  /** Unmaps the image (KernelDriver.close). */
  close(): Promise<void> {
    return this.driver.close();
  }

  /** A simulated open through the driver's create callbacks, reported as the twin reports it. */
  async openFile(options: OpenFileOptions): Promise<OpenFileResult> {
    const desiredAccess = options.desiredAccess ?? FileAccess.READ_DATA;
    const r = await this.driver.openFile({
      path: options.path,
      content: options.content,
      processId: options.processId,
      desiredAccess,
      createOptions: options.directory === true ? FILE_DIRECTORY_FILE : 0,
      kernelMode: options.requestorMode === 'kernel',
      isDirectory: options.openedDirectory === true,
      readFails: options.readFails === true,
      fileId: options.fileId ?? this.#fileIdOf(options.path),
    });
    const allowed = r.status === NtStatus.STATUS_SUCCESS;
    const result: OpenFileResult = {
      allowed,
      status: r.status,
      reason: reasonOf(r, options, desiredAccess),
      scanned: r.sends > 0,
    };
    if (r.sends > 0) {
      result.scanId = P.decodeScanRequest(r.sendData).scanId;
      result.sendStatus = r.sendStatus;
      if (r.sendStatus === NtStatus.STATUS_SUCCESS && r.replyData.length >= P.SCAN_REPLY.size) {
        const reply = P.SCAN_REPLY.decode(r.replyData);
        if (reply.verdict === P.Verdict.ALLOW || reply.verdict === P.Verdict.BLOCK)
          result.reasonCode = reply.reasonCode;
      }
    }
    return result;
  }

  // The twin's default FileInternalInformation: a stable id per path, from 0x10000.
  #fileIdOf(p: string): bigint {
    let id = this.#fileIds.get(p);
    if (id === undefined) {
      id = 0x10000n + BigInt(this.#fileIds.size);
      this.#fileIds.set(p, id);
    }
    return id;
  }
}

/** Why the driver decided as it did, from the routines its callbacks called (see the file comment). */
function reasonOf(r: KernelOpenResult, o: OpenFileOptions, desiredAccess: number): OpenReason {
  if (r.preStatus === -1) return 'unloading'; // no instance: the filter is gone or going
  if (r.preStatus === FLT_PREOP_SUCCESS_NO_CALLBACK) {
    if (o.requestorMode === 'kernel') return 'kernel-mode';
    if (o.directory === true) return 'directory';
    if ((desiredAccess & DATA_ACCESS) === 0) return 'no-data-access';
    return 'excluded-process';
  }
  const called = (routine: string): boolean => r.trace.includes(`${routine}=`);
  if (!called('FltGetFileNameInformation')) return 'unloading'; // post-create found the rundown closed
  if (!called('FltQueryInformationFile(FileStandardInformation)')) return 'not-in-scope';
  if (o.openedDirectory === true) return 'directory';
  if (r.sends === 0) return 'no-agent';
  if (r.sendStatus === NtStatus.STATUS_TIMEOUT) return 'timeout';
  if (r.sendStatus === NtStatus.STATUS_SUCCESS && r.replyData.length >= P.SCAN_REPLY.size) {
    const verdict = P.SCAN_REPLY.decode(r.replyData).verdict;
    if (verdict === P.Verdict.ALLOW) return 'verdict-allow';
    if (verdict === P.Verdict.BLOCK) return 'verdict-block';
  }
  return 'scan-error';
}
