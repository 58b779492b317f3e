// The `fltmgr` CLI (lib/manager-cli.ts) against the simulator: spawned as a user runs it (output parsed, exit
// codes checked) for each verb, and in-process (runManagerCli) for the argument and error matrix.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { FilterManagerSimulator, type SimulatedFilter } from '../../lib/simulator';
import { ExitCode, parseManagerCli, runManagerCli, table } from '../../lib/manager-cli';
import { TEST_TIMEOUT_MS, withTimeout } from '../helpers/timing';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'lib', 'manager-cli.ts');
const OPTS = { timeout: TEST_TIMEOUT_MS };
const C = '\\Device\\HarddiskVolume1';
const D = '\\Device\\HarddiskVolume2';

interface Sim {
  sim: FilterManagerSimulator;
  endpoint: string;
}

/** Two filters: "scanner" (loadable, one port) at 385100 and "audit" at 370000. */
async function startSim(t: { after(fn: () => Promise<void>): void }, admins?: number[]): Promise<Sim> {
  const sim = new FilterManagerSimulator({
    log: () => undefined,
    ...(admins === undefined ? {} : { admins: { uids: admins, gids: [] } }),
  });
  sim.addLoadable('scanner', (s): SimulatedFilter => {
    const f = s.registerFilter('scanner', { altitude: '385100' });
    f.createCommunicationPort('\\ScannerPort', { maxConnections: 2 });
    return f;
  });
  await sim.load('scanner');
  sim.registerFilter('audit', { altitude: '370000' });
  const endpoint = await sim.listen();
  t.after(() => sim.close());
  return { sim, endpoint };
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as its own process, as a user would. */
async function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const base = { ...process.env };
  delete base['FLTMGR_SIMULATOR'];
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...base, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await withTimeout(new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c))), {
    what: `fltmgr ${args.join(' ')}`,
  }).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  return { code, stdout, stderr };
}

