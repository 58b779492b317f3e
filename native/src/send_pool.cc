#include "send_pool.h"

#include <cstring>
#include <system_error>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include "hresult.h"

namespace fltmgr {

struct SendContext {
  std::shared_ptr<SendPool> pool;
};

namespace {

const HRESULT kAborted = HresultFromWin32(ERROR_OPERATION_ABORTED);

// Keeps this module mapped for the rest of the process: a thread that outlived its environment (stuck in a
// MessageNotify that ignores cancellation) still has to return through our code, and Node unloads an addon
// when the last environment that loaded it goes away.
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

}  // namespace

std::shared_ptr<SendPool> SendPool::Create(Napi::Env env, std::shared_ptr<PortHandle> port) {
  std::shared_ptr<SendPool> self(new SendPool(std::move(port)));
  self->env_ = env;
  auto* context = new SendContext{self};
  // The callback is native (CallJsWithSendResults); the JS function is a placeholder it never calls.
  self->tsfn_ = SendTsfn::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "fltmgr.send", 0, 1,
                              context, [](Napi::Env, void*, SendContext* ctx) { delete ctx; });
  self->tsfn_.Unref(env);  // referenced only while sends are in flight
  // After the thread-safe function, so that this hook runs before Node tears that function down.
  napi_add_env_cleanup_hook(env, CleanupHook, self.get());
  self->cleanupHookAdded_ = true;
  return self;
}

SendPool::~SendPool() {
  // Join() has taken every thread unless the last reference is dropped by a pool thread itself as it returns.
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.detach();
  }
}

void SendPool::CleanupHook(void* arg) {
  // Environment teardown (process or worker exit): nobody will hear results any more. Cancel what waits on the
  // peer, then join, so that no pool thread runs after this hook returns.
  auto* self = static_cast<SendPool*>(arg);
  self->cleanupHookAdded_ = false;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->envAlive_ = false;
  }
  self->port_->Abort();
  self->Stop();
  self->Join();
}

Napi::Promise SendPool::Submit(Napi::Env env, std::vector<uint64_t> input, size_t inputSize, uint32_t outputSize,
                               uint64_t* id) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  *id = nextId_++;
  pending_.emplace(*id, deferred);
  if (!refed_) {
    tsfn_.Ref(env);  // a pending send keeps the event loop alive, as any pending I/O does
    refed_ = true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) {
    lock.unlock();
    Settle(env, *id, HresultFromWin32(ERROR_INVALID_HANDLE), nullptr, 0);
    return deferred.Promise();
  }
  queue_.push_back(Job{*id, std::move(input), inputSize, std::vector<uint64_t>((uint64_t{outputSize} + 7) / 8),
                       outputSize, S_OK, 0});
  // idle_ counts threads waiting; a woken thread decrements it only once it runs, so compare with the queue:
  // otherwise a burst sees the same idle thread again and again, and a send stuck in MessageNotify would hold
  // up the ones queued behind it while threads could still be started.
  if (queue_.size() > idle_ && threads_.size() < kMaxThreads) {
    std::shared_ptr<SendPool> self = shared_from_this();
    try {
      threads_.emplace_back([self] { self->Work(); });
      ++live_;
    } catch (const std::system_error&) {
      // No new thread: the existing ones still drain the queue (there is at least one unless this was the
      // first send, where the caller sees the error below).
      if (threads_.empty()) {
        queue_.pop_back();
        lock.unlock();
        pending_.erase(*id);
        if (pending_.empty() && refed_) {
          tsfn_.Unref(env);
          refed_ = false;
        }
        throw;
      }
    }
  }
  wake_.notify_one();
  return deferred.Promise();
}

bool SendPool::Withdraw(Napi::Env env, uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = queue_.begin();
    while (it != queue_.end() && it->id != id) ++it;
    if (it == queue_.end()) return false;
    queue_.erase(it);
  }
  Settle(env, id, kAborted, nullptr, 0);
  return true;
}

void SendPool::Work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (stopping_) break;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    {
      PortUse use(port_);
      if (use) {
        DWORD returned = 0;
        job.hr = port_->api()->sendMessage(port_->handle(), job.inputSize ? job.input.data() : nullptr,
                                           static_cast<DWORD>(job.inputSize),
                                           job.outputSize ? job.output.data() : nullptr, job.outputSize, &returned);
        job.returned = returned;
      } else {
        job.hr = HresultFromWin32(ERROR_INVALID_HANDLE);
      }
    }
    lock.lock();
    if (!envAlive_) continue;  // nobody to tell
    done_.push_back(std::move(job));
    if (!callPending_) {
      callPending_ = true;
      if (tsfn_.NonBlockingCall() != napi_ok) callPending_ = false;
    }
  }
  --live_;
  exited_.notify_all();
}

void SendPool::Stop() {
  std::deque<Job> withdrawn;
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
  for (const Job& job : withdrawn) Settle(env_, job.id, kAborted, nullptr, 0);
}

void SendPool::Join() {
  std::vector<std::thread> threads;
  bool exited = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    exited = exited_.wait_for(lock, kJoinBound, [this] { return live_ == 0; });
    threads.swap(threads_);
    if (released_) return;
    released_ = true;
  }
  if (!exited) PinAddonModule();
  for (std::thread& thread : threads) {
    if (exited) {
      thread.join();  // it has left Work(): returning now
    } else {
      thread.detach();  // stuck in the kernel; it holds its own references and never touches JS again
    }
  }
  tsfn_.Release();
}

void SendPool::Settle(Napi::Env env, uint64_t id, HRESULT hr, const uint8_t* output, size_t size) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Napi::Promise::Deferred deferred = it->second;
  pending_.erase(it);
  Napi::Object result = Napi::Object::New(env);
  result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr)));
  if (SUCCEEDED(hr)) result.Set("output", Napi::Buffer<uint8_t>::Copy(env, output, size));
  deferred.Resolve(result);
  if (pending_.empty() && refed_) {
    tsfn_.Unref(env);
    refed_ = false;
  }
}

void SendPool::Deliver(Napi::Env env) {
  std::vector<Job> jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs.swap(done_);
    callPending_ = false;
  }
  for (Job& job : jobs) {
    // Never more than the kernel said it wrote, nor more than the buffer.
    const size_t size = job.returned < job.outputSize ? job.returned : job.outputSize;
    Settle(env, job.id, job.hr, reinterpret_cast<const uint8_t*>(job.output.data()), size);
  }
}

void CallJsWithSendResults(Napi::Env env, Napi::Function /*callback*/, SendContext* context, void* /*data*/) {
  if (env == nullptr) return;
  try {
    context->pool->Deliver(env);
  } catch (const Napi::Error& error) {
    if (!error.Value().IsEmpty()) napi_throw(env, error.Value());
  }
}

}  // namespace fltmgr
