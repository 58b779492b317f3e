#include "receiver.h"

#include <algorithm>
#include <cstring>
#include <system_error>

#include "errors.h"

namespace fltmgr {
namespace {

// Completion keys. Port completions carry kIoKey (set when the port is associated with the IOCP); the other
// two are packets we post ourselves.
constexpr ULONG_PTR kIoKey = 1;
constexpr ULONG_PTR kCommandKey = 2;
constexpr ULONG_PTR kStopKey = 3;
constexpr ULONG kBatchSize = 64;
constexpr DWORD kHeaderSize = sizeof(FILTER_MESSAGE_HEADER);

// Whether a get's completion byte count includes FILTER_MESSAGE_HEADER. The simulator says yes; on Windows
// this is not documented ([unverified], docs/fltmgr-facts.md): the windows-driver target checks it.
constexpr bool kCompletionCountsHeader = true;

const HRESULT kIoPending = HresultFromWin32(ERROR_IO_PENDING);
const HRESULT kAborted = HresultFromWin32(ERROR_OPERATION_ABORTED);
const HRESULT kBrokenPipe = HresultFromWin32(ERROR_BROKEN_PIPE);  // Wine: close with reads pending
const HRESULT kInvalidHandle = HresultFromWin32(ERROR_INVALID_HANDLE);
const HRESULT kInsufficientBuffer = HresultFromWin32(ERROR_INSUFFICIENT_BUFFER);

// OVERLAPPED must be the first member of a standard-layout base so that the pointer the IOCP hands back
// converts to the request (CONTAINING_RECORD without offsetof on a non-standard-layout type).
struct RequestBase {
  OVERLAPPED ov;
};

}  // namespace

struct ReceiverContext {
  std::shared_ptr<Receiver> receiver;
};

struct Receiver::Request : RequestBase {
  enum class State : uint8_t { kIdle, kPending, kWithJs, kCommand };
  enum class Command : uint8_t { kNone, kReply, kRelease };
  uint32_t slot = 0;
  State state = State::kIdle;
  Command command = Command::kNone;
  std::unique_ptr<uint64_t[]> buffer;  // uint64_t: 8-byte aligned, as FILTER_MESSAGE_HEADER wants
  DWORD bufferSize = 0;
  DWORD bytes = 0;
  std::vector<uint64_t> reply;
  DWORD replySize = 0;

  FILTER_MESSAGE_HEADER* header() { return reinterpret_cast<FILTER_MESSAGE_HEADER*>(buffer.get()); }
  const uint8_t* payload() const { return reinterpret_cast<const uint8_t*>(buffer.get()) + kHeaderSize; }
  DWORD payloadSize() const {
    const DWORD count = kCompletionCountsHeader ? bytes : bytes + kHeaderSize;
    return count > kHeaderSize ? std::min(count, bufferSize) - kHeaderSize : 0;
  }
  void Allocate(DWORD size) {
    buffer.reset(new uint64_t[(size + 7) / 8]);
    bufferSize = size;
  }
};

Receiver::Request* Receiver::FromOverlapped(OVERLAPPED* overlapped) {
  return static_cast<Request*>(reinterpret_cast<RequestBase*>(overlapped));
}

Receiver::Receiver(std::shared_ptr<PortHandle> port, std::shared_ptr<CompletionPort> iocp,
                   const ReceiverOptions& options)
    : port_(std::move(port)),
      options_(options),
      completionPort_(std::move(iocp)),
      iocp_(completionPort_->handle()),
      heldByJs_(options.concurrency, false) {
  requests_.reserve(options.concurrency);
  for (uint32_t i = 0; i < options.concurrency; ++i) {
    auto request = std::make_unique<Request>();
    request->slot = i;
    request->Allocate(options.bufferSize);
    requests_.push_back(std::move(request));
  }
  outbox_.reserve(options.concurrency * 2 + 4);
}

// The thread is joined before the last reference goes (Join() or the env cleanup hook).
Receiver::~Receiver() = default;

static void ReceiverCleanupHook(void* arg) {
  // Environment teardown (process exit, worker exit): stop and join without any help from JS.
  auto* receiver = static_cast<Receiver*>(arg);
  receiver->Stop();
  receiver->Join();
}

static Napi::Error SyscallError(Napi::Env env, const char* message, const char* syscall, HRESULT hr) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr)));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

