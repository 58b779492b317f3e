/**
 * The simulator twin of the sample minifilter (driver-sample/driver): the same port, protocol and decisions,
 * in TypeScript, on the Filter Manager simulator. Each function below names the driver function it mirrors;
 * when the driver changes, change the twin with it.
 *
 * Two ways to use it:
 * - as a module for the simulator CLI / worker: `fltmgr-simulator --filter dist/driver-sample/twin/index.js
 *   [--option portGroupGid=1000]` calls register(sim, options);
 * - in process: `const twin = new SampleMinifilter(sim, options)`, then `await twin.openFile({ path, content,
 *   processId })` to simulate a file open, `twin.stats()`, `await twin.unload()`. Only this form can simulate
 *   file opens (the CLI and the worker have no channel for them).
 *
 * Identity mapping (the driver uses tokens, the simulator Unix peer credentials):
 * - "Administrators / SYSTEM" = the simulator's administrators (SimulatorOptions.admins; by default uid 0 and
 *   the simulator process's own uid). The port's default security ('admins') is what
 *   FltBuildDefaultSecurityDescriptor gives, and FsCallerIsAdmin (SeTokenIsAdmin) becomes "the peer is one of
 *   the simulator's administrators".
 * - The registry value Parameters\PortGroupSid (one group SID) becomes the option `portGroupGid` (one gid): the
 *   port then also admits peers whose primary gid is that gid (SO_PEERCRED carries only the primary group). As
 *   in the driver such connections are not privileged: no SET_CONFIG, no scanner role. An invalid value is
 *   logged and ignored (the port stays admin-only), like an invalid SID string.
 * - The process id the driver observes in its connect callback (PsGetCurrentProcessId) is the ClientPort's
 *   processId: the peer's pid from the OS, or the pid the client reported when the OS did not say.
 *
 * Not simulated: 8-byte alignment of FilterSendMessage buffers (STATUS_DATATYPE_MISALIGNMENT: the simulator's
 * buffers have no address), opens that fail in the file system, paging-file and volume opens (never scanned),
 * FltGetFileNameInformation failures, 8.3 names, and the file system itself (the
 * caller passes the path, the bytes and the opener's pid). Paths are used as given; the driver sends normalized
 * NT paths (\Device\HarddiskVolumeN\...).
 */
import { Buffer } from 'node:buffer';
import {
  NtStatusError,
  type ClientPort,
  type FilterManagerSimulator,
  type PeerIdentity,
  type ServerPort,
  type SimulatedFilter,
} from '../../lib/simulator';
import { NtStatus } from '../../lib/status';
import * as P from '../protocol';

/** STATUS_REVISION_MISMATCH (lib/status.ts has no entry for it). */
export const STATUS_REVISION_MISMATCH = 0xc0000059;

/** ACCESS_MASK bits the driver's pre-create looks at. */
export const FileAccess = {
  READ_DATA: 0x0001,
  WRITE_DATA: 0x0002,
  APPEND_DATA: 0x0004,
  EXECUTE: 0x0020,
  READ_ATTRIBUTES: 0x0080,
  DELETE: 0x10000,
} as const;
const DATA_ACCESS = FileAccess.READ_DATA | FileAccess.WRITE_DATA | FileAccess.APPEND_DATA | FileAccess.EXECUTE;

// Pool sizes of a 64-bit driver build, so that GET_STATS' PoolAllocations / PoolBytes read as they would there.
const FS_CLIENT_BYTES = 48; // sizeof(FS_CLIENT) on x64
const FS_FALLBACK_SECTOR_SIZE = 4096; // the read buffer is rounded up to the sector size (the twin has no volumes)
const GROUP_SID_BYTES = 16; // a two-sub-authority SID such as S-1-5-32-545

export interface SampleMinifilterOptions {
  /**
   * The PortGroupSid registry value's stand-in: one gid (a number, or its decimal text from the CLI's
   * `--option portGroupGid=N`) whose members may connect without being administrators.
   */
  portGroupGid?: number | string;
  /** DbgPrintEx: receives the driver's log lines. Default: standard error. */
  log?: (line: string) => void;
  /** Filter name; default 'FltSample'. Change it only to run two twins in one simulator (their ports collide). */
  filterName?: string;
}

/** What happened to a simulated open. */
export type OpenReason =
  /** Pre-create: kernel-mode opens are not scanned. */
  | 'kernel-mode'
  /** Pre-create: no read/write/append/execute access asked for. */
  | 'no-data-access'
  /** A directory (FILE_DIRECTORY_FILE, or the open turned out to be one). */
  | 'directory'
  /** Pre-create: the opener is a connected scanner's process (ExcludedOpens). */
  | 'excluded-process'
  /** The driver is unloading: opens are let through unscanned. */
  | 'unloading'
  /** The extension is not configured (and no SCAN_ALL_FILES). */
  | 'not-in-scope'
  /** The agent answered ALLOW / BLOCK. */
  | 'verdict-allow'
  | 'verdict-block'
  /** No scanner connection: the failure policy decided (NoAgentOpens). */
  | 'no-agent'
  /** No verdict within ReplyTimeoutMs (STATUS_TIMEOUT): the failure policy decided. */
  | 'timeout'
  /** The send failed (agent gone, reply too long) or the verdict was invalid: the failure policy decided. */
  | 'scan-error';

