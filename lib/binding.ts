// Loads the native addon. node-gyp-build finds prebuilds/<platform>-<arch>/ or build/Release; bundlers and
// Electron asar archives can point at the .node file explicitly (configureBinding or FLTMGR_BINDING).
import * as path from 'node:path';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';

/** What one native batch carries per event: kind, slot, hresult, extra. */
export const enum EventKind {
  Message = 0,
  ReplyDone = 1,
  Error = 2,
  Disconnected = 3,
  Stopped = 4,
}

/** A message as the native receive loop hands it over (FilterMessage wraps it). */
export interface NativeMessage {
  replyLength: number;
  id: bigint;
  data: Buffer;
}

/** The addon's port object (native/src/port.cc); FilterPort is its only user. */
export interface NativePort {
  /** Queues a FilterSendMessage; `id` identifies it for withdraw(). */
  send(
    input: Uint8Array | undefined,
    outputSize: number,
  ): { id: number; result: Promise<{ hresult: number; output?: Buffer }> };
  /** Takes a send no thread has started out of the queue (it resolves with ERROR_OPERATION_ABORTED). */
  withdraw(id: number): boolean;
  /** Cancels everything pending on the handle (close, teardown): nothing waits on the peer any more. */
  abort(): void;
  startReceiving(
    concurrency: number,
    bufferSize: number,
    maxBufferSize: number,
    onBatch: (batch: Array<number | NativeMessage | undefined>) => void,
  ): void;
  stopReceiving(): boolean;
  reply(slot: number, status: number, data: Uint8Array | undefined): number;
  release(slot: number): number;
  close(): Promise<void>;
  ref(): void;
  unref(): void;
}

/** Where a port's Filter* calls go: 'fltlib' = the real Filter Manager (Windows), 'simulator' = the simulator. */
export type Backend = 'fltlib' | 'simulator';

/** The options the addon's connect takes (native/src/addon.cc). */
export interface NativeConnectOptions {
  backend: Backend;
  endpoint?: string;
  context?: Uint8Array;
  syncHandle?: boolean;
}

/** Where a management call goes (native/src/manage.cc): the backend, and the simulator's endpoint if chosen. */
export interface NativeManageOptions {
  backend: Backend;
  endpoint?: string;
}

/**
 * What a management call resolves with: hresult (0 on success) and the call that returned it (the fltlib name,
 * FilterError.syscall), the decoded records, or a string (attach: the instance name; dosName: the DOS name).
 * `detail` says what was wrong with a malformed record (hresult ERROR_INVALID_DATA).
 */
export interface NativeManageResult<R> {
  hresult: number;
  syscall: string;
  records?: R[];
  value?: string;
  detail?: string;
}

/** FILTER_AGGREGATE_STANDARD_INFORMATION, decoded (native/src/manage_records.cc). flags: 1 minifilter, 2 legacy. */
export interface NativeFilterRecord {
  flags: number;
  frame: number;
  instances: number;
  name: string;
  altitude: string;
}

/** INSTANCE_AGGREGATE_STANDARD_INFORMATION, decoded. flags: 1 minifilter, 2 legacy; detached: the IASIM flags. */
export interface NativeInstanceRecord {
  flags: number;
  detached: number;
  frame: number;
  fileSystem: number;
  name: string;
  altitude: string;
  volume: string;
  filter: string;
}

/** FILTER_VOLUME_STANDARD_INFORMATION, decoded. flags: 1 = detached volume. */
export interface NativeVolumeRecord {
  flags: number;
  frame: number;
  fileSystem: number;
  name: string;
}

/** The simulator's communication port records (MANAGE op PORTS). */
export interface NativePortRecord {
  name: string;
  filter: string;
  maxConnections: number;
  connections: number;
}

/** The addon's management entry point: one fltlib call (or enumeration) per call, on the addon's threads. */
export interface NativeManage {
  (op: 'filters', o: NativeManageOptions): Promise<NativeManageResult<NativeFilterRecord>>;
  (op: 'volumes', o: NativeManageOptions): Promise<NativeManageResult<NativeVolumeRecord>>;
  (
    op: 'filterInstances' | 'volumeInstances',
    o: NativeManageOptions,
    name: string,
  ): Promise<NativeManageResult<NativeInstanceRecord>>;
  (op: 'load' | 'unload' | 'dosName', o: NativeManageOptions, name: string): Promise<NativeManageResult<never>>;
  (
    op: 'attach',
    o: NativeManageOptions,
    filter: string,
    volume: string,
    altitude: string | undefined,
    instanceName: string | undefined,
  ): Promise<NativeManageResult<never>>;
  (
    op: 'detach',
    o: NativeManageOptions,
    filter: string,
    volume: string,
    instanceName: string | undefined,
  ): Promise<NativeManageResult<never>>;
  (op: 'ports', o: NativeManageOptions): Promise<NativeManageResult<NativePortRecord>>;
}

