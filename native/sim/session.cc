#include "session.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

namespace fltmgr {
namespace sim {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
constexpr size_t kShrinkAbove = 1024 * 1024;
constexpr size_t kMinReadRoom = 4096;
constexpr size_t kMsgHeader = wire::kMessageHeaderSize;
static_assert(sizeof(FILTER_MESSAGE_HEADER) == kMsgHeader, "FILTER_MESSAGE_HEADER as on the wire");
static_assert(sizeof(FILTER_REPLY_HEADER) == kMsgHeader, "FILTER_REPLY_HEADER as on the wire");

}  // namespace

int ConnectTimeoutMs(const char* value) {
  if (value == nullptr || *value == '\0') return kDefaultConnectTimeoutMs;
  long long v = 0;
  for (const char* p = value; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return kDefaultConnectTimeoutMs;
    v = v * 10 + (*p - '0');
    if (v > INT_MAX) return kDefaultConnectTimeoutMs;
  }
  return v == 0 ? kDefaultConnectTimeoutMs : static_cast<int>(v);
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : (left > INT_MAX ? INT_MAX : static_cast<int>(left));
}

// --- FrameReader -----------------------------------------------------------------------------------------

bool FrameReader::Init() {
  data_.reset(new (std::nothrow) uint8_t[kReadBufferSize]);
  cap_ = data_ ? kReadBufferSize : 0;
  return cap_ != 0;
}

FrameReader::Parse FrameReader::Next(wire::FrameHeader* header, const uint8_t** payload) {
  const size_t avail = end_ - pos_;
  if (avail < wire::kHeaderSize) {
    need_ = wire::kHeaderSize;
    return Parse::kNeedMore;
  }
  if (wire::DecodeServerHeader(data_.get() + pos_, header) != wire::HeaderError::kNone) return Parse::kMalformed;
  const size_t total = wire::kHeaderSize + header->payloadSize;
  if (avail < total) {
    need_ = total;
    return Parse::kNeedMore;
  }
  *payload = data_.get() + pos_ + wire::kHeaderSize;
  pos_ += total;  // the payload stays in place until the next PrepareRead
  need_ = wire::kHeaderSize;
  return Parse::kFrame;
}

bool FrameReader::PrepareRead(uint8_t** at, size_t* size) {
  if (pos_ == end_) {
    pos_ = end_ = 0;
    if (cap_ > kShrinkAbove && need_ <= kReadBufferSize) {
      // A huge message passed: give the memory back.
      std::unique_ptr<uint8_t[]> small(new (std::nothrow) uint8_t[kReadBufferSize]);
      if (small) {
        data_ = std::move(small);
        cap_ = kReadBufferSize;
      }
    }
  }
  const size_t have = end_ - pos_;
  if (need_ > cap_) {
    // One frame larger than the buffer: grow to fit it exactly (at most 12 + 16 MiB).
    std::unique_ptr<uint8_t[]> bigger(new (std::nothrow) uint8_t[need_]);
    if (!bigger) return false;
    if (have != 0) std::memcpy(bigger.get(), data_.get() + pos_, have);
    data_ = std::move(bigger);
    cap_ = need_;
    pos_ = 0;
    end_ = have;
  } else if (pos_ > 0 && (cap_ - pos_ < need_ || cap_ - end_ < kMinReadRoom)) {
    std::memmove(data_.get(), data_.get() + pos_, have);
    pos_ = 0;
    end_ = have;
  }
  *at = data_.get() + end_;
  *size = std::min<size_t>(cap_ - end_, 0x7FFFFFFF);
  return true;
}

// --- connect and argument checks -------------------------------------------------------------------------

HRESULT PrepareConnect(const char* endpoint, wire::Endpoint::Kind unreachable, LPCWSTR name, DWORD options,
                       LPCVOID context, WORD contextSize, uint32_t pid, HANDLE* hPort, ConnectRequest* out) {
  if (hPort == nullptr) return kHrInvalidArg;
  *hPort = INVALID_HANDLE_VALUE;
  if (name == nullptr) return kHrInvalidArg;
  if ((context == nullptr) != (contextSize == 0)) return kHrInvalidArg;
  if ((options & ~static_cast<DWORD>(FLT_PORT_FLAG_SYNC_HANDLE)) != 0) return kHrInvalidArg;
  if (endpoint == nullptr || *endpoint == '\0') return kHrNotFound;  // no simulator: as if no driver

  std::string why;
  if (!wire::ParseEndpoint(endpoint, &out->endpoint, &why)) return kHrInvalidArg;
  if (out->endpoint.kind == unreachable) return kHrNotSupported;

  // LPCWSTR is wchar_t on Windows, char16_t elsewhere: UTF-16 code units either way.
  const char16_t* units = reinterpret_cast<const char16_t*>(name);
  size_t nameUnits = 0;
  while (units[nameUnits] != 0) {
    if (++nameUnits > 0xFFFF) return kHrInvalidArg;
  }
  const size_t payloadSize = wire::ConnectPayloadSize(nameUnits, contextSize, out->endpoint.secret.size());
  if (payloadSize == 0) return kHrInvalidArg;
  try {
    out->frame.resize(wire::kHeaderSize + payloadSize);
  } catch (const std::bad_alloc&) {
    return kHrOutOfMemory;
  }
  wire::EncodeHeader(out->frame.data(), wire::Type::kConnect, 0, static_cast<uint32_t>(payloadSize));
  wire::EncodeConnectPayload(out->frame.data() + wire::kHeaderSize, options, pid, units, nameUnits, context,
                             contextSize, out->endpoint.secret.data(), out->endpoint.secret.size());
  out->syncHandle = (options & FLT_PORT_FLAG_SYNC_HANDLE) != 0;
  return S_OK;
}

HRESULT CheckSendArgs(LPVOID in, DWORD inSize, LPVOID out, DWORD outSize, LPDWORD bytesReturned) {
  if (bytesReturned == nullptr) return kHrInvalidArg;
  *bytesReturned = 0;
  if ((in == nullptr && inSize != 0) || (out == nullptr && outSize != 0)) return kHrInvalidArg;
  return S_OK;
}

// --- Session: requests ------------------------------------------------------------------------------------

void Session::Finish(Waiter* waiter, HRESULT hr, DWORD bytes) {
  waiter->hr = hr;
  waiter->bytes = bytes;
  waiter->done = true;
  waiter->cv.notify_one();  // under the lock: the waiter's frame may vanish right after
}

uint32_t Session::InsertGetLocked(PendingGet get) {
  get.order = ++nextOrder_;
  return gets_.Insert(get);
}

HRESULT Session::Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter) {
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (dead_.load()) return kHrHandle;
    id = calls_.Insert(waiter);
    if (id == 0) return kHrTooManyRequests;
  }
  wire::PutU32(head + 8, id);                          // the header's id field
  (void)WriteRequest(head, headSize, data, dataSize);  // on failure the reader fails the call
  std::unique_lock<std::mutex> lock(mutex_);
  waiter->cv.wait(lock, [waiter] { return waiter->done; });
  return waiter->hr;
}

