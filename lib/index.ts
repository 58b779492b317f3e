// fltmgr: Node.js access to Windows Filter Manager communication ports.
export {
  FilterPort,
  FilterMessage,
  MAX_CONCURRENCY,
  MAX_CONTEXT_SIZE,
  MAX_PORT_NAME_LENGTH,
  type ConnectOptions,
  type MessageHandler,
  type ReceiveOptions,
  type ReplyOptions,
  type SendOptions,
  type ServeOptions,
} from './port';
export {
  FilterError,
  FltmgrError,
  type FilterErrorCode,
  type FltmgrErrorCode,
  type FilterSyscall,
  type ManagementSyscall,
} from './errors';
export type { Backend } from './binding';
export { configureBinding } from './binding';
export type { HResultName, NtStatusName, Win32Name } from './status';
export {
  HResult,
  NtStatus,
  Win32,
  hresultFromNtStatus,
  hresultFromWin32,
  nameOfHresult,
  nameOfNtStatus,
} from './status';
export {
  DEFAULT_BACKOFF,
  FilterAgent,
  backoffDelay,
  isRetryableConnectError,
  waitForPort,
  type AgentClosed,
  type AgentConnected,
  type AgentConnecting,
  type AgentCounters,
  type AgentDisconnected,
  type AgentHandler,
  type AgentOptions,
  type AgentState,
  type AgentStateName,
  type AgentWaiting,
  type BackoffOptions,
  type LostMessage,
  type RetryInfo,
  type WaitForPortOptions,
} from './agent';