/** Runs the CLI in this process. */
async function runCli(args: string[]): Promise<Ran> {
  let stdout = '';
  let stderr = '';
  const code = await runManagerCli(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

test('spawned: filters, instances, volumes, ports and dosname print fltmc-style tables and --json', OPTS, async (t) => {
  const { endpoint } = await startSim(t);
  const filters = await spawnCli(['filters', '--json', '--simulator', endpoint]);
  assert.equal(filters.code, 0, filters.stderr);
  assert.deepEqual(JSON.parse(filters.stdout), [
    { name: 'scanner', altitude: '385100', kind: 'minifilter', frame: 0, instances: 3 },
    { name: 'audit', altitude: '370000', kind: 'minifilter', frame: 0, instances: 3 },
  ]);

  // The endpoint may come from FLTMGR_SIMULATOR too (--simulator without a value, or nothing off Windows).
  const text = await spawnCli(['filters'], { FLTMGR_SIMULATOR: endpoint });
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(lines[0] as string, /^Filter Name\s+Num Instances\s+Altitude\s+Frame$/);
  assert.match(lines[1] as string, /^-+( +-+){3}$/);
  assert.match(lines[2] as string, /^scanner\s+3\s+385100\s+0$/);
  assert.match(lines[3] as string, /^audit\s+3\s+370000\s+0$/);
  assert.equal(lines.length, 4);

  const inst = await spawnCli(['instances', '-f', 'audit', '--json', `--simulator=${endpoint}`]);
  assert.equal(inst.code, 0, inst.stderr);
  const records = JSON.parse(inst.stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    records.map((r) => [r['filter'], r['volume'], r['name'], r['altitude'], r['fileSystem']]),
    [
      ['audit', C, 'audit Instance', '370000', 'NTFS'],
      ['audit', D, 'audit Instance', '370000', 'REFS'],
      ['audit', '\\Device\\Mup', 'audit Instance', '370000', 'MUP'],
    ],
  );
  // Text: a volume shows by its DOS name when it has one, as fltmc does.
  const instText = await spawnCli(['instances', '-v', 'D:', '--simulator', endpoint]);
  assert.equal(instText.code, 0, instText.stderr);
  const rows = instText.stdout.trimEnd().split('\n').slice(2);
  assert.deepEqual(
    rows.map((r) => r.split(/\s{2,}/)),
    [
      ['scanner', 'D:', '385100', 'scanner Instance', '0', 'REFS'],
      ['audit', 'D:', '370000', 'audit Instance', '0', 'REFS'],
    ],
  );

  const volumes = await spawnCli(['volumes', '--json', '--simulator', endpoint]);
  assert.equal(volumes.code, 0, volumes.stderr);
  assert.deepEqual(
    (JSON.parse(volumes.stdout) as Array<Record<string, unknown>>).map((v) => [v['name'], v['dosName'] ?? null]),
    [
      [C, 'C:'],
      [D, 'D:'],
      ['\\Device\\Mup', null],
    ],
  );

  const ports = await spawnCli(['ports', '--json', '--simulator', endpoint]);
  assert.equal(ports.code, 0, ports.stderr);
  assert.deepEqual(JSON.parse(ports.stdout), [
    { name: '\\ScannerPort', filter: 'scanner', maxConnections: 2, connections: 0 },
  ]);

  const dos = await spawnCli(['dosname', C, '--simulator', endpoint]);
  assert.equal(dos.code, 0, dos.stderr);
  assert.equal(dos.stdout, 'C:\n');
});

test('spawned: unload, load, attach and detach change what filters/instances show', OPTS, async (t) => {
  const { sim, endpoint } = await startSim(t);
  const run = (...a: string[]): Promise<Ran> => spawnCli([...a, '--simulator', endpoint]);

  const unloaded = await run('unload', 'scanner');
  assert.equal(unloaded.code, 0, unloaded.stderr);
  assert.equal(unloaded.stdout, '');
  assert.deepEqual(
    sim.filters().map((f) => f.name),
    ['audit'],
  );
  const loaded = await run('load', 'scanner', '--json');
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.deepEqual(JSON.parse(loaded.stdout), { loaded: 'scanner' });
  assert.deepEqual(
    sim.filters().map((f) => f.name),
    ['scanner', 'audit'],
  );

  const attached = await run('attach', 'audit', 'D:', '-a', '370001', '-i', 'audit Two');
  assert.equal(attached.code, 0, attached.stderr);
  assert.equal(attached.stdout, 'Attach successful.  Instance name: "audit Two"\n');
  const inst = await run('instances', '-f', 'audit', '-v', D, '--json');
  assert.deepEqual(
    (JSON.parse(inst.stdout) as Array<Record<string, unknown>>).map((r) => [r['name'], r['altitude']]),
    [
      ['audit Two', '370001'],
      ['audit Instance', '370000'],
    ],
  );
  const detached = await run('detach', 'audit', 'D:', '-i', 'audit Two');
  assert.equal(detached.code, 0, detached.stderr);
  const after = await run('instances', '-f', 'audit', '-v', D, '--json');
  assert.deepEqual(
    (JSON.parse(after.stdout) as Array<Record<string, unknown>>).map((r) => r['name']),
    ['audit Instance'],
  );
});

test('spawned: failures exit with the documented codes, the hint on stderr, and JSON errors', OPTS, async (t) => {
  const { endpoint } = await startSim(t);
  const notFound = await spawnCli(['unload', 'nosuch', '--json', '--simulator', endpoint]);
  assert.equal(notFound.code, ExitCode.notFound);
  assert.deepEqual(Object.keys((JSON.parse(notFound.stdout) as { error: Record<string, unknown> }).error).sort(), [
    'code',
    'hresult',
    'message',
    'syscall',
  ]);
  const error = (JSON.parse(notFound.stdout) as { error: Record<string, unknown> }).error;
  assert.equal(error['code'], 'ERROR_FLT_FILTER_NOT_FOUND');
  assert.equal(error['hresult'], 0x801f0013);
  assert.equal(error['syscall'], 'FilterUnload');
  assert.match(notFound.stderr, /^fltmgr unload: FilterUnload failed: ERROR_FLT_FILTER_NOT_FOUND \(0x801F0013\): \S/);

  const collision = await spawnCli(['attach', 'audit', 'C:', '-a', '385100', '--simulator', endpoint]);
  assert.equal(collision.code, ExitCode.failed);
  assert.match(collision.stderr, /ERROR_FLT_INSTANCE_ALTITUDE_COLLISION/);

  const usage = await spawnCli(['attach', 'audit']);
  assert.equal(usage.code, ExitCode.usage);
  assert.match(usage.stderr, /attach takes NAME VOLUME, got 1 argument/);
  assert.match(usage.stderr, /^usage: fltmgr/m);

  const help = await spawnCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: fltmgr <command>/);
});

test('a caller that is not an administrator: exit 3, for enumeration and for load', OPTS, async (t) => {
  // Only uid 4242 is an administrator here: this process is not.
  const { endpoint } = await startSim(t, [4242]);
  const list = await runCli(['filters', '--simulator', endpoint]);
  assert.equal(list.code, ExitCode.accessDenied, list.stderr);
  assert.match(list.stderr, /E_ACCESSDENIED|ERROR_ACCESS_DENIED/);
  const load = await runCli(['load', 'scanner', '--json', '--simulator', endpoint]);
  assert.equal(load.code, ExitCode.accessDenied, load.stderr);
  assert.equal((JSON.parse(load.stdout) as { error: { code: string } }).error.code, 'ERROR_PRIVILEGE_NOT_HELD');
});

test('a simulator that accepts and never answers: exit 5 once the connect timeout runs out', OPTS, async (t) => {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const endpoint = `tcp:127.0.0.1:${(server.address() as net.AddressInfo).port}#silent`;
  const r = await spawnCli(['filters', '--simulator', endpoint], { FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS: '300' });
  assert.equal(r.code, ExitCode.unreachable, r.stderr);
  assert.match(r.stderr, /ERROR_TIMEOUT/);
});

test('in-process: errors and not-found volumes and instances', OPTS, async (t) => {
  const { endpoint } = await startSim(t);
  const cases: Array<[string[], number, RegExp]> = [
    [['instances', '-v', 'Q:'], ExitCode.notFound, /ERROR_FLT_VOLUME_NOT_FOUND/],
    [['instances', '-f', 'nosuch'], ExitCode.notFound, /ERROR_FLT_FILTER_NOT_FOUND/],
    [['detach', 'audit', 'C:', '-i', 'nosuch'], ExitCode.notFound, /ERROR_FLT_INSTANCE_NOT_FOUND/],
    [['load', 'nosuch'], ExitCode.notFound, /ERROR_FILE_NOT_FOUND/],
    [['load', 'scanner'], ExitCode.failed, /ERROR_SERVICE_ALREADY_RUNNING/],
    [['attach', 'audit', 'C:', '-i', 'audit Instance'], ExitCode.failed, /ERROR_FLT_INSTANCE_NAME_COLLISION/],
    [['attach', 'audit', 'C:', '-a', 'high'], ExitCode.usage, /altitude/],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli([...args, '--simulator', endpoint]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('argument parsing', () => {
  assert.deepEqual(parseManagerCli(['instances', '-f', 'a', '-v', 'C:']), {
    command: { verb: 'instances', filter: 'a', volume: 'C:' },
    json: false,
    options: {},
  });
  assert.deepEqual(parseManagerCli(['filters', '--simulator']), {
    command: { verb: 'filters' },
    json: false,
    options: { simulator: true },
  });
  assert.deepEqual(parseManagerCli(['filters', '--simulator', 'unix:/tmp/x', '--json']), {
    command: { verb: 'filters' },
    json: true,
    options: { simulator: 'unix:/tmp/x' },
  });
  assert.deepEqual(parseManagerCli(['attach', 'f', 'C:', '-a', '1', '-i', 'x']), {
    command: { verb: 'attach', name: 'f', volume: 'C:', altitude: '1', instance: 'x' },
    json: false,
    options: {},
  });
  assert.equal(parseManagerCli(['help']), 'help');
  for (const bad of [
    [],
    ['frobnicate'],
    ['filters', 'extra'],
    ['load'],
    ['load', 'a', 'b'],
    ['filters', '-f', 'x'],
    ['detach', 'f', 'C:', '-a', '1'],
    ['filters', '--simulator='],
    ['filters', '--nope'],
  ]) {
    assert.throws(() => parseManagerCli(bad), { name: 'Error' }, bad.join(' '));
  }
});

test('table(): columns padded to the widest cell, right-aligned where asked', () => {
  assert.equal(
    table(
      ['Name', 'N'],
      [
        ['a', '1'],
        ['long', '10'],
      ],
      [1],
    ),
    'Name   N\n----  --\na      1\nlong  10\n',
  );
});
