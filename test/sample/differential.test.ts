// The differential test (issue 7, §3): the same randomized scenarios run against the sample driver's C code in the
// kernel harness and against its TypeScript twin, each in its own simulator, and every observable is compared:
// each open's result, the scan requests the agent received, GET_STATS after each phase, configuration and command
// results and errors. It is what keeps the twin honest.
//
// FLTMGR_DIFF_SEED=n reruns one seed (printed at the start and in every failure); FLTMGR_DIFF_ROUNDS=n runs more
// rounds (seeds n, n+1, ...). Opens are sequential where order matters (round-robin, scan ids); the concurrent
// phases compare multisets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { FilterPort } from '../../lib';
import type { ClientPort } from '../../lib/simulator';
import { FileAccess, type OpenFileOptions, type OpenFileResult } from '../../driver-sample/twin';
import { kernelHarnessAvailable, type SampleTargetKind } from '../../driver-sample/target';
import * as P from '../../driver-sample/protocol';
import { serveRaw, startSample, type SampleHarness } from '../helpers/sample';
import { WireClient } from '../helpers/wire-client';
import { TEST_TIMEOUT_MS, until, withTimeout } from '../helpers/timing';

const ROUNDS = positiveInt(process.env['FLTMGR_DIFF_ROUNDS']) ?? 32; // ~0.15 s a round on an idle 2-core machine
const FIRST_SEED = positiveInt(process.env['FLTMGR_DIFF_SEED']) ?? (Math.random() * 0x7fffffff) >>> 0;
const OTHER_PID = 4242; // an opener that is not a connected scanner
const EVIL = Buffer.from('EVIL', 'latin1'); // what the block-by-content agent blocks

function positiveInt(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

// ---- a seeded PRNG (mulberry32): the whole scenario derives from the seed --------------------------------------

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** lo..hi inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
}

// ---- scenarios (plain data, printed on a mismatch) ---------------------------------------------------------------

/** How a scanner connection answers scan requests. */
type AgentKind =
  | 'allow'
  | 'slow' // ALLOW after a few milliseconds
  | 'block-content' // BLOCK when the content sent holds EVIL
  | 'short-reply' // 4 bytes: less than FLTSAMPLE_SCAN_REPLY
  | 'bad-verdict' // a verdict that is neither ALLOW nor BLOCK
  | 'long-reply' // 16 bytes (raw wire client): more than the driver's reply buffer
  | 'silent' // never replies (the phase's ReplyTimeoutMs is short)
  | 'disconnect'; // closes its connection on its first request, unanswered

interface FileSpec {
  path: string;
  size: number;
  /** Offset of EVIL in the content, if any. */
  evilAt?: number;
  fill: number;
}

interface OpenSpec {
  file: number;
  self: boolean; // opened by the scanners' own process (excluded)
  desiredAccess?: number;
  kernel?: boolean;
  directory?: boolean;
  openedDirectory?: boolean;
  readFails?: boolean;
  fileId?: string; // bigint as decimal text
}

type ConfigStep =
  | { via: 'set-config' | 'configure'; what?: string; config: P.SampleConfig; outputSize: number }
  | { via: 'set-config-raw'; what: string; bytes: string; outputSize: number };

type CommandSpec =
  | { kind: 'echo'; size: number; outputSize: number }
  | { kind: 'raw'; what: string; bytes: string; outputSize: number }
  | { kind: 'probe'; count: number; contentBytes: number; flags: number; timeoutMs: number; outputSize: number };

interface Phase {
  configs: ConfigStep[];
  agents: AgentKind[];
  opens: OpenSpec[];
  concurrent: boolean;
  commands: CommandSpec[];
}

interface Scenario {
  seed: number;
  files: FileSpec[];
  phases: Phase[];
}

const EXTENSIONS = [
  'exe',
  'dll',
  'txt',
  'js',
  'ps1',
  'bat',
  'doc',
  'gz',
  'a',
  'é',
  'üx',
  'ÿ',
  'ω',
  'жx',
  'ß',
  'ǆ',
  '\u{10428}',
  'x'.repeat(15),
];
const STEMS = ['a', 'setup', 'README', 'archive.tar', '.hidden', 'trailing.', 'Ωmega', '\u{1F600}', 'x y'];
const DIRS = ['', '\\Users\\me', '\\dir.with.dots', '\\a.exe', '\\Program Files (x86)\\Äpp', '\\日本語'];
const STREAMS = [':s', ':Zone.Identifier:$DATA', '::$DATA', ':x.txt'];

