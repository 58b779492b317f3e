// Node-API side of the receive loop: one thread-safe-function call per batch of events, never a
// BlockingCall (JS may join the receive thread), and an env cleanup hook so that process or worker exit stops
// and joins the thread.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "receive_loop.h"

namespace fltmgr {

struct ReceiverContext;  // what the thread-safe function carries (keeps the Receiver alive)
void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* data);
using BatchTsfn = Napi::TypedThreadSafeFunction<ReceiverContext, void, CallJsWithBatch>;

class Receiver {
 public:
  // Creates the completion port for a port handle (once per handle). Throws a JS error.
  static std::shared_ptr<CompletionPort> Associate(Napi::Env env, const std::shared_ptr<PortHandle>& port);
  // Starts a receive loop whose events reach onBatch(batch). Throws a JS error.
  static std::shared_ptr<Receiver> Start(Napi::Env env, const std::shared_ptr<PortHandle>& port,
                                         const std::shared_ptr<CompletionPort>& iocp, const ReceiveOptions& options,
                                         Napi::Function onBatch, bool ref);
  ~Receiver();

  void Stop() { loop_->Stop(); }
  void Join();  // joins the thread, releases the thread-safe function and the cleanup hook
  HRESULT Reply(uint32_t slot, NTSTATUS status, const uint8_t* data, size_t size) {
    return loop_->Reply(slot, status, data, size);
  }
  HRESULT Release(uint32_t slot) { return loop_->Release(slot); }
  void Ref(Napi::Env env);
  void Unref(Napi::Env env);
  bool running() const { return loop_->started() && !loop_->joined(); }

 private:
  friend void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* data);
  Receiver() = default;
  static void Notify(void* self);
  static void CleanupHook(void* self);
  Napi::Value TakeBatch(Napi::Env env);

  std::shared_ptr<PortHandle> port_;
  std::unique_ptr<ReceiveLoop> loop_;
  BatchTsfn tsfn_;
  Napi::Env env_ = Napi::Env(nullptr);
  bool cleanupHookAdded_ = false;
  bool released_ = false;
  std::vector<ReceiveEvent> events_;
};

}  // namespace fltmgr
