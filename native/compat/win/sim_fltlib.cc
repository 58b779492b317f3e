// The simulator-backed fltlib for Windows and Wine (declarations and contract: sim_fltlib.h; design and
// limits: docs/windows.md).
//
// One connection = one Port:
//   user handle ......... the client end of a private, single-instance, message-mode named pipe. It is a real
//                         overlapped file handle: the caller associates it with its own IOCP, and every
//                         overlapped FilterGetMessage is a ReadFile on it with the caller's OVERLAPPED, so
//                         completion, cancellation (CancelIoEx) and close are the operating system's own.
//   server end .......... owned by the relay thread: it writes one pipe message per delivered message
//                         (FILTER_MESSAGE_HEADER + data, so the completion's byte count is 16 + data), and
//                         keeps a read pending on it that completes only when the user's handle is closed.
//   upstream ............ a stream to the simulator (named pipe or TCP loopback, docs/wire-protocol.md). The
//                         relay thread is its only reader; callers write their own frames (GET, CANCEL,
//                         REPLY, SEND) under upWriteMu_ and wait for REPLY/SEND answers on a Waiter.
//
// Each overlapped get issues TWO reads on the user handle, in this order and atomically w.r.t. other gets
// (getMu_): the caller's ReadFile (its buffer, its OVERLAPPED) and a private 1-byte ReadFile whose
// OVERLAPPED.hEvent has its low bit set, so it posts no completion packet to the caller's IOCP. For each
// get the relay writes either [message][1-byte trailer] or, for STATUS_BUFFER_TOO_SMALL, one filler message
// one byte longer than the caller's buffer: the caller's read completes with ERROR_MORE_DATA (what a
// message-mode pipe reports) and the private read takes the remaining byte, so the pipe never holds a
// remainder that a later get would read. Pipe reads are served in the order they were issued, and GET
// frames go to the simulator in the same order, which delivers to gets in posting order: so the n-th
// delivery lands in the n-th get.
//
// Cancellation: CancelIoEx(h, NULL), CancelIo and CloseHandle cancel both reads of every pending get. The
// next get on the handle notices (the private reads' status), sends CANCEL for the gets the simulator
// still holds (a message that crossed the CANCEL is kept as an orphan), and drains anything the relay wrote
// for cancelled gets out of the pipe: messages become orphans, which the oldest unanswered read or a later
// get receives first, so no message is lost; trailers and fillers are dropped. A private read that receives part of a message means
// the pairing was broken (only a CancelIoEx of ONE get's OVERLAPPED can do that): the connection is then
// ended (as if the minifilter had closed the port) rather than delivering garbage.
//
// Disconnect (the simulator's DISCONNECT, EOF, a protocol error): the relay closes the server end, so
// pending gets complete with ERROR_BROKEN_PIPE and later calls return E_HANDLE (0x80070006).
//
// Locks, in order: getMu_ -> pipeMu_ -> stateMu_; upWriteMu_ is taken alone (never while waiting for the
// relay). The relay thread never takes getMu_ or upWriteMu_, and never blocks on the user: its pipe writes
// are overlapped and reaped later, so a stalled reader cannot stall the simulator's answers.
#include "sim_fltlib.h"

#include <winsock2.h>
#include <ws2tcpip.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../wire.h"

namespace fltmgr {
namespace winsim {
namespace {

// NTSTATUS values seen in OVERLAPPED.Internal (compared as their low 32 bits: Wine writes only those).
constexpr uint32_t kNtSuccess = 0x00000000u;
constexpr uint32_t kNtPending = 0x00000103u;
constexpr uint32_t kNtBufferOverflow = 0x80000005u;

constexpr DWORD kDefaultConnectTimeoutMs = 30000;
constexpr DWORD kPipeOutQuota = 64 * 1024;  // advisory: the relay's writes never wait for the reader
constexpr DWORD kPipeInQuota = 512;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kShrinkAbove = 1024 * 1024;
constexpr DWORD kTeardownWaitMs = 10000;
constexpr uint8_t kTrailerByte = 0x54;
// A filler (STATUS_BUFFER_TOO_SMALL) starts with this header, which no real message has.
constexpr uint32_t kFillerReplyLength = 0xFFFFFFFFu;
constexpr uint64_t kFillerMessageId = 0xFFFFFFFFFFFFFFFFull;
constexpr size_t kMsgHeader = wire::kMessageHeaderSize;

const HRESULT kHrIoPending = HRESULT_FROM_WIN32(ERROR_IO_PENDING);
const HRESULT kHrNotFound = HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
const HRESULT kHrAccessDenied = HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
const HRESULT kHrHandle = HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);  // == E_HANDLE on Windows
const HRESULT kHrTimeout = HRESULT_FROM_WIN32(ERROR_TIMEOUT);
const HRESULT kHrInvalidData = HRESULT_FROM_WIN32(ERROR_INVALID_DATA);
const HRESULT kHrNotSupported = HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED);
const HRESULT kHrTooManyRequests = HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES);
const HRESULT kHrInsufficientBuffer = HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER);

// OVERLAPPED.Internal is written by the I/O system while we poll it.
uint32_t LoadStatus(const OVERLAPPED& ov) {
  const ULONG_PTR v = *reinterpret_cast<const volatile ULONG_PTR*>(&ov.Internal);
  std::atomic_thread_fence(std::memory_order_acquire);
  return static_cast<uint32_t>(v);
}

HRESULT HresultFromGetStatus(uint32_t status) {
  switch (status) {
    case kNtSuccess:
      return S_OK;
    case wire::kStatusBufferTooSmall:
      return kHrInsufficientBuffer;
    case wire::kStatusCancelled:
      return HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED);
    default:
      return kHrHandle;  // STATUS_PORT_DISCONNECTED and anything unexpected
  }
}

bool ReadEnv(const char* name, std::string* out) {
  out->clear();
  char small[512];
  DWORD n = GetEnvironmentVariableA(name, small, static_cast<DWORD>(sizeof(small)));
  if (n == 0) return false;
  if (n < sizeof(small)) {
    out->assign(small, n);
    return true;
  }
  std::vector<char> big(n);
  n = GetEnvironmentVariableA(name, big.data(), static_cast<DWORD>(big.size()));
  if (n == 0 || n >= big.size()) return false;
  out->assign(big.data(), n);
  return true;
}

DWORD ConnectTimeoutMs() {
  std::string s;
  if (!ReadEnv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", &s) || s.empty() || s.size() > 9) {
    return kDefaultConnectTimeoutMs;
  }
  DWORD v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return kDefaultConnectTimeoutMs;
    v = v * 10 + static_cast<DWORD>(c - '0');
  }
  return v == 0 ? kDefaultConnectTimeoutMs : v;
}

using Clock = std::chrono::steady_clock;

DWORD RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > 0x7FFFFFFF ? 0x7FFFFFFFu : static_cast<DWORD>(left);
}

std::wstring Utf8ToWide(const std::string& s) {
  if (s.empty()) return std::wstring();
  const int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), static_cast<int>(s.size()), nullptr, 0);
  if (n <= 0) return std::wstring();
  std::wstring w(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), static_cast<int>(s.size()), &w[0], n);
  return w;
}

void AppendHex(std::wstring* out, uint64_t v) {
  static const wchar_t kDigits[] = L"0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kDigits[(v >> shift) & 0xF]);
}

// Keeps this module loaded while relay threads run its code (a DLL unloaded under a running thread would
// crash). Cheap and idempotent.
void PinModule() {
  HMODULE self = nullptr;
  (void)GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                           reinterpret_cast<LPCWSTR>(&PinModule), &self);
}

// ---------------------------------------------------------------------------------------------------------
// Upstream: the stream to the simulator.