HRESULT Session::Reply(PFILTER_REPLY_HEADER buffer, DWORD size) {
  if (buffer == nullptr || size < sizeof(FILTER_REPLY_HEADER)) return kHrInvalidArg;
  const size_t dataSize = size - sizeof(FILTER_REPLY_HEADER);
  if (dataSize > wire::kMaxReplyData) return kHrInvalidArg;
  uint8_t head[wire::kReplyHeadSize];
  wire::EncodeReplyHead(head, buffer->Status, buffer->MessageId, static_cast<uint32_t>(dataSize));
  Waiter waiter;
  return Call(head, sizeof(head), reinterpret_cast<const uint8_t*>(buffer) + sizeof(FILTER_REPLY_HEADER), dataSize,
              &waiter);
}

HRESULT Session::Send(const void* in, DWORD inSize, void* out, DWORD outSize, DWORD* bytesReturned) {
  if (inSize > wire::kMaxSendInput) return kHrInvalidArg;
  uint8_t head[wire::kSendHeadSize];
  wire::EncodeSendHead(head, outSize, inSize);
  Waiter waiter;
  waiter.isSend = true;
  waiter.out = static_cast<uint8_t*>(out);
  waiter.outCapacity = outSize;
  const HRESULT hr = Call(head, sizeof(head), in, inSize, &waiter);
  *bytesReturned = SUCCEEDED(hr) ? waiter.bytes : 0;
  return hr;
}

