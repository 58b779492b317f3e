// The scanner agent (examples/scanner-agent.ts) against the twin: verdicts, concurrency, round-robin over agents,
// timeouts with fail-open and fail-closed, an agent going away mid-scan, a driver unload and reload with the agent
// reconnecting, and the agent as its own process (signals, exit codes), as it is deployed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { NtStatus } from '../../lib/status';
import * as P from '../../driver-sample/protocol';
import { EICAR, SIGNATURES, scanBytes, type ScanDecision } from '../../examples/scanner-agent';
import { SAMPLE_TARGETS, startSample, text } from '../helpers/sample';
import { HANG_GUARD_MS, nextEvent, until } from '../helpers/timing';

const OTHER_PID = 4242;
const AGENT = join(__dirname, '..', '..', 'examples', 'scanner-agent.ts');

interface ChildAgent {
  child: ChildProcess;
  output: () => string;
  waitFor(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  exit: Promise<[number | null, NodeJS.Signals | null]>;
}

function spawnAgent(endpoint: string | undefined, args: string[] = []): ChildAgent {
  const env = { ...process.env };
  if (endpoint === undefined) delete env['FLTMGR_SIMULATOR'];
  else env['FLTMGR_SIMULATOR'] = endpoint;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', AGENT, '--reconnect-min-ms', '20', '--reconnect-max-ms', '100', ...args],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    output: () => text,
    exit,
    async waitFor(pattern, count = 1, timeoutMs = HANG_GUARD_MS) {
      const global = new RegExp(pattern.source, 'g');
      await until(() => (text.match(global)?.length ?? 0) >= count, {
        what: `agent output ${pattern} x${count}\n--- output so far:\n${text}`,
        timeoutMs: timeoutMs,
      });
    },
  };
}

async function stopChild(agent: ChildAgent): Promise<void> {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
  await agent.exit;
}

describe('signatures', () => {
  test('EICAR and the toy signatures block, everything else is allowed', () => {
    assert.equal(EICAR.length, 68);
    assert.equal(EICAR.subarray(0, 4).toString(), 'X5O!');
    assert.deepEqual(scanBytes(Buffer.concat([text('prefix '), EICAR])), {
      verdict: P.Verdict.BLOCK,
      reasonCode: 1,
      signature: 'EICAR-Test-File',
    });
    for (const s of SIGNATURES)
      assert.equal(scanBytes(Buffer.concat([text('..'), s.pattern, text('..')])).reasonCode, s.id);
    assert.deepEqual(scanBytes(text('hello')), { verdict: P.Verdict.ALLOW, reasonCode: 0 });
    assert.equal(scanBytes(EICAR.subarray(0, 67)).verdict, P.Verdict.ALLOW, 'a partial EICAR string is not a match');
  });
});

