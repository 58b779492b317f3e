#include "blocking_calls.h"

#include <new>
#include <string>
#include <system_error>

#if defined(_WIN32)
#include "../compat/win32.h"
#else
#include <dlfcn.h>
#endif

namespace fltmgr {

struct BlockingCallsContext {
  std::shared_ptr<BlockingCalls> calls;
};

namespace {

// Keeps this module mapped for the rest of the process: a thread that outlived its environment (stuck in a call
// that ignores cancellation) still has to return through our code, and Node unloads an addon when the last
// environment that loaded it goes away.
void PinAddonModule() {
#if defined(_WIN32)
  HMODULE self = nullptr;
  (void)GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                           reinterpret_cast<LPCWSTR>(&PinAddonModule), &self);
#else
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&PinAddonModule), &info) != 0 && info.dli_fname != nullptr) {
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);  // a reference never dropped
  }
#endif
}

// An executor without a cap keeps this many idle threads; more leave when they find nothing to do.
constexpr uint32_t kKeepIdle = 1;

}  // namespace

std::shared_ptr<BlockingCalls> BlockingCalls::Create(Napi::Env env, const char* name, uint32_t maxThreads,
                                                     std::function<void()> onTeardown) {
  std::shared_ptr<BlockingCalls> self(new BlockingCalls(maxThreads, std::move(onTeardown)));
  self->env_ = env;
  auto* context = new BlockingCallsContext{self};
  // The callback is native (CallJsWithResults); the JS function is a placeholder it never calls.
  self->tsfn_ = ResultsTsfn::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), name, 0, 1, context,
                                 [](Napi::Env, void*, BlockingCallsContext* ctx) { delete ctx; });
  self->tsfn_.Unref(env);  // referenced only while calls are pending
  // After the thread-safe function, so that this hook runs before Node tears that function down.
  napi_add_env_cleanup_hook(env, CleanupHook, self.get());
  self->cleanupHookAdded_ = true;
  return self;
}

BlockingCalls::~BlockingCalls() {
  // Join() has taken every thread unless the last reference is dropped by one of them as it returns.
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.detach();
  }
  for (std::thread& thread : retired_) {
    if (thread.joinable()) thread.detach();
  }
}

void BlockingCalls::CleanupHook(void* arg) {
  // Environment teardown (process or worker exit): nobody will hear results any more. Cancel what waits on the
  // peer, then join, so that no thread of this executor runs after this hook returns.
  auto* self = static_cast<BlockingCalls*>(arg);
  self->cleanupHookAdded_ = false;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->envAlive_ = false;
  }
  if (self->onTeardown_) self->onTeardown_();
  self->Stop();
  self->Join();
  // Results that finished before the environment went away but were never delivered: freed now (a connection
  // made in that window is closed by its call's destructor).
  std::vector<Entry> undelivered;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    undelivered.swap(self->done_);
  }
}

bool BlockingCalls::StartThreadLocked() {
  // idle_ counts threads waiting; a woken thread decrements it only once it runs, so compare with the queue:
  // otherwise a burst sees the same idle thread again and again, and a call stuck in the kernel would hold up
  // the ones queued behind it while threads could still be started.
  if (queue_.size() <= idle_) return true;
  if (maxThreads_ != kNoThreadCap && threads_.size() >= maxThreads_) return true;  // it waits its turn
  try {
    threads_.reserve(threads_.size() + 1);  // so that emplace_back cannot throw with a thread started
    std::shared_ptr<BlockingCalls> self = shared_from_this();
    threads_.emplace_back([self] { self->Work(); });
    ++live_;
    return true;
  } catch (const std::system_error&) {
  } catch (const std::bad_alloc&) {
  }
  return false;
}

void BlockingCalls::ReapRetiredLocked(std::vector<std::thread>* out) {
  for (std::thread& thread : retired_) out->push_back(std::move(thread));
  retired_.clear();
}

Napi::Promise BlockingCalls::Submit(Napi::Env env, std::unique_ptr<BlockingCall> call, uint64_t* id) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  const uint64_t callId = nextId_++;
  if (id != nullptr) *id = callId;
  std::vector<std::thread> reaped;
  bool stopped = false;
  bool started = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ReapRetiredLocked(&reaped);
    if (stopping_) {
      stopped = true;
    } else {
      queue_.push_back(Entry{callId, std::move(call)});
      // No new thread: a running one takes the call when it is free (there is one unless live_ is 0).
      started = StartThreadLocked() || live_ > 0;
      if (started) {
        wake_.notify_one();
      } else {
        call = std::move(queue_.back().call);
        queue_.pop_back();
      }
    }
  }
  for (std::thread& thread : reaped) thread.join();  // it has left Work(): returning now
  if (!started) throw Napi::Error::New(env, "fltmgr: cannot start a thread for a blocking call");
  if (stopped) {
    deferred.Resolve(call->NotRun(env, BlockingCall::NotRunReason::kStopped));
    return deferred.Promise();
  }
  pending_.emplace(callId, deferred);
  if (!refed_) {
    tsfn_.Ref(env);  // a pending call keeps the event loop alive, as any pending I/O does
    refed_ = true;
  }
  return deferred.Promise();
}

