#pragma once
#include <napi.h>

namespace fltmgr {

// Per-environment state (main thread and each worker thread get their own).
class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  Napi::FunctionReference portConstructor;

 private:
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value CheckEndpoint(const Napi::CallbackInfo& info);
};

Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace fltmgr