std::shared_ptr<CompletionPort> Receiver::Associate(Napi::Env env, const std::shared_ptr<PortHandle>& port) {
  PortUse use(port);
  if (!use) throw Napi::Error::New(env, "port is closed");
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (iocp == nullptr) {
    throw SyscallError(env, "CreateIoCompletionPort failed", "CreateIoCompletionPort", LastErrorHresult());
  }
  auto completionPort = std::make_shared<CompletionPort>(iocp);
  if (CreateIoCompletionPort(port->handle(), iocp, kIoKey, 0) == nullptr) {
    throw SyscallError(env, "the port handle cannot be associated with an I/O completion port",
                       "CreateIoCompletionPort", LastErrorHresult());
  }
  return completionPort;
}

std::shared_ptr<Receiver> Receiver::Start(Napi::Env env, const std::shared_ptr<PortHandle>& port,
                                          const std::shared_ptr<CompletionPort>& iocp,
                                          const ReceiverOptions& options, Napi::Function onBatch, bool ref) {
  std::shared_ptr<Receiver> self(new Receiver(port, iocp, options));
  self->env_ = env;
  auto* context = new ReceiverContext{self};
  self->tsfn_ = BatchTsfn::New(env, onBatch, "fltmgr.receive", 0, 1, context,
                               [](Napi::Env, void*, ReceiverContext* ctx) { delete ctx; });
  if (!ref) self->tsfn_.Unref(env);
  // Held by the receive thread until it exits, so the handle outlives every get it posts.
  if (!port->Acquire()) {
    self->tsfn_.Release();
    throw Napi::Error::New(env, "port is closed");
  }
  try {
    self->thread_ = std::thread([raw = self.get()] { raw->Run(); });
  } catch (const std::system_error&) {
    port->Release();
    self->tsfn_.Release();
    throw Napi::Error::New(env, "cannot start the receive thread");
  }
  self->started_ = true;
  // Registered after the thread-safe function so that it runs before Node tears that function down
  // (cleanup hooks run in reverse order of registration).
  napi_add_env_cleanup_hook(env, ReceiverCleanupHook, self.get());
  self->cleanupHookAdded_ = true;
  return self;
}

void Receiver::Stop() {
  if (!started_ || stopPosted_ || joined_) return;
  stopPosted_ = true;
  PostQueuedCompletionStatus(iocp_, 0, kStopKey, nullptr);
}

void Receiver::Join() {
  if (!started_ || joined_) return;
  if (thread_.joinable()) thread_.join();
  joined_ = true;
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(env_, ReceiverCleanupHook, this);
  }
}

void Receiver::Ref(Napi::Env env) {
  if (running()) tsfn_.Ref(env);
}
void Receiver::Unref(Napi::Env env) {
  if (running()) tsfn_.Unref(env);
}

HRESULT Receiver::Reply(uint32_t slot, NTSTATUS status, const uint8_t* data, size_t size) {
  if (slot >= requests_.size() || !heldByJs_[slot] || stopPosted_) return E_INVALIDARG;
  Request& request = *requests_[slot];
  const ULONG replyLength = request.header()->ReplyLength;
  if (size > 0xFFFFFFFFu - kHeaderSize || kHeaderSize + size > replyLength) return E_INVALIDARG;
  request.replySize = static_cast<DWORD>(kHeaderSize + size);
  request.reply.resize((request.replySize + 7) / 8);
  auto* header = reinterpret_cast<FILTER_REPLY_HEADER*>(request.reply.data());
  header->Status = status;
  header->MessageId = request.header()->MessageId;
  if (size > 0) std::memcpy(reinterpret_cast<uint8_t*>(request.reply.data()) + kHeaderSize, data, size);
  request.command = Request::Command::kReply;
  heldByJs_[slot] = false;
  if (!PostQueuedCompletionStatus(iocp_, 0, kCommandKey, &request.ov)) return LastErrorHresult();
  return S_OK;
}

