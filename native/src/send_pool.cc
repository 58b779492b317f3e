#include "send_pool.h"

#include <cstring>
#include <system_error>

#include "errors.h"

namespace fltmgr {

struct SendContext {
  std::shared_ptr<SendPool> pool;
};

std::shared_ptr<SendPool> SendPool::Create(Napi::Env env, std::shared_ptr<PortHandle> port, uint32_t maxThreads) {
  std::shared_ptr<SendPool> self(new SendPool(std::move(port), maxThreads));
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
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.detach();  // only after env teardown: see Shutdown(false)
  }
}

void SendPool::CleanupHook(void* arg) {
  auto* self = static_cast<SendPool*>(arg);
  self->cleanupHookAdded_ = false;
  self->Shutdown(false);
}

Napi::Promise SendPool::Submit(Napi::Env env, std::vector<uint64_t> input, size_t inputSize, uint32_t outputSize) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  const uint64_t id = nextId_++;
  pending_.emplace(id, deferred);
  if (!refed_) {
    tsfn_.Ref(env);  // a pending send keeps the event loop alive, as any pending I/O does
    refed_ = true;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(Job{id, std::move(input), inputSize, std::vector<uint64_t>((uint64_t{outputSize} + 7) / 8),
                         outputSize, S_OK, 0});
    // idle_ counts threads waiting; a woken thread decrements it only once it runs, so compare with the queue:
    // otherwise a burst sees the same idle thread again and again, and a send stuck in MessageNotify would hold
    // up the ones queued behind it while threads could still be started.
    if (queue_.size() > idle_ && threads_.size() < maxThreads_) {
      std::shared_ptr<SendPool> self = shared_from_this();
      try {
        threads_.emplace_back([self] { self->Work(); });
      } catch (const std::system_error&) {
        // No new thread: the existing ones still drain the queue (there is at least one unless this was the
        // first send, where the caller sees the error below).
        if (threads_.empty()) {
          queue_.pop_back();
          pending_.erase(id);
          if (pending_.empty() && refed_) {
            tsfn_.Unref(env);
            refed_ = false;
          }
          throw;
        }
      }
    }
    wake_.notify_one();
  }
  return deferred.Promise();
}

void SendPool::Work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping
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
    if (!envAlive_) continue;  // nobody to tell; the next wait sees stopping_
    done_.push_back(std::move(job));
    if (!callPending_) {
      callPending_ = true;
      if (tsfn_.NonBlockingCall() != napi_ok) callPending_ = false;
    }
  }
}

void SendPool::Shutdown(bool wait) {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!envAlive_ && stopping_) return;
    stopping_ = true;
    if (!wait) envAlive_ = false;
    wake_.notify_all();
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) {
    if (wait) {
      thread.join();
    } else {
      thread.detach();  // may be inside a MessageNotify that never returns; it holds its own references
    }
  }
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  }
  if (wait) tsfn_.Release();
}

void SendPool::Deliver(Napi::Env env) {
  std::vector<Job> jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs.swap(done_);
    callPending_ = false;
  }
  for (Job& job : jobs) {
    auto it = pending_.find(job.id);
    if (it == pending_.end()) continue;
    Napi::Promise::Deferred deferred = it->second;
    pending_.erase(it);
    Napi::Object result = Napi::Object::New(env);
    result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(job.hr)));
    if (SUCCEEDED(job.hr)) {
      const size_t size = job.returned < job.outputSize ? job.returned : job.outputSize;
      result.Set("output", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(job.output.data()), size));
    }
    deferred.Resolve(result);
  }
  if (pending_.empty() && refed_) {
    tsfn_.Unref(env);
    refed_ = false;
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
