// Typed errors. FilterError carries what Windows (or the simulator) said: the HRESULT, its symbolic name, the
// call that failed, and a message that says what to do about it. Misuse of the API gets Node-style errors
// with a `code` (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_PORT_CLOSED, ...).
import {
  hex32,
  nameOfHresult,
  win32FromHresult,
  Win32,
  HResult,
  type HResultName,
  type NtStatusName,
  type Win32Name,
} from './status';

/**
 * FilterError.code: the symbolic name of the HRESULT (a Win32 error such as 'ERROR_FILE_NOT_FOUND', an
 * 'ERROR_FLT_*' code, a named HRESULT such as 'E_HANDLE', or the NTSTATUS name of an HRESULT_FROM_NT value),
 * or its hex value ('0x8007FFFF') when the tables do not know it. `string & Record<never, never>` keeps the union open for
 * those while editors still complete the known names.
 */
export type FilterErrorCode = Win32Name | HResultName | NtStatusName | (string & Record<never, never>);

/** The fltlib (or Win32) call a FilterError came from. */
export type FilterSyscall =
  | 'FilterConnectCommunicationPort'
  | 'FilterSendMessage'
  | 'FilterGetMessage'
  | 'FilterReplyMessage'
  | 'CreateIoCompletionPort'
  | 'GetQueuedCompletionStatusEx'
  | ManagementSyscall;

/** The management calls of `fltmgr/manager` (fltlib's, plus the simulator's port listing). */
export type ManagementSyscall =
  | 'FilterLoad'
  | 'FilterUnload'
  | 'FilterFindFirst'
  | 'FilterFindNext'
  | 'FilterInstanceFindFirst'
  | 'FilterInstanceFindNext'
  | 'FilterVolumeFindFirst'
  | 'FilterVolumeFindNext'
  | 'FilterVolumeInstanceFindFirst'
  | 'FilterVolumeInstanceFindNext'
  | 'FilterAttach'
  | 'FilterAttachAtAltitude'
  | 'FilterDetach'
  | 'FilterGetDosName'
  | 'SimulatorListPorts';

const MANAGEMENT_SYSCALLS: ReadonlySet<string> = new Set<ManagementSyscall>([
  'FilterLoad',
  'FilterUnload',
  'FilterFindFirst',
  'FilterFindNext',
  'FilterInstanceFindFirst',
  'FilterInstanceFindNext',
  'FilterVolumeFindFirst',
  'FilterVolumeFindNext',
  'FilterVolumeInstanceFindFirst',
  'FilterVolumeInstanceFindNext',
  'FilterAttach',
  'FilterAttachAtAltitude',
  'FilterDetach',
  'FilterGetDosName',
  'SimulatorListPorts',
]);

