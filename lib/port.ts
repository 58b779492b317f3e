// FilterPort: one connection to a minifilter's communication port.
//
// user -> kernel: send() runs FilterSendMessage on a worker thread.
// kernel -> user: messages()/serve() start the native receive loop (N overlapped FilterGetMessage calls on an
// I/O completion port, completions handed to JS in batches). Each message holds one of the N slots until it
// is replied to or released, so a slow consumer means fewer outstanding gets, never unbounded memory.
import { EventEmitter } from 'node:events';
import {
  EventKind,
  MESSAGE_HEADER_SIZE,
  REPLY_HEADER_SIZE,
  loadBinding,
  type Backend,
  type Binding,
  type NativeMessage,
  type NativePort,
} from './binding';
import {
  FilterError,
  FltmgrError,
  abortError,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  type FilterSyscall,
} from './errors';

/** Longest port name accepted (a UNICODE_STRING holds at most 32767 UTF-16 code units). */
export const MAX_PORT_NAME_LENGTH = 32767;
/**
 * Largest connection context. The API takes a WORD; Filter Manager puts the context in an extended
 * attribute with its own header, so the practical limit is lower: 0xFFE8 ([unverified] on Windows).
 */
export const MAX_CONTEXT_SIZE = 0xffe8;
/** Largest receive concurrency (outstanding FilterGetMessage calls) per port. */
export const MAX_CONCURRENCY = 4096;
const MAX_BUFFER = 0x7fffffff;

/** Options of {@link FilterPort.connect}. */
export interface ConnectOptions {
  /** Bytes passed to the minifilter's ConnectNotify (lpContext). At most MAX_CONTEXT_SIZE. */
  context?: Uint8Array;
  /** FLT_PORT_FLAG_SYNC_HANDLE: a synchronous handle, for send() only (Windows 8.1+). */
  syncHandle?: boolean;
  /**
   * Talk to the Filter Manager simulator instead of the real one: an endpoint string (docs/wire-protocol.md),
   * or true for the FLTMGR_SIMULATOR environment variable. Default: the real Filter Manager on Windows unless
   * FLTMGR_SIMULATOR is set; the simulator (FLTMGR_SIMULATOR) elsewhere.
   */
  simulator?: string | boolean;
  /** Aborting rejects with an AbortError; a connection made after all is closed. */
  signal?: AbortSignal;
}

/** Options of {@link FilterPort.send}. */
export interface SendOptions {
  /** Size of the output buffer handed to the minifilter's MessageNotify. Default 0 (no output). */
  outputSize?: number;
  /**
   * Rejects the promise with an AbortError. A send already handed to the kernel cannot be recalled: the
   * minifilter may still process it.
   */
  signal?: AbortSignal;
}

/** Options of {@link FilterPort.messages} (and {@link FilterPort.serve}). */
export interface ReceiveOptions {
  /** Outstanding FilterGetMessage calls = messages your code may hold at once. Default 16. */
  concurrency?: number;
  /** Initial receive buffer per slot in bytes, FILTER_MESSAGE_HEADER included. Default 4096 + 16. */
  bufferSize?: number;
  /** A slot's buffer doubles up to this on ERROR_INSUFFICIENT_BUFFER. Default 1 MiB. */
  maxBufferSize?: number;
  /** Stops receiving: the iterator / serve() rejects with an AbortError. */
  signal?: AbortSignal;
}

/** Options of {@link FilterPort.serve}. */
export interface ServeOptions extends ReceiveOptions {
  /**
   * Called when a handler throws or rejects; serving goes on. Without it, serve() stops and rejects with the
   * handler's error.
   */
  onError?: (error: unknown, message: FilterMessage) => void;
}

/**
 * A {@link FilterPort.serve} handler: the bytes it returns (or resolves) are the reply to a message that expects
 * one; nothing releases the message unanswered. It may also call `message.reply()` itself.
 */
export type MessageHandler = (message: FilterMessage) => Uint8Array | void | Promise<Uint8Array | void>;

/** Options of {@link FilterMessage.reply}. */
export interface ReplyOptions {
  /** FILTER_REPLY_HEADER.Status (an NTSTATUS). Default 0. */
  status?: number;
}

