// Kernel-side objects of the simulator: filters, server ports, client ports (one per connection) and the
// per-connection message queue that FltSendMessage / FilterGetMessage / FilterReplyMessage go through.
import { NtStatus, Win32, hresultFromNtStatus, hresultFromWin32, ntSuccess } from '../status';
import {
  FILTER_MESSAGE_HEADER_BYTES,
  FILTER_REPLY_HEADER_BYTES,
  FrameType,
  MAX_PAYLOAD,
  MAX_PENDING_GETS,
  ProtocolError,
  encodeGetComplete,
  encodeGetCompleteHead,
  encodeI32,
} from './wire';
import {
  NtStatusError,
  type ClientPort,
  type ClientPortStats,
  type CommunicationPortOptions,
  type PeerIdentity,
  type PortCaller,
  type PortSecurity,
  type SendMessageOptions,
  type SendMessageResult,
  type ServerPort,
} from './types';

/** What the kernel objects need from the simulator that owns them. */
export interface SimulatorCore {
  log(line: string): void;
  nextMessageId(): bigint;
  nextClientId(): number;
  registerPortName(port: ServerPortImpl): void;
  unregisterPortName(port: ServerPortImpl): void;
  notify(event: 'connect' | 'disconnect', client: ClientPort): void;
  /** The filter's unload finished: the model removes its instances (their teardowns run) and frees its name. */
  filterUnloaded(filter: SimulatedFilter): void | Promise<void>;
  /** SimulatorLimits.maxQueuedMessageBytes. */
  readonly maxQueuedMessageBytes: number;
}

/** The stream under a connection, as the kernel objects see it. */
export interface StreamLink {
  readonly open: boolean;
  /** The peer is not taking what it is sent: hold messages back until linkDrained(). */
  readonly congested: boolean;
  /** Writes one frame; its payload is `payload` followed by `tail` (written as is, not copied). */
  send(type: number, id: number, payload: Buffer, tail?: Buffer): void;
  /** Flush, then close the stream. */
  end(): void;
}

const EMPTY = Buffer.alloc(0);
const MAX_PORT_NAME_CHARS = 0x7fff; // the CONNECT frame carries the name's byte length in a u16
const MAX_MESSAGE_DATA = MAX_PAYLOAD - FILTER_MESSAGE_HEADER_BYTES;
const MAX_REPLY_LENGTH = 0xffffffff - FILTER_REPLY_HEADER_BYTES;
/**
 * What a FltSendMessage message costs its connection besides its data, while it waits for a get or for its
 * reply: the bookkeeping (message, promise, timer), measured at roughly this much. It bounds how many empty
 * messages can wait.
 */
export const MESSAGE_CHARGE_BYTES = 512;

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** The status a callback failure stands for; non-NtStatusError throws and success codes become STATUS_UNSUCCESSFUL. */
function failureStatus(err: unknown, core: SimulatorCore, what: string): number {
  if (err instanceof NtStatusError && !ntSuccess(err.status)) return err.status;
  core.log(`${what} failed with ${describe(err)}; reporting STATUS_UNSUCCESSFUL`);
  return NtStatus.STATUS_UNSUCCESSFUL;
}

function validateSecurity(security: unknown): PortSecurity {
  if (security === undefined || security === 'admins') return 'admins';
  if (typeof security !== 'object' || security === null) {
    throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, "security must be 'admins' or an object");
  }
  if ('check' in security) {
    const check = (security as { check: unknown }).check;
    if (typeof check !== 'function') {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, 'security.check must be a function');
    }
    return { check: check as (caller: PortCaller) => boolean };
  }
  const s = security as { allowUids?: unknown; allowGids?: unknown; includeAdmins?: unknown };
  const ids = (v: unknown, what: string): number[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && (x as number) >= 0)) {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, `security.${what} must be an array of ids`);
    }
    return [...(v as number[])];
  };
  if (s.includeAdmins !== undefined && typeof s.includeAdmins !== 'boolean') {
    throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, 'security.includeAdmins must be a boolean');
  }
  const out: { allowUids?: number[]; allowGids?: number[]; includeAdmins?: boolean } = {};
  const uids = ids(s.allowUids, 'allowUids');
  const gids = ids(s.allowGids, 'allowGids');
  if (uids) out.allowUids = uids;
  if (gids) out.allowGids = gids;
  if (s.includeAdmins !== undefined) out.includeAdmins = s.includeAdmins;
  return out;
}

