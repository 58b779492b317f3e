// The simulator-backed fltlib management calls for Windows and Wine (declarations: native/sim/fltsim_manage.h).
// Step 1 of issue 8: declarations only; the bodies come with native/sim/manage.{h,cc}.
#include "sim_fltlib.h"

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
