import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  HResult,
  NtStatus,
  Win32,
  hex32,
  hresultFromNtStatus,
  hresultFromWin32,
  nameOfHresult,
  nameOfNtStatus,
  nameOfWin32,
  ntStatusToWin32,
  ntSuccess,
  win32FromHresult,
} from '../../lib/status';

const MINGW = '/usr/share/mingw-w64/include';

test('spot values match the Windows headers', () => {
  assert.equal(Win32.ERROR_FILE_NOT_FOUND, 2);
  assert.equal(Win32.ERROR_ACCESS_DENIED, 5);
  assert.equal(Win32.ERROR_BAD_LENGTH, 24);
  assert.equal(Win32.ERROR_NOT_SUPPORTED, 50);
  assert.equal(Win32.ERROR_SEM_TIMEOUT, 121);
  assert.equal(Win32.ERROR_INSUFFICIENT_BUFFER, 122);
  assert.equal(Win32.WAIT_TIMEOUT, 258);
  assert.equal(Win32.ERROR_MR_MID_NOT_FOUND, 317);
  assert.equal(Win32.ERROR_ABANDONED_WAIT_0, 735);
  assert.equal(Win32.ERROR_OPERATION_ABORTED, 995);
  assert.equal(Win32.ERROR_IO_PENDING, 997);
  assert.equal(Win32.ERROR_CONNECTION_COUNT_LIMIT, 1238);
  assert.equal(Win32.ERROR_PRIVILEGE_NOT_HELD, 1314);
  assert.equal(Win32.ERROR_NO_SYSTEM_RESOURCES, 1450);
  assert.equal(Win32.ERROR_TIMEOUT, 1460);
  assert.equal(Win32.ERROR_FLT_NO_WAITER_FOR_REPLY, 0x801f0020);
  assert.equal(Win32.ERROR_FLT_INSTANCE_ALTITUDE_COLLISION, 0x801f0011);
  assert.equal(Win32.ERROR_FLT_INSTANCE_NAME_COLLISION, 0x801f0012);
  assert.equal(NtStatus.STATUS_TIMEOUT, 0x102);
  assert.equal(NtStatus.STATUS_BUFFER_OVERFLOW, 0x80000005);
  assert.equal(NtStatus.STATUS_PORT_DISCONNECTED, 0xc0000037);
  assert.equal(NtStatus.STATUS_CONNECTION_COUNT_LIMIT, 0xc0000246);
  assert.equal(NtStatus.STATUS_FLT_NO_WAITER_FOR_REPLY, 0xc01c0020);
  assert.equal(NtStatus.STATUS_NOT_SUPPORTED, 0xc00000bb);
  assert.equal(HResult.E_INVALIDARG, 0x80070057);
});

// Every entry against the mingw-w64 headers (mingw-w64-common); skipped where they are not installed.
test(
  'every table entry matches winerror.h / fltwinerror.h / ntstatus.h',
  { skip: !fs.existsSync(`${MINGW}/ntstatus.h`) },
  () => {
    const headers = ['winerror.h', 'fltwinerror.h', 'ntstatus.h']
      .map((f) => fs.readFileSync(`${MINGW}/${f}`, 'utf8'))
      .join('\n');
    const defined = new Map<string, number>();
    const re =
      /^#define\s+(\w+)\s+(?:__MSABI_LONG\((\d+)\)|\(\((?:HRESULT|NTSTATUS)\)\s*(0x[0-9a-fA-F]+)\)|_HRESULT_TYPEDEF_\((0x[0-9a-fA-F]+)\)|\(\(HRESULT\)(0x[0-9a-fA-F]+)\))/gm;
    for (const m of headers.matchAll(re)) {
      const text = m[2] ?? m[3] ?? m[4] ?? m[5];
      if (text !== undefined && !defined.has(m[1] as string)) defined.set(m[1] as string, Number(text) >>> 0);
    }
    let checked = 0;
    for (const table of [Win32, NtStatus, HResult] as Record<string, number>[]) {
      for (const [name, value] of Object.entries(table)) {
        assert.ok(defined.has(name), `${name} is not defined in the headers`);
        assert.equal(
          value,
          defined.get(name),
          `${name}: ours ${hex32(value)}, header ${hex32(defined.get(name) as number)}`,
        );
        checked++;
      }
    }
    assert.ok(checked > 100);
  },
);

