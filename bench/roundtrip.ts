// npm run bench: kernel->user->reply round trips and user->kernel sends, for the JS client (FilterPort) and a
// native C++ client built from the same core (bench/native/client.cc), against the simulator running in its
// own process. Prints figures; asserts nothing. Options: --quick (smaller counts), --json.
import * as os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

const root = path.resolve(__dirname, '..', '..');
const dist = path.join(root, 'dist');
const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');

interface Result {
  client: 'js' | 'native';
  concurrency: number;
  size: number;
  received: number;
  flood: { count: number; failed: number; elapsedMs: number; p50us: number; p99us: number; simCpuMs: number };
  recvCpuMs: number;
  sends: number;
  sendMs: number;
  sendCpuMs: number;
}

async function startSimulator(): Promise<{ endpoint: string; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [path.join(dist, 'lib', 'simulator', 'cli.js'), '--filter', path.join(dist, 'bench', 'bench-filter.js')],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = readline.createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)));
  });
  const { endpoint } = JSON.parse(first) as { endpoint: string };
  return { endpoint, stop: () => child.kill('SIGTERM') };
}

function runClient(command: string, args: string[]): Result {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 300_000 });
  if (result.status !== 0) throw new Error(`${command} failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Result;
}

function nativeClient(): string {
  const binary = path.join(root, 'build', 'bench', 'fltmgr-bench-client');
  if (!fs.existsSync(binary)) {
    const built = spawnSync('bash', [path.join(root, 'bench', 'build-native-client.sh')], { stdio: 'inherit' });
    if (built.status !== 0) throw new Error('cannot build the native benchmark client');
  }
  return binary;
}

const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const native = nativeClient();
  const sim = await startSimulator();
  const rows: Array<{ js: Result; native: Result }> = [];
  try {
    for (const size of [64, 4096]) {
      for (const concurrency of [1, 8, 64]) {
        const count = quick ? 2000 : concurrency === 1 ? 5000 : 30000;
        const sends = quick ? 2000 : concurrency === 1 ? 5000 : 30000;
        const args = [sim.endpoint, String(concurrency), String(size), String(count), String(sends)];
        const js = runClient(process.execPath, [path.join(dist, 'bench', 'js-client.js'), ...args]);
        const nat = runClient(native, args);
        rows.push({ js, native: nat });
      }
    }
  } finally {
    sim.stop();
  }
  if (asJson) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  const rate = (r: Result): number => (r.flood.count / r.flood.elapsedMs) * 1000;
  const cpuPerMsg = (r: Result): number => (r.recvCpuMs * 1000) / r.flood.count;
  const sendRate = (r: Result): number => (r.sends / r.sendMs) * 1000;
  const sendCpu = (r: Result): number => (r.sendCpuMs * 1000) / r.sends;
  const simShare = (r: Result): string => fmt((r.flood.simCpuMs / r.flood.elapsedMs) * 100) + '%';
  console.log(
    `fltmgr benchmark: simulator in its own process, ${process.platform}-${process.arch}, node ${process.version}, ${os.cpus().length} CPUs`,
  );
  console.log(
    '\nkernel -> user -> reply round trips (FltSendMessage with an 8-byte reply; timed on the simulator side)',
  );
  console.log(
    'conc  size | msgs/s JS   native  ratio | p50/p99 us JS   native   | client CPU us/msg JS  native  ratio | sim CPU JS/native',
  );
  for (const { js, native: n } of rows) {
    console.log(
      `${String(js.concurrency).padStart(4)} ${String(js.size).padStart(5)} | ${fmt(rate(js)).padStart(9)} ${fmt(rate(n)).padStart(8)} ${fmt(rate(js) / rate(n), 2).padStart(6)} | ` +
        `${(fmt(js.flood.p50us) + '/' + fmt(js.flood.p99us)).padStart(11)} ${(fmt(n.flood.p50us) + '/' + fmt(n.flood.p99us)).padStart(11)} | ` +
        `${fmt(cpuPerMsg(js), 1).padStart(17)} ${fmt(cpuPerMsg(n), 1).padStart(7)} ${fmt(cpuPerMsg(js) / cpuPerMsg(n), 2).padStart(6)} | ${simShare(js)} / ${simShare(n)}`,
    );
  }
  console.log('\nuser -> kernel sends (FilterSendMessage echo, output = input size)');
  console.log('conc  size | sends/s JS  native  ratio | client CPU us/send JS  native  ratio');
  for (const { js, native: n } of rows) {
    console.log(
      `${String(js.concurrency).padStart(4)} ${String(js.size).padStart(5)} | ${fmt(sendRate(js)).padStart(10)} ${fmt(sendRate(n)).padStart(7)} ${fmt(sendRate(js) / sendRate(n), 2).padStart(6)} | ` +
        `${fmt(sendCpu(js), 1).padStart(18)} ${fmt(sendCpu(n), 1).padStart(7)} ${fmt(sendCpu(js) / sendCpu(n), 2).padStart(6)}`,
    );
  }
  const failed = rows.reduce((sum, r) => sum + r.js.flood.failed + r.native.flood.failed, 0);
  if (failed > 0) console.log(`\nWARNING: ${failed} round trips did not complete with STATUS_SUCCESS`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