/** SO_PEERCRED of a Unix socket (the simulator identifies peers with it). */
export interface PeerCredentials {
  uid: number;
  gid: number;
  pid?: number;
}

/** Limits the native layer enforces (one source for them: the addon). */
export interface NativeLimits {
  /** Most outstanding FilterGetMessage calls per port. */
  maxConcurrency: number;
  /** Sends that run at once per port (each a MessageNotify call); more wait in a queue. */
  maxSendThreads: number;
  /** Largest send input the simulator's wire protocol carries. */
  simulatorMaxSendInput: number;
  /** Largest reply data the simulator's wire protocol carries. */
  simulatorMaxReplyData: number;
  /** Most gets the simulator's wire protocol lets one connection keep pending (= maxConcurrency). */
  simulatorMaxPendingGets: number;
}

/** sizeof(FILTER_MESSAGE_HEADER): ReplyLength (u32), padding, MessageId (u64). Checked against the addon at load. */
export const MESSAGE_HEADER_SIZE = 16;
/** sizeof(FILTER_REPLY_HEADER): Status (NTSTATUS), padding, MessageId (u64). Checked against the addon at load. */
export const REPLY_HEADER_SIZE = 16;

/** What the addon exports; checkContract verifies the parts the JS side depends on when it loads. */
export interface Binding {
  connect(name: string, options: NativeConnectOptions): Promise<{ hresult: number; port?: NativePort }>;
  /** `fltlib`: whether the real Filter Manager's fltlib is there (Windows). */
  info(): { fltlib: boolean; platform: 'win32' | 'posix' };
  /** undefined, or why a simulator endpoint cannot be used on this host. */
  checkEndpoint(endpoint: string): string | undefined;
  limits: NativeLimits;
  eventKinds: Record<'message' | 'replyDone' | 'error' | 'disconnected' | 'stopped', EventKind>;
  /** sizeof(FILTER_MESSAGE_HEADER) and sizeof(FILTER_REPLY_HEADER) as the addon was compiled. */
  headerSizes: { message: number; reply: number };
  peerCredentials(fd: number): PeerCredentials | undefined;
  /** The management calls (fltmgr/manager). */
  manage: NativeManage;
  /** The kernel harness's bridge (native/src/kernel_bridge.cc); POSIX hosts only. */
  KernelImage?: new (
    path: string,
    registry: Array<[name: string, type: number, data: Buffer]>,
    onEvent: (event: KernelImageEvent) => void,
  ) => NativeKernelImage;
}

/** Who a call into a driver image runs as (image_abi.h fltmgr_kh_caller). */
export interface NativeKernelCaller {
  processId: number;
  admin: boolean;
  system: boolean;
  uid?: number;
  gid?: number;
}

/** What a driver image asks of the JS side (kernel_bridge.cc HostRequest) or reports. */
export type KernelImageEvent =
  | { kind: 'log'; level: number; text: string }
  | { kind: 'violation'; level: number; text: string; reason: string }
  | { kind: 'createPort'; id: number; target: number; name: string; maxConnections: number }
  | { kind: 'closePort' | 'closeClient' | 'unregisterFilter'; id: number; target: number }
  | { kind: 'send'; id: number; target: number; data: Buffer; replyLength?: number; timeoutMs?: number };

/** A simulated open's outcome as the image reports it (image_abi.h fltmgr_kh_open_result). */
export interface NativeOpenResult {
  status: number;
  preStatus: number;
  postCalled: boolean;
  cancelled: boolean;
  sends: number;
  sendStatus: number;
  sendData: Buffer;
  replyData: Buffer;
  trace: string;
}

