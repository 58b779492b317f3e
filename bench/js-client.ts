// The JavaScript client of the benchmark: FilterPort.serve() replying to every message, then concurrent
// send() calls. Prints one JSON line. argv: endpoint concurrency size count sends
import { FilterPort } from '../lib';
import { BENCH_PORT, REPLY_SIZE, floodCommand } from './bench-filter';

async function main(): Promise<void> {
  const [endpoint, c, s, n, m] = process.argv.slice(2);
  const concurrency = Number(c);
  const size = Number(s);
  const count = Number(n);
  const sends = Number(m);
  const port = await FilterPort.connect(BENCH_PORT, { simulator: endpoint! });
  const reply = Buffer.alloc(REPLY_SIZE, 1);
  let received = 0;
  const serving = port.serve(
    () => {
      received++;
      return reply;
    },
    { concurrency, bufferSize: size + 64 },
  );

  const cpu0 = process.cpuUsage();
  await port.send(floodCommand(count, size, concurrency), { outputSize: 16 });
  const flood = JSON.parse((await port.send(Buffer.from('R'), { outputSize: 4096 })).toString()) as Record<
    string,
    number
  >;
  const cpu = process.cpuUsage(cpu0);
  const recvCpuMs = (cpu.user + cpu.system) / 1000;

  const echo = Buffer.alloc(size, 7);
  echo.write('E', 0);
  let issued = 0;
  const cpu1 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < sends) {
        issued++;
        await port.send(echo, { outputSize: size });
      }
    }),
  );
  const sendMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const sendCpu = process.cpuUsage(cpu1);
  await port.close();
  await serving;
  process.stdout.write(
    JSON.stringify({
      client: 'js',
      concurrency,
      size,
      received,
      flood,
      recvCpuMs,
      sends,
      sendMs,
      sendCpuMs: (sendCpu.user + sendCpu.system) / 1000,
    }) + '\n',
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
