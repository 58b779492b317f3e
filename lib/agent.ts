// Agents that survive the driver's lifecycle: waitForPort() connects once the port exists (bounded, abortable,
// exponential backoff with jitter), and FilterAgent keeps serving one handler across driver unloads, reloads,
// FltCloseClientPort and a driver that starts after the agent, reporting every transition and every message
// the disconnect cut short.
import { EventEmitter } from 'node:events';
import { FilterError, FltmgrError, abortError, invalidArgType, outOfRange } from './errors';
import { HResult, Win32, hresultFromWin32 } from './status';
import { FilterPort, type ConnectOptions, type FilterMessage, type MessageHandler, type ServeOptions } from './port';

/**
 * Delays between connection attempts. Attempt n waits `min(maxDelayMs, initialDelayMs * factor^(n-1))`, less a
 * random part of up to `jitter` of it, so agents restarted together do not knock on the port in step.
 */
export interface BackoffOptions {
  /** The first delay. Default 100 ms. */
  initialDelayMs?: number;
  /** The longest delay. Default 5000 ms. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay drawn at random (0: none, 1: anywhere from 0 to the delay). Default 0.5. */
  jitter?: number;
  /** Source of randomness in [0, 1). Default Math.random. */
  random?: () => number;
}

/** The defaults of {@link BackoffOptions}. */
export const DEFAULT_BACKOFF: Readonly<Required<Omit<BackoffOptions, 'random'>>> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 5000,
  factor: 2,
  jitter: 0.5,
});

/** What a failed attempt tells the caller: {@link WaitForPortOptions.onRetry} and the agent's 'waiting' state. */
export interface RetryInfo {
  /** The attempt that failed, from 1. */
  attempt: number;
  /** How long until the next attempt. */
  delayMs: number;
  /** Why it failed (a retryable FilterError, by default). */
  error: unknown;
}

/** Options of {@link waitForPort}. */
export interface WaitForPortOptions extends ConnectOptions {
  /** Give up (FltmgrError ERR_WAIT_TIMEOUT) when no attempt succeeded within this. Default: no limit. */
  timeoutMs?: number;
  /** Delays between attempts. Default {@link DEFAULT_BACKOFF}. */
  backoff?: BackoffOptions;
  /** Which connect errors to retry. Default {@link isRetryableConnectError}. */
  retryable?: (error: unknown) => boolean;
  /** Called after each failed attempt that will be retried. */
  onRetry?: (info: RetryInfo) => void;
  /** Called before each attempt, from 1. */
  onAttempt?: (attempt: number) => void;
}

// Why these and no others: each one ends by itself when the driver (or the simulator) comes back or another
// client lets go. Access denied, a bad argument, a context ConnectNotify refused, a protocol mismatch fail the
// same way every time: retrying them forever would hide a deployment error behind a silent loop.
const RETRYABLE = new Set<number>([
  hresultFromWin32(Win32.ERROR_FILE_NOT_FOUND), // no such port: driver not loaded yet, unloading, simulator down
  hresultFromWin32(Win32.ERROR_PATH_NOT_FOUND), // the same, as some Windows versions spell it
  hresultFromWin32(Win32.ERROR_CONNECTION_COUNT_LIMIT), // MaxConnections: a previous instance's slot is still held
  HResult.E_HANDLE, // the connection ended while it was being made (driver unloading)
  hresultFromWin32(Win32.ERROR_BROKEN_PIPE), // the simulator went away mid-connect
  hresultFromWin32(Win32.ERROR_TIMEOUT), // the simulator endpoint did not answer in time
  hresultFromWin32(Win32.ERROR_NO_SYSTEM_RESOURCES), // transient shortage (the simulator's stream limit too)
  0x801f000b, // ERROR_FLT_DELETING_OBJECT: the filter or port is being torn down
]);

/**
 * Whether a FilterPort.connect failure may go away by itself: the port is missing (ERROR_FILE_NOT_FOUND), the
 * connection limit is reached, the connection broke while being made, or resources / the simulator were
 * briefly short. Everything else (access denied, invalid argument, a status ConnectNotify returned, a
 * FltmgrError or TypeError for a misconfiguration) is final.
 */
