#!/usr/bin/env node
/**
 * A scanner agent for the sample minifilter (driver-sample/): connects to \FltmgrSamplePort as a SCANNER,
 * answers every SCAN_REQUEST with ALLOW or BLOCK after matching signatures in the bytes the driver sent (the
 * EICAR test string and a few toy signatures), and keeps doing so across driver unloads and reloads.
 *
 * The same file runs against the real driver on Windows (elevated: scanners must be administrators) and
 * against the simulator twin anywhere: where the port lives is FilterPort.connect's business (the real Filter
 * Manager on Windows, the simulator when FLTMGR_SIMULATOR is set). Nothing here knows about the simulator.
 *
 *   node dist/examples/scanner-agent.js [--concurrency 4] [--extensions exe,txt,com] [--timeout-ms 2000]
 *        [--content-bytes 1024] [--fail-closed | --fail-open] [--scan-all] [--stats-interval-ms 10000]
 *        [--scan-delay-ms 0] [--reconnect-min-ms 250] [--reconnect-max-ms 5000] [--quiet]
 *
 * SIGINT / SIGTERM: stop receiving, print the driver's statistics, close the port, exit 0.
 */
import { EventEmitter } from 'node:events';
import { parseArgs } from 'node:util';
import {
  FilterAgent,
  FilterError,
  FltmgrError,
  type AgentState,
  type ConnectOptions,
  type FilterMessage,
  type FilterPort,
} from '../lib';
import * as P from '../driver-sample/protocol';

// ---------------------------------------------------------------------------------------------------------------
// Signatures

export interface Signature {
  /** Sent to the driver as the reply's ReasonCode. */
  readonly id: number;
  readonly name: string;
  readonly pattern: Buffer;
}

// The EICAR test string, assembled at run time so that this source file itself is not detected by
// anti-virus products that look for the string anywhere in a file.
const EICAR_TEXT = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-', 'TEST-FILE!$H+H*'].join('');

/** The EICAR anti-virus test file's content (68 bytes): harmless, detected by every scanner by convention. */
export const EICAR = Buffer.from(EICAR_TEXT, 'latin1');

export const SIGNATURES: readonly Signature[] = Object.freeze([
  { id: 1, name: 'EICAR-Test-File', pattern: EICAR },
  { id: 2, name: 'Toy.JS.EvalDropper', pattern: Buffer.from('eval(atob(', 'latin1') },
  { id: 3, name: 'Toy.Ransom.Note', pattern: Buffer.from('YOUR FILES HAVE BEEN ENCRYPTED', 'latin1') },
  { id: 4, name: 'Toy.PS.HiddenDownloader', pattern: Buffer.from('-w hidden -c iex(iwr ', 'latin1') },
]);

export interface ScanDecision {
  verdict: P.VerdictValue;
  /** The signature id for a BLOCK, 0 for ALLOW. */
  reasonCode: number;
  signature?: string;
}

