#include "receive_loop.h"

#include <algorithm>
#include <cstring>

#include "hresult.h"

namespace fltmgr {
namespace {

// Completion keys. Port completions carry kIoKey (set when the port is associated with the IOCP); the other
// two are packets the loop posts to itself.
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
const HRESULT kMoreData = HresultFromWin32(ERROR_MORE_DATA);
const HRESULT kInvalidData = HresultFromWin32(13);  // ERROR_INVALID_DATA

// OVERLAPPED must be the first member of a standard-layout base so that the pointer the IOCP hands back
// converts to the request (CONTAINING_RECORD without offsetof on a non-standard-layout type).
struct RequestBase {
  OVERLAPPED ov;
};

}  // namespace

struct ReceiveLoop::Request : RequestBase {
  enum class Command : uint8_t { kNone, kReply, kRelease };
  uint32_t slot = 0;
  Command command = Command::kNone;
  std::unique_ptr<uint64_t[]> buffer;  // uint64_t: 8-byte aligned, as FILTER_MESSAGE_HEADER wants
  DWORD bufferSize = 0;
  DWORD bytes = 0;
  std::vector<uint64_t> reply;
  DWORD replySize = 0;

  FILTER_MESSAGE_HEADER* header() const { return reinterpret_cast<FILTER_MESSAGE_HEADER*>(buffer.get()); }
  const uint8_t* payload() const { return reinterpret_cast<const uint8_t*>(buffer.get()) + kHeaderSize; }
  uint32_t payloadSize() const {
    const DWORD count = kCompletionCountsHeader ? bytes : bytes + kHeaderSize;
    return count > kHeaderSize ? std::min(count, bufferSize) - kHeaderSize : 0;
  }
  void Allocate(DWORD size) {
    buffer.reset(new uint64_t[(uint64_t{size} + 7) / 8]);
    bufferSize = size;
  }
};

std::shared_ptr<CompletionPort> CompletionPort::Associate(PortHandle& port, HRESULT* hr) {
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (iocp == nullptr) {
    *hr = LastErrorHresult();
    return nullptr;
  }
  auto completionPort = std::make_shared<CompletionPort>(iocp);
  if (!port.Acquire()) {
    *hr = HresultFromWin32(ERROR_INVALID_HANDLE);
    return nullptr;
  }
  const bool associated = CreateIoCompletionPort(port.handle(), iocp, kIoKey, 0) != nullptr;
  if (!associated) *hr = LastErrorHresult();
  port.Release();
  return associated ? completionPort : nullptr;
}

ReceiveLoop::Request* ReceiveLoop::FromOverlapped(OVERLAPPED* overlapped) {
  return static_cast<Request*>(reinterpret_cast<RequestBase*>(overlapped));
}

ReceiveLoop::ReceiveLoop(std::shared_ptr<PortHandle> port, std::shared_ptr<CompletionPort> iocp,
                         const ReceiveOptions& options, Notify notify, void* notifyContext)
    : port_(std::move(port)),
      completionPort_(std::move(iocp)),
      iocp_(completionPort_->handle()),
      options_(options),
      notify_(notify),
      notifyContext_(notifyContext),
      held_(options.concurrency, false) {
  requests_.reserve(options.concurrency);
  for (uint32_t i = 0; i < options.concurrency; ++i) {
    auto request = std::make_unique<Request>();
    request->slot = i;
    request->Allocate(options.bufferSize);
    requests_.push_back(std::move(request));
  }
  outbox_.reserve(options.concurrency * 2 + 4);
}

ReceiveLoop::~ReceiveLoop() {
  // Owners join before destroying; if one did not, waiting here is still better than freeing requests the
  // kernel may write to.
  if (thread_.joinable()) {
    Stop();
    thread_.join();
  }
}

bool ReceiveLoop::Start() {
  if (started_ || !port_->Acquire()) return false;  // released by the thread when it exits
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (...) {
    port_->Release();  // otherwise the handle could never close
    throw;
  }
  started_ = true;
  return true;
}

void ReceiveLoop::Stop() {
  if (!started_ || stopPosted_ || joined_) return;
  // Only once the sentinel is queued: a failed post can be retried by the next Stop().
  if (PostQueuedCompletionStatus(iocp_, 0, kStopKey, nullptr)) stopPosted_ = true;
}

void ReceiveLoop::Join() {
  if (!started_ || joined_) return;
  if (thread_.joinable()) thread_.join();
  joined_ = true;
}

void ReceiveLoop::TakeEvents(std::vector<ReceiveEvent>& out) {
  out.clear();
  {
    std::lock_guard<std::mutex> lock(outboxMutex_);
    out.swap(outbox_);
    outbox_.reserve(out.capacity());
    notified_ = false;
  }
  for (const ReceiveEvent& event : out) {
    if (event.kind == ReceiveEvent::kMessage) held_[event.slot] = true;
  }
}

const FILTER_MESSAGE_HEADER& ReceiveLoop::Header(uint32_t slot) const { return *requests_[slot]->header(); }
const uint8_t* ReceiveLoop::Payload(uint32_t slot) const { return requests_[slot]->payload(); }
uint32_t ReceiveLoop::PayloadSize(uint32_t slot) const { return requests_[slot]->payloadSize(); }

HRESULT ReceiveLoop::Reply(uint32_t slot, NTSTATUS status, const uint8_t* data, size_t size) {
  if (slot >= requests_.size() || !held_[slot] || stopPosted_) return E_INVALIDARG;
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
  held_[slot] = false;
  if (!PostQueuedCompletionStatus(iocp_, 0, kCommandKey, &request.ov)) return LastErrorHresult();
  return S_OK;
}

HRESULT ReceiveLoop::Release(uint32_t slot) {
  if (slot >= requests_.size() || !held_[slot]) return E_INVALIDARG;
  Request& request = *requests_[slot];
  request.command = Request::Command::kRelease;
  held_[slot] = false;
  if (stopPosted_) return S_OK;  // the thread is draining; it does not re-post gets any more
  if (!PostQueuedCompletionStatus(iocp_, 0, kCommandKey, &request.ov)) return LastErrorHresult();
  return S_OK;
}

// ---------------------------------------------------------------------------------------------------
// Receive thread

void ReceiveLoop::Run() {
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
      Push({ReceiveEvent::kError, 0, HresultFromWin32(error)});
      break;
    }
    for (ULONG i = 0; i < removed; ++i) Dispatch(entries[i]);
    Flush();
  }
  port_->Release();
  Push({ReceiveEvent::kStopped, 0, S_OK});
  Flush();
}

