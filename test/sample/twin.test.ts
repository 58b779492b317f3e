// The twin of the sample minifilter at the protocol level (raw FilterPort clients): connect-context rules,
// commands (stats, config, echo, probe), MaxConnections and round-robin, PID exclusion, which opens are scanned
// and what a scan request carries, bad replies, unload and reload. Each case mirrors driver-sample/driver.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { FilterPort } from '../../lib';
import { startSimulatorWorker } from '../../lib/simulator';
import { NtStatus, hresultFromNtStatus } from '../../lib/status';
import { FileAccess, STATUS_REVISION_MISMATCH, extensionOf } from '../../driver-sample/twin';
import * as P from '../../driver-sample/protocol';
import { SAMPLE_TARGETS, rejectsWith, serveRaw, startSample, text } from '../helpers/sample';
import { HR } from '../helpers/status';
import { until } from '../helpers/timing';

const OTHER_PID = 4242; // an opener that is not a connected scanner
const FS_CLIENT_BYTES = 48n;

function rawContext(fields: Partial<P.ConnectContext>): Buffer {
  return P.CONNECT_CONTEXT.encode({
    protocolVersion: 1,
    reserved0: 0,
    flags: 0,
    processId: 0,
    reserved1: 0,
    ...fields,
  });
}

for (const target of SAMPLE_TARGETS) {
  describe(`[${target}] connect context (FsPortConnect)`, () => {
    test('a missing, malformed or foreign context is refused with the driver statuses', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const plain = await h.connect(); // no context: command-only
      const own = await h.connect({ context: rawContext({ processId: process.pid }) }); // own pid is fine
      await rejectsWith(h.connect({ context: Buffer.alloc(8) }), HR.ERROR_INVALID_PARAMETER);
      await rejectsWith(
        h.connect({ context: rawContext({ protocolVersion: 2 }) }),
        hresultFromNtStatus(NtStatus.STATUS_REVISION_MISMATCH),
      );
      assert.notEqual(
        hresultFromNtStatus(NtStatus.STATUS_REVISION_MISMATCH),
        HR.ERROR_INVALID_PARAMETER,
        'a version mismatch has its own status',
      );
      await rejectsWith(h.connect({ context: rawContext({ flags: 0x2 }) }), HR.ERROR_INVALID_PARAMETER);
      await rejectsWith(h.connect({ context: rawContext({ reserved0: 1 }) }), HR.ERROR_INVALID_PARAMETER);
      await rejectsWith(h.connect({ context: rawContext({ reserved1: 1 }) }), HR.ERROR_INVALID_PARAMETER);
      // A client may not claim another process (it would exclude that process from scanning).
      await rejectsWith(
        h.connect({ context: rawContext({ flags: P.ConnectFlag.SCANNER, processId: process.pid + 1 }) }),
        HR.ERROR_INVALID_PARAMETER,
      );
      const stats = await P.getStats(plain);
      assert.equal(stats.connectionsTotal, 2n, 'refused connects are not counted');
      assert.equal(stats.connectionsCurrent, 2);
      assert.equal(stats.scannerConnections, 0);
      await own.close();
      await until(async () => (await h.driver.stats()).connectionsCurrent === 1, { what: 'the disconnect callback' });
    });

    test('MaxConnections is 8 and scan requests go round-robin over the scanners, in connect order', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const scanners = [
        await h.connect({ scanner: true }),
        await h.connect({ scanner: true }),
        await h.connect({ scanner: true }),
      ];
      const command = await h.connect(); // a command-only connection between them never gets scans
      const late = await h.connect({ scanner: true });
      const served = [...scanners, late].map((port) => serveRaw(port));
      const commandServed = serveRaw(command);
      const others = [];
      for (let i = 0; i < 3; i++) others.push(await h.connect());
      await rejectsWith(h.connect(), HR.ERROR_CONNECTION_COUNT_LIMIT);
      await others.pop()?.close();
      await until(async () => (await h.driver.stats()).connectionsCurrent === 7, { what: 'a free slot' });
      others.push(await h.connect());

      const order: number[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await h.driver.openFile({ path: `C:\\f${i}.txt`, content: text('clean'), processId: OTHER_PID });
        assert.equal(r.reason, 'verdict-allow');
        order.push(served.findIndex((s) => s.requests.some((q) => q.scanId === r.scanId)));
      }
      // RoundRobin starts at 0 and is incremented before use: the first pick is scanner 1 of 4.
      assert.deepEqual(order, [1, 2, 3, 0, 1, 2, 3, 0]);
      assert.equal(commandServed.requests.length, 0);
      const stats = await h.driver.stats();
      assert.equal(stats.scannerConnections, 4);
      assert.equal(stats.connectionsCurrent, 8);
    });
  });

  describe(`[${target}] commands (FsPortMessage)`, () => {
    test('GET_STATS reports counters, connections and the pool as a 64-bit driver would', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const port = await h.connect();
      const stats = await P.getStats(port);
      assert.equal(stats.protocolVersion, 1);
      assert.equal(stats.structSize, 120);
      assert.equal(stats.connectionsCurrent, 1);
      assert.equal(stats.connectionsTotal, 1n);
      // One FS_CLIENT plus the captured 8-byte command input of this very GET_STATS.
      assert.equal(stats.poolAllocations, 2n);
      assert.equal(stats.poolBytes, FS_CLIENT_BYTES + 8n);
      assert.equal((await h.driver.stats()).poolAllocations, 1n, 'the command buffer is freed afterwards');
      await rejectsWith(
        port.send(P.encodeCommand(P.Command.GET_STATS), { outputSize: 119 }),
        HR.ERROR_INSUFFICIENT_BUFFER,
      );
      await rejectsWith(port.send(P.encodeCommand(P.Command.GET_STATS, Buffer.alloc(8))), HR.ERROR_INVALID_PARAMETER);
    });

    test('header checks: version, reserved, unknown command, input length', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const port = await h.connect();
      const header = (fields: Partial<P.CommandHeader>): Buffer =>
        P.COMMAND_HEADER.encode({ protocolVersion: 1, command: P.Command.GET_STATS, reserved: 0, ...fields });
      await rejectsWith(
        port.send(header({ protocolVersion: 0 }), { outputSize: 120 }),
        hresultFromNtStatus(NtStatus.STATUS_REVISION_MISMATCH),
      );
      await rejectsWith(port.send(header({ reserved: 7 }), { outputSize: 120 }), HR.ERROR_INVALID_PARAMETER);
      await rejectsWith(port.send(header({ command: 9 }), { outputSize: 120 }), HR.ERROR_INVALID_FUNCTION);
      await rejectsWith(port.send(Buffer.alloc(4), { outputSize: 120 }), HR.ERROR_INVALID_PARAMETER);
      await rejectsWith(port.send(null, { outputSize: 120 }), HR.ERROR_INVALID_PARAMETER);
      assert.equal(STATUS_REVISION_MISMATCH, NtStatus.STATUS_REVISION_MISMATCH);
    });

    test('GET_CONFIG returns the defaults; SET_CONFIG replaces all of it or nothing', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const port = await h.connect();
      assert.deepEqual(await P.getConfig(port), P.defaultConfig());
      const wanted: P.SampleConfig = {
        failClosed: true,
        scanAllFiles: false,
        replyTimeoutMs: 1500,
        contentBytes: 16,
        extensions: ['exe', 'com'],
      };
      assert.deepEqual(await P.setConfig(port, wanted), wanted);
      assert.deepEqual(await P.getConfig(port), wanted);
      assert.deepEqual(await h.driver.configuration(), wanted);

      const good = P.encodeConfig(wanted);
      const variant = (edit: (b: Buffer) => void): Buffer => {
        const b = Buffer.from(good);
        edit(b);
        return P.encodeCommand(P.Command.SET_CONFIG, b);
      };
      const invalid = [
        variant((b) => b.writeUInt32LE(0x4, 0)), // unknown flag
        variant((b) => b.writeUInt32LE(0, 4)), // timeout 0
        variant((b) => b.writeUInt32LE(600_001, 4)),
        variant((b) => b.writeUInt32LE(1025, 8)), // content bytes
        variant((b) => b.writeUInt32LE(17, 12)), // extension count
        variant((b) => b.writeUInt32LE(3, 12)), // entry 2 is empty
        variant((b) => b.write('e.x', 16, 'utf16le')), // '.' in an extension
        variant((b) => b.write('a\\b', 16, 'utf16le')),
        variant((b) => b.write('x'.repeat(16), 16, 'utf16le')), // not NUL-terminated in 16 units
        variant((b) => b.writeUInt16LE(0x41, 16 + 2 * 32 + 6)), // garbage in an unused entry
        P.encodeCommand(P.Command.SET_CONFIG, good.subarray(0, 527)),
      ];
      for (const input of invalid) await rejectsWith(port.send(input, { outputSize: 528 }), HR.ERROR_INVALID_PARAMETER);
      // A too-small output buffer fails before anything changes; no output buffer is fine.
      const other = P.encodeCommand(P.Command.SET_CONFIG, P.encodeConfig({ ...wanted, replyTimeoutMs: 99 }));
      await rejectsWith(port.send(other, { outputSize: 100 }), HR.ERROR_INSUFFICIENT_BUFFER);
      assert.deepEqual(await P.getConfig(port), wanted, 'failed SET_CONFIGs changed nothing');
      assert.equal((await port.send(other)).length, 0);
      assert.equal((await P.getConfig(port)).replyTimeoutMs, 99);
      // Extensions are case-insensitive; 15 units is the longest that fits.
      await P.setConfig(port, { ...wanted, extensions: ['ExE', 'x'.repeat(15)] });
      assert.equal(
        (await h.driver.openFile({ path: 'C:\\A.eXe', content: text('x'), processId: OTHER_PID })).reason,
        'no-agent',
      );
      assert.equal(
        (await h.driver.openFile({ path: `C:\\a.${'X'.repeat(15)}`, content: text('x'), processId: OTHER_PID })).reason,
        'no-agent',
      );
    });

    test('ECHO returns the bytes, up to 65536', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const port = await h.connect();
      const data = Buffer.from(Array.from({ length: 65536 }, (_v, i) => (i * 7) & 0xff));
      assert.deepEqual(await P.echo(port, data), data);
      assert.deepEqual(await P.echo(port, text('x')), text('x'));
      assert.equal((await port.send(P.encodeCommand(P.Command.ECHO))).length, 0);
      await rejectsWith(
        port.send(P.encodeCommand(P.Command.ECHO, Buffer.alloc(65537)), { outputSize: 65537 }),
        HR.ERROR_INVALID_PARAMETER,
      );
      await rejectsWith(
        port.send(P.encodeCommand(P.Command.ECHO, data.subarray(0, 10)), { outputSize: 9 }),
        HR.ERROR_INSUFFICIENT_BUFFER,
      );
    });

    test('PROBE sends synthetic messages to the caller and times them', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const port = await h.connect(); // any connection may probe; it must be receiving
      const served = serveRaw(port);
      await h.untilReceiving(); // the probe's first message must not wait for the first get
      const result = await P.probe(port, { count: 50, contentBytes: 16, timeoutMs: 10_000 });
      assert.equal(result.sent, 50);
      assert.equal(result.replied, 50);
      assert.equal(result.failed + result.timedOut, 0);
      assert.equal(result.lastStatus, 0);
      assert.ok(
        result.minRoundTrip > 0n &&
          result.minRoundTrip <= result.maxRoundTrip &&
          result.maxRoundTrip <= result.elapsedTime,
      );
      const first = served.requests[0];
      assert.ok(first);
      assert.equal(first.isProbe, true);
      assert.equal(first.path, '\\FltmgrSample\\probe');
      assert.equal(first.fileSize, 16n);
      assert.deepEqual(
        [...first.content],
        Array.from({ length: 16 }, (_v, i) => i),
      );
      const noReply = await P.probe(port, { count: 20, flags: P.ProbeFlag.NO_REPLY, timeoutMs: 10_000 });
      assert.deepEqual([noReply.sent, noReply.replied, noReply.failed], [20, 0, 0]);
      // Taken by a get is all the driver waits for: the last ones may reach the handler after the probe returned.
      await until(() => served.requests.length === 70, { what: 'every probe message to be handled' });
      assert.ok(served.requests.slice(-20).every((r) => r.noReply));
      assert.equal((await h.driver.stats()).probeMessages, 70n);

      for (const bad of [
        { count: 0 },
        { count: 1_000_001 },
        { count: 1, contentBytes: 1025 },
        { count: 1, timeoutMs: 0 },
        { count: 1, timeoutMs: 10_001 },
        { count: 1, flags: 2 },
      ]) {
        await rejectsWith(P.probe(port, bad), HR.ERROR_INVALID_PARAMETER);
      }
      await rejectsWith(
        port.send(
          P.encodeCommand(P.Command.PROBE, P.encodeProbeRequest({ count: 1, contentBytes: 0, timeoutMs: 1, flags: 0 })),
          { outputSize: 47 },
        ),
        HR.ERROR_INSUFFICIENT_BUFFER,
      );
    });

    test('PROBE stops at a timeout, and counts invalid verdicts as failures', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const idle = await h.connect(); // not receiving: nobody takes the message
      const timedOut = await P.probe(idle, { count: 5, timeoutMs: 100 });
      // TimedOut 1 of 5: the probe stopped at the first timeout.
      assert.deepEqual([timedOut.sent, timedOut.timedOut, timedOut.lastStatus], [0, 1, NtStatus.STATUS_TIMEOUT]);
      const port = await h.connect();
      serveRaw(port, () => P.encodeScanReply(0));
      await h.untilReceiving();
      const bad = await P.probe(port, { count: 3, timeoutMs: 10_000 });
      assert.deepEqual([bad.sent, bad.replied, bad.failed], [3, 0, 3]);
    });
  });

  describe(`[${target}] file opens (FsPreCreate / FsPostCreate / FsScanOpenedFile)`, () => {
    test('which opens are scanned', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const scanner = await h.connect({ scanner: true });
      const served = serveRaw(scanner);
      const open = (path: string, extra: Partial<Parameters<typeof h.driver.openFile>[0]> = {}) =>
        h.driver.openFile({ path, content: text('data'), processId: OTHER_PID, ...extra }).then((r) => r.reason);
      assert.equal(await open('C:\\a.txt', { requestorMode: 'kernel' }), 'kernel-mode');
      assert.equal(await open('C:\\dir.exe', { directory: true }), 'directory');
      assert.equal(await open('C:\\dir.exe', { openedDirectory: true }), 'directory');
      assert.equal(
        await open('C:\\dir.png', { openedDirectory: true }),
        'not-in-scope',
        'the extension is checked first',
      );
      assert.equal(
        await open('C:\\a.exe', { desiredAccess: FileAccess.READ_ATTRIBUTES | FileAccess.DELETE }),
        'no-data-access',
      );
      for (const access of [FileAccess.READ_DATA, FileAccess.WRITE_DATA, FileAccess.APPEND_DATA, FileAccess.EXECUTE]) {
        assert.equal(await open('C:\\a.exe', { desiredAccess: access }), 'verdict-allow');
      }
      assert.equal(await open('C:\\photo.png'), 'not-in-scope');
      assert.equal(await open('C:\\noextension'), 'not-in-scope');
      assert.equal(await open('C:\\dir.exe\\file'), 'not-in-scope', 'the extension of the last component counts');
      assert.equal(await open('C:\\UPPER.TXT'), 'verdict-allow');
      assert.equal(await open('C:\\a.txt:stream'), 'verdict-allow');
      assert.equal(extensionOf('/tmp/x.tar.gz'), 'gz');
      assert.equal(served.requests.length, 6);

      await P.setConfig(scanner, { ...P.defaultConfig(), scanAllFiles: true });
      assert.equal(await open('C:\\photo.png'), 'verdict-allow');
      assert.equal(await open('C:\\noextension'), 'verdict-allow');
      await P.setConfig(scanner, { ...P.defaultConfig(), extensions: [] });
      assert.equal(await open('C:\\a.exe'), 'not-in-scope', 'no extensions = nothing scanned');
    });

    test('what a scan request carries: path, pid, size, first ContentBytes, flags, file id', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const scanner = await h.connect({ scanner: true });
      const served = serveRaw(scanner);
      await P.setConfig(scanner, { ...P.defaultConfig(), contentBytes: 10 });
      const content = text('0123456789abcdef');
      const r1 = await h.driver.openFile({ path: 'C:\\dir\\file.txt', content, processId: 777 });
      const r2 = await h.driver.openFile({
        path: 'C:\\dir\\file.txt',
        content: content.subarray(0, 4),
        processId: 778,
      });
      const long = `C:\\${'d'.repeat(300)}.txt`;
      await h.driver.openFile({ path: long, content, processId: 779, readFails: true });
      await h.driver.openFile({ path: 'C:\\empty.txt', content: Buffer.alloc(0), processId: 780, fileId: 99n });
      const [a, b, c, d] = served.requests;
      assert.ok(a && b && c && d);
      assert.equal(a.messageType, P.MessageType.SCAN_REQUEST);
      assert.equal(a.scanId, r1.scanId);
      assert.equal(b.scanId, (r1.scanId ?? 0n) + 1n);
      assert.equal(r2.scanId, b.scanId);
      assert.equal(a.path, 'C:\\dir\\file.txt');
      assert.equal(a.processId, 777);
      assert.equal(a.fileSize, 16n);
      assert.deepEqual(a.content, text('0123456789'));
      assert.equal(a.flags, P.ScanFlag.CONTENT_TRUNCATED);
      assert.equal(a.fileId, b.fileId, 'the same file has the same id');
      assert.deepEqual([b.flags, b.content.toString('latin1')], [0, '0123']);
      assert.equal(c.path, long.slice(0, 259));
      assert.equal(c.flags, P.ScanFlag.PATH_TRUNCATED | P.ScanFlag.READ_FAILED | P.ScanFlag.CONTENT_TRUNCATED);
      assert.equal(c.content.length, 0);
      assert.deepEqual([d.fileSize, d.content.length, d.flags, d.fileId], [0n, 0, 0, 99n]);
      assert.equal((await h.driver.stats()).scanRequests, 4n);
    });

    test("a scanner's own opens are excluded; a command connection's are not", async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const command = await h.connect();
      serveRaw(command);
      const own = await h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: process.pid });
      assert.equal(own.reason, 'no-agent', 'a command-only connection does not exclude its process');
      const scanner = await h.connect({ scanner: true });
      const served = serveRaw(scanner);
      const excluded = await h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: process.pid });
      assert.deepEqual([excluded.allowed, excluded.reason, excluded.scanned], [true, 'excluded-process', false]);
      assert.equal(
        (await h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: OTHER_PID })).reason,
        'verdict-allow',
      );
      assert.equal(served.requests.length, 1);
      assert.equal((await h.driver.stats()).excludedOpens, 1n);
      await scanner.close();
      await until(async () => (await h.driver.stats()).scannerConnections === 0, { what: 'the scanner to go' });
      assert.equal(
        (await h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: process.pid })).reason,
        'no-agent',
      );
    });

    test('invalid and short replies are errors that follow the failure policy', async (t) => {
      const h = await startSample({ target });
      t.after(() => h.close());
      const scanner = await h.connect({ scanner: true });
      let answer: Buffer = P.encodeScanReply(7);
      serveRaw(scanner, () => answer);
      const open = () => h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: OTHER_PID });
      assert.deepEqual(await open().then((r) => [r.allowed, r.reason]), [true, 'scan-error']);
      answer = Buffer.alloc(4, 1); // shorter than FLTSAMPLE_SCAN_REPLY
      assert.deepEqual(await open().then((r) => [r.allowed, r.reason]), [true, 'scan-error']);
      await P.setConfig(scanner, { ...P.defaultConfig(), failClosed: true });
      answer = P.encodeScanReply(0);
      const denied = await open();
      assert.deepEqual(
        [denied.allowed, denied.status, denied.reason],
        [false, NtStatus.STATUS_ACCESS_DENIED, 'scan-error'],
      );
      const s = await h.driver.stats();
      assert.deepEqual([s.scanErrors, s.failOpenAllowed, s.failClosedDenied, s.scansAllowed], [3n, 2n, 1n, 0n]);
    });
  });

  describe(`[${target}] unload and reload (FsTeardown)`, () => {
    test('unload ends scans and connections, frees everything; a reload starts from the defaults', async (t) => {
      const h = await startSample({ target, driver: { portGroupGid: 12345 } });
      t.after(() => h.close());
      const scanner = await h.connect({ scanner: true });
      const command = await h.connect();
      await P.setConfig(command, { ...P.defaultConfig(), replyTimeoutMs: 600_000, failClosed: true });
      let seen = 0;
      serveRaw(scanner, () => {
        seen++;
        return new Promise<undefined>(() => undefined); // never answers
      });
      assert.equal((await h.driver.stats()).poolAllocations, 3n, 'two FS_CLIENTs and the group SID');
      const pending = h.driver.openFile({ path: 'C:\\slow.exe', content: text('x'), processId: OTHER_PID });
      await until(() => seen === 1, { what: 'the scan to reach the agent' });
      assert.equal((await h.driver.stats()).poolAllocations, 4n, 'plus the scan request');
      const disconnected = new Promise((resolve) => scanner.once('disconnect', resolve));
      const unloading = h.driver.unload();
      const result = await pending;
      // STATUS_PORT_DISCONNECTED: the waiting scan ended at unload, not after the 10 min timeout (STATUS_TIMEOUT).
      assert.deepEqual(
        [result.allowed, result.reason, result.sendStatus],
        [false, 'scan-error', NtStatus.STATUS_PORT_DISCONNECTED],
      );
      await unloading;
      await disconnected;
      const after = await h.driver.stats();
      assert.deepEqual([after.poolAllocations, after.poolBytes, after.connectionsCurrent], [0n, 0n, 0]);
      assert.equal(
        (await h.driver.openFile({ path: 'C:\\a.exe', content: text('x'), processId: OTHER_PID })).reason,
        'unloading',
      );
      await rejectsWith(FilterPort.connect(P.PORT_NAME, { simulator: h.endpoint }), HR.ERROR_FILE_NOT_FOUND);
      await rejectsWith(
        command.send(P.encodeCommand(P.Command.GET_STATS), { outputSize: 120 }),
        HR.ERROR_INVALID_HANDLE,
      );

      const twin = await h.reload();
      const port = await h.connect();
      const fresh = await P.getStats(port);
      assert.deepEqual([fresh.connectionsTotal, fresh.scanRequests, fresh.scanErrors], [1n, 0n, 0n]);
      assert.deepEqual(await P.getConfig(port), P.defaultConfig(), 'the configuration is not persisted');
      assert.equal(twin.portGroupGid, 12345, 'the registry value is read again at load');
    });
  });
}