/** Case variants of an extension, as a user types them. */
function caseVariant(rng: Rng, text: string): string {
  switch (rng.int(0, 3)) {
    case 0:
      return text.toUpperCase();
    case 1:
      return [...text].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('');
    default:
      return text;
  }
}

/** A path component of random NUL-free UTF-16 units (no separators, dots or colons). */
function randomComponent(rng: Rng, length: number): string {
  let out = '';
  while (out.length < length) {
    const unit = rng.chance(0.5) ? rng.int(0x20, 0x7e) : rng.int(0xa0, 0xffff);
    if (unit === 0x5c || unit === 0x2f || unit === 0x2e || unit === 0x3a) continue;
    out += String.fromCharCode(unit); // lone surrogates included: paths are UTF-16 units, not Unicode text
  }
  return out;
}

function genFile(rng: Rng, contentBytes: number): FileSpec {
  const volume = '\\Device\\HarddiskVolume3';
  let dir = rng.pick(DIRS);
  let name: string;
  const shape = rng.int(0, 9);
  if (shape === 0) name = rng.pick(['noext', 'Makefile', 'a b']);
  else if (shape === 1) name = randomComponent(rng, rng.int(1, 12)) + '.' + caseVariant(rng, rng.pick(EXTENSIONS));
  else name = rng.pick(STEMS) + '.' + caseVariant(rng, rng.pick(EXTENSIONS));
  if (rng.chance(0.15)) name += rng.pick(STREAMS);
  if (rng.chance(0.12)) {
    // Longer than MAX_PATH_CHARS (the driver truncates what it sends).
    while (dir.length < P.MAX_PATH_CHARS + rng.int(-40, 300)) dir += '\\' + randomComponent(rng, rng.int(8, 40));
  }
  const size = rng.pick([0, rng.int(1, 64), contentBytes, contentBytes + rng.int(1, 2000), rng.int(0, 3000)]);
  const file: FileSpec = { path: `${volume}${dir}\\${name}`, size, fill: rng.int(0, 255) };
  if (size >= EVIL.length && rng.chance(0.4)) file.evilAt = rng.int(0, size - EVIL.length);
  return file;
}

function contentOf(file: FileSpec): Buffer {
  const b = Buffer.alloc(file.size);
  for (let i = 0; i < b.length; i++) b[i] = (file.fill + i * 7) & 0xff;
  if (file.evilAt !== undefined) EVIL.copy(b, file.evilAt);
  return b;
}

function genValidConfig(rng: Rng, silent: boolean): P.SampleConfig {
  const count = rng.int(0, P.MAX_EXTENSIONS);
  const extensions: string[] = [];
  for (let i = 0; i < count; i++) extensions.push(caseVariant(rng, rng.pick(EXTENSIONS)));
  return {
    failClosed: rng.chance(0.4),
    scanAllFiles: rng.chance(0.2),
    // Short only when no agent answers, so that no verdict can lose a race with the clock.
    replyTimeoutMs: silent ? rng.int(1, 30) : rng.int(20_000, P.MAX_REPLY_TIMEOUT_MS),
    contentBytes: rng.pick([0, 1, 7, 512, 1023, P.MAX_CONTENT_BYTES, rng.int(0, P.MAX_CONTENT_BYTES)]),
    extensions,
  };
}