export function isRetryableConnectError(error: unknown): boolean {
  return error instanceof FilterError && RETRYABLE.has(error.hresult);
}

/** The delay before the attempt after `attempt` (from 1), jitter applied. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const o = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(o.maxDelayMs, o.initialDelayMs * o.factor ** Math.max(0, attempt - 1));
  const random = options.random ?? Math.random;
  return Math.round(base * (1 - o.jitter * Math.min(1, Math.max(0, random()))));
}

function checkBackoff(b: unknown): BackoffOptions {
  if (b === undefined) return {};
  if (typeof b !== 'object' || b === null) throw invalidArgType('options.backoff', 'an object', b);
  const o = b as BackoffOptions;
  const nonNegative = (key: 'initialDelayMs' | 'maxDelayMs'): void => {
    const v = o[key];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 0x7fffffff)) {
      throw outOfRange(`options.backoff.${key}`, 'a number of milliseconds from 0 to 2^31-1', v);
    }
  };
  nonNegative('initialDelayMs');
  nonNegative('maxDelayMs');
  if (o.factor !== undefined && !(typeof o.factor === 'number' && o.factor >= 1 && Number.isFinite(o.factor)))
    throw outOfRange('options.backoff.factor', 'a finite number >= 1', o.factor);
  if (o.jitter !== undefined && !(typeof o.jitter === 'number' && o.jitter >= 0 && o.jitter <= 1))
    throw outOfRange('options.backoff.jitter', 'a number from 0 to 1', o.jitter);
  if (o.random !== undefined && typeof o.random !== 'function')
    throw invalidArgType('options.backoff.random', 'a function', o.random);
  return o;
}

function checkTimeout(what: string, v: unknown): number {
  if (v === undefined) return Infinity;
  if (typeof v !== 'number' || !(v >= 0)) throw outOfRange(what, 'a number of milliseconds >= 0', v);
  return v;
}

function checkFunction(what: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'function') throw invalidArgType(what, 'a function', v);
}

/** Resolves after ms, or at once when signal aborts (never rejects). Leaves no timer behind. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * FilterPort.connect, retried while the error is retryable (by default: the port does not exist yet, the
 * connection limit is reached; see isRetryableConnectError) with exponential backoff and jitter. Rejects with
 * the first non-retryable error, with an AbortError when `signal` aborts, and with FltmgrError ERR_WAIT_TIMEOUT
 * (its `cause` the last connect error) when `timeoutMs` passes first. The first attempt is made at once; an
 * attempt is not started when the wait before it would end past the deadline.
 */
