// Codec for docs/wire-protocol.md (version 1): framing, payload layouts and endpoint strings, for the simulator
// (the server): it parses what clients send and encodes what it answers. The parsers of its answers
// (parseGetComplete, parseSendResult, parseStatusPayload) are there for the codec's round-trip property tests.
// Clients have their own codecs: the native one (C++), and the tests' (test/helpers/wire-client.ts, written
// from the document, so that the simulator is not checked against its own codec alone).

/** The simulator protocol version (docs/wire-protocol.md); both ends must speak the same one. */
export const WIRE_VERSION = 1;
export const HEADER_BYTES = 12; // u32 length + u8 version + u8 type + u16 flags + u32 id
/** Largest frame payload the protocol carries (16 MiB). */
export const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Flood guard: pending gets per connection, and outstanding SEND requests per connection. */
export const MAX_PENDING_GETS = 4096;
export const MAX_OUTSTANDING_REQUESTS = 4096;
/**
 * The largest CONNECT payload the format can express: u32 options, u32 clientPid, u16 + name (at most 0xFFFE
 * bytes: an even count of UTF-16 units, 32767 of them), u16 + context (0xFFFF), u16 + secret (0xFFFF).
 * 196,618 bytes.
 */
export const MAX_CONNECT_PAYLOAD = 4 + 4 + 2 + 0xfffe + 2 + 0xffff + 2 + 0xffff;
/** The most strings a MANAGE request carries (ATTACH: filter, volume, altitude, instance name). */
export const MAX_MANAGE_ARGS = 4;
/**
 * The largest valid MANAGE payload: u32 op, u32 clientPid, u16 argCount, MAX_MANAGE_ARGS strings of u16 +
 * 0xFFFE bytes, u16 + secret (0xFFFF). 327,691 bytes.
 */
export const MAX_MANAGE_PAYLOAD = 4 + 4 + 2 + MAX_MANAGE_ARGS * (2 + 0xfffe) + 2 + 0xffff;
/**
 * The largest first frame of a stream (a CONNECT or a MANAGE, whichever is larger): before it, a frame header
 * announcing more is refused before any payload is read.
 */
export const MAX_FIRST_FRAME_PAYLOAD = Math.max(MAX_CONNECT_PAYLOAD, MAX_MANAGE_PAYLOAD);
export const FILTER_MESSAGE_HEADER_BYTES = 16;
export const FILTER_REPLY_HEADER_BYTES = 16;

export const FrameType = {
  CONNECT: 0x01,
  GET: 0x02,
  CANCEL: 0x03,
  REPLY: 0x04,
  SEND: 0x05,
  MANAGE: 0x06,
  CONNECT_RESULT: 0x81,
  GET_COMPLETE: 0x82,
  REPLY_RESULT: 0x84,
  SEND_RESULT: 0x85,
  DISCONNECT: 0x86,
  MANAGE_RESULT: 0x87,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

const CLIENT_TYPES: ReadonlySet<number> = new Set([
  FrameType.CONNECT,
  FrameType.GET,
  FrameType.CANCEL,
  FrameType.REPLY,
  FrameType.SEND,
  FrameType.MANAGE,
]);
const SERVER_TYPES: ReadonlySet<number> = new Set([
  FrameType.CONNECT_RESULT,
  FrameType.GET_COMPLETE,
  FrameType.REPLY_RESULT,
  FrameType.SEND_RESULT,
  FrameType.DISCONNECT,
  FrameType.MANAGE_RESULT,
]);

export interface Frame {
  type: number;
  id: number;
  payload: Buffer;
}

/** A malformed frame or payload. The simulator closes the stream that sent it. */
export class ProtocolError extends Error {
  /**
   * From FrameDecoder.push(): the complete frames that came before the bad header in the data pushed so far
   * (and were not returned yet). A receiver that handles them before closing the stream behaves the same
   * however the stream was cut into chunks. Empty for errors of other origin.
   */
  readonly frames: Frame[];
  constructor(message: string, frames: Frame[] = []) {
    super(message);
    this.name = 'ProtocolError';
    this.frames = frames;
  }
}

/** The 12-byte header of a frame whose payload (payloadLength bytes) is written separately. */
export function encodeFrameHeader(type: number, id: number, payloadLength: number): Buffer {
  if (payloadLength > MAX_PAYLOAD) throw new RangeError(`payload of ${payloadLength} bytes exceeds MAX_PAYLOAD`);
  const out = Buffer.allocUnsafe(HEADER_BYTES);
  out.writeUInt32LE(8 + payloadLength, 0);
  out.writeUInt8(WIRE_VERSION, 4);
  out.writeUInt8(type, 5);
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(id >>> 0, 8);
  return out;
}

export function encodeFrame(type: number, id: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`payload of ${payload.length} bytes exceeds MAX_PAYLOAD`);
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(8 + payload.length, 0);
  out.writeUInt8(WIRE_VERSION, 4);
  out.writeUInt8(type, 5);
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(id >>> 0, 8);
  out.set(payload, HEADER_BYTES);
  return out;
}

