// NativePort: the JS object behind FilterPort. Thin: validation of user input and all error messages live
// in TypeScript; this class checks only what keeps native memory safe.
#pragma once
#include <napi.h>

#include <memory>

#include "blocking_calls.h"
#include "port_handle.h"
#include "receive_loop_napi.h"
#include "send_pool.h"

namespace fltmgr {

class NativePort : public Napi::ObjectWrap<NativePort> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<PortHandle> handle);
  explicit NativePort(const Napi::CallbackInfo& info);
  ~NativePort() override;

 private:
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Withdraw(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value StartReceiving(const Napi::CallbackInfo& info);
  Napi::Value StopReceiving(const Napi::CallbackInfo& info);
  Napi::Value Reply(const Napi::CallbackInfo& info);
  Napi::Value ReleaseMessage(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  static void CleanupHook(void* arg);

  std::shared_ptr<PortHandle> handle_;
  std::shared_ptr<CompletionPort> iocp_;  // created on first receive; one association per handle
  std::shared_ptr<Receiver> receiver_;
  std::shared_ptr<BlockingCalls> sendPool_;  // created on first send
  std::shared_ptr<BlockingCalls> envCalls_;  // the environment's, for close (Addon::calls)
  Napi::Env env_ = Napi::Env(nullptr);
  bool refed_ = true;
  bool cleanupHookAdded_ = false;
  bool closeDone_ = false;  // close() handed the closing to envCalls_, or teardown closed
};

}  // namespace fltmgr