HRESULT Receiver::Release(uint32_t slot) {
  if (slot >= requests_.size() || !heldByJs_[slot]) return E_INVALIDARG;
  Request& request = *requests_[slot];
  request.command = Request::Command::kRelease;
  heldByJs_[slot] = false;
  if (stopPosted_) return S_OK;  // the thread is draining; it does not re-post gets any more
  if (!PostQueuedCompletionStatus(iocp_, 0, kCommandKey, &request.ov)) return LastErrorHresult();
  return S_OK;
}

// ---------------------------------------------------------------------------------------------------
// Receive thread

void Receiver::Run() {
  for (auto& request : requests_) PostGet(*request);
  Flush();
  OVERLAPPED_ENTRY entries[kBatchSize];
  while (!(stopping_ && outstanding_ == 0)) {
    // Wine writes only the low 32 bits of Internal: start from zeros (docs/fltmgr-facts.md).
    std::memset(entries, 0, sizeof(entries));
    ULONG removed = 0;
    if (!GetQueuedCompletionStatusEx(iocp_, entries, kBatchSize, &removed, INFINITE, FALSE)) {
      const DWORD error = GetLastError();
      if (error == WAIT_TIMEOUT) continue;
      // The IOCP itself failed (closed under us): nothing more can be dequeued, so nothing can be drained.
      Push({Event::kError, 0, HresultFromWin32(error)});
      break;
    }
    for (ULONG i = 0; i < removed; ++i) Dispatch(entries[i]);
    Flush();
  }
  port_->Release();
  Push({Event::kStopped, 0, S_OK});
  Flush();
  tsfn_.Release();
}

void Receiver::Dispatch(const OVERLAPPED_ENTRY& entry) {
  switch (entry.lpCompletionKey) {
    case kStopKey:
      if (!stopping_) {
        stopping_ = true;
        // Cancels every get on the handle; each still completes (STATUS_CANCELLED) and is counted down.
        CancelIoEx(port_->handle(), nullptr);
      }
      return;
    case kCommandKey:
      OnCommand(*FromOverlapped(entry.lpOverlapped));
      return;
    case kIoKey:
      OnGetCompleted(*FromOverlapped(entry.lpOverlapped));
      return;
    default:
      return;
  }
}

void Receiver::PostGet(Request& request) {
  if (stopping_ || dead_) {
    request.state = Request::State::kIdle;
    return;
  }
  std::memset(&request.ov, 0, sizeof(request.ov));
  request.state = Request::State::kPending;
  ++outstanding_;
  const HRESULT hr =
      port_->api()->getMessage(port_->handle(), request.header(), request.bufferSize, &request.ov);
  // S_OK means the get found a message at once; without FILE_SKIP_COMPLETION_PORT_ON_SUCCESS the
  // completion is still queued, so both results are handled when dequeued.
  if (hr == kIoPending || hr == S_OK) return;
  --outstanding_;
  request.state = Request::State::kIdle;
  if (hr == kInvalidHandle) {
    if (!dead_) Push({Event::kDisconnected, request.slot, hr});
  } else {
    Push({Event::kError, request.slot, hr});
  }
  dead_ = true;
}

