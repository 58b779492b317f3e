// kernel32 subset for non-Windows hosts: last error, I/O completion ports, CancelIoEx,
// GetOverlappedResult, CloseHandle. See win32_compat.h for the contract.
#include <chrono>
#include <new>

#include "handle.h"
#include "win32_compat.h"

namespace fltmgr {
namespace compat {
namespace {
thread_local DWORD tlsLastError = ERROR_SUCCESS;

BOOL Fail(DWORD error) {
  tlsLastError = error;
  return FALSE;
}
}  // namespace

bool Iocp::Post(const OVERLAPPED_ENTRY& entry) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    queue_.push_back(entry);
    wake = waiters_ != 0;
  }
  // After unlocking, so the woken thread does not block on the mutex at once. Safe: every poster holds
  // a reference, and a waiter that registered after the check above sees the entry before sleeping.
  if (wake) cv_.notify_one();
  return true;
}

DWORD Iocp::Dequeue(OVERLAPPED_ENTRY* entries, ULONG count, ULONG* removed, DWORD milliseconds) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!closed_ && queue_.empty() && milliseconds != 0) {
    ++waiters_;
    if (milliseconds == INFINITE) {
      cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
    } else {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(milliseconds);
      cv_.wait_until(lock, deadline, [this] { return closed_ || !queue_.empty(); });
    }
    --waiters_;
  }
  if (closed_) return ERROR_ABANDONED_WAIT_0;
  if (queue_.empty()) return WAIT_TIMEOUT;
  ULONG n = 0;
  while (n < count && !queue_.empty()) {
    entries[n++] = queue_.front();
    queue_.pop_front();
  }
  *removed = n;
  // More entries and more waiters: let the next one take them now rather than on the next post.
  if (!queue_.empty() && waiters_ != 0) cv_.notify_one();
  return ERROR_SUCCESS;
}

void Iocp::OnClose() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  queue_.clear();
  cv_.notify_all();
}

}  // namespace compat
}  // namespace fltmgr

using fltmgr::compat::Fail;
using fltmgr::compat::Iocp;
using fltmgr::compat::IoObject;
using fltmgr::compat::Object;
using fltmgr::compat::Ref;
using fltmgr::compat::RefFromHandle;

DWORD GetLastError() { return fltmgr::compat::tlsLastError; }
void SetLastError(DWORD error) { fltmgr::compat::tlsLastError = error; }

HANDLE CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort, ULONG_PTR CompletionKey,
                              DWORD NumberOfConcurrentThreads) {
  (void)NumberOfConcurrentThreads;  // no concurrency limit: every waiter may run
  if (FileHandle == INVALID_HANDLE_VALUE) {
    if (ExistingCompletionPort != nullptr) {
      Fail(ERROR_INVALID_PARAMETER);
      return nullptr;
    }
    Iocp* iocp = new (std::nothrow) Iocp();
    if (iocp == nullptr) {
      Fail(ERROR_NOT_ENOUGH_MEMORY);
      return nullptr;
    }
    return static_cast<Object*>(iocp);
  }
  Ref<IoObject> io = RefFromHandle<IoObject>(FileHandle);
  if (!io) {
    Fail(ERROR_INVALID_HANDLE);
    return nullptr;
  }
  // NULL ExistingCompletionPort: create one and associate in the same call, as Windows does.
  Ref<Iocp> iocp;
  bool created = false;
  if (ExistingCompletionPort == nullptr) {
    Iocp* fresh = new (std::nothrow) Iocp();
    if (fresh == nullptr) {
      Fail(ERROR_NOT_ENOUGH_MEMORY);
      return nullptr;
    }
    iocp = Ref<Iocp>(fresh);
    fresh->Release();  // the Ref now holds the handle reference
    created = true;
  } else {
    iocp = RefFromHandle<Iocp>(ExistingCompletionPort);
    if (!iocp) {
      Fail(ERROR_INVALID_PARAMETER);
      return nullptr;
    }
  }
  const DWORD error = io->AssociateCompletionPort(iocp.get(), CompletionKey);
  if (error != ERROR_SUCCESS) {
    Fail(error);
    return nullptr;
  }
  if (created) iocp->AddRef();  // the caller's handle reference
  return static_cast<Object*>(iocp.get());
}

