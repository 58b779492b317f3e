// A connected communication-port handle shared by the JS object, the receive thread and send workers.
//
// The handle value is closed only when nobody is using it: on Windows a closed handle value can be reused
// by an unrelated object at once, so a send that read the value just before a close would talk to
// something else. Users Acquire() before each call and Release() after; the last Release() after
// RequestClose() closes it.
#pragma once
#include <memory>
#include <mutex>

#include "fltapi.h"

namespace fltmgr {

class PortHandle {
 public:
  PortHandle(HANDLE handle, const FilterApi* api, bool syncHandle)
      : handle_(handle), api_(api), syncHandle_(syncHandle) {}
  ~PortHandle() { RequestClose(); }
  PortHandle(const PortHandle&) = delete;
  PortHandle& operator=(const PortHandle&) = delete;

  // False once a close was requested: the caller must not touch the handle.
  bool Acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closeRequested_) return false;
    ++users_;
    return true;
  }

  void Release() {
    HANDLE toClose = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--users_ == 0 && closeRequested_) toClose = TakeHandleLocked();
    }
    if (toClose != nullptr) CloseNow(toClose);
  }

  // Closes now if unused, otherwise when the last user releases. Idempotent.
  void RequestClose() {
    HANDLE toClose = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closeRequested_ = true;
      if (users_ == 0) toClose = TakeHandleLocked();
    }
    if (toClose != nullptr) CloseNow(toClose);
  }

  // Cancels every pending operation on the handle (FilterApi::abort) and requests the close: a thread waiting
  // on a peer that stopped answering returns, and the handle closes when the last user releases it.
  // Idempotent.
  void Abort() {
    HANDLE h = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closeRequested_ = true;
      if (handle_ == nullptr || aborted_) return;
      aborted_ = true;
      ++users_;  // keeps the value valid for the call below
      h = handle_;
    }
    (void)api_->abort(h);
    Release();
  }

  bool closeRequested() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closeRequested_;
  }

  HANDLE handle() const { return handle_; }  // valid between Acquire() and Release()
  const FilterApi* api() const { return api_; }
  bool syncHandle() const { return syncHandle_; }

 private:
  HANDLE TakeHandleLocked() {
    HANDLE h = handle_;
    handle_ = nullptr;
    return h;
  }
  void CloseNow(HANDLE h) { api_->closeHandle(h); }

  std::mutex mutex_;
  HANDLE handle_;
  const FilterApi* api_;
  const bool syncHandle_;
  int users_ = 0;
  bool closeRequested_ = false;
  bool aborted_ = false;
};

// RAII use of a PortHandle.
class PortUse {
 public:
  explicit PortUse(const std::shared_ptr<PortHandle>& port) : port_(port), ok_(port->Acquire()) {}
  ~PortUse() {
    if (ok_) port_->Release();
  }
  PortUse(const PortUse&) = delete;
  PortUse& operator=(const PortUse&) = delete;
  explicit operator bool() const { return ok_; }

 private:
  std::shared_ptr<PortHandle> port_;
  bool ok_;
};

}  // namespace fltmgr