/** A configuration SET_CONFIG must refuse; both implementations must refuse it the same way. */
function genInvalidConfig(rng: Rng): ConfigStep {
  const outputSize = rng.pick([0, P.CONFIG.size]);
  const base = genValidConfig(rng, false);
  const typed = (what: string, config: P.SampleConfig): ConfigStep => ({
    via: rng.chance(0.5) ? 'configure' : 'set-config',
    what,
    config,
    outputSize,
  });
  const raw = (what: string, edit: (b: Buffer) => void): ConfigStep => {
    const b = P.encodeConfig(base);
    edit(b);
    return { via: 'set-config-raw', what, bytes: b.toString('hex'), outputSize };
  };
  switch (rng.int(0, 11)) {
    case 11:
      return { via: 'set-config', what: 'output too small', config: base, outputSize: rng.int(1, P.CONFIG.size - 1) };
    case 0:
      return typed('replyTimeoutMs 0', { ...base, replyTimeoutMs: 0 });
    case 1:
      return typed('replyTimeoutMs too large', { ...base, replyTimeoutMs: P.MAX_REPLY_TIMEOUT_MS + 1 });
    case 2:
      return typed('contentBytes too large', { ...base, contentBytes: P.MAX_CONTENT_BYTES + rng.int(1, 5000) });
    case 3:
      return typed('extension with a dot', { ...base, extensions: [...base.extensions.slice(0, 3), 'tar.gz'] });
    case 4:
      return typed('extension with a backslash', { ...base, extensions: ['a\\b'] });
    case 5:
      return typed('empty extension', { ...base, extensions: ['exe', ''] });
    case 6:
      return raw('16-unit extension (no NUL)', (b) => {
        b.writeUInt32LE(1, 12);
        b.fill(0, 16);
        for (let j = 0; j < P.MAX_EXTENSION_CHARS; j++) b.writeUInt16LE(0x79, 16 + j * 2);
      });
    case 7:
      return raw('unknown flag', (b) => b.writeUInt32LE(b.readUInt32LE(0) | 0x4, 0));
    case 8:
      return raw('extensionCount 17', (b) => b.writeUInt32LE(P.MAX_EXTENSIONS + 1, 12));
    case 9:
      return raw('junk in an unused entry', (b) => {
        b.writeUInt32LE(1, 12);
        b.writeUInt16LE(0x41, 16 + 5 * P.MAX_EXTENSION_CHARS * 2);
      });
    default:
      return {
        via: 'set-config-raw',
        what: 'short body',
        bytes: P.encodeConfig(base).subarray(0, 100).toString('hex'),
        outputSize,
      };
  }
}

function header(version: number, command: number, reserved = 0): Buffer {
  return P.COMMAND_HEADER.encode({ protocolVersion: version, command, reserved });
}

function genCommand(rng: Rng): CommandSpec {
  const raw = (what: string, bytes: Buffer, outputSize: number): CommandSpec => ({
    kind: 'raw',
    what,
    bytes: bytes.toString('hex'),
    outputSize,
  });
  switch (rng.int(0, 9)) {
    case 0:
    case 1: {
      const size = rng.pick([0, 1, 15, 16, rng.int(2, 4096), P.MAX_ECHO_BYTES, P.MAX_ECHO_BYTES + 1]);
      return { kind: 'echo', size, outputSize: rng.chance(0.2) ? Math.max(0, size - 1) : size };
    }
    case 2:
      return raw('GET_STATS', header(1, P.Command.GET_STATS), rng.pick([P.STATS.size, P.STATS.size + 8]));
    case 3:
      return raw('GET_STATS, small output', header(1, P.Command.GET_STATS), rng.int(0, P.STATS.size - 1));
    case 4:
      return raw('GET_STATS with a body', Buffer.concat([header(1, P.Command.GET_STATS), Buffer.alloc(4)]), 256);
    case 5:
      return raw('GET_CONFIG', header(1, P.Command.GET_CONFIG), rng.pick([P.CONFIG.size, 16]));
    case 6:
      return raw('bad version', header(rng.pick([0, 2, 0xffff]), rng.int(1, 5)), 1024);
    case 7:
      return raw('unknown command', header(1, rng.pick([0, 6, 0x7fff, 0xffff])), 1024);
    case 8:
      return rng.chance(0.5)
        ? raw('reserved set', header(1, P.Command.GET_STATS, rng.int(1, 0xffffffff)), 1024)
        : raw('shorter than the header', Buffer.alloc(rng.int(0, 7)), 1024);
    default: {
      const invalid = rng.chance(0.25);
      return {
        kind: 'probe',
        count: invalid && rng.chance(0.5) ? 0 : rng.int(1, 3),
        contentBytes: rng.int(0, 64),
        flags: rng.chance(0.3) ? P.ProbeFlag.NO_REPLY : 0,
        timeoutMs: invalid ? rng.pick([0, P.MAX_PROBE_TIMEOUT_MS + 1]) : P.MAX_PROBE_TIMEOUT_MS,
        outputSize: invalid && rng.chance(0.3) ? 8 : P.PROBE_RESULT.size,
      };
    }
  }
}

