// The Filter Manager simulator: owns the object namespace (filters, port names), accepts streams on a local
// endpoint and speaks docs/wire-protocol.md on each of them.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { socketPeerCredentials } from '../binding';
import { HResult, NtStatus, Win32, hex32, hresultFromNtStatus, hresultFromWin32 } from '../status';
import { ClientPortImpl, type ServerPortImpl, SimulatedFilter, type SimulatorCore, type StreamLink } from './filter';
import { MAX_NAME_UNITS, ManagementModel, nameKey, validateFilterOptions } from './model';
import {
  DEFAULT_SIMULATOR_LIMITS,
  ManagementError,
  NtStatusError,
  type ClientPort,
  type FilterSnapshot,
  type InstanceSnapshot,
  type LoadableFilter,
  type PeerIdentity,
  type PortSnapshot,
  type RegisterFilterOptions,
  type SimulatedVolume,
  type SimulatorLimits,
  type SimulatorOptions,
  type StreamStats,
} from './types';
import {
  FrameDecoder,
  FrameType,
  MAX_FIRST_FRAME_PAYLOAD,
  MAX_OUTSTANDING_REQUESTS,
  MAX_PAYLOAD,
  MAX_PENDING_GETS,
  MANAGE_ARG_COUNTS,
  MANAGE_VOLUME_DETACHED,
  ManageKind,
  ManageOp,
  ProtocolError,
  encodeFilterRecord,
  encodeFrame,
  encodeFrameHeader,
  encodeI32,
  encodeInstanceRecord,
  encodeManageResult,
  encodeNameRecord,
  encodePortRecord,
  encodeSendResult,
  encodeVolumeRecord,
  formatEndpoint,
  parseCancel,
  parseConnect,
  parseGet,
  parseManage,
  parseReply,
  parseSend,
  type ConnectPayload,
  type Frame,
  type ManagePayload,
} from './wire';

/** The 'protocol-error' event: a stream was closed for breaking the protocol or a limit. */
export interface ProtocolErrorEvent {
  /** What the peer did. */
  reason: string;
  /** The connection, when the stream had one. */
  client?: ClientPort;
}

/** The events of a {@link FilterManagerSimulator} and their arguments. */
export interface SimulatorEventMap {
  /** A stream was closed for breaking the protocol or a limit. */
  'protocol-error': [ProtocolErrorEvent];
  /** A connection was established (ConnectNotify succeeded and the client has its handle). */
  connect: [ClientPort];
  /** A connection ended, whichever side ended it (after DisconnectNotify was called). */
  disconnect: [ClientPort];
}

/** Where {@link FilterManagerSimulator.listen} listens. */
export type ListenTarget =
  | {
      /** Unix socket path (or a `\\.\pipe\` name on Windows); default: a fresh private one. */
      path?: string;
    }
  | {
      /** TCP on 127.0.0.1, with a per-run secret in the endpoint string. */
      tcp: {
        /** Only 127.0.0.1. */
        host?: '127.0.0.1';
        /** Default 0: any free port. */
        port?: number;
      };
    };

type Transport = 'unix' | 'tcp' | 'pipe';

const FLT_PORT_FLAG_SYNC_HANDLE = 0x1;
const E_ACCESSDENIED = hresultFromWin32(Win32.ERROR_ACCESS_DENIED);
const STREAM_END_GRACE_MS = 2000;
const CLOSE_GRACE_MS = 1000;
const MAX_BACKLOG = MAX_PENDING_GETS + MAX_OUTSTANDING_REQUESTS + 16;
/** Frames with a payload up to this size are written as one buffer; larger payloads are not copied. */
const SMALL_FRAME_PAYLOAD = 4096;
const HR_NO_SYSTEM_RESOURCES = hresultFromNtStatus(NtStatus.STATUS_INSUFFICIENT_RESOURCES);
const HR_PRIVILEGE_NOT_HELD = hresultFromWin32(Win32.ERROR_PRIVILEGE_NOT_HELD);
const EMPTY = Buffer.alloc(0);

type Limits = Readonly<Required<SimulatorLimits>>;

function resolveLimits(given: SimulatorLimits | undefined): Limits {
  if (given !== undefined && (typeof given !== 'object' || given === null)) {
    throw new TypeError('limits must be an object');
  }
  const out: Required<SimulatorLimits> = { ...DEFAULT_SIMULATOR_LIMITS };
  const g = given ?? {};
  const integer = (key: keyof SimulatorLimits, min: number): void => {
    const v = g[key];
    if (v === undefined) return;
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`limits.${key} must be an integer >= ${min}`);
    out[key] = v;
  };
  const t = g.handshakeTimeoutMs;
  if (t !== undefined) {
    if (t !== Infinity && (!Number.isInteger(t) || t < 1 || t > 0x7fffffff)) {
      throw new RangeError('limits.handshakeTimeoutMs must be an integer 1..2147483647, or Infinity');
    }
    out.handshakeTimeoutMs = t;
  }
  integer('maxStreams', 1);
  integer('maxSendBytes', 0);
  integer('maxQueuedMessageBytes', 0);
  integer('writeHighWaterMark', 0);
  integer('maxUnsentBytes', 1);
  if (out.maxUnsentBytes < out.writeHighWaterMark) {
    throw new RangeError('limits.maxUnsentBytes must be at least limits.writeHighWaterMark');
  }
  return Object.freeze(out);
}

