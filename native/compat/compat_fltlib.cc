// fltlib communication calls for non-Windows hosts, over a stream socket to the Filter Manager simulator
// (docs/wire-protocol.md). One socket = one port handle = one connection.
//
// Threads and locks of a Port:
// - one reader thread (started after the handshake, joined by CloseHandle) reads frames and completes
//   requests; it never writes to the socket, so a writer blocked on a full socket cannot deadlock it;
// - writeMutex_ serialises frames on the socket; mutex_ guards the request tables and the dead flag.
//   Lock order: writeMutex_ -> mutex_ -> (an Iocp's mutex). The reader takes only mutex_ and the Iocp's.
// - A request is completed by whoever removes it from its table (the reader with the simulator's answer,
//   or MarkDead on disconnect/close), or by CancelIoEx, which marks it abandoned; so each completes once.
//
// Cancellation completes locally and at once, as the kernel does on Windows: it must not depend on the
// simulator, which may run on the very JS thread that is waiting for the receive thread to drain. The get
// stays in the table, abandoned, until the simulator answers the CANCEL. If the simulator had already
// sent a message to it, that message is kept (an "orphan") and handed to a get already pending or the next
// FilterGetMessage on the handle, so no message is lost; a buffer too small for it gets STATUS_BUFFER_TOO_SMALL and the message
// stays, like a queued message in the simulator.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "handle.h"
#include "slot_table.h"
#include "win32_compat.h"
#include "wire.h"

namespace fltmgr {
namespace compat {
namespace {

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on the socket instead
#endif

constexpr int kDefaultConnectTimeoutMs = 30000;
constexpr size_t kReadBufferSize = 64 * 1024;
constexpr size_t kShrinkAbove = 1024 * 1024;
constexpr size_t kMinReadRoom = 4096;

const HRESULT kHrIoPending = HRESULT_FROM_WIN32(ERROR_IO_PENDING);
const HRESULT kHrNotFound = HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
const HRESULT kHrAccessDenied = HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
const HRESULT kHrTimeout = HRESULT_FROM_WIN32(kErrorTimeout);
const HRESULT kHrInvalidData = HRESULT_FROM_WIN32(kErrorInvalidData);
const HRESULT kHrTooManyRequests = HRESULT_FROM_WIN32(kErrorNoSystemResources);
const HRESULT kHrAborted = HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED);

HRESULT HresultFromStatus(NTSTATUS status) {
  return status == STATUS_SUCCESS ? S_OK : HRESULT_FROM_WIN32(NtStatusToWin32(status));
}

// Connect-time errno -> HRESULT. Anything that means "nobody serves this endpoint" is ERROR_FILE_NOT_FOUND,
// which is what Windows reports when the minifilter (its port) is not there.
HRESULT HresultFromConnectErrno(int e) {
  switch (e) {
    case EACCES:
    case EPERM:
      return kHrAccessDenied;
    case EMFILE:
    case ENFILE:
      return HRESULT_FROM_WIN32(4u);  // ERROR_TOO_MANY_OPEN_FILES
    case ENOMEM:
    case ENOBUFS:
      return E_OUTOFMEMORY;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ETIMEDOUT:
    case EINPROGRESS:
      return kHrTimeout;
    default:
      return kHrNotFound;
  }
}

int ConnectTimeoutMs() {
  // Test hook and escape hatch for slow simulators; read at call time like FLTMGR_SIMULATOR.
  const char* s = std::getenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS");
  if (s == nullptr || *s == '\0') return kDefaultConnectTimeoutMs;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v <= 0 || v > INT_MAX) return kDefaultConnectTimeoutMs;
  return static_cast<int>(v);
}

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : (left > INT_MAX ? INT_MAX : static_cast<int>(left));
}

void SetSendTimeout(int fd, int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms % 1000) * 1000);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int NewSocket(int family) {
#if defined(SOCK_CLOEXEC)
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  const int fd = socket(family, SOCK_STREAM, 0);
  if (fd >= 0) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
#if defined(SO_NOSIGPIPE)
  if (fd >= 0) {
    const int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
  }
#endif
  return fd;
}

