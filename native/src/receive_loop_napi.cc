#include "receive_loop_napi.h"

#include "hresult.h"

namespace fltmgr {

struct ReceiverContext {
  std::shared_ptr<Receiver> receiver;
};

namespace {
Napi::Error SyscallError(Napi::Env env, const char* message, const char* syscall, HRESULT hr) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr)));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}
}  // namespace

std::shared_ptr<CompletionPort> Receiver::Associate(Napi::Env env, const std::shared_ptr<PortHandle>& port) {
  HRESULT hr = S_OK;
  std::shared_ptr<CompletionPort> iocp = CompletionPort::Associate(*port, &hr);
  if (!iocp) {
    throw SyscallError(env, "the port handle cannot be associated with an I/O completion port",
                       "CreateIoCompletionPort", hr);
  }
  return iocp;
}

std::shared_ptr<Receiver> Receiver::Start(Napi::Env env, const std::shared_ptr<PortHandle>& port,
                                          const std::shared_ptr<CompletionPort>& iocp, const ReceiveOptions& options,
                                          Napi::Function onBatch, bool ref) {
  std::shared_ptr<Receiver> self(new Receiver());
  self->env_ = env;
  self->port_ = port;
  self->loop_ = std::make_unique<ReceiveLoop>(port, iocp, options, &Receiver::Notify, self.get());
  auto* context = new ReceiverContext{self};
  self->tsfn_ = BatchTsfn::New(env, onBatch, "fltmgr.receive", 0, 1, context,
                               [](Napi::Env, void*, ReceiverContext* ctx) { delete ctx; });
  if (!ref) self->tsfn_.Unref(env);
  bool started = false;
  try {
    started = self->loop_->Start();
  } catch (const std::system_error&) {
    started = false;
  }
  if (!started) {
    self->released_ = true;
    self->tsfn_.Release();
    throw Napi::Error::New(env, "cannot start receiving: the port is closed or no thread could be started");
  }
  // Registered after the thread-safe function so that it runs before Node tears that function down
  // (cleanup hooks run in reverse order of registration).
  napi_add_env_cleanup_hook(env, &Receiver::CleanupHook, self.get());
  self->cleanupHookAdded_ = true;
  return self;
}

Receiver::~Receiver() = default;  // loop_ joins if nobody did (it never waits for JS)

void Receiver::Notify(void* self) {
  // Receive thread. NonBlockingCall only: the JS thread may be joining this thread.
  static_cast<Receiver*>(self)->tsfn_.NonBlockingCall();
}

void Receiver::CleanupHook(void* self) {
  // Environment teardown (process or worker exit): stop and join without any help from JS. The receive thread
  // may be inside FilterReplyMessage waiting for a peer that stopped answering: cancel first.
  auto* receiver = static_cast<Receiver*>(self);
  receiver->cleanupHookAdded_ = false;
  receiver->port_->Abort();
  receiver->Stop();
  receiver->Join();
}

void Receiver::Join() {
  loop_->Join();
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(env_, &Receiver::CleanupHook, this);
  }
  if (!released_ && loop_->joined()) {
    released_ = true;
    tsfn_.Release();
  }
}

void Receiver::Ref(Napi::Env env) {
  if (running()) tsfn_.Ref(env);
}
void Receiver::Unref(Napi::Env env) {
  if (running()) tsfn_.Unref(env);
}

Napi::Value Receiver::TakeBatch(Napi::Env env) {
  loop_->TakeEvents(events_);
  // Flat layout, 4 values per event: kind, slot, hresult, extra (message: {replyLength, id, data}).
  Napi::Array batch = Napi::Array::New(env, events_.size() * 4);
  uint32_t index = 0;
  bool stopped = false;
  for (const ReceiveEvent& event : events_) {
    batch.Set(index++, Napi::Number::New(env, event.kind));
    batch.Set(index++, Napi::Number::New(env, event.slot));
    batch.Set(index++, Napi::Number::New(env, static_cast<uint32_t>(event.hr)));
    if (event.kind == ReceiveEvent::kMessage) {
      const FILTER_MESSAGE_HEADER& header = loop_->Header(event.slot);
      Napi::Object message = Napi::Object::New(env);
      message.Set("replyLength", Napi::Number::New(env, header.ReplyLength));
      message.Set("id", Napi::BigInt::New(env, static_cast<uint64_t>(header.MessageId)));
      // One copy, straight from the request buffer: it is not reused until JS replies or releases.
      message.Set("data", Napi::Buffer<uint8_t>::Copy(env, loop_->Payload(event.slot), loop_->PayloadSize(event.slot)));
      batch.Set(index++, message);
    } else {
      batch.Set(index++, env.Undefined());
    }
    if (event.kind == ReceiveEvent::kStopped) stopped = true;
  }
  if (stopped) Join();  // the thread has pushed its last event and is returning
  return batch;
}

void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* /*data*/) {
  if (env == nullptr || callback.IsEmpty()) return;  // torn down
  // Called from a C callback: no C++ exception may escape. lib/port.ts runs no user code synchronously in the
  // callback, so it does not throw; if it did, the error is handed back to Node (which warns, DEP0168). While a
  // worker terminates JS cannot run at all and the error carries no value: nothing to report.
  try {
    Napi::Value batch = context->receiver->TakeBatch(env);
    callback.Call({batch});
  } catch (const Napi::Error& error) {
    if (!error.Value().IsEmpty()) napi_throw(env, error.Value());
  }
}

}  // namespace fltmgr