test('the tables have no duplicate values, so reverse lookups are unambiguous', () => {
  for (const table of [Win32, NtStatus, HResult] as Record<string, number>[]) {
    const seen = new Map<number, string>();
    for (const [name, value] of Object.entries(table)) {
      assert.equal(seen.get(value), undefined, `${name} duplicates ${seen.get(value)}`);
      seen.set(value, name);
    }
  }
});

test('hresultFromWin32 follows HRESULT_FROM_WIN32', () => {
  assert.equal(hresultFromWin32(Win32.ERROR_FILE_NOT_FOUND), 0x80070002);
  assert.equal(hresultFromWin32(Win32.ERROR_CONNECTION_COUNT_LIMIT), 0x800704d6);
  assert.equal(hresultFromWin32(Win32.ERROR_IO_PENDING), 0x800703e5);
  assert.equal(hresultFromWin32(0), 0);
  // Values that are already HRESULTs pass through, signed or not.
  assert.equal(hresultFromWin32(0x801f0020), 0x801f0020);
  assert.equal(hresultFromWin32(-2145452000), 0x801f0020);
  // Only the low 16 bits of a positive code are kept, as the macro does.
  assert.equal(hresultFromWin32(0x12345), 0x80072345);
});

test('ntStatusToWin32 follows RtlNtStatusToDosError for the table, MR_MID_NOT_FOUND otherwise', () => {
  const cases: [number, number][] = [
    [NtStatus.STATUS_SUCCESS, 0],
    [NtStatus.STATUS_TIMEOUT, Win32.ERROR_TIMEOUT],
    [NtStatus.STATUS_PENDING, Win32.ERROR_IO_PENDING],
    [NtStatus.STATUS_BUFFER_OVERFLOW, Win32.ERROR_MORE_DATA],
    [NtStatus.STATUS_UNSUCCESSFUL, Win32.ERROR_GEN_FAILURE],
    [NtStatus.STATUS_ACCESS_DENIED, Win32.ERROR_ACCESS_DENIED],
    [NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, Win32.ERROR_FILE_NOT_FOUND],
    [NtStatus.STATUS_OBJECT_NAME_COLLISION, Win32.ERROR_ALREADY_EXISTS],
    [NtStatus.STATUS_PORT_DISCONNECTED, Win32.ERROR_INVALID_HANDLE],
    [NtStatus.STATUS_THREAD_IS_TERMINATING, Win32.ERROR_ACCESS_DENIED],
    [NtStatus.STATUS_INSUFFICIENT_RESOURCES, Win32.ERROR_NO_SYSTEM_RESOURCES],
    [NtStatus.STATUS_CANCELLED, Win32.ERROR_OPERATION_ABORTED],
    [NtStatus.STATUS_PIPE_BROKEN, Win32.ERROR_BROKEN_PIPE],
    [NtStatus.STATUS_CONNECTION_COUNT_LIMIT, Win32.ERROR_CONNECTION_COUNT_LIMIT],
    [NtStatus.STATUS_NOT_SUPPORTED, Win32.ERROR_NOT_SUPPORTED],
    [NtStatus.STATUS_BUFFER_TOO_SMALL, Win32.ERROR_INSUFFICIENT_BUFFER],
    [NtStatus.STATUS_INFO_LENGTH_MISMATCH, Win32.ERROR_BAD_LENGTH],
    [NtStatus.STATUS_IO_TIMEOUT, Win32.ERROR_SEM_TIMEOUT],
    [NtStatus.STATUS_NO_SUCH_DEVICE, Win32.ERROR_FILE_NOT_FOUND],
    [NtStatus.STATUS_DEVICE_NOT_READY, Win32.ERROR_NOT_READY],
    [NtStatus.STATUS_PRIVILEGE_NOT_HELD, Win32.ERROR_PRIVILEGE_NOT_HELD],
    [0xc0070005, 5], // NTSTATUS_FROM_WIN32
    [0xdeadbeef, Win32.ERROR_MR_MID_NOT_FOUND],
    [NtStatus.STATUS_FLT_NO_WAITER_FOR_REPLY, Win32.ERROR_MR_MID_NOT_FOUND],
  ];
  for (const [status, win32] of cases) assert.equal(ntStatusToWin32(status), win32, hex32(status));
  // Every status in the table is either mapped or deliberately left to MR_MID_NOT_FOUND; nothing maps to garbage.
  for (const v of Object.values(NtStatus)) assert.notEqual(nameOfWin32(ntStatusToWin32(v)), undefined, hex32(v));
});

