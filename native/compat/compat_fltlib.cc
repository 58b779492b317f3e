// fltlib communication calls for non-Windows hosts: a simulator session (native/sim/session.h) over a stream
// socket (unix or TCP loopback). One socket = one port handle = one connection.
//
// Threads and locks of a Port:
// - one reader thread (started after the handshake, joined by CloseHandle) reads frames and completes
//   requests; it never writes to the socket, so a writer blocked on a full socket cannot deadlock it;
// - writeMutex_ serialises frames on the socket; the session's mutex_ guards the request tables.
//   Lock order: writeMutex_ -> mutex_ -> (an Iocp's mutex). The reader takes only mutex_ and the Iocp's.
// - A request is completed by whoever removes it from its table (the reader with the simulator's answer,
//   or MarkDead on disconnect/close), or by CancelIoEx, which marks it abandoned; so each completes once.
//
// Cancellation completes locally and at once, as the kernel does on Windows: it must not depend on the
// simulator, which may run on the very JS thread that is waiting for the receive thread to drain. What the
// simulator still sends to a cancelled get is kept by the session (orphans).
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
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "../sim/session.h"
#include "../sim/wire.h"
#include "handle.h"
#include "socket.h"

namespace fltmgr {
namespace compat {
namespace {

using sim::Clock;
using sim::PendingGet;
using sim::RemainingMs;

// Connect-time errno -> HRESULT. Anything that means "nobody serves this endpoint" is ERROR_FILE_NOT_FOUND,
// which is what Windows reports when the minifilter (its port) is not there.
HRESULT HresultFromConnectErrno(int e) {
  switch (e) {
    case EACCES:
    case EPERM:
      return sim::kHrAccessDenied;
    case EMFILE:
    case ENFILE:
      return sim::kHrTooManyOpenFiles;
    case ENOMEM:
    case ENOBUFS:
      return E_OUTOFMEMORY;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ETIMEDOUT:
    case EINPROGRESS:
      return sim::kHrTimeout;
    default:
      return sim::kHrNotFound;
  }
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

}  // namespace

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

namespace {

class Port final : public IoObject, public sim::Session {
 public:
  Port(int fd, bool syncHandle) : fd_(fd), syncHandle_(syncHandle) {}
  ~Port() override {
    if (fd_ >= 0) close(fd_);
    if (iocp_ != nullptr) iocp_->Release();
  }

  HRESULT Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline);
  HRESULT StartReader();

  HRESULT Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);

  DWORD AssociateCompletionPort(Iocp* iocp, ULONG_PTR key) override;
  DWORD CancelIo(LPOVERLAPPED overlapped) override;
  void OnClose() override;
  // FltSimAbortPort: ends the connection now without closing the handle.
  void Abort();

 private:
  // sim::Session
  bool WriteRequest(const uint8_t* head, size_t headSize, const void* data, size_t dataSize) override;
  long ReadUpstream(uint8_t* at, size_t room, int timeoutMs) override;
  bool DeliverToOverlapped(const PendingGet& get, const wire::GetComplete& msg) override;
  void GiveOrphanLocked(PendingGet& get) override;
  void FailOverlappedLocked(PendingGet& get, uint32_t status) override;

  bool WriteLocked(iovec* iov, int count);
  void ReaderMain();
  // Caller holds mutex_ (iocp_ and key_ are set under it).
  void CompleteOverlappedLocked(LPOVERLAPPED ov, NTSTATUS status, DWORD bytes);

  const int fd_;
  const bool syncHandle_;

  std::mutex writeMutex_;
  Iocp* iocp_ = nullptr;  // set once under mutex_; referenced until destruction
  ULONG_PTR key_ = 0;

