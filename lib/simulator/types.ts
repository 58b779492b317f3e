// Public types of the simulator (the kernel side of Filter Manager).
import type { Socket } from 'node:net';
import { hex32, nameOfHresult, nameOfNtStatus } from '../status';
import type { SimulatedFilter } from './filter';
import type { FilterManagerSimulator } from './server';

/** A kernel-side failure: callbacks throw it to fail a connect or a send; the simulator throws it on bad calls. */
export class NtStatusError extends Error {
  /** The NTSTATUS, unsigned (0xC0000022 for STATUS_ACCESS_DENIED). */
  readonly status: number;
  constructor(status: number, message?: string) {
    const s = status >>> 0;
    super(message ?? `${nameOfNtStatus(s) ?? 'NTSTATUS'} (${hex32(s)})`);
    this.name = 'NtStatusError';
    this.status = s;
  }
}

/**
 * A management operation failed (FilterManagerSimulator.load, attach, instances, ...): `hresult` is what the
 * fltlib call would return, and what a MANAGE request is answered with (docs/wire-protocol.md).
 */
export class ManagementError extends Error {
  /** The HRESULT, unsigned (0x801F0013 for ERROR_FLT_FILTER_NOT_FOUND). */
  readonly hresult: number;
  constructor(hresult: number, message?: string) {
    const h = hresult >>> 0;
    const label = `${nameOfHresult(h) ?? 'HRESULT'} (${hex32(h)})`;
    super(message === undefined ? label : `${message}: ${label}`);
    this.name = 'ManagementError';
    this.hresult = h;
  }
}

/** A volume of the simulator's model (FilterManagerSimulator.volumes()). */
export interface SimulatedVolume {
  /** The NT device name, e.g. `\Device\HarddiskVolume1`. */
  readonly name: string;
  /** The DOS name (`C:`), or undefined when the volume has none. */
  readonly dosName: string | undefined;
  /** The FLT_FILESYSTEM_TYPE number (2 NTFS, 3 FAT, 13 MUP, 22 EXFAT, 28 REFS, ...). */
  readonly fileSystemType: number;
  /** A detached volume (FLTFL_VSI_DETACHED_VOLUME). */
  readonly detached: boolean;
}

/** One entry of SimulatorOptions.volumes. */
export interface SimulatedVolumeOptions {
  /** The NT device name: starts with a backslash, unique (ignoring case). */
  name: string;
  /** `X:` (unique, ignoring case), or left out for none. */
  dosName?: string;
  /** The FLT_FILESYSTEM_TYPE number. Default 2 (NTFS). */
  fileSystemType?: number;
  /** Default false. */
  detached?: boolean;
}

/** A registered filter as the model lists it (FilterManagerSimulator.filters(); FilterFindFirst's records). */
export interface FilterSnapshot {
  /** The name it was registered with. */
  readonly name: string;
  /** The filter's altitude ("0" when it was registered without one). */
  readonly altitude: string;
  /** Only minifilters are modelled. */
  readonly kind: 'minifilter';
  /** The frame (always 0: the simulator has one). */
  readonly frameId: number;
  /** Its instances, on every volume. */
  readonly instances: number;
}

/** An instance (FilterManagerSimulator.instances(); FilterInstanceFindFirst's records). */
export interface InstanceSnapshot {
  /** The instance name ("NAME Instance" for the automatic one). */
  readonly name: string;
  /** The filter's name. */
  readonly filter: string;
  /** The volume's NT device name. */
  readonly volume: string;
  /** The instance's altitude. */
  readonly altitude: string;
  /** The volume's FLT_FILESYSTEM_TYPE number. */
  readonly fileSystemType: number;
  /** Only minifilters are modelled. */
  readonly kind: 'minifilter';
  /** The frame (always 0). */
  readonly frameId: number;
}

/** A server port that is open (FilterManagerSimulator.ports(); simulator only). */
export interface PortSnapshot {
  /** The port name clients connect to. */
  readonly name: string;
  /** The name of the filter that created it. */
  readonly filter: string;
  /** MaxConnections. */
  readonly maxConnections: number;
  /** Established connections. */
  readonly connections: number;
}