// Blocking connect bounded by the deadline (SO_SNDTIMEO bounds the kernel's wait; EINTR is resumed).
// Returns the fd or -1 with *hr set.
int OpenSocket(const wire::Endpoint& ep, Clock::time_point deadline, HRESULT* hr) {
  sockaddr_storage storage;
  std::memset(&storage, 0, sizeof(storage));
  socklen_t addrLen = 0;
  int family = 0;
  if (ep.kind == wire::Endpoint::Kind::kUnix) {
    sockaddr_un* un = reinterpret_cast<sockaddr_un*>(&storage);
    if (ep.path.size() >= sizeof(un->sun_path) || ep.path.find('\0') != std::string::npos) {
      *hr = E_INVALIDARG;  // does not fit sockaddr_un on this host
      return -1;
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, ep.path.c_str(), ep.path.size() + 1);
    addrLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + ep.path.size() + 1);
    family = AF_UNIX;
  } else {
    sockaddr_in* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(ep.port);
    std::memcpy(&in->sin_addr, ep.address, 4);  // already network order
    addrLen = sizeof(sockaddr_in);
    family = AF_INET;
  }
  const int fd = NewSocket(family);
  if (fd < 0) {
    *hr = HresultFromConnectErrno(errno);
    return -1;
  }
  SetSendTimeout(fd, RemainingMs(deadline) > 0 ? RemainingMs(deadline) : 1);
  for (;;) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&storage), addrLen) == 0) break;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EISCONN) break;
    if (e == EALREADY || e == EINPROGRESS) {
      pollfd p = {fd, POLLOUT, 0};
      const int n = poll(&p, 1, RemainingMs(deadline));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        e = ETIMEDOUT;
      } else {
        socklen_t len = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
        if (e == 0) break;
      }
    }
    close(fd);
    *hr = HresultFromConnectErrno(e);
    return -1;
  }
  if (family == AF_INET) {
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

// A caller blocked in a synchronous call (reply, send, synchronous get).
struct Waiter {
  std::condition_variable cv;
  bool done = false;
  HRESULT hr = E_HANDLE;
  NTSTATUS status = STATUS_PENDING;  // synchronous get
  DWORD bytes = 0;                   // synchronous get; send output size
  bool isSend = false;
  uint8_t* out = nullptr;  // send output buffer
  uint32_t outCapacity = 0;
};

struct PendingGet {
  PFILTER_MESSAGE_HEADER buffer = nullptr;
  uint32_t capacity = 0;
  LPOVERLAPPED overlapped = nullptr;  // null for a synchronous get
  Waiter* waiter = nullptr;           // non-null for a synchronous get
  bool abandoned = false;             // cancelled and completed; buffer and overlapped are the caller's again
};

// A message that reached a get after CancelIoEx had completed it.
struct Orphan {
  uint32_t replyLength = 0;
  uint64_t messageId = 0;
  std::vector<uint8_t> data;
};

class Port final : public IoObject {
 public:
  Port(int fd, bool syncHandle) : fd_(fd), syncHandle_(syncHandle) {}
  ~Port() override {
    if (fd_ >= 0) close(fd_);
    if (iocp_ != nullptr) iocp_->Release();
  }

  HRESULT Handshake(const uint8_t* frame, size_t size, Clock::time_point deadline);
  HRESULT StartReader();

  HRESULT GetMessage(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);
  HRESULT Reply(PFILTER_REPLY_HEADER buffer, DWORD size);
  HRESULT Send(const void* in, DWORD inSize, void* out, DWORD outSize, DWORD* bytesReturned);

  DWORD AssociateCompletionPort(Iocp* iocp, ULONG_PTR key) override;
  DWORD CancelIo(LPOVERLAPPED overlapped) override;
  void OnClose() override;
  // FltSimAbortPort: ends the connection now without closing the handle.
  void Abort();

 private:
  enum class Parse { kFrame, kNeedMore, kMalformed };

  HRESULT SyncGet(PFILTER_MESSAGE_HEADER buffer, uint32_t size);
  HRESULT Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter);
  bool WriteLocked(iovec* iov, int count);
  void WaitLocked(std::unique_lock<std::mutex>& lock, Waiter* waiter);

  void ReaderMain();
  Parse NextFrame(wire::FrameHeader* header, const uint8_t** payload);
  // >0 bytes read, 0 EOF, -1 error, -2 timed out (timeoutMs < 0: wait forever).
  ssize_t ReadMore(int timeoutMs);
  bool Dispatch(const wire::FrameHeader& header, const uint8_t* payload);
  bool OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size);
  void CompleteOverlapped(LPOVERLAPPED ov, NTSTATUS status, DWORD bytes, Iocp* iocp, ULONG_PTR key);
  // Hands the oldest orphan to a new get: STATUS_SUCCESS or STATUS_BUFFER_TOO_SMALL, or STATUS_PENDING
  // if there is none. Caller holds mutex_.
  NTSTATUS TakeOrphanLocked(PFILTER_MESSAGE_HEADER buffer, uint32_t size, DWORD* bytes);
  // Gives the oldest orphan to a get that is already pending, if there is one. Caller holds mutex_.
  void HandOrphanToPendingGetLocked();
  // Fails every pending get (getStatus) and call (callHr); later calls fail with E_HANDLE.
  void MarkDead(NTSTATUS getStatus, HRESULT callHr);

  const int fd_;
  const bool syncHandle_;

  std::mutex writeMutex_;

  std::mutex mutex_;
  bool dead_ = false;
  SlotTable<PendingGet> gets_;
  SlotTable<Waiter*> calls_;  // REPLY and SEND
  std::deque<Orphan> orphans_;
  Iocp* iocp_ = nullptr;      // set once; referenced until destruction
  ULONG_PTR key_ = 0;

  std::thread reader_;
  // Read buffer: the handshake uses it, then only the reader thread.
  std::unique_ptr<uint8_t[]> rbuf_;
  size_t rcap_ = 0;
  size_t rpos_ = 0;
  size_t rend_ = 0;
  size_t need_ = wire::kHeaderSize;
};