class Upstream {
 public:
  virtual ~Upstream() = default;
  // Starts an overlapped read; false if it failed at once (the stream is over).
  virtual bool StartRead(uint8_t* buffer, DWORD size) = 0;
  virtual HANDLE ReadEvent() const = 0;
  // After ReadEvent() is signalled (or with wait = true, blocking): bytes read (> 0), 0 = end of stream,
  // -1 = error.
  virtual long FinishRead(bool wait) = 0;
  // Writes everything (blocking). Callers serialise.
  virtual bool WriteAll(const uint8_t* data, size_t size) = 0;
  // Cancels every operation on the stream (unblocks the reader and writers).
  virtual void CancelAll() = 0;
};

class PipeUpstream final : public Upstream {
 public:
  explicit PipeUpstream(HANDLE h) : h_(h) {
    readEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    writeEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  }
  ~PipeUpstream() override {
    CloseHandle(h_);
    if (readEvent_ != nullptr) CloseHandle(readEvent_);
    if (writeEvent_ != nullptr) CloseHandle(writeEvent_);
  }
  bool ok() const { return readEvent_ != nullptr && writeEvent_ != nullptr; }

  bool StartRead(uint8_t* buffer, DWORD size) override {
    std::memset(&readOv_, 0, sizeof(readOv_));
    ResetEvent(readEvent_);
    readOv_.hEvent = readEvent_;
    if (ReadFile(h_, buffer, size, nullptr, &readOv_)) return true;
    const DWORD e = GetLastError();
    return e == ERROR_IO_PENDING || e == ERROR_MORE_DATA;
  }
  HANDLE ReadEvent() const override { return readEvent_; }
  long FinishRead(bool wait) override {
    DWORD n = 0;
    if (GetOverlappedResult(h_, &readOv_, &n, wait ? TRUE : FALSE)) return n == 0 ? -2 : static_cast<long>(n);
    const DWORD e = GetLastError();
    if (e == ERROR_MORE_DATA) return static_cast<long>(n);  // a message-mode server: the rest follows
    if (e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA) return 0;
    return -1;
  }
  bool WriteAll(const uint8_t* data, size_t size) override {
    while (size > 0) {
      const DWORD chunk = static_cast<DWORD>(std::min<size_t>(size, 1u << 30));
      OVERLAPPED ov;
      std::memset(&ov, 0, sizeof(ov));
      ResetEvent(writeEvent_);
      ov.hEvent = writeEvent_;
      DWORD n = 0;
      if (!WriteFile(h_, data, chunk, nullptr, &ov) && GetLastError() != ERROR_IO_PENDING) return false;
      if (!GetOverlappedResult(h_, &ov, &n, TRUE) || n == 0) return false;
      data += n;
      size -= n;
    }
    return true;
  }
  void CancelAll() override { CancelIoEx(h_, nullptr); }

 private:
  HANDLE h_;
  HANDLE readEvent_ = nullptr;
  HANDLE writeEvent_ = nullptr;
  OVERLAPPED readOv_{};
};

class SocketUpstream final : public Upstream {
 public:
  // Takes a Winsock reference (WSAStartup is reference-counted) for the object's lifetime.
  SocketUpstream() {
    WSADATA data;
    started_ = WSAStartup(MAKEWORD(2, 2), &data) == 0;
    readEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    writeEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  }
  ~SocketUpstream() override {
    if (s_ != INVALID_SOCKET) closesocket(s_);
    if (readEvent_ != nullptr) CloseHandle(readEvent_);
    if (writeEvent_ != nullptr) CloseHandle(writeEvent_);
    if (started_) WSACleanup();
  }

  // Connects to ep (IPv4 loopback) within the deadline. S_OK or the failure.
  HRESULT Connect(const wire::Endpoint& ep, Clock::time_point deadline) {
    if (!started_ || readEvent_ == nullptr || writeEvent_ == nullptr) return E_OUTOFMEMORY;
    s_ = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s_ == INVALID_SOCKET) return FromWsa(WSAGetLastError());
    sockaddr_in addr;
    std::memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(ep.port);
    std::memcpy(&addr.sin_addr, ep.address, 4);  // already in network order
    // Connect without blocking past the deadline: WSAEventSelect makes the socket non-blocking and signals
    // FD_CONNECT. (The socket stays non-blocking; overlapped WSARecv/WSASend are unaffected by that.)
    HANDLE connectEvent = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (connectEvent == nullptr) return E_OUTOFMEMORY;
    HRESULT hr = S_OK;
    if (WSAEventSelect(s_, connectEvent, FD_CONNECT) != 0) {
      hr = FromWsa(WSAGetLastError());
    } else if (connect(s_, reinterpret_cast<const sockaddr*>(&addr), static_cast<int>(sizeof(addr))) != 0) {
      const int e = WSAGetLastError();
      if (e != WSAEWOULDBLOCK) {
        hr = FromWsa(e);
      } else if (WaitForSingleObject(connectEvent, RemainingMs(deadline)) != WAIT_OBJECT_0) {
        hr = kHrTimeout;
      } else {
        WSANETWORKEVENTS events;
        std::memset(&events, 0, sizeof(events));
        if (WSAEnumNetworkEvents(s_, connectEvent, &events) != 0) {
          hr = FromWsa(WSAGetLastError());
        } else if ((events.lNetworkEvents & FD_CONNECT) == 0) {
          hr = kHrNotFound;
        } else if (events.iErrorCode[FD_CONNECT_BIT] != 0) {
          hr = FromWsa(events.iErrorCode[FD_CONNECT_BIT]);
        }
      }
    }
    (void)WSAEventSelect(s_, nullptr, 0);
    CloseHandle(connectEvent);
    if (FAILED(hr)) return hr;
    const BOOL one = TRUE;
    (void)setsockopt(s_, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof(one));
    return S_OK;
  }

  bool StartRead(uint8_t* buffer, DWORD size) override {
    std::memset(&readOv_, 0, sizeof(readOv_));
    ResetEvent(readEvent_);
    readOv_.hEvent = readEvent_;
    WSABUF buf;
    buf.len = size;
    buf.buf = reinterpret_cast<char*>(buffer);
    DWORD flags = 0;
    if (WSARecv(s_, &buf, 1, nullptr, &flags, &readOv_, nullptr) == 0) return true;
    return WSAGetLastError() == WSA_IO_PENDING;
  }
  HANDLE ReadEvent() const override { return readEvent_; }
  long FinishRead(bool wait) override {
    DWORD n = 0;
    DWORD flags = 0;
    if (WSAGetOverlappedResult(s_, &readOv_, &n, wait ? TRUE : FALSE, &flags)) return static_cast<long>(n);
    return -1;
  }
  bool WriteAll(const uint8_t* data, size_t size) override {
    while (size > 0) {
      WSAOVERLAPPED ov;
      std::memset(&ov, 0, sizeof(ov));
      ResetEvent(writeEvent_);
      ov.hEvent = writeEvent_;
      WSABUF buf;
      buf.len = static_cast<ULONG>(std::min<size_t>(size, 1u << 30));
      buf.buf = reinterpret_cast<char*>(const_cast<uint8_t*>(data));
      if (WSASend(s_, &buf, 1, nullptr, 0, &ov, nullptr) != 0 && WSAGetLastError() != WSA_IO_PENDING) return false;
      DWORD n = 0;
      DWORD flags = 0;
      if (!WSAGetOverlappedResult(s_, &ov, &n, TRUE, &flags) || n == 0) return false;
      data += n;
      size -= n;
    }
    return true;
  }
  void CancelAll() override { CancelIoEx(reinterpret_cast<HANDLE>(s_), nullptr); }

 private:
  static HRESULT FromWsa(int e) {
    switch (e) {
      case WSAETIMEDOUT:
        return kHrTimeout;
      case WSAEACCES:
        return kHrAccessDenied;
      case WSAENOBUFS:
        return E_OUTOFMEMORY;
      case WSAEMFILE:
        return HRESULT_FROM_WIN32(ERROR_TOO_MANY_OPEN_FILES);
      default:
        return kHrNotFound;  // nobody serves this endpoint: as when the minifilter is not loaded
    }
  }

  bool started_ = false;
  SOCKET s_ = INVALID_SOCKET;
  HANDLE readEvent_ = nullptr;
  HANDLE writeEvent_ = nullptr;
  WSAOVERLAPPED readOv_{};
};

