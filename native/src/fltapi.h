// The OS seam. The core is written against the real Win32 + fltlib names; this header picks where they
// come from: <windows.h>/<fltuser.h> on Windows, native/compat on other hosts.
//
// Field names are lower-case because <windows.h> defines GetMessage/SendMessage as macros.
// A port talks either to real Filter Manager (Windows only) or to the simulator, so the four fltlib calls
// are reached through a FilterApi table chosen at connect time. The tables are constant data.
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
#include "../compat/win32_compat.h"
#endif

namespace fltmgr {

struct FilterApi {
  // simulatorEndpoint: the endpoint string (docs/wire-protocol.md); nullptr = the default (environment).
  HRESULT (*connect)(const char* simulatorEndpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                     WORD wSizeOfContext, HANDLE* hPort);
  HRESULT (*getMessage)(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                        LPOVERLAPPED lpOverlapped);
  HRESULT (*replyMessage)(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize);
  HRESULT (*sendMessage)(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                         DWORD dwOutBufferSize, LPDWORD lpBytesReturned);
  BOOL (*closeHandle)(HANDLE hPort);
  // Cancels every pending operation on the handle, whichever thread started it, without closing it: what
  // close and environment teardown use so that no thread waits on a peer that stopped answering. Real
  // fltlib: CancelIoEx(h, NULL) (a MessageNotify that ignores cancellation still runs to its end). The
  // simulator: every waiter fails at once with ERROR_OPERATION_ABORTED and the connection ends.
  HRESULT (*abort)(HANDLE hPort);
};

// Real fltlib. On hosts without it, nullptr.
const FilterApi* SystemFilterApi();
// The simulator-backed implementation (compat layer on POSIX; named-pipe relay on Windows).
const FilterApi* SimulatorFilterApi();

}  // namespace fltmgr