export interface OpenFileOptions {
  /** The name the driver would get (FltGetFileNameInformation); the extension is taken from its last component. */
  path: string;
  /** The file's bytes (its size is the FileSize sent; the first ContentBytes are read). */
  content: Uint8Array;
  /** The opening process (FltGetRequestorProcessId). */
  processId: number;
  /** DesiredAccess; default FILE_READ_DATA. */
  desiredAccess?: number;
  /** RequestorMode; default 'user'. */
  requestorMode?: 'user' | 'kernel';
  /** FILE_DIRECTORY_FILE in the create options: skipped in pre-create. */
  directory?: boolean;
  /** The open (without FILE_DIRECTORY_FILE) turned out to be a directory: skipped after the extension check. */
  openedDirectory?: boolean;
  /** Simulates a failing FltReadFile (READ_FAILED, ContentLength 0). */
  readFails?: boolean;
  /** FileInternalInformation; default: a stable id per path. */
  fileId?: bigint;
}

export interface OpenFileResult {
  /** The open succeeds. */
  allowed: boolean;
  /** What the opener gets: STATUS_SUCCESS (0) or STATUS_ACCESS_DENIED (0xC0000022). */
  status: number;
  reason: OpenReason;
  /** A SCAN_REQUEST was sent to an agent. */
  scanned: boolean;
  /** The request's ScanId, when one was sent. */
  scanId?: bigint;
  /** FltSendMessage's status, when one was sent (0x102 = STATUS_TIMEOUT). */
  sendStatus?: number;
  /** The agent's ReasonCode, when it replied with a valid verdict. */
  reasonCode?: number;
}

/** One connection (FS_CLIENT). */
interface FsClient {
  readonly port: ClientPort;
  readonly processId: number;
  readonly flags: number;
  readonly privileged: boolean;
  linked: boolean;
  refs: number;
  /** Resolves once the simulator completed the connection (or it ended). */
  readonly ready: Promise<void>;
  markReady: () => void;
}

interface Counters {
  scanRequests: bigint;
  scansAllowed: bigint;
  scansBlocked: bigint;
  scanTimeouts: bigint;
  scanErrors: bigint;
  noAgentOpens: bigint;
  failOpenAllowed: bigint;
  failClosedDenied: bigint;
  excludedOpens: bigint;
  probeMessages: bigint;
  connectionsTotal: bigint;
}

/** EX_RUNDOWN_REF: scans and commands in progress; teardown waits for them. */
class Rundown {
  private active = 0;
  private closed = false;
  private drained: (() => void) | undefined;

  acquire(): boolean {
    if (this.closed) return false;
    this.active++;
    return true;
  }

  release(): void {
    this.active--;
    if (this.active === 0) this.drained?.();
  }

  waitForRelease(): Promise<void> {
    this.closed = true;
    if (this.active === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.drained = resolve));
  }
}

type AdminCheck = (identity: PeerIdentity) => boolean;

/** The simulator's administrator rule (SimulatorOptions.admins), the twin's FsCallerIsAdmin. */
function simulatorAdminCheck(sim: FilterManagerSimulator): AdminCheck {
  return (identity) => sim.isAdministrator(identity);
}

function parseGid(value: unknown): number | undefined | 'invalid' {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : 'invalid';
}

/**
 * RtlUpcaseUnicodeChar per UTF-16 unit: a surrogate half stays as it is (so a supplementary character is not
 * upcased), and so does a unit whose uppercase is longer (JS toUpperCase('ß') is 'SS').
 */
function upcase(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charAt(i);
    const up = unit.toUpperCase();
    out += up.length === 1 ? up : unit;
  }
  return out;
}

/** FltParseFileNameInformation's Extension: after the last '.' of the final component, stream name excluded. */
export function extensionOf(path: string): string {
  const slash = Math.max(path.lastIndexOf('\\'), path.lastIndexOf('/'));
  let component = path.slice(slash + 1);
  const colon = component.indexOf(':');
  if (colon >= 0) component = component.slice(0, colon);
  const dot = component.lastIndexOf('.');
  return dot < 0 ? '' : component.slice(dot + 1);
}

/** The sample minifilter on a FilterManagerSimulator (DriverEntry -> FsInitialize). */
export class SampleMinifilter {
  readonly filter: SimulatedFilter;
  readonly port: ServerPort;
  /** The effective PortGroupSid stand-in, when valid. */
  readonly portGroupGid: number | undefined;