HRESULT Session::SyncGet(PFILTER_MESSAGE_HEADER buffer, DWORD size) {
  Waiter waiter;
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (dead_.load()) return kHrHandle;
    DWORD bytes = 0;
    const uint32_t orphan = TakeOrphanLocked(buffer, size, &bytes);
    if (orphan != kStatusPending) return HresultFromGetStatus(orphan);
    PendingGet get;
    get.buffer = buffer;
    get.capacity = size;
    get.waiter = &waiter;
    id = InsertGetLocked(get);
    if (id == 0) return kHrTooManyRequests;
  }
  uint8_t frame[wire::kGetFrameSize];
  wire::EncodeGet(frame, id, size);
  (void)WriteRequest(frame, sizeof(frame), nullptr, 0);  // on failure the reader fails the get with the others
  std::unique_lock<std::mutex> lock(mutex_);
  waiter.cv.wait(lock, [&waiter] { return waiter.done; });
  return waiter.hr;
}

void Session::CopyMessage(PFILTER_MESSAGE_HEADER buffer, uint32_t replyLength, uint64_t messageId, const uint8_t* data,
                          size_t size) {
  buffer->ReplyLength = replyLength;
  buffer->MessageId = messageId;
  if (size != 0) std::memcpy(reinterpret_cast<uint8_t*>(buffer) + kMsgHeader, data, size);
}

uint32_t Session::TakeOrphanLocked(PFILTER_MESSAGE_HEADER buffer, uint32_t size, DWORD* bytes) {
  if (orphans_.empty()) return kStatusPending;
  Orphan& o = orphans_.front();
  if (o.data.size() > size - kMsgHeader) return wire::kStatusBufferTooSmall;  // it stays
  CopyMessage(buffer, o.replyLength, o.messageId, o.data.data(), o.data.size());
  *bytes = static_cast<DWORD>(kMsgHeader + o.data.size());
  orphans_.pop_front();
  return wire::kStatusSuccess;
}

void Session::HandOrphanToPendingGetLocked() {
  // On Windows a queued message goes to the next get, including one that is already pending. Every get may
  // be pending already (the receive loop keeps all its slots busy), so waiting for a new get could wait
  // forever. The chosen get is still registered at the simulator: it is marked abandoned, so whatever the
  // simulator delivers to it later becomes the next orphan. Nothing is lost, and the chain is bounded by the
  // gets that were cancelled.
  uint32_t target = 0;
  uint64_t oldest = 0;
  gets_.ForEach([&](uint32_t id, PendingGet& get) {
    if (!get.abandoned && (target == 0 || get.order < oldest)) {
      target = id;
      oldest = get.order;
    }
  });
  if (target == 0 || orphans_.empty()) return;
  PendingGet& get = *gets_.Find(target);
  if (get.waiter != nullptr) {
    DWORD bytes = 0;
    const uint32_t status = TakeOrphanLocked(get.buffer, get.capacity, &bytes);
    Finish(get.waiter, HresultFromGetStatus(status), bytes);
  } else {
    GiveOrphanLocked(get);
  }
  get.abandoned = true;
}

void Session::MarkDead(uint32_t getStatus, HRESULT callHr) {
  std::lock_guard<std::mutex> lock(mutex_);
  dead_.store(true);
  gets_.ForEach([&](uint32_t, PendingGet& get) {
    if (get.abandoned) return;  // completed locally already
    if (get.waiter != nullptr) {
      Finish(get.waiter, HresultFromGetStatus(getStatus), 0);
    } else {
      FailOverlappedLocked(get, getStatus);
    }
  });
  gets_.Clear();
  orphans_.clear();  // the kernel side sees the disconnect; nobody can take them any more
  calls_.ForEach([callHr](uint32_t, Waiter*& waiter) { Finish(waiter, callHr, 0); });
  calls_.Clear();
}

// --- Session: reading -------------------------------------------------------------------------------------

HRESULT Session::AwaitConnectResult(Clock::time_point deadline) {
  for (;;) {
    wire::FrameHeader header;
    const uint8_t* payload = nullptr;
    const FrameReader::Parse p = reader_.Next(&header, &payload);
    if (p == FrameReader::Parse::kMalformed) return kHrInvalidData;
    if (p == FrameReader::Parse::kFrame) {
      int32_t hr = 0;
      if (header.type != wire::Type::kConnectResult || !wire::DecodeResult(payload, header.payloadSize, &hr)) {
        return kHrInvalidData;
      }
      return static_cast<HRESULT>(hr);
    }
    uint8_t* at = nullptr;
    size_t room = 0;
    if (!reader_.PrepareRead(&at, &room)) return kHrOutOfMemory;
    const long n = ReadUpstream(at, room, RemainingMs(deadline));
    if (n == kReadTimedOut) return kHrTimeout;
    if (n < 0) return kHrNotFound;  // the simulator went away before answering
    reader_.Commit(static_cast<size_t>(n));
  }
}