HRESULT Port::Handshake(const uint8_t* frame, size_t size, Clock::time_point deadline) {
  rbuf_.reset(new (std::nothrow) uint8_t[kReadBufferSize]);
  if (!rbuf_) return E_OUTOFMEMORY;
  rcap_ = kReadBufferSize;
  {
    std::lock_guard<std::mutex> lock(writeMutex_);
    iovec iov = {const_cast<uint8_t*>(frame), size};
    if (!WriteLocked(&iov, 1)) return errno == EAGAIN || errno == EWOULDBLOCK ? kHrTimeout : kHrNotFound;
  }
  for (;;) {
    wire::FrameHeader header;
    const uint8_t* payload = nullptr;
    const Parse p = NextFrame(&header, &payload);
    if (p == Parse::kMalformed) return kHrInvalidData;
    if (p == Parse::kFrame) {
      int32_t hr = 0;
      if (header.type != wire::Type::kConnectResult || !wire::DecodeResult(payload, header.payloadSize, &hr)) {
        return kHrInvalidData;
      }
      if (hr >= 0) SetSendTimeout(fd_, 0);  // from now on writes wait as long as the simulator needs
      return hr;
    }
    const ssize_t n = ReadMore(RemainingMs(deadline));
    if (n == -2) return kHrTimeout;
    if (n <= 0) return kHrNotFound;  // the simulator went away before answering
  }
}

HRESULT Port::StartReader() {
  try {
    reader_ = std::thread([this] { ReaderMain(); });
  } catch (const std::system_error&) {
    return E_OUTOFMEMORY;
  }
  return S_OK;
}

bool Port::WriteLocked(iovec* iov, int count) {
  while (count > 0) {
    msghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(count);
    ssize_t n = sendmsg(fd_, &msg, kSendFlags);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      // The stream may now hold half a frame: nothing more can be said on it. Waking the reader makes it
      // fail every pending request, so no caller waits for an answer that cannot come.
      (void)shutdown(fd_, SHUT_RDWR);
      errno = e;
      return false;
    }
    while (count > 0 && static_cast<size_t>(n) >= iov->iov_len) {
      n -= static_cast<ssize_t>(iov->iov_len);
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + n;
      iov->iov_len -= static_cast<size_t>(n);
    }
  }
  return true;
}

void Port::WaitLocked(std::unique_lock<std::mutex>& lock, Waiter* waiter) {
  waiter->cv.wait(lock, [waiter] { return waiter->done; });
}

