/**
 * The sample minifilter's protocol (driver-sample/PROTOCOL.md) in TypeScript: every struct of
 * include/fltmgr_sample_protocol.h as a lib/struct.ts layout, its constants, and typed encode/decode helpers.
 *
 * Layouts are MSVC x64 (the default of lib/struct.ts). The header pins every struct to the same layout on x86,
 * x64 and arm64 (explicit Reserved fields, no pointers), so these layouts are valid for every driver build;
 * test/sample/protocol-abi.test.ts checks each against the C header with gcc and mingw-w64.
 *
 * TS field names are the C member names with a lower-case first letter (ScanId -> scanId); struct names are
 * the C typedef names.
 *
 * Used by the simulator twin (driver-sample/twin), the scanner agent (examples/) and the tests. It imports no
 * native code: command helpers take any object with a FilterPort-like send().
 */
import { Buffer } from 'node:buffer';
import { array, bytes, i32, i64, struct, u16, u32, u64, utf16 } from '../lib/struct';

// ---------------------------------------------------------------------------------------------------------------
// Constants (names as in the header, without the FLTSAMPLE_ prefix)

export const PROTOCOL_VERSION = 1;
/** NT name of the communication port (FLTSAMPLE_PORT_NAME). */
export const PORT_NAME = '\\FltmgrSamplePort';
/** Service / filter name (`fltmc load FltSample`). */
export const FILTER_NAME = 'FltSample';
/** The INF's sample altitude (FSFilter Anti-Virus range; not allocated to anyone, see driver-sample/README.md). */
export const SAMPLE_ALTITUDE = '329870';
export const MAX_CONNECTIONS = 8;
export const MAX_PATH_CHARS = 260;
export const MAX_CONTENT_BYTES = 1024;
export const MAX_EXTENSIONS = 16;
export const MAX_EXTENSION_CHARS = 16;
export const MAX_ECHO_BYTES = 65536;
export const MAX_PROBE_COUNT = 1_000_000;
export const MAX_PROBE_TIMEOUT_MS = 10_000;
export const MIN_REPLY_TIMEOUT_MS = 1;
export const MAX_REPLY_TIMEOUT_MS = 600_000;
export const DEFAULT_REPLY_TIMEOUT_MS = 5000;
export const DEFAULT_CONTENT_BYTES = 1024;
/** The extensions the driver scans after it loads (support.c FsDefaultExtensions). */
export const DEFAULT_EXTENSIONS: readonly string[] = Object.freeze([
  'exe',
  'dll',
  'bat',
  'cmd',
  'ps1',
  'js',
  'vbs',
  'txt',
]);

/** FLTSAMPLE_CONNECT_CONTEXT.Flags */
export const ConnectFlag = { SCANNER: 0x1 } as const;
export const CONNECT_VALID_FLAGS = 0x1;

/** FLTSAMPLE_SCAN_REQUEST.MessageType */
export const MessageType = { SCAN_REQUEST: 1, PROBE: 2 } as const;

/** FLTSAMPLE_SCAN_REQUEST.Flags */
export const ScanFlag = { PATH_TRUNCATED: 0x1, CONTENT_TRUNCATED: 0x2, READ_FAILED: 0x4, NO_REPLY: 0x8 } as const;

/** FLTSAMPLE_SCAN_REPLY.Verdict. 0 and other values are invalid (the driver applies its failure mode). */
export const Verdict = { ALLOW: 1, BLOCK: 2 } as const;
export type VerdictValue = (typeof Verdict)[keyof typeof Verdict];

/** Bytes an agent passes to FilterReplyMessage: FILTER_REPLY_HEADER (16) + FLTSAMPLE_SCAN_REPLY (8). */
export const SCAN_REPLY_MESSAGE_BYTES = 24;

