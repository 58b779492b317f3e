// fltlib management calls for non-Windows hosts (declarations: win32_compat.h and native/sim/fltsim_manage.h).
// Step 1 of issue 8: declarations only; the bodies come with native/sim/manage.{h,cc}.
#include <cstdlib>

#include "win32.h"

HRESULT FltSimFilterLoad(const char*, LPCWSTR) { return E_NOTIMPL; }
HRESULT FltSimFilterUnload(const char*, LPCWSTR) { return E_NOTIMPL; }
HRESULT FltSimFilterFindFirst(const char*, FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD, LPHANDLE) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterFindNext(HANDLE, FILTER_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) { return E_NOTIMPL; }
HRESULT FltSimFilterFindClose(HANDLE) { return E_NOTIMPL; }
HRESULT FltSimFilterInstanceFindFirst(const char*, LPCWSTR, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD,
                                      LPHANDLE) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterInstanceFindNext(HANDLE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) { return E_NOTIMPL; }
HRESULT FltSimFilterInstanceFindClose(HANDLE) { return E_NOTIMPL; }
HRESULT FltSimFilterVolumeFindFirst(const char*, FILTER_VOLUME_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD, PHANDLE) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterVolumeFindNext(HANDLE, FILTER_VOLUME_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterVolumeFindClose(HANDLE) { return E_NOTIMPL; }
HRESULT FltSimFilterVolumeInstanceFindFirst(const char*, LPCWSTR, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD,
                                            LPHANDLE) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterVolumeInstanceFindNext(HANDLE, INSTANCE_INFORMATION_CLASS, LPVOID, DWORD, LPDWORD) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterVolumeInstanceFindClose(HANDLE) { return E_NOTIMPL; }
HRESULT FltSimFilterAttach(const char*, LPCWSTR, LPCWSTR, LPCWSTR, DWORD, LPWSTR) { return E_NOTIMPL; }
HRESULT FltSimFilterAttachAtAltitude(const char*, LPCWSTR, LPCWSTR, LPCWSTR, LPCWSTR, DWORD, LPWSTR) {
  return E_NOTIMPL;
}
HRESULT FltSimFilterDetach(const char*, LPCWSTR, LPCWSTR, LPCWSTR) { return E_NOTIMPL; }
HRESULT FltSimFilterGetDosName(const char*, LPCWSTR, LPWSTR, DWORD) { return E_NOTIMPL; }
HRESULT FltSimPortFindFirst(const char*, LPVOID, DWORD, LPDWORD, LPHANDLE) { return E_NOTIMPL; }
HRESULT FltSimPortFindNext(HANDLE, LPVOID, DWORD, LPDWORD) { return E_NOTIMPL; }
HRESULT FltSimPortFindClose(HANDLE) { return E_NOTIMPL; }

// --- fltlib's names: the FLTMGR_SIMULATOR endpoint ---------------------------------------------------------

HRESULT FilterLoad(LPCWSTR lpFilterName) { return FltSimFilterLoad(nullptr, lpFilterName); }
HRESULT FilterUnload(LPCWSTR lpFilterName) { return FltSimFilterUnload(nullptr, lpFilterName); }
HRESULT FilterFindFirst(FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                        LPDWORD lpBytesReturned, LPHANDLE lpFilterFind) {
  return FltSimFilterFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned, lpFilterFind);
}
HRESULT FilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                       DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterFindNext(hFilterFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterFindClose(HANDLE hFilterFind) { return FltSimFilterFindClose(hFilterFind); }
HRESULT FilterInstanceFindFirst(LPCWSTR lpFilterName, INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterInstanceFind) {
  return FltSimFilterInstanceFindFirst(nullptr, lpFilterName, dwInformationClass, lpBuffer, dwBufferSize,
                                       lpBytesReturned, lpFilterInstanceFind);
}
HRESULT FilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                               LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterInstanceFindNext(hFilterInstanceFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterInstanceFindClose(HANDLE hFilterInstanceFind) {
  return FltSimFilterInstanceFindClose(hFilterInstanceFind);
}
HRESULT FilterVolumeFindFirst(FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                              LPDWORD lpBytesReturned, PHANDLE lpVolumeFind) {
  return FltSimFilterVolumeFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned,
                                     lpVolumeFind);
}
HRESULT FilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                             DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeFindNext(hVolumeFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterVolumeFindClose(HANDLE hVolumeFind) { return FltSimFilterVolumeFindClose(hVolumeFind); }
HRESULT FilterVolumeInstanceFindFirst(LPCWSTR lpVolumeName, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                      LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                      LPHANDLE lpVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindFirst(nullptr, lpVolumeName, dwInformationClass, lpBuffer, dwBufferSize,
                                             lpBytesReturned, lpVolumeInstanceFind);
}
HRESULT FilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                     LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeInstanceFindNext(hVolumeInstanceFind, dwInformationClass, lpBuffer, dwBufferSize,
                                            lpBytesReturned);
}
HRESULT FilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindClose(hVolumeInstanceFind);
}
HRESULT FilterAttach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                     DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttach(nullptr, lpFilterName, lpVolumeName, lpInstanceName, dwCreatedInstanceNameLength,
                            lpCreatedInstanceName);
}
HRESULT FilterAttachAtAltitude(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpAltitude, LPCWSTR lpInstanceName,
                               DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttachAtAltitude(nullptr, lpFilterName, lpVolumeName, lpAltitude, lpInstanceName,
                                      dwCreatedInstanceNameLength, lpCreatedInstanceName);
}
HRESULT FilterDetach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName) {
  return FltSimFilterDetach(nullptr, lpFilterName, lpVolumeName, lpInstanceName);
}
HRESULT FilterGetDosName(LPCWSTR lpVolumeName, LPWSTR lpDosName, DWORD dwDosNameBufferSize) {
  return FltSimFilterGetDosName(nullptr, lpVolumeName, lpDosName, dwDosNameBufferSize);
}