HRESULT OpenPipeUpstream(const wire::Endpoint& ep, Clock::time_point deadline, std::unique_ptr<Upstream>* out) {
  const std::wstring path = Utf8ToWide(ep.path);
  if (path.empty()) return E_INVALIDARG;
  for (;;) {
    HANDLE h = CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      std::unique_ptr<PipeUpstream> up(new (std::nothrow) PipeUpstream(h));
      if (!up) {
        CloseHandle(h);
        return E_OUTOFMEMORY;
      }
      if (!up->ok()) return E_OUTOFMEMORY;
      *out = std::move(up);
      return S_OK;
    }
    const DWORD e = GetLastError();
    if (e == ERROR_PIPE_BUSY) {
      const DWORD ms = RemainingMs(deadline);
      if (ms == 0) return kHrTimeout;
      if (!WaitNamedPipeW(path.c_str(), ms) && GetLastError() == ERROR_SEM_TIMEOUT) return kHrTimeout;
      continue;
    }
    if (e == ERROR_ACCESS_DENIED) return kHrAccessDenied;
    if (e == ERROR_NOT_ENOUGH_MEMORY || e == ERROR_NO_SYSTEM_RESOURCES) return E_OUTOFMEMORY;
    return kHrNotFound;
  }
}

// Buffered frame reader over the upstream.
class FrameReader {
 public:
  enum class Parse { kFrame, kNeedMore, kMalformed };

  bool Init() {
    data_.reset(new (std::nothrow) uint8_t[kReadChunk]);
    cap_ = data_ ? kReadChunk : 0;
    return cap_ != 0;
  }
  // A frame's payload stays valid until the next PrepareRead().
  Parse Next(wire::FrameHeader* header, const uint8_t** payload) {
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
    pos_ += total;
    need_ = wire::kHeaderSize;
    return Parse::kFrame;
  }
  // Room for the next read (enough for the frame being assembled); false when out of memory.
  bool PrepareRead(uint8_t** at, DWORD* size) {
    if (pos_ == end_) {
      pos_ = end_ = 0;
      if (cap_ > kShrinkAbove && need_ <= kReadChunk) {
        std::unique_ptr<uint8_t[]> small(new (std::nothrow) uint8_t[kReadChunk]);
        if (small) {
          data_ = std::move(small);
          cap_ = kReadChunk;
        }
      }
    }
    const size_t have = end_ - pos_;
    if (need_ > cap_) {
      std::unique_ptr<uint8_t[]> bigger(new (std::nothrow) uint8_t[need_]);
      if (!bigger) return false;
      std::memcpy(bigger.get(), data_.get() + pos_, have);
      data_ = std::move(bigger);
      cap_ = need_;
      pos_ = 0;
      end_ = have;
    } else if (pos_ > 0 && (cap_ - pos_ < need_ || cap_ - end_ < 4096)) {
      std::memmove(data_.get(), data_.get() + pos_, have);
      pos_ = 0;
      end_ = have;
    }
    *at = data_.get() + end_;
    *size = static_cast<DWORD>(std::min<size_t>(cap_ - end_, 0x7FFFFFFF));
    return true;
  }
  void Commit(DWORD n) { end_ += n; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t cap_ = 0;
  size_t pos_ = 0;
  size_t end_ = 0;
  size_t need_ = wire::kHeaderSize;
};

// ---------------------------------------------------------------------------------------------------------
// Port

// A caller blocked in a synchronous call: REPLY, SEND, or a get without OVERLAPPED.
struct Waiter {
  bool done = false;
  HRESULT hr = kHrHandle;
  // synchronous get
  PFILTER_MESSAGE_HEADER buffer = nullptr;
  uint32_t capacity = 0;
  // send
  bool isSend = false;
  uint8_t* out = nullptr;
  uint32_t outCapacity = 0;
  DWORD bytes = 0;
};

struct GetEntry {
  uint32_t capacity = 0;
  Waiter* waiter = nullptr;  // synchronous get; nullptr for an overlapped one
  bool abandoned = false;    // its reads were cancelled: a message for it becomes an orphan
};

struct Orphan {
  uint32_t replyLength = 0;
  uint64_t messageId = 0;
  std::vector<uint8_t> data;
};

// The private 1-byte read that follows each overlapped get.
struct PairRecord {
  OVERLAPPED ov;
  uint8_t byte;
  uint32_t getId;  // the GET sent for this get (0: it took an orphan)
};

// An overlapped write on the server end, alive until it completes.
struct PipeWrite {
  OVERLAPPED ov;
  std::vector<uint8_t> data;
};

class Port : public std::enable_shared_from_this<Port> {
 public:
  Port(CloseMode mode, bool syncHandle) : mode_(mode), sync_(syncHandle) {}
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  HRESULT Open(const wire::Endpoint& ep, const std::vector<uint8_t>& connectFrame, LPSECURITY_ATTRIBUTES sa);
  HRESULT StartRelay();
  HANDLE client() const { return client_; }

  HRESULT Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);
  HRESULT Reply(PFILTER_REPLY_HEADER buffer, DWORD size);
  HRESULT Send(const void* in, DWORD inSize, void* out, DWORD outSize, DWORD* bytesReturned);
  BOOL Close();
  // FltSimAbortPort: fails every waiting caller now and ends the connection; the handle stays valid.
  void Abort();

 private:
  enum class EndReason { kStop, kKill, kClientClosed, kUpstreamEnded };

  HRESULT CreatePipePair(LPSECURITY_ATTRIBUTES sa);
  HRESULT Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline);

  HRESULT GetAsync(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);
  HRESULT GetSync(PFILTER_MESSAGE_HEADER buffer, DWORD size);
  HRESULT Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter);
  bool WriteUpstream(const uint8_t* a, size_t aSize, const void* b = nullptr, size_t bSize = 0);
  bool SendCancels(const std::vector<uint32_t>& ids);
  void Kill();

  // getMu_ held.
  bool ReapRecords(std::vector<uint32_t>* cancels);
  PairRecord* NewRecord();
  void FreeRecord(PairRecord* record);
  // getMu_ + pipeMu_ held.
  bool DrainLeftovers();
  // pipeMu_ held.
  bool WritePipe(std::vector<uint8_t> data);
  bool WriteMessagePair(uint32_t replyLength, uint64_t messageId, const uint8_t* data, size_t size);
  bool WriteFiller(uint32_t capacity);
  void ReapWritesLocked();

  uint32_t InsertGetLocked(const GetEntry& entry);  // stateMu_ held; 0 = too many
  uint32_t InsertCallLocked(Waiter* waiter);        // stateMu_ held; 0 = too many
  bool TakeOrphanInto(PFILTER_MESSAGE_HEADER buffer, uint32_t size, HRESULT* hr);  // stateMu_ held

  void RelayMain(std::shared_ptr<Port> self);
  bool StartInboundRead();
  bool Dispatch(const wire::FrameHeader& header, const uint8_t* payload);
  bool OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size);
  // Fails every pending synchronous get and call with callHr; later calls fail with E_HANDLE.
  void MarkDead(HRESULT callHr = kHrHandle);
  void Teardown(EndReason reason);

  const CloseMode mode_;
  const bool sync_;

  std::unique_ptr<Upstream> up_;   // the relay reads; writers hold upWriteMu_
  std::mutex upWriteMu_;
  std::atomic<bool> upClosed_{false};
  FrameReader reader_;             // handshake, then the relay thread only
  bool readPending_ = false;       // relay thread only

  HANDLE client_ = nullptr;        // the user's handle (never closed here except by Close())
  HANDLE server_ = nullptr;        // guarded by pipeMu_; closed by the relay's teardown
  HANDLE privateEvent_ = nullptr;  // signalled by the private reads (nobody waits on it: their status is polled)
  HANDLE inboundEvent_ = nullptr;
  HANDLE stopEvent_ = nullptr;
  HANDLE killEvent_ = nullptr;
  OVERLAPPED inboundOv_{};
  uint8_t inboundByte_ = 0;
  bool inboundPending_ = false;

  std::thread relay_;

  std::mutex getMu_;
  std::list<std::unique_ptr<PairRecord>> records_;  // in flight, issue order
  std::vector<std::unique_ptr<PairRecord>> spare_;
  bool drainNeeded_ = false;

  std::mutex pipeMu_;
  std::list<std::unique_ptr<PipeWrite>> writes_;

  std::mutex stateMu_;
  std::condition_variable cv_;
  std::atomic<bool> dead_{false};
  std::unordered_map<uint32_t, GetEntry> gets_;
  std::unordered_map<uint32_t, Waiter*> calls_;
  uint32_t nextGetId_ = 0;
  uint32_t nextCallId_ = 0;
  std::deque<Orphan> orphans_;
};

