// The kernel side of the benchmark: a simulated minifilter that floods a connection with messages and times
// each round trip (FltSendMessage until the reply arrived), and echoes FilterSendMessage input.
//
// Commands (FilterSendMessage input): 'E' + data -> echo; 'F' + u32 count, u32 size, u32 inflight -> start a
// flood (returns at once); 'R' -> waits for the flood, returns its results as JSON.
import type { FilterManagerSimulator, ClientPort } from '../lib/simulator';

export const BENCH_PORT = '\\FltmgrBenchPort';
export const REPLY_SIZE = 8;

interface FloodResult {
  count: number;
  failed: number;
  elapsedMs: number;
  p50us: number;
  p99us: number;
  simCpuMs: number;
}

export function register(sim: FilterManagerSimulator) {
  const filter = sim.registerFilter('fltmgr-bench');
  let flood: Promise<FloodResult> | undefined;

  async function run(client: ClientPort, count: number, size: number, inflight: number): Promise<FloodResult> {
    const payload = Buffer.alloc(size, 0x5a);
    const latencies = new Float64Array(count);
    let next = 0;
    let failed = 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    async function lane(): Promise<void> {
      while (next < count) {
        const i = next++;
        const start = process.hrtime.bigint();
        // No timeout: a timer per message would be simulator work that the clients' figures do not need.
        const result = await filter.sendMessage(client, payload, { replyLength: REPLY_SIZE });
        latencies[i] = Number(process.hrtime.bigint() - start) / 1000;
        if (result.status !== 0) failed++;
      }
    }
    await Promise.all(Array.from({ length: inflight }, lane));
    const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    const sorted = Array.from(latencies).sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return { count, failed, elapsedMs, p50us: at(0.5), p99us: at(0.99), simCpuMs: (cpu.user + cpu.system) / 1000 };
  }

  filter.createCommunicationPort(BENCH_PORT, {
    maxConnections: 4,
    security: { allowUids: [process.getuid?.() ?? 0] },
    message: async (client, input) => {
      const op = String.fromCharCode(input[0] ?? 0);
      if (op === 'E') return input;
      if (op === 'F') {
        const count = input.readUInt32LE(1);
        const size = input.readUInt32LE(5);
        const inflight = input.readUInt32LE(9);
        flood = run(client, count, size, inflight);
        return Buffer.from('ok');
      }
      if (op === 'R') {
        if (flood === undefined) return Buffer.from('{}');
        return Buffer.from(JSON.stringify(await flood));
      }
      return undefined;
    },
  });
  return filter;
}

export function floodCommand(count: number, size: number, inflight: number): Buffer {
  const command = Buffer.alloc(13);
  command.write('F', 0);
  command.writeUInt32LE(count, 1);
  command.writeUInt32LE(size, 5);
  command.writeUInt32LE(inflight, 9);
  return command;
}