  private readonly sim: FilterManagerSimulator;
  private readonly isAdmin: AdminCheck;
  private readonly log: (line: string) => void;
  private readonly clients: FsClient[] = []; // FsGlobals.Clients, in connect order
  private readonly rundown = new Rundown();
  private readonly counters: Counters = {
    scanRequests: 0n,
    scansAllowed: 0n,
    scansBlocked: 0n,
    scanTimeouts: 0n,
    scanErrors: 0n,
    noAgentOpens: 0n,
    failOpenAllowed: 0n,
    failClosedDenied: 0n,
    excludedOpens: 0n,
    probeMessages: 0n,
    connectionsTotal: 0n,
  };
  private readonly fileIds = new Map<string, bigint>();
  private config: Buffer; // FLTSAMPLE_CONFIG, byte for byte
  private roundRobin = 0;
  private nextScanId = 0n;
  private poolAllocations = 0n;
  private poolBytes = 0n;
  private unloading: Promise<void> | undefined;
  private readonly onSimConnect = (client: ClientPort): void => {
    if (client.serverPort !== this.port) return;
    (client.cookie as FsClient | undefined)?.markReady();
  };

  constructor(sim: FilterManagerSimulator, options: SampleMinifilterOptions = {}) {
    this.sim = sim;
    this.isAdmin = simulatorAdminCheck(sim);
    const log = options.log;
    this.log = (line) => {
      try {
        if (log) log(line);
        else process.stderr.write(`fltsample: ${line}\n`);
      } catch {
        // a failing logger must not fail the driver
      }
    };
    this.config = P.encodeConfig(P.defaultConfig()); // FsConfigSetDefaults

    // FsLoadPortGroupSid: a bad value is logged and ignored; the port stays admin-only.
    const gid = parseGid(options.portGroupGid);
    if (gid === 'invalid') {
      this.log(`PortGroupSid ${String(options.portGroupGid)} is not a gid; the port stays admin-only`);
      this.portGroupGid = undefined;
    } else {
      this.portGroupGid = gid;
      if (gid !== undefined) this.track(GROUP_SID_BYTES, true);
    }

    this.filter = sim.registerFilter(options.filterName ?? P.FILTER_NAME, { altitude: P.SAMPLE_ALTITUDE });
    try {
      // FsPortCreate: default security = admins; with the group, one more "ACE" for it.
      this.port = this.filter.createCommunicationPort(P.PORT_NAME, {
        maxConnections: P.MAX_CONNECTIONS,
        security: this.portGroupGid === undefined ? 'admins' : { allowGids: [this.portGroupGid], includeAdmins: true },
        connect: (client, context) => this.portConnect(client, context),
        disconnect: (client) => this.portDisconnect(client),
        message: (client, input, outputCapacity) => this.portMessage(client, input, outputCapacity),
      });
    } catch (err) {
      void this.filter.unload();
      throw err;
    }
    sim.on('connect', this.onSimConnect);
  }

  /** True once unload() was called. */
  get unloaded(): boolean {
    return this.unloading !== undefined;
  }

  /** The configuration in effect (what GET_CONFIG returns). */
  get configuration(): P.SampleConfig {
    return P.decodeConfig(this.config);
  }

  /**
   * Replaces the configuration from the kernel side, validated as SET_CONFIG validates it (NtStatusError
   * STATUS_INVALID_PARAMETER otherwise). For tests and demos; agents use SET_CONFIG.
   */
  configure(config: P.SampleConfig): void {
    const raw = P.encodeConfig(config);
    const status = validateConfig(raw);
    if (status !== NtStatus.STATUS_SUCCESS) throw new NtStatusError(status, 'invalid configuration');
    this.config = raw;
  }

  /** FsFillStats: what GET_STATS returns. */
  stats(): P.Stats {
    const c = this.counters;
    return {
      protocolVersion: P.PROTOCOL_VERSION,
      reserved0: 0,
      structSize: P.STATS.size,
      scanRequests: c.scanRequests,
      scansAllowed: c.scansAllowed,
      scansBlocked: c.scansBlocked,
      scanTimeouts: c.scanTimeouts,
      scanErrors: c.scanErrors,
      noAgentOpens: c.noAgentOpens,
      failOpenAllowed: c.failOpenAllowed,
      failClosedDenied: c.failClosedDenied,
      excludedOpens: c.excludedOpens,
      probeMessages: c.probeMessages,
      connectionsTotal: c.connectionsTotal,
      connectionsCurrent: this.clients.length,
      scannerConnections: this.scannerCount(),
      poolAllocations: this.poolAllocations,
      poolBytes: this.poolBytes,
    };
  }