// The process's port handles. fltlib's calls pass nothing but the HANDLE, so this map is the one piece of
// process-wide state; everything else belongs to a connection. Never destroyed: relay threads may still
// look it up while the process exits.
class Registry {
 public:
  static Registry& Instance() {
    static Registry* const instance = new Registry();
    return *instance;
  }
  void Put(HANDLE h, const std::shared_ptr<Port>& port) {
    std::lock_guard<std::mutex> lock(mu_);
    map_[h] = port;  // a value reused after a plain CloseHandle replaces the dead entry
  }
  std::shared_ptr<Port> Find(HANDLE h) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(h);
    return it == map_.end() ? nullptr : it->second;
  }
  std::shared_ptr<Port> Take(HANDLE h) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(h);
    if (it == map_.end()) return nullptr;
    std::shared_ptr<Port> port = std::move(it->second);
    map_.erase(it);
    return port;
  }
  void RemoveIf(HANDLE h, const Port* port) {
    std::shared_ptr<Port> doomed;  // released after the lock
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(h);
    if (it != map_.end() && it->second.get() == port) {
      doomed = std::move(it->second);
      map_.erase(it);
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<HANDLE, std::shared_ptr<Port>> map_;
};

Port::~Port() {
  if (relay_.joinable()) {
    // Only the relay itself can drop the last reference while it runs (CloseMode::kByHandle): it is returning.
    if (relay_.get_id() == std::this_thread::get_id()) {
      relay_.detach();
    } else {
      SetEvent(stopEvent_);
      relay_.join();
    }
  }
  // The user's handle is closed (or the server end is), so every private read completes promptly; their
  // OVERLAPPEDs must outlive that. If one never does, leak it rather than let the system write freed memory.
  const auto deadline = Clock::now() + std::chrono::milliseconds(kTeardownWaitMs);
  for (auto& record : records_) {
    while (LoadStatus(record->ov) == kNtPending && Clock::now() < deadline) Sleep(1);
    if (LoadStatus(record->ov) == kNtPending) (void)record.release();
  }
  if (server_ != nullptr) CloseHandle(server_);  // never started
  for (HANDLE h : {privateEvent_, inboundEvent_, stopEvent_, killEvent_}) {
    if (h != nullptr) CloseHandle(h);
  }
}

HRESULT Port::Open(const wire::Endpoint& ep, const std::vector<uint8_t>& connectFrame, LPSECURITY_ATTRIBUTES sa) {
  privateEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  inboundEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  stopEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  killEvent_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (privateEvent_ == nullptr || inboundEvent_ == nullptr || stopEvent_ == nullptr || killEvent_ == nullptr) {
    return E_OUTOFMEMORY;
  }
  if (!reader_.Init()) return E_OUTOFMEMORY;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(ConnectTimeoutMs());
  HRESULT hr = S_OK;
  if (ep.kind == wire::Endpoint::Kind::kTcp) {
    std::unique_ptr<SocketUpstream> up(new (std::nothrow) SocketUpstream());
    if (!up) return E_OUTOFMEMORY;
    hr = up->Connect(ep, deadline);
    if (FAILED(hr)) return hr;
    up_ = std::move(up);
  } else {
    hr = OpenPipeUpstream(ep, deadline, &up_);
    if (FAILED(hr)) return hr;
  }
  hr = Handshake(connectFrame, deadline);
  if (FAILED(hr)) return hr;
  return CreatePipePair(sa);
}

HRESULT Port::Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline) {
  if (!up_->WriteAll(frame.data(), frame.size())) return kHrNotFound;
  for (;;) {
    wire::FrameHeader header;
    const uint8_t* payload = nullptr;
    const FrameReader::Parse p = reader_.Next(&header, &payload);
    if (p == FrameReader::Parse::kMalformed) return kHrInvalidData;
    if (p == FrameReader::Parse::kFrame) {
      int32_t result = 0;
      if (header.type != wire::Type::kConnectResult || !wire::DecodeResult(payload, header.payloadSize, &result)) {
        return kHrInvalidData;
      }
      return static_cast<HRESULT>(result);
    }
    uint8_t* at = nullptr;
    DWORD room = 0;
    if (!reader_.PrepareRead(&at, &room)) return E_OUTOFMEMORY;
    if (!up_->StartRead(at, room)) return kHrNotFound;
    if (WaitForSingleObject(up_->ReadEvent(), RemainingMs(deadline)) != WAIT_OBJECT_0) {
      up_->CancelAll();
      (void)up_->FinishRead(true);
      return kHrTimeout;
    }
    const long n = up_->FinishRead(false);
    if (n == -2) continue;
    if (n <= 0) return kHrNotFound;  // the simulator went away before answering
    reader_.Commit(static_cast<DWORD>(n));
  }
}

