// A minifilter's real C code in this process, against the simulator: the kernel harness (native/kernel,
// issue 7). KernelDriver.load() maps a fresh copy of a driver image (buildKernelImage), runs its
// DriverEntry and connects what it creates to a FilterManagerSimulator: its FltRegisterFilter is a
// SimulatedFilter, its ports are the simulator's ports, FltSendMessage is filter.sendMessage. openFile()
// sends a simulated IRP_MJ_CREATE through its create callbacks.
//
// The harness is stricter than Windows without Driver Verifier: leaked pool, unreleased contexts and names,
// client ports never closed, push locks released but not held, routines called after FltUnregisterFilter
// are violations. They are collected in `violations`; unload() rejects with a KernelVerifierError if any
// were found during the driver's life.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding, type NativeKernelCaller, type NativeKernelImage, type KernelImageEvent } from '../binding';
import { NtStatus, hex32 } from '../status';
import type { ClientPort, PeerIdentity, ServerPort } from './types';
import { NtStatusError } from './types';
import type { SimulatedFilter } from './filter';
import type { FilterManagerSimulator } from './server';

/** FLT_PORT_CONNECT: the right a connect needs from the port's DACL. */
const FLT_PORT_CONNECT = 0x0001;
const REG_SZ = 1;
const REG_BINARY = 3;
const REG_DWORD = 4;
/** The largest timeout the simulator's sendMessage takes (setTimeout's limit). */
const MAX_TIMEOUT_MS = 0x7fffffff;
/** How long close() lets calls in flight settle once their waits were failed. */
const CLOSE_BOUND_MS = 5000;
/** The largest buffer query() hands a driver's test hook. */
const MAX_QUERY_BYTES = 1024 * 1024;

/** Options of {@link KernelDriver.load}. */
export interface KernelDriverOptions {
  /** The filter's name in the simulator (and the service name in the registry path). Default: the image's base name. */
  name?: string;
  /** The filter's altitude (the INF's Instance1.Altitude), as the simulator lists it. */
  altitude?: string;
  /**
   * The service's Parameters key, which WdfDriverOpenParametersRegistryKey opens: strings are REG_SZ (stored
   * with their terminating NUL, as regedit writes them), numbers REG_DWORD, byte arrays REG_BINARY.
   */
  parameters?: Record<string, string | number | Uint8Array>;
  /**
   * DbgPrintEx output and the harness's own lines (violations start with "VERIFIER:"), with their DPFLTR level
   * (0 error, 1 warning, 2 trace, 3 info; Windows shows only errors unless the debug filter mask says
   * otherwise). Default: discarded.
   */
  log?: (line: string, level: number) => void;
}

/** A simulated open (what the I/O manager would send as IRP_MJ_CREATE). */
export interface KernelOpenOptions {
  /** The name FltGetFileNameInformation returns (e.g. \Device\HarddiskVolume1\dir\a.exe). */
  path: string;
  /** The file's bytes: FltReadFile reads them, FileStandardInformation reports their length. */
  content: Uint8Array;
  /** The opening process (FltGetRequestorProcessId, PsGetCurrentProcessId in the callbacks). */
  processId: number;
  /** IO_SECURITY_CONTEXT.DesiredAccess. Default FILE_READ_DATA (1). */
  desiredAccess?: number;
  /** Parameters.Create.Options' low 24 bits (FILE_DIRECTORY_FILE = 1, ...). Default 0. */
  createOptions?: number;
  /** RequestorMode KernelMode. Default false (UserMode). */
  kernelMode?: boolean;
  /** The open turned out to be a directory (FileStandardInformation.Directory). Default false. */
  isDirectory?: boolean;
  /** FltReadFile fails with STATUS_UNEXPECTED_IO_ERROR. Default false. */
  readFails?: boolean;
  /** FileInternalInformation.IndexNumber. Default 0. */
  fileId?: bigint;
}