  /**
   * FsTeardown (fltmc unload): stop new work, close the server port, close every client port (waiting sends
   * end at once with STATUS_PORT_DISCONNECTED), wait for scans and commands in progress, unregister the
   * filter, free what is left. Idempotent. Load the driver again with a new SampleMinifilter.
   */
  unload(): Promise<void> {
    this.unloading ??= (async () => {
      this.port.close(); // FsPortCloseServer
      for (const client of [...this.clients]) client.port.close(); // FsPortDisconnectAll
      await this.rundown.waitForRelease();
      await this.filter.unload(); // FltUnregisterFilter: disconnect callbacks have run when it resolves
      // FsPortReleaseAllClients: connections whose disconnect callback never ran.
      for (const client of this.clients.splice(0)) {
        client.linked = false;
        this.dereference(client);
      }
      this.sim.off('connect', this.onSimConnect);
      if (this.portGroupGid !== undefined) this.track(GROUP_SID_BYTES, false);
      if (this.poolAllocations !== 0n || this.poolBytes !== 0n) {
        this.log(`leaked ${this.poolAllocations} pool allocations (${this.poolBytes} bytes)`);
      }
    })();
    return this.unloading;
  }

  // ---- file opens (filter.c FsPreCreate / FsPostCreate, scan.c FsScanOpenedFile) ----------------------------

  /** Simulates a file open by `processId` and decides it as the driver's create callbacks would. */
  async openFile(options: OpenFileOptions): Promise<OpenFileResult> {
    checkOpenOptions(options);
    // The file's id exists whether or not the driver asks for it: given out at the first open of a path, as the
    // kernel harness does, so that scanned and unscanned opens number files alike.
    const fileId = options.fileId ?? this.fileIdOf(options.path);
    const allow = (reason: OpenReason): OpenFileResult => ({ allowed: true, status: 0, reason, scanned: false });

    // FsPreCreate
    if (options.requestorMode === 'kernel') return allow('kernel-mode');
    if (options.directory === true) return allow('directory');
    const desired = options.desiredAccess ?? FileAccess.READ_DATA;
    if ((desired & DATA_ACCESS) === 0) return allow('no-data-access');
    if (this.isExcludedProcess(options.processId)) {
      this.counters.excludedOpens++;
      return allow('excluded-process');
    }

    // FsPostCreate
    if (!this.rundown.acquire()) return allow('unloading');
    try {
      const result = await this.scanOpenedFile(options, fileId);
      return result.deny ? { ...result.result, allowed: false, status: NtStatus.STATUS_ACCESS_DENIED } : result.result;
    } finally {
      this.rundown.release();
    }
  }

