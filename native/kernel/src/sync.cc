// sync.cc - push locks, rundown protection and KeQueryPerformanceCounter (harness.h, "Synchronisation").
//
// Push locks: EX_PUSH_LOCK is one ULONG_PTR the driver owns, too small for a real lock and its owners, so
// the harness keeps a record per lock address (a std::shared_mutex plus who holds it) and writes a cookie
// into the driver's word to notice a lock whose memory was overwritten or copied.
//
// Recursive acquisition (any mode, by a thread that already holds the lock) self-deadlocks on Windows,
// where push locks are not recursive. The harness reports it and then lets the nested acquire through
// without blocking (its matching release pops it), so the test fails with a named violation instead of
// hanging; Violation never aborts (harness.h).
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_set>

#include "harness.h"

namespace kh {
namespace {

// ---- Push locks ----

constexpr ULONG_PTR kCookie = static_cast<ULONG_PTR>(0x5048534CA5C3E1F0ull);  // "PHSL" + noise
constexpr size_t kRecentlyDeleted = 1024;

enum class Mode { kShared, kExclusive };

struct Holding {
  Mode mode;
  int depth;  // 1 + recursive acquires reported as violations
};

struct LockRecord {
  std::shared_mutex lock;
  std::mutex state;  // guards holders
  std::map<std::thread::id, Holding> holders;
};

std::mutex g_locks_mutex;
std::map<PEX_PUSH_LOCK, std::shared_ptr<LockRecord>> g_locks;  // initialised, not deleted
std::unordered_set<PEX_PUSH_LOCK> g_deleted;                   // recently deleted (bounded by g_deleted_order)
std::deque<PEX_PUSH_LOCK> g_deleted_order;

ULONG_PTR CookieFor(PEX_PUSH_LOCK address) { return kCookie ^ reinterpret_cast<ULONG_PTR>(address); }

// The record for `address`; reports a lock that was never initialised, was deleted or was overwritten, and
// then treats it as initialised so that the driver goes on without a cascade of reports.
std::shared_ptr<LockRecord> Lookup(PEX_PUSH_LOCK address, const char* routine) {
  if (address == nullptr) {
    Violation(routine, "PushLock is NULL");
    return nullptr;
  }
  std::unique_lock<std::mutex> guard(g_locks_mutex);
  const auto it = g_locks.find(address);
  if (it != g_locks.end()) {
    std::shared_ptr<LockRecord> record = it->second;
    if (*address != CookieFor(address)) {
      *address = CookieFor(address);
      guard.unlock();
      Violation(routine, "push lock %p was overwritten since FltInitializePushLock (or is a copy)",
                static_cast<void*>(address));
    }
    return record;
  }
  const bool deleted = g_deleted.count(address) != 0;
  auto record = std::make_shared<LockRecord>();
  g_locks[address] = record;
  *address = CookieFor(address);
  guard.unlock();
  if (deleted) {
    Violation(routine, "push lock %p is used after FltDeletePushLock", static_cast<void*>(address));
  } else {
    Violation(routine, "push lock %p was never initialised (FltInitializePushLock)", static_cast<void*>(address));
  }
  return record;
}

void Acquire(PEX_PUSH_LOCK address, Mode mode, const char* routine) {
  if (CurrentPhase() == Phase::kUnloaded) Violation(routine, "called after the driver was unloaded");
  const std::shared_ptr<LockRecord> record = Lookup(address, routine);
  if (!record) return;
  const std::thread::id self = std::this_thread::get_id();
  {
    std::unique_lock<std::mutex> state(record->state);
    const auto it = record->holders.find(self);
    if (it != record->holders.end()) {
      const Mode held = it->second.mode;
      ++it->second.depth;
      state.unlock();
      Violation(routine,
                "push lock %p is already held %s by this thread: push locks are not recursive (this "
                "deadlocks on Windows)",
                static_cast<void*>(address), held == Mode::kExclusive ? "exclusive" : "shared");
      return;
    }
  }
  if (mode == Mode::kExclusive) {
    record->lock.lock();
  } else {
    record->lock.lock_shared();
  }
  std::lock_guard<std::mutex> state(record->state);
  record->holders[self] = Holding{mode, 1};
}

// ---- Rundown protection ----
// EX_RUNDOWN_REF.Count holds the state (the driver owns the memory): bit 0 is "rundown started", the rest
// counts references (in steps of 2). The harness keeps, per initialised address, a condition variable for
// ExWaitForRundownProtectionRelease and a copy of the reference count for the unload report, which must not
// read the driver's memory (the EX_RUNDOWN_REF may sit in a pool block freed long ago).

constexpr ULONG_PTR kRundownActive = 1;
constexpr ULONG_PTR kRundownOne = 2;

struct RundownRecord {
  std::condition_variable released;  // waited on with g_rundown_mutex
  std::atomic<size_t> references{0};
};

std::mutex g_rundown_mutex;
std::map<PEX_RUNDOWN_REF, std::shared_ptr<RundownRecord>> g_rundowns;

std::shared_ptr<RundownRecord> RundownLookup(PEX_RUNDOWN_REF ref, const char* routine) {
  std::unique_lock<std::mutex> guard(g_rundown_mutex);
  const auto it = g_rundowns.find(ref);
  if (it != g_rundowns.end()) return it->second;
  auto record = std::make_shared<RundownRecord>();
  g_rundowns[ref] = record;
  guard.unlock();
  Violation(routine, "EX_RUNDOWN_REF %p was never initialised (ExInitializeRundownProtection)",
            static_cast<void*>(ref));
  return record;
}

}  // namespace

size_t PushLocksReport(const char* routine) {
  size_t reported = 0;
  std::map<PEX_PUSH_LOCK, std::shared_ptr<LockRecord>> locks;
  {
    std::lock_guard<std::mutex> guard(g_locks_mutex);
    locks = g_locks;
  }
  for (const auto& entry : locks) {
    size_t exclusive = 0;
    size_t shared = 0;
    {
      std::lock_guard<std::mutex> state(entry.second->state);
      for (const auto& h : entry.second->holders) (h.second.mode == Mode::kExclusive ? exclusive : shared) += 1;
    }
    if (exclusive + shared != 0) {
      Violation(routine, "push lock %p is still held (%zu exclusive, %zu shared holders)",
                static_cast<void*>(entry.first), exclusive, shared);
    } else {
      Violation(routine, "push lock %p was never deleted (FltDeletePushLock)", static_cast<void*>(entry.first));
    }
    ++reported;
  }
  std::map<PEX_RUNDOWN_REF, std::shared_ptr<RundownRecord>> rundowns;
  {
    std::lock_guard<std::mutex> guard(g_rundown_mutex);
    rundowns = g_rundowns;
  }
  for (const auto& entry : rundowns) {
    const size_t references = entry.second->references.load();
    if (references != 0) {
      Violation(routine, "EX_RUNDOWN_REF %p still has %zu acquired reference(s)", static_cast<void*>(entry.first),
                references);
      ++reported;
    }
  }
  return reported;
}

}  // namespace kh

