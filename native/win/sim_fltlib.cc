// The simulator-backed fltlib for Windows and Wine (declarations and contract: sim_fltlib.h; design and
// limits: docs/windows.md): a simulator session (native/sim/session.h) whose gets are delivered through a
// local named pipe.
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
//                         REPLY, SEND) under upWriteMu_ and wait for REPLY/SEND answers in the session.
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
// for cancelled gets out of the pipe: messages become orphans (native/sim/session.h), which the oldest
// unanswered read or a later get receives first, so no message is lost; trailers and fillers are dropped. A
// private read that receives part of a message means the pairing was broken (only a CancelIoEx of ONE get's
// OVERLAPPED can do that): the connection is then ended (as if the minifilter had closed the port) rather than
// delivering garbage.
//
// Disconnect (the simulator's DISCONNECT, EOF, a protocol error): the relay closes the server end, so
// pending gets complete with ERROR_BROKEN_PIPE and later calls return E_HANDLE (0x80070006).
//
// Locks, in order: getMu_ -> pipeMu_ -> the session's mutex_; upWriteMu_ is taken alone (never while waiting for the
// relay). The relay thread never takes getMu_ or upWriteMu_, and never blocks on the user: its pipe writes
// are overlapped and reaped later, so a stalled reader cannot stall the simulator's answers.
#include "sim_fltlib.h"
#include "upstream.h"

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

#include "../sim/session.h"
#include "../sim/wire.h"

namespace fltmgr {
namespace winsim {
namespace {

using sim::Clock;
using sim::kHrAccessDenied;
using sim::kHrHandle;
using sim::kHrInsufficientBuffer;
using sim::kHrIoPending;
using sim::kHrNotFound;
using sim::kHrTimeout;
using sim::kHrTooManyRequests;
using sim::PendingGet;

// NTSTATUS values seen in OVERLAPPED.Internal (compared as their low 32 bits: Wine writes only those).
constexpr uint32_t kNtSuccess = 0x00000000u;
constexpr uint32_t kNtPending = 0x00000103u;
constexpr uint32_t kNtBufferOverflow = 0x80000005u;

constexpr DWORD kPipeOutQuota = 64 * 1024;  // advisory: the relay's writes never wait for the reader
constexpr DWORD kPipeInQuota = 512;
constexpr DWORD kTeardownWaitMs = 10000;
constexpr uint8_t kTrailerByte = 0x54;
// A filler (STATUS_BUFFER_TOO_SMALL) starts with this header, which no real message has.
constexpr uint32_t kFillerReplyLength = 0xFFFFFFFFu;
constexpr uint64_t kFillerMessageId = 0xFFFFFFFFFFFFFFFFull;
constexpr size_t kMsgHeader = wire::kMessageHeaderSize;

// OVERLAPPED.Internal is written by the I/O system while we poll it.
uint32_t LoadStatus(const OVERLAPPED& ov) {
  const ULONG_PTR v = *reinterpret_cast<const volatile ULONG_PTR*>(&ov.Internal);
  std::atomic_thread_fence(std::memory_order_acquire);
  return static_cast<uint32_t>(v);
}

DWORD RemainingMs(Clock::time_point deadline) { return static_cast<DWORD>(sim::RemainingMs(deadline)); }

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

}  // namespace

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

long ReadUpstreamFor(Upstream& up, uint8_t* at, size_t room, int timeoutMs) {
  if (!up.StartRead(at, static_cast<DWORD>(room))) return -1;
  if (WaitForSingleObject(up.ReadEvent(), timeoutMs < 0 ? INFINITE : static_cast<DWORD>(timeoutMs)) != WAIT_OBJECT_0) {
    up.CancelAll();
    (void)up.FinishRead(true);
    return -2;
  }
  const long n = up.FinishRead(false);
  if (n == -2) return 0;  // a zero-length pipe message
  return n <= 0 ? -1 : n;
}

HRESULT OpenUpstream(const wire::Endpoint& ep, Clock::time_point deadline, std::unique_ptr<Upstream>* out) {
  if (ep.kind != wire::Endpoint::Kind::kTcp) return OpenPipeUpstream(ep, deadline, out);
  std::unique_ptr<SocketUpstream> up(new (std::nothrow) SocketUpstream());
  if (!up) return E_OUTOFMEMORY;
  const HRESULT hr = up->Connect(ep, deadline);
  if (FAILED(hr)) return hr;
  *out = std::move(up);
  return S_OK;
}

namespace {

// ---------------------------------------------------------------------------------------------------------
// Port

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

class Port final : public sim::Session, public std::enable_shared_from_this<Port> {
 public:
  Port(CloseMode mode, bool syncHandle) : mode_(mode), sync_(syncHandle) {}
  ~Port() override;

  HRESULT Open(const wire::Endpoint& ep, const std::vector<uint8_t>& connectFrame, LPSECURITY_ATTRIBUTES sa);
  HRESULT StartRelay();
  HANDLE client() const { return client_; }

