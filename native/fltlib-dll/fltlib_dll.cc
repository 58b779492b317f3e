// The substitute fltlib.dll: fltlib's exports, served by the simulator (sim_fltlib.cc) instead of Filter
// Manager. An unmodified program linked against fltlib (C, C++, Rust, .NET P/Invoke) runs against the
// simulator named by FLTMGR_SIMULATOR (read with GetEnvironmentVariableA at each connect). See
// docs/windows.md. Development and test use only: it must never ship inside prebuilds/.
//
// The communication calls are complete. The management calls (FilterLoad, FilterFindFirst, ...) are not part
// of the simulator wire protocol: they exist so that programs importing them load, and fail with
// HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED).
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

// --- management: not simulated -----------------------------------------------------------------------------

HRESULT WINAPI FilterLoad(LPCWSTR) { return kNotSupported; }
HRESULT WINAPI FilterUnload(LPCWSTR) { return kNotSupported; }
HRESULT WINAPI FilterCreate(LPCWSTR, HFILTER* hFilter) {
  if (hFilter != nullptr) *hFilter = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterClose(HFILTER) { return kNotSupported; }
HRESULT WINAPI FilterGetInformation(HFILTER, FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) { return kNotSupported; }
HRESULT WINAPI FilterFindFirst(FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD, LPHANDLE lpFilterFind) {
  if (lpFilterFind != nullptr) *lpFilterFind = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterFindNext(HANDLE, FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) { return kNotSupported; }
HRESULT WINAPI FilterFindClose(HANDLE) { return kNotSupported; }
HRESULT WINAPI FilterAttach(LPCWSTR, LPCWSTR, LPCWSTR, DWORD, LPWSTR) { return kNotSupported; }
HRESULT WINAPI FilterAttachAtAltitude(LPCWSTR, LPCWSTR, LPCWSTR, LPCWSTR, DWORD, LPWSTR) { return kNotSupported; }
HRESULT WINAPI FilterDetach(LPCWSTR, LPCWSTR, LPCWSTR) { return kNotSupported; }
HRESULT WINAPI FilterGetDosName(LPCWSTR, LPWSTR, DWORD) { return kNotSupported; }
HRESULT WINAPI FilterInstanceCreate(LPCWSTR, LPCWSTR, LPCWSTR, HFILTER_INSTANCE* hInstance) {
  if (hInstance != nullptr) *hInstance = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterInstanceClose(HFILTER_INSTANCE) { return kNotSupported; }
HRESULT WINAPI FilterInstanceGetInformation(HFILTER_INSTANCE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return kNotSupported;
}
HRESULT WINAPI FilterInstanceFindFirst(LPCWSTR, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD,
                                       LPHANDLE lpFilterInstanceFind) {
  if (lpFilterInstanceFind != nullptr) *lpFilterInstanceFind = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterInstanceFindNext(HANDLE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return kNotSupported;
}
HRESULT WINAPI FilterInstanceFindClose(HANDLE) { return kNotSupported; }
HRESULT WINAPI FilterVolumeFindFirst(FILTER_VOLUME_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD, PHANDLE lpVolumeFind) {
  if (lpVolumeFind != nullptr) *lpVolumeFind = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterVolumeFindNext(HANDLE, FILTER_VOLUME_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return kNotSupported;
}
HRESULT WINAPI FilterVolumeFindClose(HANDLE) { return kNotSupported; }
// Exported by fltlib (mingw's import library lists it) but declared by no header.
HRESULT WINAPI FilterVolumeClose(HANDLE);
HRESULT WINAPI FilterVolumeClose(HANDLE) { return kNotSupported; }
HRESULT WINAPI FilterVolumeInstanceFindFirst(LPCWSTR, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD,
                                             LPHANDLE lpVolumeInstanceFind) {
  if (lpVolumeInstanceFind != nullptr) *lpVolumeInstanceFind = INVALID_HANDLE_VALUE;
  return kNotSupported;
}
HRESULT WINAPI FilterVolumeInstanceFindNext(HANDLE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return kNotSupported;
}
HRESULT WINAPI FilterVolumeInstanceFindClose(HANDLE) { return kNotSupported; }

}  // extern "C"