/** What a filter's instanceSetup callback is told (InstanceSetupCallback's arguments). */
export interface InstanceSetupContext {
  /** The volume the instance would attach to. */
  readonly volume: SimulatedVolume;
  /** The instance's altitude. */
  readonly altitude: string;
  /** True at registration (FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT), false for an attach request. */
  readonly automatic: boolean;
}

/** Options of {@link FilterManagerSimulator.registerFilter} (what FLT_REGISTRATION and the INF give). */
export interface RegisterFilterOptions {
  /** Digits with an optional fraction ("385100", "370000.5"). Default "0". */
  altitude?: string;
  /**
   * InstanceSetupCallback: called for each instance about to be created (at registration on every volume, and on
   * attach). Return false, or throw (or reject with) NtStatusError(STATUS_FLT_DO_NOT_ATTACH), to decline: the
   * attach fails with ERROR_FLT_DO_NOT_ATTACH (another NtStatusError: its HRESULT). Default: accept every volume.
   */
  instanceSetup?: (context: InstanceSetupContext) => boolean | void | Promise<boolean | void>;
  /** InstanceTeardown: called after an instance was removed (detach, or the filter's unload). Errors are logged. */
  instanceTeardown?: (instance: InstanceSnapshot) => void | Promise<void>;
  /**
   * What `fltmc unload` runs (FilterUnloadCallback): UNLOAD by name and FilterManagerSimulator.unloadFilter call
   * it instead of filter.unload() (which follows anyway, once it returns). Reject with
   * NtStatusError(STATUS_FLT_DO_NOT_DETACH) to refuse: the filter stays loaded and UNLOAD answers
   * ERROR_FLT_DO_NOT_DETACH. Default: FltUnregisterFilter (filter.unload()).
   */
  unload?: () => Promise<void>;
}

/**
 * Registers a filter when LOAD (FilterLoad) names it: FilterManagerSimulator.addLoadable. Returns the filter it
 * registered (through sim.registerFilter).
 */
export type LoadableFilter = (sim: FilterManagerSimulator) => SimulatedFilter | Promise<SimulatedFilter>;

/**
 * Who is at the other end of a stream. `via: 'unix'` = peer credentials of a Unix socket (uid/gid/pid when the
 * platform gave them); `via: 'secret'` = a TCP or named-pipe client that proved it knows the per-run secret.
 */
export interface PeerIdentity {
  /** The peer's user id (Unix sockets, when the platform tells). */
  uid?: number;
  /** The peer's primary group id. */
  gid?: number;
  /** The peer's process id. */
  pid?: number;
  /** How the peer was identified. */
  via: 'unix' | 'secret';
}

/**
 * Who may connect to a port. 'admins' = FltBuildDefaultSecurityDescriptor (SYSTEM + Administrators; here: the
 * simulator's admin uids/gids). The object form adds uids / primary gids; includeAdmins defaults to true.
 */
export type PortSecurity =
  | 'admins'
  | {
      /**
       * Decides each connect itself (before ConnectNotify). The kernel harness evaluates the port's real
       * security descriptor here (lib/simulator/kernel-driver.ts).
       */
      check: (caller: PortCaller) => boolean;
    }
  | {
      /** User ids allowed to connect. */
      allowUids?: number[];
      /** Primary group ids allowed to connect. */
      allowGids?: number[];
      /** Whether administrators may connect too. Default true. */
      includeAdmins?: boolean;
    };

/** Who asks to connect, as PortSecurity's `check` sees it. */
export interface PortCaller {
  /** The peer's user id, when known (the simulator's owner for a peer identified by the secret). */
  readonly uid: number | undefined;
  /** The peer's primary group id, when known. */
  readonly gid: number | undefined;
  /** Whether the simulator counts the peer as an administrator (SimulatorOptions.admins). */
  readonly administrator: boolean;
}