export async function waitForPort(name: string, options: WaitForPortOptions = {}): Promise<FilterPort> {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options);
  const { timeoutMs, backoff, retryable, onRetry, onAttempt, signal, ...connect } = options;
  const timeout = checkTimeout('options.timeoutMs', timeoutMs);
  const b = checkBackoff(backoff);
  checkFunction('options.retryable', retryable);
  checkFunction('options.onRetry', onRetry);
  checkFunction('options.onAttempt', onAttempt);
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw invalidArgType('options.signal', 'an AbortSignal', signal);
  if (signal?.aborted) throw abortError(signal);

  // One signal for the attempt in progress and the sleeps: the caller's abort or the deadline.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const deadline = Date.now() + timeout;
  const timer = Number.isFinite(timeout) ? setTimeout(onAbort, Math.min(timeout, 0x7fffffff)) : undefined;
  let last: unknown;
  let attempt = 0;
  let inAttempt = false;
  const timedOut = (): FltmgrError => {
    const why = inAttempt
      ? `attempt ${attempt} was still in progress`
      : `last error: ${last instanceof Error ? last.message : String(last)}`;
    return new FltmgrError(
      'ERR_WAIT_TIMEOUT',
      `port ${name} did not accept a connection within ${timeout} ms (${attempt} attempt(s); ${why})`,
      { cause: last },
    );
  };
  try {
    for (;;) {
      attempt++;
      onAttempt?.(attempt);
      try {
        inAttempt = true;
        return await FilterPort.connect(name, { ...connect, signal: stop.signal });
      } catch (error) {
        if (signal?.aborted) throw abortError(signal);
        if (stop.signal.aborted) throw timedOut();
        inAttempt = false;
        if (!(retryable ?? isRetryableConnectError)(error)) throw error;
        last = error;
      }
      const delayMs = backoffDelay(attempt, b);
      if (Date.now() + delayMs > deadline) throw timedOut();
      onRetry?.({ attempt, delayMs, error: last });
      await sleep(delayMs, stop.signal);
      if (signal?.aborted) throw abortError(signal);
      if (stop.signal.aborted) throw timedOut();
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// FilterAgent

/**
 * A message the handler had when its connection ended, that expected a reply the minifilter will not get
 * from this agent. Its sender in the minifilter sees what Filter Manager gives it (STATUS_PORT_DISCONNECTED,
 * or its own timeout).
 * - 'not-sent': the handler had not returned; its reply, if it returns one, is not sent (the connection is
 *   gone), and a `message.reply()` of its own rejects with ERR_PORT_CLOSED.
 * - 'unconfirmed': the reply was handed to Filter Manager but not acknowledged before the disconnect: it may
 *   or may not have reached the sender.
 */
export interface LostMessage {
  /** FILTER_MESSAGE_HEADER.MessageId. */
  readonly id: bigint;
  /** What became of its reply. */
  readonly reply: 'not-sent' | 'unconfirmed';
}

/** Attempt `attempt` of FilterConnectCommunicationPort is under way. */
export interface AgentConnecting {
  /** The state's name. */
  readonly state: 'connecting';
  /** From 1 in each wait. */
  readonly attempt: number;
}

/** Attempt `attempt` failed with a retryable error; the next one starts in `delayMs`. */
export interface AgentWaiting {
  /** The state's name. */
  readonly state: 'waiting';
  /** The attempt that failed, from 1 in each wait. */
  readonly attempt: number;
  /** Until the next attempt (backoff with jitter). */
  readonly delayMs: number;
  /** Why it failed: a FilterError such as ERROR_FILE_NOT_FOUND (driver not loaded). */
  readonly error: unknown;
}

/** Serving on `port`; AgentOptions.onConnect has run. */
export interface AgentConnected {
  /** The state's name. */
  readonly state: 'connected';
  /** Counts connections from 1. */
  readonly connection: number;
  /** The connection (for sends). */
  readonly port: FilterPort;
}

/** The connection ended and its port is closed; the agent reconnects next. */
export interface AgentDisconnected {
  /** The state's name. */
  readonly state: 'disconnected';
  /** Which connection ended. */
  readonly connection: number;
  /** What ended it: a FilterError with `disconnected` true (E_HANDLE, ERROR_BROKEN_PIPE). */
  readonly reason: FilterError;
  /** The messages the disconnect cut short (see LostMessage). */
  readonly lost: readonly LostMessage[];
}

/** Stopped for good. */
export interface AgentClosed {
  /** The state's name. */
  readonly state: 'closed';
  /**
   * undefined after close() / the signal; else the final error: a non-retryable connect error, ERR_WAIT_TIMEOUT,
   * a handler error without onError, an onConnect error that is not a disconnect.
   */
  readonly error: unknown;
  /** Messages cut short by the stop (handlers still running at close()). */
  readonly lost: readonly LostMessage[];
}

/** The agent's state; each change is emitted as a 'state' event and yielded by {@link FilterAgent.states}. */
export type AgentState = AgentConnecting | AgentWaiting | AgentConnected | AgentDisconnected | AgentClosed;

/** The name of an {@link AgentState}. */
export type AgentStateName = AgentState['state'];

/**
 * A FilterAgent handler: a {@link MessageHandler} that also gets a signal, aborted when its connection ends
 * or the agent closes (its reply would not be sent: stop working on it).
 */
export type AgentHandler = (message: FilterMessage, signal: AbortSignal) => ReturnType<MessageHandler>;

/** Options of {@link FilterAgent}. */
export interface AgentOptions extends Omit<ServeOptions, 'signal'> {
  /** For each FilterPort.connect (context, simulator). syncHandle is refused: such a port cannot receive. */
  connect?: Omit<ConnectOptions, 'signal' | 'syncHandle'>;
  /** Delays between connection attempts; reset after each successful connection. */
  backoff?: BackoffOptions;
  /** Which connect errors to retry. Default {@link isRetryableConnectError}. */
  retryable?: (error: unknown) => boolean;
  /**
   * How long one wait for the port (at the start, or after a disconnect) may last before the agent closes with
   * ERR_WAIT_TIMEOUT. Default: no limit (an agent waits for its driver however long it takes).
   */
  waitTimeoutMs?: number;
  /**
   * Runs after each connect, while messages are already being served (e.g. configure the driver: it forgets
   * its configuration when it reloads); 'connected' is reported when it is done. A disconnect error it throws
   * means reconnect; any other error closes the agent.
   */
  onConnect?: (port: FilterPort, signal: AbortSignal) => void | Promise<void>;
  /** Aborting closes the agent (as close()). */
  signal?: AbortSignal;
}

/** Counts since the agent started. */
export interface AgentCounters {
  /** Successful connections. */
  connections: number;
  /** Failed connection attempts that were retried. */
  retries: number;
  /** Messages handed to the handler. */
  messages: number;
  /** Replies Filter Manager acknowledged (the handler's own message.reply() calls are not counted). */
  replies: number;
  /** Messages reported in a 'disconnected' or 'closed' state's `lost`. */
  lost: number;
}

interface AgentEvents {
  state: [state: AgentState];
}

/** One connection's bookkeeping. */
interface Connection {
  readonly number: number;
  readonly port: FilterPort;
  readonly abort: AbortController;
  /** Messages expecting a reply the agent has not seen through. */
  readonly open: Map<FilterMessage, LostMessage['reply']>;
  ended: boolean;
  /** The port reported the disconnect: a reply now would be refused before it is sent. */
  receiveEnded: boolean;
}

/**
 * Serves one handler on a minifilter's port for as long as it runs: waits for the port (the driver may start
 * later), serves it with the same handler and serve options after every reconnect, reconnects after a
 * disconnect (driver unload, FltCloseClientPort, simulator restart) with backoff and jitter, and reports each
 * transition ('state' events, {@link FilterAgent.states}). Starts at once; the first state is emitted
 * asynchronously, so listeners added right after `new` see every state.
 */
export class FilterAgent extends EventEmitter<AgentEvents> {
  /** The port name. */
  readonly name: string;
  /** Settles when the agent has closed: resolves after close() / the signal, rejects with a final error. */
  readonly done: Promise<void>;
  readonly #counters: AgentCounters = { connections: 0, retries: 0, messages: 0, replies: 0, lost: 0 };
  readonly #handler: AgentHandler;
  readonly #options: AgentOptions;
  readonly #stop = new AbortController();
  readonly #removeSignalListener: (() => void) | undefined;
  #state: AgentState = { state: 'connecting', attempt: 1 };
  #connection: Connection | undefined;
  #closing: Promise<void> | undefined;

  constructor(name: string, handler: AgentHandler, options: AgentOptions = {}) {
    super();
    if (typeof name !== 'string') throw invalidArgType('name', 'a string', name);
    if (typeof handler !== 'function') throw invalidArgType('handler', 'a function', handler);
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options);
    checkBackoff(options.backoff);
    checkTimeout('options.waitTimeoutMs', options.waitTimeoutMs);
    checkFunction('options.retryable', options.retryable);
    checkFunction('options.onConnect', options.onConnect);
    checkFunction('options.onError', options.onError);
    if (options.connect !== undefined && (typeof options.connect !== 'object' || options.connect === null))
      throw invalidArgType('options.connect', 'an object', options.connect);
    if ((options.connect as ConnectOptions | undefined)?.syncHandle === true) {
      throw new FltmgrError('ERR_SYNC_HANDLE', 'an agent receives messages: connect without syncHandle');
    }
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal))
      throw invalidArgType('options.signal', 'an AbortSignal', signal);
    this.name = name;
    this.#handler = handler;
    this.#options = { ...options };
    if (signal !== undefined) {
      const onAbort = (): void => void this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#removeSignalListener = () => signal.removeEventListener('abort', onAbort);
    }
    this.done = this.#run();
    this.done.catch(() => undefined); // reported as the 'closed' state too: no unhandled rejection
    if (signal?.aborted) void this.close();
  }

  /** The current state. */
  get state(): AgentState {
    return this.#state;
  }

  /** The port while connected. */
  get port(): FilterPort | undefined {
    return this.#state.state === 'connected' ? this.#state.port : undefined;
  }

  /** A snapshot of the counters. */
  get counters(): Readonly<AgentCounters> {
    return { ...this.#counters };
  }

  /**
   * The current state, then every change, ending after 'closed'. Each call is its own subscription; leaving
   * the loop ends it.
   */
  states(): AsyncIterableIterator<AgentState> {
    const queue: AgentState[] = [this.#state];
    let wake: (() => void) | undefined;
    let finished = false;
    const listener = (s: AgentState): void => {
      queue.push(s);
      wake?.();
    };
    const unsubscribe = (): void => {
      finished = true;
      this.off('state', listener);
      wake?.();
    };
    if (this.#state.state !== 'closed') this.on('state', listener);
    const iterator: AsyncIterableIterator<AgentState> = {
      next: async () => {
        for (;;) {
          const value = queue.shift();
          if (value !== undefined) {
            if (value.state === 'closed') unsubscribe();
            return { done: false, value };
          }
          if (finished || this.#state.state === 'closed') {
            unsubscribe();
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: () => {
        queue.length = 0;
        unsubscribe();
        return Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /**
   * Stops everything: no more attempts, the port (if any) is closed (the minifilter sees the disconnect),
   * handlers still running get their signal aborted and their replies are not sent (reported in the 'closed'
   * state's `lost`). Does not wait for handlers; leaves no timer or handle behind. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      const connection = this.#connection;
      if (connection !== undefined) await connection.port.close();
      await this.done.catch(() => undefined);
    })();
    return this.#closing;
  }

  #set(state: AgentState): void {
    this.#state = state;
    try {
      this.emit('state', state);
    } catch (error) {
      // A throwing listener is the listener's bug: it must not leave the agent half-way through a transition.
      process.nextTick(() => {
        throw error;
      });
    }
  }

  async #run(): Promise<void> {
    await Promise.resolve(); // let the creator add listeners first
    let error: unknown;
    let lost: LostMessage[] = [];
    try {
      while (!this.#stop.signal.aborted) {
        const port = await this.#wait();
        if (port === undefined) break;
        const outcome = await this.#serve(port);
        if (outcome.kind === 'closed') {
          lost = outcome.lost;
          break;
        }
        this.#set({
          state: 'disconnected',
          connection: outcome.connection,
          reason: outcome.reason,
          lost: outcome.lost,
        });
      }
    } catch (thrown) {
      error = thrown;
      if (thrown instanceof AgentStop) {
        error = thrown.error;
        lost = thrown.lost;
      }
    }
    this.#removeSignalListener?.();
    this.#stop.abort();
    this.#set({ state: 'closed', error, lost });
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the final error as thrown (a handler may throw a non-Error)
    if (error !== undefined) throw error;
  }

  /** Connects with retries; undefined when the agent was closed meanwhile. */
  async #wait(): Promise<FilterPort | undefined> {
    try {
      return await waitForPort(this.name, {
        ...this.#options.connect,
        signal: this.#stop.signal,
        ...(this.#options.backoff !== undefined ? { backoff: this.#options.backoff } : {}),
        ...(this.#options.retryable !== undefined ? { retryable: this.#options.retryable } : {}),
        ...(this.#options.waitTimeoutMs !== undefined ? { timeoutMs: this.#options.waitTimeoutMs } : {}),
        onAttempt: (attempt) => this.#set({ state: 'connecting', attempt }),
        onRetry: ({ attempt, delayMs, error }) => {
          this.#counters.retries++;
          this.#set({ state: 'waiting', attempt, delayMs, error });
        },
      });
    } catch (error) {
      if (this.#stop.signal.aborted) return undefined;
      throw error;
    }
  }

  async #serve(
    port: FilterPort,
  ): Promise<
    | { kind: 'closed'; lost: LostMessage[] }
    | { kind: 'disconnected'; connection: number; reason: FilterError; lost: LostMessage[] }
  > {
    this.#counters.connections++;
    const c: Connection = {
      number: this.#counters.connections,
      port,
      abort: new AbortController(),
      open: new Map(),
      ended: false,
      receiveEnded: false,
    };
    this.#connection = c;
    if (this.#stop.signal.aborted) await port.close(); // close() ran while connect resolved
    const {
      connect: _c,
      backoff: _b,
      retryable: _r,
      waitTimeoutMs: _w,
      onConnect,
      signal: _s,
      ...serve
    } = this.#options;
    // Emitted on the tick the receive loop saw the disconnect, before any handler's continuation runs.
    port.on('disconnect', () => void (c.receiveEnded = true));
    const serving = port.serve((message) => this.#handle(c, message), serve);
    let reason: unknown;
    try {
      let setUp = true;
      try {
        await onConnect?.(port, c.abort.signal);
      } catch (error) {
        if (!(error instanceof FilterError && error.disconnected)) throw error;
        reason = error; // lost during setup: reconnect
        setUp = false;
      }
      if (setUp) {
        if (!port.closed) this.#set({ state: 'connected', connection: c.number, port });
        await serving;
      }
    } catch (error) {
      reason = error;
    } finally {
      await port.close(); // the handle and the port's threads are gone before the next state is reported
      await serving.catch(() => undefined);
      c.ended = true;
      c.abort.abort(reason ?? abortError(this.#stop.signal));
      if (this.#connection === c) this.#connection = undefined;
    }
    const lost = [...c.open].map(([message, reply]) => ({ id: message.id, reply }));
    c.open.clear();
    this.#counters.lost += lost.length;
    // Once close() was asked for, whatever ended the connection (often the close itself) is not a failure.
    if (this.#stop.signal.aborted) return { kind: 'closed', lost };
    if (reason instanceof FilterError && reason.disconnected)
      return { kind: 'disconnected', connection: c.number, reason, lost };
    // Not a lost connection: a handler error without onError, a receive error (message over maxBufferSize).
    throw new AgentStop(reason ?? new FltmgrError('ERR_PORT_CLOSED', `port ${this.name} was closed`), lost);
  }

  /** Runs the handler and sends its reply itself, so that it knows which replies Filter Manager took. */
  async #handle(c: Connection, message: FilterMessage): Promise<undefined> {
    this.#counters.messages++;
    const track = message.expectsReply && !c.ended;
    if (track) c.open.set(message, 'not-sent');
    let result: Uint8Array | void;
    try {
      result = await this.#handler(message, c.abort.signal);
    } catch (error) {
      // A handler failure while connected: not lost to a disconnect, serve() reports it.
      if (!c.ended && !c.receiveEnded) c.open.delete(message);
      throw error;
    }
    if (c.ended || c.receiveEnded) return undefined; // stays 'not-sent': the reply would not be sent
    if (message.settled || !(message.expectsReply && result instanceof Uint8Array)) {
      c.open.delete(message); // replied by the handler itself, or nothing to send (serve() releases it)
      return undefined;
    }
    c.open.set(message, 'unconfirmed');
    try {
      await message.reply(result);
      this.#counters.replies++;
      c.open.delete(message);
    } catch (error) {
      if (isDisconnect(error)) return undefined; // stays in `open`: reported with the disconnect
      c.open.delete(message);
      message.release();
      // The minifilter stopped waiting (its timeout): routine, as for serve(); onError hears of it if present.
      if (error instanceof FilterError && error.code === 'ERROR_FLT_NO_WAITER_FOR_REPLY') {
        if (this.#options.onError === undefined) return undefined;
      }
      throw error;
    }
    return undefined;
  }
}

/** A final error raised inside a connection, with the messages it cut short. */
class AgentStop extends Error {
  constructor(
    readonly error: unknown,
    readonly lost: LostMessage[],
  ) {
    super('the agent stopped');
  }
}

function isDisconnect(error: unknown): boolean {
  return (
    (error instanceof FilterError && error.disconnected) ||
    (error instanceof FltmgrError && error.code === 'ERR_PORT_CLOSED')
  );
}