function genScenario(seed: number): Scenario {
  const rng = new Rng(seed);
  const files = Array.from({ length: rng.int(6, 14) }, () => genFile(rng, rng.pick([0, 1, 512, P.MAX_CONTENT_BYTES])));
  const phases: Phase[] = [];
  const phaseCount = rng.int(2, 4);
  for (let p = 0; p < phaseCount; p++) {
    const concurrent = rng.chance(0.2);
    let agents: AgentKind[];
    if (concurrent) {
      // One behaviour for all: which scanner gets which open is up to the scheduler.
      const kind = rng.pick<AgentKind>(['allow', 'slow', 'block-content']);
      agents = Array.from({ length: rng.int(0, 2) }, () => kind);
    } else {
      const kind = rng.pick<AgentKind | 'none'>([
        'none',
        'allow',
        'slow',
        'block-content',
        'short-reply',
        'bad-verdict',
        'long-reply',
        'silent',
        'disconnect',
      ]);
      agents = kind === 'none' ? [] : Array.from({ length: rng.int(1, 2) }, () => kind);
      // A mix of answering agents on a round-robin (never with a silent one: its short timeout would race them).
      if (kind !== 'silent' && kind !== 'none' && rng.chance(0.3)) {
        agents.push(rng.pick<AgentKind>(['allow', 'block-content', 'bad-verdict', 'short-reply', 'long-reply']));
      }
    }
    const silent = agents.includes('silent');
    const configs: ConfigStep[] = [];
    for (let i = rng.int(0, 2); i > 0; i--) configs.push(genInvalidConfig(rng));
    configs.push({
      via: rng.chance(0.5) ? 'configure' : 'set-config',
      config: genValidConfig(rng, silent),
      outputSize: rng.pick([0, P.CONFIG.size, P.CONFIG.size + 16]), // a smaller one would refuse it
    });
    const opens: OpenSpec[] = [];
    for (let i = rng.int(3, concurrent ? 16 : 10); i > 0; i--) {
      const open: OpenSpec = { file: rng.int(0, files.length - 1), self: !concurrent && rng.chance(0.08) };
      if (rng.chance(0.1))
        open.desiredAccess = rng.pick([FileAccess.READ_ATTRIBUTES, FileAccess.DELETE | FileAccess.READ_ATTRIBUTES]);
      else if (rng.chance(0.2))
        open.desiredAccess = rng.pick([FileAccess.WRITE_DATA, FileAccess.EXECUTE, FileAccess.APPEND_DATA]);
      if (rng.chance(0.05)) open.kernel = true;
      if (rng.chance(0.05)) open.directory = true;
      if (rng.chance(0.07)) open.openedDirectory = true;
      if (rng.chance(0.1)) open.readFails = true;
      if (rng.chance(0.2)) open.fileId = String(rng.pick([0n, 1n, 0xffffffffffffffffn, BigInt(rng.int(0, 1e9))]));
      opens.push(open);
    }
    const commands = Array.from({ length: rng.int(0, 4) }, () => genCommand(rng));
    phases.push({ configs, agents, opens, concurrent, commands });
  }
  return { seed, files, phases };
}

// ---- running a scenario against one target: a transcript of observables --------------------------------------

interface Entry {
  label: string;
  value: unknown;
}

/** Plain JSON-comparable data: bigints as text, buffers as hex. */
function plain(value: unknown): unknown {
  // The holder's own value: Buffer's toJSON has already run on `v`.
  return JSON.parse(
    JSON.stringify(value, function (this: Record<string, unknown>, k, v: unknown) {
      const own = this[k];
      return typeof v === 'bigint' ? `${v}n` : own instanceof Uint8Array ? Buffer.from(own).toString('hex') : v;
    }),
  );
}

function describeError(error: unknown): unknown {
  if (typeof error !== 'object' || error === null) return { thrown: String(error) };
  const e = error as { name?: unknown; hresult?: unknown; status?: unknown; code?: unknown };
  return {
    name: e.name,
    ...(typeof e.hresult === 'number' ? { hresult: `0x${e.hresult.toString(16)}` } : {}),
    ...(typeof e.status === 'number' ? { status: `0x${e.status.toString(16)}` } : {}),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
  };
}

async function outcome<T>(p: Promise<T>, map: (v: T) => unknown = (v) => v): Promise<unknown> {
  try {
    return { ok: map(await p) };
  } catch (error) {
    return { error: describeError(error) };
  }
}

