// The fltmgr-simulator CLI as its own process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCli, type CliConfig } from '../../lib/simulator/cli';
import { PORT_NAME } from '../helpers/sim';
import { OP, WireClient, manage } from '../helpers/wire-client';
import { TEST_TIMEOUT_MS, withTimeout } from '../helpers/timing';
import { NtStatus } from '../../lib/status';
import { FilterPort } from '../../lib';
import * as P from '../../driver-sample/protocol';
import { sampleImage } from '../../driver-sample/harness';
import { kernelHarnessAvailable } from '../../driver-sample/target';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'lib', 'simulator', 'cli.ts');
const FILTER = path.join(__dirname, '..', 'fixtures', 'echo-filter.ts');
const OPTS = { timeout: TEST_TIMEOUT_MS };

interface Run {
  child: ChildProcessWithoutNullStreams;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  firstLine: Promise<string>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const base = { ...process.env };
  delete base['FLTMGR_SIM_LOG'];
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...base, ...env } });
  let out = '';
  let err = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on('exit', () => reject(new Error(`exited before printing a line; stderr: ${err}`)));
  });
  firstLine.catch(() => undefined);
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stderr: () => err, exit, firstLine };
}

async function stop(r: Run, signal: NodeJS.Signals): Promise<number | null> {
  r.child.kill(signal);
  const { code } = await withTimeout(r.exit, { what: 'CLI exit' }).catch((e: unknown) => {
    r.child.kill('SIGKILL');
    throw e;
  });
  return code;
}

