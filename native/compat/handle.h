// Private to the POSIX compat layer: handle objects shared by compat_kernel32.cc and compat_fltlib.cc.
//
// A HANDLE is an Object* with a type tag. The tag catches a handle of the wrong type (or NULL,
// INVALID_HANDLE_VALUE, a misaligned value); it cannot catch a freed object, and it does not need to: the
// core never uses a handle after closing it. Every call that uses an object holds a reference for its
// duration, so an object racing with CloseHandle stays alive until that call returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>

#include "win32.h"

namespace fltmgr {
namespace compat {

constexpr uint32_t kMagicIocp = 0x50434F49u;  // "IOCP"
constexpr uint32_t kMagicPort = 0x54524F50u;  // "PORT"
constexpr uint32_t kMagicFind = 0x444E4946u;  // "FIND": a management enumeration (compat_manage.cc)
constexpr uint32_t kMagicDead = 0xDEADDEADu;

class Object {
 public:
  explicit Object(uint32_t magic) : magic_(magic) {}
  virtual ~Object() { magic_.store(kMagicDead, std::memory_order_relaxed); }
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  uint32_t magic() const { return magic_.load(std::memory_order_relaxed); }
  void AddRef() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // True for the first caller only: CloseHandle on an already-closed object fails.
  bool MarkClosed() { return !handleClosed_.exchange(true, std::memory_order_acq_rel); }
  // Runs once, from CloseHandle, before the handle's reference is dropped.
  virtual void OnClose() = 0;

 private:
  std::atomic<uint32_t> magic_;
  std::atomic<int32_t> refs_{1};  // the handle's own reference
  std::atomic<bool> handleClosed_{false};
};

// What CloseHandle does to a live object: false if it was already closed.
inline bool CloseObject(Object* o) {
  if (!o->MarkClosed()) return false;
  o->OnClose();
  o->Release();
  return true;
}

// Intrusive reference.
template <class T>
class Ref {
 public:
  Ref() = default;
  explicit Ref(T* p) : p_(p) {
    if (p_ != nullptr) p_->AddRef();
  }
  Ref(const Ref& o) : Ref(o.p_) {}
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() {
    if (p_ != nullptr) p_->Release();
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

// Validates a handle's tag and takes a reference; empty on a bad handle.
template <class T>
Ref<T> RefFromHandle(HANDLE h) {
  if (h == nullptr || h == INVALID_HANDLE_VALUE) return Ref<T>();
  if (reinterpret_cast<uintptr_t>(h) % alignof(Object) != 0) return Ref<T>();
  Object* o = static_cast<Object*>(h);
  if (o->magic() != T::kMagic) return Ref<T>();
  return Ref<T>(static_cast<T*>(o));
}

class Iocp final : public Object {
 public:
  static constexpr uint32_t kMagic = kMagicIocp;
  Iocp() : Object(kMagic) {}

  // Queues an entry; false (entry dropped) once the port is closed. Any thread.
  bool Post(const OVERLAPPED_ENTRY& entry);
  // 0 and *removed > 0, or WAIT_TIMEOUT, or ERROR_ABANDONED_WAIT_0.
  DWORD Dequeue(OVERLAPPED_ENTRY* entries, ULONG count, ULONG* removed, DWORD milliseconds);
  void OnClose() override;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<OVERLAPPED_ENTRY> queue_;
  uint32_t waiters_ = 0;
  bool closed_ = false;
};

// A handle that can do overlapped I/O (the communication port).
class IoObject : public Object {
 public:
  static constexpr uint32_t kMagic = kMagicPort;
  IoObject() : Object(kMagic) {}
  // 0 or a Win32 error. Keeps a reference to iocp for the object's lifetime.
  virtual DWORD AssociateCompletionPort(Iocp* iocp, ULONG_PTR key) = 0;
  // 0 or ERROR_NOT_FOUND.
  virtual DWORD CancelIo(LPOVERLAPPED overlapped) = 0;
};

// OVERLAPPED.Internal is read by GetOverlappedResult while another thread may complete the operation
// (as the kernel does on Windows), so it is accessed atomically. NTSTATUS is stored zero-extended.
inline void StoreOverlappedStatus(LPOVERLAPPED ov, NTSTATUS status) {
  __atomic_store_n(&ov->Internal, static_cast<ULONG_PTR>(static_cast<uint32_t>(status)), __ATOMIC_RELEASE);
}
inline NTSTATUS LoadOverlappedStatus(const OVERLAPPED* ov) {
  return static_cast<NTSTATUS>(static_cast<uint32_t>(__atomic_load_n(&ov->Internal, __ATOMIC_ACQUIRE)));
}

}  // namespace compat
}  // namespace fltmgr
