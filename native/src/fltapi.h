// The OS seam. The core is written against the real Win32 + fltlib names; where they come from is
// native/compat/win32.h's choice (<windows.h>/<fltuser.h> on Windows, native/compat elsewhere).
//
// Field names are lower-case because <windows.h> defines GetMessage/SendMessage as macros.
// A port talks either to real Filter Manager (Windows only) or to the simulator, so the four fltlib calls
// are reached through a FilterApi table chosen at connect time. The tables are constant data.
#pragma once

#include "../compat/win32.h"

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
const FilterApi* FltlibFilterApi();
// The simulator-backed implementation (compat layer on POSIX; named-pipe relay on Windows).
const FilterApi* SimulatorFilterApi();

}  // namespace fltmgr