/** Signature matching on the bytes the driver sent (the first ContentBytes of the file). */
export function scanBytes(content: Uint8Array, signatures: readonly Signature[] = SIGNATURES): ScanDecision {
  const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  for (const s of signatures) {
    if (bytes.indexOf(s.pattern) >= 0) return { verdict: P.Verdict.BLOCK, reasonCode: s.id, signature: s.name };
  }
  return { verdict: P.Verdict.ALLOW, reasonCode: 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// The agent

export type ScanEngine = (request: P.ScanRequest) => ScanDecision | Promise<ScanDecision>;

export interface ScannerAgentOptions {
  /** Default \FltmgrSamplePort. */
  portName?: string;
  /** Outstanding FilterGetMessage calls = scans in progress at once. Default 4. */
  concurrency?: number;
  /** Passed to FilterPort.connect (e.g. `simulator`); the context and signal are the agent's own. */
  connect?: Omit<ConnectOptions, 'context' | 'signal'>;
  /**
   * Backoff between connection attempts: doubles from minMs to maxMs (less up to half at random: jitter),
   * reset by a successful connect.
   */
  reconnect?: { minMs?: number; maxMs?: number };
  /** Applied with SET_CONFIG over the driver's current configuration after every connect. */
  config?: Partial<P.SampleConfig>;
  /** Default: scanBytes with SIGNATURES. */
  engine?: ScanEngine;
  /** GET_STATS every this many milliseconds (emitted as 'stats'); 0 = never (default). */
  statsIntervalMs?: number;
  log?: (line: string) => void;
}

export interface ScanEvent {
  request: P.ScanRequest;
  decision: ScanDecision;
}

export interface AgentCounters {
  connects: number;
  scans: number;
  blocked: number;
  probes: number;
  /** Replies the driver no longer waited for (it timed out first), and other failed replies. */
  failedReplies: number;
}

interface AgentEvents {
  connected: [port: FilterPort];
  /** The connection was lost (a FilterError with `disconnected` true); the agent reconnects. */
  disconnected: [error: FilterError];
  scan: [event: ScanEvent];
  stats: [stats: P.Stats];
  /** A fatal error ended the agent (start()'s promise rejects with it too). Emitted only with a listener. */
  error: [error: Error];
}

const RECEIVE_BUFFER = 16 + P.SCAN_REQUEST.size; // FILTER_MESSAGE_HEADER + FLTSAMPLE_SCAN_REQUEST

export class ScannerAgent extends EventEmitter<AgentEvents> {
  readonly counters: AgentCounters = { connects: 0, scans: 0, blocked: 0, probes: 0, failedReplies: 0 };
  private readonly portName: string;
  private readonly concurrency: number;
  private readonly engine: ScanEngine;
  private readonly log: (line: string) => void;
  private agent: FilterAgent | undefined;
  private statsTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ScannerAgentOptions = {}) {
    super();
    this.portName = options.portName ?? P.PORT_NAME;
    this.concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new RangeError('concurrency must be an integer >= 1');
    this.engine = options.engine ?? ((request) => scanBytes(request.content));
    this.log = options.log ?? (() => undefined);
  }

  /** The connection in use, if connected. */
  get port(): FilterPort | undefined {
    return this.agent?.port;
  }

  get stopped(): boolean {
    return this.agent?.state.state === 'closed';
  }

  /**
   * Starts connecting and serving (fltmgr's FilterAgent: waits for the driver, reconnects after it unloads);
   * the promise settles when the agent stops (rejects on a fatal error: e.g. access denied, no simulator).
   */
  start(): Promise<void> {
    if (this.agent === undefined) {
      const minMs = this.options.reconnect?.minMs ?? 250;
      const agent = new FilterAgent(this.portName, (message) => this.onMessage(message), {
        connect: {
          ...this.options.connect,
          context: P.encodeConnectContext({ scanner: true, processId: process.pid }),
        },
        backoff: { initialDelayMs: minMs, maxDelayMs: Math.max(minMs, this.options.reconnect?.maxMs ?? 5000) },
        concurrency: this.concurrency,
        bufferSize: RECEIVE_BUFFER,
        onError: (error) => {
          this.counters.failedReplies++;
          this.log(`reply failed: ${error instanceof Error ? error.message : String(error)}`);
        },
        onConnect: (port) =>
          this.options.config !== undefined ? this.applyConfig(port, this.options.config) : undefined,
      });
      agent.on('state', (state) => this.onState(state));
      this.agent = agent;
    }
    return this.agent.done;
  }

  /** Stops: no more reconnects, the port is closed (the driver sees the disconnect). Idempotent. */
  async stop(): Promise<void> {
    await this.agent?.close();
  }

  /** GET_STATS on the agent's connection. */
  async stats(): Promise<P.Stats> {
    const port = this.port;
    if (port === undefined) throw new Error('the agent is not connected');
    return P.getStats(port);
  }

  private onState(state: AgentState): void {
    switch (state.state) {
      case 'waiting': {
        const code = state.error instanceof FilterError ? state.error.code : String(state.error);
        this.log(`connect failed: ${code}; retrying in ${state.delayMs} ms`);
        break;
      }
      case 'connected': {
        this.counters.connects++;
        this.log(`connected to ${this.portName} as scanner (pid ${process.pid}, concurrency ${this.concurrency})`);
        const every = this.options.statsIntervalMs ?? 0;
        if (every > 0) {
          this.statsTimer = setInterval(() => {
            P.getStats(state.port).then(
              (stats) => this.emit('stats', stats),
              () => undefined, // the connection is going away; the agent reports it
            );
          }, every);
        }
        this.emit('connected', state.port);
        break;
      }
      case 'disconnected': {
        this.clearStatsTimer();
        const lost = state.lost.length > 0 ? `, ${state.lost.length} scan(s) in flight lost` : '';
        this.log(`connection lost (${state.reason.message})${lost}; reconnecting`);
        this.emit('disconnected', state.reason);
        break;
      }
      case 'closed':
        this.clearStatsTimer();
        if (state.error !== undefined && this.listenerCount('error') > 0) this.emit('error', toError(state.error));
        break;
      case 'connecting':
        break;
    }
  }

  private clearStatsTimer(): void {
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    this.statsTimer = undefined;
  }

  private async applyConfig(port: FilterPort, wanted: Partial<P.SampleConfig>): Promise<void> {
    try {
      const current = await P.getConfig(port);
      const effective = await P.setConfig(port, { ...current, ...wanted });
      this.log(
        `configuration: ${effective.failClosed ? 'fail-closed' : 'fail-open'}, timeout ${effective.replyTimeoutMs} ms, ` +
          `${effective.contentBytes} bytes, ${effective.scanAllFiles ? 'all files' : effective.extensions.join(' ')}`,
      );
    } catch (error) {
      if (error instanceof FilterError && error.disconnected) throw error;
      // Not fatal: scanning works with the driver's configuration (SET_CONFIG needs an administrator).
      this.log(`SET_CONFIG failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async onMessage(message: FilterMessage): Promise<Uint8Array | undefined> {
    const request = P.decodeScanRequest(message.data);
    if (request.isProbe) {
      this.counters.probes++;
      return message.expectsReply ? P.encodeScanReply(P.Verdict.ALLOW) : undefined;
    }
    const decision = await this.engine(request);
    this.counters.scans++;
    if (decision.verdict === P.Verdict.BLOCK) this.counters.blocked++;
    this.emit('scan', { request, decision });
    return message.expectsReply ? P.encodeScanReply(decision.verdict, decision.reasonCode) : undefined;
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

export function formatStats(s: P.Stats): string {
  return [
    `scan requests ${s.scanRequests}, allowed ${s.scansAllowed}, blocked ${s.scansBlocked}, timeouts ${s.scanTimeouts}, errors ${s.scanErrors}`,
    `no agent ${s.noAgentOpens}, fail-open allowed ${s.failOpenAllowed}, fail-closed denied ${s.failClosedDenied}, excluded ${s.excludedOpens}`,
    `connections ${s.connectionsCurrent} now (${s.scannerConnections} scanners), ${s.connectionsTotal} since load; ` +
      `probe messages ${s.probeMessages}; pool ${s.poolAllocations} allocations / ${s.poolBytes} bytes`,
  ].join('\n');
}

function parseCommandLine(argv: string[]): ScannerAgentOptions & { quiet: boolean; scanDelayMs: number } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      concurrency: { type: 'string' },
      port: { type: 'string' },
      extensions: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'content-bytes': { type: 'string' },
      'fail-closed': { type: 'boolean' },
      'fail-open': { type: 'boolean' },
      'scan-all': { type: 'boolean' },
      'stats-interval-ms': { type: 'string' },
      'scan-delay-ms': { type: 'string' },
      'reconnect-min-ms': { type: 'string' },
      'reconnect-max-ms': { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  const int = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new Error(`--${name} wants a non-negative integer, got ${text}`);
    return Number(text);
  };
  const config: Partial<P.SampleConfig> = {};
  if (values.extensions !== undefined) config.extensions = values.extensions.split(',').filter((e) => e.length > 0);
  const timeout = int('timeout-ms', values['timeout-ms']);
  if (timeout !== undefined) config.replyTimeoutMs = timeout;
  const contentBytes = int('content-bytes', values['content-bytes']);
  if (contentBytes !== undefined) config.contentBytes = contentBytes;
  if (values['fail-closed'] === true) config.failClosed = true;
  if (values['fail-open'] === true) config.failClosed = false;
  if (values['scan-all'] === true) config.scanAllFiles = true;
  const options: ScannerAgentOptions & { quiet: boolean; scanDelayMs: number } = {
    quiet: values.quiet === true,
    scanDelayMs: int('scan-delay-ms', values['scan-delay-ms']) ?? 0,
    reconnect: {
      minMs: int('reconnect-min-ms', values['reconnect-min-ms']) ?? 250,
      maxMs: int('reconnect-max-ms', values['reconnect-max-ms']) ?? 5000,
    },
  };
  const concurrency = int('concurrency', values.concurrency);
  if (concurrency !== undefined) options.concurrency = concurrency;
  if (values.port !== undefined) options.portName = values.port;
  if (Object.keys(config).length > 0) options.config = config;
  const statsInterval = int('stats-interval-ms', values['stats-interval-ms']);
  if (statsInterval !== undefined) options.statsIntervalMs = statsInterval;
  return options;
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parseCommandLine>;
  try {
    options = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`scanner-agent: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const say = (line: string): void => {
    process.stdout.write(`[scanner-agent] ${line}\n`);
  };
  const delayMs = options.scanDelayMs;
  const agent = new ScannerAgent({
    ...options,
    log: say,
    engine: async (request) => {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      return scanBytes(request.content);
    },
  });
  agent.on('scan', ({ request, decision }) => {
    if (options.quiet) return;
    const what =
      decision.verdict === P.Verdict.BLOCK ? `BLOCK (${decision.signature ?? decision.reasonCode})` : 'allow';
    say(`scan #${request.scanId} pid ${request.processId} ${request.path}: ${what}`);
  });
  agent.on('stats', (stats) => say(`driver statistics:\n${formatStats(stats)}`));

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      process.exit(130); // a second signal: do not wait any longer
    }
    stopping = true;
    say(`${signal}: shutting down`);
    void (async () => {
      const port = agent.port;
      if (port !== undefined) {
        try {
          say(`driver statistics:\n${formatStats(await P.getStats(port))}`);
        } catch {
          // the driver is gone already
        }
      }
      await agent.stop();
    })();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  say(`starting (pid ${process.pid})`);
  try {
    await agent.start();
  } catch (error) {
    const hint =
      error instanceof FltmgrError && error.code === 'ERR_SIMULATOR_NOT_CONFIGURED' ? ' (set FLTMGR_SIMULATOR)' : '';
    process.stderr.write(`scanner-agent: ${error instanceof Error ? error.message : String(error)}${hint}\n`);
    return 1;
  }
  say(
    `stopped: ${agent.counters.scans} scans, ${agent.counters.blocked} blocked, ${agent.counters.connects} connections`,
  );
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(
        `scanner-agent: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