/**
 * Incremental frame decoder. push() returns the complete frames in the data so far and throws ProtocolError on
 * the first bad header (length, version, flags, a type the given direction does not send), as soon as the bytes
 * that show it have arrived; the frames before that header which push() did not return are on the error's
 * `frames`. Payload layouts are checked by the parse* functions.
 *
 * Cost: each byte is copied once, when it arrives (into a header buffer, then into the frame's own payload
 * buffer, allocated when the header is complete), so a push costs O(its length) however large the frame and
 * however small the pieces it comes in; nothing is reassembled at the end. Payloads are private buffers, never
 * views of the pushed chunks.
 */
export class FrameDecoder {
  private readonly types: ReadonlySet<number>;
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private copied = 0;
  private frames = 0;
  private readonly firstFrameMaxPayload: number;

  /**
   * firstFrameMaxPayload: a tighter payload limit for the first frame only (the simulator uses it to refuse,
   * on its header, a first frame larger than the largest CONNECT or MANAGE). Later frames may carry
   * MAX_PAYLOAD bytes.
   */
  constructor(direction: 'client-to-server' | 'server-to-client', options: { firstFrameMaxPayload?: number } = {}) {
    this.types = direction === 'client-to-server' ? CLIENT_TYPES : SERVER_TYPES;
    this.firstFrameMaxPayload = Math.min(options.firstFrameMaxPayload ?? MAX_PAYLOAD, MAX_PAYLOAD);
  }

  /** Bytes of an incomplete frame received so far. */
  get pendingBytes(): number {
    return this.headFill + this.payloadFill;
  }

  /** Bytes copied so far while reassembling frames (a measure of the decoder's work). */
  get bytesCopied(): number {
    return this.copied;
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.headFill < HEADER_BYTES) {
        const n = Math.min(HEADER_BYTES - this.headFill, chunk.length - offset);
        const was = this.headFill;
        chunk.copy(this.head, was, offset, offset + n);
        this.copied += n;
        this.headFill += n;
        offset += n;
        this.checkHeader(was, frames);
        if (this.headFill < HEADER_BYTES) break;
        const size = this.head.readUInt32LE(0) - 8;
        this.payload = size === 0 ? Buffer.alloc(0) : Buffer.allocUnsafe(size);
        this.payloadFill = 0;
      }
      const payload = this.payload as Buffer;
      const n = Math.min(payload.length - this.payloadFill, chunk.length - offset);
      if (n > 0) {
        chunk.copy(payload, this.payloadFill, offset, offset + n);
        this.copied += n;
        this.payloadFill += n;
        offset += n;
      }
      if (this.payloadFill === payload.length) {
        frames.push({ type: this.head[5] ?? 0, id: this.head.readUInt32LE(8), payload });
        this.frames++;
        this.headFill = 0;
        this.payloadFill = 0;
        this.payload = undefined;
      }
    }
    return frames;
  }

  /**
   * Checks the header fields that became complete with this push (`was` bytes of header were there before).
   * `frames`: those this push completed so far, handed over on the error.
   */
  private checkHeader(was: number, frames: Frame[]): void {
    const have = this.headFill;
    const head = this.head;
    if (was < 4 && have >= 4) {
      const length = head.readUInt32LE(0);
      if (length < 8) throw new ProtocolError(`frame length ${length} is below 8`, frames);
      if (this.frames === 0 && this.firstFrameMaxPayload < MAX_PAYLOAD && length > 8 + this.firstFrameMaxPayload) {
        throw new ProtocolError(
          `first frame length ${length} exceeds 8 + ${this.firstFrameMaxPayload}, the largest CONNECT or MANAGE`,
          frames,
        );
      }
      if (length > 8 + MAX_PAYLOAD) throw new ProtocolError(`frame length ${length} exceeds 8 + MAX_PAYLOAD`, frames);
    }
    if (was < 5 && have >= 5 && head[4] !== WIRE_VERSION) {
      throw new ProtocolError(`unsupported protocol version ${String(head[4])}`, frames);
    }
    if (was < 6 && have >= 6 && !this.types.has(head[5] ?? -1)) {
      throw new ProtocolError(`unknown frame type 0x${(head[5] ?? 0).toString(16)}`, frames);
    }
    if (was < 8 && have >= 8 && head.readUInt16LE(6) !== 0) {
      throw new ProtocolError(`nonzero flags 0x${head.readUInt16LE(6).toString(16)}`, frames);
    }
  }
}