class Run {
  readonly entries: Entry[] = [];
  private scanIdBase: bigint | undefined;

  record(label: string, value: unknown): void {
    this.entries.push({ label, value: plain(value) });
  }

  /** ScanId relative to the first one seen in this run (sequential steps only). */
  scanId(id: bigint): bigint {
    this.scanIdBase ??= id;
    return id - this.scanIdBase;
  }

  /** A received scan request: its fields (readable in a failure) and all its bytes, ScanId normalised. */
  normalizeRequest(data: Uint8Array, keepScanId: boolean): unknown {
    const b = Buffer.from(data);
    if (b.length < P.SCAN_REQUEST.size) return { short: b };
    const id = keepScanId ? this.scanId(b.readBigUInt64LE(8)) : 0n;
    b.writeBigUInt64LE(BigInt.asUintN(64, id), 8);
    const { path, content, ...fields } = P.decodeScanRequest(b);
    return { ...fields, scanId: id, path, contentLength: content.length, bytes: b };
  }
}

interface Scanner {
  close(): Promise<void>;
  closed: boolean;
}

async function startScanner(
  h: SampleHarness,
  kind: AgentKind,
  index: number,
  received: { scanner: number; data: Buffer }[],
): Promise<Scanner> {
  if (kind === 'long-reply') {
    const wire = await WireClient.connect(h.endpoint, {
      portName: P.PORT_NAME,
      context: P.encodeConnectContext({ scanner: true, processId: process.pid }),
    });
    const scanner: Scanner = { closed: false, close: () => wire.close() };
    void (async () => {
      while (wire.isOpen) {
        const got = await wire.postGet(16 + P.SCAN_REQUEST.size).done.catch(() => undefined);
        if (got === undefined || got.status !== 0) return;
        received.push({ scanner: index, data: got.data });
        const reply = Buffer.concat([P.encodeScanReply(P.Verdict.ALLOW, 77), Buffer.alloc(8, 0xee)]);
        await wire.reply(got.messageId, reply).catch(() => undefined);
      }
    })();
    return scanner;
  }
  const port: FilterPort = await h.connect({ scanner: true });
  const scanner: Scanner = {
    closed: false,
    close: async () => {
      scanner.closed = true;
      await port.close();
    },
  };
  serveRaw(port, (request, message) => {
    if (kind !== 'silent') received.push({ scanner: index, data: Buffer.from(message.data) });
    switch (kind) {
      case 'allow':
        return P.encodeScanReply(P.Verdict.ALLOW, request.content.length + 1000);
      case 'slow':
        return new Promise<Uint8Array>((resolve) =>
          setTimeout(() => resolve(P.encodeScanReply(P.Verdict.ALLOW, 2)), 1 + (request.content.length % 20)),
        );
      case 'block-content': {
        const evil = request.content.includes(EVIL);
        return P.encodeScanReply(evil ? P.Verdict.BLOCK : P.Verdict.ALLOW, evil ? 0xe71 : 1);
      }
      case 'short-reply':
        return Buffer.from([1, 0, 0, 0]);
      case 'bad-verdict':
        return P.encodeScanReply([0, 3, 0xffffffff][request.content.length % 3] ?? 0, 5);
      case 'silent':
        return undefined;
      default: // 'disconnect'
        if (!scanner.closed) void scanner.close();
        return undefined;
    }
  });
  return scanner;
}

function openOptions(scenario: Scenario, open: OpenSpec): OpenFileOptions {
  const file = scenario.files[open.file];
  if (file === undefined) throw new Error(`no file ${open.file}`);
  const o: OpenFileOptions = {
    path: file.path,
    content: contentOf(file),
    processId: open.self ? process.pid : OTHER_PID,
  };
  if (open.desiredAccess !== undefined) o.desiredAccess = open.desiredAccess;
  if (open.kernel === true) o.requestorMode = 'kernel';
  if (open.directory === true) o.directory = true;
  if (open.openedDirectory === true) o.openedDirectory = true;
  if (open.readFails === true) o.readFails = true;
  if (open.fileId !== undefined) o.fileId = BigInt(open.fileId);
  return o;
}