interface PendingMessage {
  readonly id: bigint;
  /** Released (emptied) once delivered: only the stream's write buffer needs it then. */
  data: Buffer;
  /** Bytes charged to the connection's queue budget (data + MESSAGE_CHARGE_BYTES, then the latter alone). */
  charge: number;
  readonly replyLength: number | undefined;
  state: 'queued' | 'delivered' | 'done';
  timer?: NodeJS.Timeout;
  detachAbort?: () => void;
  resolve(result: SendMessageResult): void;
  reject(reason: unknown): void;
}

/** The simulator's ClientPort: one connection, its FltSendMessage queue and its gets. */
export class ClientPortImpl implements ClientPort {
  readonly id: number;
  readonly portName: string;
  readonly serverPort: ServerPortImpl;
  readonly context: Buffer;
  readonly identity: PeerIdentity;
  readonly processId: number | undefined;
  /** Resolves when the connection is over and its disconnect callback (if any) has finished. */
  readonly settled: Promise<void>;

  private state: 'connecting' | 'connected' | 'closed' = 'connecting';
  private connectionCookie: unknown = undefined;
  private closeRequested = false;
  private streamGone = false;
  private readonly gets = new Map<number, number>(); // getId -> capacity, in GET order
  // Insertion-ordered; a Set so that a message withdrawn (timeout, abort) from anywhere in it leaves in O(1).
  private readonly queue = new Set<PendingMessage>();
  private readonly awaiting = new Map<bigint, PendingMessage>();
  /** Bytes charged by the messages in queue and awaiting (see maxQueuedMessageBytes). */
  private held = 0;
  /** Whether the current run of refusals (queue full) has been logged. */
  private refusalLogged = false;
  private repliesAccepted = 0;
  private repliesRefused = 0;
  private resolveSettled!: () => void;

  constructor(
    private readonly core: SimulatorCore,
    private readonly link: StreamLink,
    port: ServerPortImpl,
    context: Buffer,
    identity: PeerIdentity,
    processId: number | undefined,
  ) {
    this.id = core.nextClientId();
    this.serverPort = port;
    this.portName = port.name;
    this.context = context;
    this.identity = Object.freeze({ ...identity });
    this.processId = processId;
    this.settled = new Promise<void>((resolve) => {
      this.resolveSettled = resolve;
    });
  }

  get cookie(): unknown {
    return this.connectionCookie;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /**
   * Bytes charged to this connection by FltSendMessage: the data of messages waiting for a get, plus
   * MESSAGE_CHARGE_BYTES for each message waiting for a get or for its reply.
   */
  get queuedMessageBytes(): number {
    return this.held;
  }

  stats(): ClientPortStats {
    return {
      pendingGets: this.gets.size,
      queuedMessages: this.queue.size,
      awaitingReply: this.awaiting.size,
      repliesAccepted: this.repliesAccepted,
      repliesRefused: this.repliesRefused,
    };
  }

  /** Runs ConnectNotify; returns the HRESULT for CONNECT_RESULT. */
  async runConnect(): Promise<number> {
    const port = this.serverPort;
    let cookie: unknown;
    try {
      cookie = port.options.connect ? await port.options.connect(this, this.context) : undefined;
    } catch (err) {
      port.connecting.delete(this);
      this.state = 'closed';
      this.resolveSettled();
      return hresultFromNtStatus(failureStatus(err, this.core, `connect callback of port ${port.name}`));
    }
    port.connecting.delete(this);
    this.connectionCookie = cookie;
    this.state = 'connected';
    port.connections.add(this);
    if (this.streamGone) this.teardown();
    return 0;
  }

  /** Called after CONNECT_RESULT S_OK went out: applies a kernel close that arrived during ConnectNotify. */
  completeConnect(): void {
    if (this.state !== 'connected') return;
    this.core.notify('connect', this);
    if (this.closeRequested) this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.closeRequested = true;
      return;
    }
    if (this.link.open) {
      this.link.send(FrameType.DISCONNECT, 0, encodeI32(NtStatus.STATUS_PORT_DISCONNECTED));
      this.link.end();
    }
    this.teardown();
  }

  /** The user's handle is gone (stream closed, protocol error). */
  onStreamClosed(): void {
    if (this.state === 'connecting') this.streamGone = true;
    else this.teardown();
  }