// ---- payloads ----------------------------------------------------------------------------------------

class Reader {
  private offset = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new ProtocolError(`${this.what}: payload truncated`);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.offset);
    this.offset += 8;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  rest(): Buffer {
    const v = this.buf.subarray(this.offset);
    this.offset = this.buf.length;
    return v;
  }
  end(): void {
    if (this.offset !== this.buf.length) {
      throw new ProtocolError(`${this.what}: ${this.buf.length - this.offset} unexpected trailing bytes`);
    }
  }
}

export interface ConnectPayload {
  options: number;
  clientPid: number;
  portName: string;
  context: Buffer;
  secret: string;
}

export function parseConnect(payload: Buffer): ConnectPayload {
  const r = new Reader(payload, 'CONNECT');
  const options = r.u32();
  const clientPid = r.u32();
  const nameBytes = r.u16();
  if (nameBytes % 2 !== 0) throw new ProtocolError('CONNECT: odd UTF-16 name length');
  const portName = r.bytes(nameBytes).toString('utf16le');
  const context = Buffer.from(r.bytes(r.u16()));
  const secretRaw = r.bytes(r.u16());
  r.end();
  // Not validated as ASCII here: a wrong secret is an access-denied answer, not a protocol error.
  return { options, clientPid, portName, context, secret: secretRaw.toString('latin1') };
}

export function parseGet(payload: Buffer): { capacity: number } {
  const r = new Reader(payload, 'GET');
  const capacity = r.u32();
  r.end();
  return { capacity };
}

export function parseCancel(payload: Buffer): void {
  new Reader(payload, 'CANCEL').end();
}

export interface ReplyPayload {
  status: number;
  messageId: bigint;
  data: Buffer;
}

/** `data` is a view of `payload` (FrameDecoder payloads are private buffers: no copy needed). */
export function parseReply(payload: Buffer): ReplyPayload {
  const r = new Reader(payload, 'REPLY');
  const status = r.i32() >>> 0;
  r.u32(); // reserved: FILTER_REPLY_HEADER padding, may be whatever the caller's buffer held
  const messageId = r.u64();
  return { status, messageId, data: r.rest() };
}

/** `input` is a view of `payload` (FrameDecoder payloads are private buffers: a 16 MiB input is not copied again). */
export function parseSend(payload: Buffer): { outputCapacity: number; input: Buffer } {
  const r = new Reader(payload, 'SEND');
  const outputCapacity = r.u32();
  return { outputCapacity, input: r.rest() };
}

export function encodeI32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeInt32LE(value | 0, 0);
  return out;
}

export interface GetCompletePayload {
  status: number;
  replyLength: number;
  messageId: bigint;
  data: Buffer;
}

export function encodeGetComplete(p: GetCompletePayload): Buffer {
  const out = Buffer.alloc(16 + p.data.length);
  encodeGetCompleteHead(p).copy(out, 0);
  p.data.copy(out, 16);
  return out;
}

/** The 16 bytes of a GET_COMPLETE payload before the data (for writing the data without copying it). */
export function encodeGetCompleteHead(p: Omit<GetCompletePayload, 'data'>): Buffer {
  const out = Buffer.alloc(16);
  out.writeInt32LE(p.status | 0, 0);
  out.writeUInt32LE(p.replyLength >>> 0, 4);
  out.writeBigUInt64LE(p.messageId, 8);
  return out;
}