/** A loaded driver image (kernel_bridge.cc KernelImage). Promises resolve with null once the image is closed. */
export interface NativeKernelImage {
  driverEntry(registryPath: string): Promise<number | null>;
  unload(): Promise<number | null>;
  connect(port: number, client: number, caller: NativeKernelCaller, context: Buffer): Promise<number | null>;
  disconnect(client: number): Promise<true | null>;
  message(
    client: number,
    caller: NativeKernelCaller,
    input: Buffer,
    outputLength: number,
  ): Promise<{ status: number; output: Buffer } | null>;
  openFile(request: {
    path: string;
    processId: number;
    content: Buffer;
    fileId: bigint;
    desiredAccess: number;
    createOptions: number;
    kernelMode: boolean;
    isDirectory: boolean;
    readFails: boolean;
  }): Promise<NativeOpenResult | null>;
  portAccess(port: number, caller: NativeKernelCaller, desired: number): boolean;
  query(code: number, length: number, input?: Buffer): Promise<{ status: number; data: Buffer } | null>;
  violationCount(): number;
  answer(id: number, status: number, reply?: Buffer): void;
  /** Fails every wait on the JS side now (FltSendMessage returns STATUS_PORT_DISCONNECTED); calls then settle. */
  shutdown(): void;
  /** Stops the image's threads (bounded) and unmaps it; false when a thread was still in driver code. */
  close(): boolean;
}

let explicitPath: string | undefined;
let loaded: Binding | undefined;

/**
 * Use this .node file instead of searching (for bundlers, or Electron's app.asar.unpacked). Call before the
 * first connect. FLTMGR_BINDING in the environment does the same.
 */
export function configureBinding(options: { path: string }): void {
  if (loaded !== undefined)
    throw new Error('the fltmgr native binding is already loaded; configure it before first use');
  explicitPath = path.resolve(options.path);
}

/** The package root whether running from dist/lib (published) or lib/ (tests run the sources). */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'binding.gyp')) || fs.existsSync(path.join(dir, 'prebuilds'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..');
}

/** The addon, loaded once per environment (an explicit path, FLTMGR_BINDING, or node-gyp-build's search). */
export function loadBinding(): Binding {
  if (loaded !== undefined) return loaded;
  const override = explicitPath ?? process.env['FLTMGR_BINDING'];
  let binding: Binding;
  if (override !== undefined && override !== '') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node file at a path known only at run time
    binding = require(path.resolve(override)) as Binding;
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when the addon is first needed
    const load = require('node-gyp-build') as (dir: string) => unknown;
    binding = load(packageRoot()) as Binding;
  }
  checkContract(binding);
  loaded = binding;
  return loaded;
}

/** The JS side and the loaded .node must agree on what they exchange; a stale or foreign build says so here. */
function checkContract(binding: Binding): void {
  const kinds = binding.eventKinds as Binding['eventKinds'] | undefined;
  const expected = {
    message: EventKind.Message,
    replyDone: EventKind.ReplyDone,
    error: EventKind.Error,
    disconnected: EventKind.Disconnected,
    stopped: EventKind.Stopped,
  };
  const agrees =
    kinds !== undefined &&
    Object.entries(expected).every(([name, value]) => kinds[name as keyof typeof expected] === value);
  const headers = binding.headerSizes as Binding['headerSizes'] | undefined;
  const headersAgree = headers?.message === MESSAGE_HEADER_SIZE && headers.reply === REPLY_HEADER_SIZE;
  if (
    !agrees ||
    !headersAgree ||
    typeof binding.limits?.maxConcurrency !== 'number' ||
    typeof binding.info?.().fltlib !== 'boolean'
  ) {
    throw new Error(
      'the fltmgr native binding does not match this version of the JavaScript library (a stale build or a ' +
        'prebuild of another version): rebuild it with `npm rebuild fltmgr`',
    );
  }
}

let peerCredentialsUnavailable = false;

/**
 * The credentials of the process at the other end of a connected Unix-domain socket (SO_PEERCRED, through the
 * addon), or undefined: no descriptor (not a Unix socket, or closed), the addon not built, or the call failed. The
 * simulator identifies local peers with it. Node has no public API for a socket's descriptor, so the handle's `fd`
 * (libuv's uv_fileno) is read here and nowhere else.
 */
export function socketPeerCredentials(socket: Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || peerCredentialsUnavailable) return undefined;
  let binding: Binding;
  try {
    binding = loadBinding();
  } catch {
    peerCredentialsUnavailable = true; // not built (yet): the simulator falls back to { via: 'unix' }; ask once
    return undefined;
  }
  try {
    const c = binding.peerCredentials(fd);
    return c !== undefined && Number.isInteger(c.uid) && Number.isInteger(c.gid) ? c : undefined;
  } catch {
    return undefined;
  }
}
