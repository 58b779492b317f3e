// The simulator-backed fltlib for Windows (and Wine): the four communication calls over the simulator wire
// protocol (docs/wire-protocol.md), with port handles that are REAL overlapped handles, so the caller's
// CreateIoCompletionPort / GetQueuedCompletionStatusEx / GetOverlappedResult / CancelIoEx work unchanged.
//
// A port handle is the client end of a private message-mode named pipe; a relay thread owns the server end
// and the stream to the simulator. Design, semantics and limits: docs/windows.md.
//
// Signatures match fltlib's (and the FilterApi table in native/src/fltapi.h). The same code is the
// standalone substitute fltlib.dll (native/fltlib-dll/fltlib_dll.cc), where the endpoint comes from FLTMGR_SIMULATOR.
#pragma once

#include "../compat/win32.h"
#include "../sim/fltsim_manage.h"  // the management calls (FltSimFilterFindFirst, ...)

// endpoint: `pipe:\\.\pipe\NAME#SECRET` or `tcp:127.0.0.1:PORT#SECRET`; nullptr or "" = the FLTMGR_SIMULATOR
// environment variable (read with GetEnvironmentVariableA at call time). No endpoint: 0x80070002, as when
// the minifilter is not loaded. On failure *hPort = INVALID_HANDLE_VALUE.
// The same name and signature as the POSIX client's (native/compat/win32_compat.h).
HRESULT FltSimConnectCommunicationPort(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                       WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort);
HRESULT FltSimGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped);
HRESULT FltSimReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize);
HRESULT FltSimSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned);
// Closes the handle, stops the relay (joins its thread) and ends the simulator connection. A plain
// CloseHandle also ends the connection (the relay notices and stops by itself): that is what programs using
// the substitute fltlib.dll do.
BOOL FltSimClose(HANDLE hPort);
// Ends the connection now, without closing the handle: callers waiting in FltSimSendMessage /
// FltSimReplyMessage / a synchronous get return HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED), pending
// overlapped gets complete, later calls fail with E_HANDLE. For a simulator that stopped answering.
HRESULT FltSimAbortPort(HANDLE hPort);

namespace fltmgr {
namespace winsim {
// Internal: how a connection is closed. kExplicit: the owner calls FltSimClose (the addon), which joins the
// relay. kByHandle: the owner just calls CloseHandle (programs linked against the substitute fltlib.dll).
enum class CloseMode { kExplicit, kByHandle };
HRESULT Connect(const char* endpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                LPSECURITY_ATTRIBUTES sa, CloseMode mode, HANDLE* hPort);
}  // namespace winsim
}  // namespace fltmgr