export function parseGetComplete(payload: Buffer): GetCompletePayload {
  const r = new Reader(payload, 'GET_COMPLETE');
  const status = r.i32() >>> 0;
  const replyLength = r.u32();
  const messageId = r.u64();
  return { status, replyLength, messageId, data: Buffer.from(r.rest()) };
}

export function encodeSendResult(hresult: number, output: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + output.length);
  out.writeInt32LE(hresult | 0, 0);
  out.set(output, 4);
  return out;
}

export function parseSendResult(payload: Buffer): { hresult: number; output: Buffer } {
  const r = new Reader(payload, 'SEND_RESULT');
  const hresult = r.i32() >>> 0;
  return { hresult, output: Buffer.from(r.rest()) };
}

/** CONNECT_RESULT, REPLY_RESULT and DISCONNECT carry one i32; returned unsigned. */
export function parseStatusPayload(payload: Buffer, what: string): number {
  const r = new Reader(payload, what);
  const v = r.i32() >>> 0;
  r.end();
  return v;
}

// ---- management requests (docs/wire-protocol.md, "Management requests") -------------------------------

/** MANAGE operations: the u32 `op` of a MANAGE payload. */
export const ManageOp = {
  FILTERS: 1,
  INSTANCES: 2,
  VOLUMES: 3,
  LOAD: 4,
  UNLOAD: 5,
  ATTACH: 6,
  DETACH: 7,
  DOS_NAME: 8,
  PORTS: 9,
} as const;
export type ManageOpValue = (typeof ManageOp)[keyof typeof ManageOp];

/** How many strings each operation's request carries; another count is a protocol error. */
export const MANAGE_ARG_COUNTS: ReadonlyMap<number, number> = new Map<number, number>([
  [ManageOp.FILTERS, 0],
  [ManageOp.INSTANCES, 2],
  [ManageOp.VOLUMES, 0],
  [ManageOp.LOAD, 1],
  [ManageOp.UNLOAD, 1],
  [ManageOp.ATTACH, 4],
  [ManageOp.DETACH, 3],
  [ManageOp.DOS_NAME, 1],
  [ManageOp.PORTS, 0],
]);

/** The largest string a MANAGE request or MANAGE_RESULT record carries: 0xFFFE bytes, 32,767 UTF-16 units. */
export const MAX_MANAGE_STRING_UNITS = 0x7fff;

/** Record flags of FILTERS and INSTANCES (FLTFL_IS_MINIFILTER / FLTFL_IS_LEGACY_FILTER). */
export const ManageKind = { MINIFILTER: 1, LEGACY: 2 } as const;
/** Record flag of VOLUMES: the volume is detached (FLTFL_VSI_DETACHED_VOLUME). */
export const MANAGE_VOLUME_DETACHED = 1;

export interface ManagePayload {
  /** The operation; one of ManageOp, or an unknown value (answered E_INVALIDARG, not a protocol error). */
  op: number;
  clientPid: number;
  /** The strings, "" = not given. For a known op exactly MANAGE_ARG_COUNTS of them. */
  args: string[];
  secret: string;
}

function readString(r: Reader, what: string): string {
  const bytes = r.u16();
  if (bytes % 2 !== 0) throw new ProtocolError(`${what}: odd UTF-16 string length ${bytes}`);
  return r.bytes(bytes).toString('utf16le');
}

/**
 * MANAGE: u32 op, u32 clientPid, u16 argCount, argCount strings (u16 byteLength, even, + UTF-16LE), u16
 * secretBytes, secret. A known op with another argCount, an odd string length, missing or trailing bytes:
 * ProtocolError. An unknown op parses (its strings must still be well formed) so that it can be answered.
 */
export function parseManage(payload: Buffer): ManagePayload {
  const r = new Reader(payload, 'MANAGE');
  const op = r.u32();
  const clientPid = r.u32();
  const argCount = r.u16();
  const expected = MANAGE_ARG_COUNTS.get(op);
  if (expected !== undefined && argCount !== expected) {
    throw new ProtocolError(`MANAGE: op ${op} takes ${expected} strings, got ${argCount}`);
  }
  const args: string[] = [];
  for (let i = 0; i < argCount; i++) args.push(readString(r, 'MANAGE'));
  const secretRaw = r.bytes(r.u16());
  r.end();
  return { op, clientPid, args, secret: secretRaw.toString('latin1') };
}