  HRESULT Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);
  BOOL Close();
  // FltSimAbortPort: fails every waiting caller now and ends the connection; the handle stays valid.
  void Abort();

 private:
  HRESULT CreatePipePair(LPSECURITY_ATTRIBUTES sa);
  HRESULT Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline);

  // sim::Session
  bool WriteRequest(const uint8_t* head, size_t headSize, const void* data, size_t dataSize) override {
    return WriteUpstream(head, headSize, data, dataSize);
  }
  long ReadUpstream(uint8_t* at, size_t room, int timeoutMs) override;
  bool DeliverToOverlapped(const PendingGet& get, const wire::GetComplete& msg) override;
  void GiveOrphanLocked(PendingGet& get) override;
  void FailOverlappedLocked(PendingGet&, uint32_t) override {}  // closing the server end completes the reads
  std::unique_lock<std::mutex> DeliveryLock() override { return std::unique_lock<std::mutex>(pipeMu_); }

  HRESULT GetAsync(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped);
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

  void RelayMain(std::shared_ptr<Port> self);
  bool StartInboundRead();
  void Teardown();

  const CloseMode mode_;
  const bool sync_;

  std::unique_ptr<Upstream> up_;  // the relay reads; writers hold upWriteMu_
  std::mutex upWriteMu_;
  std::atomic<bool> upClosed_{false};
  bool readPending_ = false;  // relay thread only

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
  std::string timeout;
  const bool hasTimeout = ReadEnv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", &timeout);
  const int timeoutMs = sim::ConnectTimeoutMs(hasTimeout ? timeout.c_str() : nullptr);
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  HRESULT hr = OpenUpstream(ep, deadline, &up_);
  if (FAILED(hr)) return hr;
  hr = Handshake(connectFrame, deadline);
  if (FAILED(hr)) return hr;
  return CreatePipePair(sa);
}

HRESULT Port::Handshake(const std::vector<uint8_t>& frame, Clock::time_point deadline) {
  if (!up_->WriteAll(frame.data(), frame.size())) return kHrNotFound;
  return AwaitConnectResult(deadline);
}

long Port::ReadUpstream(uint8_t* at, size_t room, int timeoutMs) {
  static_assert(kReadEnded == -1 && kReadTimedOut == -2, "ReadUpstreamFor's results");
  return ReadUpstreamFor(*up_, at, room, timeoutMs);
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
    HANDLE server =
        CreateNamedPipeW(name.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                         PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1,
                         kPipeOutQuota, kPipeInQuota, 0, nullptr);
    if (server == INVALID_HANDLE_VALUE) {
      const DWORD e = GetLastError();
      if (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) continue;  // name taken
      return HRESULT_FROM_WIN32(e);
    }
    // Read access only (plus FILE_WRITE_ATTRIBUTES for the read mode): the user's end can never write, so
    // the relay's read on the server end completes only when that handle is closed.
    HANDLE client =
        CreateFileW(name.c_str(), GENERIC_READ | FILE_WRITE_ATTRIBUTES, 0, sa, OPEN_EXISTING, clientFlags, nullptr);
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
  MarkDead(wire::kStatusCancelled, sim::kHrAborted);
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

HRESULT Port::Get(PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  if (buffer == nullptr || size < kMsgHeader) return E_INVALIDARG;
  if (overlapped == nullptr) return SyncGet(buffer, size);
  // A synchronous handle does no overlapped I/O (as the POSIX twin, native/compat/compat_fltlib.cc).
  if (sync_) return E_INVALIDARG;
  return GetAsync(buffer, size, overlapped);
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
        std::lock_guard<std::mutex> lock(mutex_);
        PendingGet* found = gets_.Find(id);
        if (found != nullptr && !found->abandoned) {
          found->abandoned = true;
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
    sim::Orphan o;
    o.replyLength = replyLength;
    o.messageId = messageId;
    o.data.assign(message.data() + kMsgHeader, message.data() + size);
    std::lock_guard<std::mutex> lock(mutex_);
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
  sim::Orphan orphan;
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!orphans_.empty()) {
      if (orphans_.front().data.size() <= size - kMsgHeader) {
        orphan = std::move(orphans_.front());
        orphans_.pop_front();
        plan = Plan::kOrphan;
      } else {
        plan = Plan::kOrphanTooLarge;
      }
    } else {
      PendingGet get;
      get.capacity = size;
      get.overlapped = overlapped;
      id = InsertGetLocked(get);
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
        std::lock_guard<std::mutex> lock(mutex_);
        if (id != 0) gets_.Erase(id);
        if (plan == Plan::kOrphan) orphans_.push_front(std::move(orphan));
      }
      FreeRecord(record);
      const bool gone =
          e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA || e == ERROR_INVALID_HANDLE;
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
  if (!StartInboundRead()) {
    Teardown();
    return;
  }
  for (;;) {
    if (!readPending_) {
      uint8_t* at = nullptr;
      size_t room = 0;
      if (!reader_.PrepareRead(&at, &room) || !up_->StartRead(at, static_cast<DWORD>(room))) break;
      readPending_ = true;
    }
    // Stop (FltSimClose), kill (abort, a broken stream), the user's handle closed: the connection ends
    // whichever it is.
    HANDLE waits[4] = {stopEvent_, killEvent_, up_->ReadEvent(), inboundEvent_};
    const DWORD w = WaitForMultipleObjects(4, waits, FALSE, INFINITE);
    if (w != WAIT_OBJECT_0 + 2) break;
    readPending_ = false;
    const long n = up_->FinishRead(false);
    if (n == -2) continue;
    if (n <= 0) break;  // end of stream or error: the connection is over
    reader_.Commit(static_cast<size_t>(n));
    if (!DispatchBuffered()) break;
    std::lock_guard<std::mutex> lock(pipeMu_);
    ReapWritesLocked();
  }
  Teardown();
  (void)self;  // released on return; may be the last reference (CloseMode::kByHandle)
}

bool Port::DeliverToOverlapped(const PendingGet& get, const wire::GetComplete& msg) {
  // Under pipeMu_ (the DeliveryLock): deciding "write it to the pipe" and writing it happen together, so a
  // get that abandons this one and then drains the pipe sees either the written message or an orphan.
  if (msg.status == wire::kStatusSuccess) {
    (void)WriteMessagePair(msg.replyLength, msg.messageId, msg.data, msg.dataSize);
  } else if (msg.status == wire::kStatusBufferTooSmall) {
    (void)WriteFiller(get.capacity);
  } else if (msg.status != wire::kStatusCancelled) {
    return false;
  }
  return true;
}

void Port::GiveOrphanLocked(PendingGet& get) {
  // Writes and reads pair up in order, so what is written now goes to the oldest unanswered read, which is
  // this get's. A filler instead when the orphan does not fit that read (the orphan stays).
  if (orphans_.front().data.size() <= get.capacity - kMsgHeader) {
    sim::Orphan fed = std::move(orphans_.front());
    orphans_.pop_front();
    (void)WriteMessagePair(fed.replyLength, fed.messageId, fed.data.data(), fed.data.size());
  } else {
    (void)WriteFiller(get.capacity);
  }
}

void Port::Teardown() {
  MarkDead(wire::kStatusPortDisconnected, kHrHandle);
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

}  // namespace

// --- connect -------------------------------------------------------------------------------------------

HRESULT Connect(const char* endpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                LPSECURITY_ATTRIBUTES sa, CloseMode mode, HANDLE* hPort) {
  std::string fromEnv;
  if ((endpoint == nullptr || *endpoint == '\0') && ReadEnv("FLTMGR_SIMULATOR", &fromEnv)) endpoint = fromEnv.c_str();
  sim::ConnectRequest request;
  HRESULT hr = sim::PrepareConnect(endpoint, wire::Endpoint::Kind::kUnix, name, options, context, contextSize,
                                   GetCurrentProcessId(), hPort, &request);
  if (FAILED(hr)) return hr;

  PinModule();
  std::shared_ptr<Port> port;
  try {
    port = std::make_shared<Port>(mode, request.syncHandle);
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  hr = port->Open(request.endpoint, request.frame, sa);
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

using fltmgr::sim::CallPort;
using fltmgr::winsim::Port;
using fltmgr::winsim::Registry;

HRESULT FltSimConnectCommunicationPort(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                       WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort) {
  return fltmgr::winsim::Connect(endpoint, lpPortName, dwOptions, lpContext, wSizeOfContext, lpSecurityAttributes,
                                 fltmgr::winsim::CloseMode::kExplicit, hPort);
}

HRESULT FltSimGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped) {
  return CallPort(Registry::Instance().Find(hPort),
                  [&](Port& port) { return port.Get(lpMessageBuffer, dwMessageBufferSize, lpOverlapped); });
}

HRESULT FltSimReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize) {
  return CallPort(Registry::Instance().Find(hPort),
                  [&](Port& port) { return port.Reply(lpReplyBuffer, dwReplyBufferSize); });
}

HRESULT FltSimSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned) {
  const HRESULT hr =
      fltmgr::sim::CheckSendArgs(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  if (FAILED(hr)) return hr;
  return CallPort(Registry::Instance().Find(hPort), [&](Port& port) {
    return port.Send(lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, lpBytesReturned);
  });
}

HRESULT FltSimAbortPort(HANDLE hPort) {
  return CallPort(Registry::Instance().Find(hPort), [](Port& port) {
    port.Abort();
    return S_OK;
  });
}

BOOL FltSimClose(HANDLE hPort) {
  std::shared_ptr<Port> port = Registry::Instance().Take(hPort);
  if (!port) {
    SetLastError(ERROR_INVALID_HANDLE);
    return FALSE;
  }
  return port->Close();
}