  private async scanOpenedFile(
    options: OpenFileOptions,
    fileId: bigint,
  ): Promise<{ deny: boolean; result: OpenFileResult }> {
    // Configuration snapshot, taken once (FS_SCAN_POLICY).
    const inScope = configMatchesExtension(this.config, extensionOf(options.path));
    const flags = this.config.readUInt32LE(0);
    const replyTimeoutMs = this.config.readUInt32LE(4);
    const contentBytes = this.config.readUInt32LE(8);
    const done = (deny: boolean, reason: OpenReason, extra: Partial<OpenFileResult> = {}) => ({
      deny,
      result: { allowed: true, status: 0, reason, scanned: false, ...extra },
    });
    const failurePolicyDenies = (): boolean => {
      if ((flags & P.ConfigFlag.FAIL_CLOSED) !== 0) {
        this.counters.failClosedDenied++;
        return true;
      }
      this.counters.failOpenAllowed++;
      return false;
    };

    if (!inScope) return done(false, 'not-in-scope');
    // FileStandardInformation.Directory: a FILE_OPEN without FILE_DIRECTORY_FILE can still open a directory.
    if (options.openedDirectory === true) return done(false, 'directory');

    const client = this.referenceNextScanner();
    if (client === undefined) {
      this.counters.noAgentOpens++;
      return done(failurePolicyDenies(), 'no-agent');
    }
    let requestTracked = false;
    try {
      this.track(P.SCAN_REQUEST.size, true);
      requestTracked = true;
      const content = Buffer.from(options.content.buffer, options.content.byteOffset, options.content.byteLength);
      const fileSize = BigInt(content.length);
      let requestFlags = 0;
      let path = options.path;
      if (path.length > P.MAX_PATH_CHARS - 1) {
        path = path.slice(0, P.MAX_PATH_CHARS - 1);
        requestFlags |= P.ScanFlag.PATH_TRUNCATED;
      }
      let contentLength = 0;
      if (contentBytes !== 0 && fileSize > 0n) {
        // FsReadHead: a sector-rounded buffer, allocated and freed around the read.
        const length = Math.ceil(contentBytes / FS_FALLBACK_SECTOR_SIZE) * FS_FALLBACK_SECTOR_SIZE;
        this.track(length, true);
        if (options.readFails === true) requestFlags |= P.ScanFlag.READ_FAILED;
        else contentLength = Math.min(content.length, contentBytes);
        this.track(length, false);
      }
      if (fileSize > BigInt(contentLength)) requestFlags |= P.ScanFlag.CONTENT_TRUNCATED;
      const scanId = ++this.nextScanId;
      // Build the struct by hand: a path may hold a NUL that the utf16() codec rejects, and the driver copies it.
      const request = Buffer.alloc(P.SCAN_REQUEST.size);
      request.writeUInt16LE(P.PROTOCOL_VERSION, 0);
      request.writeUInt16LE(P.MessageType.SCAN_REQUEST, 2);
      request.writeUInt32LE(requestFlags, 4);
      request.writeBigUInt64LE(scanId, 8);
      request.writeBigUInt64LE(fileId, 16);
      request.writeBigInt64LE(fileSize, 24);
      request.writeUInt32LE(options.processId >>> 0, 32);
      request.writeUInt32LE(path.length, 36);
      request.writeUInt32LE(contentLength, 40);
      request.write(path, P.SCAN_REQUEST.offsetOf('path'), path.length * 2, 'utf16le');
      content.copy(request, P.SCAN_REQUEST.offsetOf('content'), 0, contentLength);

      this.counters.scanRequests++;
      const sent = await this.sendMessage(client, request, P.SCAN_REPLY.size, replyTimeoutMs);
      const extra: Partial<OpenFileResult> = { scanned: true, scanId, sendStatus: sent.status };

      // FsEvaluateReply. STATUS_TIMEOUT is a success code: tested first, explicitly.
      if (sent.status === NtStatus.STATUS_TIMEOUT) {
        this.counters.scanTimeouts++;
        return done(failurePolicyDenies(), 'timeout', extra);
      }
      if (
        sent.status !== NtStatus.STATUS_SUCCESS ||
        sent.reply === undefined ||
        sent.reply.length < P.SCAN_REPLY.size
      ) {
        this.counters.scanErrors++;
        return done(failurePolicyDenies(), 'scan-error', extra);
      }
      const reply = P.SCAN_REPLY.decode(sent.reply);
      switch (reply.verdict) {
        case P.Verdict.ALLOW:
          this.counters.scansAllowed++;
          return done(false, 'verdict-allow', { ...extra, reasonCode: reply.reasonCode });
        case P.Verdict.BLOCK:
          this.counters.scansBlocked++;
          return done(true, 'verdict-block', { ...extra, reasonCode: reply.reasonCode });
        default:
          this.counters.scanErrors++;
          return done(failurePolicyDenies(), 'scan-error', extra);
      }
    } finally {
      if (requestTracked) this.track(P.SCAN_REQUEST.size, false);
      this.dereference(client);
    }
  }