BOOL GetQueuedCompletionStatusEx(HANDLE CompletionPort, LPOVERLAPPED_ENTRY lpCompletionPortEntries, ULONG ulCount,
                                 ULONG* ulNumEntriesRemoved, DWORD dwMilliseconds, BOOL fAlertable) {
  (void)fAlertable;  // no APCs on this host
  Ref<Iocp> iocp = RefFromHandle<Iocp>(CompletionPort);
  if (!iocp) return Fail(ERROR_INVALID_HANDLE);
  if (lpCompletionPortEntries == nullptr || ulCount == 0 || ulNumEntriesRemoved == nullptr) {
    return Fail(ERROR_INVALID_PARAMETER);
  }
  *ulNumEntriesRemoved = 0;
  const DWORD error = iocp->Dequeue(lpCompletionPortEntries, ulCount, ulNumEntriesRemoved, dwMilliseconds);
  if (error != ERROR_SUCCESS) return Fail(error);
  return TRUE;
}

BOOL PostQueuedCompletionStatus(HANDLE CompletionPort, DWORD dwNumberOfBytesTransferred, ULONG_PTR dwCompletionKey,
                                LPOVERLAPPED lpOverlapped) {
  Ref<Iocp> iocp = RefFromHandle<Iocp>(CompletionPort);
  if (!iocp) return Fail(ERROR_INVALID_HANDLE);
  OVERLAPPED_ENTRY entry;
  entry.lpCompletionKey = dwCompletionKey;
  entry.lpOverlapped = lpOverlapped;
  entry.Internal = 0;  // NtSetIoCompletion with STATUS_SUCCESS; the OVERLAPPED itself is not touched
  entry.dwNumberOfBytesTransferred = dwNumberOfBytesTransferred;
  if (!iocp->Post(entry)) return Fail(ERROR_INVALID_HANDLE);
  return TRUE;
}

BOOL CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped) {
  Ref<IoObject> io = RefFromHandle<IoObject>(hFile);
  if (!io) return Fail(ERROR_INVALID_HANDLE);
  const DWORD error = io->CancelIo(lpOverlapped);
  if (error != ERROR_SUCCESS) return Fail(error);
  return TRUE;
}

BOOL GetOverlappedResult(HANDLE hFile, LPOVERLAPPED lpOverlapped, LPDWORD lpNumberOfBytesTransferred, BOOL bWait) {
  // hFile is deliberately not dereferenced: the core may map the result of a get it drained after closing
  // the port (the OVERLAPPED alone carries the result, as with bWait == FALSE on Windows).
  (void)hFile;
  if (lpOverlapped == nullptr || lpNumberOfBytesTransferred == nullptr) return Fail(ERROR_INVALID_PARAMETER);
  if (bWait) return Fail(ERROR_INVALID_PARAMETER);  // no events on this host: non-waiting form only
  const NTSTATUS status = fltmgr::compat::LoadOverlappedStatus(lpOverlapped);
  if (status == STATUS_PENDING) return Fail(ERROR_IO_INCOMPLETE);
  *lpNumberOfBytesTransferred = static_cast<DWORD>(lpOverlapped->InternalHigh);
  if (status == STATUS_SUCCESS) return TRUE;
  // Informational/success statuses other than STATUS_SUCCESS still report failure only when NT_ERROR or
  // NT_WARNING (STATUS_BUFFER_OVERFLOW -> ERROR_MORE_DATA), as kernel32 does.
  if (static_cast<uint32_t>(status) < 0x80000000u) return TRUE;
  return Fail(fltmgr::Win32FromNtStatus(static_cast<uint32_t>(status)));
}

BOOL CloseHandle(HANDLE hObject) {
  if (hObject == nullptr || hObject == INVALID_HANDLE_VALUE ||
      reinterpret_cast<uintptr_t>(hObject) % alignof(Object) != 0) {
    return Fail(ERROR_INVALID_HANDLE);
  }
  Object* o = static_cast<Object*>(hObject);
  const uint32_t magic = o->magic();
  if (magic != fltmgr::compat::kMagicIocp && magic != fltmgr::compat::kMagicPort &&
      magic != fltmgr::compat::kMagicFind) {
    return Fail(ERROR_INVALID_HANDLE);
  }
  return fltmgr::compat::CloseObject(o) ? TRUE : Fail(ERROR_INVALID_HANDLE);
}