extern "C" {

VOID FLTAPI FltInitializePushLock(PEX_PUSH_LOCK PushLock) {
  static const char kRoutine[] = "FltInitializePushLock";
  if (PushLock == nullptr) {
    kh::Violation(kRoutine, "PushLock is NULL");
    return;
  }
  std::unique_lock<std::mutex> guard(kh::g_locks_mutex);
  const auto it = kh::g_locks.find(PushLock);
  if (it != kh::g_locks.end()) {
    std::unique_lock<std::mutex> state(it->second->state);
    if (!it->second->holders.empty()) {
      state.unlock();
      guard.unlock();
      kh::Violation(kRoutine, "push lock %p is initialised again while held", static_cast<void*>(PushLock));
      return;
    }
  }
  kh::g_locks[PushLock] = std::make_shared<kh::LockRecord>();
  kh::g_deleted.erase(PushLock);  // the order list may keep a stale entry; erasing it later is harmless
  *PushLock = kh::CookieFor(PushLock);
}

VOID FLTAPI FltDeletePushLock(PEX_PUSH_LOCK PushLock) {
  static const char kRoutine[] = "FltDeletePushLock";
  const std::shared_ptr<kh::LockRecord> record = kh::Lookup(PushLock, kRoutine);
  if (!record) return;
  {
    std::unique_lock<std::mutex> state(record->state);
    if (!record->holders.empty()) {
      state.unlock();
      kh::Violation(kRoutine, "push lock %p is deleted while held; not deleted", static_cast<void*>(PushLock));
      return;
    }
  }
  std::lock_guard<std::mutex> guard(kh::g_locks_mutex);
  kh::g_locks.erase(PushLock);
  if (kh::g_deleted.insert(PushLock).second) {
    kh::g_deleted_order.push_back(PushLock);
    if (kh::g_deleted_order.size() > kh::kRecentlyDeleted) {
      kh::g_deleted.erase(kh::g_deleted_order.front());
      kh::g_deleted_order.pop_front();
    }
  }
}

VOID FLTAPI FltAcquirePushLockShared(PEX_PUSH_LOCK PushLock) {
  kh::Acquire(PushLock, kh::Mode::kShared, "FltAcquirePushLockShared");
}

VOID FLTAPI FltAcquirePushLockExclusive(PEX_PUSH_LOCK PushLock) {
  kh::Acquire(PushLock, kh::Mode::kExclusive, "FltAcquirePushLockExclusive");
}

VOID FLTAPI FltReleasePushLock(PEX_PUSH_LOCK PushLock) {
  static const char kRoutine[] = "FltReleasePushLock";
  const std::shared_ptr<kh::LockRecord> record = kh::Lookup(PushLock, kRoutine);
  if (!record) return;
  std::unique_lock<std::mutex> state(record->state);
  const auto it = record->holders.find(std::this_thread::get_id());
  if (it == record->holders.end()) {
    const bool others = !record->holders.empty();
    state.unlock();
    kh::Violation(kRoutine, "push lock %p is not held by this thread%s", static_cast<void*>(PushLock),
                  others ? " (another thread holds it)" : "");
    return;
  }
  if (--it->second.depth > 0) return;  // the release of a reported recursive acquire
  const kh::Mode mode = it->second.mode;
  record->holders.erase(it);
  state.unlock();
  if (mode == kh::Mode::kExclusive) {
    record->lock.unlock();
  } else {
    record->lock.unlock_shared();
  }
}

VOID ExInitializeRundownProtection(PEX_RUNDOWN_REF RunRef) {
  static const char kRoutine[] = "ExInitializeRundownProtection";
  if (RunRef == nullptr) {
    kh::Violation(kRoutine, "RunRef is NULL");
    return;
  }
  std::lock_guard<std::mutex> guard(kh::g_rundown_mutex);
  auto& record = kh::g_rundowns[RunRef];
  if (!record) record = std::make_shared<kh::RundownRecord>();
  record->references = 0;
  __atomic_store_n(&RunRef->Count, ULONG_PTR{0}, __ATOMIC_SEQ_CST);
}

BOOLEAN ExAcquireRundownProtection(PEX_RUNDOWN_REF RunRef) {
  static const char kRoutine[] = "ExAcquireRundownProtection";
  if (RunRef == nullptr) {
    kh::Violation(kRoutine, "RunRef is NULL");
    return FALSE;
  }
  const std::shared_ptr<kh::RundownRecord> record = kh::RundownLookup(RunRef, kRoutine);
  ULONG_PTR count = __atomic_load_n(&RunRef->Count, __ATOMIC_SEQ_CST);
  do {
    if ((count & kh::kRundownActive) != 0) return FALSE;  // rundown has started: the object is going away
  } while (!__atomic_compare_exchange_n(&RunRef->Count, &count, count + kh::kRundownOne, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
  ++record->references;
  return TRUE;
}

VOID ExReleaseRundownProtection(PEX_RUNDOWN_REF RunRef) {
  static const char kRoutine[] = "ExReleaseRundownProtection";
  if (RunRef == nullptr) {
    kh::Violation(kRoutine, "RunRef is NULL");
    return;
  }
  const std::shared_ptr<kh::RundownRecord> record = kh::RundownLookup(RunRef, kRoutine);
  ULONG_PTR count = __atomic_load_n(&RunRef->Count, __ATOMIC_SEQ_CST);
  do {
    if (count < kh::kRundownOne) {
      kh::Violation(kRoutine, "EX_RUNDOWN_REF %p is released more often than it was acquired",
                    static_cast<void*>(RunRef));
      return;
    }
  } while (!__atomic_compare_exchange_n(&RunRef->Count, &count, count - kh::kRundownOne, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
  --record->references;
  if (count - kh::kRundownOne == kh::kRundownActive) {
    // The last reference of a rundown: wake the waiter. Notifying under the mutex the waiter checks its
    // condition under means the wake-up cannot fall between its check and its wait.
    std::lock_guard<std::mutex> guard(kh::g_rundown_mutex);
    record->released.notify_all();
  }
}

VOID ExWaitForRundownProtectionRelease(PEX_RUNDOWN_REF RunRef) {
  static const char kRoutine[] = "ExWaitForRundownProtectionRelease";
  if (RunRef == nullptr) {
    kh::Violation(kRoutine, "RunRef is NULL");
    return;
  }
  const std::shared_ptr<kh::RundownRecord> record = kh::RundownLookup(RunRef, kRoutine);
  // From here on ExAcquireRundownProtection fails; a second wait on a run-down object returns at once.
  __atomic_fetch_or(&RunRef->Count, kh::kRundownActive, __ATOMIC_SEQ_CST);
  std::unique_lock<std::mutex> guard(kh::g_rundown_mutex);
  record->released.wait(guard,
                        [RunRef] { return __atomic_load_n(&RunRef->Count, __ATOMIC_SEQ_CST) < kh::kRundownOne; });
}

LARGE_INTEGER KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency) {
  // CLOCK_MONOTONIC in 100 ns ticks: a 10 MHz counter, the frequency Windows reports on current hardware.
  constexpr LONGLONG kFrequency = 10000000;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (PerformanceFrequency != nullptr) PerformanceFrequency->QuadPart = kFrequency;
  LARGE_INTEGER counter;
  counter.QuadPart = static_cast<LONGLONG>(now.tv_sec) * kFrequency + now.tv_nsec / 100;
  return counter;
}

}  // extern "C"
