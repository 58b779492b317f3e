// A client of docs/wire-protocol.md written from the document, independently of lib/simulator/wire.ts, so the
// simulator's tests check the bytes on the wire rather than the codec against itself.
import * as net from 'node:net';
import { withTimeout } from './timing';

export const T = {
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

/** MANAGE ops (docs/wire-protocol.md, "Management requests"). */
export const OP = {
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

export interface RawFrame {
  type: number;
  id: number;
  version: number;
  flags: number;
  payload: Buffer;
}

export interface GetResult {
  status: number; // unsigned NTSTATUS
  replyLength: number;
  messageId: bigint;
  data: Buffer;
}

export interface ConnectOptions {
  portName: string;
  context?: Uint8Array;
  /** Default: the secret in the endpoint string (TCP), else empty. */
  secret?: string;
  options?: number;
  pid?: number;
}

export function frameBytes(
  type: number,
  id: number,
  payload: Uint8Array = Buffer.alloc(0),
  o: { version?: number; flags?: number; length?: number } = {},
): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b.writeUInt32LE(o.length ?? 8 + payload.length, 0);
  b.writeUInt8(o.version ?? 1, 4);
  b.writeUInt8(type, 5);
  b.writeUInt16LE(o.flags ?? 0, 6);
  b.writeUInt32LE(id >>> 0, 8);
  Buffer.from(payload).copy(b, 12);
  return b;
}

export function connectPayload(o: ConnectOptions & { secret: string }): Buffer {
  const name = Buffer.from(o.portName, 'utf16le');
  const ctx = Buffer.from(o.context ?? new Uint8Array(0));
  const secret = Buffer.from(o.secret, 'latin1');
  const head = Buffer.alloc(10);
  head.writeUInt32LE(o.options ?? 0, 0);
  head.writeUInt32LE(o.pid ?? process.pid, 4);
  head.writeUInt16LE(name.length, 8);
  const u16 = (n: number): Buffer => {
    const x = Buffer.alloc(2);
    x.writeUInt16LE(n, 0);
    return x;
  };
  return Buffer.concat([head, name, u16(ctx.length), ctx, u16(secret.length), secret]);
}

function str16(s: string): Buffer {
  const b = Buffer.from(s, 'utf16le');
  const head = Buffer.alloc(2);
  head.writeUInt16LE(b.length, 0);
  return Buffer.concat([head, b]);
}

/** A MANAGE payload: u32 op, u32 clientPid, u16 argCount, strings (u16 byteLength + UTF-16LE), u16 + secret. */
export function managePayload(o: { op: number; args: readonly string[]; secret: string; pid?: number }): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt32LE(o.op >>> 0, 0);
  head.writeUInt32LE(o.pid ?? process.pid, 4);
  head.writeUInt16LE(o.args.length, 8);
  const secret = Buffer.from(o.secret, 'latin1');
  const secretHead = Buffer.alloc(2);
  secretHead.writeUInt16LE(secret.length, 0);
  return Buffer.concat([head, ...o.args.map(str16), secretHead, secret]);
}

/** A decoded MANAGE_RESULT: the HRESULT (unsigned) and the records, decoded by the op that asked. */
export interface ManageAnswer {
  hresult: number;
  records: ManageRecord[];
}
export type ManageRecord = Record<string, number | string>;

// Field layouts of each op's records: 'u' = u32, 's' = u16 byteLength + UTF-16LE.
const RECORD_FIELDS: Record<number, Array<[string, 'u' | 's']>> = {
  [OP.FILTERS]: [
    ['flags', 'u'],
    ['frameId', 'u'],
    ['numberOfInstances', 'u'],
    ['name', 's'],
    ['altitude', 's'],
  ],
  [OP.INSTANCES]: [
    ['flags', 'u'],
    ['frameId', 'u'],
    ['volumeFileSystemType', 'u'],
    ['instanceName', 's'],
    ['altitude', 's'],
    ['volumeName', 's'],
    ['filterName', 's'],
  ],
  [OP.VOLUMES]: [
    ['flags', 'u'],
    ['frameId', 'u'],
    ['fileSystemType', 'u'],
    ['volumeName', 's'],
    ['dosName', 's'],
  ],
  [OP.ATTACH]: [['name', 's']],
  [OP.DOS_NAME]: [['name', 's']],
  [OP.PORTS]: [
    ['maxConnections', 'u'],
    ['connections', 'u'],
    ['portName', 's'],
    ['filterName', 's'],
  ],
};

