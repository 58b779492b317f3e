// The Win32 + fltuser names every native file is written against, from wherever this host has them:
// <windows.h>/<fltuser.h> on Windows, the POSIX subset (win32_compat.h) elsewhere. Include this, not either
// of those, so that each fallback below is written once.
#pragma once

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <fltuser.h>
#ifndef FLT_PORT_FLAG_SYNC_HANDLE
#define FLT_PORT_FLAG_SYNC_HANDLE 0x00000001  // Windows 8.1+; older SDK and mingw headers lack it
#endif
#define ERROR_FLT_NO_WAITER_FOR_REPLY_HR static_cast<HRESULT>(0x801F0020)
#else
#include "win32_compat.h"
#endif

#include <cstdint>

namespace fltmgr {

// HRESULT_FROM_WIN32 as a constant expression (the SDK's is an inline function on some configurations).
constexpr HRESULT HresultFromWin32(uint32_t error) {
  return error == 0 ? 0 : static_cast<HRESULT>((error & 0x0000FFFFu) | 0x80070000u);
}

// RtlNtStatusToDosError for the statuses a port's operations end with (numbers: the NTSTATUS bit patterns,
// which <windows.h> does not name).
constexpr uint32_t Win32FromNtStatus(uint32_t status) {
  switch (status) {
    case 0x00000000u:  // STATUS_SUCCESS
      return 0;
    case 0x00000103u:  // STATUS_PENDING
      return 997;      // ERROR_IO_PENDING
    case 0xC0000120u:  // STATUS_CANCELLED
      return 995;      // ERROR_OPERATION_ABORTED
    case 0xC0000023u:  // STATUS_BUFFER_TOO_SMALL
      return 122;      // ERROR_INSUFFICIENT_BUFFER
    case 0x80000005u:  // STATUS_BUFFER_OVERFLOW
      return 234;      // ERROR_MORE_DATA
    case 0xC0000037u:  // STATUS_PORT_DISCONNECTED
    case 0xC0000008u:  // STATUS_INVALID_HANDLE
      return 6;        // ERROR_INVALID_HANDLE
    case 0xC000014Bu:  // STATUS_PIPE_BROKEN
      return 109;      // ERROR_BROKEN_PIPE
    default:
      return 317;  // ERROR_MR_MID_NOT_FOUND: what RtlNtStatusToDosError gives for a status it does not map
  }
}

}  // namespace fltmgr
