// fltmgr/simulator: the kernel side of Filter Manager, in TypeScript, serving docs/wire-protocol.md.
export { FilterManagerSimulator } from './server';
export type { ListenTarget, ProtocolErrorEvent, SimulatorEventMap } from './server';
export { SimulatedFilter } from './filter';
export { DEFAULT_SIMULATOR_LIMITS, ManagementError, NtStatusError } from './types';
export type {
  ClientPort,
  ClientPortStats,
  CommunicationPortOptions,
  FilterSnapshot,
  InstanceSetupContext,
  InstanceSnapshot,
  LoadableFilter,
  PortSnapshot,
  RegisterFilterOptions,
  SimulatedVolume,
  SimulatedVolumeOptions,
  PeerIdentity,
  PortCaller,
  PortSecurity,
  SendMessageOptions,
  SendMessageResult,
  ServerPort,
  SimulatedMinifilterModule,
  SimulatorLimits,
  SimulatorOptions,
  StreamStats,
} from './types';
export { startSimulatorWorker } from './worker';
export type { SimulatorWorker, SimulatorWorkerOptions } from './worker';
export { loadFilterModule } from './load-module';
export { parseEndpoint, formatEndpoint, WIRE_VERSION, MAX_PAYLOAD } from './wire';
export type { Endpoint } from './wire';
export { KernelDriver, KernelVerifierError } from './kernel-driver';
export type { KernelDriverOptions, KernelOpenOptions, KernelOpenResult } from './kernel-driver';
export { buildKernelImage, KernelImageBuildError } from './kernel-build';
export type { KernelImageBuildOptions } from './kernel-build';