HRESULT Port::GetMessage(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  if (buffer == nullptr || size < sizeof(FILTER_MESSAGE_HEADER)) return E_INVALIDARG;
  if (overlapped == nullptr) return SyncGet(buffer, size);
  // A synchronous handle has no overlapped I/O on Windows either (FILE_SYNCHRONOUS_IO_NONALERT).
  if (syncHandle_) return E_INVALIDARG;
  overlapped->InternalHigh = 0;
  StoreOverlappedStatus(overlapped, STATUS_PENDING);

  uint8_t frame[wire::kGetFrameSize];
  // writeMutex_ is held from registration to the write, so a CancelIoEx that sees this get in the table
  // can only write its CANCEL after the GET.
  std::lock_guard<std::mutex> writeLock(writeMutex_);
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (dead_) return E_HANDLE;
    DWORD bytes = 0;
    const NTSTATUS orphan = TakeOrphanLocked(buffer, size, &bytes);
    if (orphan != STATUS_PENDING) {
      CompleteOverlapped(overlapped, orphan, bytes, iocp_, key_);
      return kHrIoPending;  // completes through the IOCP like any other get
    }
    PendingGet get;
    get.buffer = buffer;
    get.capacity = size;
    get.overlapped = overlapped;
    id = gets_.Insert(get);
    if (id == 0) return kHrTooManyRequests;
  }
  wire::EncodeGet(frame, id, size);
  iovec iov = {frame, sizeof(frame)};
  if (!WriteLocked(&iov, 1)) {
    std::lock_guard<std::mutex> lock(mutex_);
    // Still ours: fail it now. Otherwise it was already completed (disconnected): that completion is
    // queued, so the get is reported as pending.
    const PendingGet* get = gets_.Find(id);
    if (get != nullptr && !get->abandoned) {
      gets_.Erase(id);
      return E_HANDLE;
    }
  }
  return kHrIoPending;
}

HRESULT Port::SyncGet(PFILTER_MESSAGE_HEADER buffer, uint32_t size) {
  Waiter waiter;
  uint8_t frame[wire::kGetFrameSize];
  {
    std::lock_guard<std::mutex> writeLock(writeMutex_);
    uint32_t id = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (dead_) return E_HANDLE;
      DWORD bytes = 0;
      const NTSTATUS orphan = TakeOrphanLocked(buffer, size, &bytes);
      if (orphan != STATUS_PENDING) return HresultFromStatus(orphan);
      PendingGet get;
      get.buffer = buffer;
      get.capacity = size;
      get.waiter = &waiter;
      id = gets_.Insert(get);
      if (id == 0) return kHrTooManyRequests;
    }
    wire::EncodeGet(frame, id, size);
    iovec iov = {frame, sizeof(frame)};
    // On failure the reader wakes (shutdown) and fails the get with the others.
    (void)WriteLocked(&iov, 1);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  WaitLocked(lock, &waiter);
  return HresultFromStatus(waiter.status);
}

void Port::HandOrphanToPendingGetLocked() {
  // On Windows a queued message goes to the next get, including one that is already pending. Every get may be
  // pending already (the receive loop keeps all its slots busy), so waiting for a new FilterGetMessage could
  // wait forever. The chosen get is still registered at the simulator: it is marked abandoned, so whatever
  // the simulator delivers to it later becomes the next orphan. Nothing is lost, and the chain is bounded by
  // the gets that were cancelled.
  uint32_t target = 0;
  gets_.ForEach([&target](uint32_t id, PendingGet& get) {
    if (target == 0 && !get.abandoned) target = id;
  });
  if (target == 0 || orphans_.empty()) return;
  PendingGet& get = *gets_.Find(target);
  DWORD bytes = 0;
  // STATUS_BUFFER_TOO_SMALL leaves the orphan queued for the larger get the caller posts next.
  const NTSTATUS status = TakeOrphanLocked(get.buffer, get.capacity, &bytes);
  get.abandoned = true;
  if (get.waiter != nullptr) {
    get.waiter->status = status;
    get.waiter->bytes = bytes;
    get.waiter->done = true;
    get.waiter->cv.notify_one();
  } else {
    CompleteOverlapped(get.overlapped, status, bytes, iocp_, key_);
  }
}