HRESULT Port::CreatePipePair(LPSECURITY_ATTRIBUTES sa) {
  const DWORD clientFlags = (sync_ ? 0 : FILE_FLAG_OVERLAPPED) | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION;
  for (int attempt = 0; attempt < 8; ++attempt) {
    // Unique per attempt; what makes the pipe private is that it has one instance and we connect to it at
    // once: if anybody else got there first, our CreateFileW fails and we start over with another name.
    LARGE_INTEGER qpc;
    QueryPerformanceCounter(&qpc);
    std::wstring name = L"\\\\.\\pipe\\fltmgr-port-";
    AppendHex(&name, GetCurrentProcessId());
    name.push_back(L'-');
    AppendHex(&name, reinterpret_cast<uintptr_t>(this) ^ (static_cast<uint64_t>(GetCurrentThreadId()) << 48));
    name.push_back(L'-');
    AppendHex(&name, static_cast<uint64_t>(qpc.QuadPart) + static_cast<uint64_t>(attempt));
    HANDLE server = CreateNamedPipeW(
        name.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, kPipeOutQuota,
        kPipeInQuota, 0, nullptr);
    if (server == INVALID_HANDLE_VALUE) {
      const DWORD e = GetLastError();
      if (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) continue;  // name taken
      return HRESULT_FROM_WIN32(e);
    }
    // Read access only (plus FILE_WRITE_ATTRIBUTES for the read mode): the user's end can never write, so
    // the relay's read on the server end completes only when that handle is closed.
    HANDLE client = CreateFileW(name.c_str(), GENERIC_READ | FILE_WRITE_ATTRIBUTES, 0, sa, OPEN_EXISTING,
                                clientFlags, nullptr);
    if (client == INVALID_HANDLE_VALUE) {
      CloseHandle(server);
      continue;
    }
    DWORD mode = PIPE_READMODE_MESSAGE;
    OVERLAPPED ov;
    std::memset(&ov, 0, sizeof(ov));
    ov.hEvent = inboundEvent_;
    const BOOL connected = ConnectNamedPipe(server, &ov);
    const DWORD connectError = connected ? 0 : GetLastError();
    if (connectError == ERROR_IO_PENDING) {  // cannot happen: our client is connected
      CancelIoEx(server, &ov);
      DWORD ignored = 0;
      (void)GetOverlappedResult(server, &ov, &ignored, TRUE);
    }
    if (!SetNamedPipeHandleState(client, &mode, nullptr, nullptr) || connectError != ERROR_PIPE_CONNECTED) {
      const DWORD e = GetLastError();
      CloseHandle(client);
      CloseHandle(server);
      if (connectError != ERROR_PIPE_CONNECTED) continue;
      return HRESULT_FROM_WIN32(e == 0 ? ERROR_GEN_FAILURE : e);
    }
    server_ = server;
    client_ = client;
    return S_OK;
  }
  return HRESULT_FROM_WIN32(ERROR_PIPE_BUSY);
}

HRESULT Port::StartRelay() {
  try {
    relay_ = std::thread(&Port::RelayMain, this, shared_from_this());
  } catch (const std::system_error&) {
    return E_OUTOFMEMORY;
  }
  return S_OK;
}

BOOL Port::Close() {
  const BOOL ok = CloseHandle(client_);  // pending gets complete: 995 on Windows, 109 under Wine
  const DWORD closeError = ok ? 0 : GetLastError();
  SetEvent(stopEvent_);
  if (relay_.joinable() && relay_.get_id() != std::this_thread::get_id()) relay_.join();
  if (!ok) SetLastError(closeError);
  return ok;
}

void Port::Kill() { SetEvent(killEvent_); }

void Port::Abort() {
  MarkDead(HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED));
  Kill();  // the relay tears down: pending reads complete, writers blocked on the upstream are cancelled
}

bool Port::WriteUpstream(const uint8_t* a, size_t aSize, const void* b, size_t bSize) {
  std::lock_guard<std::mutex> lock(upWriteMu_);
  if (upClosed_.load() || !up_) return false;
  if (up_->WriteAll(a, aSize) && (bSize == 0 || up_->WriteAll(static_cast<const uint8_t*>(b), bSize))) return true;
  // The stream may now hold half a frame: nothing more can be said on it.
  Kill();
  return false;
}

bool Port::SendCancels(const std::vector<uint32_t>& ids) {
  std::vector<uint8_t> frames(ids.size() * wire::kHeaderSize);
  for (size_t i = 0; i < ids.size(); ++i) {
    wire::EncodeHeader(frames.data() + i * wire::kHeaderSize, wire::Type::kCancel, ids[i], 0);
  }
  return frames.empty() || WriteUpstream(frames.data(), frames.size());
}

uint32_t Port::InsertGetLocked(const GetEntry& entry) {
  if (gets_.size() >= wire::kMaxPendingGets) return 0;
  for (;;) {
    if (++nextGetId_ == 0) nextGetId_ = 1;
    if (gets_.find(nextGetId_) == gets_.end()) break;
  }
  gets_.emplace(nextGetId_, entry);
  return nextGetId_;
}

uint32_t Port::InsertCallLocked(Waiter* waiter) {
  if (calls_.size() >= wire::kMaxOutstandingRequests) return 0;
  for (;;) {
    if (++nextCallId_ == 0) nextCallId_ = 1;
    if (calls_.find(nextCallId_) == calls_.end()) break;
  }
  calls_.emplace(nextCallId_, waiter);
  return nextCallId_;
}

bool Port::TakeOrphanInto(PFILTER_MESSAGE_HEADER buffer, uint32_t size, HRESULT* hr) {
  if (orphans_.empty()) return false;
  Orphan& o = orphans_.front();
  if (o.data.size() > size - kMsgHeader) {
    *hr = kHrInsufficientBuffer;  // it stays, as a queued message does
    return true;
  }
  buffer->ReplyLength = o.replyLength;
  buffer->MessageId = o.messageId;
  if (!o.data.empty()) std::memcpy(reinterpret_cast<uint8_t*>(buffer) + kMsgHeader, o.data.data(), o.data.size());
  orphans_.pop_front();
  *hr = S_OK;
  return true;
}

HRESULT Port::Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  if (buffer == nullptr || size < kMsgHeader) return E_INVALIDARG;
  if (overlapped == nullptr) return GetSync(buffer, size);
  // A synchronous handle does no overlapped I/O (as the POSIX twin, native/compat/compat_fltlib.cc).
  if (sync_) return E_INVALIDARG;
  return GetAsync(buffer, size, overlapped);
}

HRESULT Port::GetSync(PFILTER_MESSAGE_HEADER buffer, DWORD size) {
  Waiter waiter;
  waiter.buffer = buffer;
  waiter.capacity = size;
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(stateMu_);
    if (dead_.load()) return kHrHandle;
    HRESULT hr = S_OK;
    if (TakeOrphanInto(buffer, size, &hr)) return hr;
    GetEntry entry;
    entry.capacity = size;
    entry.waiter = &waiter;
    id = InsertGetLocked(entry);
    if (id == 0) return kHrTooManyRequests;
  }
  uint8_t frame[wire::kGetFrameSize];
  wire::EncodeGet(frame, id, size);
  (void)WriteUpstream(frame, sizeof(frame));  // on failure the relay fails the waiter
  std::unique_lock<std::mutex> lock(stateMu_);
  cv_.wait(lock, [&waiter] { return waiter.done; });
  return waiter.hr;
}

PairRecord* Port::NewRecord() {
  std::unique_ptr<PairRecord> record;
  if (!spare_.empty()) {
    record = std::move(spare_.back());
    spare_.pop_back();
  } else {
    record.reset(new (std::nothrow) PairRecord());
    if (!record) return nullptr;
  }
  std::memset(&record->ov, 0, sizeof(record->ov));
  record->byte = 0;
  record->getId = 0;
  records_.push_back(std::move(record));
  return records_.back().get();
}

void Port::FreeRecord(PairRecord* record) {
  for (auto it = records_.begin(); it != records_.end(); ++it) {
    if (it->get() == record) {
      spare_.push_back(std::move(*it));
      records_.erase(it);
      return;
    }
  }
}

bool Port::ReapRecords(std::vector<uint32_t>* cancels) {
  bool intact = true;
  for (auto it = records_.begin(); it != records_.end();) {
    const uint32_t status = LoadStatus((*it)->ov);
    if (status == kNtPending) {
      ++it;
      continue;
    }
    if (status == kNtBufferOverflow) {
      intact = false;  // part of a message landed in a private read: the pairing is broken
    } else if (status != kNtSuccess) {
      // Cancelled (or the handle closed): the caller's read went with it.
      drainNeeded_ = true;
      const uint32_t id = (*it)->getId;
      if (id != 0) {
        std::lock_guard<std::mutex> lock(stateMu_);
        auto found = gets_.find(id);
        if (found != gets_.end() && !found->second.abandoned) {
          found->second.abandoned = true;
          cancels->push_back(id);
        }
      }
    }
    spare_.push_back(std::move(*it));
    it = records_.erase(it);
  }
  return intact;
}

