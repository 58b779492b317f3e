// Addon entry: per-environment instance data, connect(), and small helpers.
#include "addon.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../sim/wire.h"
#include "blocking_calls.h"
#include "fltapi.h"
#include "hresult.h"
#include "kernel_bridge.h"
#include "manage.h"
#include "port.h"
#include "receive_loop.h"
#include "send_pool.h"

#if !defined(_WIN32)
#include <sys/un.h>
#endif

namespace fltmgr {
namespace {

// A port may keep as many gets outstanding as the simulator protocol admits, so one receive concurrency limit
// holds on every backend.
static_assert(kMaxReceiveConcurrency == wire::kMaxPendingGets, "one slot limit: receive concurrency = pending gets");

// FilterConnectCommunicationPort runs the minifilter's ConnectNotify (with the simulator, waits for the peer's
// answer): a blocking call, on the environment's executor (the rule: blocking_calls.h).
class ConnectCall : public BlockingCall {
 public:
  ConnectCall(const FilterApi* api, std::u16string name, std::vector<uint8_t> context, DWORD options, bool hasEndpoint,
              std::string endpoint)
      : api_(api),
        name_(std::move(name)),
        context_(std::move(context)),
        options_(options),
        hasEndpoint_(hasEndpoint),
        endpoint_(std::move(endpoint)) {}
  ~ConnectCall() override {
    // Connected but never handed to JS (the environment went away first): do not leak the connection.
    if (handle_ != nullptr && !handedOver_) api_->closeHandle(handle_);
  }

  void Run() override {
    HANDLE handle = INVALID_HANDLE_VALUE;
    hr_ = api_->connect(hasEndpoint_ ? endpoint_.c_str() : nullptr, reinterpret_cast<LPCWSTR>(name_.c_str()), options_,
                        context_.empty() ? nullptr : context_.data(), static_cast<WORD>(context_.size()), &handle);
    if (SUCCEEDED(hr_) && handle != INVALID_HANDLE_VALUE) handle_ = handle;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr_)));
    if (handle_ != nullptr) {
      const bool sync = (options_ & FLT_PORT_FLAG_SYNC_HANDLE) != 0;
      auto port = std::make_shared<PortHandle>(handle_, api_, sync);
      handedOver_ = true;  // the PortHandle owns it now, whatever happens below
      result.Set("port", NativePort::NewInstance(env, std::move(port)));
    }
    return result;
  }

  Napi::Value NotRun(Napi::Env env, NotRunReason) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(HresultFromWin32(ERROR_OPERATION_ABORTED))));
    return result;
  }

 private:
  const FilterApi* api_;
  std::u16string name_;
  std::vector<uint8_t> context_;
  DWORD options_;
  bool hasEndpoint_;
  std::string endpoint_;
  HRESULT hr_ = S_OK;
  HANDLE handle_ = nullptr;
  bool handedOver_ = false;
};

}  // namespace

Addon::Addon(Napi::Env env, Napi::Object exports) {
  // Registered before any port's cleanup hook, so it runs after them (hooks run in reverse order): by then
  // every port has cancelled its I/O and joined its own threads.
  calls = BlockingCalls::Create(env, "fltmgr.connect-close", BlockingCalls::kNoThreadCap, nullptr);
  portConstructor = Napi::Persistent(NativePort::DefineClass(env));
  DefineAddon(exports, {
                           InstanceMethod<&Addon::Connect>("connect"),
                           InstanceMethod<&Addon::Info>("info"),
                           InstanceMethod<&Addon::CheckEndpoint>("checkEndpoint"),
                       });
  exports.Set("peerCredentials", Napi::Function::New<PeerCredentials>(env, "peerCredentials"));
  // The management calls (fltmgr/manager); they run on `calls` too.
  exports.Set("manage", Napi::Function::New<Manage>(env, "manage"));
#if !defined(_WIN32)
  // The kernel harness's bridge (driver images run in this process against the simulator): POSIX hosts only.
  exports.Set("KernelImage", DefineKernelImage(env));
#endif
  // The limits the native layer enforces, for lib/ to check (and explain) before calling in.
  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxConcurrency", Napi::Number::New(env, kMaxReceiveConcurrency));
  limits.Set("maxSendThreads", Napi::Number::New(env, kMaxSendThreads));
  limits.Set("simulatorMaxSendInput", Napi::Number::New(env, wire::kMaxSendInput));
  limits.Set("simulatorMaxReplyData", Napi::Number::New(env, wire::kMaxReplyData));
  limits.Set("simulatorMaxPendingGets", Napi::Number::New(env, wire::kMaxPendingGets));
  exports.Set("limits", limits);
  // The event kinds of a receive batch (lib/binding.ts EventKind is checked against these when it loads).
  Napi::Object eventKinds = Napi::Object::New(env);
  eventKinds.Set("message", Napi::Number::New(env, ReceiveEvent::kMessage));
  eventKinds.Set("replyDone", Napi::Number::New(env, ReceiveEvent::kReplyDone));
  eventKinds.Set("error", Napi::Number::New(env, ReceiveEvent::kError));
  eventKinds.Set("disconnected", Napi::Number::New(env, ReceiveEvent::kDisconnected));
  eventKinds.Set("stopped", Napi::Number::New(env, ReceiveEvent::kStopped));
  exports.Set("eventKinds", eventKinds);
  // The fltuser.h header sizes the library's buffer and reply arithmetic uses (checked when it loads).
  Napi::Object headerSizes = Napi::Object::New(env);
  headerSizes.Set("message", Napi::Number::New(env, static_cast<double>(sizeof(FILTER_MESSAGE_HEADER))));
  headerSizes.Set("reply", Napi::Number::New(env, static_cast<double>(sizeof(FILTER_REPLY_HEADER))));
  exports.Set("headerSizes", headerSizes);
}

