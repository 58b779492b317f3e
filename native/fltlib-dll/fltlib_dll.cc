// The substitute fltlib.dll: fltlib's exports, served by the simulator (sim_fltlib.cc) instead of Filter
// Manager. An unmodified program linked against fltlib (C, C++, Rust, .NET P/Invoke) runs against the
// simulator named by FLTMGR_SIMULATOR (read with GetEnvironmentVariableA at each connect). See
// docs/windows.md. Development and test use only: it must never ship inside prebuilds/.
//
// The communication calls and the management calls (FilterLoad, FilterFindFirst, FilterAttach, ...: the
// simulator's MANAGE requests, native/sim/manage.h) are complete. FilterCreate, FilterInstanceCreate and the
// Get/Close calls on their handles have no simulator request: they exist so that programs importing them load,
// and fail with HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED).
#include "../win/sim_fltlib.h"

namespace {
const HRESULT kNotSupported = HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED);
}  // namespace

extern "C" {

HRESULT WINAPI FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                              WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                              HANDLE* hPort) {
  // Programs close the handle with CloseHandle: the relay notices and ends the connection by itself.
  return fltmgr::winsim::Connect(nullptr, lpPortName, dwOptions, lpContext, wSizeOfContext, lpSecurityAttributes,
                                 fltmgr::winsim::CloseMode::kByHandle, hPort);
}

HRESULT WINAPI FilterGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                                LPOVERLAPPED lpOverlapped) {
  return FltSimGetMessage(hPort, lpMessageBuffer, dwMessageBufferSize, lpOverlapped);
}

HRESULT WINAPI FilterReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize) {
  return FltSimReplyMessage(hPort, lpReplyBuffer, dwReplyBufferSize);
}

HRESULT WINAPI FilterSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                                 DWORD dwOutBufferSize, LPDWORD lpBytesReturned) {
  return FltSimSendMessage(hPort, lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
}

// --- management: the simulator's MANAGE requests (endpoint: FLTMGR_SIMULATOR) ---------------------------------

HRESULT WINAPI FilterLoad(LPCWSTR lpFilterName) { return FltSimFilterLoad(nullptr, lpFilterName); }
HRESULT WINAPI FilterUnload(LPCWSTR lpFilterName) { return FltSimFilterUnload(nullptr, lpFilterName); }
HRESULT WINAPI FilterFindFirst(FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                               LPDWORD lpBytesReturned, LPHANDLE lpFilterFind) {
  return FltSimFilterFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned, lpFilterFind);
}
HRESULT WINAPI FilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                              DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterFindNext(hFilterFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT WINAPI FilterFindClose(HANDLE hFilterFind) { return FltSimFilterFindClose(hFilterFind); }
HRESULT WINAPI FilterInstanceFindFirst(LPCWSTR lpFilterName, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                       LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                       LPHANDLE lpFilterInstanceFind) {
  return FltSimFilterInstanceFindFirst(nullptr, lpFilterName, dwInformationClass, lpBuffer, dwBufferSize,
                                       lpBytesReturned, lpFilterInstanceFind);
}
HRESULT WINAPI FilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                      LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterInstanceFindNext(hFilterInstanceFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT WINAPI FilterInstanceFindClose(HANDLE hFilterInstanceFind) {
  return FltSimFilterInstanceFindClose(hFilterInstanceFind);
}
HRESULT WINAPI FilterVolumeFindFirst(FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                     DWORD dwBufferSize, LPDWORD lpBytesReturned, PHANDLE lpVolumeFind) {
  return FltSimFilterVolumeFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned,
                                     lpVolumeFind);
}
HRESULT WINAPI FilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass,
                                    LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeFindNext(hVolumeFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT WINAPI FilterVolumeFindClose(HANDLE hVolumeFind) { return FltSimFilterVolumeFindClose(hVolumeFind); }
HRESULT WINAPI FilterVolumeInstanceFindFirst(LPCWSTR lpVolumeName, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                             LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                             LPHANDLE lpVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindFirst(nullptr, lpVolumeName, dwInformationClass, lpBuffer, dwBufferSize,
                                             lpBytesReturned, lpVolumeInstanceFind);
}
HRESULT WINAPI FilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                            LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeInstanceFindNext(hVolumeInstanceFind, dwInformationClass, lpBuffer, dwBufferSize,
                                            lpBytesReturned);
}
HRESULT WINAPI FilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindClose(hVolumeInstanceFind);
}
HRESULT WINAPI FilterAttach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                            DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttach(nullptr, lpFilterName, lpVolumeName, lpInstanceName, dwCreatedInstanceNameLength,
                            lpCreatedInstanceName);
}
HRESULT WINAPI FilterAttachAtAltitude(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpAltitude,
                                      LPCWSTR lpInstanceName, DWORD dwCreatedInstanceNameLength,
                                      LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttachAtAltitude(nullptr, lpFilterName, lpVolumeName, lpAltitude, lpInstanceName,
                                      dwCreatedInstanceNameLength, lpCreatedInstanceName);
}
HRESULT WINAPI FilterDetach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName) {
  return FltSimFilterDetach(nullptr, lpFilterName, lpVolumeName, lpInstanceName);
}
HRESULT WINAPI FilterGetDosName(LPCWSTR lpVolumeName, LPWSTR lpDosName, DWORD dwDosNameBufferSize) {
  return FltSimFilterGetDosName(nullptr, lpVolumeName, lpDosName, dwDosNameBufferSize);
}

// --- no simulator request ------------------------------------------------------------------------------------

HRESULT WINAPI FilterCreate(LPCWSTR, HFILTER* hFilter) {
  if (hFilter != nullptr) *hFilter = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterClose(HFILTER) { return kNotSupported; }
HRESULT WINAPI FilterGetInformation(HFILTER, FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) { return kNotSupported; }
HRESULT WINAPI FilterInstanceCreate(LPCWSTR, LPCWSTR, LPCWSTR, HFILTER_INSTANCE* hInstance) {
  if (hInstance != nullptr) *hInstance = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterInstanceClose(HFILTER_INSTANCE) { return kNotSupported; }
HRESULT WINAPI FilterInstanceGetInformation(HFILTER_INSTANCE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return kNotSupported;
}
// Exported by fltlib (mingw's import library lists it) but declared by no header.
HRESULT WINAPI FilterVolumeClose(HANDLE);
HRESULT WINAPI FilterVolumeClose(HANDLE) { return kNotSupported; }

}  // extern "C"