bool Port::DrainLeftovers() {
  // Called with pipeMu_ held, so no pair is half written. Anything buffered in the pipe now was written for
  // gets that were cancelled (a pending read would have taken it).
  for (;;) {
    uint8_t head[kMsgHeader];
    DWORD peeked = 0;
    DWORD avail = 0;
    DWORD left = 0;
    if (!PeekNamedPipe(client_, head, static_cast<DWORD>(sizeof(head)), &peeked, &avail, &left)) return false;
    if (avail == 0) return true;
    const size_t size = static_cast<size_t>(peeked) + left;
    std::vector<uint8_t> message(std::max<size_t>(size, 1));
    OVERLAPPED ov;
    std::memset(&ov, 0, sizeof(ov));
    ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(privateEvent_) | 1);
    if (!ReadFile(client_, message.data(), static_cast<DWORD>(message.size()), nullptr, &ov) &&
        GetLastError() != ERROR_IO_PENDING) {
      return false;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(kTeardownWaitMs);
    while (LoadStatus(ov) == kNtPending && Clock::now() < deadline) Sleep(0);
    if (LoadStatus(ov) != kNtSuccess) {
      if (LoadStatus(ov) == kNtPending) {
        CancelIoEx(client_, &ov);
        while (LoadStatus(ov) == kNtPending) Sleep(1);
      }
      return false;
    }
    if (size < kMsgHeader) continue;  // a trailer
    const uint32_t replyLength = wire::GetU32(message.data());
    const uint64_t messageId = wire::GetU64(message.data() + 8);
    if (replyLength == kFillerReplyLength && messageId == kFillerMessageId) continue;  // a filler
    Orphan o;
    o.replyLength = replyLength;
    o.messageId = messageId;
    o.data.assign(message.data() + kMsgHeader, message.data() + size);
    std::lock_guard<std::mutex> lock(stateMu_);
    orphans_.push_back(std::move(o));
  }
}

HRESULT Port::GetAsync(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  std::lock_guard<std::mutex> getLock(getMu_);
  if (dead_.load()) return kHrHandle;
  std::vector<uint32_t> cancels;
  if (!ReapRecords(&cancels)) {
    Kill();
    return kHrHandle;
  }
  if (!SendCancels(cancels)) return kHrHandle;

  PairRecord* record = NewRecord();
  if (record == nullptr) return E_OUTOFMEMORY;
  std::unique_lock<std::mutex> pipeLock(pipeMu_);
  if (server_ == nullptr) {
    FreeRecord(record);
    return kHrHandle;
  }
  if (drainNeeded_) {
    if (!DrainLeftovers()) {
      FreeRecord(record);
      Kill();
      return kHrHandle;
    }
    drainNeeded_ = false;
  }
  // What will answer this get: an orphan (a message that outlived its get; too large, it makes this get fail
  // and stays, as a queued message does), or the simulator (a GET, registered now, sent after the reads).
  enum class Plan { kSimulator, kOrphan, kOrphanTooLarge } plan = Plan::kSimulator;
  Orphan orphan;
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(stateMu_);
    if (!orphans_.empty()) {
      if (orphans_.front().data.size() <= size - kMsgHeader) {
        orphan = std::move(orphans_.front());
        orphans_.pop_front();
        plan = Plan::kOrphan;
      } else {
        plan = Plan::kOrphanTooLarge;
      }
    } else {
      GetEntry entry;
      entry.capacity = size;
      id = InsertGetLocked(entry);
      if (id == 0) {
        FreeRecord(record);
        return kHrTooManyRequests;
      }
    }
  }
  record->getId = id;

  // The caller's read.
  // An overlapped FilterGetMessage answers ERROR_IO_PENDING on Windows even when a message is already
  // waiting, and classic clients stop their thread on anything else: a read that completed at once is
  // reported as pending too (its completion is queued all the same; see docs/windows.md for the one case
  // where that differs, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS).
  const HRESULT result = kHrIoPending;
  if (!ReadFile(client_, buffer, size, nullptr, overlapped)) {
    const DWORD e = GetLastError();
    // ERROR_MORE_DATA at once (a filler was waiting) still posts its completion, as a success does.
    if (e != ERROR_IO_PENDING && e != ERROR_MORE_DATA) {
      {
        std::lock_guard<std::mutex> lock(stateMu_);
        if (id != 0) gets_.erase(id);
        if (plan == Plan::kOrphan) orphans_.push_front(std::move(orphan));
      }
      FreeRecord(record);
      const bool gone = e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA ||
                        e == ERROR_INVALID_HANDLE;
      return gone ? kHrHandle : HRESULT_FROM_WIN32(e);
    }
  }
  // The private read that takes the trailer (or a filler's last byte). No IOCP packet: low bit of hEvent.
  record->ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(privateEvent_) | 1);
  if (!ReadFile(client_, &record->byte, 1, nullptr, &record->ov) && GetLastError() != ERROR_IO_PENDING) {
    // The caller's read is issued but its pair is not: end the connection, which completes that read.
    FreeRecord(record);
    Kill();
    return result;
  }
  if (plan == Plan::kOrphan) {
    (void)WriteMessagePair(orphan.replyLength, orphan.messageId, orphan.data.data(), orphan.data.size());
  } else if (plan == Plan::kOrphanTooLarge) {
    (void)WriteFiller(size);
  }
  pipeLock.unlock();
  if (id != 0) {
    uint8_t frame[wire::kGetFrameSize];
    wire::EncodeGet(frame, id, size);
    (void)WriteUpstream(frame, sizeof(frame));  // failure ends the connection, which completes the reads
  }
  return result;
}

HRESULT Port::Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter) {
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(stateMu_);
    if (dead_.load()) return kHrHandle;
    id = InsertCallLocked(waiter);
    if (id == 0) return kHrTooManyRequests;
  }
  wire::PutU32(head + 8, id);  // the header's id field
  (void)WriteUpstream(head, headSize, data, dataSize);  // on failure the relay fails the call
  std::unique_lock<std::mutex> lock(stateMu_);
  cv_.wait(lock, [waiter] { return waiter->done; });
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

// --- server-end writes (pipeMu_ held) ------------------------------------------------------------------

bool Port::WritePipe(std::vector<uint8_t> data) {
  if (server_ == nullptr) return false;
  std::unique_ptr<PipeWrite> op(new (std::nothrow) PipeWrite());
  if (!op) return false;
  std::memset(&op->ov, 0, sizeof(op->ov));
  op->data = std::move(data);
  // No event and no completion port: the write's status is polled (ReapWritesLocked).
  if (!WriteFile(server_, op->data.data(), static_cast<DWORD>(op->data.size()), nullptr, &op->ov) &&
      GetLastError() != ERROR_IO_PENDING) {
    return false;  // the user's end is gone; the relay's inbound read reports it
  }
  writes_.push_back(std::move(op));
  ReapWritesLocked();
  return true;
}

bool Port::WriteMessagePair(uint32_t replyLength, uint64_t messageId, const uint8_t* data, size_t size) {
  std::vector<uint8_t> message;
  try {
    message.resize(kMsgHeader + size);
  } catch (const std::bad_alloc&) {
    Kill();
    return false;
  }
  wire::PutU32(message.data(), replyLength);
  wire::PutU32(message.data() + 4, 0);
  wire::PutU64(message.data() + 8, messageId);
  if (size != 0) std::memcpy(message.data() + kMsgHeader, data, size);
  if (!WritePipe(std::move(message))) return false;
  return WritePipe(std::vector<uint8_t>(1, kTrailerByte));
}

