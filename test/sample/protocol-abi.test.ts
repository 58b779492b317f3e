// driver-sample/protocol.ts against the C header (driver-sample/include/fltmgr_sample_protocol.h): every layout's
// size, alignment and member offsets/sizes through test/helpers/struct-probe.ts, and every numeric constant, with the
// host gcc and mingw-w64 x86_64 / i686 (skipped with a reason when not installed; CI installs them).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { struct, u16, u32 } from '../../lib/struct';
import { checkLayoutsWithCompiler, compilerAvailable, formatCheckResult } from '../helpers/struct-probe';
import * as P from '../../driver-sample/protocol';

const INCLUDE_DIR = join(__dirname, '..', '..', 'driver-sample', 'include');
const HEADER = join(INCLUDE_DIR, 'fltmgr_sample_protocol.h');

// Numeric constants of the header and their TS values: compiled as static assertions next to the layouts.
const CONSTANTS: ReadonlyArray<[string, number]> = [
  ['FLTSAMPLE_PROTOCOL_VERSION', P.PROTOCOL_VERSION],
  ['FLTSAMPLE_MAX_CONNECTIONS', P.MAX_CONNECTIONS],
  ['FLTSAMPLE_MAX_PATH_CHARS', P.MAX_PATH_CHARS],
  ['FLTSAMPLE_MAX_CONTENT_BYTES', P.MAX_CONTENT_BYTES],
  ['FLTSAMPLE_MAX_EXTENSIONS', P.MAX_EXTENSIONS],
  ['FLTSAMPLE_MAX_EXTENSION_CHARS', P.MAX_EXTENSION_CHARS],
  ['FLTSAMPLE_MAX_ECHO_BYTES', P.MAX_ECHO_BYTES],
  ['FLTSAMPLE_MAX_PROBE_COUNT', P.MAX_PROBE_COUNT],
  ['FLTSAMPLE_MAX_PROBE_TIMEOUT_MS', P.MAX_PROBE_TIMEOUT_MS],
  ['FLTSAMPLE_MIN_REPLY_TIMEOUT_MS', P.MIN_REPLY_TIMEOUT_MS],
  ['FLTSAMPLE_MAX_REPLY_TIMEOUT_MS', P.MAX_REPLY_TIMEOUT_MS],
  ['FLTSAMPLE_DEFAULT_REPLY_TIMEOUT_MS', P.DEFAULT_REPLY_TIMEOUT_MS],
  ['FLTSAMPLE_DEFAULT_CONTENT_BYTES', P.DEFAULT_CONTENT_BYTES],
  ['FLTSAMPLE_CONNECT_FLAG_SCANNER', P.ConnectFlag.SCANNER],
  ['FLTSAMPLE_CONNECT_VALID_FLAGS', P.CONNECT_VALID_FLAGS],
  ['FLTSAMPLE_MSG_SCAN_REQUEST', P.MessageType.SCAN_REQUEST],
  ['FLTSAMPLE_MSG_PROBE', P.MessageType.PROBE],
  ['FLTSAMPLE_SCAN_FLAG_PATH_TRUNCATED', P.ScanFlag.PATH_TRUNCATED],
  ['FLTSAMPLE_SCAN_FLAG_CONTENT_TRUNCATED', P.ScanFlag.CONTENT_TRUNCATED],
  ['FLTSAMPLE_SCAN_FLAG_READ_FAILED', P.ScanFlag.READ_FAILED],
  ['FLTSAMPLE_SCAN_FLAG_NO_REPLY', P.ScanFlag.NO_REPLY],
  ['FLTSAMPLE_VERDICT_ALLOW', P.Verdict.ALLOW],
  ['FLTSAMPLE_VERDICT_BLOCK', P.Verdict.BLOCK],
  ['FLTSAMPLE_SCAN_REPLY_MESSAGE_BYTES', P.SCAN_REPLY_MESSAGE_BYTES],
  ['FLTSAMPLE_CMD_GET_STATS', P.Command.GET_STATS],
  ['FLTSAMPLE_CMD_SET_CONFIG', P.Command.SET_CONFIG],
  ['FLTSAMPLE_CMD_GET_CONFIG', P.Command.GET_CONFIG],
  ['FLTSAMPLE_CMD_ECHO', P.Command.ECHO],
  ['FLTSAMPLE_CMD_PROBE', P.Command.PROBE],
  ['FLTSAMPLE_CONFIG_FLAG_FAIL_CLOSED', P.ConfigFlag.FAIL_CLOSED],
  ['FLTSAMPLE_CONFIG_FLAG_SCAN_ALL_FILES', P.ConfigFlag.SCAN_ALL_FILES],
  ['FLTSAMPLE_CONFIG_VALID_FLAGS', P.CONFIG_VALID_FLAGS],
  ['FLTSAMPLE_PROBE_FLAG_NO_REPLY', P.ProbeFlag.NO_REPLY],
  ['FLTSAMPLE_PROBE_VALID_FLAGS', P.PROBE_VALID_FLAGS],
];