describe('hosted by the simulator worker and CLI (register(sim, options))', () => {
  const twinModule = join(__dirname, '..', '..', 'driver-sample', 'twin', 'index.ts');

  test('worker: the twin serves the protocol; options arrive as filterOptions', async (t) => {
    const worker = await startSimulatorWorker(twinModule, {
      filterOptions: { portGroupGid: 4321 },
      log: () => undefined,
    });
    t.after(() => worker.terminate());
    const port = await FilterPort.connect(P.PORT_NAME, { simulator: worker.endpoint });
    const stats = await P.getStats(port);
    // One FS_CLIENT, this command's input and the group SID of the opt-in option.
    assert.deepEqual([stats.connectionsCurrent, stats.poolAllocations], [1, 3n]);
    await port.close();
  });

  test(
    'CLI: fltmgr-simulator --filter <twin> --option portGroupGid=N, stopped with SIGTERM',
    {
      skip:
        process.platform === 'win32'
          ? 'Windows has no POSIX signals: kill() terminates the process, so a graceful exit cannot be observed'
          : false,
    },
    async (t) => {
      const cli = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          join(__dirname, '..', '..', 'lib', 'simulator', 'cli.ts'),
          '--filter',
          twinModule,
          '--option',
          'portGroupGid=4321',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const exited = once(cli, 'exit');
      t.after(async () => {
        if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
        await exited;
      });
      let out = '';
      cli.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      await until(() => out.includes('\n'), { what: 'the endpoint line' });
      const { endpoint } = JSON.parse(out.split('\n')[0] ?? '') as { endpoint: string };
      const port = await FilterPort.connect(P.PORT_NAME, { simulator: endpoint });
      assert.equal((await P.getStats(port)).poolAllocations, 3n);
      const scanner = await FilterPort.connect(P.PORT_NAME, {
        simulator: endpoint,
        context: P.encodeConnectContext({ scanner: true }),
      });
      assert.equal((await P.getStats(scanner)).scannerConnections, 1);
      await Promise.all([port.close(), scanner.close()]);
      cli.kill('SIGTERM');
      assert.deepEqual(await exited, [0, null]);
    },
  );
});