/** FLTSAMPLE_COMMAND_HEADER.Command */
export const Command = { GET_STATS: 1, SET_CONFIG: 2, GET_CONFIG: 3, ECHO: 4, PROBE: 5 } as const;
export type CommandValue = (typeof Command)[keyof typeof Command];

/** FLTSAMPLE_CONFIG.Flags */
export const ConfigFlag = { FAIL_CLOSED: 0x1, SCAN_ALL_FILES: 0x2 } as const;
export const CONFIG_VALID_FLAGS = 0x3;

/** FLTSAMPLE_PROBE_REQUEST.Flags */
export const ProbeFlag = { NO_REPLY: 0x1 } as const;
export const PROBE_VALID_FLAGS = 0x1;

// ---------------------------------------------------------------------------------------------------------------
// Layouts

export const CONNECT_CONTEXT = struct('FLTSAMPLE_CONNECT_CONTEXT', {
  protocolVersion: u16,
  reserved0: u16,
  flags: u32,
  processId: u32,
  reserved1: u32,
});

export const SCAN_REQUEST = struct('FLTSAMPLE_SCAN_REQUEST', {
  protocolVersion: u16,
  messageType: u16,
  flags: u32,
  scanId: u64,
  fileId: u64,
  fileSize: i64,
  processId: u32,
  pathLength: u32,
  contentLength: u32,
  reserved0: u32,
  path: utf16(MAX_PATH_CHARS),
  content: bytes(MAX_CONTENT_BYTES),
});

export const SCAN_REPLY = struct('FLTSAMPLE_SCAN_REPLY', { verdict: u32, reasonCode: u32 });

export const COMMAND_HEADER = struct('FLTSAMPLE_COMMAND_HEADER', { protocolVersion: u16, command: u16, reserved: u32 });

export const CONFIG = struct('FLTSAMPLE_CONFIG', {
  flags: u32,
  replyTimeoutMs: u32,
  contentBytes: u32,
  extensionCount: u32,
  extensions: array(utf16(MAX_EXTENSION_CHARS), MAX_EXTENSIONS),
});

export const STATS = struct('FLTSAMPLE_STATS', {
  protocolVersion: u16,
  reserved0: u16,
  structSize: u32,
  scanRequests: u64,
  scansAllowed: u64,
  scansBlocked: u64,
  scanTimeouts: u64,
  scanErrors: u64,
  noAgentOpens: u64,
  failOpenAllowed: u64,
  failClosedDenied: u64,
  excludedOpens: u64,
  probeMessages: u64,
  connectionsTotal: u64,
  connectionsCurrent: u32,
  scannerConnections: u32,
  poolAllocations: i64,
  poolBytes: i64,
});

export const PROBE_REQUEST = struct('FLTSAMPLE_PROBE_REQUEST', {
  count: u32,
  contentBytes: u32,
  timeoutMs: u32,
  flags: u32,
});

export const PROBE_RESULT = struct('FLTSAMPLE_PROBE_RESULT', {
  sent: u32,
  replied: u32,
  timedOut: u32,
  failed: u32,
  lastStatus: i32,
  reserved0: u32,
  elapsedTime: u64,
  minRoundTrip: u64,
  maxRoundTrip: u64,
});

/** Every layout, for the ABI probe. */
export const ALL_LAYOUTS = [
  CONNECT_CONTEXT,
  SCAN_REQUEST,
  SCAN_REPLY,
  COMMAND_HEADER,
  CONFIG,
  STATS,
  PROBE_REQUEST,
  PROBE_RESULT,
] as const;

/** TS field name -> C member name (the C names are the TS names with an upper-case first letter). */
export function cMemberName(_struct: string, field: string): string {
  return field.charAt(0).toUpperCase() + field.slice(1);
}

export type ConnectContext = typeof CONNECT_CONTEXT.Type;
export type RawScanRequest = typeof SCAN_REQUEST.Type;
export type ScanReply = typeof SCAN_REPLY.Type;
export type CommandHeader = typeof COMMAND_HEADER.Type;
export type RawConfig = typeof CONFIG.Type;
export type Stats = typeof STATS.Type;
export type ProbeRequest = typeof PROBE_REQUEST.Type;
export type ProbeResult = typeof PROBE_RESULT.Type;