test('CLI: prints the endpoint, serves the filter with its options, exits 0 on SIGTERM', OPTS, async (t) => {
  const r = run(['--filter', FILTER, '--option', 'greeting=yo ', '--option', 'unused=a=b', '--verbose']);
  t.after(() => r.child.kill('SIGKILL'));
  const line = await withTimeout(r.firstLine, { what: 'endpoint line' });
  const { endpoint } = JSON.parse(line) as { endpoint: string };
  assert.match(endpoint, /^unix:\//);
  const c = await WireClient.connect(endpoint, { portName: PORT_NAME });
  assert.equal((await c.get(128)).data.toString(), 'welcome:yo ');
  assert.deepEqual((await c.send(Buffer.from('there'), 64)).output, Buffer.from('yo there'));
  assert.equal(await stop(r, 'SIGTERM'), 0);
  assert.equal(await withTimeout(c.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
  assert.equal(fs.existsSync(endpoint.slice(5)), false);
  assert.match(r.stderr(), /connect: port \\FltmgrTestPort, client 1/);
  assert.match(r.stderr(), /disconnect: port \\FltmgrTestPort, client 1/);
  assert.match(r.stderr(), /SIGTERM: closing/);
});

test('CLI: quiet by default (no connect/disconnect lines); FLTMGR_SIM_LOG=1 turns them on', OPTS, async (t) => {
  for (const [env, verbose] of [
    [{}, false],
    [{ FLTMGR_SIM_LOG: '1' }, true],
  ] as const) {
    const r = run(['--filter', FILTER], env);
    t.after(() => r.child.kill('SIGKILL'));
    const { endpoint } = JSON.parse(await withTimeout(r.firstLine, { what: 'endpoint line' })) as { endpoint: string };
    const c = await WireClient.connect(endpoint, { portName: PORT_NAME });
    assert.equal((await c.send(Buffer.from('x'), 8)).hresult, 0);
    c.destroy();
    assert.equal(await stop(r, 'SIGTERM'), 0);
    if (verbose) assert.match(r.stderr(), /connect: port \\FltmgrTestPort, client 1, pid \d+/);
    else assert.equal(r.stderr(), '', 'the CLI printed to stderr without --verbose');
  }
});

test('CLI: --tcp with a port, --listen with a path; SIGINT exits 0', OPTS, async (t) => {
  const tcp = run(['--filter', FILTER, '--tcp', '0']);
  t.after(() => tcp.child.kill('SIGKILL'));
  const { endpoint: tcpEndpoint } = JSON.parse(await withTimeout(tcp.firstLine, { what: 'endpoint line' })) as {
    endpoint: string;
  };
  assert.match(tcpEndpoint, /^tcp:127\.0\.0\.1:\d+#[0-9a-f]{48}$/);
  const c = await WireClient.connect(tcpEndpoint, { portName: PORT_NAME });
  assert.equal((await c.send(Buffer.from('x'), 8)).hresult, 0);
  c.destroy();
  assert.equal(await stop(tcp, 'SIGINT'), 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fltmgr-cli-'));
  const sock = path.join(dir, 'cli.sock');
  const u = run(['--filter', FILTER, '--listen', sock]);
  t.after(() => {
    u.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const { endpoint } = JSON.parse(await withTimeout(u.firstLine, { what: 'endpoint line' })) as { endpoint: string };
  assert.equal(endpoint, `unix:${sock}`);
  assert.equal(await stop(u, 'SIGTERM'), 0);
  assert.equal(fs.existsSync(sock), false);
});

test('CLI argument parsing', () => {
  const cfg = (args: string[]): CliConfig => parseCli(args) as CliConfig;
  const none = { driver: undefined, name: undefined, altitude: undefined, parameters: {}, volumes: undefined };
  assert.deepEqual(parseCli(['--filter', 'f.js']), {
    filter: 'f.js',
    ...none,
    listen: {},
    options: {},
    verbose: false,
  });
  assert.deepEqual(parseCli(['--filter', 'f.js', '--tcp']), {
    filter: 'f.js',
    ...none,
    listen: { tcp: { host: '127.0.0.1', port: 0 } },
    options: {},
    verbose: false,
  });
  assert.deepEqual(
    parseCli([
      '--driver',
      'd.so',
      '--name',
      'Flt',
      '--parameter',
      'PortGroupSid=S-1-5-32-545',
      '--parameter',
      'N=dword:7',
      '--altitude',
      '385100.5',
    ]),
    {
      filter: undefined,
      driver: 'd.so',
      name: 'Flt',
      altitude: '385100.5',
      parameters: { PortGroupSid: 'S-1-5-32-545', N: 7 },
      volumes: undefined,
      listen: {},
      options: {},
      verbose: false,
    },
  );
  assert.equal(cfg(['--filter', 'f.js', '--verbose']).verbose, true);
  assert.deepEqual(cfg(['--filter', 'f.js', '--tcp', '4000']).listen, { tcp: { host: '127.0.0.1', port: 4000 } });
  assert.deepEqual(cfg(['--filter', 'f.js', '--tcp=4001']).listen, { tcp: { host: '127.0.0.1', port: 4001 } });
  assert.deepEqual(cfg(['--filter', 'f.js', '--listen', '/tmp/s']).listen, { path: '/tmp/s' });
  assert.deepEqual(cfg(['--filter', 'f.js', '--option', 'a=1', '--option', 'b=x=y', '--option', 'c=']).options, {
    a: '1',
    b: 'x=y',
    c: '',
  });
  assert.deepEqual(
    cfg(['--filter', 'f.js', '--volume', '\\Device\\V1,dos=e:,fs=22', '--volume', '\\Device\\V2,detached']).volumes,
    [
      { name: '\\Device\\V1', dosName: 'e:', fileSystemType: 22 },
      { name: '\\Device\\V2', detached: true },
    ],
  );
  assert.equal(parseCli(['-h']), 'help');
  const bad: [string[], RegExp][] = [
    [[], /--filter or --driver is required/],
    [['--filter', 'f.js', '--driver', 'd.so'], /exclusive/],
    [['--filter', 'f.js', '--parameter', 'a=b'], /go with --driver/],
    [['--driver', 'd.so', '--option', 'a=b'], /goes with --filter/],
    [['--driver', 'd.so', '--parameter', 'novalue'], /NAME=VALUE/],
    [['--driver', 'd.so', '--parameter', 'n=dword:4294967296'], /at most 4294967295/],
    [['--filter'], /argument missing/],
    [['--filter', 'f.js', '--bogus'], /Unknown option '--bogus'/],
    [['--filter', 'f.js', 'stray'], /positional/],
    [['--filter', 'f.js', '--tcp', '--listen', '/tmp/x'], /exclusive/],
    [['--filter', 'f.js', '--option', 'novalue'], /key=value/],
    [['--filter', 'f.js', '--option', '=v'], /key=value/],
    [['--filter', 'f.js', '--tcp=99999'], /bad --tcp port/],
    [['--filter', 'f.js', '--tcp=x'], /bad --tcp port/],
    [['--filter', 'f.js', '--tcp-port', '5'], /needs --tcp/],
    [['--filter', 'f.js', '--altitude', '5'], /go with --driver/],
    [['--driver', 'd.so', '--altitude', '5x'], /bad --altitude/],
    [['--filter', 'f.js', '--volume', 'C:'], /starts with a device name/],
    [['--filter', 'f.js', '--volume', '\\Device\\V,fs=x'], /unknown part fs=x/],
  ];
  for (const [args, reason] of bad) assert.throws(() => parseCli(args), reason, args.join(' '));
});

test('CLI: usage errors exit 2, start failures exit 1, --help exits 0', OPTS, async () => {
  const cases: [string[], number, RegExp][] = [
    [['--filter', FILTER, '--bogus'], 2, /Unknown option '--bogus'[\s\S]*usage:/],
    [
      ['--filter', path.join(__dirname, 'fixtures', 'register-throws.ts')],
      1,
      /start failed: Error: register failed on purpose/,
    ],
  ];
  await Promise.all(
    cases.map(async ([args, code, stderr]) => {
      const r = run(args);
      const res = await withTimeout(r.exit, { what: `exit of ${args.join(' ')}` }).finally(() =>
        r.child.kill('SIGKILL'),
      );
      assert.equal(res.code, code, `${args.join(' ')}: ${r.stderr()}`);
      assert.match(r.stderr(), stderr, args.join(' '));
    }),
  );
  const help = run(['--help']);
  assert.match(await withTimeout(help.firstLine, { what: 'usage' }), /^usage: fltmgr-simulator/);
  assert.equal((await withTimeout(help.exit, { what: 'help exit' })).code, 0);
});

test(
  'CLI --driver: the sample C driver serves its port with a registry parameter; SIGTERM unloads it cleanly (exit 0)',
  { ...OPTS, skip: kernelHarnessAvailable() ? false : 'the kernel harness runs on Linux only' },
  async (t) => {
    const r = run(['--driver', sampleImage(), '--name', P.FILTER_NAME, '--parameter', 'portgroupsid=not-a-sid']);
    t.after(() => r.child.kill('SIGKILL'));
    const { endpoint } = JSON.parse(await withTimeout(r.firstLine, { what: 'endpoint line' })) as { endpoint: string };
    const port = await FilterPort.connect(P.PORT_NAME, { simulator: endpoint });
    const stats = await P.getStats(port);
    assert.deepEqual([stats.connectionsTotal, stats.connectionsCurrent], [1n, 1]);
    await port.close();
    assert.equal(await stop(r, 'SIGTERM'), 0, r.stderr());
    // The driver's warning (DbgPrintEx, warning level) reaches stderr: it read the parameter (value names are
    // case-insensitive, as in the registry) and refused it.
    assert.match(r.stderr(), /\[driver\] fltsample: PortGroupSid not-a-sid is not a SID string/);
  },
);

test(
  'CLI --filter: the filter is loadable by its name (UNLOAD then LOAD over the wire); --volume sets the volumes',
  OPTS,
  async (t) => {
    const r = run(['--filter', FILTER, '--volume', '\\Device\\Stick,dos=E:,fs=22']);
    t.after(() => r.child.kill('SIGKILL'));
    const { endpoint } = JSON.parse(await withTimeout(r.firstLine, { what: 'endpoint line' })) as { endpoint: string };
    assert.deepEqual((await manage(endpoint, OP.VOLUMES)).records, [
      { flags: 0, frameId: 0, fileSystemType: 22, volumeName: '\\Device\\Stick', dosName: 'E:' },
    ]);
    const c = await WireClient.connect(endpoint, { portName: PORT_NAME });
    assert.deepEqual(await manage(endpoint, OP.UNLOAD, ['ECHO-FILTER']), { hresult: 0, records: [] });
    assert.equal(await withTimeout(c.disconnected, { what: 'DISCONNECT' }), NtStatus.STATUS_PORT_DISCONNECTED);
    assert.deepEqual((await manage(endpoint, OP.FILTERS)).records, []);
    assert.deepEqual(await manage(endpoint, OP.LOAD, ['echo-filter']), { hresult: 0, records: [] });
    const again = await WireClient.connect(endpoint, { portName: PORT_NAME });
    assert.deepEqual((await again.send(Buffer.from('x'), 64)).output, Buffer.from('x'));
    assert.equal(await stop(r, 'SIGTERM'), 0, r.stderr());
  },
);

test(
  "CLI --driver: UNLOAD by name runs the C driver's unload, LOAD maps a fresh image; SIGTERM exits 0",
  { ...OPTS, skip: kernelHarnessAvailable() ? false : 'the kernel harness runs on Linux only' },
  async (t) => {
    const r = run(['--driver', sampleImage(), '--name', P.FILTER_NAME, '--altitude', P.SAMPLE_ALTITUDE]);
    t.after(() => r.child.kill('SIGKILL'));
    const { endpoint } = JSON.parse(await withTimeout(r.firstLine, { what: 'endpoint line' })) as { endpoint: string };
    const listed = await manage(endpoint, OP.FILTERS);
    assert.deepEqual(
      listed.records.map((f) => [f['name'], f['altitude']]),
      [[P.FILTER_NAME, P.SAMPLE_ALTITUDE]],
    );
    for (let i = 0; i < 2; i++) {
      const port = await FilterPort.connect(P.PORT_NAME, { simulator: endpoint });
      assert.equal((await P.getStats(port)).connectionsTotal, 1n, 'a fresh image counts from zero');
      await port.close();
      assert.deepEqual(await manage(endpoint, OP.UNLOAD, [P.FILTER_NAME]), { hresult: 0, records: [] });
      assert.deepEqual((await manage(endpoint, OP.FILTERS)).records, []);
      assert.deepEqual(await manage(endpoint, OP.LOAD, [P.FILTER_NAME]), { hresult: 0, records: [] });
    }
    assert.equal(await stop(r, 'SIGTERM'), 0, r.stderr());
  },
);
