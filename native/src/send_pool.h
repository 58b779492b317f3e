// FilterSendMessage runs on a port's own threads, not on libuv's pool: a send is synchronous and lasts as
// long as the minifilter's MessageNotify, and process.exit() joins libuv's pool, so one hung MessageNotify
// there would hang the exit. Results go to JS through one thread-safe function (one call per batch).
//
// Teardown: no thread of the pool runs after its environment's cleanup returns. The cleanup hook cancels
// what is pending on the handle (FilterApi::abort), so a send waiting for a peer that stopped answering
// returns, and joins the threads. Only a MessageNotify that ignores cancellation can outlast the bound
// (kJoinBound): that thread is then detached and the addon pinned in memory, so the code it returns to stays
// mapped; it never touches JS again.
#pragma once
#include <napi.h>

#include <chrono>
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
  // Sends that can run at once per port (each one a MessageNotify call); more wait in a FIFO queue.
  static constexpr uint32_t kMaxThreads = 4;
  // How long teardown and close() wait for a send thread after cancelling its I/O.
  static constexpr std::chrono::milliseconds kJoinBound{5000};

  static std::shared_ptr<SendPool> Create(Napi::Env env, std::shared_ptr<PortHandle> port);
  ~SendPool();

  // JS thread. Queues a send; the promise resolves { hresult, output? }. *id identifies it for Withdraw().
  Napi::Promise Submit(Napi::Env env, std::vector<uint64_t> input, size_t inputSize, uint32_t outputSize,
                       uint64_t* id);
  // JS thread. Takes a send that no thread has started out of the queue (its promise resolves with
  // ERROR_OPERATION_ABORTED). False if it already runs or finished.
  bool Withdraw(Napi::Env env, uint64_t id);
  // JS thread. No more sends start; idle threads leave. Removes the cleanup hook.
  void Stop();
  // Any thread, after Stop(). Waits (at most kJoinBound) for the threads to leave, then joins them. Callers
  // abort the port first, so that no thread is waiting on the peer. Releases the thread-safe function.
  void Join();

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

  explicit SendPool(std::shared_ptr<PortHandle> port) : port_(std::move(port)) {}
  void Work();
  void Deliver(Napi::Env env);
  void Settle(Napi::Env env, uint64_t id, HRESULT hr, const uint8_t* output, size_t size);
  static void CleanupHook(void* arg);

  std::shared_ptr<PortHandle> port_;
  Napi::Env env_ = Napi::Env(nullptr);
  SendTsfn tsfn_;
  bool cleanupHookAdded_ = false;

  // JS thread only.
  uint64_t nextId_ = 1;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> pending_;
  bool refed_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;    // work or stop, for the threads
  std::condition_variable exited_;  // a thread left Work()
  std::deque<Job> queue_;
  std::vector<Job> done_;
  std::vector<std::thread> threads_;
  uint32_t idle_ = 0;
  uint32_t live_ = 0;  // threads that have not left Work()
  bool stopping_ = false;
  bool envAlive_ = true;
  bool callPending_ = false;
  bool released_ = false;
};

}  // namespace fltmgr