for (const target of SAMPLE_TARGETS) {
  describe(`[${target}] agent in process`, () => {
    test('verdicts: clean files open, infected files are denied with the signature as reason code', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const agent = await h.startAgent({ concurrency: 4, config: { extensions: [...P.DEFAULT_EXTENSIONS, 'com'] } });
      await until(async () => (await h.driver.configuration()).extensions.includes('com'), { what: 'SET_CONFIG' });
      const files = [
        { path: 'C:\\clean.txt', content: text('hello'), blocked: false, code: 0 },
        { path: 'C:\\eicar.com', content: EICAR, blocked: true, code: 1 },
        { path: 'C:\\inside.exe', content: Buffer.concat([Buffer.alloc(500, 0x41), EICAR]), blocked: true, code: 1 },
        { path: 'C:\\drop.js', content: text('eval(atob("x"))'), blocked: true, code: 2 },
        { path: 'C:\\late.txt', content: Buffer.concat([Buffer.alloc(1024, 0x20), EICAR]), blocked: false, code: 0 },
        { path: 'C:\\notscanned.png', content: EICAR, blocked: false, code: undefined },
      ];
      // Many at once: the agent serves them 4 at a time.
      const results = await Promise.all(
        Array.from({ length: 5 }, () => files)
          .flat()
          .map((f) => h.driver.openFile({ path: f.path, content: f.content, processId: OTHER_PID })),
      );
      results.forEach((r, i) => {
        const f = files[i % files.length];
        assert.ok(f);
        assert.equal(r.allowed, !f.blocked, f.path);
        assert.equal(r.status, f.blocked ? NtStatus.STATUS_ACCESS_DENIED : 0);
        assert.equal(r.reasonCode, f.code, f.path);
      });
      const stats = await agent.stats();
      assert.deepEqual(
        [stats.scanRequests, stats.scansBlocked, stats.scansAllowed, stats.scannerConnections],
        [25n, 15n, 10n, 1],
      );
      assert.deepEqual([agent.counters.scans, agent.counters.blocked], [25, 15]);
    });

    test('concurrency bounds the scans in progress; two agents share the work round-robin', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      let inFlight = 0;
      let maxInFlight = 0;
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const slow = async (): Promise<ScanDecision> => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        if (inFlight === 4) release();
        await gate;
        inFlight--;
        return { verdict: P.Verdict.ALLOW, reasonCode: 0 };
      };
      const a = await h.startAgent({ concurrency: 4, engine: slow });
      const opens = Array.from({ length: 8 }, (_v, i) =>
        h.driver.openFile({ path: `C:\\${i}.exe`, content: text('x'), processId: OTHER_PID }),
      );
      assert.ok((await Promise.all(opens)).every((r) => r.reason === 'verdict-allow'));
      assert.equal(maxInFlight, 4, 'never more than `concurrency` scans at once, and that many in parallel');
      const b = await h.startAgent({ concurrency: 2 });
      for (let i = 0; i < 10; i++)
        await h.driver.openFile({ path: `C:\\rr${i}.exe`, content: text('x'), processId: OTHER_PID });
      assert.deepEqual([a.counters.scans - 8, b.counters.scans], [5, 5]);
    });

    test('timeouts: STATUS_TIMEOUT is not a verdict; fail-open allows, fail-closed denies; the late reply is refused', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const agent = await h.startAgent({
        config: { replyTimeoutMs: 100 },
        engine: async (request) => {
          await new Promise((resolve) => setTimeout(resolve, 400));
          return scanBytes(request.content);
        },
      });
      await until(async () => (await h.driver.configuration()).replyTimeoutMs === 100, { what: 'SET_CONFIG' });
      // The scan must reach the agent (which answers after 400 ms), not time out waiting for the agent's first get.
      await h.untilReceiving();
      // EICAR: had the open waited for the agent, the verdict would be BLOCK.
      const open = await h.driver.openFile({ path: 'C:\\eicar.exe', content: EICAR, processId: OTHER_PID });
      assert.deepEqual([open.allowed, open.reason, open.sendStatus], [true, 'timeout', NtStatus.STATUS_TIMEOUT]);
      await until(() => agent.counters.failedReplies === 1, {
        what: 'the late reply to fail (ERROR_FLT_NO_WAITER_FOR_REPLY)',
      });

      const command = await h.connect();
      await P.setConfig(command, { ...(await P.getConfig(command)), failClosed: true });
      const closed = await h.driver.openFile({ path: 'C:\\clean.exe', content: text('clean'), processId: OTHER_PID });
      assert.deepEqual(
        [closed.allowed, closed.status, closed.reason],
        [false, NtStatus.STATUS_ACCESS_DENIED, 'timeout'],
      );
      const s = await P.getStats(command);
      assert.deepEqual(
        [s.scanTimeouts, s.failOpenAllowed, s.failClosedDenied, s.scansAllowed, s.scansBlocked],
        [2n, 1n, 1n, 0n, 0n],
      );
    });

    test('no agent: fail-open allows and fail-closed denies at once', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const command = await h.connect();
      const open = () => h.driver.openFile({ path: 'C:\\a.exe', content: EICAR, processId: OTHER_PID });
      assert.deepEqual(await open().then((r) => [r.allowed, r.reason, r.scanned]), [true, 'no-agent', false]);
      await P.setConfig(command, { ...P.defaultConfig(), failClosed: true });
      assert.deepEqual(await open().then((r) => [r.allowed, r.reason]), [false, 'no-agent']);
      const s = await P.getStats(command);
      assert.deepEqual([s.noAgentOpens, s.failOpenAllowed, s.failClosedDenied, s.scanRequests], [2n, 1n, 1n, 0n]);
    });

    test('the agent stopping mid-scan ends the waiting open at once (fail-open, then fail-closed)', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const command = await h.connect();
      for (const failClosed of [false, true]) {
        await P.setConfig(command, { ...P.defaultConfig(), failClosed, replyTimeoutMs: 600_000 });
        let started = false;
        const agent = await h.startAgent({
          engine: () => {
            started = true;
            return new Promise<ScanDecision>(() => undefined); // hangs
          },
        });
        const pending = h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: OTHER_PID });
        await until(() => started, { what: 'the scan to start' });
        await agent.stop();
        const r = await pending;
        // STATUS_PORT_DISCONNECTED, not STATUS_TIMEOUT: the disconnect ended the wait.
        assert.deepEqual(
          [r.allowed, r.reason, r.sendStatus],
          [!failClosed, 'scan-error', NtStatus.STATUS_PORT_DISCONNECTED],
        );
      }
      const s = await P.getStats(command);
      assert.deepEqual([s.scanErrors, s.failOpenAllowed, s.failClosedDenied, s.scannerConnections], [2n, 1n, 1n, 0]);
    });

    test('driver unload and reload: the agent reconnects and configures the new driver', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const agentLog: string[] = [];
      const agent = await h.startAgent({ config: { extensions: ['com'] }, log: (line) => agentLog.push(line) });
      await until(async () => (await h.driver.configuration()).extensions.includes('com'), { what: 'SET_CONFIG' });
      const lost = nextEvent(agent, 'disconnected', { what: 'the agent to see the driver go' });
      await h.driver.unload();
      const [error] = (await lost) as [Error | undefined];
      assert.equal((error as { disconnected?: boolean } | undefined)?.disconnected, true);
      const failedConnects = (): number =>
        agentLog.filter((l) => /connect failed: ERROR_FILE_NOT_FOUND/.test(l)).length;
      await until(() => failedConnects() >= 2, { what: 'a few failed connects (ERROR_FILE_NOT_FOUND)' });
      assert.equal(agent.port, undefined);
      const reconnected = nextEvent(agent, 'connected', { what: 'the agent to reconnect' });
      const twin = await h.reload();
      await reconnected;
      await until(async () => (await twin.configuration()).extensions.includes('com'), {
        what: 'SET_CONFIG on the new driver',
      });
      const r = await twin.openFile({ path: 'C:\\eicar.com', content: EICAR, processId: OTHER_PID });
      assert.deepEqual([r.allowed, r.reasonCode], [false, 1]);
      assert.equal(agent.counters.connects, 2);
      assert.equal((await twin.stats()).connectionsTotal, 1n, 'counters restart with the driver');
    });
  });

  describe(`[${target}] agent as a process (examples/scanner-agent.ts, unchanged, endpoint from FLTMGR_SIMULATOR)`, () => {
    test(
      'scans, survives an unload/reload, and exits 0 on SIGINT after printing the driver statistics',
      {
        skip:
          process.platform === 'win32'
            ? 'Windows has no POSIX signals: kill() terminates the process, so a graceful exit cannot be observed'
            : false,
      },
      async (t) => {
        const h = await startSample({ target });
        const agent = spawnAgent(h.endpoint, ['--extensions', 'exe,com']);
        t.after(async () => {
          await stopChild(agent);
          await h.close();
        });
        await agent.waitFor(/connected to \\FltmgrSamplePort as scanner/);
        await until(async () => (await h.driver.configuration()).extensions.includes('com'), { what: 'SET_CONFIG' });
        const pid = agent.child.pid ?? 0;
        const blocked = await h.driver.openFile({ path: 'C:\\eicar.com', content: EICAR, processId: OTHER_PID });
        assert.deepEqual([blocked.allowed, blocked.reasonCode], [false, 1]);
        // The agent's own opens are never scanned: the driver saw the agent's real pid.
        assert.equal(
          (await h.driver.openFile({ path: 'C:\\eicar.com', content: EICAR, processId: pid })).reason,
          'excluded-process',
        );

        await h.driver.unload();
        await agent.waitFor(/connection lost/);
        await agent.waitFor(/connect failed: ERROR_FILE_NOT_FOUND/);
        const twin = await h.reload();
        await agent.waitFor(/connected to \\FltmgrSamplePort as scanner/, 2);
        await until(async () => (await twin.configuration()).extensions.includes('com'), {
          what: 'SET_CONFIG on the new driver',
        });
        assert.equal((await twin.openFile({ path: 'C:\\x.com', content: EICAR, processId: OTHER_PID })).allowed, false);

        agent.child.kill('SIGINT');
        const [code, signal] = await agent.exit;
        assert.deepEqual([code, signal], [0, null], agent.output());
        assert.match(agent.output(), /driver statistics:\nscan requests 1, allowed 0, blocked 1/);
        await until(async () => (await twin.stats()).scannerConnections === 0, { what: 'the disconnect' });
      },
    );

    test(
      'SIGTERM is a graceful exit too; a killed agent ends a waiting scan (fail-closed denies)',
      {
        skip:
          process.platform === 'win32'
            ? 'Windows has no POSIX signals: kill() terminates the process, so a graceful exit cannot be observed'
            : false,
      },
      async (t) => {
        const h = await startSample({ target });
        const graceful = spawnAgent(h.endpoint);
        const crashing = spawnAgent(h.endpoint, ['--scan-delay-ms', '60000']);
        t.after(async () => {
          await stopChild(graceful);
          await stopChild(crashing);
          await h.close();
        });
        await graceful.waitFor(/connected to/);
        graceful.child.kill('SIGTERM');
        assert.deepEqual(await graceful.exit, [0, null], graceful.output());

        await crashing.waitFor(/connected to/);
        await until(async () => (await h.driver.stats()).scannerConnections === 1, { what: 'one scanner' });
        await h.driver.configure({ ...P.defaultConfig(), failClosed: true, replyTimeoutMs: 600_000 });
        const pending = h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: OTHER_PID });
        await until(async () => (await h.driver.stats()).scanRequests === 1n, { what: 'the scan to reach the agent' });
        // Delivered to the agent (taken by its get, waiting for the reply), not just queued:
        await until(async () => h.clients.some((c) => c.connected && c.stats().awaitingReply === 1), {
          what: 'the agent to hold the scan',
        });
        crashing.child.kill('SIGKILL');
        const r = await pending;
        // Ended by the disconnect (STATUS_PORT_DISCONNECTED), not by the 10 min timeout (STATUS_TIMEOUT).
        assert.deepEqual([r.allowed, r.reason, r.sendStatus], [false, 'scan-error', NtStatus.STATUS_PORT_DISCONNECTED]);
      },
    );

    test(
      'without a simulator endpoint off Windows it says so and exits 1',
      { skip: process.platform === 'win32' ? 'Windows has the real Filter Manager' : false },
      async (t) => {
        const agent = spawnAgent(undefined);
        t.after(() => stopChild(agent));
        const [code] = await agent.exit;
        assert.equal(code, 1, agent.output());
        assert.match(agent.output(), /FLTMGR_SIMULATOR/);
      },
    );
  });
}