bool Session::DispatchBuffered() {
  try {
    for (;;) {
      wire::FrameHeader header;
      const uint8_t* payload = nullptr;
      const FrameReader::Parse p = reader_.Next(&header, &payload);
      if (p == FrameReader::Parse::kNeedMore) return true;
      if (p == FrameReader::Parse::kMalformed || !Dispatch(header, payload)) return false;
    }
  } catch (const std::bad_alloc&) {
    return false;  // out of memory keeping an orphaned message: the connection cannot go on faithfully
  }
}

void Session::ReadUntilEnd() {
  while (DispatchBuffered()) {
    uint8_t* at = nullptr;
    size_t room = 0;
    if (!reader_.PrepareRead(&at, &room)) return;
    const long n = ReadUpstream(at, room, -1);
    if (n < 0) return;  // end of stream, error, or the client shut the stream down
    reader_.Commit(static_cast<size_t>(n));
  }
}

bool Session::Dispatch(const wire::FrameHeader& header, const uint8_t* payload) {
  switch (header.type) {
    case wire::Type::kGetComplete:
      return OnGetComplete(header.id, payload, header.payloadSize);
    case wire::Type::kReplyResult: {
      int32_t hr = 0;
      if (!wire::DecodeResult(payload, header.payloadSize, &hr)) return false;
      std::lock_guard<std::mutex> lock(mutex_);
      Waiter** slot = calls_.Find(header.id);
      if (slot == nullptr || (*slot)->isSend) return false;  // unknown id, or the id of a SEND
      Waiter* waiter = *slot;
      calls_.Erase(header.id);
      Finish(waiter, hr, 0);
      return true;
    }
    case wire::Type::kSendResult: {
      wire::SendResult result;
      if (!wire::DecodeSendResult(payload, header.payloadSize, &result)) return false;
      Waiter* waiter = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        Waiter** slot = calls_.Find(header.id);
        if (slot == nullptr || !(*slot)->isSend || result.dataSize > (*slot)->outCapacity) return false;
        waiter = *slot;
        calls_.Erase(header.id);
      }
      // Out of the table, so only this thread completes it; copy without holding the lock.
      if (result.dataSize != 0) std::memcpy(waiter->out, result.data, result.dataSize);
      std::lock_guard<std::mutex> lock(mutex_);
      Finish(waiter, result.hresult, result.dataSize);
      return true;
    }
    case wire::Type::kDisconnect:     // the kernel side closed the connection
    case wire::Type::kConnectResult:  // only once, during the handshake
    default:
      return false;
  }
}

bool Session::OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size) {
  wire::GetComplete msg;
  if (!wire::DecodeGetComplete(payload, size, &msg)) return false;
  std::unique_lock<std::mutex> delivery = DeliveryLock();
  PendingGet get;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PendingGet* found = gets_.Find(id);
    if (found == nullptr) return false;
    if (msg.status == wire::kStatusSuccess && msg.dataSize > found->capacity - kMsgHeader) {
      return false;  // the simulator must never send more than the get's capacity
    }
    get = *found;
    gets_.Erase(id);
    if (get.abandoned) {
      // The answer to our CANCEL, or a message that crossed it: keep the message for the next get.
      if (msg.status == wire::kStatusSuccess) {
        Orphan o;
        o.replyLength = msg.replyLength;
        o.messageId = msg.messageId;
        o.data.assign(msg.data, msg.data + msg.dataSize);
        orphans_.push_back(std::move(o));
        HandOrphanToPendingGetLocked();
      }
      return true;
    }
  }
  if (get.waiter == nullptr) return DeliverToOverlapped(get, msg);
  if (delivery.owns_lock()) delivery.unlock();
  // A synchronous get: out of the table, so only this thread completes it, and its caller is blocked in
  // SyncGet, so the buffer is there. Copy without holding the lock.
  DWORD bytes = 0;
  if (msg.status == wire::kStatusSuccess) {
    CopyMessage(get.buffer, msg.replyLength, msg.messageId, msg.data, msg.dataSize);
    bytes = static_cast<DWORD>(kMsgHeader + msg.dataSize);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Finish(get.waiter, HresultFromGetStatus(msg.status), bytes);
  return true;
}

}  // namespace sim
}  // namespace fltmgr
