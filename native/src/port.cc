#include "port.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "hresult.h"
#include "send_pool.h"

namespace fltmgr {
namespace {

// Copies a Uint8Array's bytes into 8-byte-aligned storage (Filter Manager does not align-check buffers, so
// the kernel side may read structs from them directly). Copying also means JS may reuse its buffer at once.
std::vector<uint64_t> CopyAligned(const Napi::Value& value, size_t* size) {
  *size = 0;
  if (value.IsUndefined() || value.IsNull()) return {};
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(value.Env(), "expected a Uint8Array");
  }
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  *size = bytes.ByteLength();
  std::vector<uint64_t> storage((*size + 7) / 8);
  if (*size > 0) std::memcpy(storage.data(), bytes.Data(), *size);
  return storage;
}

uint32_t ToUint32(const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= 4294967295.0) || number != static_cast<double>(static_cast<uint64_t>(number))) {
    throw Napi::RangeError::New(value.Env(), std::string(what) + " must be an integer from 0 to 2^32-1");
  }
  return static_cast<uint32_t>(number);
}

// close(): joins the port's send threads (their I/O was cancelled; the wait is bounded) and closes the handle,
// which runs the minifilter's DisconnectNotify (in simulator mode, waits for the reader thread): blocking calls
// (the rule: blocking_calls.h). Also what a port dropped without close() does, with nobody awaiting it.
class CloseCall : public BlockingCall {
 public:
  CloseCall(std::shared_ptr<PortHandle> port, std::shared_ptr<BlockingCalls> sendPool)
      : port_(std::move(port)), sendPool_(std::move(sendPool)) {}
  ~CloseCall() override {
    if (!ran_) Run();  // never ran (environment teardown withdrew it): close anyway, here
  }
  void Run() override {
    ran_ = true;
    if (sendPool_) sendPool_->Join();
    port_->RequestClose();
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  Napi::Value NotRun(Napi::Env env, NotRunReason) override { return env.Undefined(); }

 private:
  std::shared_ptr<PortHandle> port_;
  std::shared_ptr<BlockingCalls> sendPool_;
  bool ran_ = false;
};

}  // namespace

Napi::Function NativePort::DefineClass(Napi::Env env) {
  return ObjectWrap<NativePort>::DefineClass(env, "NativePort",
                                             {
                                                 InstanceMethod<&NativePort::Send>("send"),
                                                 InstanceMethod<&NativePort::Withdraw>("withdraw"),
                                                 InstanceMethod<&NativePort::Abort>("abort"),
                                                 InstanceMethod<&NativePort::StartReceiving>("startReceiving"),
                                                 InstanceMethod<&NativePort::StopReceiving>("stopReceiving"),
                                                 InstanceMethod<&NativePort::Reply>("reply"),
                                                 InstanceMethod<&NativePort::ReleaseMessage>("release"),
                                                 InstanceMethod<&NativePort::Close>("close"),
                                                 InstanceMethod<&NativePort::Ref>("ref"),
                                                 InstanceMethod<&NativePort::Unref>("unref"),
                                             });
}

Napi::Object NativePort::NewInstance(Napi::Env env, std::shared_ptr<PortHandle> handle) {
  Addon* addon = env.GetInstanceData<Addon>();
  Napi::Object object = addon->portConstructor.New({});
  NativePort* port = NativePort::Unwrap(object);
  port->handle_ = std::move(handle);
  port->envCalls_ = addon->calls;
  return object;
}

NativePort::NativePort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePort>(info), env_(info.Env()) {
  // Env teardown (process or worker exit) closes the handle so that the kernel side sees the disconnect.
  napi_add_env_cleanup_hook(env_, CleanupHook, this);
  cleanupHookAdded_ = true;
}

NativePort::~NativePort() {
  if (cleanupHookAdded_) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  if (receiver_) {
    receiver_->Stop();
    receiver_->Join();
  }
  if (sendPool_) sendPool_->Stop();
  if (closeDone_ || !handle_) return;
  // Dropped without close(): joining the send threads and closing (DisconnectNotify) must not stall the
  // garbage collector on the JS thread. If the executor has stopped (environment teardown), the call's
  // destructor does it here.
  std::unique_ptr<BlockingCall> closing = std::make_unique<CloseCall>(handle_, sendPool_);
  if (envCalls_) (void)envCalls_->Post(closing);
}

void NativePort::CleanupHook(void* arg) {
  // Env teardown (process or worker exit): cancel what waits on the peer, join every thread this port
  // started, and close, so that the kernel side sees the disconnect. The send pool's own hook (registered
  // later, so run earlier) has normally done its part.
  auto* self = static_cast<NativePort*>(arg);
  self->cleanupHookAdded_ = false;
  self->closeDone_ = true;
  if (!self->handle_) return;
  self->handle_->Abort();
  if (self->receiver_) {
    self->receiver_->Stop();
    self->receiver_->Join();
  }
  if (self->sendPool_) {
    self->sendPool_->Stop();
    self->sendPool_->Join();
  }
  self->handle_->RequestClose();
}