test('hresultFromNtStatus is what a user-mode caller sees', () => {
  assert.equal(hresultFromNtStatus(0), 0);
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_PORT_DISCONNECTED), 0x80070006); // E_HANDLE
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_ACCESS_DENIED), 0x80070005);
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND), 0x80070002);
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_INVALID_PARAMETER), 0x80070057);
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_BUFFER_TOO_SMALL), 0x8007007a);
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_UNSUCCESSFUL), 0x8007001f);
  assert.equal(hresultFromNtStatus(0xc1234567), 0x8007013d); // unknown -> MR_MID_NOT_FOUND
  // Filter Manager's own statuses keep their code in facility 0x1F, as fltlib reports them.
  assert.equal(hresultFromNtStatus(NtStatus.STATUS_FLT_NO_WAITER_FOR_REPLY), Win32.ERROR_FLT_NO_WAITER_FOR_REPLY);
  assert.equal(
    hresultFromNtStatus(NtStatus.STATUS_FLT_INSTANCE_NAME_COLLISION),
    Win32.ERROR_FLT_INSTANCE_NAME_COLLISION,
  );
  // Signed input.
  assert.equal(hresultFromNtStatus(-1073741772), 0x80070002);
});

test('win32FromHresult extracts FACILITY_WIN32 codes only', () => {
  assert.equal(win32FromHresult(0x80070002), 2);
  assert.equal(win32FromHresult(-2147024894), 2);
  assert.equal(win32FromHresult(0x800704d6), 1238);
  assert.equal(win32FromHresult(0), 0);
  assert.equal(win32FromHresult(0x801f0020), undefined);
  assert.equal(win32FromHresult(0x80004005), undefined);
});

test('nameOfHresult prefers the names people search for', () => {
  assert.equal(nameOfHresult(0x80070002), 'ERROR_FILE_NOT_FOUND');
  assert.equal(nameOfHresult(-2147024894), 'ERROR_FILE_NOT_FOUND');
  assert.equal(nameOfHresult(0x80070005), 'ERROR_ACCESS_DENIED');
  assert.equal(nameOfHresult(0x80070057), 'E_INVALIDARG');
  assert.equal(nameOfHresult(0x80070006), 'E_HANDLE');
  assert.equal(nameOfHresult(0x8007000e), 'E_OUTOFMEMORY');
  assert.equal(nameOfHresult(0x801f0020), 'ERROR_FLT_NO_WAITER_FOR_REPLY');
  assert.equal(nameOfHresult(0x800704d6), 'ERROR_CONNECTION_COUNT_LIMIT');
  assert.equal(nameOfHresult(0x80070102), 'WAIT_TIMEOUT');
  assert.equal(nameOfHresult(0), 'S_OK');
  assert.equal(nameOfHresult(0x80004005), 'E_FAIL');
  assert.equal(nameOfHresult(0xd0000037), 'STATUS_PORT_DISCONNECTED'); // HRESULT_FROM_NT
  assert.equal(nameOfHresult(0x8007ffff), undefined);
  assert.equal(nameOfHresult(0x801f00ff), undefined);
  assert.equal(nameOfHresult(0x12345678), undefined);
});

test('nameOfNtStatus, nameOfWin32, ntSuccess, hex32', () => {
  assert.equal(nameOfNtStatus(0xc0000037), 'STATUS_PORT_DISCONNECTED');
  assert.equal(nameOfNtStatus(-1073741769), 'STATUS_PORT_DISCONNECTED');
  assert.equal(nameOfNtStatus(0x102), 'STATUS_TIMEOUT');
  assert.equal(nameOfNtStatus(0xc0ffee00), undefined);
  assert.equal(nameOfWin32(2), 'ERROR_FILE_NOT_FOUND');
  assert.equal(nameOfWin32(258), 'WAIT_TIMEOUT');
  assert.equal(nameOfWin32(99999), undefined);
  assert.equal(ntSuccess(NtStatus.STATUS_TIMEOUT), true);
  assert.equal(ntSuccess(NtStatus.STATUS_BUFFER_OVERFLOW), false);
  assert.equal(ntSuccess(-1073741769), false);
  assert.equal(hex32(-2147024894), '0x80070002');
  assert.equal(hex32(0x102), '0x00000102');
});

test('non-32-bit input is refused', () => {
  for (const bad of [1.5, Number.NaN, 2 ** 32, -(2 ** 31) - 1, Infinity, '2' as unknown as number]) {
    assert.throws(() => hresultFromWin32(bad), RangeError);
    assert.throws(() => nameOfHresult(bad), RangeError);
    assert.throws(() => hresultFromNtStatus(bad), RangeError);
  }
});
