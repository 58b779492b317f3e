// npm run soak [-- --roundtrips N --sends N --cycles N --rss-mib M]: a soak run, not a test. The simulator
// runs in its own process (bench-filter.ts); this process is the client. Phases: kernel->user round trips,
// user->kernel sends, connect/close cycles (each with a send, and a receive loop started and stopped). After a
// warm-up, RSS, V8 heap, open fds and threads are sampled and printed; the run fails (exit 1) if, after the
// last phase, any grew beyond its bound over the warm baseline.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FilterPort } from '../lib';
import { BENCH_PORT, floodCommand } from './bench-filter';

const { values } = parseArgs({
  options: {
    roundtrips: { type: 'string', default: '1000000' },
    sends: { type: 'string', default: '1000000' },
    cycles: { type: 'string', default: '2000' },
    'rss-mib': { type: 'string', default: '64' },
    'heap-mib': { type: 'string', default: '32' },
    fds: { type: 'string', default: '8' },
    threads: { type: 'string', default: '4' },
  },
});
const count = (name: keyof typeof values): number => Number(values[name]);

interface Sample {
  label: string;
  rssMiB: number;
  heapMiB: number;
  fds: number;
  threads: number;
}

function sample(label: string): Sample {
  if (global.gc) global.gc();
  const memory = process.memoryUsage();
  const status = fs.existsSync('/proc/self/status') ? fs.readFileSync('/proc/self/status', 'utf8') : '';
  const s: Sample = {
    label,
    rssMiB: memory.rss / 1048576,
    heapMiB: memory.heapUsed / 1048576,
    fds: fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : -1,
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? -1),
  };
  console.log(
    `${label.padEnd(28)} rss ${s.rssMiB.toFixed(1).padStart(7)} MiB  heap ${s.heapMiB.toFixed(1).padStart(6)} MiB  ` +
      `fds ${String(s.fds).padStart(4)}  threads ${String(s.threads).padStart(3)}`,
  );
  return s;
}

async function startSimulator(): Promise<{ endpoint: string; stop(): void }> {
  const dist = path.join(__dirname, '..');
  const child = spawn(
    process.execPath,
    [path.join(dist, 'lib', 'simulator', 'cli.js'), '--filter', path.join(dist, 'bench', 'bench-filter.js')],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (line: Buffer) =>
      resolve((JSON.parse(line.toString().split('\n')[0]!) as { endpoint: string }).endpoint),
    );
    child.once('exit', (code) => reject(new Error(`simulator exited with ${String(code)}`)));
  });
  return { endpoint, stop: () => child.kill('SIGTERM') };
}

async function roundTrips(endpoint: string, n: number): Promise<void> {
  const port = await FilterPort.connect(BENCH_PORT, { simulator: endpoint });
  const serving = port.serve(() => Buffer.alloc(8, 1), { concurrency: 64 });
  await port.send(floodCommand(n, 64, 64), { outputSize: 8 });
  const result = JSON.parse((await port.send(Buffer.from('R'), { outputSize: 256 })).toString()) as {
    count: number;
    failed: number;
  };
  await port.close();
  await serving;
  if (result.failed !== 0) throw new Error(`${result.failed} of ${result.count} round trips failed`);
}

async function sends(endpoint: string, n: number): Promise<void> {
  const port = await FilterPort.connect(BENCH_PORT, { simulator: endpoint });
  const input = Buffer.concat([Buffer.from('E'), Buffer.alloc(63, 2)]);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next++ < n) {
      const output = await port.send(input, { outputSize: 64 });
      if (output.length !== 64) throw new Error('short echo');
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  await port.close();
}

async function cycles(endpoint: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const port = await FilterPort.connect(BENCH_PORT, { simulator: endpoint });
    const iterator = port.messages({ concurrency: 4 });
    await port.send(Buffer.from('Ecycle'), { outputSize: 8 });
    await iterator.return?.();
    await port.close();
  }
}

async function main(): Promise<void> {
  const sim = await startSimulator();
  try {
    console.log(
      `soak: node ${process.version}, ${count('roundtrips')} round trips, ${count('sends')} sends, ${count('cycles')} connect/close cycles`,
    );
    // Warm-up: one small run of each, so lazily created pools and JIT code are in the baseline.
    await roundTrips(sim.endpoint, 20000);
    await sends(sim.endpoint, 20000);
    await cycles(sim.endpoint, 50);
    const base = sample('baseline (after warm-up)');
    const samples = [base];
    const chunk = 250000;
    for (let done = 0; done < count('roundtrips'); done += chunk) {
      await roundTrips(sim.endpoint, Math.min(chunk, count('roundtrips') - done));
      samples.push(sample(`round trips ${Math.min(done + chunk, count('roundtrips'))}`));
    }
    for (let done = 0; done < count('sends'); done += chunk) {
      await sends(sim.endpoint, Math.min(chunk, count('sends') - done));
      samples.push(sample(`sends ${Math.min(done + chunk, count('sends'))}`));
    }
    const cycleChunk = 500;
    for (let done = 0; done < count('cycles'); done += cycleChunk) {
      await cycles(sim.endpoint, Math.min(cycleChunk, count('cycles') - done));
      samples.push(sample(`connect/close ${Math.min(done + cycleChunk, count('cycles'))}`));
    }
    const last = samples[samples.length - 1]!;
    const bounds: Array<[string, number, number]> = [
      ['RSS (MiB)', last.rssMiB - base.rssMiB, count('rss-mib')],
      ['heap (MiB)', last.heapMiB - base.heapMiB, count('heap-mib')],
      ['fds', last.fds - base.fds, count('fds')],
      ['threads', last.threads - base.threads, count('threads')],
    ];
    let failed = false;
    for (const [what, growth, bound] of bounds) {
      const ok = growth <= bound;
      failed ||= !ok;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${what} grew by ${growth.toFixed(1)} (bound ${bound})`);
    }
    process.exitCode = failed ? 1 : 0;
  } finally {
    sim.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