// The management calls' hints (fltmgr/manager): what the error means for a filter, volume or instance. Consulted
// before the port hints for those calls; `subject` names what the call was about.
const managementHints = new Map<number, (syscall: FilterSyscall, subject: string) => string>([
  [
    0x80070005,
    () =>
      'not elevated: Filter Manager lets only Administrators list, attach and detach filters (run as ' +
      'Administrator; with the simulator, as a user it counts as an administrator)',
  ],
  [
    0x80070522,
    () =>
      'not elevated: loading and unloading a filter needs SeLoadDriverPrivilege, which only an elevated ' +
      'Administrator holds (run as Administrator)',
  ],
  [
    0x801f0013,
    (_s, subject) => `filter not found: no filter ${subject} is loaded (list them with fltmgr filters / fltmc filters)`,
  ],
  [
    0x801f0014,
    (_s, subject) =>
      `volume not found: ${subject} names no volume Filter Manager knows (list them with fltmgr volumes; ` +
      'use the device name such as \\Device\\HarddiskVolume1 or a drive letter such as C:)',
  ],
  [
    0x801f0011,
    () => 'altitude taken: another instance is attached at that altitude on this volume; choose another altitude',
  ],
  [
    0x801f0012,
    () => 'instance exists: this filter already has an instance of that name on this volume; choose another name',
  ],
  [0x801f0015, (_s, subject) => `instance not found: ${subject} has no such instance on that volume`],
  [0x801f000f, () => 'the filter refused the attach (its InstanceSetupCallback returned STATUS_FLT_DO_NOT_ATTACH)'],
  [0x801f0010, () => 'the filter refused to unload (its FilterUnloadCallback returned STATUS_FLT_DO_NOT_DETACH)'],
  [0x80070420, (_s, subject) => `already loaded: the filter ${subject} is running (unload it first to reload it)`],
  [
    0x80070002,
    (s, subject) =>
      s === 'FilterLoad'
        ? `not loadable: no driver service named ${subject} is installed (install the minifilter's INF, or ` +
          'check the name; with the simulator: no module of that name was given to it, or no simulator runs at ' +
          'the endpoint)'
        : 'not found: with the simulator, is it running at the endpoint (FLTMGR_SIMULATOR / options.simulator)?',
  ],
  [
    0x80070032,
    (s) =>
      s === 'SimulatorListPorts'
        ? 'listing communication ports is a simulator feature: Windows has no API that enumerates them'
        : 'not supported by this Filter Manager',
  ],
  [
    0x8007007a,
    (_s, subject) => `a record larger than fltmgr's 1 MiB enumeration buffer${subject ? ` (${subject})` : ''}`,
  ],
  [
    0x800705b4,
    () =>
      'the simulator did not answer in time (FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS): is the endpoint a fltmgr ' +
      'simulator, and is it responsive?',
  ],
  [
    0x8007000d,
    (_s, subject) =>
      `Filter Manager (or the simulator) returned a malformed record${subject ? ` (${subject})` : ''}: it was ` +
      'rejected, nothing was read outside the returned bytes',
  ],
]);

const hints = new Map<number, (syscall: FilterSyscall, subject: string) => string>([
  [
    0x80070002,
    (_s, subject) =>
      `no communication port ${subject}: is the minifilter loaded (fltmc filters) and is the port name right? ` +
      'In simulator mode: is the simulator running (FLTMGR_SIMULATOR) and does it host this port?',
  ],
  [
    0x80070005,
    () =>
      "access denied by the port's security descriptor: by default only Administrators and SYSTEM may connect " +
      '(run elevated, or have the minifilter grant your group access)',
  ],
  [0x800704d6, () => 'the port accepts no more connections (its MaxConnections is reached)'],
  [
    0x80070006,
    () =>
      'the connection is gone: the minifilter closed it (unloaded, or called FltCloseClientPort), or the port was closed',
  ],
  [
    0x801f0020,
    () =>
      'nobody is waiting for this reply: the minifilter stopped waiting (its FltSendMessage timed out), ' +
      'the message expected no reply, or it was already answered',
  ],
  [
    0x8007007a,
    (s) =>
      s === 'FilterGetMessage'
        ? 'a message larger than maxBufferSize arrived: raise maxBufferSize'
        : 'the buffer is too small for what the minifilter returned',
  ],
  [
    0x800703e3,
    (s) =>
      s === 'FilterSendMessage'
        ? 'the send was cancelled (the port was closed, or the process is exiting) while the minifilter had it: ' +
          'it may or may not have been processed'
        : 'the operation was cancelled',
  ],
  [
    0x8007000d,
    (s) =>
      s === 'FilterConnectCommunicationPort'
        ? 'the endpoint answered with something other than the fltmgr simulator protocol (a different program, ' +
          'or a different protocol version): check FLTMGR_SIMULATOR / options.simulator'
        : 'the other side sent something Filter Manager never produces (e.g. a message without its header): ' +
          'the connection was ended',
  ],
  [0x80070032, () => 'the minifilter does not accept FilterSendMessage on this port (no MessageNotify callback)'],
]);