// checkEndpoint(endpoint: string) -> undefined, or why the simulator endpoint cannot be used on this host.
Napi::Value Addon::CheckEndpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "endpoint must be a string");
  const std::string text = info[0].As<Napi::String>().Utf8Value();
  if (text.find('\0') != std::string::npos) return Napi::String::New(env, "it contains a NUL character");
  wire::Endpoint endpoint;
  std::string why;
  if (!wire::ParseEndpoint(text.c_str(), &endpoint, &why)) return Napi::String::New(env, why);
#if defined(_WIN32)
  if (endpoint.kind == wire::Endpoint::Kind::kUnix) {
    return Napi::String::New(env, "unix socket endpoints are not supported on Windows: use pipe: or tcp:");
  }
#else
  if (endpoint.kind == wire::Endpoint::Kind::kPipe) {
    return Napi::String::New(env, "pipe: endpoints are Windows named pipes: on this host use unix:PATH or tcp:");
  }
  if (endpoint.kind == wire::Endpoint::Kind::kUnix && endpoint.path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Napi::String::New(env, "the unix socket path is " + std::to_string(endpoint.path.size()) +
                                      " bytes; at most " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                      " fit in a socket address on this host");
  }
#endif
  return env.Undefined();
}

// connect(name: string, options: { backend: 'fltlib'|'simulator', endpoint?: string, context?: Uint8Array,
//                                  syncHandle?: boolean }) -> Promise<{ hresult, port? }>
Napi::Value Addon::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object options = info[1].As<Napi::Object>();
  std::u16string name = info[0].As<Napi::String>().Utf16Value();

  // The backend names are FilterPort.backend's: 'fltlib' (the real Filter Manager) or 'simulator'.
  Napi::Value backendValue = options.Get("backend");
  const std::string backend = backendValue.IsString() ? backendValue.As<Napi::String>().Utf8Value() : std::string();
  if (backend != "fltlib" && backend != "simulator")
    throw Napi::TypeError::New(env, "backend must be 'fltlib' or 'simulator'");
  const FilterApi* api = backend == "fltlib" ? FltlibFilterApi() : SimulatorFilterApi();
  if (api == nullptr) throw Napi::Error::New(env, "fltlib (the real Filter Manager) is not available on this platform");

  std::vector<uint8_t> context;
  Napi::Value contextValue = options.Get("context");
  if (!contextValue.IsUndefined() && !contextValue.IsNull()) {
    if (!contextValue.IsTypedArray() || contextValue.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "context must be a Uint8Array");
    }
    Napi::Uint8Array bytes = contextValue.As<Napi::Uint8Array>();
    if (bytes.ByteLength() > 0xFFFF) throw Napi::RangeError::New(env, "context too large");
    context.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
  }
  DWORD flags = 0;
  if (options.Get("syncHandle").ToBoolean()) flags |= FLT_PORT_FLAG_SYNC_HANDLE;
  Napi::Value endpointValue = options.Get("endpoint");
  const bool hasEndpoint = endpointValue.IsString();
  std::string endpoint = hasEndpoint ? endpointValue.As<Napi::String>().Utf8Value() : std::string();
  if (endpoint.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "endpoint contains a NUL character");

  return calls->Submit(env, std::make_unique<ConnectCall>(api, std::move(name), std::move(context), flags, hasEndpoint,
                                                          std::move(endpoint)));
}

Napi::Value Addon::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("fltlib", Napi::Boolean::New(env, FltlibFilterApi() != nullptr));
#if defined(_WIN32)
  result.Set("platform", Napi::String::New(env, "win32"));
#else
  result.Set("platform", Napi::String::New(env, "posix"));
#endif
  return result;
}

}  // namespace fltmgr

// The macro pastes its argument into an identifier, so it needs an unqualified name.
using FltmgrAddon = fltmgr::Addon;
NODE_API_ADDON(FltmgrAddon)