/**
 * Bounds on what one peer can make the simulator hold (docs/wire-protocol.md, "Limits"). A peer that exceeds a
 * limit is closed with a 'protocol-error' event naming the limit, except where noted. Defaults:
 * DEFAULT_SIMULATOR_LIMITS.
 */
export interface SimulatorLimits {
  /**
   * Milliseconds a new stream has to deliver its complete CONNECT frame; then it is closed. The time
   * ConnectNotify takes does not count. Default 10,000; `Infinity` disables the deadline.
   */
  handshakeTimeoutMs?: number;
  /**
   * Streams open at once, in any state (before CONNECT, connecting, established). A stream over the limit is
   * answered with CONNECT_RESULT 0x800705AA (ERROR_NO_SYSTEM_RESOURCES) without waiting for its CONNECT, and
   * closed. Default 1024.
   */
  maxStreams?: number;
  /**
   * Per connection: bytes of SEND input held while MessageNotify runs. A SEND that would take the connection
   * over it, while other SENDs are still in MessageNotify, is not run: its SEND_RESULT is 0x800705AA
   * (ERROR_NO_SYSTEM_RESOURCES, what FilterSendMessage returns for STATUS_INSUFFICIENT_RESOURCES) at once. A SEND
   * arriving when none is outstanding always runs, whatever its size. Default 64 MiB.
   */
  maxSendBytes?: number;
  /**
   * Per connection: bytes FltSendMessage may hold for the client, counting each message's data while it waits
   * for a get plus MESSAGE_CHARGE_BYTES (512) per message waiting for a get or for its reply. Past it,
   * filter.sendMessage resolves with STATUS_INSUFFICIENT_RESOURCES (0xC000009A) at once, as a real
   * FltSendMessage does when pool memory runs out. While no message waits for a get, a message's data is not
   * counted against the limit, so any single message can be sent. Default 64 MiB.
   */
  maxQueuedMessageBytes?: number;
  /**
   * Bytes written to a stream and not yet taken by the peer (its socket's write buffer) at which the simulator
   * stops reading that stream's requests and stops handing messages to its gets, until the buffer drains.
   * Never effectively below the socket's own high-water mark (16 KiB). Default 1 MiB.
   */
  writeHighWaterMark?: number;
  /**
   * Unsent bytes past which a stream whose peer does not read is closed (a protocol error, "the peer does not
   * read"). Reached only by answers already owed when reading stopped (SEND_RESULTs of sends in MessageNotify,
   * one message). At least writeHighWaterMark. Default 128 MiB.
   */
  maxUnsentBytes?: number;
}

/** The limits a simulator uses when SimulatorOptions.limits leaves them out. */
export const DEFAULT_SIMULATOR_LIMITS: Readonly<Required<SimulatorLimits>> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  maxStreams: 1024,
  maxSendBytes: 64 * 1024 * 1024,
  maxQueuedMessageBytes: 64 * 1024 * 1024,
  writeHighWaterMark: 1024 * 1024,
  maxUnsentBytes: 128 * 1024 * 1024,
});

/** Options of the {@link FilterManagerSimulator} constructor. */
export interface SimulatorOptions {
  /** Who counts as an administrator. Default: uid 0 and the simulator process's own uid. */
  admins?: {
    /** Administrator user ids. */
    uids?: number[];
    /** Administrator group ids (primary groups). */
    gids?: number[];
  };
  /**
   * Receives log lines (protocol errors, callback failures; with `verbose`, connects and disconnects too).
   * Default: discard, or standard error when FLTMGR_SIM_LOG=1.
   */
  log?: (line: string) => void;
  /**
   * Also log one line per connect and disconnect ("connect: port \\P, client N, pid P"). Default: false, or
   * true when FLTMGR_SIM_LOG=1 is set in the environment (the CLI's --verbose does the same).
   */
  verbose?: boolean;
  /** Overrides how a stream's peer is identified (tests, platforms without SO_PEERCRED). */
  peerCredentials?: (socket: Socket) => PeerIdentity | undefined;
  /** Bounds on what a peer can make the simulator hold; each one left out takes its DEFAULT_SIMULATOR_LIMITS value. */
  limits?: SimulatorLimits;
  /**
   * The volumes of the model, in the order the simulator lists them. Default: `\Device\HarddiskVolume1` (C:,
   * NTFS), `\Device\HarddiskVolume2` (D:, REFS), `\Device\Mup` (no DOS name, MUP).
   */
  volumes?: SimulatedVolumeOptions[];
}