async function runScenario(target: SampleTargetKind, scenario: Scenario): Promise<Entry[]> {
  const run = new Run();
  const h = await startSample({ target });
  try {
    const cmd = await h.connect(); // command-only connection (an administrator's)
    const probePort = await h.connect(); // receives PROBE messages, answers ALLOW
    const probes = serveRaw(probePort);
    let probesSeen = 0;
    let live = 2; // connections the driver should count
    const clientPorts = new Set<ClientPort>();
    h.sim.on('connect', (client: ClientPort) => clientPorts.add(client));
    const settle = async (what: string): Promise<void> => {
      await until(async () => (await h.driver.stats()).connectionsCurrent === live, { what });
      // ConnectionsCurrent drops before the disconnect callback has closed and freed the connection
      // (FsPortDisconnect): wait for the callbacks to return, so that the pool counters are at rest.
      // `settled` (the simulator's connection object, not in the ClientPort interface) resolves when it has.
      const gone = [...clientPorts].filter((c) => !c.connected) as (ClientPort & { settled?: Promise<void> })[];
      assert.ok(
        gone.every((c) => c.settled instanceof Promise),
        'the simulator exposes ClientPort.settled',
      );
      await withTimeout(Promise.all(gone.map((c) => c.settled ?? Promise.resolve())), {
        what: `${what} (disconnect callbacks)`,
      });
    };
    run.record('initial GET_STATS', await P.getStats(cmd));
    run.record('initial config', await h.driver.configuration());

    for (const [p, phase] of scenario.phases.entries()) {
      const tag = `phase ${p}`;
      for (const [i, step] of phase.configs.entries()) {
        const label = `${tag} config ${i} (${step.via})`;
        if (step.via === 'configure') {
          run.record(label, await outcome(h.driver.configure(step.config), () => 'ok'));
        } else {
          const send = async (): Promise<Buffer> => {
            const body = step.via === 'set-config-raw' ? Buffer.from(step.bytes, 'hex') : P.encodeConfig(step.config);
            return cmd.send(P.encodeCommand(P.Command.SET_CONFIG, body), { outputSize: step.outputSize });
          };
          run.record(label, await outcome(send()));
        }
      }
      run.record(
        `${tag} GET_CONFIG`,
        await outcome(cmd.send(P.encodeCommand(P.Command.GET_CONFIG), { outputSize: P.CONFIG.size })),
      );
      run.record(`${tag} configuration()`, await h.driver.configuration());

      const received: { scanner: number; data: Buffer }[] = [];
      const scanners: Scanner[] = [];
      for (const [i, kind] of phase.agents.entries()) scanners.push(await startScanner(h, kind, i, received));
      live += scanners.length;
      const disconnecting = phase.agents.includes('disconnect');

      if (phase.concurrent) {
        const results = await Promise.all(phase.opens.map((o) => h.driver.openFile(openOptions(scenario, o))));
        const strip = ({ scanId: _id, ...rest }: OpenFileResult): unknown => plain(rest);
        run.record(`${tag} open results (multiset)`, results.map((r) => JSON.stringify(strip(r))).sort());
        run.record(
          `${tag} requests received (multiset)`,
          received.map((r) => JSON.stringify(plain(run.normalizeRequest(r.data, false)))).sort(),
        );
      } else {
        for (const [i, o] of phase.opens.entries()) {
          const r = await h.driver.openFile(openOptions(scenario, o));
          run.record(`${tag} open ${i}`, r.scanId === undefined ? r : { ...r, scanId: run.scanId(r.scanId) });
          if (disconnecting) {
            live = phase.agents.length - scanners.filter((s) => s.closed).length + 2;
            await settle(`${tag}: the driver to see the disconnects`);
          }
        }
        run.record(
          `${tag} requests received`,
          received.map((r) => ({ scanner: r.scanner, request: run.normalizeRequest(r.data, true) })),
        );
      }
      run.record(`${tag} GET_STATS (agents connected)`, await P.getStats(cmd));

      for (const [i, c] of phase.commands.entries()) {
        const label = `${tag} command ${i} (${c.kind === 'raw' ? c.what : c.kind})`;
        if (c.kind === 'echo') {
          const data = Buffer.alloc(c.size, 0x5a);
          run.record(
            label,
            await outcome(cmd.send(P.encodeCommand(P.Command.ECHO, data), { outputSize: c.outputSize }), (out) =>
              out.equals(data) ? 'same bytes' : out,
            ),
          );
        } else if (c.kind === 'raw') {
          run.record(label, await outcome(cmd.send(Buffer.from(c.bytes, 'hex'), { outputSize: c.outputSize })));
        } else {
          const body = P.encodeProbeRequest({
            count: c.count,
            contentBytes: c.contentBytes,
            timeoutMs: c.timeoutMs,
            flags: c.flags,
          });
          const result = await outcome(
            probePort.send(P.encodeCommand(P.Command.PROBE, body), { outputSize: c.outputSize }),
            (out) => {
              // The round-trip times are the machine's; the counts and status are the driver's.
              const r = P.decodeProbeResult(out);
              return {
                sent: r.sent,
                replied: r.replied,
                timedOut: r.timedOut,
                failed: r.failed,
                lastStatus: r.lastStatus,
              };
            },
          );
          run.record(label, result);
          const sent = (result as { ok?: { sent: number } }).ok?.sent ?? 0;
          probesSeen += sent;
          await until(() => probes.requests.length >= probesSeen, { what: `${label}: the probe messages` });
        }
      }
      run.record(
        `${tag} probe messages`,
        probes.requests.splice(0).map((r) => ({ ...r, scanId: run.scanId(r.scanId) })),
      );
      probesSeen = 0;

      for (const s of scanners) if (!s.closed) await s.close();
      live = 2;
      await settle(`${tag}: the scanners to disconnect`);
      run.record(`${tag} GET_STATS`, await P.getStats(cmd));
      run.record(`${tag} stats()`, await h.driver.stats());
    }
  } finally {
    await h.close(); // the C driver's verifier checks run here
  }
  run.record('unloaded', h.driver.unloaded);
  return run.entries;
}

