// kh-test-sources: core.cc sync.cc
// Push locks, rundown protection and the performance counter (sync.cc): exclusion really excludes, the
// rundown wait really waits for another thread's release, and each verifier check fires (by count).
#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "core.h"
#include "harness.h"

static size_t ViolationCount() { return kh::Violations().size(); }
template <typename F>
static void ExpectViolation(const char* text, F body) {
  const size_t before = ViolationCount();
  body();
  const auto all = kh::Violations();
  if (all.size() != before + 1 || all.back().find(text) == std::string::npos) {
    std::fprintf(stderr, "expected one violation with \"%s\"; last: %s\n", text,
                 all.empty() ? "(none)" : all.back().c_str());
    assert(false);
  }
}

// A one-shot flag a thread can wait for (no sleeps, no time budgets).
class Event {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mutex_);
    set_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

static void PushLocks() {
  EX_PUSH_LOCK lock = 0;
  const size_t clean = ViolationCount();
  FltInitializePushLock(&lock);

  // Shared holders coexist: a second thread gets it shared while this one holds it shared.
  FltAcquirePushLockShared(&lock);
  std::thread([&lock] {
    FltAcquirePushLockShared(&lock);
    FltReleasePushLock(&lock);
  }).join();
  FltReleasePushLock(&lock);

  // Exclusive excludes: the other thread's exclusive acquire completes only after this thread's release.
  std::atomic<bool> released{false};
  std::atomic<bool> acquiredBeforeRelease{false};
  Event started;
  FltAcquirePushLockExclusive(&lock);
  std::thread other([&] {
    started.Set();
    FltAcquirePushLockExclusive(&lock);
    if (!released.load()) acquiredBeforeRelease = true;
    FltReleasePushLock(&lock);
  });
  started.Wait();
  released = true;
  FltReleasePushLock(&lock);
  other.join();
  assert(!acquiredBeforeRelease.load());
  assert(ViolationCount() == clean);

  // Recursive acquire: reported, does not deadlock, and its release pops it (the lock stays held).
  FltAcquirePushLockExclusive(&lock);
  ExpectViolation("not recursive", [&lock] { FltAcquirePushLockExclusive(&lock); });
  FltReleasePushLock(&lock);
  ExpectViolation("deleted while held", [&lock] { FltDeletePushLock(&lock); });
  ExpectViolation("initialised again while held", [&lock] { FltInitializePushLock(&lock); });
  std::atomic<bool> otherHeld{false};
  Event holding;
  Event release;
  std::thread holder([&] {
    // Still held by the main thread: this blocks until the main thread's outer release below.
    FltAcquirePushLockShared(&lock);
    otherHeld = true;
    holding.Set();
    release.Wait();
    FltReleasePushLock(&lock);
  });
  // Release by a thread that does not hold it (the main thread holds it; this one does not).
  std::thread([&lock] {
    ExpectViolation("not held by this thread (another thread holds it)", [&lock] { FltReleasePushLock(&lock); });
  }).join();
  assert(!otherHeld.load());
  FltReleasePushLock(&lock);  // the outer release
  holding.Wait();
  assert(otherHeld.load());
  // Shared then shared again on one thread is recursion too (may deadlock behind a waiting writer).
  std::thread([&lock] {
    FltAcquirePushLockShared(&lock);
    ExpectViolation("already held shared", [&lock] { FltAcquirePushLockShared(&lock); });
    FltReleasePushLock(&lock);
    FltReleasePushLock(&lock);
  }).join();
  // Held at unload.
  const size_t beforeReport = ViolationCount();
  assert(kh::PushLocksReport("DriverUnload") == 1);
  assert(ViolationCount() == beforeReport + 1 &&
         kh::Violations().back().find("still held (0 exclusive, 1 shared") != std::string::npos);
  release.Set();
  holder.join();
  ExpectViolation("is not held by this thread", [&lock] { FltReleasePushLock(&lock); });

  // Never deleted at unload; then deleted, nothing to report.
  ExpectViolation("never deleted", [] { assert(kh::PushLocksReport("DriverUnload") == 1); });
  FltDeletePushLock(&lock);
  assert(kh::PushLocksReport("DriverUnload") == 0);

  // Use after delete, never initialised, overwritten.
  ExpectViolation("after FltDeletePushLock", [&lock] { FltAcquirePushLockShared(&lock); });
  FltReleasePushLock(&lock);  // the harness took it as initialised: no cascade
  FltDeletePushLock(&lock);
  EX_PUSH_LOCK never = 0;
  ExpectViolation("never initialised", [&never] { FltAcquirePushLockExclusive(&never); });
  FltReleasePushLock(&never);
  FltDeletePushLock(&never);
  EX_PUSH_LOCK overwritten = 0;
  FltInitializePushLock(&overwritten);
  overwritten = 0;
  ExpectViolation("overwritten", [&overwritten] { FltAcquirePushLockShared(&overwritten); });
  FltReleasePushLock(&overwritten);
  FltDeletePushLock(&overwritten);
  assert(kh::PushLocksReport("DriverUnload") == 0);
}