/** Decodes a MANAGE_RESULT payload for `op`; throws on any byte out of place (trailing bytes included). */
export function decodeManageResult(op: number, p: Buffer): ManageAnswer {
  if (p.length < 8) throw new Error(`MANAGE_RESULT payload of ${p.length} bytes`);
  const hresult = p.readUInt32LE(0);
  const count = p.readUInt32LE(4);
  let at = 8;
  const fields = RECORD_FIELDS[op] ?? [];
  const records: ManageRecord[] = [];
  for (let i = 0; i < count; i++) {
    if (fields.length === 0) throw new Error(`op ${op} answered with records`);
    const rec: ManageRecord = {};
    for (const [name, kind] of fields) {
      if (kind === 'u') {
        rec[name] = p.readUInt32LE(at);
        at += 4;
      } else {
        const n = p.readUInt16LE(at);
        if (n % 2 !== 0) throw new Error('odd string length');
        if (at + 2 + n > p.length) throw new Error('string past the end');
        rec[name] = p.subarray(at + 2, at + 2 + n).toString('utf16le');
        at += 2 + n;
      }
    }
    records.push(rec);
  }
  if (at !== p.length) throw new Error(`${p.length - at} trailing bytes in MANAGE_RESULT`);
  if (hresult !== 0 && count !== 0) throw new Error('a failed MANAGE_RESULT with records');
  return { hresult, records };
}

/** A REPLY payload: FILTER_REPLY_HEADER (Status, 4 reserved bytes, MessageId) + data. */
export function replyPayload(messageId: bigint, data: Uint8Array = new Uint8Array(0), status = 0): Buffer {
  const head = Buffer.alloc(16);
  head.writeInt32LE(status | 0, 0);
  head.writeBigUInt64LE(messageId, 8);
  return Buffer.concat([head, Buffer.from(data)]);
}

/** A SEND payload: u32 output capacity + input. */
export function sendPayload(outputCapacity: number, input: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(outputCapacity >>> 0, 0);
  return Buffer.concat([head, Buffer.from(input)]);
}

