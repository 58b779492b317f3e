// FilterSendMessage runs on a port's own threads, not on libuv's pool: a send is synchronous and lasts as
// long as the minifilter's MessageNotify, and process.exit() joins libuv's pool, so one hung MessageNotify
// there would hang the exit. Results go to JS through one thread-safe function (one call per batch).
#pragma once
#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "port_handle.h"

namespace fltmgr {

struct SendContext;
void CallJsWithSendResults(Napi::Env env, Napi::Function callback, SendContext* context, void* data);
using SendTsfn = Napi::TypedThreadSafeFunction<SendContext, void, CallJsWithSendResults>;

class SendPool : public std::enable_shared_from_this<SendPool> {
 public:
  static std::shared_ptr<SendPool> Create(Napi::Env env, std::shared_ptr<PortHandle> port, uint32_t maxThreads);
  ~SendPool();

  // JS thread. Queues a send; the promise resolves { hresult, output? }.
  Napi::Promise Submit(Napi::Env env, std::vector<uint64_t> input, size_t inputSize, uint32_t outputSize);
  // JS thread. Stops the threads. With wait, joins them (they are idle when the caller has awaited every
  // send); without (env teardown), lets busy ones finish on their own: they never touch JS afterwards.
  void Shutdown(bool wait);

 private:
  struct Job {
    uint64_t id;
    std::vector<uint64_t> input;  // 8-byte aligned copies
    size_t inputSize;
    std::vector<uint64_t> output;
    uint32_t outputSize;
    HRESULT hr;
    DWORD returned;
  };
  friend void CallJsWithSendResults(Napi::Env env, Napi::Function callback, SendContext* context, void* data);

  SendPool(std::shared_ptr<PortHandle> port, uint32_t maxThreads) : port_(std::move(port)), maxThreads_(maxThreads) {}
  void Work();
  void Deliver(Napi::Env env);
  static void CleanupHook(void* arg);

  std::shared_ptr<PortHandle> port_;
  const uint32_t maxThreads_;
  Napi::Env env_ = Napi::Env(nullptr);
  SendTsfn tsfn_;
  bool cleanupHookAdded_ = false;

  // JS thread only.
  uint64_t nextId_ = 1;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> pending_;
  bool refed_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::vector<Job> done_;
  std::vector<std::thread> threads_;
  uint32_t idle_ = 0;
  bool stopping_ = false;
  bool envAlive_ = true;
  bool callPending_ = false;
};

}  // namespace fltmgr