bool Port::WriteFiller(uint32_t capacity) {
  std::vector<uint8_t> filler;
  try {
    filler.assign(static_cast<size_t>(capacity) + 1, 0);
  } catch (const std::bad_alloc&) {
    Kill();
    return false;
  }
  wire::PutU32(filler.data(), kFillerReplyLength);
  wire::PutU64(filler.data() + 8, kFillerMessageId);
  return WritePipe(std::move(filler));
}

void Port::ReapWritesLocked() {
  for (auto it = writes_.begin(); it != writes_.end();) {
    if (LoadStatus((*it)->ov) == kNtPending) {
      ++it;
    } else {
      it = writes_.erase(it);
    }
  }
}

// --- relay thread ---------------------------------------------------------------------------------------

bool Port::StartInboundRead() {
  std::memset(&inboundOv_, 0, sizeof(inboundOv_));
  ResetEvent(inboundEvent_);
  inboundOv_.hEvent = inboundEvent_;
  inboundPending_ = true;
  if (ReadFile(server_, &inboundByte_, 1, nullptr, &inboundOv_)) return true;  // cannot happen: no write access
  const DWORD e = GetLastError();
  if (e == ERROR_IO_PENDING || e == ERROR_MORE_DATA) return true;
  inboundPending_ = false;
  return false;
}

void Port::RelayMain(std::shared_ptr<Port> self) {
  EndReason reason = EndReason::kUpstreamEnded;
  if (!StartInboundRead()) {
    Teardown(EndReason::kClientClosed);
    return;
  }
  for (;;) {
    if (!readPending_) {
      uint8_t* at = nullptr;
      DWORD room = 0;
      if (!reader_.PrepareRead(&at, &room) || !up_->StartRead(at, room)) break;
      readPending_ = true;
    }
    HANDLE waits[4] = {stopEvent_, killEvent_, up_->ReadEvent(), inboundEvent_};
    const DWORD w = WaitForMultipleObjects(4, waits, FALSE, INFINITE);
    if (w == WAIT_OBJECT_0) {
      reason = EndReason::kStop;
      break;
    }
    if (w == WAIT_OBJECT_0 + 1) {
      reason = EndReason::kKill;
      break;
    }
    if (w == WAIT_OBJECT_0 + 3) {
      reason = EndReason::kClientClosed;
      break;
    }
    if (w != WAIT_OBJECT_0 + 2) break;
    readPending_ = false;
    const long n = up_->FinishRead(false);
    if (n == -2) continue;
    if (n <= 0) break;  // end of stream or error: the connection is over
    reader_.Commit(static_cast<DWORD>(n));
    bool go = true;
    for (;;) {
      wire::FrameHeader header;
      const uint8_t* payload = nullptr;
      const FrameReader::Parse p = reader_.Next(&header, &payload);
      if (p == FrameReader::Parse::kNeedMore) break;
      if (p == FrameReader::Parse::kMalformed || !Dispatch(header, payload)) {
        go = false;
        break;
      }
    }
    if (!go) break;
    std::lock_guard<std::mutex> lock(pipeMu_);
    ReapWritesLocked();
  }
  Teardown(reason);
  (void)self;  // released on return; may be the last reference (CloseMode::kByHandle)
}

bool Port::Dispatch(const wire::FrameHeader& header, const uint8_t* payload) {
  switch (header.type) {
    case wire::Type::kGetComplete:
      return OnGetComplete(header.id, payload, header.payloadSize);
    case wire::Type::kReplyResult: {
      int32_t hr = 0;
      if (!wire::DecodeResult(payload, header.payloadSize, &hr)) return false;
      std::lock_guard<std::mutex> lock(stateMu_);
      auto it = calls_.find(header.id);
      if (it == calls_.end() || it->second->isSend) return false;
      it->second->hr = hr;
      it->second->done = true;
      calls_.erase(it);
      cv_.notify_all();
      return true;
    }
    case wire::Type::kSendResult: {
      wire::SendResult result;
      if (!wire::DecodeSendResult(payload, header.payloadSize, &result)) return false;
      Waiter* waiter = nullptr;
      {
        std::lock_guard<std::mutex> lock(stateMu_);
        auto it = calls_.find(header.id);
        if (it == calls_.end() || !it->second->isSend || result.dataSize > it->second->outCapacity) return false;
        waiter = it->second;
        calls_.erase(it);
      }
      // Out of the table: only this thread completes it, so the copy needs no lock.
      if (result.dataSize != 0) std::memcpy(waiter->out, result.data, result.dataSize);
      std::lock_guard<std::mutex> lock(stateMu_);
      waiter->bytes = result.dataSize;
      waiter->hr = result.hresult;
      waiter->done = true;
      cv_.notify_all();
      return true;
    }
    case wire::Type::kDisconnect:
      return false;  // the kernel side closed the connection
    case wire::Type::kConnectResult:
    default:
      return false;
  }
}

bool Port::OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size) {
  wire::GetComplete msg;
  if (!wire::DecodeGetComplete(payload, size, &msg)) return false;
  // pipeMu_ first: deciding "write it to the pipe" and writing it happen together, so a get that abandons
  // this one and then drains the pipe sees either the written message or an orphan, never neither.
  std::unique_lock<std::mutex> pipeLock(pipeMu_);
  GetEntry entry;
  enum class Feed { kNone, kMessage, kFiller } feed = Feed::kNone;
  Orphan fed;
  uint32_t fillerCapacity = 0;
  {
    std::lock_guard<std::mutex> lock(stateMu_);
    auto it = gets_.find(id);
    if (it == gets_.end()) return false;
    if (msg.status == wire::kStatusSuccess && msg.dataSize > it->second.capacity - kMsgHeader) return false;
    entry = it->second;
    gets_.erase(it);
    if (entry.waiter == nullptr && entry.abandoned) {
      // The answer to our CANCEL, or a message that crossed it: keep the message for the next get.
      if (msg.status != wire::kStatusSuccess) return true;
      Orphan o;
      o.replyLength = msg.replyLength;
      o.messageId = msg.messageId;
      o.data.assign(msg.data, msg.data + msg.dataSize);
      orphans_.push_back(std::move(o));
      // Every get may be pending already (the receive loop keeps all its slots busy), so waiting for a new
      // get could wait forever. Writes and reads pair up in order, so what is written now goes to the oldest
      // unanswered read: give it the orphan, and mark that get abandoned so that its own answer from the
      // simulator becomes the next orphan. A filler instead when the orphan does not fit that read.
      uint32_t next = 0;
      for (const auto& pending : gets_) {
        if (pending.second.waiter == nullptr && !pending.second.abandoned && (next == 0 || pending.first < next)) {
          next = pending.first;
        }
      }
      if (next == 0) return true;
      GetEntry& target = gets_[next];
      target.abandoned = true;
      if (orphans_.front().data.size() <= target.capacity - kMsgHeader) {
        fed = std::move(orphans_.front());
        orphans_.pop_front();
        feed = Feed::kMessage;
      } else {
        fillerCapacity = target.capacity;
        feed = Feed::kFiller;
      }
    }
  }
  if (feed == Feed::kMessage) {
    (void)WriteMessagePair(fed.replyLength, fed.messageId, fed.data.data(), fed.data.size());
    return true;
  }
  if (feed == Feed::kFiller) {
    (void)WriteFiller(fillerCapacity);
    return true;
  }
  if (entry.waiter == nullptr) {
    if (msg.status == wire::kStatusSuccess) {
      (void)WriteMessagePair(msg.replyLength, msg.messageId, msg.data, msg.dataSize);
    } else if (msg.status == wire::kStatusBufferTooSmall) {
      (void)WriteFiller(entry.capacity);
    } else if (msg.status != wire::kStatusCancelled) {
      return false;
    }
    return true;
  }
  pipeLock.unlock();
  // A synchronous get: its caller is blocked in GetSync, so the buffer is there.
  Waiter* waiter = entry.waiter;
  if (msg.status == wire::kStatusSuccess) {
    waiter->buffer->ReplyLength = msg.replyLength;
    waiter->buffer->MessageId = msg.messageId;
    if (msg.dataSize != 0) std::memcpy(reinterpret_cast<uint8_t*>(waiter->buffer) + kMsgHeader, msg.data, msg.dataSize);
  }
  std::lock_guard<std::mutex> lock(stateMu_);
  waiter->hr = HresultFromGetStatus(msg.status);
  waiter->done = true;
  cv_.notify_all();
  return true;
}