  private teardown(): void {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    this.serverPort.connections.delete(this);
    this.serverPort.connecting.delete(this);
    this.gets.clear();
    for (const m of [...this.queue, ...this.awaiting.values()]) {
      this.finish(m, { status: NtStatus.STATUS_PORT_DISCONNECTED });
    }
    if (!wasConnected) {
      this.resolveSettled();
      return;
    }
    const disconnect = this.serverPort.options.disconnect;
    this.serverPort.disconnecting.add(this);
    void (async () => {
      try {
        if (disconnect) await disconnect(this);
      } catch (err) {
        this.core.log(`disconnect callback of port ${this.portName} failed with ${describe(err)}`);
      }
      this.serverPort.disconnecting.delete(this);
      this.resolveSettled();
    })();
    this.core.notify('disconnect', this);
  }

  // ---- kernel -> user messages ------------------------------------------------------------------------

  sendMessage(data: Buffer, options: SendMessageOptions): Promise<SendMessageResult> {
    if (this.state !== 'connected' || !this.link.open) {
      return Promise.resolve({ status: NtStatus.STATUS_PORT_DISCONNECTED });
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Bounded like pool memory: past the budget FltSendMessage fails as it would when the kernel cannot
    // allocate the message. The data part is waived while nothing waits for a get, so any single message fits.
    const limit = this.core.maxQueuedMessageBytes;
    const charge = data.length + MESSAGE_CHARGE_BYTES;
    if (this.held + MESSAGE_CHARGE_BYTES > limit || (this.queue.size > 0 && this.held + charge > limit)) {
      if (!this.refusalLogged) {
        this.refusalLogged = true;
        this.core.log(
          `client ${this.id} of port ${this.portName}: ${this.held} bytes of messages held (limit ${limit}); ` +
            'FltSendMessage returns STATUS_INSUFFICIENT_RESOURCES until the client takes some',
        );
      }
      return Promise.resolve({ status: NtStatus.STATUS_INSUFFICIENT_RESOURCES });
    }
    if (this.held + charge <= limit / 2) this.refusalLogged = false; // log the next run of refusals, not each one
    this.held += charge;
    return new Promise<SendMessageResult>((resolve, reject) => {
      const m: PendingMessage = {
        id: this.core.nextMessageId(),
        data,
        charge,
        replyLength: options.replyLength,
        state: 'queued',
        resolve,
        reject,
      };
      if (signal) {
        const onAbort = (): void => this.withdraw(m, undefined, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        m.detachAbort = () => signal.removeEventListener('abort', onAbort);
      }
      if (options.timeout !== undefined) {
        m.timer = setTimeout(() => this.withdraw(m, { status: NtStatus.STATUS_TIMEOUT }), options.timeout);
      }
      this.queue.add(m);
      this.pump();
    });
  }

  addGet(getId: number, capacity: number): void {
    if (this.state !== 'connected') return;
    if (this.gets.has(getId)) throw new ProtocolError(`GET id ${getId} is already pending`);
    if (this.gets.size >= MAX_PENDING_GETS) throw new ProtocolError(`more than ${MAX_PENDING_GETS} pending gets`);
    this.gets.set(getId, capacity);
    this.pump();
  }

  cancelGet(getId: number): void {
    if (!this.gets.delete(getId)) return; // already completed: CANCEL is ignored
    this.link.send(
      FrameType.GET_COMPLETE,
      getId,
      encodeGetComplete({ status: NtStatus.STATUS_CANCELLED, replyLength: 0, messageId: 0n, data: EMPTY }),
    );
  }

  /** FilterReplyMessage; returns the HRESULT for REPLY_RESULT. */
  reply(status: number, messageId: bigint, data: Buffer): number {
    const m = this.awaiting.get(messageId);
    if (!m || m.replyLength === undefined) {
      this.repliesRefused++;
      return Win32.ERROR_FLT_NO_WAITER_FOR_REPLY;
    }
    this.repliesAccepted++;
    if (data.length > m.replyLength) {
      this.finish(m, {
        status: NtStatus.STATUS_BUFFER_OVERFLOW,
        reply: Buffer.from(data.subarray(0, m.replyLength)),
        replyStatus: status >>> 0,
      });
    } else {
      this.finish(m, { status: NtStatus.STATUS_SUCCESS, reply: data, replyStatus: status >>> 0 });
    }
    return 0;
  }

  /** The stream's write buffer drained: deliver what waited for it. */
  linkDrained(): void {
    this.pump();
  }

  private pump(): void {
    // A peer that does not read its completions gets no more: messages wait here, in the bounded queue.
    while (this.state === 'connected' && this.gets.size > 0 && this.queue.size > 0) {
      if (!this.link.open || this.link.congested) return;
      const [getId, capacity] = this.gets.entries().next().value as [number, number];
      this.gets.delete(getId);
      const m = this.queue.values().next().value as PendingMessage;
      const needed = FILTER_MESSAGE_HEADER_BYTES + m.data.length;
      if (capacity < needed) {
        // The message stays queued for a later (bigger) get; the size needed travels in replyLength.
        this.link.send(
          FrameType.GET_COMPLETE,
          getId,
          encodeGetComplete({
            status: NtStatus.STATUS_BUFFER_TOO_SMALL,
            replyLength: needed,
            messageId: 0n,
            data: EMPTY,
          }),
        );
        continue;
      }
      this.queue.delete(m);
      const replyLength = m.replyLength === undefined ? 0 : m.replyLength + FILTER_REPLY_HEADER_BYTES;
      const data = m.data;
      m.data = EMPTY;
      this.held -= data.length;
      m.charge -= data.length;
      // The data goes out as is (it is the simulator's own copy): no 16 MiB copy on the event loop.
      this.link.send(
        FrameType.GET_COMPLETE,
        getId,
        encodeGetCompleteHead({ status: NtStatus.STATUS_SUCCESS, replyLength, messageId: m.id }),
        data,
      );
      if (m.replyLength === undefined) {
        this.finish(m, { status: NtStatus.STATUS_SUCCESS });
      } else {
        m.state = 'delivered';
        this.awaiting.set(m.id, m);
      }
    }
  }

  /** Timeout or abort: take the message back if no get took it yet, or stop waiting for its reply. */
  private withdraw(m: PendingMessage, result: SendMessageResult | undefined, reason?: unknown): void {
    if (m.state === 'done') return;
    if (result) this.finish(m, result);
    else {
      this.detach(m);
      m.reject(reason);
    }
  }

  private detach(m: PendingMessage): void {
    if (m.state === 'queued') {
      this.queue.delete(m);
    } else if (m.state === 'delivered') {
      this.awaiting.delete(m.id);
    }
    m.state = 'done';
    this.held -= m.charge;
    m.charge = 0;
    m.data = EMPTY;
    if (m.timer) clearTimeout(m.timer);
    m.detachAbort?.();
  }

  private finish(m: PendingMessage, result: SendMessageResult): void {
    if (m.state === 'done') return;
    this.detach(m);
    m.resolve(result);
  }

  // ---- user -> kernel (FilterSendMessage) ---------------------------------------------------------------

  /** Runs MessageNotify; resolves to the SEND_RESULT HRESULT and output. */
  async handleSend(input: Buffer, outputCapacity: number): Promise<{ hresult: number; output: Buffer }> {
    const callback = this.serverPort.options.message;
    if (!callback) return { hresult: hresultFromWin32(Win32.ERROR_NOT_SUPPORTED), output: EMPTY };
    let out: unknown;
    try {
      out = await callback(this, input, outputCapacity);
    } catch (err) {
      const status = failureStatus(err, this.core, `message callback of port ${this.portName}`);
      return { hresult: hresultFromNtStatus(status), output: EMPTY };
    }
    if (out === undefined) return { hresult: 0, output: EMPTY };
    if (!(out instanceof Uint8Array)) {
      this.core.log(
        `message callback of port ${this.portName} returned a non-Uint8Array; reporting STATUS_UNSUCCESSFUL`,
      );
      return { hresult: hresultFromNtStatus(NtStatus.STATUS_UNSUCCESSFUL), output: EMPTY };
    }
    if (out.length > outputCapacity) {
      return { hresult: hresultFromNtStatus(NtStatus.STATUS_BUFFER_TOO_SMALL), output: EMPTY };
    }
    if (out.length > MAX_PAYLOAD - 4) {
      this.core.log(`message callback of port ${this.portName} returned more than the wire can carry`);
      return { hresult: hresultFromNtStatus(NtStatus.STATUS_INSUFFICIENT_RESOURCES), output: EMPTY };
    }
    return { hresult: 0, output: Buffer.from(out.buffer, out.byteOffset, out.byteLength) };
  }
}

/** The simulator's ServerPort: a name in the namespace, its options and its connections. */
export class ServerPortImpl implements ServerPort {
  readonly name: string;
  readonly cookie: unknown;
  readonly maxConnections: number;
  readonly security: PortSecurity;
  readonly connections = new Set<ClientPortImpl>();
  /** Connections whose connect callback is still running (they count against maxConnections). */
  readonly connecting = new Set<ClientPortImpl>();
  /** Connections that ended whose disconnect callback has not returned yet (FltUnregisterFilter waits for them). */
  readonly disconnecting = new Set<ClientPortImpl>();
  private isClosed = false;

  constructor(
    private readonly core: SimulatorCore,
    readonly filter: SimulatedFilter,
    name: string,
    readonly options: CommunicationPortOptions,
  ) {
    this.name = name;
    this.cookie = options.cookie;
    this.maxConnections = options.maxConnections;
    this.security = validateSecurity(options.security);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.core.unregisterPortName(this);
  }

  /** All connections, established or being set up. */
  allClients(): ClientPortImpl[] {
    return [...this.connecting, ...this.connections];
  }
}

/** A registered minifilter (FltRegisterFilter): owns communication ports and sends messages to clients. */
export class SimulatedFilter {
  /** The name registerFilter was given (unique per simulator, ignoring case). */
  readonly name: string;
  /** The altitude registerFilter was given, if any. */
  readonly altitude: string | undefined;
  private readonly ports = new Set<ServerPortImpl>();
  private unloading: Promise<void> | undefined;

  /** @internal use FilterManagerSimulator.registerFilter */
  constructor(
    private readonly core: SimulatorCore,
    name: string,
    altitude: string | undefined,
  ) {
    this.name = name;
    this.altitude = altitude;
  }

  /** True once unload() was called. */
  get unloaded(): boolean {
    return this.unloading !== undefined;
  }

  /** FltCreateCommunicationPort. */
  createCommunicationPort(name: string, options: CommunicationPortOptions): ServerPort {
    if (this.unloading) throw new NtStatusError(NtStatus.STATUS_FLT_DELETING_OBJECT, `filter ${this.name} is unloaded`);
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_PORT_NAME_CHARS) {
      throw new NtStatusError(NtStatus.STATUS_OBJECT_NAME_INVALID, 'port name must be a non-empty string');
    }
    if (typeof options !== 'object' || options === null) {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, 'options are required');
    }
    const max = options.maxConnections;
    if (!Number.isInteger(max) || max <= 0 || max > 0x7fffffff) {
      throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, 'maxConnections must be an integer > 0');
    }
    for (const key of ['connect', 'disconnect', 'message'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'function') {
        throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, `${key} must be a function`);
      }
    }
    const port = new ServerPortImpl(this.core, this, name, options);
    this.core.registerPortName(port); // throws STATUS_OBJECT_NAME_COLLISION
    this.ports.add(port);
    return port;
  }

  /**
   * FltSendMessage. Resolves with STATUS_SUCCESS, STATUS_TIMEOUT, STATUS_BUFFER_OVERFLOW (reply truncated),
   * STATUS_PORT_DISCONNECTED or STATUS_INSUFFICIENT_RESOURCES (the connection's queue budget,
   * SimulatorLimits.maxQueuedMessageBytes, is used up: the message was not queued); rejects with
   * NtStatusError(STATUS_INVALID_PARAMETER) on bad arguments and with signal.reason when aborted.
   */
  async sendMessage(
    client: ClientPort,
    data: Uint8Array,
    options: SendMessageOptions = {},
  ): Promise<SendMessageResult> {
    const bad = (what: string): NtStatusError => new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER, what);
    if (!(client instanceof ClientPortImpl) || client.serverPort.filter !== this) {
      throw bad('client is not a connection of this filter');
    }
    if (!(data instanceof Uint8Array)) throw bad('data must be a Uint8Array');
    if (data.length > MAX_MESSAGE_DATA) throw bad(`data longer than ${MAX_MESSAGE_DATA} bytes`);
    const { replyLength, timeout, signal } = options;
    if (
      replyLength !== undefined &&
      (!Number.isInteger(replyLength) || replyLength < 0 || replyLength > MAX_REPLY_LENGTH)
    ) {
      throw bad('replyLength must be an integer >= 0');
    }
    if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout >= 0) || timeout > 0x7fffffff)) {
      throw bad('timeout must be a number of milliseconds >= 0');
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw bad('signal must be an AbortSignal');
    return client.sendMessage(Buffer.from(data), { replyLength, timeout, signal });
  }

  /**
   * FltUnregisterFilter: closes the filter's server ports and ends every connection; waits for the callbacks,
   * then its instances are removed (their teardowns awaited) and its name is free again.
   */
  unload(): Promise<void> {
    if (this.unloading) return this.unloading;
    const clients: ClientPortImpl[] = [];
    const ending: ClientPortImpl[] = []; // ended before: their disconnect callbacks may still run
    for (const port of this.ports) {
      port.close();
      clients.push(...port.allClients());
      ending.push(...port.disconnecting);
    }
    for (const client of clients) client.close();
    this.unloading = Promise.all([...clients, ...ending].map((c) => c.settled)).then(() =>
      this.core.filterUnloaded(this),
    );
    return this.unloading;
  }
}