interface PortEvents {
  disconnect: [error: FilterError];
  close: [];
}

/** A message from the minifilter (FltSendMessage). */
export class FilterMessage {
  /** FILTER_MESSAGE_HEADER.MessageId */
  readonly id: bigint;
  /** The bytes after FILTER_MESSAGE_HEADER. */
  readonly data: Buffer;
  /**
   * FILTER_MESSAGE_HEADER.ReplyLength: the reply bytes the minifilter waits for, FILTER_REPLY_HEADER (16)
   * included; 0 when it expects no reply. Not the simulator's `sendMessage` option of the same name, which
   * counts the data only (this is 16 more); {@link FilterMessage.maxReplySize} is the data size.
   */
  readonly replyLength: number;
  readonly #receiver: ReceiveLoop;
  readonly #slot: number;
  #settled = false;

  /** @internal */
  constructor(receiver: ReceiveLoop, slot: number, native: NativeMessage) {
    this.#receiver = receiver;
    this.#slot = slot;
    this.id = native.id;
    this.data = native.data;
    this.replyLength = native.replyLength;
  }

  /** Whether the minifilter waits for a reply (replyLength > 0). */
  get expectsReply(): boolean {
    return this.replyLength > 0;
  }

  /** Most data bytes reply() accepts: replyLength minus FILTER_REPLY_HEADER. */
  get maxReplySize(): number {
    return Math.max(0, this.replyLength - REPLY_HEADER_SIZE);
  }

  /** True once replied to or released. */
  get settled(): boolean {
    return this.#settled;
  }

