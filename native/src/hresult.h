// Small helpers to turn Win32 errors and completion statuses into HRESULTs. Symbolic names and messages
// live in TypeScript (lib/status.ts, lib/errors.ts): native code reports numbers only.
#pragma once
#include "fltapi.h"

namespace fltmgr {

// The HRESULT for the calling thread's last Win32 error (E_FAIL-like fallback if it is 0).
HRESULT LastErrorHresult();

// The result of a dequeued overlapped operation, as an HRESULT, via GetOverlappedResult (which maps the
// NTSTATUS in OVERLAPPED.Internal the way Windows does). Fills *bytes.
HRESULT OverlappedResult(HANDLE handle, OVERLAPPED* overlapped, DWORD* bytes);

}  // namespace fltmgr