/** A string field of a record: u16 byteLength + UTF-16LE. RangeError past MAX_MANAGE_STRING_UNITS. */
export function encodeManageString(s: string): Buffer {
  if (s.length > MAX_MANAGE_STRING_UNITS) {
    throw new RangeError(`a MANAGE string holds at most ${MAX_MANAGE_STRING_UNITS} UTF-16 units`);
  }
  const out = Buffer.alloc(2 + s.length * 2);
  out.writeUInt16LE(s.length * 2, 0);
  out.write(s, 2, 'utf16le');
  return out;
}

function u32s(...values: number[]): Buffer {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => out.writeUInt32LE(v >>> 0, 4 * i));
  return out;
}

/** A FILTERS record. */
export interface ManageFilterRecord {
  flags: number;
  frameId: number;
  numberOfInstances: number;
  name: string;
  altitude: string;
}
/** An INSTANCES record. */
export interface ManageInstanceRecord {
  flags: number;
  frameId: number;
  volumeFileSystemType: number;
  instanceName: string;
  altitude: string;
  volumeName: string;
  filterName: string;
}
/** A VOLUMES record. */
export interface ManageVolumeRecord {
  flags: number;
  frameId: number;
  fileSystemType: number;
  volumeName: string;
  /** "" when the volume has none. */
  dosName: string;
}
/** A PORTS record. */
export interface ManagePortRecord {
  maxConnections: number;
  connections: number;
  portName: string;
  filterName: string;
}

export function encodeFilterRecord(r: ManageFilterRecord): Buffer {
  return Buffer.concat([
    u32s(r.flags, r.frameId, r.numberOfInstances),
    encodeManageString(r.name),
    encodeManageString(r.altitude),
  ]);
}

export function encodeInstanceRecord(r: ManageInstanceRecord): Buffer {
  return Buffer.concat([
    u32s(r.flags, r.frameId, r.volumeFileSystemType),
    encodeManageString(r.instanceName),
    encodeManageString(r.altitude),
    encodeManageString(r.volumeName),
    encodeManageString(r.filterName),
  ]);
}

export function encodeVolumeRecord(r: ManageVolumeRecord): Buffer {
  return Buffer.concat([
    u32s(r.flags, r.frameId, r.fileSystemType),
    encodeManageString(r.volumeName),
    encodeManageString(r.dosName),
  ]);
}

export function encodePortRecord(r: ManagePortRecord): Buffer {
  return Buffer.concat([
    u32s(r.maxConnections, r.connections),
    encodeManageString(r.portName),
    encodeManageString(r.filterName),
  ]);
}

/** The one-string record of ATTACH (the created instance name) and DOS_NAME (the DOS name). */
export function encodeNameRecord(name: string): Buffer {
  return encodeManageString(name);
}

/** MANAGE_RESULT: i32 hresult, u32 count, the records (already encoded). A failure carries none. */
export function encodeManageResult(hresult: number, records: readonly Buffer[] = []): Buffer {
  if (hresult !== 0 && records.length > 0) throw new RangeError('a failed MANAGE_RESULT carries no records');
  const head = Buffer.alloc(8);
  head.writeInt32LE(hresult | 0, 0);
  head.writeUInt32LE(records.length, 4);
  return Buffer.concat([head, ...records]);
}

/** The records of a MANAGE_RESULT, by the op that asked. */
export type ManageRecords =
  | { op: typeof ManageOp.FILTERS; records: ManageFilterRecord[] }
  | { op: typeof ManageOp.INSTANCES; records: ManageInstanceRecord[] }
  | { op: typeof ManageOp.VOLUMES; records: ManageVolumeRecord[] }
  | { op: typeof ManageOp.PORTS; records: ManagePortRecord[] }
  | { op: typeof ManageOp.ATTACH | typeof ManageOp.DOS_NAME; records: string[] }
  | { op: typeof ManageOp.LOAD | typeof ManageOp.UNLOAD | typeof ManageOp.DETACH; records: never[] };