/** Both values; for lists, the elements that differ (a multiset difference), which is what a reader needs. */
function describeDifference(c: unknown, twin: unknown): string {
  if (Array.isArray(c) && Array.isArray(twin)) {
    const left = c.map((v) => JSON.stringify(v));
    const right = twin.map((v) => JSON.stringify(v));
    const onlyIn = (xs: string[], ys: string[]): string[] => {
      const rest = [...ys];
      return xs.filter((x) => {
        const i = rest.indexOf(x);
        if (i < 0) return true;
        rest.splice(i, 1);
        return false;
      });
    };
    return [
      `  ${left.length} elements (c), ${right.length} (twin)`,
      ...onlyIn(left, right).map((x) => `  only c:    ${x}`),
      ...onlyIn(right, left).map((x) => `  only twin: ${x}`),
      ...(left.join() !== right.join() && onlyIn(left, right).length === 0 ? ['  same elements, another order'] : []),
    ].join('\n');
  }
  return `  c    = ${JSON.stringify(c)}\n  twin = ${JSON.stringify(twin)}`;
}

function compare(scenario: Scenario, c: Entry[], twin: Entry[]): string[] {
  const problems: string[] = [];
  const n = Math.max(c.length, twin.length);
  for (let i = 0; i < n; i++) {
    const a = c[i];
    const b = twin[i];
    if (a === undefined || b === undefined || a.label !== b.label) {
      problems.push(`step ${i}: different steps: c=${a?.label ?? '(none)'} twin=${b?.label ?? '(none)'}`);
      break;
    }
    try {
      assert.deepStrictEqual(b.value, a.value);
    } catch {
      problems.push(`${a.label}:\n${describeDifference(a.value, b.value)}`);
    }
  }
  if (problems.length === 0) return problems;
  return [`seed ${scenario.seed} (rerun: FLTMGR_DIFF_SEED=${scenario.seed} FLTMGR_DIFF_ROUNDS=1)`, ...problems];
}

test(
  'differential: the C driver and the twin agree on randomized scenarios',
  { skip: kernelHarnessAvailable() ? false : 'the kernel harness runs on Linux only', timeout: TEST_TIMEOUT_MS },
  async (t) => {
    t.diagnostic(`FLTMGR_DIFF_SEED=${FIRST_SEED} FLTMGR_DIFF_ROUNDS=${ROUNDS}`);
    for (let round = 0; round < ROUNDS; round++) {
      const scenario = genScenario((FIRST_SEED + round) >>> 0);
      const c = await runScenario('c', scenario);
      const twin = await runScenario('twin', scenario);
      const problems = compare(scenario, c, twin);
      if (problems.length > 0) {
        assert.fail(`${problems.join('\n')}\nscenario: ${JSON.stringify(scenario)}`);
      }
    }
  },
);
