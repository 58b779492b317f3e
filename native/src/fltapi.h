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

// The management calls (native/src/manage.cc), chosen per call like FilterApi: fltlib's signatures, with the
// simulator endpoint first on every call that does not take a find handle (nullptr = the default, FLTMGR_SIMULATOR;
// real fltlib ignores it). Find handles are closed with the matching findClose on every path.
struct ManagementApi {
  HRESULT (*load)(const char* simulatorEndpoint, LPCWSTR filterName);
  HRESULT (*unload)(const char* simulatorEndpoint, LPCWSTR filterName);
  HRESULT (*filterFindFirst)(const char* simulatorEndpoint, FILTER_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                             LPDWORD returned, LPHANDLE find);
  HRESULT (*filterFindNext)(HANDLE find, FILTER_INFORMATION_CLASS cls, LPVOID buffer, DWORD size, LPDWORD returned);
  HRESULT (*filterFindClose)(HANDLE find);
  HRESULT (*instanceFindFirst)(const char* simulatorEndpoint, LPCWSTR filterName, INSTANCE_INFORMATION_CLASS cls,
                               LPVOID buffer, DWORD size, LPDWORD returned, LPHANDLE find);
  HRESULT (*instanceFindNext)(HANDLE find, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer, DWORD size, LPDWORD returned);
  HRESULT (*instanceFindClose)(HANDLE find);
  HRESULT (*volumeFindFirst)(const char* simulatorEndpoint, FILTER_VOLUME_INFORMATION_CLASS cls, LPVOID buffer,
                             DWORD size, LPDWORD returned, PHANDLE find);
  HRESULT (*volumeFindNext)(HANDLE find, FILTER_VOLUME_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                            LPDWORD returned);
  HRESULT (*volumeFindClose)(HANDLE find);
  HRESULT (*volumeInstanceFindFirst)(const char* simulatorEndpoint, LPCWSTR volumeName, INSTANCE_INFORMATION_CLASS cls,
                                     LPVOID buffer, DWORD size, LPDWORD returned, LPHANDLE find);
  HRESULT (*volumeInstanceFindNext)(HANDLE find, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                                    LPDWORD returned);
  HRESULT (*volumeInstanceFindClose)(HANDLE find);
  // createdSize in bytes (fltlib's convention).
  HRESULT (*attach)(const char* simulatorEndpoint, LPCWSTR filterName, LPCWSTR volumeName, LPCWSTR instanceName,
                    DWORD createdSize, LPWSTR created);
  HRESULT (*attachAtAltitude)(const char* simulatorEndpoint, LPCWSTR filterName, LPCWSTR volumeName, LPCWSTR altitude,
                              LPCWSTR instanceName, DWORD createdSize, LPWSTR created);
  HRESULT (*detach)(const char* simulatorEndpoint, LPCWSTR filterName, LPCWSTR volumeName, LPCWSTR instanceName);
  // dosNameSize in WCHARs.
  HRESULT (*getDosName)(const char* simulatorEndpoint, LPCWSTR volumeName, LPWSTR dosName, DWORD dosNameSize);
  // The simulator's communication ports (no Windows API lists them): nullptr for real fltlib.
  HRESULT (*portFindFirst)(const char* simulatorEndpoint, LPVOID buffer, DWORD size, LPDWORD returned, LPHANDLE find);
  HRESULT (*portFindNext)(HANDLE find, LPVOID buffer, DWORD size, LPDWORD returned);
  HRESULT (*portFindClose)(HANDLE find);
};

// Real fltlib's management calls. On hosts without it, nullptr.
const ManagementApi* FltlibManagementApi();
// The simulator's (native/sim/fltsim_manage.h).
const ManagementApi* SimulatorManagementApi();

}  // namespace fltmgr