/** What the filter did with a simulated open. */
export interface KernelOpenResult {
  /** What the opener gets (the final IoStatus.Status), unsigned: 0 = the open succeeded. */
  status: number;
  /** The pre-create callback's FLT_PREOP_CALLBACK_STATUS; -1 when it did not run (no instance, unloading). */
  preStatus: number;
  /** The post-create callback ran. */
  postCalled: boolean;
  /** FltCancelFileOpen was called. */
  cancelled: boolean;
  /** FltSendMessage calls made while the open ran. */
  sends: number;
  /** The last one's NTSTATUS, unsigned (0x102 = STATUS_TIMEOUT). */
  sendStatus: number;
  /** The last one's message (empty when none was sent). */
  sendData: Buffer;
  /** The reply the last one received (empty when none). */
  replyData: Buffer;
  /** The Filter Manager routines the callbacks called, with their status: "FltGetFileNameInformation=0x00000000;...". */
  trace: string;
}

/** unload() found verifier violations (the driver broke a rule Driver Verifier would catch). */
export class KernelVerifierError extends Error {
  /** Each violation, "routine: reason". */
  readonly violations: readonly string[];
  /** `context`: what happened first, e.g. "DriverEntry of X failed (0xC0000001)". */
  constructor(violations: readonly string[], context?: string) {
    super(
      `${context === undefined ? '' : `${context}; `}the kernel harness's verifier found ${violations.length} ` +
        `violation(s):\n  ${violations.join('\n  ')}`,
    );
    this.name = 'KernelVerifierError';
    this.violations = violations;
  }
}

function registryOf(parameters: KernelDriverOptions['parameters']): Array<[string, number, Buffer]> {
  const out: Array<[string, number, Buffer]> = [];
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(parameters ?? {})) {
    // Value names are case-insensitive in the registry: two spellings of one name would be one value.
    if (seen.has(name.toLowerCase())) throw new TypeError(`parameters: ${name} is given twice (names ignore case)`);
    seen.add(name.toLowerCase());
    if (typeof value === 'string') {
      out.push([name, REG_SZ, Buffer.from(`${value}\0`, 'utf16le')]);
    } else if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new RangeError(`parameters.${name}: a REG_DWORD is an integer 0..0xffffffff`);
      }
      const b = Buffer.alloc(4);
      b.writeUInt32LE(value);
      out.push([name, REG_DWORD, b]);
    } else if (value instanceof Uint8Array) {
      out.push([name, REG_BINARY, Buffer.from(value)]);
    } else {
      throw new TypeError(`parameters.${name}: a string, a number or a Uint8Array`);
    }
  }
  return out;
}

/** A driver image loaded into a simulator. */
export class KernelDriver {
  /** The simulator's view of the driver's filter (FltRegisterFilter). */
  readonly filter: SimulatedFilter;
  /** The service name. */
  readonly name: string;
  /** Every violation the verifier reported so far ("routine: reason"). */
  get violations(): readonly string[] {
    return this.#violations;
  }