void ReceiveLoop::Dispatch(const OVERLAPPED_ENTRY& entry) {
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

void ReceiveLoop::PostGet(Request& request) {
  if (stopping_ || dead_) return;
  std::memset(&request.ov, 0, sizeof(request.ov));
  // A completion that wrote no header must not show the previous message's (or uninitialized) bytes.
  std::memset(request.header(), 0, kHeaderSize);
  ++outstanding_;
  const HRESULT hr = port_->api()->getMessage(port_->handle(), request.header(), request.bufferSize, &request.ov);
  // S_OK means the get found a message at once; without FILE_SKIP_COMPLETION_PORT_ON_SUCCESS the
  // completion is still queued, so both results are handled when dequeued.
  if (hr == kIoPending || hr == S_OK) return;
  --outstanding_;
  if (!dead_) Push({hr == kInvalidHandle ? ReceiveEvent::kDisconnected : ReceiveEvent::kError, request.slot, hr});
  dead_ = true;
}

void ReceiveLoop::OnGetCompleted(Request& request) {
  --outstanding_;
  DWORD bytes = 0;
  const HRESULT hr = OverlappedResult(port_->handle(), &request.ov, &bytes);
  if (SUCCEEDED(hr) && kCompletionCountsHeader && bytes < kHeaderSize) {
    // Success without a whole FILTER_MESSAGE_HEADER (e.g. an informational status): no message was written.
    // Never hand it out; the stream is not what Filter Manager produces.
    if (!stopping_ && !dead_) Push({ReceiveEvent::kError, request.slot, kInvalidData});
    dead_ = true;
    return;
  }
  if (SUCCEEDED(hr)) {
    if (stopping_) return;  // close() abandons messages not yet handed out; the kernel sees the disconnect
    request.bytes = bytes;
    Push({ReceiveEvent::kMessage, request.slot, S_OK});
    return;
  }
  if (hr == kAborted || hr == kBrokenPipe) {
    if (!stopping_) PostGet(request);  // cancelled by someone else: keep the slot busy
    return;
  }
  if ((hr == kInsufficientBuffer || hr == kMoreData) && !stopping_) {
    if (request.bufferSize < options_.maxBufferSize) {
      const uint64_t grown = std::min<uint64_t>(uint64_t{request.bufferSize} * 2, options_.maxBufferSize);
      request.Allocate(static_cast<DWORD>(grown));
      PostGet(request);
      return;
    }
    if (!dead_) Push({ReceiveEvent::kError, request.slot, kInsufficientBuffer});
    dead_ = true;
    return;
  }
  if (stopping_) return;
  if (!dead_) Push({hr == kInvalidHandle ? ReceiveEvent::kDisconnected : ReceiveEvent::kError, request.slot, hr});
  dead_ = true;
}

void ReceiveLoop::OnCommand(Request& request) {
  const Request::Command command = request.command;
  request.command = Request::Command::kNone;
  if (command == Request::Command::kReply) {
    const HRESULT hr = port_->api()->replyMessage(
        port_->handle(), reinterpret_cast<FILTER_REPLY_HEADER*>(request.reply.data()), request.replySize);
    Push({ReceiveEvent::kReplyDone, request.slot, hr});
  }
  PostGet(request);
}

void ReceiveLoop::Push(ReceiveEvent event) {
  std::lock_guard<std::mutex> lock(outboxMutex_);
  outbox_.push_back(event);
}

void ReceiveLoop::Flush() {
  {
    std::lock_guard<std::mutex> lock(outboxMutex_);
    if (outbox_.empty() || notified_) return;
    notified_ = true;
  }
  notify_(notifyContext_);
}

}  // namespace fltmgr