function constantAsserts(constants: ReadonlyArray<[string, number]>): string {
  return constants
    .map(([name, value]) => `_Static_assert((${name}) == ${value}u, "fltsample-constant ${name} should be ${value}");`)
    .join('\n');
}

const COMPILERS: ReadonlyArray<{ compiler: string; mode: 'static' | 'run'; why: string }> = [
  { compiler: 'gcc', mode: 'run', why: 'host (LP64: same layout rules as MSVC x64 for these types)' },
  { compiler: 'gcc', mode: 'static', why: 'host, compile-time checks' },
  { compiler: 'x86_64-w64-mingw32-gcc', mode: 'static', why: 'Windows x64 ABI, wchar_t WCHARs' },
  { compiler: 'i686-w64-mingw32-gcc', mode: 'static', why: 'Windows x86 ABI (8-byte members aligned to 8 in structs)' },
];

async function requireCompiler(t: TestContext, compiler: string): Promise<boolean> {
  if (await compilerAvailable(compiler)) return true;
  t.skip(`${compiler} not installed (CI installs gcc-mingw-w64)`);
  return false;
}

describe('protocol.ts layouts = fltmgr_sample_protocol.h', () => {
  for (const { compiler, mode, why } of COMPILERS) {
    test(`${compiler} (${mode}; ${why})`, async (t) => {
      if (!(await requireCompiler(t, compiler))) return;
      const r = await checkLayoutsWithCompiler({
        compiler,
        mode,
        includes: [HEADER],
        prelude: constantAsserts(CONSTANTS),
        layouts: [...P.ALL_LAYOUTS],
        cFieldNames: P.cMemberName,
      });
      assert.ok(r.ok, formatCheckResult(r));
      // 8 structs, 2 checks each plus 2 per member (arrays add first/last elements): far more than 100.
      assert.ok(r.checks.length > 100, `only ${r.checks.length} checks`);
      assert.ok(
        r.checks.some((c) => c.cExpression === 'offsetof(FLTSAMPLE_SCAN_REQUEST, Content)' && c.expected === 568),
      );
      assert.ok(
        r.checks.some((c) => c.cExpression === 'offsetof(FLTSAMPLE_CONFIG, Extensions[15])' && c.expected === 496),
      );
    });
  }

  test('a wrong layout and a wrong constant are caught (the check can fail)', async (t) => {
    if (!(await requireCompiler(t, 'gcc'))) return;
    // COMMAND_HEADER with Command and Reserved in the wrong order: offsets differ.
    const wrong = struct('FLTSAMPLE_COMMAND_HEADER', { protocolVersion: u16, reserved: u32, command: u16 });
    const r = await checkLayoutsWithCompiler({
      compiler: 'gcc',
      includes: [HEADER],
      layouts: [wrong],
      cFieldNames: P.cMemberName,
    });
    assert.equal(r.ok, false);
    assert.ok(
      r.mismatches.some((m) => m.path === 'FLTSAMPLE_COMMAND_HEADER.command' && m.kind === 'offset'),
      formatCheckResult(r),
    );
    const c = await checkLayoutsWithCompiler({
      compiler: 'gcc',
      includes: [HEADER],
      layouts: [P.SCAN_REPLY],
      cFieldNames: P.cMemberName,
      prelude: constantAsserts([['FLTSAMPLE_VERDICT_BLOCK', 3]]),
    });
    assert.equal(c.ok, false);
    assert.ok(
      c.errors.some((e) => e.includes('FLTSAMPLE_VERDICT_BLOCK')),
      c.errors.join('\n'),
    );
  });
});

