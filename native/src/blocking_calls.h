// The threading rule, for every fltlib call that can wait on the kernel side (FilterConnectCommunicationPort
// runs the minifilter's ConnectNotify, FilterSendMessage its MessageNotify, closing the handle its
// DisconnectNotify; with the simulator, each waits on a peer process):
//
//   such a call runs on the addon's own threads (a BlockingCalls executor), never on the JS thread and never
//   on libuv's pool.
//
// Why: libuv's pool has 4 threads by default, shared with fs, dns, crypto and zlib, and process.exit() joins
// it. A ConnectNotify or MessageNotify that never returns would take one of those threads for good (four of
// them stall all fs calls of the process) and would hang the exit. Our threads can be let go instead.
//
// What an executor guarantees:
// - results reach JS once, through a thread-safe function (NonBlockingCall only: the JS thread may be joining
//   the very thread that calls it); a call that never ran settles as NotRun;
// - teardown is bounded: the environment's cleanup hook first runs onTeardown (cancel what waits on the peer:
//   FilterApi::abort), then waits at most kJoinBound for the threads and joins them, so no thread runs after the
//   cleanup returns. Only a call that ignores cancellation (a ConnectNotify cannot be cancelled at all) can
//   outlast the bound: its thread is detached and the addon pinned in memory so the code it returns to stays
//   mapped; it never touches JS again, and the call's destructor frees what it holds (a connection made too
//   late is closed);
// - memory a call uses belongs to the call, which is freed only after its blocking call returned.
//
// Instances: one per port for sends (kMaxSendThreads, send_pool.h: each send is one MessageNotify, a FIFO
// queue behind them); one per environment for connect and close (no cap: a connect stuck in one driver's
// ConnectNotify must not hold up a close or a connect elsewhere; a thread is started when no idle one is left).
#pragma once
#include <napi.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fltmgr {

// One blocking call and its result.
class BlockingCall {
 public:
  virtual ~BlockingCall() = default;
  // An executor thread: the call that may wait on the kernel side. No JS here.
  virtual void Run() = 0;
  // JS thread, after Run(): what the promise resolves with.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // JS thread: what the promise resolves with when Run() never happened: withdrawn (Withdraw(), or queued when
  // the executor stopped) or submitted after it stopped.
  enum class NotRunReason { kWithdrawn, kStopped };
  virtual Napi::Value NotRun(Napi::Env env, NotRunReason reason) = 0;
};

struct BlockingCallsContext;
void CallJsWithResults(Napi::Env env, Napi::Function callback, BlockingCallsContext* context, void* data);
using ResultsTsfn = Napi::TypedThreadSafeFunction<BlockingCallsContext, void, CallJsWithResults>;

class BlockingCalls : public std::enable_shared_from_this<BlockingCalls> {
 public:
  // How long teardown (and close(), for a port's sends) waits for the threads once their calls were cancelled.
  static constexpr std::chrono::milliseconds kJoinBound{5000};
  static constexpr uint32_t kNoThreadCap = 0;

  // maxThreads: calls that run at once (kNoThreadCap: every call gets a thread; idle threads beyond one then
  // leave). onTeardown: run first by the environment's cleanup hook; may be empty.
  static std::shared_ptr<BlockingCalls> Create(Napi::Env env, const char* name, uint32_t maxThreads,
                                               std::function<void()> onTeardown);
  ~BlockingCalls();

  // JS thread. Queues a call; the promise resolves with its Result() (or NotRun()). *id is for Withdraw().
  // Throws if no thread can be started and none runs.
  Napi::Promise Submit(Napi::Env env, std::unique_ptr<BlockingCall> call, uint64_t* id = nullptr);
  // Any thread that may not touch JS (a finalizer): queues a call whose result nobody awaits; it does not keep
  // the event loop alive. False (and the call not taken) once stopped or without a thread.
  bool Post(std::unique_ptr<BlockingCall>& call);
  // JS thread. Takes a call no thread has started out of the queue (it settles as withdrawn). False if it
  // already runs or finished.
  bool Withdraw(Napi::Env env, uint64_t id);
  // JS thread. No more calls start (queued ones settle as withdrawn); idle threads leave. Removes the cleanup
  // hook.
  void Stop();
  // Any thread but one of this executor's, after Stop(). Waits at most kJoinBound for the threads to leave,
  // joins them (or lets go of those still in a call), releases the thread-safe function. Callers cancel what
  // the threads wait on first. True when every thread was joined (none was let go of in a call).
  bool Join();

 private:
  struct Entry {
    uint64_t id;  // 0: posted, nobody awaits it
    std::unique_ptr<BlockingCall> call;
  };
  friend void CallJsWithResults(Napi::Env env, Napi::Function callback, BlockingCallsContext* context, void* data);

  BlockingCalls(uint32_t maxThreads, std::function<void()> onTeardown)
      : maxThreads_(maxThreads), onTeardown_(std::move(onTeardown)) {}
  // With mutex_ held. Starts a thread if the queue has more calls than idle threads and the cap allows.
  // False if none could be started.
  bool StartThreadLocked();
  void ReapRetiredLocked(std::vector<std::thread>* out);
  void Work();
  void Deliver(Napi::Env env);
  void Settle(Napi::Env env, uint64_t id, BlockingCall* call, bool ran, BlockingCall::NotRunReason reason);
  static void CleanupHook(void* arg);

  const uint32_t maxThreads_;
  const std::function<void()> onTeardown_;
  Napi::Env env_ = Napi::Env(nullptr);
  ResultsTsfn tsfn_;
  bool cleanupHookAdded_ = false;

  // JS thread only.
  uint64_t nextId_ = 1;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> pending_;
  bool refed_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;    // work or stop, for the threads
  std::condition_variable exited_;  // a thread left Work()
  std::deque<Entry> queue_;
  std::vector<Entry> done_;
  std::vector<std::thread> threads_;
  std::vector<std::thread> retired_;  // left Work() while the executor runs on: joined by the next caller
  uint32_t idle_ = 0;
  uint32_t live_ = 0;  // threads that have not left Work()
  bool stopping_ = false;
  bool envAlive_ = true;
  bool callPending_ = false;
  bool released_ = false;
  bool joinedAll_ = false;  // what Join() found
};

}  // namespace fltmgr