void Port::MarkDead(HRESULT callHr) {
  std::lock_guard<std::mutex> lock(stateMu_);
  dead_.store(true);
  for (auto& entry : gets_) {
    if (entry.second.waiter != nullptr) {
      entry.second.waiter->hr = callHr;
      entry.second.waiter->done = true;
    }
  }
  gets_.clear();
  for (auto& call : calls_) {
    call.second->hr = callHr;
    call.second->done = true;
  }
  calls_.clear();
  orphans_.clear();  // the kernel side sees the disconnect; nobody can take them any more
  cv_.notify_all();
}

void Port::Teardown(EndReason reason) {
  (void)reason;
  MarkDead();
  // The handle now answers E_HANDLE. With CloseMode::kByHandle nobody will call FltSimClose: forget it now.
  if (mode_ == CloseMode::kByHandle) Registry::Instance().RemoveIf(client_, this);
  // Closing the server end completes every pending read on the user's handle (ERROR_BROKEN_PIPE).
  {
    std::lock_guard<std::mutex> lock(pipeMu_);
    CancelIoEx(server_, nullptr);
    CloseHandle(server_);
    server_ = nullptr;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(kTeardownWaitMs);
  bool leak = false;
  if (inboundPending_) {
    if (WaitForSingleObject(inboundEvent_, kTeardownWaitMs) == WAIT_OBJECT_0) {
      inboundPending_ = false;
    } else {
      leak = true;
    }
  }
  {
    std::lock_guard<std::mutex> lock(pipeMu_);
    for (;;) {
      ReapWritesLocked();
      if (writes_.empty() || Clock::now() >= deadline) break;
      Sleep(1);
    }
    if (!writes_.empty()) {
      for (auto& op : writes_) (void)op.release();  // never completed: leak rather than free under the system
      writes_.clear();
    }
  }
  // The simulator sees the stream end: DisconnectNotify runs (if it has not already closed the port).
  upClosed_.store(true);
  up_->CancelAll();
  if (readPending_) {
    (void)up_->FinishRead(true);
    readPending_ = false;
  }
  // Writers were cancelled above; one may have started another write since: cancel until it leaves.
  while (!upWriteMu_.try_lock()) {
    up_->CancelAll();
    Sleep(1);
  }
  std::lock_guard<std::mutex> lock(upWriteMu_, std::adopt_lock);
  if (leak) {
    (void)up_.release();  // the inbound OVERLAPPED is a member: keep the object's memory too (never freed)
    return;
  }
  up_.reset();
}

// --- connect -------------------------------------------------------------------------------------------

}  // namespace

HRESULT Connect(const char* endpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                LPSECURITY_ATTRIBUTES sa, CloseMode mode, HANDLE* hPort) {
  if (hPort == nullptr) return E_INVALIDARG;
  *hPort = INVALID_HANDLE_VALUE;
  if (name == nullptr) return E_INVALIDARG;
  if ((context == nullptr) != (contextSize == 0)) return E_INVALIDARG;
  if ((options & ~static_cast<DWORD>(FLT_PORT_FLAG_SYNC_HANDLE)) != 0) return E_INVALIDARG;
  std::string fromEnv;
  if (endpoint == nullptr || *endpoint == '\0') {
    if (!ReadEnv("FLTMGR_SIMULATOR", &fromEnv) || fromEnv.empty()) return kHrNotFound;  // as if no driver
    endpoint = fromEnv.c_str();
  }
  wire::Endpoint ep;
  std::string why;
  if (!wire::ParseEndpoint(endpoint, &ep, &why)) return E_INVALIDARG;
  if (ep.kind == wire::Endpoint::Kind::kUnix) return kHrNotSupported;

  size_t nameUnits = 0;
  while (name[nameUnits] != 0) {
    if (++nameUnits > 0xFFFF) return E_INVALIDARG;
  }
  const size_t payloadSize = wire::ConnectPayloadSize(nameUnits, contextSize, ep.secret.size());
  if (payloadSize == 0) return E_INVALIDARG;
  std::vector<uint8_t> frame;
  try {
    frame.resize(wire::kHeaderSize + payloadSize);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  wire::EncodeHeader(frame.data(), wire::Type::kConnect, 0, static_cast<uint32_t>(payloadSize));
  wire::EncodeConnectPayload(frame.data() + wire::kHeaderSize, options, GetCurrentProcessId(),
                             reinterpret_cast<const char16_t*>(name), nameUnits, context, contextSize,
                             ep.secret.data(), ep.secret.size());

  PinModule();
  std::shared_ptr<Port> port;
  try {
    port = std::make_shared<Port>(mode, (options & FLT_PORT_FLAG_SYNC_HANDLE) != 0);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  HRESULT hr = port->Open(ep, frame, sa);
  if (FAILED(hr)) return hr;  // ~Port closes whatever was opened: the simulator sees the stream end
  try {
    Registry::Instance().Put(port->client(), port);
  } catch (const std::bad_alloc&) {
    CloseHandle(port->client());
    return E_OUTOFMEMORY;
  }
  hr = port->StartRelay();
  if (FAILED(hr)) {
    (void)Registry::Instance().Take(port->client());
    CloseHandle(port->client());
    return hr;
  }
  *hPort = port->client();
  return S_OK;
}

}  // namespace winsim
}  // namespace fltmgr

using fltmgr::winsim::Port;
using fltmgr::winsim::Registry;

HRESULT FltSimConnect(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                      WORD wSizeOfContext, HANDLE* hPort) {
  return fltmgr::winsim::Connect(endpoint, lpPortName, dwOptions, lpContext, wSizeOfContext, nullptr,
                                 fltmgr::winsim::CloseMode::kExplicit, hPort);
}

HRESULT FltSimGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped) {
  std::shared_ptr<Port> port = Registry::Instance().Find(hPort);
  if (!port) return HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);
  try {
    return port->Get(lpMessageBuffer, dwMessageBufferSize, lpOverlapped);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}

HRESULT FltSimReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize) {
  std::shared_ptr<Port> port = Registry::Instance().Find(hPort);
  if (!port) return HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);
  try {
    return port->Reply(lpReplyBuffer, dwReplyBufferSize);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}

HRESULT FltSimSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned) {
  if (lpBytesReturned == nullptr) return E_INVALIDARG;
  *lpBytesReturned = 0;
  if ((lpInBuffer == nullptr && dwInBufferSize != 0) || (lpOutBuffer == nullptr && dwOutBufferSize != 0)) {
    return E_INVALIDARG;
  }
  std::shared_ptr<Port> port = Registry::Instance().Find(hPort);
  if (!port) return HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);
  try {
    return port->Send(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
}

HRESULT FltSimAbortPort(HANDLE hPort) {
  std::shared_ptr<Port> port = Registry::Instance().Find(hPort);
  if (!port) return HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);
  port->Abort();
  return S_OK;
}

BOOL FltSimClose(HANDLE hPort) {
  std::shared_ptr<Port> port = Registry::Instance().Take(hPort);
  if (!port) {
    SetLastError(ERROR_INVALID_HANDLE);
    return FALSE;
  }
  return port->Close();
}