describe('protocol.ts values', () => {
  test('sizes are the documented ones', () => {
    const sizes = Object.fromEntries(P.ALL_LAYOUTS.map((l) => [l.name, l.size]));
    assert.deepEqual(sizes, {
      FLTSAMPLE_CONNECT_CONTEXT: 16,
      FLTSAMPLE_SCAN_REQUEST: 1592,
      FLTSAMPLE_SCAN_REPLY: 8,
      FLTSAMPLE_COMMAND_HEADER: 8,
      FLTSAMPLE_CONFIG: 528,
      FLTSAMPLE_STATS: 120,
      FLTSAMPLE_PROBE_REQUEST: 16,
      FLTSAMPLE_PROBE_RESULT: 48,
    });
  });

  test('the port name, filter name and default extensions match the header and the driver', () => {
    const header = readFileSync(HEADER, 'utf8');
    const ascii = /#define FLTSAMPLE_PORT_NAME_ASCII "((?:[^"\\]|\\.)*)"/.exec(header)?.[1];
    assert.equal(ascii?.replace(/\\\\/g, '\\'), P.PORT_NAME);
    const support = readFileSync(join(__dirname, '..', '..', 'driver-sample', 'driver', 'support.c'), 'utf8');
    const list = /FsDefaultExtensions\[\] = \{([^}]*)\}/.exec(support)?.[1] ?? '';
    assert.deepEqual(
      [...list.matchAll(/L"([^"]*)"/g)].map((m) => m[1]),
      [...P.DEFAULT_EXTENSIONS],
    );
    const inf = readFileSync(join(__dirname, '..', '..', 'driver-sample', 'driver', 'fltsample.inf'), 'utf8');
    assert.match(inf, new RegExp(`\\b${P.SAMPLE_ALTITUDE}\\b`));
    assert.match(inf, new RegExp(`\\b${P.FILTER_NAME}\\b`));
  });

  test('connect context, command, config and scan messages encode and decode', () => {
    const ctx = P.encodeConnectContext({ scanner: true, processId: 1234 });
    assert.deepEqual([...ctx], [1, 0, 0, 0, 1, 0, 0, 0, 0xd2, 0x04, 0, 0, 0, 0, 0, 0]);
    assert.equal(P.encodeConnectContext().readUInt32LE(4), 0);

    const cmd = P.encodeCommand(P.Command.ECHO, Buffer.from('hi'));
    assert.deepEqual([...cmd], [1, 0, 4, 0, 0, 0, 0, 0, 0x68, 0x69]);
    assert.equal(P.encodeCommand(P.Command.GET_STATS).length, 8);

    const config: P.SampleConfig = {
      failClosed: true,
      scanAllFiles: false,
      replyTimeoutMs: 250,
      contentBytes: 64,
      extensions: ['exe', 'Js'],
    };
    const raw = P.encodeConfig(config);
    assert.equal(raw.length, 528);
    assert.equal(raw.readUInt32LE(0), P.ConfigFlag.FAIL_CLOSED);
    assert.equal(raw.readUInt32LE(12), 2);
    assert.equal(raw.toString('utf16le', 16, 22), 'exe');
    assert.equal(raw.toString('utf16le', 48, 52), 'Js');
    assert.ok(
      raw.subarray(52).every((b) => b === 0),
      'unused extension entries are zero',
    );
    assert.deepEqual(P.decodeConfig(raw), config);
    assert.throws(() => P.encodeConfig({ ...config, extensions: Array.from({ length: 17 }, () => 'x') }), RangeError);

    const req = P.SCAN_REQUEST.encode({
      protocolVersion: 1,
      messageType: P.MessageType.SCAN_REQUEST,
      flags: P.ScanFlag.CONTENT_TRUNCATED,
      scanId: 7n,
      fileId: 9n,
      fileSize: -1n,
      processId: 42,
      pathLength: 5,
      contentLength: 3,
      reserved0: 0,
      path: 'C:\\a\u00e9',
      content: Buffer.from('abcdef'),
    });
    const decoded = P.decodeScanRequest(req);
    assert.equal(decoded.path, 'C:\\a\u00e9');
    assert.deepEqual(decoded.content, Buffer.from('abc'), 'content is cut to ContentLength');
    assert.equal(decoded.fileSize, -1n);
    assert.equal(decoded.isProbe, false);
    assert.equal(decoded.noReply, false);
    assert.throws(() => P.decodeScanRequest(req.subarray(0, 100)), RangeError);

    assert.deepEqual([...P.encodeScanReply(P.Verdict.BLOCK, 0x01020304)], [2, 0, 0, 0, 4, 3, 2, 1]);
  });
});