/**
 * What the simulator holds for one stream (FilterManagerSimulator.streamStats()): the figures its limits bound,
 * for operators and tests. Byte counts are of data the simulator holds, not of its bookkeeping.
 */
export interface StreamStats {
  /** Unique per simulator, from 1 (the number the log lines use: "stream #N"). */
  readonly id: number;
  /** What the stream runs over. */
  readonly transport: 'unix' | 'tcp' | 'pipe';
  /**
   * 'new': no CONNECT yet; 'connecting': ConnectNotify runs; 'established': a connection; 'managing': a MANAGE
   * request is being served.
   */
  readonly state: 'new' | 'connecting' | 'established' | 'managing';
  /** The connection, once CONNECT was admitted. */
  readonly client: ClientPort | undefined;
  /** Bytes received of a frame that is not complete yet. */
  readonly partialFrameBytes: number;
  /** Frames received after CONNECT and held until ConnectNotify returns, and their payload bytes. */
  readonly backlogFrames: number;
  /** Payload bytes of those frames. */
  readonly backlogBytes: number;
  /** SEND requests whose MessageNotify has not returned yet, and the bytes of their input. */
  readonly outstandingSends: number;
  /** Bytes of their input. */
  readonly sendBytes: number;
  /** Bytes charged to the connection's FltSendMessage queue (messages not yet delivered to a get). */
  readonly queuedMessageBytes: number;
  /** Bytes written to the stream that the peer has not taken yet (the socket's write buffer). */
  readonly unsentBytes: number;
  /** True while the simulator does not read the stream (backpressure). */
  readonly readPaused: boolean;
}

/** Options of {@link SimulatedFilter.createCommunicationPort} (FltCreateCommunicationPort's arguments). */
export interface CommunicationPortOptions {
  /** MaxConnections: an integer > 0. */
  maxConnections: number;
  /** Default 'admins'. */
  security?: PortSecurity;
  /** ServerPortCookie. */
  cookie?: unknown;
  /**
   * ConnectNotify: the return value (awaited when it is a Promise) becomes the connection cookie; throw (or reject
   * with) NtStatusError to refuse.
   */
  connect?: (client: ClientPort, context: Buffer) => unknown;
  /** DisconnectNotify: runs once per established connection, whichever side ended it. */
  disconnect?: (client: ClientPort) => void | Promise<void>;
  /**
   * MessageNotify (FilterSendMessage). Return the output (at most outputCapacity bytes) or undefined for none;
   * throw NtStatusError to fail the send. Without it, sends fail with ERROR_NOT_SUPPORTED.
   */
  message?: (
    client: ClientPort,
    input: Buffer,
    outputCapacity: number,
  ) => Uint8Array | undefined | void | Promise<Uint8Array | undefined | void>;
}

/** The kernel's end of one connection (PFLT_PORT ClientPort). */
export interface ClientPort {
  /** Unique per simulator, from 1. */
  readonly id: number;
  /** The name of the server port connected to, as the client spelled it. */
  readonly portName: string;
  /** The server port connected to. */
  readonly serverPort: ServerPort;
  /** The connection cookie ConnectNotify returned (undefined while it runs). */
  readonly cookie: unknown;
  /** The context bytes FilterConnectCommunicationPort passed. */
  readonly context: Buffer;
  /** Who the client is (its OS credentials, or that it knew the endpoint's secret). */
  readonly identity: PeerIdentity;
  /** The peer's pid from the OS when known, else the pid the client reported in CONNECT (0 = unknown). */
  readonly processId: number | undefined;
  /** False once the connection ended (either side). */
  readonly connected: boolean;
  /** FltCloseClientPort: DISCONNECT frame, stream closed, disconnect callback. Idempotent. */
  close(): void;
  /**
   * What the simulator holds for this connection now, and how its FilterReplyMessage calls were answered. For
   * tests and diagnostics: a real kernel has no such call. A snapshot with no event: poll it.
   */
  stats(): ClientPortStats;
}