class Stream implements StreamLink {
  state: 'new' | 'connecting' | 'established' | 'managing' | 'closed' = 'new';
  client: ClientPortImpl | undefined;
  // The first frame may be no larger than the largest CONNECT or MANAGE: refused on its header, never buffered.
  readonly decoder = new FrameDecoder('client-to-server', { firstFrameMaxPayload: MAX_FIRST_FRAME_PAYLOAD });
  readonly backlog: Frame[] = [];
  handshakeTimer: NodeJS.Timeout | undefined;
  outstandingSends = 0;
  sendBytes = 0;
  /** Whether the current run of SENDs refused for maxSendBytes has been logged. */
  sendRefusalLogged = false;
  /** Whether the simulator stopped reading the socket (backpressure). */
  readPaused = false;
  private ending = false;
  /** Unsent bytes at or above which the stream is congested. */
  private readonly mark: number;

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    readonly transport: Transport,
    readonly identity: PeerIdentity,
    private readonly limits: Limits,
    private readonly onOverflow: (st: Stream, unsent: number) => void,
  ) {
    // Never below the socket's own high-water mark: a write that reaches the mark then returned false, so
    // 'drain' is sure to follow (Node emits it only after such a write).
    this.mark = Math.max(limits.writeHighWaterMark, socket.writableHighWaterMark);
  }

  get open(): boolean {
    return !this.ending && !this.socket.destroyed && this.socket.writable;
  }

  /** The peer has not taken writeHighWaterMark bytes yet: stop reading its requests and feeding its gets. */
  get congested(): boolean {
    return this.socket.writableLength >= this.mark;
  }

  send(type: number, id: number, payload: Buffer, tail?: Buffer): void {
    if (!this.open) return;
    const socket = this.socket;
    const length = payload.length + (tail?.length ?? 0);
    if (length <= SMALL_FRAME_PAYLOAD) {
      socket.write(encodeFrame(type, id, tail ? Buffer.concat([payload, tail]) : payload));
    } else {
      // Header and payload go out in one writev, without copying the payload into a frame buffer.
      socket.cork();
      socket.write(encodeFrameHeader(type, id, length));
      if (payload.length > 0) socket.write(payload);
      if (tail && tail.length > 0) socket.write(tail);
      socket.uncork();
    }
    const unsent = socket.writableLength;
    if (unsent > this.limits.maxUnsentBytes) this.onOverflow(this, unsent);
    else if (unsent >= this.mark) this.updateFlow();
  }

  /**
   * Reads while the peer keeps up with what it is sent (paused otherwise, until 'drain'), and, while
   * ConnectNotify runs, only until a frame is held for after it (so the backlog is one read's worth at most).
   */
  updateFlow(): void {
    if (this.socket.destroyed) return;
    const pause = this.congested || (this.state === 'connecting' && this.backlog.length > 0);
    if (pause === this.readPaused) return;
    this.readPaused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
  }

  end(): void {
    if (this.ending) return;
    this.ending = true;
    if (this.socket.destroyed) return;
    this.socket.end();
    // A client that never closes its side must not keep the stream (and the process) alive.
    setTimeout(() => this.socket.destroy(), STREAM_END_GRACE_MS).unref();
  }
}

interface Credentials {
  uid: number | undefined;
  gid: number | undefined;
  owner: boolean;
}

function defaultPeerCredentials(socket: net.Socket): PeerIdentity | undefined {
  const c = socketPeerCredentials(socket);
  if (c === undefined) return undefined;
  const id: PeerIdentity = { uid: c.uid, gid: c.gid, via: 'unix' };
  if (c.pid !== undefined && c.pid > 0) id.pid = c.pid;
  return id;
}

// Socket files of simulators still listening when the process exits without close(): removed on 'exit'.
const liveCleanups = new Set<() => void>();
let exitHookInstalled = false;
function trackCleanup(cleanup: () => void): void {
  liveCleanups.add(cleanup);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveCleanups) c();
  });
}