/** Parses a MANAGE_RESULT answering `op` (for the codec's round-trip tests). */
export function parseManageResult(payload: Buffer, op: ManageOpValue): { hresult: number } & ManageRecords {
  const r = new Reader(payload, 'MANAGE_RESULT');
  const hresult = r.i32() >>> 0;
  const count = r.u32();
  if (hresult !== 0 && count !== 0) throw new ProtocolError('MANAGE_RESULT: a failure with records');
  const str = (): string => readString(r, 'MANAGE_RESULT');
  const many = <T>(read: () => T): T[] => {
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(read());
    r.end();
    return out;
  };
  switch (op) {
    case ManageOp.FILTERS:
      return {
        hresult,
        op,
        records: many(() => ({
          flags: r.u32(),
          frameId: r.u32(),
          numberOfInstances: r.u32(),
          name: str(),
          altitude: str(),
        })),
      };
    case ManageOp.INSTANCES:
      return {
        hresult,
        op,
        records: many(() => ({
          flags: r.u32(),
          frameId: r.u32(),
          volumeFileSystemType: r.u32(),
          instanceName: str(),
          altitude: str(),
          volumeName: str(),
          filterName: str(),
        })),
      };
    case ManageOp.VOLUMES:
      return {
        hresult,
        op,
        records: many(() => ({
          flags: r.u32(),
          frameId: r.u32(),
          fileSystemType: r.u32(),
          volumeName: str(),
          dosName: str(),
        })),
      };
    case ManageOp.PORTS:
      return {
        hresult,
        op,
        records: many(() => ({ maxConnections: r.u32(), connections: r.u32(), portName: str(), filterName: str() })),
      };
    case ManageOp.ATTACH:
    case ManageOp.DOS_NAME:
      if (hresult === 0 && count !== 1) throw new ProtocolError(`MANAGE_RESULT: op ${op} answers one record`);
      return { hresult, op, records: many(str) };
    default:
      if (count !== 0) throw new ProtocolError(`MANAGE_RESULT: op ${op} answers no records`);
      r.end();
      return { hresult, op, records: [] };
  }
}

// ---- endpoints ---------------------------------------------------------------------------------------

/** A parsed simulator endpoint (docs/wire-protocol.md): what parseEndpoint returns and formatEndpoint takes. */
export type Endpoint =
  | {
      /** A Unix socket. */
      kind: 'unix';
      /** The socket's path. */
      path: string;
    }
  | {
      /** TCP on the loopback interface. */
      kind: 'tcp';
      /** 127.0.0.1. */
      host: string;
      /** The TCP port. */
      port: number;
      /** The per-run secret the client must present. */
      secret: string;
    }
  | {
      /** A Windows named pipe. */
      kind: 'pipe';
      /** `\\.\pipe\NAME`. */
      path: string;
      /** The per-run secret the client must present. */
      secret: string;
    };

/** Parses `unix:/path`, a plain absolute path, `tcp:127.0.0.1:PORT#SECRET` or `pipe:\\.\pipe\NAME#SECRET`. */
export function parseEndpoint(text: string): Endpoint {
  if (typeof text !== 'string' || text.length === 0) throw new TypeError('endpoint must be a non-empty string');
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path.length === 0) throw new TypeError(`bad unix endpoint: ${text}`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  if (text.startsWith('tcp:')) {
    const hash = text.indexOf('#');
    const secret = hash >= 0 ? text.slice(hash + 1) : '';
    const hostPort = text.slice(4, hash >= 0 ? hash : undefined);
    const colon = hostPort.lastIndexOf(':');
    const host = hostPort.slice(0, colon);
    const portText = hostPort.slice(colon + 1);
    const port = Number(portText);
    if (colon <= 0 || !/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new TypeError(`bad tcp endpoint: ${text}`);
    }
    return { kind: 'tcp', host, port, secret };
  }
  if (text.startsWith('pipe:')) {
    // Pipe names may contain '#'; generated secrets do not (the native parser also splits at the last '#').
    const hash = text.lastIndexOf('#');
    const path = text.slice(5, hash >= 0 ? hash : undefined);
    if (path.length === 0) throw new TypeError(`bad pipe endpoint: ${text}`);
    return { kind: 'pipe', path, secret: hash >= 0 ? text.slice(hash + 1) : '' };
  }
  throw new TypeError(`unknown endpoint syntax: ${text}`);
}

/** The endpoint string for an {@link Endpoint} (the inverse of parseEndpoint). */
export function formatEndpoint(e: Endpoint): string {
  switch (e.kind) {
    case 'unix':
      return `unix:${e.path}`;
    case 'tcp':
      return `tcp:${e.host}:${e.port}#${e.secret}`;
    case 'pipe':
      return `pipe:${e.path}#${e.secret}`;
  }
}
