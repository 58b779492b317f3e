// The fltlib management calls served by the Filter Manager simulator (docs/wire-protocol.md, "Management
// requests"), under the names both simulator clients export: native/compat (POSIX) and native/win/sim_fltlib
// (Windows, Wine). The real fltlib names on POSIX are in native/compat/win32_compat.h; the substitute
// fltlib.dll exports them on Windows.
//
// Calls that reach the simulator take its endpoint first (nullptr or "" = the FLTMGR_SIMULATOR environment
// variable; none: HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND), as when no driver is there), then fltlib's
// arguments. Each such call is one request on its own stream, bounded by FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS.
// The Next/Close calls work on a find handle alone: their signatures are fltlib's.
//
// Find semantics (the simulator's choice, see docs/wire-protocol.md): FindFirst takes a snapshot; each
// First/Next returns ONE record (NextEntryOffset 0). Buffer too small: 0x8007007A with *lpBytesReturned = the
// size needed (FindFirst then returns no handle; FindNext does not advance). End: 0x80070103 (FindFirst on an
// empty list too, with no handle). A handle that is not a find handle of the call's kind: E_HANDLE (a closed
// handle must not be used again, as on Windows: the POSIX client cannot tell it from a live one).
#pragma once

#include "../compat/win32.h"

HRESULT FltSimFilterLoad(const char* endpoint, LPCWSTR lpFilterName);
HRESULT FltSimFilterUnload(const char* endpoint, LPCWSTR lpFilterName);

HRESULT FltSimFilterFindFirst(const char* endpoint, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                              DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterFind);
HRESULT FltSimFilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                             DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FltSimFilterFindClose(HANDLE hFilterFind);

HRESULT FltSimFilterInstanceFindFirst(const char* endpoint, LPCWSTR lpFilterName,
                                      INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                      DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterInstanceFind);
HRESULT FltSimFilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                     LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FltSimFilterInstanceFindClose(HANDLE hFilterInstanceFind);

HRESULT FltSimFilterVolumeFindFirst(const char* endpoint, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass,
                                    LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned, PHANDLE lpVolumeFind);
HRESULT FltSimFilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass,
                                   LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FltSimFilterVolumeFindClose(HANDLE hVolumeFind);

HRESULT FltSimFilterVolumeInstanceFindFirst(const char* endpoint, LPCWSTR lpVolumeName,
                                            INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                            DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpVolumeInstanceFind);
HRESULT FltSimFilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                           LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FltSimFilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind);

// dwCreatedInstanceNameLength is in BYTES (fltlib's convention); the name is NUL-terminated when it fits.
HRESULT FltSimFilterAttach(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                           DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName);
HRESULT FltSimFilterAttachAtAltitude(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName,
                                     LPCWSTR lpAltitude, LPCWSTR lpInstanceName, DWORD dwCreatedInstanceNameLength,
                                     LPWSTR lpCreatedInstanceName);
HRESULT FltSimFilterDetach(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName);
// dwDosNameBufferSize is in WCHARs, the terminating NUL included.
HRESULT FltSimFilterGetDosName(const char* endpoint, LPCWSTR lpVolumeName, LPWSTR lpDosName, DWORD dwDosNameBufferSize);

// The simulator's communication ports (the PORTS request; no fltlib equivalent). Each record written to
// lpBuffer is an FLTSIM_PORT_INFORMATION; same find semantics as above.
typedef struct _FLTSIM_PORT_INFORMATION {
  ULONG NextEntryOffset;
  ULONG MaxConnections;
  ULONG Connections;
  USHORT PortNameLength;  // bytes; offsets from the start of the record, like fltlib's records
  USHORT PortNameBufferOffset;
  USHORT FilterNameLength;
  USHORT FilterNameBufferOffset;
} FLTSIM_PORT_INFORMATION, *PFLTSIM_PORT_INFORMATION;
HRESULT FltSimPortFindFirst(const char* endpoint, LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                            LPHANDLE lpPortFind);
HRESULT FltSimPortFindNext(HANDLE hPortFind, LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FltSimPortFindClose(HANDLE hPortFind);