  /**
   * FltSendMessage with a relative timeout that covers waiting for a reader and for the reply. A connection
   * whose connect callback returned but which the simulator has not completed yet is waited for within the same
   * timeout (the driver's client port takes messages as soon as ConnectNotify succeeded).
   */
  private async sendMessage(
    client: FsClient,
    data: Buffer,
    replyLength: number | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; reply?: Buffer }> {
    const deadline = Date.now() + timeoutMs;
    if (!client.port.connected && client.linked) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const outcome = await Promise.race([client.ready.then(() => 'ready' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') return { status: NtStatus.STATUS_TIMEOUT };
    }
    const remaining = Math.max(0, deadline - Date.now());
    const result = await this.filter.sendMessage(client.port, data, {
      ...(replyLength === undefined ? {} : { replyLength }),
      timeout: remaining,
    });
    return result.reply === undefined ? { status: result.status } : { status: result.status, reply: result.reply };
  }

  // ---- connections (port.c) ------------------------------------------------------------------------------

  /** FsPortConnect. */
  private portConnect(client: ClientPort, context: Buffer): FsClient {
    let version = 0;
    let flags = 0;
    let requestedPid = 0;
    if (context.length !== 0) {
      if (context.length !== P.CONNECT_CONTEXT.size) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
      const ctx = P.CONNECT_CONTEXT.decode(context);
      version = ctx.protocolVersion;
      if (version !== P.PROTOCOL_VERSION) throw new NtStatusError(STATUS_REVISION_MISMATCH);
      if ((ctx.flags & ~P.CONNECT_VALID_FLAGS) !== 0 || ctx.reserved0 !== 0 || ctx.reserved1 !== 0) {
        throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
      }
      flags = ctx.flags;
      requestedPid = ctx.processId;
    }

    // The process id comes from what the kernel observes, never from the caller.
    const processId = client.processId ?? 0;
    if (requestedPid !== 0 && requestedPid !== processId) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);

    // FsCallerIsAdmin: the simulator's administrators (see the module comment).
    const privileged = this.isAdmin(client.identity);
    const scanner = (flags & P.ConnectFlag.SCANNER) !== 0;
    if (scanner && !privileged) throw new NtStatusError(NtStatus.STATUS_ACCESS_DENIED);

    this.track(FS_CLIENT_BYTES, true);
    if (this.unloading !== undefined) {
      this.track(FS_CLIENT_BYTES, false);
      throw new NtStatusError(NtStatus.STATUS_DELETE_PENDING);
    }
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const fsClient: FsClient = { port: client, processId, flags, privileged, linked: true, refs: 1, ready, markReady };
    this.clients.push(fsClient);
    this.counters.connectionsTotal++;
    return fsClient;
  }

  /** FsPortDisconnect. */
  private portDisconnect(client: ClientPort): void {
    const fsClient = client.cookie as FsClient | undefined;
    if (fsClient === undefined) return;
    fsClient.markReady(); // senders waiting for the connection see it gone
    if (fsClient.linked) {
      fsClient.linked = false;
      const i = this.clients.indexOf(fsClient);
      if (i >= 0) this.clients.splice(i, 1);
      this.dereference(fsClient);
    }
  }

  /** FsReferenceNextScanner: round-robin over the scanner connections, in connect order. */
  private referenceNextScanner(): FsClient | undefined {
    if (this.unloading !== undefined) return undefined;
    const count = this.scannerCount();
    if (count === 0) return undefined;
    this.roundRobin = (this.roundRobin + 1) >>> 0; // InterlockedIncrement on a ULONG
    const target = this.roundRobin % count;
    let chosen: FsClient | undefined;
    let index = 0;
    for (const client of this.clients) {
      if ((client.flags & P.ConnectFlag.SCANNER) === 0) continue;
      if (chosen === undefined || index === target) chosen = client;
      if (index === target) break;
      index++;
    }
    if (chosen !== undefined) chosen.refs++;
    return chosen;
  }

  private dereference(client: FsClient): void {
    if (--client.refs === 0) this.track(FS_CLIENT_BYTES, false);
  }

  /** FsIsExcludedProcess. */
  private isExcludedProcess(processId: number): boolean {
    return this.clients.some((c) => (c.flags & P.ConnectFlag.SCANNER) !== 0 && c.processId === processId);
  }

  private scannerCount(): number {
    return this.clients.filter((c) => (c.flags & P.ConnectFlag.SCANNER) !== 0).length;
  }

  // ---- commands (port.c FsPortMessage / FsDispatchCommand) ---------------------------------------------

  /** FsPortMessage. Errors are thrown as NtStatusError; the simulator turns them into the sender's HRESULT. */
  private async portMessage(client: ClientPort, input: Buffer, outputCapacity: number): Promise<Buffer | undefined> {
    const fsClient = client.cookie as FsClient | undefined;
    if (fsClient === undefined) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
    if (input.length < P.COMMAND_HEADER.size || input.length > P.COMMAND_HEADER.size + P.MAX_ECHO_BYTES) {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
    }
    if (!this.rundown.acquire()) throw new NtStatusError(NtStatus.STATUS_DELETE_PENDING);
    // The captured copy of the input, counted like the driver's FS_TAG_COMMAND allocation.
    this.track(input.length, true);
    try {
      const output = await this.dispatchCommand(fsClient, Buffer.from(input), outputCapacity);
      return output.length === 0 ? undefined : output;
    } finally {
      this.track(input.length, false);
      this.rundown.release();
    }
  }

  private async dispatchCommand(client: FsClient, input: Buffer, outputCapacity: number): Promise<Buffer> {
    const header = P.COMMAND_HEADER.decode(input);
    const body = input.subarray(P.COMMAND_HEADER.size);
    if (header.protocolVersion !== P.PROTOCOL_VERSION) throw new NtStatusError(STATUS_REVISION_MISMATCH);
    if (header.reserved !== 0) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);

    switch (header.command) {
      case P.Command.GET_STATS:
        if (body.length !== 0) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        return copyOutput(outputCapacity, P.STATS.encode(this.stats()));

      case P.Command.GET_CONFIG:
        if (body.length !== 0) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        return copyOutput(outputCapacity, Buffer.from(this.config));

      case P.Command.SET_CONFIG: {
        if (!client.privileged) throw new NtStatusError(NtStatus.STATUS_ACCESS_DENIED);
        if (body.length !== P.CONFIG.size) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        // The output is optional; if asked for, its size is checked before anything changes.
        if (outputCapacity !== 0 && outputCapacity < P.CONFIG.size)
          throw new NtStatusError(NtStatus.STATUS_BUFFER_TOO_SMALL);
        const config = Buffer.from(body);
        const status = validateConfig(config);
        if (status !== NtStatus.STATUS_SUCCESS) throw new NtStatusError(status);
        this.config = config;
        return outputCapacity === 0 ? Buffer.alloc(0) : copyOutput(outputCapacity, Buffer.from(config));
      }

      case P.Command.ECHO:
        if (body.length > P.MAX_ECHO_BYTES) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        return copyOutput(outputCapacity, Buffer.from(body));

      case P.Command.PROBE: {
        if (body.length !== P.PROBE_REQUEST.size) throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        const request = P.PROBE_REQUEST.decode(body);
        if (
          request.count === 0 ||
          request.count > P.MAX_PROBE_COUNT ||
          request.contentBytes > P.MAX_CONTENT_BYTES ||
          request.timeoutMs === 0 ||
          request.timeoutMs > P.MAX_PROBE_TIMEOUT_MS ||
          (request.flags & ~P.PROBE_VALID_FLAGS) !== 0
        ) {
          throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
        }
        // Checked first so that a long probe's result is not lost to a small buffer.
        if (outputCapacity < P.PROBE_RESULT.size) throw new NtStatusError(NtStatus.STATUS_BUFFER_TOO_SMALL);
        const result = await this.runProbe(client, request);
        return copyOutput(outputCapacity, P.PROBE_RESULT.encode(result));
      }

      default:
        throw new NtStatusError(NtStatus.STATUS_INVALID_DEVICE_REQUEST);
    }
  }