  std::thread readerThread_;
};

HRESULT Port::Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline) {
  if (!reader_.Init()) return E_OUTOFMEMORY;
  {
    std::lock_guard<std::mutex> lock(writeMutex_);
    iovec iov = {const_cast<uint8_t*>(frame.data()), frame.size()};
    if (!WriteLocked(&iov, 1)) return errno == EAGAIN || errno == EWOULDBLOCK ? sim::kHrTimeout : sim::kHrNotFound;
  }
  const HRESULT hr = AwaitConnectResult(deadline);
  if (hr >= 0) SetSendTimeout(fd_, 0);  // from now on writes wait as long as the simulator needs
  return hr;
}

HRESULT Port::StartReader() {
  try {
    readerThread_ = std::thread([this] { ReaderMain(); });
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

bool Port::WriteRequest(const uint8_t* head, size_t headSize, const void* data, size_t dataSize) {
  std::lock_guard<std::mutex> writeLock(writeMutex_);
  iovec iov[2] = {{const_cast<uint8_t*>(head), headSize}, {const_cast<void*>(data), dataSize}};
  return WriteLocked(iov, dataSize != 0 ? 2 : 1);
}

long Port::ReadUpstream(uint8_t* at, size_t room, int timeoutMs) {
  const auto deadline = timeoutMs < 0 ? Clock::time_point() : Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    if (timeoutMs >= 0) {
      pollfd p = {fd_, POLLIN, 0};
      const int n = poll(&p, 1, RemainingMs(deadline));
      if (n < 0) {
        if (errno == EINTR) continue;
        return kReadEnded;
      }
      if (n == 0) return kReadTimedOut;
    }
    const ssize_t n = recv(fd_, at, room, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return kReadEnded;
    }
    return n == 0 ? kReadEnded : static_cast<long>(n);  // 0: EOF, or shutdown by CloseHandle
  }
}

HRESULT Port::Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
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
    if (dead_.load()) return E_HANDLE;
    DWORD bytes = 0;
    const uint32_t orphan = TakeOrphanLocked(buffer, size, &bytes);
    if (orphan != sim::kStatusPending) {
      CompleteOverlappedLocked(overlapped, static_cast<NTSTATUS>(orphan), bytes);
      return sim::kHrIoPending;  // completes through the IOCP like any other get
    }
    PendingGet get;
    get.buffer = buffer;
    get.capacity = size;
    get.overlapped = overlapped;
    id = InsertGetLocked(get);
    if (id == 0) return sim::kHrTooManyRequests;
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
  return sim::kHrIoPending;
}

bool Port::DeliverToOverlapped(const PendingGet& get, const wire::GetComplete& msg) {
  // Out of the table, so only this thread completes it; copy without holding the lock.
  DWORD bytes = 0;
  if (msg.status == wire::kStatusSuccess) {
    get.buffer->ReplyLength = msg.replyLength;
    get.buffer->MessageId = msg.messageId;
    if (msg.dataSize != 0) {
      std::memcpy(reinterpret_cast<uint8_t*>(get.buffer) + sizeof(FILTER_MESSAGE_HEADER), msg.data, msg.dataSize);
    }
    bytes = static_cast<DWORD>(sizeof(FILTER_MESSAGE_HEADER) + msg.dataSize);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  CompleteOverlappedLocked(get.overlapped, static_cast<NTSTATUS>(msg.status), bytes);
  return true;
}

void Port::GiveOrphanLocked(PendingGet& get) {
  DWORD bytes = 0;
  // STATUS_BUFFER_TOO_SMALL leaves the orphan queued for the larger get the caller posts next.
  const uint32_t status = TakeOrphanLocked(get.buffer, get.capacity, &bytes);
  CompleteOverlappedLocked(get.overlapped, static_cast<NTSTATUS>(status), bytes);
}

void Port::FailOverlappedLocked(PendingGet& get, uint32_t status) {
  CompleteOverlappedLocked(get.overlapped, static_cast<NTSTATUS>(status), 0);
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
        CompleteOverlappedLocked(get.overlapped, STATUS_CANCELLED, 0);
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
  MarkDead(wire::kStatusCancelled, E_HANDLE);
  (void)shutdown(fd_, SHUT_RDWR);
  // CloseHandle never runs on the reader thread (it only calls into Iocp), but never join oneself.
  if (readerThread_.joinable() && readerThread_.get_id() != std::this_thread::get_id()) readerThread_.join();
}

void Port::CompleteOverlappedLocked(LPOVERLAPPED ov, NTSTATUS status, DWORD bytes) {
  ov->InternalHigh = bytes;
  StoreOverlappedStatus(ov, status);  // before the entry is queued: the consumer may read it at once
  if (iocp_ == nullptr) return;       // no completion port: the OVERLAPPED alone tells
  OVERLAPPED_ENTRY entry;
  entry.lpCompletionKey = key_;
  entry.lpOverlapped = ov;
  entry.Internal = static_cast<ULONG_PTR>(static_cast<uint32_t>(status));
  entry.dwNumberOfBytesTransferred = bytes;
  (void)iocp_->Post(entry);  // a closed IOCP drops it, as on Windows
}

void Port::Abort() {
  // A caller waiting for an answer the simulator never gives, or blocked writing to a simulator that stopped
  // reading, returns now: the waiters are failed here, and shutdown() wakes a writer blocked in sendmsg (and
  // the reader, which then finds nothing left to fail).
  MarkDead(wire::kStatusCancelled, sim::kHrAborted);
  (void)shutdown(fd_, SHUT_RDWR);
}

void Port::ReaderMain() {
  ReadUntilEnd();
  // The connection is over whatever the reason (DISCONNECT, EOF, error, malformed frame). After a close
  // MarkDead already ran and this finds nothing left.
  MarkDead(wire::kStatusPortDisconnected, E_HANDLE);
  (void)shutdown(fd_, SHUT_RDWR);  // a malformed stream is not read further; writers fail fast
}

// Shared by FilterConnectCommunicationPort and FltSimConnectCommunicationPort.
HRESULT Connect(const char* endpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize, HANDLE* hPort) {
  if (endpoint == nullptr || *endpoint == '\0') endpoint = std::getenv("FLTMGR_SIMULATOR");
  sim::ConnectRequest request;
  HRESULT hr = sim::PrepareConnect(endpoint, wire::Endpoint::Kind::kPipe, name, options, context, contextSize,
                                   static_cast<uint32_t>(getpid()), hPort, &request);
  if (FAILED(hr)) return hr;

  const int timeoutMs = sim::ConnectTimeoutMs(std::getenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS"));
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  const int fd = OpenSocket(request.endpoint, deadline, &hr);
  if (fd < 0) return hr;
  Port* port = new (std::nothrow) Port(fd, request.syncHandle);
  if (port == nullptr) {
    close(fd);
    return E_OUTOFMEMORY;
  }
  hr = port->Handshake(request.frame, deadline);
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
using fltmgr::sim::CallPort;

HRESULT FltSimConnectCommunicationPort(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                       WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort) {
  (void)lpSecurityAttributes;  // only handle inheritance on Windows; these sockets are close-on-exec
  return fltmgr::compat::Connect(endpoint, lpPortName, dwOptions, lpContext, wSizeOfContext, hPort);
}

HRESULT FltSimAbortPort(HANDLE hPort) {
  return CallPort(PortFromHandle(hPort), [](Port& port) {
    port.Abort();
    return S_OK;
  });
}

HRESULT FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext, WORD wSizeOfContext,
                                       LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort) {
  return FltSimConnectCommunicationPort(nullptr, lpPortName, dwOptions, lpContext, wSizeOfContext, lpSecurityAttributes,
                                        hPort);
}

HRESULT FilterGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped) {
  return CallPort(PortFromHandle(hPort),
                  [&](Port& port) { return port.Get(lpMessageBuffer, dwMessageBufferSize, lpOverlapped); });
}

HRESULT FilterReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize) {
  return CallPort(PortFromHandle(hPort), [&](Port& port) { return port.Reply(lpReplyBuffer, dwReplyBufferSize); });
}

HRESULT FilterSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned) {
  const HRESULT hr =
      fltmgr::sim::CheckSendArgs(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  if (FAILED(hr)) return hr;
  return CallPort(PortFromHandle(hPort), [&](Port& port) {
    return port.Send(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  });
}
