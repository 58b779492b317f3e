#pragma once
#include <napi.h>

#include <memory>

#include "blocking_calls.h"

namespace fltmgr {

// Per-environment state (main thread and each worker thread get their own).
class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  Napi::FunctionReference portConstructor;
  // Connect and close run here (blocking_calls.h); ports hold a reference.
  std::shared_ptr<BlockingCalls> calls;

 private:
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value CheckEndpoint(const Napi::CallbackInfo& info);
};

Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace fltmgr