bool BlockingCalls::Post(std::unique_ptr<BlockingCall>& call) {
  std::vector<std::thread> reaped;
  bool taken = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ReapRetiredLocked(&reaped);
    if (!stopping_) {
      queue_.push_back(Entry{0, std::move(call)});
      taken = StartThreadLocked() || live_ > 0;
      if (taken) {
        wake_.notify_one();
      } else {
        call = std::move(queue_.back().call);
        queue_.pop_back();
      }
    }
  }
  for (std::thread& thread : reaped) thread.join();
  return taken;
}

bool BlockingCalls::Withdraw(Napi::Env env, uint64_t id) {
  std::unique_ptr<BlockingCall> call;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = queue_.begin();
    while (it != queue_.end() && it->id != id) ++it;
    if (it == queue_.end()) return false;
    call = std::move(it->call);
    queue_.erase(it);
  }
  Settle(env, id, call.get(), false, BlockingCall::NotRunReason::kWithdrawn);
  return true;
}

void BlockingCalls::Work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (stopping_) break;
    Entry entry = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    entry.call->Run();
    // Nobody awaits it, or nobody can be told (the environment is gone, or Join() let go of this thread): it
    // is freed here, after its call returned, and off the lock (its destructor may close a handle).
    bool keep = entry.id != 0;
    if (keep) {
      lock.lock();
      keep = envAlive_ && !released_;
      if (keep) {
        done_.push_back(std::move(entry));
        if (!callPending_) {
          callPending_ = true;
          if (tsfn_.NonBlockingCall() != napi_ok) callPending_ = false;
        }
      }
      lock.unlock();
    }
    entry.call.reset();
    lock.lock();
    if (maxThreads_ == kNoThreadCap && !stopping_ && queue_.empty() && idle_ >= kKeepIdle) {
      // Enough threads wait already: leave, and let the next caller join this one.
      const std::thread::id me = std::this_thread::get_id();
      for (auto it = threads_.begin(); it != threads_.end(); ++it) {
        if (it->get_id() == me) {
          retired_.push_back(std::move(*it));
          threads_.erase(it);
          break;
        }
      }
      break;
    }
  }
  --live_;
  exited_.notify_all();
}

void BlockingCalls::Stop() {
  std::deque<Entry> withdrawn;
  bool envAlive = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    envAlive = envAlive_;
    withdrawn.swap(queue_);  // never started: they never reach the kernel
    wake_.notify_all();
  }
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  }
  if (!envAlive || withdrawn.empty()) return;
  Napi::HandleScope scope(env_);
  for (Entry& entry : withdrawn) {
    if (entry.id != 0) Settle(env_, entry.id, entry.call.get(), false, BlockingCall::NotRunReason::kWithdrawn);
  }
}

bool BlockingCalls::Join() {
  std::vector<std::thread> threads;
  bool exited = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (released_) return joinedAll_;  // joined already: a thread let go of then is not waited for twice
    exited = exited_.wait_for(lock, kJoinBound, [this] { return live_ == 0; });
    if (released_) return joinedAll_;  // another caller joined meanwhile
    threads.swap(threads_);
    ReapRetiredLocked(&threads);
    released_ = true;  // a thread let go of below never calls the thread-safe function again
    joinedAll_ = exited;
  }
  if (!exited) PinAddonModule();
  const std::thread::id me = std::this_thread::get_id();
  for (std::thread& thread : threads) {
    if (exited && thread.get_id() != me) {
      thread.join();  // it has left Work(): returning now
    } else {
      thread.detach();  // stuck in the kernel; it holds its own references and never touches JS again
    }
  }
  tsfn_.Release();
  return exited;
}

void BlockingCalls::Settle(Napi::Env env, uint64_t id, BlockingCall* call, bool ran,
                           BlockingCall::NotRunReason reason) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Napi::Promise::Deferred deferred = it->second;
  pending_.erase(it);
  try {
    deferred.Resolve(ran ? call->Result(env) : call->NotRun(env, reason));
  } catch (const Napi::Error& error) {
    deferred.Reject(error.Value());
  }
  if (pending_.empty() && refed_) {
    tsfn_.Unref(env);
    refed_ = false;
  }
}

void BlockingCalls::Deliver(Napi::Env env) {
  std::vector<Entry> entries;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    entries.swap(done_);
    callPending_ = false;
  }
  for (Entry& entry : entries) Settle(env, entry.id, entry.call.get(), true, BlockingCall::NotRunReason::kWithdrawn);
}

void CallJsWithResults(Napi::Env env, Napi::Function /*callback*/, BlockingCallsContext* context, void* /*data*/) {
  if (env == nullptr) return;
  try {
    context->calls->Deliver(env);
  } catch (const Napi::Error& error) {
    if (!error.Value().IsEmpty()) napi_throw(env, error.Value());
  }
}

}  // namespace fltmgr