// ---------------------------------------------------------------------------------------------------------------
// Connect context

export interface ConnectContextOptions {
  /** Ask for the scanner role (administrators only). */
  scanner?: boolean;
  /** 0 (default) or the connecting process's own id; anything else fails the connect. */
  processId?: number;
}

/** The 16-byte FLTSAMPLE_CONNECT_CONTEXT for FilterConnectCommunicationPort. */
export function encodeConnectContext(options: ConnectContextOptions = {}): Buffer {
  return CONNECT_CONTEXT.encode({
    protocolVersion: PROTOCOL_VERSION,
    reserved0: 0,
    flags: options.scanner === true ? ConnectFlag.SCANNER : 0,
    processId: options.processId ?? 0,
    reserved1: 0,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Scan requests and replies

/** A decoded scan request or probe message, with Path and Content cut to their valid lengths. */
export interface ScanRequest {
  protocolVersion: number;
  messageType: number;
  flags: number;
  scanId: bigint;
  fileId: bigint;
  fileSize: bigint;
  processId: number;
  /** Path[0..PathLength). */
  path: string;
  /** Content[0..ContentLength): a copy. */
  content: Buffer;
  /** The message expects no reply (FLTSAMPLE_SCAN_FLAG_NO_REPLY). */
  noReply: boolean;
  isProbe: boolean;
}

/** Decodes the payload of a kernel -> user message (the bytes after FILTER_MESSAGE_HEADER). */
export function decodeScanRequest(data: Uint8Array): ScanRequest {
  if (data.byteLength < SCAN_REQUEST.size) {
    throw new RangeError(`a scan request is ${SCAN_REQUEST.size} bytes, got ${data.byteLength}`);
  }
  const raw = SCAN_REQUEST.decode(data);
  const pathLength = Math.min(raw.pathLength, MAX_PATH_CHARS - 1);
  const contentLength = Math.min(raw.contentLength, MAX_CONTENT_BYTES);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const pathOffset = SCAN_REQUEST.offsetOf('path');
  return {
    protocolVersion: raw.protocolVersion,
    messageType: raw.messageType,
    flags: raw.flags,
    scanId: raw.scanId,
    fileId: raw.fileId,
    fileSize: raw.fileSize,
    processId: raw.processId,
    // Read by PathLength rather than up to the first NUL, as a C agent would.
    path: buf.toString('utf16le', pathOffset, pathOffset + pathLength * 2),
    content: raw.content.subarray(0, contentLength),
    noReply: (raw.flags & ScanFlag.NO_REPLY) !== 0,
    isProbe: raw.messageType === MessageType.PROBE,
  };
}

/** The 8-byte FLTSAMPLE_SCAN_REPLY (FilterPort adds FILTER_REPLY_HEADER: 24 bytes on the wire). */
export function encodeScanReply(verdict: number, reasonCode = 0): Buffer {
  return SCAN_REPLY.encode({ verdict, reasonCode });
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration

/** FLTSAMPLE_CONFIG in friendly form. */
export interface SampleConfig {
  failClosed: boolean;
  scanAllFiles: boolean;
  replyTimeoutMs: number;
  contentBytes: number;
  /** Without the dot; at most 16 entries of at most 15 UTF-16 units. */
  extensions: string[];
}

/** What the driver starts with. */
export function defaultConfig(): SampleConfig {
  return {
    failClosed: false,
    scanAllFiles: false,
    replyTimeoutMs: DEFAULT_REPLY_TIMEOUT_MS,
    contentBytes: DEFAULT_CONTENT_BYTES,
    extensions: [...DEFAULT_EXTENSIONS],
  };
}

/** The 528-byte FLTSAMPLE_CONFIG. Throws RangeError for what does not fit the struct (the driver validates the rest). */
export function encodeConfig(config: SampleConfig): Buffer {
  if (config.extensions.length > MAX_EXTENSIONS) {
    throw new RangeError(`at most ${MAX_EXTENSIONS} extensions, got ${config.extensions.length}`);
  }
  const extensions = Array.from({ length: MAX_EXTENSIONS }, (_v, i) => config.extensions[i] ?? '');
  return CONFIG.encode({
    flags: (config.failClosed ? ConfigFlag.FAIL_CLOSED : 0) | (config.scanAllFiles ? ConfigFlag.SCAN_ALL_FILES : 0),
    replyTimeoutMs: config.replyTimeoutMs,
    contentBytes: config.contentBytes,
    extensionCount: config.extensions.length,
    extensions,
  });
}

export function decodeConfig(data: Uint8Array): SampleConfig {
  const raw = CONFIG.decode(data);
  return {
    failClosed: (raw.flags & ConfigFlag.FAIL_CLOSED) !== 0,
    scanAllFiles: (raw.flags & ConfigFlag.SCAN_ALL_FILES) !== 0,
    replyTimeoutMs: raw.replyTimeoutMs,
    contentBytes: raw.contentBytes,
    extensions: raw.extensions.slice(0, Math.min(raw.extensionCount, MAX_EXTENSIONS)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

/** FLTSAMPLE_COMMAND_HEADER followed by `body`: a FilterSendMessage input buffer. */
export function encodeCommand(command: number, body?: Uint8Array): Buffer {
  const header = COMMAND_HEADER.encode({ protocolVersion: PROTOCOL_VERSION, command, reserved: 0 });
  return body === undefined || body.byteLength === 0 ? header : Buffer.concat([header, body]);
}

export function decodeStats(data: Uint8Array): Stats {
  return STATS.decode(data);
}

export function encodeProbeRequest(request: ProbeRequest): Buffer {
  return PROBE_REQUEST.encode(request);
}

export function decodeProbeResult(data: Uint8Array): ProbeResult {
  return PROBE_RESULT.decode(data);
}

/** What the command helpers need of a port: FilterPort satisfies it. */
export interface CommandPort {
  send(data: Uint8Array, options: { outputSize: number }): Promise<Buffer>;
}

/** GET_STATS (any connection). */
export async function getStats(port: CommandPort): Promise<Stats> {
  return decodeStats(await port.send(encodeCommand(Command.GET_STATS), { outputSize: STATS.size }));
}

/** GET_CONFIG (any connection). */
export async function getConfig(port: CommandPort): Promise<SampleConfig> {
  return decodeConfig(await port.send(encodeCommand(Command.GET_CONFIG), { outputSize: CONFIG.size }));
}

/** SET_CONFIG (administrators); resolves the configuration now in effect. */
export async function setConfig(port: CommandPort, config: SampleConfig): Promise<SampleConfig> {
  return decodeConfig(
    await port.send(encodeCommand(Command.SET_CONFIG, encodeConfig(config)), { outputSize: CONFIG.size }),
  );
}

/** ECHO: resolves the same bytes. */
export function echo(port: CommandPort, data: Uint8Array): Promise<Buffer> {
  return port.send(encodeCommand(Command.ECHO, data), { outputSize: data.byteLength });
}

/**
 * PROBE: the driver sends `count` PROBE messages to this same connection, which must be receiving (serve() or
 * messages()) before the call, and answer them unless NO_REPLY.
 */
export async function probe(
  port: CommandPort,
  request: Partial<ProbeRequest> & { count: number },
): Promise<ProbeResult> {
  const body = encodeProbeRequest({ contentBytes: 0, timeoutMs: 1000, flags: 0, ...request });
  return decodeProbeResult(await port.send(encodeCommand(Command.PROBE, body), { outputSize: PROBE_RESULT.size }));
}