function parseEndpoint(endpoint: string): { connect: net.NetConnectOpts; secret: string } {
  if (endpoint.startsWith('unix:')) return { connect: { path: endpoint.slice(5) }, secret: '' };
  if (endpoint.startsWith('/')) return { connect: { path: endpoint }, secret: '' };
  const m = /^tcp:([^:#]+):(\d+)#(.*)$/.exec(endpoint);
  if (m) return { connect: { host: m[1] as string, port: Number(m[2]) }, secret: m[3] as string };
  throw new Error(`wire-client: unsupported endpoint ${endpoint}`);
}

interface Waiter<V> {
  resolve(v: V): void;
  reject(e: Error): void;
}

export class WireConnectError extends Error {
  constructor(readonly hresult: number) {
    super(`CONNECT_RESULT 0x${hresult.toString(16).padStart(8, '0')}`);
  }
}

export class WireClient {
  /** Frames that matched no waiter (GET_COMPLETE for an unknown id, a second CONNECT_RESULT...). */
  readonly unexpected: RawFrame[] = [];
  /** Resolves with the DISCONNECT frame's status. */
  readonly disconnected: Promise<number>;
  /** Resolves when the stream is closed (either side). */
  readonly closed: Promise<void>;
  readonly secret: string;

  private buf = Buffer.alloc(0);
  private nextId = 1;
  private isClosed = false;
  private connectWaiter: Waiter<number> | undefined;
  private manageWaiter: Waiter<Buffer> | undefined;
  private readonly gets = new Map<number, Waiter<GetResult>>();
  private readonly replies = new Map<number, Waiter<number>>();
  private readonly sends = new Map<number, Waiter<{ hresult: number; output: Buffer }>>();
  private resolveDisconnected!: (status: number) => void;

  private constructor(
    readonly socket: net.Socket,
    secret: string,
  ) {
    this.secret = secret;
    this.disconnected = new Promise((r) => (this.resolveDisconnected = r));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        const err = new Error('stream closed');
        this.connectWaiter?.reject(err);
        this.manageWaiter?.reject(err);
        for (const m of [this.gets, this.replies, this.sends] as Map<number, Waiter<never>>[]) {
          for (const w of m.values()) w.reject(err);
          m.clear();
        }
        resolve();
      });
    });
    socket.on('error', () => undefined); // ECONNRESET after a protocol error is expected
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Opens the stream without sending CONNECT. */
  static open(endpoint: string): Promise<WireClient> {
    const { connect, secret } = parseEndpoint(endpoint);
    return withTimeout(
      new Promise<WireClient>((resolve, reject) => {
        const socket = net.connect(connect);
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(new WireClient(socket, secret));
        });
      }),
      { what: `connecting to ${endpoint}` },
    );
  }

  /** Opens and connects; rejects with WireConnectError on a failed CONNECT_RESULT. */
  static async connect(endpoint: string, o: ConnectOptions): Promise<WireClient> {
    const c = await WireClient.open(endpoint);
    const hr = await c.connect(o);
    if (hr !== 0) {
      c.destroy();
      throw new WireConnectError(hr);
    }
    return c;
  }

  /** Sends CONNECT; resolves with CONNECT_RESULT's HRESULT (unsigned). */
  connect(o: ConnectOptions): Promise<number> {
    const p = new Promise<number>((resolve, reject) => (this.connectWaiter = { resolve, reject }));
    this.writeRaw(frameBytes(T.CONNECT, 0, connectPayload({ ...o, secret: o.secret ?? this.secret })));
    return withTimeout(p, { what: 'CONNECT_RESULT' });
  }

  /**
   * Sends MANAGE (secret: the endpoint's unless given) and resolves with MANAGE_RESULT's raw payload; rejects
   * when the stream closes first.
   */
  manageRaw(o: { op: number; args: readonly string[]; secret?: string; pid?: number }): Promise<Buffer> {
    const p = this.manageResult();
    this.writeRaw(frameBytes(T.MANAGE, 0, managePayload({ ...o, secret: o.secret ?? this.secret })));
    return p;
  }

  /** Resolves with the next MANAGE_RESULT's payload (for a MANAGE the caller writes itself). */
  manageResult(): Promise<Buffer> {
    const p = new Promise<Buffer>((resolve, reject) => (this.manageWaiter = { resolve, reject }));
    return withTimeout(p, { what: 'MANAGE_RESULT' });
  }

  writeRaw(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Posts a GET; `done` settles with its GET_COMPLETE. */
  postGet(capacity: number, id = this.nextId++): { id: number; done: Promise<GetResult> } {
    const done = new Promise<GetResult>((resolve, reject) => this.gets.set(id, { resolve, reject }));
    done.catch(() => undefined); // callers that never await a get must not cause unhandled rejections
    const p = Buffer.alloc(4);
    p.writeUInt32LE(capacity >>> 0, 0);
    this.writeRaw(frameBytes(T.GET, id, p));
    return { id, done };
  }

  get(capacity: number): Promise<GetResult> {
    return withTimeout(this.postGet(capacity).done, { what: 'GET_COMPLETE' });
  }

  cancel(id: number): void {
    this.writeRaw(frameBytes(T.CANCEL, id));
  }

  reply(messageId: bigint, data: Uint8Array = new Uint8Array(0), status = 0): Promise<number> {
    const id = this.nextId++;
    const p = new Promise<number>((resolve, reject) => this.replies.set(id, { resolve, reject }));
    this.writeRaw(frameBytes(T.REPLY, id, replyPayload(messageId, data, status)));
    return withTimeout(p, { what: 'REPLY_RESULT' });
  }

  send(input: Uint8Array, outputCapacity: number): Promise<{ hresult: number; output: Buffer }> {
    const id = this.nextId++;
    const p = new Promise<{ hresult: number; output: Buffer }>((resolve, reject) =>
      this.sends.set(id, { resolve, reject }),
    );
    this.writeRaw(frameBytes(T.SEND, id, sendPayload(outputCapacity, input)));
    return withTimeout(p, { what: 'SEND_RESULT' });
  }

  /** Closes the handle (the stream) and waits until it is closed. */
  async close(): Promise<void> {
    this.socket.end();
    await withTimeout(this.closed, { what: 'stream close' });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (this.buf.length < 4 + len) return;
      const f: RawFrame = {
        version: this.buf.readUInt8(4),
        type: this.buf.readUInt8(5),
        flags: this.buf.readUInt16LE(6),
        id: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(12, 4 + len)),
      };
      this.buf = this.buf.subarray(4 + len);
      this.onFrame(f);
    }
  }

  private onFrame(f: RawFrame): void {
    const p = f.payload;
    if (f.version !== 1 || f.flags !== 0) {
      this.unexpected.push(f);
      return;
    }
    switch (f.type) {
      case T.CONNECT_RESULT:
        if (this.connectWaiter && p.length === 4) {
          this.connectWaiter.resolve(p.readUInt32LE(0));
          this.connectWaiter = undefined;
          return;
        }
        break;
      case T.GET_COMPLETE: {
        const w = this.gets.get(f.id);
        if (w && p.length >= 16) {
          this.gets.delete(f.id);
          w.resolve({
            status: p.readUInt32LE(0),
            replyLength: p.readUInt32LE(4),
            messageId: p.readBigUInt64LE(8),
            data: p.subarray(16),
          });
          return;
        }
        break;
      }
      case T.REPLY_RESULT: {
        const w = this.replies.get(f.id);
        if (w && p.length === 4) {
          this.replies.delete(f.id);
          w.resolve(p.readUInt32LE(0));
          return;
        }
        break;
      }
      case T.SEND_RESULT: {
        const w = this.sends.get(f.id);
        if (w && p.length >= 4) {
          this.sends.delete(f.id);
          w.resolve({ hresult: p.readUInt32LE(0), output: p.subarray(4) });
          return;
        }
        break;
      }
      case T.MANAGE_RESULT:
        if (this.manageWaiter && f.id === 0) {
          this.manageWaiter.resolve(p);
          this.manageWaiter = undefined;
          return;
        }
        break;
      case T.DISCONNECT:
        if (p.length === 4 && f.id === 0) {
          this.resolveDisconnected(p.readUInt32LE(0));
          return;
        }
        break;
    }
    this.unexpected.push(f);
  }
}

/**
 * One management request on a fresh stream, as fltlib's management calls make it: MANAGE, MANAGE_RESULT, and
 * the simulator closes the stream (checked: nothing else arrives, the stream ends).
 */
export async function manage(
  endpoint: string,
  op: number,
  args: readonly string[] = [],
  o: { secret?: string; pid?: number } = {},
): Promise<ManageAnswer> {
  const w = await WireClient.open(endpoint);
  try {
    const payload = await w.manageRaw({ op, args, ...o });
    await withTimeout(w.closed, { what: 'the simulator to close the stream after MANAGE_RESULT' });
    if (w.unexpected.length > 0) throw new Error(`unexpected frames after MANAGE_RESULT: ${w.unexpected.length}`);
    return decodeManageResult(op, payload);
  } finally {
    w.destroy();
  }
}