NTSTATUS Port::TakeOrphanLocked(PFILTER_MESSAGE_HEADER buffer, uint32_t size, DWORD* bytes) {
  if (orphans_.empty()) return STATUS_PENDING;
  Orphan& o = orphans_.front();
  if (o.data.size() > size - sizeof(FILTER_MESSAGE_HEADER)) return STATUS_BUFFER_TOO_SMALL;  // it stays
  buffer->ReplyLength = o.replyLength;
  buffer->MessageId = o.messageId;
  if (!o.data.empty()) {
    std::memcpy(reinterpret_cast<uint8_t*>(buffer) + sizeof(FILTER_MESSAGE_HEADER), o.data.data(), o.data.size());
  }
  *bytes = static_cast<DWORD>(sizeof(FILTER_MESSAGE_HEADER) + o.data.size());
  orphans_.pop_front();
  return STATUS_SUCCESS;
}

HRESULT Port::Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter) {
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (dead_) return E_HANDLE;
    id = calls_.Insert(waiter);
    if (id == 0) return kHrTooManyRequests;
  }
  wire::PutU32(head + 8, id);  // the header's id field
  {
    std::lock_guard<std::mutex> writeLock(writeMutex_);
    iovec iov[2] = {{head, headSize}, {const_cast<void*>(data), dataSize}};
    (void)WriteLocked(iov, dataSize != 0 ? 2 : 1);  // on failure the reader fails the call
  }
  std::unique_lock<std::mutex> lock(mutex_);
  WaitLocked(lock, waiter);
  return waiter->hr;
}

HRESULT Port::Reply(PFILTER_REPLY_HEADER buffer, DWORD size) {
  if (buffer == nullptr || size < sizeof(FILTER_REPLY_HEADER)) return E_INVALIDARG;
  const size_t dataSize = size - sizeof(FILTER_REPLY_HEADER);
  if (dataSize > wire::kMaxReplyData) return E_INVALIDARG;
  uint8_t head[wire::kReplyHeadSize];
  wire::EncodeReplyHead(head, buffer->Status, buffer->MessageId, static_cast<uint32_t>(dataSize));
  Waiter waiter;
  return Call(head, sizeof(head), reinterpret_cast<const uint8_t*>(buffer) + sizeof(FILTER_REPLY_HEADER), dataSize,
              &waiter);
}

HRESULT Port::Send(const void* in, DWORD inSize, void* out, DWORD outSize, DWORD* bytesReturned) {
  if (inSize > wire::kMaxSendInput) return E_INVALIDARG;
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

DWORD Port::AssociateCompletionPort(Iocp* iocp, ULONG_PTR key) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Windows refuses a handle opened for synchronous I/O, and a second association.
  if (syncHandle_ || iocp_ != nullptr) return ERROR_INVALID_PARAMETER;
  iocp->AddRef();
  iocp_ = iocp;
  key_ = key;
  return ERROR_SUCCESS;
}

DWORD Port::CancelIo(LPOVERLAPPED overlapped) {
  std::vector<uint8_t> frames;
  bool found = false;
  try {
    // Held across collection and write: a GET registered meanwhile (perhaps re-using a buffer cancelled
    // here) is written before or after all our CANCELs, never between, and ids are not reused meanwhile.
    std::lock_guard<std::mutex> writeLock(writeMutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      frames.reserve(overlapped != nullptr ? wire::kHeaderSize : gets_.size() * wire::kHeaderSize);
      gets_.ForEach([&](uint32_t id, PendingGet& get) {
        // CancelIoEx does not cancel synchronous I/O.
        if (get.abandoned || get.overlapped == nullptr) return;
        if (overlapped != nullptr && get.overlapped != overlapped) return;
        if (frames.size() + wire::kHeaderSize > frames.capacity()) return;  // cannot happen (reserved)
        found = true;
        CompleteOverlapped(get.overlapped, STATUS_CANCELLED, 0, iocp_, key_);
        get.abandoned = true;
        get.buffer = nullptr;
        get.overlapped = nullptr;
        const size_t at = frames.size();
        frames.resize(at + wire::kHeaderSize);
        wire::EncodeHeader(frames.data() + at, wire::Type::kCancel, id, 0);
      });
    }
    if (!frames.empty()) {
      iovec iov = {frames.data(), frames.size()};
      (void)WriteLocked(&iov, 1);  // on failure the other pending gets complete as disconnected
    }
  } catch (const std::bad_alloc&) {
    return ERROR_NOT_ENOUGH_MEMORY;
  }
  return found ? ERROR_SUCCESS : ERROR_NOT_FOUND;
}