  readonly #sim: FilterManagerSimulator;
  readonly #image: NativeKernelImage;
  readonly #log: (line: string, level: number) => void;
  readonly #violations: string[] = [];
  readonly #ports = new Map<number, ServerPort>();
  readonly #clients = new Map<number, ClientPort>();
  #unloading: Promise<void> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  private constructor(
    sim: FilterManagerSimulator,
    image: NativeKernelImage,
    name: string,
    filter: SimulatedFilter,
    log: (line: string, level: number) => void,
  ) {
    this.#sim = sim;
    this.#image = image;
    this.name = name;
    this.filter = filter;
    this.#log = log;
  }

  /**
   * Maps a fresh copy of `imagePath` (each load starts with zeroed globals, as a driver's image does) and
   * runs DriverEntry. Rejects with NtStatusError when DriverEntry fails (the image is then closed), or with
   * KernelVerifierError when it failed and left something behind (pool, a registered filter, a port).
   */
  static async load(
    sim: FilterManagerSimulator,
    imagePath: string,
    options: KernelDriverOptions = {},
  ): Promise<KernelDriver> {
    const binding = loadBinding();
    if (binding.KernelImage === undefined) throw new Error('the kernel harness runs on Linux only');
    const name = options.name ?? path.basename(imagePath).replace(/\.[^.]*$/, '');
    const log: (line: string, level: number) => void = options.log ?? (() => undefined);
    const registry = registryOf(options.parameters);
    // UNLOAD by name (fltmc unload, FilterUnload) runs the driver's unload path: FilterUnloadCallback, which may
    // refuse (STATUS_FLT_DO_NOT_DETACH), then EvtDriverUnload and the verifier's end-of-image checks.
    const loaded: { driver?: KernelDriver } = {};
    const filter = sim.registerFilter(name, {
      ...(options.altitude === undefined ? {} : { altitude: options.altitude }),
      unload: () => loaded.driver?.unload() ?? Promise.resolve(),
    });
    // A private copy: dlopen of the same path twice would share one image (and its globals).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-kernel-'));
    const copy = path.join(dir, `${name}-${randomBytes(4).toString('hex')}.so`);
    let onEvent: (event: KernelImageEvent) => void = () => undefined;
    let image: NativeKernelImage;
    try {
      fs.copyFileSync(imagePath, copy);
      image = new binding.KernelImage(copy, registry, (event) => onEvent(event));
    } catch (err) {
      await filter.unload();
      throw err;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true }); // mapped already: the file is not needed any more
    }
    const driver = new KernelDriver(sim, image, name, filter, log);
    loaded.driver = driver;
    onEvent = (event) => driver.#onEvent(event);
    const status = await image.driverEntry(`\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\${name}`);
    if (status === null || status < 0) {
      await filter.unload();
      await driver.#violationsDelivered();
      await driver.close();
      // A failed DriverEntry must undo its own work: what it left behind is the more useful error.
      if (driver.#violations.length > 0) {
        throw new KernelVerifierError(
          driver.#violations,
          `DriverEntry of ${name} failed (${hex32((status ?? 0) >>> 0)})`,
        );
      }
      throw new NtStatusError(
        status ?? NtStatus.STATUS_UNSUCCESSFUL,
        `DriverEntry of ${name} failed: ${hex32((status ?? 0) >>> 0)}`,
      );
    }
    return driver;
  }

  /** True once unload() was called. */
  get unloaded(): boolean {
    return this.#unloading !== undefined;
  }

  /** Sends a simulated IRP_MJ_CREATE through the filter's create callbacks (on a harness thread). */
  async openFile(options: KernelOpenOptions): Promise<KernelOpenResult> {
    if (typeof options.path !== 'string' || options.path.length === 0)
      throw new TypeError('openFile: path must be a non-empty string');
    if (!(options.content instanceof Uint8Array)) throw new TypeError('openFile: content must be a Uint8Array');
    if (!Number.isInteger(options.processId) || options.processId < 0 || options.processId > 0xffffffff) {
      throw new TypeError('openFile: processId must be an integer 0..0xffffffff');
    }
    for (const key of ['desiredAccess', 'createOptions'] as const) {
      const v = options[key];
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
        throw new TypeError(`openFile: ${key} must be an integer 0..0xffffffff`);
      }
    }
    if (
      options.fileId !== undefined &&
      (typeof options.fileId !== 'bigint' || options.fileId < 0n || options.fileId >= 1n << 64n)
    ) {
      throw new TypeError('openFile: fileId must be a bigint 0..2^64-1');
    }
    if (this.#closed) throw new Error(`the driver ${this.name} is unloaded`);
    const r = await this.#call(
      this.#image.openFile({
        path: options.path,
        processId: options.processId,
        content: Buffer.from(options.content.buffer, options.content.byteOffset, options.content.byteLength),
        fileId: options.fileId ?? 0n,
        desiredAccess: options.desiredAccess ?? 1,
        createOptions: options.createOptions ?? 0,
        kernelMode: options.kernelMode ?? false,
        isDirectory: options.isDirectory ?? false,
        readFails: options.readFails ?? false,
      }),
    );
    if (r === null) throw new Error(`the driver ${this.name} is unloaded`);
    return { ...r, status: r.status >>> 0, sendStatus: r.sendStatus >>> 0 };
  }

  /**
   * Calls the driver's FltmgrHarnessQuery test hook (native/kernel/include/fltmgr_harness.h) with a buffer of
   * `length` bytes that starts with `input` (zeros after it). Resolves with the bytes the hook reported
   * written; rejects with NtStatusError when it fails (STATUS_NOT_IMPLEMENTED: the driver has none).
   */
  async query(code: number, length: number, input?: Uint8Array): Promise<Buffer> {
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) throw new RangeError('query: code is a ULONG');
    if (!Number.isInteger(length) || length < 0 || length > MAX_QUERY_BYTES) {
      throw new RangeError(`query: length must be an integer 0..${MAX_QUERY_BYTES}`);
    }
    if (input !== undefined && (!(input instanceof Uint8Array) || input.length > length)) {
      throw new TypeError('query: input must be a Uint8Array of at most `length` bytes');
    }
    if (this.#closed) throw new Error(`the driver ${this.name} is unloaded`);
    const r = await this.#call(this.#image.query(code, length, input === undefined ? undefined : Buffer.from(input)));
    if (r === null) throw new Error(`the driver ${this.name} is unloaded`);
    if (r.status < 0) throw new NtStatusError(r.status);
    return r.data;
  }

  /**
   * Unloads the driver as `fltmc unload` does (FilterUnloadCallback, then KMDF's EvtDriverUnload), runs the
   * end-of-image checks. An UNLOAD request for the filter's name (FilterManagerSimulator.unloadFilter, fltlib's
   * FilterUnload against the simulator) calls this. Rejects with NtStatusError when the filter refuses (it stays loaded) and with
   * KernelVerifierError when the verifier found violations during the driver's life. The image stays mapped
   * (openFile() then passes opens through unfiltered, query() reads what the driver left) until close().
   */
  unload(): Promise<void> {
    this.#unloading ??= (async () => {
      const status = await this.#call(this.#image.unload());
      if (status !== null && status < 0) {
        this.#unloading = undefined;
        throw new NtStatusError(status, `the filter ${this.name} refused to unload: ${hex32(status >>> 0)}`);
      }
      await this.filter.unload(); // what the driver left: ports and connections (normally none by now)
      await this.#violationsDelivered();
      if (this.#violations.length > 0) throw new KernelVerifierError(this.#violations);
    })();
    return this.#unloading;
  }

  /**
   * Unmaps the image. First every wait of the driver on the simulator ends (a FltSendMessage returns
   * STATUS_PORT_DISCONNECTED), then the calls in flight settle (at most CLOSE_BOUND_MS), then the image's
   * threads are joined and the image unmapped; one still in driver code after the bound keeps it mapped.
   * Idempotent. unload() first, unless the point is to drop the driver without its unload (a crash-stop).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#image.shutdown();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#inFlight]),
        new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_BOUND_MS))),
      ]);
      clearTimeout(timer);
      this.#closed = true;
      if (!this.#image.close()) this.#log('harness: a thread was still in the driver; the image stays mapped', 1);
    })();
    return this.#closing;
  }

  /** Every call into the image goes through here, so that close() can wait for them. */
  #call<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    const forget = (): void => void this.#inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /**
   * Waits until every violation the image recorded has reached #violations. They come as events on their own
   * queue, which the completion of a call into the image can overtake: the unload's own end-of-image findings
   * could otherwise be missed. They are queued already, so each turn of the event loop delivers some.
   */
  async #violationsDelivered(): Promise<void> {
    // close() shuts the event queue down (later events are dropped): stop waiting then.
    while (this.#closing === undefined && this.#violations.length < this.#image.violationCount()) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #caller(identity: PeerIdentity | undefined, processId: number | undefined): NativeKernelCaller {
    const admin = identity !== undefined && this.#sim.isAdministrator(identity);
    return {
      processId: processId ?? 0,
      admin,
      system: false,
      ...(identity?.uid === undefined ? {} : { uid: identity.uid }),
      ...(identity?.gid === undefined ? {} : { gid: identity.gid }),
    };
  }

  #onEvent(event: KernelImageEvent): void {
    switch (event.kind) {
      case 'log':
        this.#log(event.text.replace(/\n$/, ''), event.level);
        return;
      case 'violation':
        this.#violations.push(`${event.text}: ${event.reason}`);
        return;
      case 'createPort':
        this.#answer(event.id, () => this.#createPort(event.target, event.name, event.maxConnections));
        return;
      case 'closePort':
        this.#answer(event.id, () => this.#ports.get(event.target)?.close());
        return;
      case 'closeClient':
        this.#answer(event.id, () => this.#clients.get(event.target)?.close());
        return;
      case 'unregisterFilter':
        // Filter Manager calls no callback of a filter once FltUnregisterFilter has returned: the simulator's
        // unload waits for every disconnect callback, those of connections that ended just before included.
        this.#answerAsync(event.id, () => this.filter.unload().then(() => ({ status: 0 })));
        return;
      case 'send': {
        const client = this.#clients.get(event.target);
        if (client === undefined) {
          this.#image.answer(event.id, NtStatus.STATUS_PORT_DISCONNECTED | 0);
          return;
        }
        // A timeout beyond what a timer can hold (24.8 days) is no timeout at all, not an early STATUS_TIMEOUT.
        const timeout =
          event.timeoutMs !== undefined && event.timeoutMs <= MAX_TIMEOUT_MS ? event.timeoutMs : undefined;
        this.#answerAsync(event.id, () =>
          this.filter.sendMessage(client, event.data, {
            ...(event.replyLength === undefined ? {} : { replyLength: event.replyLength }),
            ...(timeout === undefined ? {} : { timeout }),
          }),
        );
        return;
      }
    }
  }

  /**
   * Answers request `id` with what `work` resolves to; a failure is answered too (its NTSTATUS, or
   * STATUS_UNSUCCESSFUL), so that a driver thread never waits for an answer that will not come.
   */
  #answerAsync(id: number, work: () => Promise<{ status: number; reply?: Buffer }>): void {
    const fail = (err: unknown): void => {
      const status = err instanceof NtStatusError ? err.status : NtStatus.STATUS_UNSUCCESSFUL;
      if (!(err instanceof NtStatusError)) this.#log(`harness: ${String(err)}`, 0);
      this.#image.answer(id, status | 0);
    };
    try {
      work().then((r) => this.#image.answer(id, r.status | 0, r.reply), fail);
    } catch (err) {
      fail(err);
    }
  }

  #answer(id: number, work: () => void): void {
    try {
      work();
      this.#image.answer(id, 0);
    } catch (err) {
      const status = err instanceof NtStatusError ? err.status : NtStatus.STATUS_UNSUCCESSFUL;
      if (!(err instanceof NtStatusError)) this.#log(`harness: ${String(err)}`, 0);
      this.#image.answer(id, status | 0);
    }
  }

  #createPort(portId: number, name: string, maxConnections: number): void {
    const image = this.#image;
    const port = this.filter.createCommunicationPort(name, {
      maxConnections,
      // The descriptor the driver passed decides, evaluated by the harness (AccessCheck over its DACL).
      security: {
        check: (who) =>
          !this.#closed &&
          image.portAccess(
            portId,
            {
              processId: 0,
              admin: who.administrator,
              system: false,
              ...(who.uid === undefined ? {} : { uid: who.uid }),
              ...(who.gid === undefined ? {} : { gid: who.gid }),
            },
            FLT_PORT_CONNECT,
          ),
      },
      connect: async (client, context) => {
        this.#clients.set(client.id, client);
        const status = await this.#call(
          image.connect(portId, client.id, this.#caller(client.identity, client.processId), context),
        );
        if (status === null || status < 0) {
          this.#clients.delete(client.id);
          throw new NtStatusError(status ?? NtStatus.STATUS_PORT_DISCONNECTED);
        }
        return client.id;
      },
      disconnect: async (client) => {
        await this.#call(image.disconnect(client.id));
        this.#clients.delete(client.id);
      },
      message: async (client, input, outputCapacity) => {
        const r = await this.#call(
          image.message(client.id, this.#caller(client.identity, client.processId), input, outputCapacity),
        );
        if (r === null) throw new NtStatusError(NtStatus.STATUS_PORT_DISCONNECTED);
        if (r.status < 0) throw new NtStatusError(r.status);
        return r.output;
      },
    });
    this.#ports.set(portId, port);
  }
}