/** An error reported by Filter Manager (or the simulator playing it). */
export class FilterError extends Error {
  /** 'FilterError'. */
  override readonly name = 'FilterError';
  /** The HRESULT as an unsigned 32-bit number, e.g. 0x80070002. */
  readonly hresult: number;
  /** Symbolic name: 'ERROR_FILE_NOT_FOUND', 'ERROR_FLT_NO_WAITER_FOR_REPLY', 'E_INVALIDARG', or the hex value. */
  readonly code: FilterErrorCode;
  /** The Win32 error inside a FACILITY_WIN32 HRESULT, if any. */
  readonly win32: number | undefined;
  /** The fltlib call that failed. */
  readonly syscall: FilterSyscall;

  /**
   * @param hresult what the call returned (or the simulator reported), signed or unsigned.
   * @param syscall the call that failed, named in the message.
   * @param subject what it was about (the port name), for the message's hint.
   */
  constructor(hresult: number, syscall: FilterSyscall, subject = '') {
    const hr = hresult >>> 0;
    const code = nameOfHresult(hr) ?? hex32(hr);
    const hint = (MANAGEMENT_SYSCALLS.has(syscall) ? (managementHints.get(hr) ?? hints.get(hr)) : hints.get(hr))?.(
      syscall,
      subject,
    );
    super(`${syscall} failed: ${code} (${hex32(hr)})${hint ? `: ${hint}` : ''}`);
    this.hresult = hr;
    this.code = code;
    this.win32 = win32FromHresult(hr);
    this.syscall = syscall;
  }

  /** True when the error means the kernel side ended the connection (driver unloaded, port closed). */
  get disconnected(): boolean {
    return this.hresult === HResult.E_HANDLE || this.hresult === (0x80070000 | Win32.ERROR_BROKEN_PIPE) >>> 0;
  }
}

/** FltmgrError.code: misuse of the API, or an operation in the wrong state (README, "Errors"). */
export type FltmgrErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_PORT_CLOSED'
  | 'ERR_ALREADY_RECEIVING'
  | 'ERR_SYNC_HANDLE'
  | 'ERR_MESSAGE_SETTLED'
  | 'ERR_NO_REPLY_EXPECTED'
  | 'ERR_REPLY_TOO_LARGE'
  | 'ERR_SIMULATOR_NOT_CONFIGURED'
  | 'ERR_INVALID_ENDPOINT'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_WAIT_TIMEOUT';

/** Misuse of the API or an operation in the wrong state. */
export class FltmgrError extends Error {
  /** 'FltmgrError'. */
  override readonly name = 'FltmgrError';
  /**
   * @param code what went wrong, stable across versions (match on it, not on the message).
   * @param message what to do about it.
   * @param options `cause`: the error behind it (ERR_WAIT_TIMEOUT: the last connect error).
   */
  constructor(
    /** What went wrong; stable across versions. */
    readonly code: FltmgrErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** @internal A TypeError with code ERR_INVALID_ARG_TYPE, as Node's own APIs throw. */
export function invalidArgType(
  what: string,
  expected: string,
  value: unknown,
): TypeError & { code: 'ERR_INVALID_ARG_TYPE' } {
  const error = new TypeError(`${what} must be ${expected}, got ${describe(value)}`) as TypeError & {
    code: 'ERR_INVALID_ARG_TYPE';
  };
  error.code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

/** @internal A RangeError with code ERR_OUT_OF_RANGE, as Node's own APIs throw. */
export function outOfRange(what: string, range: string, value: unknown): RangeError & { code: 'ERR_OUT_OF_RANGE' } {
  const error = new RangeError(`${what} must be ${range}, got ${describe(value)}`) as RangeError & {
    code: 'ERR_OUT_OF_RANGE';
  };
  error.code = 'ERR_OUT_OF_RANGE';
  return error;
}

/** @internal A TypeError with code ERR_INVALID_ARG_VALUE, as Node's own APIs throw. */
export function invalidArgValue(what: string, why: string): TypeError & { code: 'ERR_INVALID_ARG_VALUE' } {
  const error = new TypeError(`${what} ${why}`) as TypeError & { code: 'ERR_INVALID_ARG_VALUE' };
  error.code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

/** @internal Like the DOMException Node's own APIs reject with on abort. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string')
    return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  return typeof value;
}
