#include "hresult.h"

namespace fltmgr {

HRESULT LastErrorHresult() {
  const DWORD error = GetLastError();
  // ERROR_GEN_FAILURE (31) when a call failed without setting an error: never report success for a failure.
  return HresultFromWin32(error == 0 ? 31u : error);
}

HRESULT OverlappedResult(HANDLE handle, OVERLAPPED* overlapped, DWORD* bytes) {
  *bytes = 0;
  if (GetOverlappedResult(handle, overlapped, bytes, FALSE)) return S_OK;
  return LastErrorHresult();
}

}  // namespace fltmgr