void Receiver::OnGetCompleted(Request& request) {
  --outstanding_;
  DWORD bytes = 0;
  const HRESULT hr = OverlappedResult(port_->handle(), &request.ov, &bytes);
  request.state = Request::State::kIdle;
  if (SUCCEEDED(hr)) {
    if (stopping_) return;  // close() abandons messages not yet handed to JS; the kernel sees the disconnect
    request.bytes = bytes;
    request.state = Request::State::kWithJs;
    Push({Event::kMessage, request.slot, S_OK});
    return;
  }
  if (hr == kAborted || hr == kBrokenPipe) {
    if (!stopping_) PostGet(request);  // cancelled by someone else: keep the slot busy
    return;
  }
  if (hr == kInsufficientBuffer && !stopping_) {
    if (request.bufferSize < options_.maxBufferSize) {
      const uint64_t grown = std::min<uint64_t>(uint64_t{request.bufferSize} * 2, options_.maxBufferSize);
      request.Allocate(static_cast<DWORD>(grown));
      PostGet(request);
      return;
    }
    Push({Event::kError, request.slot, hr});
    dead_ = true;
    return;
  }
  if (stopping_) return;
  if (hr == kInvalidHandle) {
    if (!dead_) Push({Event::kDisconnected, request.slot, hr});
  } else {
    Push({Event::kError, request.slot, hr});
  }
  dead_ = true;
}

void Receiver::OnCommand(Request& request) {
  const Request::Command command = request.command;
  request.command = Request::Command::kNone;
  if (command == Request::Command::kReply) {
    const HRESULT hr = port_->api()->replyMessage(
        port_->handle(), reinterpret_cast<FILTER_REPLY_HEADER*>(request.reply.data()), request.replySize);
    Push({Event::kReplyDone, request.slot, hr});
  }
  PostGet(request);
}

void Receiver::Push(Event event) {
  std::lock_guard<std::mutex> lock(outboxMutex_);
  outbox_.push_back(event);
}

void Receiver::Flush() {
  {
    std::lock_guard<std::mutex> lock(outboxMutex_);
    if (outbox_.empty() || callPending_) return;
    callPending_ = true;
  }
  // One call carries everything queued until JS runs it. If the function is closing (env teardown), the
  // events are dropped with it.
  if (tsfn_.NonBlockingCall() != napi_ok) {
    std::lock_guard<std::mutex> lock(outboxMutex_);
    callPending_ = false;
  }
}

// ---------------------------------------------------------------------------------------------------
// JS thread

Napi::Value Receiver::TakeBatch(Napi::Env env) {
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(outboxMutex_);
    events.swap(outbox_);
    outbox_.reserve(events.capacity());
    callPending_ = false;
  }
  // Flat layout, 4 values per event: kind, slot, hresult, extra (message: {replyLength, id, data}).
  Napi::Array batch = Napi::Array::New(env, events.size() * 4);
  uint32_t index = 0;
  bool stopped = false;
  for (const Event& event : events) {
    batch.Set(index++, Napi::Number::New(env, event.kind));
    batch.Set(index++, Napi::Number::New(env, event.slot));
    batch.Set(index++, Napi::Number::New(env, static_cast<uint32_t>(event.hr)));
    if (event.kind == Event::kMessage) {
      Request& request = *requests_[event.slot];
      heldByJs_[event.slot] = true;
      Napi::Object message = Napi::Object::New(env);
      message.Set("replyLength", Napi::Number::New(env, request.header()->ReplyLength));
      message.Set("id", Napi::BigInt::New(env, static_cast<uint64_t>(request.header()->MessageId)));
      message.Set("data", Napi::Buffer<uint8_t>::Copy(env, request.payload(), request.payloadSize()));
      batch.Set(index++, message);
    } else {
      batch.Set(index++, env.Undefined());
    }
    if (event.kind == Event::kStopped) stopped = true;
  }
  if (stopped) Join();  // the thread has pushed its last event and is returning
  return batch;
}

void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* /*data*/) {
  if (env == nullptr || callback.IsEmpty()) return;  // torn down
  // Called from a C callback: no C++ exception may escape. A JS exception thrown by the callback goes back
  // to JS (an uncaught exception, as for any callback); while a worker terminates JS cannot run at all
  // and the error carries no value, so there is nothing to report.
  try {
    Napi::Value batch = context->receiver->TakeBatch(env);
    callback.Call({batch});
  } catch (const Napi::Error& error) {
    if (!error.Value().IsEmpty()) napi_throw(env, error.Value());
  }
}

}  // namespace fltmgr