  /** FsRunProbe: synthetic messages to the caller's own connection, timed here (100 ns units). */
  private async runProbe(client: FsClient, request: P.ProbeRequest): Promise<P.ProbeResult> {
    const noReply = (request.flags & P.ProbeFlag.NO_REPLY) !== 0;
    const result: P.ProbeResult = {
      sent: 0,
      replied: 0,
      timedOut: 0,
      failed: 0,
      lastStatus: 0,
      reserved0: 0,
      elapsedTime: 0n,
      minRoundTrip: 0n,
      maxRoundTrip: 0n,
    };
    this.track(P.SCAN_REQUEST.size, true);
    const content = Buffer.alloc(request.contentBytes);
    for (let i = 0; i < request.contentBytes; i++) content[i] = i & 0xff;
    const template = {
      protocolVersion: P.PROTOCOL_VERSION,
      messageType: P.MessageType.PROBE,
      flags: noReply ? P.ScanFlag.NO_REPLY : 0,
      fileId: 0n,
      fileSize: BigInt(request.contentBytes),
      processId: 0,
      pathLength: PROBE_PATH.length,
      contentLength: request.contentBytes,
      reserved0: 0,
      path: PROBE_PATH,
      content,
    };
    const ticks = (): bigint => process.hrtime.bigint() / 100n;
    const start = ticks();
    try {
      for (let i = 0; i < request.count; i++) {
        if (this.unloading !== undefined) {
          result.failed++;
          result.lastStatus = NtStatus.STATUS_DELETE_PENDING | 0;
          break;
        }
        const message = P.SCAN_REQUEST.encode({ ...template, scanId: ++this.nextScanId });
        const before = ticks();
        const sent = await this.sendMessage(
          client,
          message,
          noReply ? undefined : P.SCAN_REPLY.size,
          request.timeoutMs,
        );
        const after = ticks();
        this.counters.probeMessages++;
        // Stop at the first message that did not go through, timeouts included.
        if (sent.status === NtStatus.STATUS_TIMEOUT) {
          result.timedOut++;
          result.lastStatus = sent.status | 0;
          break;
        }
        if (sent.status !== NtStatus.STATUS_SUCCESS) {
          result.failed++;
          result.lastStatus = sent.status | 0;
          break;
        }
        result.sent++;
        if (!noReply) {
          const verdict =
            sent.reply !== undefined && sent.reply.length >= P.SCAN_REPLY.size ? sent.reply.readUInt32LE(0) : 0;
          if (verdict === P.Verdict.ALLOW || verdict === P.Verdict.BLOCK) result.replied++;
          else result.failed++;
        }
        const roundTrip = after - before;
        if (result.minRoundTrip === 0n || roundTrip < result.minRoundTrip) result.minRoundTrip = roundTrip;
        if (roundTrip > result.maxRoundTrip) result.maxRoundTrip = roundTrip;
      }
    } finally {
      this.track(P.SCAN_REQUEST.size, false);
    }
    result.elapsedTime = ticks() - start;
    return result;
  }

  // ---- support.c -------------------------------------------------------------------------------------------

  /** FsTrackAllocation. */
  private track(size: number, allocated: boolean): void {
    if (allocated) {
      this.poolAllocations++;
      this.poolBytes += BigInt(size);
    } else {
      this.poolAllocations--;
      this.poolBytes -= BigInt(size);
    }
  }