/** FLTMGR_SIM_LOG=1: log connects and disconnects, to standard error unless a `log` function is given. */
export function simulatorLogFromEnv(): boolean {
  return process.env['FLTMGR_SIM_LOG'] === '1';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The kernel side of Filter Manager, in TypeScript: register filters, create communication ports, listen, and
 * FilterPort clients connect to it (docs/wire-protocol.md). Call close() when done: a listening simulator keeps
 * the process alive.
 */
export class FilterManagerSimulator extends EventEmitter<SimulatorEventMap> {
  private readonly logLine: (line: string) => void;
  private readonly adminUids: ReadonlySet<number>;
  private readonly adminGids: ReadonlySet<number>;
  private readonly ownerIsAdmin: boolean;
  private readonly peerCredentials: ((socket: net.Socket) => PeerIdentity | undefined) | undefined;
  private readonly limits: Limits;
  private readonly filterTable = new Map<string, SimulatedFilter>();
  private readonly portTable = new Map<string, ServerPortImpl>();
  private readonly streams = new Set<Stream>();
  private readonly core: SimulatorCore;
  private readonly model: ManagementModel;
  private readonly verbose: boolean;
  private server: net.Server | undefined;
  private transport: Transport | undefined;
  private endpointText: string | undefined;
  private secret: Buffer | undefined;
  private unixTrusted = false;
  private socketPath: string | undefined;
  private privateDir: string | undefined;
  private closing: Promise<void> | undefined;
  private lastMessageId = 0n;
  private lastClientId = 0;
  private lastStreamId = 0;

  constructor(options: SimulatorOptions = {}) {
    super();
    const fromEnv = simulatorLogFromEnv();
    const log =
      options.log ?? (fromEnv ? (line: string) => process.stderr.write(`[fltmgr-simulator] ${line}\n`) : undefined);
    this.logLine = (line) => {
      try {
        log?.(line);
      } catch {
        // a failing logger must not take the simulator down
      }
    };
    const ownUid = process.getuid?.();
    this.ownerIsAdmin = options.admins === undefined;
    this.adminUids = new Set(
      options.admins ? (options.admins.uids ?? []) : [0, ...(ownUid === undefined ? [] : [ownUid])],
    );
    this.adminGids = new Set(options.admins?.gids ?? []);
    this.peerCredentials = options.peerCredentials;
    this.limits = resolveLimits(options.limits);
    const verbose = options.verbose ?? fromEnv;
    this.verbose = verbose;
    this.core = {
      log: (line) => this.logLine(line),
      nextMessageId: () => ++this.lastMessageId,
      nextClientId: () => ++this.lastClientId,
      registerPortName: (port) => {
        const key = portKey(port.name);
        if (this.portTable.has(key)) {
          throw new NtStatusError(NtStatus.STATUS_OBJECT_NAME_COLLISION, `port ${port.name} already exists`);
        }
        this.portTable.set(key, port);
      },
      unregisterPortName: (port) => {
        const key = portKey(port.name);
        if (this.portTable.get(key) === port) this.portTable.delete(key);
      },
      notify: (event, client) => {
        if (verbose) {
          const pid = event === 'connect' ? `, pid ${client.processId ?? '?'}` : '';
          this.logLine(`${event}: port ${client.portName}, client ${client.id}${pid}`);
        }
        this.safeEmit(event, client);
      },
      filterUnloaded: async (filter) => {
        await this.model.filterUnloaded(filter);
        const key = nameKey(filter.name);
        if (this.filterTable.get(key) === filter) this.filterTable.delete(key);
      },
      maxQueuedMessageBytes: this.limits.maxQueuedMessageBytes,
    };
    this.model = new ManagementModel(
      {
        log: (line) => this.logLine(line),
        filters: () => this.filterTable.values(),
        filter: (name) => this.filterTable.get(nameKey(name)),
        ports: () =>
          [...this.portTable.values()].map((p) => ({
            name: p.name,
            filter: p.filter,
            maxConnections: p.maxConnections,
            connectionCount: p.connections.size,
          })),
        runLoadable: (register) => register(this),
      },
      options.volumes,
    );
  }

  /** The endpoint string clients connect to (docs/wire-protocol.md), once listening. */
  get endpoint(): string | undefined {
    return this.endpointText;
  }

  /**
   * Starts serving. Default: a Unix socket in a fresh private (0700) temp directory; on Windows a named pipe
   * with a per-run secret. `{ tcp }` listens on 127.0.0.1 only, with a per-run secret in the endpoint string.
   */
  async listen(where: ListenTarget = {}): Promise<string> {
    if (this.closing) throw new Error('the simulator is closed');
    if (this.server) throw new Error('the simulator is already listening');
    const server = net.createServer((socket) => this.onConnection(socket));
    this.server = server;
    try {
      if ('tcp' in where) return await this.listenTcp(server, where.tcp ?? {});
      const p = where.path;
      if (p !== undefined && (typeof p !== 'string' || p.length === 0))
        throw new TypeError('path must be a non-empty string');
      if (process.platform === 'win32' && (p === undefined || /^\\\\[.?]\\pipe\\/i.test(p))) {
        return await this.listenPipe(server, p ?? `\\\\.\\pipe\\fltmgr-sim-${randomBytes(8).toString('hex')}`);
      }
      return await this.listenUnix(server, p);
    } catch (err) {
      this.server = undefined;
      server.close();
      this.cleanupFiles();
      throw err;
    }
  }

  private async listenTcp(server: net.Server, tcp: { host?: string; port?: number }): Promise<string> {
    const host = tcp.host ?? '127.0.0.1';
    if (host !== '127.0.0.1') throw new TypeError('the simulator listens on 127.0.0.1 only');
    const port = tcp.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('tcp.port must be 0..65535');
    this.transport = 'tcp';
    this.secret = Buffer.from(randomBytes(24).toString('hex'), 'latin1');
    await listenOn(server, { host, port, exclusive: true });
    const address = server.address() as net.AddressInfo;
    this.endpointText = formatEndpoint({
      kind: 'tcp',
      host,
      port: address.port,
      secret: this.secret.toString('latin1'),
    });
    return this.endpointText;
  }

  private async listenPipe(server: net.Server, pipePath: string): Promise<string> {
    this.transport = 'pipe';
    this.secret = Buffer.from(randomBytes(24).toString('hex'), 'latin1');
    await listenOn(server, { path: pipePath, exclusive: true });
    this.endpointText = formatEndpoint({ kind: 'pipe', path: pipePath, secret: this.secret.toString('latin1') });
    return this.endpointText;
  }

  private async listenUnix(server: net.Server, requested: string | undefined): Promise<string> {
    this.transport = 'unix';
    let socketPath: string;
    trackCleanup(this.cleanupOnExit);
    if (requested === undefined) {
      this.privateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-sim-'));
      fs.chmodSync(this.privateDir, 0o700);
      socketPath = path.join(this.privateDir, 'sim.sock');
    } else {
      socketPath = path.resolve(requested);
    }
    this.unixTrusted = isPrivateDirectory(path.dirname(socketPath));
    await listenOn(server, { path: socketPath, exclusive: true });
    this.socketPath = socketPath; // only now: a path we failed to bind may be somebody else's socket
    this.endpointText = formatEndpoint({ kind: 'unix', path: socketPath });
    return this.endpointText;
  }

  /**
   * Registers a minifilter (FltRegisterFilter + FltStartFiltering): names are unique ignoring case (free again
   * once the filter's unload finished); the altitude is digits with an optional fraction. The filter gets an
   * instance ("NAME Instance", at its altitude) on every volume its instanceSetup accepts and where that altitude
   * is free. Throws NtStatusError (STATUS_OBJECT_NAME_COLLISION, STATUS_INVALID_PARAMETER, ...).
   */
  registerFilter(name: string, options: RegisterFilterOptions = {}): SimulatedFilter {
    if (this.closing) throw new NtStatusError(NtStatus.STATUS_FLT_DELETING_OBJECT, 'the simulator is closed');
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_UNITS) {
      throw new NtStatusError(NtStatus.STATUS_OBJECT_NAME_INVALID, 'filter name must be a non-empty string');
    }
    const altitude = validateFilterOptions(options);
    const key = nameKey(name);
    if (this.filterTable.has(key)) {
      throw new NtStatusError(NtStatus.STATUS_OBJECT_NAME_COLLISION, `filter ${name} is already registered`);
    }
    const filter = new SimulatedFilter(this.core, name, options.altitude);
    this.filterTable.set(key, filter);
    this.model.filterRegistered(filter, options, altitude);
    return filter;
  }

  // ---- management (what fltlib's management calls and MANAGE requests see) --------------------------------
  // Failures throw (or reject with) ManagementError carrying the HRESULT the fltlib call would return.

  /** The volumes, in the simulator's order (FilterVolumeFindFirst). */
  volumes(): SimulatedVolume[] {
    return [...this.model.volumes];
  }

  /** Registered filters, highest altitude first (FilterFindFirst). */
  filters(): FilterSnapshot[] {
    return this.model.filters();
  }

  /**
   * Instances, by volume then highest altitude first; only those of `filter` and/or on `volume` when given
   * (FilterInstanceFindFirst, FilterVolumeInstanceFindFirst). Unknown filter: ERROR_FLT_FILTER_NOT_FOUND;
   * unknown volume: ERROR_FLT_VOLUME_NOT_FOUND.
   */
  instances(options: { filter?: string; volume?: string } = {}): InstanceSnapshot[] {
    return this.model.listInstances(options);
  }

  /** The open server ports (simulator only: Windows has no call that lists them). */
  ports(): PortSnapshot[] {
    return this.model.ports();
  }

  /** FilterGetDosName: "C:"; a volume without one: 0x80070002. Volumes are named as FilterAttach takes them. */
  dosName(volume: string): string {
    return this.model.dosName(volume);
  }

  /**
   * FilterAttach / FilterAttachAtAltitude: resolves with the created instance's name. Volumes by device or DOS
   * name (`\Device\HarddiskVolume1`, `C:`, `c:\`). Default altitude: the filter's; default name
   * "FILTER Instance", then "FILTER Instance 2", ...
   */
  attach(filter: string, volume: string, options: { altitude?: string; instanceName?: string } = {}): Promise<string> {
    return this.model.attach(filter, volume, options);
  }

  /** FilterDetach: without instanceName, the filter's only (or highest) instance on the volume. */
  detach(filter: string, volume: string, options: { instanceName?: string } = {}): Promise<void> {
    return this.model.detach(filter, volume, options);
  }

  /**
   * Makes `name` loadable (FilterLoad): load(name) and MANAGE LOAD run `register`, which registers the filter
   * through this simulator and returns it. Names are unique ignoring case.
   */
  addLoadable(name: string, register: LoadableFilter): void {
    this.model.addLoadable(name, register);
  }

  /** FilterLoad: runs the loadable of that name. Unknown: 0x80070002; loaded already: 0x80070420. */
  load(name: string): Promise<SimulatedFilter> {
    if (this.closing) return Promise.reject(new ManagementError(hresultFromWin32(Win32.ERROR_NOT_READY), 'closed'));
    return this.model.load(name);
  }

  /**
   * FilterUnload: runs the filter's unload routine (registerFilter's `unload`, else FltUnregisterFilter) and
   * resolves once its connections ended and their DisconnectNotify callbacks returned. Not loaded:
   * ERROR_FLT_FILTER_NOT_FOUND; refused: ERROR_FLT_DO_NOT_DETACH.
   */
  unloadFilter(name: string): Promise<void> {
    return this.model.unload(name);
  }

  /**
   * Whether a client's identity counts as an administrator: the simulator's stand-in for a token in the
   * Administrators group (what a minifilter checks with SeTokenIsAdmin). An identity without OS credentials
   * (a secret holder, a peer on the owner's private socket) is the simulator's owner.
   */
  isAdministrator(identity: PeerIdentity): boolean {
    if (identity.uid !== undefined) return this.isAdmin({ uid: identity.uid, gid: identity.gid, owner: false });
    return this.isAdmin({ uid: process.getuid?.(), gid: process.getgid?.(), owner: true });
  }

  /** What each open stream holds (the figures the simulator's limits bound), in the order streams were accepted. */
  streamStats(): StreamStats[] {
    const out: StreamStats[] = [];
    for (const st of this.streams) {
      if (st.state === 'closed') continue;
      let backlogBytes = 0;
      for (const f of st.backlog) backlogBytes += f.payload.length;
      out.push({
        id: st.id,
        transport: st.transport,
        state: st.state,
        client: st.client,
        partialFrameBytes: st.decoder.pendingBytes,
        backlogFrames: st.backlog.length,
        backlogBytes,
        outstandingSends: st.outstandingSends,
        sendBytes: st.sendBytes,
        queuedMessageBytes: st.client?.queuedMessageBytes ?? 0,
        unsentBytes: st.socket.writableLength,
        readPaused: st.readPaused,
      });
    }
    return out;
  }

  /**
   * FltUnregisterFilter for every filter (their connections end, disconnect callbacks run), stops listening and
   * removes the socket file. Until it is called the listening server keeps the process alive. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      const serverClosed = new Promise<void>((resolve) => {
        if (!server || !server.listening) resolve();
        else server.close(() => resolve());
      });
      await Promise.all([...this.filterTable.values()].map((f) => f.unload()));
      // Streams that never got a connection (or whose client does not hang up) end here.
      for (const st of this.streams) if (st.state !== 'established') st.socket.destroy();
      const remaining = [...this.streams].map(
        (st) => new Promise<void>((resolve) => st.socket.once('close', () => resolve())),
      );
      const grace = setTimeout(() => {
        for (const st of this.streams) st.socket.destroy();
      }, CLOSE_GRACE_MS);
      await Promise.all(remaining);
      clearTimeout(grace);
      await serverClosed;
      this.cleanupFiles();
    })();
    return this.closing;
  }

  private readonly cleanupOnExit = (): void => this.cleanupFiles();

  private cleanupFiles(): void {
    liveCleanups.delete(this.cleanupOnExit);
    if (this.socketPath) {
      try {
        fs.rmSync(this.socketPath, { force: true });
      } catch {
        // already gone
      }
    }
    if (this.privateDir) {
      try {
        fs.rmSync(this.privateDir, { recursive: true, force: true });
      } catch {
        // already gone
      }
    }
  }

  private safeEmit<K extends keyof SimulatorEventMap>(event: K, ...args: SimulatorEventMap[K]): void {
    try {
      (this.emit as (e: K, ...a: SimulatorEventMap[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logLine(`a '${event}' listener threw: ${describe(err)}`);
    }
  }

  // ---- streams -----------------------------------------------------------------------------------------

  private onConnection(socket: net.Socket): void {
    const transport = this.transport ?? 'unix';
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.streams.size >= this.limits.maxStreams) {
      this.refuseStream(socket, `too many streams: more than ${this.limits.maxStreams} open`);
      return;
    }
    let identity: PeerIdentity | undefined;
    try {
      if (transport === 'unix') identity = (this.peerCredentials ?? defaultPeerCredentials)(socket);
      else identity = this.peerCredentials?.(socket);
    } catch (err) {
      this.logLine(`peerCredentials failed: ${describe(err)}`);
    }
    identity ??= { via: transport === 'unix' ? 'unix' : 'secret' };
    const st = new Stream(++this.lastStreamId, socket, transport, identity, this.limits, (s, unsent) => {
      this.protocolError(
        s,
        `the peer does not read: ${unsent} bytes unsent (limits.maxUnsentBytes, limit ${this.limits.maxUnsentBytes})`,
      );
    });
    this.streams.add(st);
    if (transport === 'tcp') socket.setNoDelay(true);
    if (this.limits.handshakeTimeoutMs !== Infinity) {
      const ms = this.limits.handshakeTimeoutMs;
      st.handshakeTimer = setTimeout(() => {
        st.handshakeTimer = undefined;
        // The same deadline for a MANAGE: the first frame, whichever it is.
        if (st.state === 'new') this.protocolError(st, `no complete CONNECT within ${ms} ms (handshake deadline)`);
      }, ms);
      st.handshakeTimer.unref();
    }
    socket.on('data', (chunk: Buffer) => this.onData(st, chunk));
    socket.on('drain', () => {
      st.updateFlow();
      if (!st.congested) st.client?.linkDrained();
    });
    socket.on('end', () => {
      if (st.decoder.pendingBytes > 0) this.protocolError(st, 'stream ended inside a frame (truncated frame)');
    });
    socket.on('error', (err) => {
      if (st.state !== 'closed') this.logLine(`stream #${st.id}: ${describe(err)}`);
    });
    socket.on('close', () => this.onStreamClosed(st));
  }

  /**
   * A stream over maxStreams: answered at once with CONNECT_RESULT ERROR_NO_SYSTEM_RESOURCES (so a client that
   * writes its CONNECT and then reads learns why) and closed once that is written. What it sends is discarded.
   */
  private refuseStream(socket: net.Socket, reason: string): void {
    this.logLine(`refused a stream: ${reason}`);
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(encodeFrame(FrameType.CONNECT_RESULT, 0, encodeI32(HR_NO_SYSTEM_RESOURCES)));
    // Half-close, and keep reading (and discarding) until the peer closes: a client whose CONNECT is still on its
    // way can then write it and read this answer. Closed at once, its write could fail first (EPIPE), and the
    // client would report that instead of ERROR_NO_SYSTEM_RESOURCES. The grace timer bounds a peer that never closes.
    socket.end();
    setTimeout(() => socket.destroy(), STREAM_END_GRACE_MS).unref();
    this.safeEmit('protocol-error', { reason });
  }

  private onStreamClosed(st: Stream): void {
    clearTimeout(st.handshakeTimer);
    if (st.state === 'closed' && !this.streams.has(st)) return;
    st.state = 'closed';
    this.streams.delete(st);
    st.client?.onStreamClosed();
  }

  private protocolError(st: Stream, reason: string): void {
    if (st.socket.destroyed && st.state === 'closed') return;
    const who = st.client ? ` (port ${st.client.portName}, client ${st.client.id})` : '';
    this.logLine(`protocol error on stream #${st.id}${who}: ${reason}; closing it`);
    st.socket.destroy();
    const event: ProtocolErrorEvent = { reason };
    if (st.client) event.client = st.client;
    this.safeEmit('protocol-error', event);
  }

  private onData(st: Stream, chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = st.decoder.push(chunk);
    } catch (err) {
      // The frames before the bad header were whole and valid: they count, however the stream was chunked.
      if (err instanceof ProtocolError) {
        for (const frame of err.frames) {
          if (st.socket.destroyed) break;
          this.dispatch(st, frame);
        }
      }
      this.protocolError(st, describe(err));
      return;
    }
    for (const frame of frames) {
      if (st.socket.destroyed) return;
      this.dispatch(st, frame);
    }
    if (st.state === 'connecting') st.updateFlow();
  }

  private dispatch(st: Stream, frame: Frame): void {
    try {
      if (st.state === 'connecting') {
        if (frame.type === FrameType.CONNECT) throw new ProtocolError('second CONNECT');
        if (st.backlog.length >= MAX_BACKLOG) throw new ProtocolError('too many frames before CONNECT_RESULT');
        st.backlog.push(frame);
        return;
      }
      if (!st.open) return; // the kernel side already ended this stream (or the MANAGE_RESULT went out)
      if (st.state === 'managing') throw new ProtocolError(`frame type 0x${frame.type.toString(16)} after MANAGE`);
      if (st.state === 'new' && frame.type === FrameType.MANAGE) {
        if (frame.id !== 0) throw new ProtocolError('MANAGE id must be 0');
        const request = parseManage(frame.payload);
        clearTimeout(st.handshakeTimer); // the operation takes what it takes (an UNLOAD waits for DisconnectNotify)
        st.handshakeTimer = undefined;
        st.state = 'managing';
        void this.serveManage(st, request);
        return;
      }
      if (st.state === 'new') {
        if (frame.type !== FrameType.CONNECT)
          throw new ProtocolError(`frame type 0x${frame.type.toString(16)} before CONNECT`);
        if (frame.id !== 0) throw new ProtocolError('CONNECT id must be 0');
        const payload = parseConnect(frame.payload);
        clearTimeout(st.handshakeTimer); // the deadline is the client's; ConnectNotify takes what it takes
        st.handshakeTimer = undefined;
        this.connect(st, payload).catch((err: unknown) => {
          this.logLine(`internal error during connect on stream #${st.id}: ${describe(err)}`);
          st.socket.destroy();
        });
        return;
      }
      const client = st.client;
      if (st.state !== 'established' || !client) return;
      switch (frame.type) {
        case FrameType.CONNECT:
          throw new ProtocolError('second CONNECT');
        case FrameType.GET:
          client.addGet(frame.id, parseGet(frame.payload).capacity);
          return;
        case FrameType.CANCEL:
          parseCancel(frame.payload);
          client.cancelGet(frame.id);
          return;
        case FrameType.REPLY: {
          const r = parseReply(frame.payload);
          st.send(FrameType.REPLY_RESULT, frame.id, encodeI32(client.reply(r.status, r.messageId, r.data)));
          return;
        }
        case FrameType.SEND: {
          const s = parseSend(frame.payload);
          if (st.outstandingSends >= MAX_OUTSTANDING_REQUESTS) {
            throw new ProtocolError(`more than ${MAX_OUTSTANDING_REQUESTS} outstanding SEND requests`);
          }
          const limit = this.limits.maxSendBytes;
          if (st.outstandingSends > 0 && st.sendBytes + s.input.length > limit) {
            // Not buffered: FilterSendMessage fails as it would when the kernel cannot allocate for the request.
            if (!st.sendRefusalLogged) {
              st.sendRefusalLogged = true;
              this.logLine(
                `stream #${st.id}: ${st.sendBytes} bytes of SEND input in MessageNotify (limits.maxSendBytes ${limit}); ` +
                  'further SENDs get ERROR_NO_SYSTEM_RESOURCES until some complete',
              );
            }
            st.send(FrameType.SEND_RESULT, frame.id, encodeSendResult(HR_NO_SYSTEM_RESOURCES, EMPTY));
            return;
          }
          if (st.sendBytes + s.input.length <= limit / 2) st.sendRefusalLogged = false; // log runs, not each refusal
          const sendId = frame.id;
          const inputBytes = s.input.length;
          st.outstandingSends++;
          st.sendBytes += inputBytes;
          void client
            .handleSend(s.input, s.outputCapacity)
            .then(
              (r) => st.send(FrameType.SEND_RESULT, sendId, encodeSendResult(r.hresult, r.output)),
              (err: unknown) => this.logLine(`SEND on stream #${st.id} failed: ${describe(err)}`),
            )
            .finally(() => {
              st.outstandingSends--;
              st.sendBytes -= inputBytes;
            });
          return;
        }
        default:
          throw new ProtocolError(`unexpected frame type 0x${frame.type.toString(16)}`);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) this.logLine(`internal error on stream #${st.id}: ${describe(err)}`);
      this.protocolError(st, err instanceof ProtocolError ? err.message : `internal error: ${describe(err)}`);
    }
  }

  private async connect(st: Stream, p: ConnectPayload): Promise<void> {
    st.state = 'connecting';
    let hresult: number;
    try {
      hresult = await this.admit(st, p);
    } catch (err) {
      this.logLine(`connect on stream #${st.id} failed internally: ${describe(err)}`);
      hresult = hresultFromWin32(Win32.ERROR_GEN_FAILURE);
    }
    if ((st.state as Stream['state']) === 'closed') return; // the client went away meanwhile; ClientPortImpl cleaned up
    st.send(FrameType.CONNECT_RESULT, 0, encodeI32(hresult));
    if (hresult !== 0 || !st.client) {
      st.client = undefined;
      st.state = 'new';
      st.backlog.length = 0; // dropped: the connection was refused
      st.end();
      return;
    }
    st.state = 'established';
    st.client.completeConnect();
    const backlog = st.backlog.splice(0);
    for (const frame of backlog) {
      if (st.socket.destroyed || !st.open) break;
      this.dispatch(st, frame);
    }
    st.updateFlow();
  }

  /** One MANAGE request: the answer, then the stream is closed (docs/wire-protocol.md, "Management requests"). */
  private async serveManage(st: Stream, request: ManagePayload): Promise<void> {
    let hresult: number;
    let records: Buffer[] = [];
    try {
      [hresult, records] = await this.runManage(st, request);
    } catch (err) {
      this.logLine(`MANAGE op ${request.op} on stream #${st.id} failed internally: ${describe(err)}`);
      hresult = hresultFromWin32(Win32.ERROR_GEN_FAILURE);
    }
    if (hresult !== 0) records = [];
    let bytes = 8;
    for (const r of records) bytes += r.length;
    if (bytes > MAX_PAYLOAD) {
      this.logLine(`MANAGE op ${request.op}: ${bytes} bytes of records exceed MAX_PAYLOAD`);
      [hresult, records] = [HR_NO_SYSTEM_RESOURCES, []];
    }
    if (this.verbose) {
      const pid = st.identity.pid ?? (request.clientPid !== 0 ? request.clientPid : '?');
      this.logLine(`manage: op ${request.op} [${request.args.join(', ')}], pid ${pid}: ${hex32(hresult)}`);
    }
    st.send(FrameType.MANAGE_RESULT, 0, encodeManageResult(hresult, records));
    st.end();
  }

  /** The checks of a MANAGE request in order (secret, op, privilege), then the operation: [hresult, records]. */
  private async runManage(st: Stream, request: ManagePayload): Promise<[number, Buffer[]]> {
    if (st.transport !== 'unix' && !this.secretMatches(request.secret)) {
      this.logLine(`stream #${st.id}: wrong secret, access denied`);
      return [E_ACCESSDENIED, []];
    }
    const { op, args } = request;
    if (!MANAGE_ARG_COUNTS.has(op)) return [HResult.E_INVALIDARG, []];
    const credentials = this.credentialsOf(st);
    if (!credentials || !this.isAdmin(credentials)) {
      return [op === ManageOp.LOAD || op === ManageOp.UNLOAD ? HR_PRIVILEGE_NOT_HELD : E_ACCESSDENIED, []];
    }
    const arg = (i: number): string => args[i] ?? '';
    try {
      switch (op) {
        case ManageOp.FILTERS:
          return [
            0,
            this.filters().map((f) =>
              encodeFilterRecord({
                flags: ManageKind.MINIFILTER,
                frameId: f.frameId,
                numberOfInstances: f.instances,
                name: f.name,
                altitude: f.altitude,
              }),
            ),
          ];
        case ManageOp.INSTANCES:
          return [
            0,
            this.instances({ filter: arg(0), volume: arg(1) }).map((i) =>
              encodeInstanceRecord({
                flags: ManageKind.MINIFILTER,
                frameId: i.frameId,
                volumeFileSystemType: i.fileSystemType,
                instanceName: i.name,
                altitude: i.altitude,
                volumeName: i.volume,
                filterName: i.filter,
              }),
            ),
          ];
        case ManageOp.VOLUMES:
          return [
            0,
            this.volumes().map((v) =>
              encodeVolumeRecord({
                flags: v.detached ? MANAGE_VOLUME_DETACHED : 0,
                frameId: 0,
                fileSystemType: v.fileSystemType,
                volumeName: v.name,
                dosName: v.dosName ?? '',
              }),
            ),
          ];
        case ManageOp.LOAD:
          await this.load(arg(0));
          return [0, []];
        case ManageOp.UNLOAD:
          await this.unloadFilter(arg(0));
          return [0, []];
        case ManageOp.ATTACH: {
          const name = await this.attach(arg(0), arg(1), { altitude: arg(2), instanceName: arg(3) });
          return [0, [encodeNameRecord(name)]];
        }
        case ManageOp.DETACH:
          await this.detach(arg(0), arg(1), { instanceName: arg(2) });
          return [0, []];
        case ManageOp.DOS_NAME:
          return [0, [encodeNameRecord(this.dosName(arg(0)))]];
        case ManageOp.PORTS:
          return [
            0,
            this.ports().map((p) =>
              encodePortRecord({
                maxConnections: p.maxConnections,
                connections: p.connections,
                portName: p.name,
                filterName: p.filter,
              }),
            ),
          ];
        default:
          return [HResult.E_INVALIDARG, []];
      }
    } catch (err) {
      if (err instanceof ManagementError) return [err.hresult, []];
      throw err;
    }
  }

  private secretMatches(given: string): boolean {
    const bytes = Buffer.from(given, 'latin1');
    const secret = this.secret ?? Buffer.alloc(0);
    return bytes.length === secret.length && timingSafeEqual(bytes, secret);
  }

  /** The checks FilterConnectCommunicationPort goes through, in order; then ConnectNotify. */
  private async admit(st: Stream, p: ConnectPayload): Promise<number> {
    if (st.transport !== 'unix' && !this.secretMatches(p.secret)) {
      this.logLine(`stream #${st.id}: wrong secret, access denied`);
      return E_ACCESSDENIED;
    }
    if ((p.options & ~FLT_PORT_FLAG_SYNC_HANDLE) !== 0) return hresultFromWin32(Win32.ERROR_INVALID_PARAMETER);
    const port = this.portTable.get(portKey(p.portName));
    if (!port || port.closed) return hresultFromWin32(Win32.ERROR_FILE_NOT_FOUND);
    if (!this.allowed(port, this.credentialsOf(st))) return E_ACCESSDENIED;
    if (port.connections.size + port.connecting.size >= port.maxConnections) {
      return hresultFromWin32(Win32.ERROR_CONNECTION_COUNT_LIMIT);
    }
    const processId = st.identity.pid ?? (p.clientPid !== 0 ? p.clientPid : undefined);
    const client = new ClientPortImpl(this.core, st, port, p.context, st.identity, processId);
    port.connecting.add(client);
    st.client = client;
    const hresult = await client.runConnect();
    if (hresult !== 0) st.client = undefined;
    return hresult;
  }

  private credentialsOf(st: Stream): Credentials | undefined {
    const id = st.identity;
    if (id.uid !== undefined) return { uid: id.uid, gid: id.gid, owner: false };
    // No OS credentials: a secret holder, or a peer on a socket only the owner can reach, is the owner.
    if (id.via === 'secret' || (st.transport === 'unix' && this.unixTrusted)) {
      return { uid: process.getuid?.(), gid: process.getgid?.(), owner: true };
    }
    return undefined;
  }

  private isAdmin(c: Credentials): boolean {
    if (c.owner && this.ownerIsAdmin) return true;
    if (c.uid !== undefined && this.adminUids.has(c.uid)) return true;
    return c.gid !== undefined && this.adminGids.has(c.gid);
  }

  private allowed(port: ServerPortImpl, c: Credentials | undefined): boolean {
    if (!c) return false;
    const s = port.security;
    if (s === 'admins') return this.isAdmin(c);
    if ('check' in s) {
      try {
        return s.check({ uid: c.uid, gid: c.gid, administrator: this.isAdmin(c) }) === true;
      } catch (err) {
        this.logLine(`security check of port ${port.name} threw (${String(err)}); the connect is refused`);
        return false;
      }
    }
    if ((s.includeAdmins ?? true) && this.isAdmin(c)) return true;
    if (c.uid !== undefined && s.allowUids?.includes(c.uid)) return true;
    return c.gid !== undefined && (s.allowGids?.includes(c.gid) ?? false);
  }
}

// Object Manager names are case-insensitive.
function portKey(name: string): string {
  return name.toUpperCase();
}

function isPrivateDirectory(dir: string): boolean {
  try {
    const st = fs.statSync(dir);
    const uid = process.getuid?.();
    return st.isDirectory() && uid !== undefined && st.uid === uid && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      server.on('error', () => undefined);
      resolve();
    });
  });
}