/** ClientPort.stats(). All zero once the connection is closed, except the reply counts. */
export interface ClientPortStats {
  /**
   * FilterGetMessage calls held, not yet given a message. While it is > 0, a FltSendMessage is delivered at once
   * (so a short timeout runs out while the client holds the message, not in the queue).
   */
  readonly pendingGets: number;
  /** FltSendMessage messages waiting for a get. */
  readonly queuedMessages: number;
  /** Messages delivered to a get whose sender waits for the reply. */
  readonly awaitingReply: number;
  /** FilterReplyMessage calls answered S_OK: a sender had its reply. */
  readonly repliesAccepted: number;
  /**
   * FilterReplyMessage calls answered ERROR_FLT_NO_WAITER_FOR_REPLY: no sender waited for that message (it timed
   * out, was aborted, expected no reply, or the id is unknown).
   */
  readonly repliesRefused: number;
}

/** A server port (FltCreateCommunicationPort). */
export interface ServerPort {
  /** The port name clients connect to. */
  readonly name: string;
  /** ServerPortCookie (CommunicationPortOptions.cookie). */
  readonly cookie: unknown;
  /** MaxConnections. */
  readonly maxConnections: number;
  /** Established connections (not those whose connect callback is still running). */
  readonly connections: ReadonlySet<ClientPort>;
  /** True once close() was called. */
  readonly closed: boolean;
  /** FltCloseCommunicationPort: new connects get ERROR_FILE_NOT_FOUND; existing connections live on. */
  close(): void;
}

/** Options of {@link SimulatedFilter.sendMessage} (FltSendMessage's arguments). */
export interface SendMessageOptions {
  /**
   * Bytes of reply data expected, FILTER_REPLY_HEADER excluded; undefined = no reply (NULL reply buffer). The
   * client's FilterMessage.replyLength is this plus 16 (the header), as FILTER_MESSAGE_HEADER.ReplyLength is.
   */
  replyLength?: number;
  /** Milliseconds, covering the wait for a get and for the reply; undefined = wait forever. */
  timeout?: number;
  /** Aborting withdraws the message (or stops waiting for the reply) and rejects with signal.reason. */
  signal?: AbortSignal;
}

/**
 * What {@link SimulatedFilter.sendMessage} resolves to: FltSendMessage's NTSTATUS and the reply. It resolves
 * (never rejects) for every outcome FltSendMessage reports, timeouts and lost connections included.
 */
export interface SendMessageResult {
  /**
   * NTSTATUS: 0 STATUS_SUCCESS, 0x102 STATUS_TIMEOUT (a success code), 0x80000005 STATUS_BUFFER_OVERFLOW (reply
   * truncated to replyLength), 0xC0000037 STATUS_PORT_DISCONNECTED, 0xC000009A STATUS_INSUFFICIENT_RESOURCES (the
   * connection already holds SimulatorLimits.maxQueuedMessageBytes of messages; nothing was queued).
   */
  status: number;
  /** The reply data (at most replyLength bytes) when a reply arrived. */
  reply?: Buffer;
  /** FILTER_REPLY_HEADER.Status as the user sent it (unsigned). */
  replyStatus?: number;
}

/** What a module loaded by the CLI or the worker exports. */
export interface SimulatedMinifilterModule {
  /**
   * Sets up the module's filters and ports on `sim` (the caller then listens). `options`: the CLI's
   * `--option key=value` pairs (strings), or startSimulatorWorker's `filterOptions`.
   */
  register(sim: FilterManagerSimulator, options?: Record<string, unknown>): SimulatedFilter | Promise<SimulatedFilter>;
}