  private fileIdOf(path: string): bigint {
    let id = this.fileIds.get(path);
    if (id === undefined) {
      id = 0x10000n + BigInt(this.fileIds.size);
      this.fileIds.set(path, id);
    }
    return id;
  }
}

const PROBE_PATH = '\\FltmgrSample\\probe';

/** FsCopyOutput. */
function copyOutput(outputCapacity: number, source: Buffer): Buffer {
  if (source.length === 0) return source;
  if (outputCapacity < source.length) throw new NtStatusError(NtStatus.STATUS_BUFFER_TOO_SMALL);
  return source;
}

const EXTENSIONS_OFFSET = 16;

function extensionUnits(config: Buffer, index: number): number[] {
  const units: number[] = [];
  const base = EXTENSIONS_OFFSET + index * P.MAX_EXTENSION_CHARS * 2;
  for (let j = 0; j < P.MAX_EXTENSION_CHARS; j++) units.push(config.readUInt16LE(base + j * 2));
  return units;
}

/** FsConfigValidate: STATUS_SUCCESS or STATUS_INVALID_PARAMETER. */
export function validateConfig(config: Buffer): number {
  const invalid = NtStatus.STATUS_INVALID_PARAMETER;
  if (config.length !== P.CONFIG.size) return invalid;
  const flags = config.readUInt32LE(0);
  const replyTimeoutMs = config.readUInt32LE(4);
  const contentBytes = config.readUInt32LE(8);
  const extensionCount = config.readUInt32LE(12);
  if (
    (flags & ~P.CONFIG_VALID_FLAGS) !== 0 ||
    replyTimeoutMs < P.MIN_REPLY_TIMEOUT_MS ||
    replyTimeoutMs > P.MAX_REPLY_TIMEOUT_MS ||
    contentBytes > P.MAX_CONTENT_BYTES ||
    extensionCount > P.MAX_EXTENSIONS
  ) {
    return invalid;
  }
  const DOT = 0x2e;
  const BACKSLASH = 0x5c;
  for (let i = 0; i < P.MAX_EXTENSIONS; i++) {
    const ext = extensionUnits(config, i);
    let length = 0;
    while (length < P.MAX_EXTENSION_CHARS && ext[length] !== 0) {
      if (ext[length] === DOT || ext[length] === BACKSLASH) return invalid;
      length++;
    }
    if (i < extensionCount) {
      // Used entries: non-empty and NUL-terminated inside the array.
      if (length === 0 || length === P.MAX_EXTENSION_CHARS) return invalid;
    } else if (ext.some((unit) => unit !== 0)) {
      // Unused entries are all zero, so GET_CONFIG round-trips byte for byte.
      return invalid;
    }
  }
  return NtStatus.STATUS_SUCCESS;
}

/** FsConfigMatchesExtension (case-insensitive, RtlEqualUnicodeString). */
function configMatchesExtension(config: Buffer, extension: string): boolean {
  if ((config.readUInt32LE(0) & P.ConfigFlag.SCAN_ALL_FILES) !== 0) return true;
  if (extension.length === 0) return false;
  const wanted = upcase(extension);
  const count = Math.min(config.readUInt32LE(12), P.MAX_EXTENSIONS);
  for (let i = 0; i < count; i++) {
    const units = extensionUnits(config, i);
    const end = units.indexOf(0);
    const candidate = String.fromCharCode(...(end < 0 ? units : units.slice(0, end)));
    if (upcase(candidate) === wanted) return true;
  }
  return false;
}

function checkOpenOptions(options: OpenFileOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('openFile: options must be an object');
  if (typeof options.path !== 'string' || options.path.length === 0)
    throw new TypeError('openFile: path must be a non-empty string');
  if (!(options.content instanceof Uint8Array)) throw new TypeError('openFile: content must be a Uint8Array');
  if (!Number.isInteger(options.processId) || options.processId < 0 || options.processId > 0xffffffff) {
    throw new RangeError('openFile: processId must be a 32-bit process id');
  }
}

/**
 * For the simulator CLI and worker: loads the twin (DriverEntry). Options: portGroupGid (number or decimal
 * text), filterName. Returns the SimulatedFilter; unloading it through the simulator skips the twin's
 * teardown bookkeeping, which only matters for in-process use (keep the SampleMinifilter there).
 */
export function register(sim: FilterManagerSimulator, options: Record<string, unknown> = {}): SimulatedFilter {
  const twinOptions: SampleMinifilterOptions = {};
  const gid = options['portGroupGid'];
  if (typeof gid === 'number' || typeof gid === 'string') twinOptions.portGroupGid = gid;
  const name = options['filterName'];
  if (typeof name === 'string' && name.length > 0) twinOptions.filterName = name;
  const log = options['log'];
  if (typeof log === 'function') twinOptions.log = log as (line: string) => void;
  return new SampleMinifilter(sim, twinOptions).filter;
}