void Port::OnClose() {
  MarkDead(STATUS_CANCELLED, E_HANDLE);
  (void)shutdown(fd_, SHUT_RDWR);
  // CloseHandle never runs on the reader thread (it only calls into Iocp), but never join oneself.
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
}

void Port::CompleteOverlapped(LPOVERLAPPED ov, NTSTATUS status, DWORD bytes, Iocp* iocp, ULONG_PTR key) {
  ov->InternalHigh = bytes;
  StoreOverlappedStatus(ov, status);  // before the entry is queued: the consumer may read it at once
  if (iocp == nullptr) return;       // no completion port: the OVERLAPPED alone tells
  OVERLAPPED_ENTRY entry;
  entry.lpCompletionKey = key;
  entry.lpOverlapped = ov;
  entry.Internal = static_cast<ULONG_PTR>(static_cast<uint32_t>(status));
  entry.dwNumberOfBytesTransferred = bytes;
  (void)iocp->Post(entry);  // a closed IOCP drops it, as on Windows
}

void Port::Abort() {
  // A caller waiting for an answer the simulator never gives, or blocked writing to a simulator that stopped
  // reading, returns now: the waiters are failed here, and shutdown() wakes a writer blocked in sendmsg (and
  // the reader, which then finds nothing left to fail).
  MarkDead(STATUS_CANCELLED, kHrAborted);
  (void)shutdown(fd_, SHUT_RDWR);
}

void Port::MarkDead(NTSTATUS getStatus, HRESULT callHr) {
  std::lock_guard<std::mutex> lock(mutex_);
  dead_ = true;
  gets_.ForEach([&](uint32_t, PendingGet& get) {
    if (get.abandoned) return;  // completed by CancelIoEx already
    if (get.waiter != nullptr) {
      get.waiter->status = getStatus;
      get.waiter->done = true;
      get.waiter->cv.notify_one();  // under the lock: the waiter's frame may vanish right after
    } else {
      CompleteOverlapped(get.overlapped, getStatus, 0, iocp_, key_);
    }
  });
  gets_.Clear();
  orphans_.clear();  // the kernel side sees the disconnect; nobody can take them any more
  calls_.ForEach([callHr](uint32_t, Waiter*& waiter) {
    waiter->hr = callHr;
    waiter->done = true;
    waiter->cv.notify_one();
  });
  calls_.Clear();
}

Port::Parse Port::NextFrame(wire::FrameHeader* header, const uint8_t** payload) {
  const size_t avail = rend_ - rpos_;
  if (avail < wire::kHeaderSize) {
    need_ = wire::kHeaderSize;
    return Parse::kNeedMore;
  }
  if (wire::DecodeServerHeader(rbuf_.get() + rpos_, header) != wire::HeaderError::kNone) return Parse::kMalformed;
  const size_t total = wire::kHeaderSize + header->payloadSize;
  if (avail < total) {
    need_ = total;
    return Parse::kNeedMore;
  }
  *payload = rbuf_.get() + rpos_ + wire::kHeaderSize;
  rpos_ += total;  // the payload stays in place until the next ReadMore
  need_ = wire::kHeaderSize;
  return Parse::kFrame;
}