static void Rundown() {
  EX_RUNDOWN_REF ref;
  const size_t clean = ViolationCount();
  ExInitializeRundownProtection(&ref);
  assert(ExAcquireRundownProtection(&ref));
  assert(ExAcquireRundownProtection(&ref));
  ExReleaseRundownProtection(&ref);
  ExpectViolation("still has 1 acquired", [] { assert(kh::PushLocksReport("DriverUnload") == 1); });

  // The wait returns only after another thread released the last reference.
  std::atomic<bool> releasedByOther{false};
  std::atomic<bool> waitReturned{false};
  Event waiting;
  std::thread waiter([&] {
    waiting.Set();
    ExWaitForRundownProtectionRelease(&ref);
    assert(releasedByOther.load());
    waitReturned = true;
  });
  waiting.Wait();
  // Once rundown has started, new acquires fail. (The waiter may not have started it yet: wait for it.)
  while (ExAcquireRundownProtection(&ref)) ExReleaseRundownProtection(&ref);
  assert(!waitReturned.load());
  std::thread releaser([&] {
    releasedByOther = true;
    ExReleaseRundownProtection(&ref);
  });
  releaser.join();
  waiter.join();
  assert(waitReturned.load());
  assert(!ExAcquireRundownProtection(&ref));
  ExWaitForRundownProtectionRelease(&ref);  // already run down: returns at once
  assert(ViolationCount() == clean + 1);

  // Released more often than acquired.
  ExpectViolation("released more often than it was acquired", [&ref] { ExReleaseRundownProtection(&ref); });
  // Re-initialised, usable again; nothing out at unload.
  ExInitializeRundownProtection(&ref);
  assert(ExAcquireRundownProtection(&ref));
  ExReleaseRundownProtection(&ref);
  ExWaitForRundownProtectionRelease(&ref);
  assert(kh::PushLocksReport("DriverUnload") == 0);
  // Never initialised.
  EX_RUNDOWN_REF fresh = {0};
  ExpectViolation("never initialised", [&fresh] { assert(ExAcquireRundownProtection(&fresh)); });
  ExReleaseRundownProtection(&fresh);
}

static void Counter() {
  LARGE_INTEGER frequency;
  frequency.QuadPart = 0;
  const LARGE_INTEGER a = KeQueryPerformanceCounter(&frequency);
  assert(frequency.QuadPart == 10000000);
  const LARGE_INTEGER b = KeQueryPerformanceCounter(nullptr);
  assert(a.QuadPart > 0 && b.QuadPart >= a.QuadPart);
}

int main() {
  kh::SetPhase(kh::Phase::kRunning);
  PushLocks();
  Rundown();
  Counter();
  kh::SetPhase(kh::Phase::kUnloaded);
  EX_PUSH_LOCK late = 0;
  FltInitializePushLock(&late);
  ExpectViolation("after the driver was unloaded", [&late] { FltAcquirePushLockShared(&late); });
  FltReleasePushLock(&late);
  FltDeletePushLock(&late);
  std::puts("sync_test: ok");
  return 0;
}