Napi::Value NativePort::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t inputSize = 0;
  std::vector<uint64_t> input = CopyAligned(info[0], &inputSize);
  if (inputSize > 0xFFFFFFFFu) throw Napi::RangeError::New(env, "input too large");
  const uint32_t outputSize = ToUint32(info[1], "outputSize");
  if (outputSize > 0x7FFFFFFFu) throw Napi::RangeError::New(env, "outputSize too large");
  if (!sendPool_) sendPool_ = CreateSendPool(env, handle_);
  uint64_t id = 0;
  Napi::Promise promise = sendPool_->Submit(env, MakeSendCall(handle_, std::move(input), inputSize, outputSize), &id);
  // { id, result }: the id lets JS withdraw a send that has not started (AbortSignal).
  Napi::Object pending = Napi::Object::New(env);
  pending.Set("id", Napi::Number::New(env, static_cast<double>(id)));
  pending.Set("result", promise);
  return pending;
}

Napi::Value NativePort::Withdraw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "id must be a number");
  const double id = info[0].As<Napi::Number>().DoubleValue();
  return Napi::Boolean::New(env, sendPool_ && id >= 1 && sendPool_->Withdraw(env, static_cast<uint64_t>(id)));
}

Napi::Value NativePort::Abort(const Napi::CallbackInfo& info) {
  // close(): cancel everything pending on the handle, so that neither the receive thread (in
  // FilterReplyMessage) nor a send thread waits on a peer that stopped answering.
  handle_->Abort();
  return info.Env().Undefined();
}

Napi::Value NativePort::StartReceiving(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (receiver_ && receiver_->running()) throw Napi::Error::New(env, "already receiving");
  if (handle_->syncHandle()) throw Napi::Error::New(env, "a synchronous handle cannot receive messages");
  ReceiveOptions options{};
  options.concurrency = ToUint32(info[0], "concurrency");
  options.bufferSize = ToUint32(info[1], "bufferSize");
  options.maxBufferSize = ToUint32(info[2], "maxBufferSize");
  if (options.concurrency < 1 || options.concurrency > kMaxReceiveConcurrency)
    throw Napi::RangeError::New(env, "concurrency out of range");
  if (options.bufferSize < sizeof(FILTER_MESSAGE_HEADER) || options.maxBufferSize < options.bufferSize ||
      options.maxBufferSize > 0x7FFFFFFFu) {
    throw Napi::RangeError::New(env, "bufferSize out of range");
  }
  if (!info[3].IsFunction()) throw Napi::TypeError::New(env, "onBatch must be a function");
  if (!iocp_) iocp_ = Receiver::Associate(env, handle_);
  receiver_ = Receiver::Start(env, handle_, iocp_, options, info[3].As<Napi::Function>(), refed_);
  return env.Undefined();
}

Napi::Value NativePort::StopReceiving(const Napi::CallbackInfo& info) {
  const bool running = receiver_ && receiver_->running();
  if (running) receiver_->Stop();
  return Napi::Boolean::New(info.Env(), running);
}

Napi::Value NativePort::Reply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!receiver_) throw Napi::Error::New(env, "not receiving");
  const uint32_t slot = ToUint32(info[0], "slot");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "status must be a number");
  const NTSTATUS status = info[1].As<Napi::Number>().Int32Value();
  size_t size = 0;
  std::vector<uint64_t> data = CopyAligned(info[2], &size);
  const HRESULT hr = receiver_->Reply(slot, status, reinterpret_cast<const uint8_t*>(data.data()), size);
  return Napi::Number::New(env, static_cast<uint32_t>(hr));
}

Napi::Value NativePort::ReleaseMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!receiver_) throw Napi::Error::New(env, "not receiving");
  const HRESULT hr = receiver_->Release(ToUint32(info[0], "slot"));
  return Napi::Number::New(env, static_cast<uint32_t>(hr));
}

Napi::Value NativePort::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (receiver_ && receiver_->running()) throw Napi::Error::New(env, "stop receiving before closing");
  // lib/port.ts close() aborted the handle first, so the send threads are returning; the close call joins them
  // and closes off the JS thread and off libuv's pool (blocking_calls.h).
  if (sendPool_) sendPool_->Stop();
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  }
  closeDone_ = true;
  return envCalls_->Submit(env, std::make_unique<CloseCall>(handle_, sendPool_));
}

Napi::Value NativePort::Ref(const Napi::CallbackInfo& info) {
  refed_ = true;
  if (receiver_) receiver_->Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value NativePort::Unref(const Napi::CallbackInfo& info) {
  refed_ = false;
  if (receiver_) receiver_->Unref(info.Env());
  return info.Env().Undefined();
}

}  // namespace fltmgr