ssize_t Port::ReadMore(int timeoutMs) {
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
    if (rcap_ > kShrinkAbove && need_ <= kReadBufferSize) {
      // A huge message passed: give the memory back.
      std::unique_ptr<uint8_t[]> small(new (std::nothrow) uint8_t[kReadBufferSize]);
      if (small) {
        rbuf_ = std::move(small);
        rcap_ = kReadBufferSize;
      }
    }
  }
  const size_t have = rend_ - rpos_;
  if (need_ > rcap_) {
    // One frame larger than the buffer: grow to fit it exactly (at most 12 + 16 MiB).
    std::unique_ptr<uint8_t[]> bigger(new (std::nothrow) uint8_t[need_]);
    if (!bigger) return -1;
    std::memcpy(bigger.get(), rbuf_.get() + rpos_, have);
    rbuf_ = std::move(bigger);
    rcap_ = need_;
    rpos_ = 0;
    rend_ = have;
  } else if (rpos_ > 0 && (rcap_ - rpos_ < need_ || rcap_ - rend_ < kMinReadRoom)) {
    std::memmove(rbuf_.get(), rbuf_.get() + rpos_, have);
    rpos_ = 0;
    rend_ = have;
  }
  const auto deadline = timeoutMs < 0 ? Clock::time_point() : Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    if (timeoutMs >= 0) {
      pollfd p = {fd_, POLLIN, 0};
      const int n = poll(&p, 1, RemainingMs(deadline));
      if (n < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      if (n == 0) return -2;
    }
    const ssize_t n = recv(fd_, rbuf_.get() + rend_, rcap_ - rend_, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    rend_ += static_cast<size_t>(n);
    return n;
  }
}

void Port::ReaderMain() {
  try {
    for (;;) {
      wire::FrameHeader header;
      const uint8_t* payload = nullptr;
      const Parse p = NextFrame(&header, &payload);
      if (p == Parse::kMalformed) break;
      if (p == Parse::kFrame) {
        if (!Dispatch(header, payload)) break;
        continue;
      }
      if (ReadMore(-1) <= 0) break;  // EOF, error, or shutdown by CloseHandle
    }
  } catch (const std::bad_alloc&) {
    // Out of memory keeping an orphaned message: the connection cannot go on faithfully.
  }
  // The connection is over whatever the reason (DISCONNECT, EOF, error, malformed frame). After a close
  // MarkDead already ran and this finds nothing left.
  MarkDead(STATUS_PORT_DISCONNECTED, E_HANDLE);
  (void)shutdown(fd_, SHUT_RDWR);  // a malformed stream is not read further; writers fail fast
}

bool Port::Dispatch(const wire::FrameHeader& header, const uint8_t* payload) {
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
      waiter->hr = hr;
      waiter->done = true;
      waiter->cv.notify_one();
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
      waiter->bytes = result.dataSize;
      waiter->hr = result.hresult;
      waiter->done = true;
      waiter->cv.notify_one();
      return true;
    }
    case wire::Type::kDisconnect: {
      int32_t status = 0;
      (void)wire::DecodeResult(payload, header.payloadSize, &status);
      return false;  // the connection is over either way
    }
    case wire::Type::kConnectResult:  // only once, during the handshake
    default:
      return false;
  }
}

bool Port::OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size) {
  wire::GetComplete msg;
  if (!wire::DecodeGetComplete(payload, size, &msg)) return false;
  PendingGet get;
  Iocp* iocp = nullptr;
  ULONG_PTR key = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PendingGet* found = gets_.Find(id);
    if (found == nullptr) return false;
    if (msg.status == wire::kStatusSuccess && msg.dataSize > found->capacity - sizeof(FILTER_MESSAGE_HEADER)) {
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
    iocp = iocp_;
    key = key_;
  }
  const NTSTATUS status = static_cast<NTSTATUS>(msg.status);
  DWORD bytes = 0;
  if (msg.status == wire::kStatusSuccess) {
    get.buffer->ReplyLength = msg.replyLength;
    get.buffer->MessageId = msg.messageId;
    if (msg.dataSize != 0) {
      std::memcpy(reinterpret_cast<uint8_t*>(get.buffer) + sizeof(FILTER_MESSAGE_HEADER), msg.data, msg.dataSize);
    }
    bytes = static_cast<DWORD>(sizeof(FILTER_MESSAGE_HEADER) + msg.dataSize);
  }
  if (get.waiter != nullptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    get.waiter->status = status;
    get.waiter->bytes = bytes;
    get.waiter->done = true;
    get.waiter->cv.notify_one();
  } else {
    CompleteOverlapped(get.overlapped, status, bytes, iocp, key);
  }
  return true;
}