  /**
   * FilterReplyMessage with FILTER_REPLY_HEADER { status, id } + data. Resolves when Filter Manager took the
   * reply; rejects with FilterError ERROR_FLT_NO_WAITER_FOR_REPLY when the minifilter stopped waiting.
   */
  reply(data?: Uint8Array, options: ReplyOptions = {}): Promise<void> {
    try {
      const bytes = data === undefined ? undefined : checkBytes('reply data', data);
      const status = options.status ?? 0;
      if (!Number.isInteger(status) || status < -0x80000000 || status > 0xffffffff) {
        throw outOfRange('options.status', 'a 32-bit NTSTATUS', status);
      }
      if (!this.expectsReply) {
        throw new FltmgrError(
          'ERR_NO_REPLY_EXPECTED',
          `message ${this.id} expects no reply (FltSendMessage had no reply buffer)`,
        );
      }
      if (this.#settled)
        throw new FltmgrError('ERR_MESSAGE_SETTLED', `message ${this.id} was already replied to or released`);
      if (this.replyLength < REPLY_HEADER_SIZE) {
        // No reply can ever fit: give the slot back so receiving goes on.
        this.release();
        throw new FltmgrError(
          'ERR_REPLY_TOO_LARGE',
          `message ${this.id} has ReplyLength ${this.replyLength}, less than the ${REPLY_HEADER_SIZE}-byte FILTER_REPLY_HEADER, so no ` +
            'reply fits; the message was released (a minifilter never sends this: the peer is misbehaving)',
        );
      }
      const size = bytes?.byteLength ?? 0;
      if (size > this.maxReplySize) {
        throw new FltmgrError(
          'ERR_REPLY_TOO_LARGE',
          `reply of ${size} bytes is larger than the ${this.maxReplySize} bytes the minifilter waits for ` +
            `(ReplyLength ${this.replyLength} includes the ${REPLY_HEADER_SIZE}-byte FILTER_REPLY_HEADER)`,
        );
      }
      // Settled once the native layer took the reply; if it refused, the slot was given back (released).
      this.#settled = true;
      return this.#receiver.reply(this.#slot, status | 0, bytes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Gives the slot back without replying (a minifilter waiting for a reply then times out). Idempotent. */
  release(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#receiver.release(this.#slot);
  }
}

/** A connection to a minifilter's communication port. */
export class FilterPort extends EventEmitter<PortEvents> {
  /** The port name it was connected with. */
  readonly name: string;
  /** 'fltlib' (the real Filter Manager, through fltlib.dll) or 'simulator'. */
  readonly backend: Backend;
  readonly #native: NativePort;
  readonly #syncHandle: boolean;
  /** Sends handed to the native layer and not yet settled: close() rejects them. */
  readonly #sends = new Set<(error: unknown) => void>();
  #receiver: ReceiveLoop | undefined;
  #closing: Promise<void> | undefined;
  #disconnected = false;

  private constructor(name: string, native: NativePort, backend: Backend, syncHandle: boolean) {
    super();
    this.name = name;
    this.#native = native;
    this.backend = backend;
    this.#syncHandle = syncHandle;
  }

  /** FilterConnectCommunicationPort. Rejects with FilterError (ERROR_FILE_NOT_FOUND: minifilter not loaded). */
  static async connect(name: string, options: ConnectOptions = {}): Promise<FilterPort> {
    checkPortName(name);
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options);
    const context = options.context === undefined ? undefined : checkBytes('options.context', options.context);
    if (context !== undefined && context.byteLength > MAX_CONTEXT_SIZE) {
      throw outOfRange('options.context.byteLength', `at most ${MAX_CONTEXT_SIZE}`, context.byteLength);
    }
    const signal = checkSignal(options.signal);
    if (signal?.aborted) throw abortError(signal);
    const binding = loadBinding();
    const { backend, endpoint } = chooseBackend(options.simulator, binding.info().fltlib);
    if (endpoint !== undefined)
      checkEndpoint(binding, endpoint, options.simulator === undefined || options.simulator === true);
    const pending = binding.connect(name, {
      backend,
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(context !== undefined ? { context } : {}),
      syncHandle: options.syncHandle === true,
    });
    const result = await raceAbort(pending, signal, (late) => {
      // Aborted while connecting: close the connection if it was made after all.
      void late.then((r) => r.port?.close()).catch(() => undefined);
    });
    if (result.port === undefined)
      throw new FilterError(result.hresult, 'FilterConnectCommunicationPort', JSON.stringify(name));
    return new FilterPort(name, result.port, backend, options.syncHandle === true);
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** FilterSendMessage: runs the minifilter's MessageNotify; resolves its output bytes. */
  send(data?: Uint8Array | null, options: SendOptions = {}): Promise<Buffer> {
    let promise: Promise<Buffer>;
    try {
      const input = data === undefined || data === null ? undefined : checkBytes('data', data);
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options);
      const outputSize = options.outputSize ?? 0;
      if (!Number.isInteger(outputSize) || outputSize < 0 || outputSize > MAX_BUFFER) {
        throw outOfRange('options.outputSize', `an integer from 0 to ${MAX_BUFFER}`, outputSize);
      }
      if (input !== undefined && input.byteLength > MAX_BUFFER)
        throw outOfRange('data.byteLength', `at most ${MAX_BUFFER}`, input.byteLength);
      const limit = loadBinding().limits.simulatorMaxSendInput;
      if (this.backend === 'simulator' && input !== undefined && input.byteLength > limit) {
        throw outOfRange(
          'data.byteLength',
          `at most ${limit} (the simulator's wire protocol carries up to 16 MiB a frame)`,
          input.byteLength,
        );
      }
      const signal = checkSignal(options.signal);
      this.#assertOpen();
      if (signal?.aborted) throw abortError(signal);
      const pending = this.#native.send(input, outputSize);
      promise = new Promise<Buffer>((resolve, reject) => {
        const settle = (error: unknown): void => {
          this.#sends.delete(settle);
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        };
        // A send no thread has started is withdrawn, so it never reaches the minifilter; one already in
        // MessageNotify cannot be recalled.
        const onAbort = (): void => {
          settle(abortError(signal as AbortSignal));
          this.#native.withdraw(pending.id);
        };
        this.#sends.add(settle);
        signal?.addEventListener('abort', onAbort, { once: true });
        pending.result.then((result) => {
          if (!this.#sends.has(settle)) return; // already rejected (abort, close)
          this.#sends.delete(settle);
          signal?.removeEventListener('abort', onAbort);
          if (result.output === undefined) reject(this.#filterError(result.hresult, 'FilterSendMessage'));
          else resolve(result.output);
        }, settle);
      });
    } catch (error) {
      return Promise.reject(error);
    }
    return promise;
  }

  /**
   * Messages from the minifilter as an async iterator. Messages that expect no reply give their slot back as
   * soon as the iterator hands them out; the others hold it until reply() or release(). Ends when the port is
   * closed; throws FilterError when the connection is lost. Leaving the loop stops receiving.
   */
  messages(options: ReceiveOptions = {}): AsyncIterableIterator<FilterMessage> {
    const loop = this.#startReceiving(options);
    return loop.iterator();
  }

  /**
   * Calls handler for each message, up to `concurrency` at once. If a message expects a reply and the handler
   * has not replied, the bytes it returns are the reply; returning nothing releases the message unanswered.
   * Resolves when the port is closed; rejects when the connection is lost or (without onError) a handler throws.
   * A reply the minifilter no longer waits for does not stop serving (onError hears of it).
   */
  serve(handler: MessageHandler, options: ServeOptions = {}): Promise<void> {
    try {
      if (typeof handler !== 'function') throw invalidArgType('handler', 'a function', handler);
      if (options.onError !== undefined && typeof options.onError !== 'function') {
        throw invalidArgType('options.onError', 'a function', options.onError);
      }
      const loop = this.#startReceiving(options);
      return loop.serve(handler, options.onError);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Closes the connection now, whatever the minifilter (or simulator) is doing: stops receiving (messages not
   * yet handed to your code are abandoned; pending replies reject with ERR_PORT_CLOSED), cancels sends still
   * in flight (they reject with FilterError ERROR_OPERATION_ABORTED: the minifilter may or may not have
   * processed them) and closes the handle; the minifilter sees the disconnect. It does not wait on the peer,
   * so it settles even when the peer stopped answering. To finish sends first, await them before close().
   * Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        const stopped = this.#receiver?.stop(undefined);
        const cancelled = new FilterError(0x800703e3, 'FilterSendMessage', this.name);
        for (const reject of [...this.#sends]) reject(cancelled);
        // Cancels everything pending on the handle: the receive thread may be inside FilterReplyMessage and a
        // send thread inside FilterSendMessage, each waiting on a peer that may never answer.
        this.#native.abort();
        await stopped;
        await this.#native.close();
        this.emit('close');
      })();
    }
    return this.#closing;
  }

  /** While receiving, keep the event loop alive (the default). */
  ref(): this {
    this.#native.ref();
    return this;
  }

  /** While receiving, let the process exit if nothing else keeps it alive. */
  unref(): this {
    this.#native.unref();
    return this;
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new FltmgrError('ERR_PORT_CLOSED', `port ${this.name} is closed`);
  }

  #startReceiving(options: ReceiveOptions): ReceiveLoop {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options);
    const concurrency = options.concurrency ?? 16;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw outOfRange('options.concurrency', `an integer from 1 to ${MAX_CONCURRENCY}`, concurrency);
    }
    const bufferSize = options.bufferSize ?? 4096 + MESSAGE_HEADER_SIZE;
    if (!Number.isInteger(bufferSize) || bufferSize < MESSAGE_HEADER_SIZE || bufferSize > MAX_BUFFER) {
      throw outOfRange('options.bufferSize', `an integer from ${MESSAGE_HEADER_SIZE} to ${MAX_BUFFER}`, bufferSize);
    }
    const maxBufferSize = options.maxBufferSize ?? Math.max(bufferSize, 1024 * 1024);
    if (!Number.isInteger(maxBufferSize) || maxBufferSize < bufferSize || maxBufferSize > MAX_BUFFER) {
      throw outOfRange('options.maxBufferSize', `an integer from bufferSize to ${MAX_BUFFER}`, maxBufferSize);
    }
    const signal = checkSignal(options.signal);
    this.#assertOpen();
    if (this.#syncHandle) {
      throw new FltmgrError(
        'ERR_SYNC_HANDLE',
        'a port connected with syncHandle cannot receive messages (a pending get would block every send on the ' +
          'handle): connect without syncHandle',
      );
    }
    if (this.#receiver?.active)
      throw new FltmgrError('ERR_ALREADY_RECEIVING', `port ${this.name} is already receiving`);
    if (this.#disconnected) throw this.#filterError(0x80070006, 'FilterGetMessage');
    const loop = new ReceiveLoop(this.#native, this.name, (error) => this.#onDisconnect(error));
    loop.start(concurrency, bufferSize, maxBufferSize, signal);
    this.#receiver = loop;
    return loop;
  }

  #onDisconnect(error: FilterError): void {
    if (this.#disconnected || this.#closing !== undefined) return; // close() ends the connection itself
    this.#disconnected = true;
    // On the next tick: listeners (often calling close()) then run after the receive loop has recorded how it
    // ended, and a throwing listener cannot cut a batch short.
    process.nextTick(() => {
      if (this.listenerCount('disconnect') > 0) this.emit('disconnect', error);
    });
  }

  #filterError(hresult: number, syscall: FilterSyscall): FilterError {
    const error = new FilterError(hresult, syscall, this.name);
    if (error.disconnected && this.#closing === undefined) this.#onDisconnect(error);
    return error;
  }
}

type Waiter = { resolve: (r: IteratorResult<FilterMessage>) => void; reject: (e: unknown) => void };

/** JS half of the native receive loop for one messages()/serve() call. */
class ReceiveLoop {
  readonly #native: NativePort;
  readonly #portName: string;
  readonly #onDisconnect: (error: FilterError) => void;
  readonly #replies = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  readonly #queue: FilterMessage[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #stopRequested = false;
  #ended: { error: unknown } | undefined;
  #onMessage: ((message: FilterMessage) => void) | undefined;
  #removeAbortListener: (() => void) | undefined;
  active = true;

  constructor(native: NativePort, portName: string, onDisconnect: (error: FilterError) => void) {
    this.#native = native;
    this.#portName = portName;
    this.#onDisconnect = onDisconnect;
    this.#stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
  }

  start(concurrency: number, bufferSize: number, maxBufferSize: number, signal: AbortSignal | undefined): void {
    this.#native.startReceiving(concurrency, bufferSize, maxBufferSize, (batch) => this.#onBatch(batch));
    if (signal !== undefined) {
      if (signal.aborted) {
        void this.stop({ error: abortError(signal) });
      } else {
        const onAbort = (): void => void this.stop({ error: abortError(signal) });
        signal.addEventListener('abort', onAbort, { once: true });
        this.#removeAbortListener = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /** Ends the loop: with an error (disconnect, abort, handler failure) or normally (undefined). */
  stop(end: { error: unknown } | undefined): Promise<void> {
    if (this.#ended === undefined) this.#ended = end ?? { error: undefined };
    this.#removeAbortListener?.();
    if (!this.#stopRequested) {
      this.#stopRequested = true;
      this.#native.stopReceiving();
    }
    // Waiters settle on the Stopped event, so when next() ends the native loop is gone and receiving can
    // start again at once.
    return this.#stopped;
  }

  reply(slot: number, status: number, data: Uint8Array | undefined): Promise<void> {
    if (this.#stopRequested) {
      return Promise.reject(
        new FltmgrError('ERR_PORT_CLOSED', `port ${this.#portName} stopped receiving; the reply was not sent`),
      );
    }
    const hr = this.#native.reply(slot, status, data);
    if (hr !== 0) {
      this.#native.release(slot); // refused: the slot must not stay held, or receiving stalls
      return Promise.reject(new FilterError(hr, 'FilterReplyMessage', this.#portName));
    }
    return new Promise((resolve, reject) => this.#replies.set(slot, { resolve, reject }));
  }

  release(slot: number): void {
    if (this.#stopRequested) return;
    this.#native.release(slot);
  }

  iterator(): AsyncIterableIterator<FilterMessage> {
    const next = (): Promise<IteratorResult<FilterMessage>> => {
      const message = this.#queue.shift();
      if (message !== undefined) return Promise.resolve(this.#handOut(message));
      if (this.#ended !== undefined) return this.#endResult();
      return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    };
    const iterator: AsyncIterableIterator<FilterMessage> = {
      next,
      return: async (): Promise<IteratorResult<FilterMessage>> => {
        await this.stop(undefined);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  serve(handler: MessageHandler, onError: ServeOptions['onError']): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const report = (error: unknown, message: FilterMessage): void => {
        if (onError === undefined) {
          void this.stop({ error });
          return;
        }
        try {
          onError(error, message);
        } catch (thrown) {
          void this.stop({ error: thrown });
        }
      };
      const run = async (message: FilterMessage): Promise<void> => {
        let result: Uint8Array | void;
        try {
          result = await handler(message);
        } catch (error) {
          message.release();
          report(error, message);
          return;
        }
        if (message.settled) return;
        if (!(message.expectsReply && result instanceof Uint8Array)) {
          message.release();
          return;
        }
        try {
          await message.reply(result);
        } catch (error) {
          message.release(); // a reply refused before it was sent (e.g. too large) must not keep the slot
          // The minifilter stopped waiting (its timeout): routine, not a reason to stop serving. A lost
          // connection ends the loop by itself; a closed port ends it too.
          const routine =
            (error instanceof FilterError && (error.code === 'ERROR_FLT_NO_WAITER_FOR_REPLY' || error.disconnected)) ||
            (error instanceof FltmgrError && error.code === 'ERR_PORT_CLOSED');
          if (!routine) report(error, message);
          else if (onError !== undefined && error instanceof FilterError && !error.disconnected) report(error, message);
        }
      };
      this.#onMessage = (message) => void run(this.#handOut(message).value);
      for (const queued of this.#queue.splice(0)) this.#onMessage(queued);
      void this.#stopped.then(() => {
        const error = this.#ended?.error;
        if (error === undefined) resolve();
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what ended the loop, as thrown (a handler may throw a non-Error)
        else reject(error);
      });
    });
  }

  #handOut(message: FilterMessage): IteratorYieldResult<FilterMessage> {
    if (!message.expectsReply) message.release();
    return { done: false, value: message };
  }

  #endResult(): Promise<IteratorResult<FilterMessage>> {
    const error = this.#ended?.error;
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what ended the loop, as thrown (a handler may throw a non-Error)
    return error === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(error);
  }

  #finishWaiters(): void {
    if (this.#ended === undefined) return;
    for (const waiter of this.#waiters.splice(0)) this.#endResult().then(waiter.resolve, waiter.reject);
  }

  #onBatch(batch: Array<number | NativeMessage | undefined>): void {
    for (let i = 0; i + 3 < batch.length; i += 4) {
      const kind = batch[i] as EventKind;
      const slot = batch[i + 1] as number;
      const hr = batch[i + 2] as number;
      switch (kind) {
        case EventKind.Message: {
          if (this.#stopRequested) break; // abandoned: the loop is ending
          const message = new FilterMessage(this, slot, batch[i + 3] as NativeMessage);
          if (this.#onMessage !== undefined) this.#onMessage(message);
          else {
            const waiter = this.#waiters.shift();
            if (waiter !== undefined) waiter.resolve(this.#handOut(message));
            else this.#queue.push(message);
          }
          break;
        }
        case EventKind.ReplyDone: {
          const pending = this.#replies.get(slot);
          this.#replies.delete(slot);
          if (pending === undefined) break;
          if (hr === 0) pending.resolve();
          else if (hr === 0x800703e3 && this.#stopRequested) {
            // Cancelled by close(): the peer had not acknowledged it.
            pending.reject(
              new FltmgrError('ERR_PORT_CLOSED', `port ${this.#portName} was closed before the reply was acknowledged`),
            );
          } else pending.reject(this.#error(hr, 'FilterReplyMessage'));
          break;
        }
        case EventKind.Disconnected:
        case EventKind.Error: {
          const error = new FilterError(hr, 'FilterGetMessage', this.#portName);
          void this.stop({ error });
          if (error.disconnected) this.#onDisconnect(error);
          break;
        }
        case EventKind.Stopped: {
          this.active = false;
          for (const pending of this.#replies.values()) {
            pending.reject(
              new FltmgrError('ERR_PORT_CLOSED', `port ${this.#portName} stopped receiving before the reply was sent`),
            );
          }
          this.#replies.clear();
          this.#queue.length = 0;
          if (this.#ended === undefined) this.#ended = { error: undefined };
          this.#finishWaiters();
          this.#resolveStopped();
          break;
        }
      }
    }
  }

  #error(hr: number, syscall: FilterSyscall): FilterError {
    const error = new FilterError(hr, syscall, this.#portName);
    if (error.disconnected) this.#onDisconnect(error);
    return error;
  }
}

function checkPortName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw invalidArgType('name', 'a string', name);
  if (name.length === 0) throw invalidArgValue('name', 'must not be empty (e.g. "\\\\MyFilterPort")');
  if (!name.startsWith('\\')) throw invalidArgValue('name', `must start with a backslash, like "\\\\${name}"`);
  if (name.length > MAX_PORT_NAME_LENGTH)
    throw outOfRange('name.length', `at most ${MAX_PORT_NAME_LENGTH}`, name.length);
  if (name.includes('\0')) throw invalidArgValue('name', 'must not contain NUL characters');
}

function checkBytes(what: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgType(what, 'a Uint8Array or Buffer', value);
  if (isDetached(value)) throw invalidArgValue(what, 'is backed by a detached ArrayBuffer');
  return value;
}

function isDetached(view: Uint8Array): boolean {
  // A detached buffer reports byteLength 0; a genuinely empty view over a live buffer does not throw on slice.
  if (view.byteLength !== 0 || view.buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(view.buffer);
    return (view.buffer as ArrayBuffer & { detached?: boolean }).detached === true;
  } catch {
    return true;
  }
}

function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal);
  return signal;
}

/** @internal Where Filter* calls go: FilterPort.connect's `simulator` option (fltmgr/manager chooses the same way). */
export function chooseBackend(
  simulator: ConnectOptions['simulator'],
  hasSystem: boolean,
): { backend: Backend; endpoint?: string } {
  const fromEnv = process.env['FLTMGR_SIMULATOR'];
  if (typeof simulator === 'string') {
    if (simulator.length === 0) throw invalidArgValue('options.simulator', 'must not be empty');
    return { backend: 'simulator', endpoint: simulator };
  }
  if (simulator !== undefined && typeof simulator !== 'boolean') {
    throw invalidArgType('options.simulator', 'a string or boolean', simulator);
  }
  if (simulator === false) {
    if (!hasSystem) {
      throw new FltmgrError(
        'ERR_BACKEND_UNAVAILABLE',
        'the real Filter Manager exists only on Windows; use the simulator here',
      );
    }
    return { backend: 'fltlib' };
  }
  if (simulator === true || !hasSystem || (fromEnv !== undefined && fromEnv !== '')) {
    if (fromEnv === undefined || fromEnv === '') {
      throw new FltmgrError(
        'ERR_SIMULATOR_NOT_CONFIGURED',
        'no Filter Manager simulator endpoint: set FLTMGR_SIMULATOR or pass { simulator: endpoint } ' +
          '(start one with `npx fltmgr-simulator --filter <module>`)',
      );
    }
    return { backend: 'simulator', endpoint: fromEnv };
  }
  return { backend: 'fltlib' };
}

/** @internal Rejects an endpoint this host cannot reach, naming where it came from. */
export function checkEndpoint(binding: Binding, endpoint: string, fromEnvironment: boolean): void {
  const why = binding.checkEndpoint(endpoint);
  if (why === undefined) return;
  const where = fromEnvironment ? 'FLTMGR_SIMULATOR' : 'options.simulator';
  throw new FltmgrError(
    'ERR_INVALID_ENDPOINT',
    `${where} is not a usable simulator endpoint (${JSON.stringify(endpoint)}): ${why}. Endpoints look like ` +
      'unix:/path/to/socket, tcp:127.0.0.1:PORT#SECRET or pipe:\\\\.\\pipe\\NAME#SECRET (docs/wire-protocol.md)',
  );
}

/** Resolves like `promise` unless `signal` aborts first; `onLate` gets the promise when abort won. */
function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onLate?: (late: Promise<T>) => void,
): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortError(signal));
      onLate?.(promise);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