// Shared by FilterConnectCommunicationPort and FltSimConnectCommunicationPort.
HRESULT Connect(const char* endpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                HANDLE* hPort) {
  if (hPort == nullptr) return E_INVALIDARG;
  *hPort = INVALID_HANDLE_VALUE;
  if (name == nullptr) return E_INVALIDARG;
  if ((context == nullptr) != (contextSize == 0)) return E_INVALIDARG;
  if ((options & ~FLT_PORT_FLAG_SYNC_HANDLE) != 0) return E_INVALIDARG;
  if (endpoint == nullptr || *endpoint == '\0') endpoint = std::getenv("FLTMGR_SIMULATOR");
  if (endpoint == nullptr || *endpoint == '\0') return kHrNotFound;  // no simulator: as if no driver

  wire::Endpoint ep;
  std::string why;
  if (!wire::ParseEndpoint(endpoint, &ep, &why)) return E_INVALIDARG;
  if (ep.kind == wire::Endpoint::Kind::kPipe) return HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED);

  size_t nameUnits = 0;
  while (name[nameUnits] != 0) {
    if (++nameUnits > 0xFFFF) return E_INVALIDARG;
  }
  const size_t payloadSize = wire::ConnectPayloadSize(nameUnits, contextSize, ep.secret.size());
  if (payloadSize == 0) return E_INVALIDARG;

  std::vector<uint8_t> frame;
  Port* port = nullptr;
  try {
    frame.resize(wire::kHeaderSize + payloadSize);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  wire::EncodeHeader(frame.data(), wire::Type::kConnect, 0, static_cast<uint32_t>(payloadSize));
  wire::EncodeConnectPayload(frame.data() + wire::kHeaderSize, options, static_cast<uint32_t>(getpid()), name,
                             nameUnits, context, contextSize, ep.secret.data(), ep.secret.size());

  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(ConnectTimeoutMs());
  HRESULT hr = S_OK;
  const int fd = OpenSocket(ep, deadline, &hr);
  if (fd < 0) return hr;
  port = new (std::nothrow) Port(fd, (options & FLT_PORT_FLAG_SYNC_HANDLE) != 0);
  if (port == nullptr) {
    close(fd);
    return E_OUTOFMEMORY;
  }
  hr = port->Handshake(frame.data(), frame.size(), deadline);
  if (hr >= 0) hr = port->StartReader();
  if (hr < 0) {
    port->Release();  // closes the socket: the simulator sees the stream end
    return hr;
  }
  *hPort = static_cast<Object*>(port);
  return hr;
}

Ref<Port> PortFromHandle(HANDLE h) { return RefFromHandle<Port>(h); }

}  // namespace
}  // namespace compat
}  // namespace fltmgr

using fltmgr::compat::Port;
using fltmgr::compat::PortFromHandle;
using fltmgr::compat::Ref;

HRESULT FltSimConnectCommunicationPort(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                       WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                       HANDLE* hPort) {
  (void)lpSecurityAttributes;  // only handle inheritance on Windows; these sockets are close-on-exec
  return fltmgr::compat::Connect(endpoint, lpPortName, dwOptions, lpContext, wSizeOfContext, hPort);
}

HRESULT FltSimAbortPort(HANDLE hPort) {
  Ref<Port> port = PortFromHandle(hPort);
  if (!port) return E_HANDLE;
  port->Abort();
  return S_OK;
}

HRESULT FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext, WORD wSizeOfContext,
                                       LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort) {
  return FltSimConnectCommunicationPort(nullptr, lpPortName, dwOptions, lpContext, wSizeOfContext,
                                        lpSecurityAttributes, hPort);
}

HRESULT FilterGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped) {
  Ref<Port> port = PortFromHandle(hPort);
  if (!port) return E_HANDLE;
  try {
    return port->GetMessage(lpMessageBuffer, dwMessageBufferSize, lpOverlapped);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}

HRESULT FilterReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize) {
  Ref<Port> port = PortFromHandle(hPort);
  if (!port) return E_HANDLE;
  try {
    return port->Reply(lpReplyBuffer, dwReplyBufferSize);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}

HRESULT FilterSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned) {
  if (lpBytesReturned == nullptr) return E_INVALIDARG;
  *lpBytesReturned = 0;
  if ((lpInBuffer == nullptr && dwInBufferSize != 0) || (lpOutBuffer == nullptr && dwOutBufferSize != 0)) {
    return E_INVALIDARG;
  }
  Ref<Port> port = PortFromHandle(hPort);
  if (!port) return E_HANDLE;
  try {
    return port->Send(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}
