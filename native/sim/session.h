// One connection to the Filter Manager simulator, as the client sees it (docs/wire-protocol.md): the
// request tables (pending gets, REPLY/SEND calls), kept messages ("orphans"), the frame reader, result
// dispatch, CONNECT building and the fltlib argument checks. Written once, used by both clients:
//   native/compat/compat_fltlib.cc  a Session over a unix/tcp socket, completing gets through the POSIX IOCP;
//   native/win/sim_fltlib.cc        a Session over a named pipe or TCP, delivering gets through a local pipe.
// A client supplies the transport (WriteRequest, ReadUpstream) and how an overlapped get is completed
// (DeliverToOverlapped, GiveOrphanLocked, FailOverlappedLocked); everything else is here. Portable C++17, no
// OS calls.
//
// Locks: mutex_ guards the tables, the orphans and every Waiter. A client's own locks (write lock, pipe lock)
// come before mutex_; only a leaf lock (the POSIX IOCP's queue) is taken while holding it. WriteRequest and
// ReadUpstream are called without mutex_.
//
// A get cancelled locally stays in the table, abandoned, until the simulator answers its CANCEL. A message
// the simulator sent to it meanwhile is kept (an orphan) and handed to the oldest get still pending or to
// the next get, so no message is lost; a buffer too small for it fails with STATUS_BUFFER_TOO_SMALL and the
// message stays, like a queued message in the simulator.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "../compat/win32.h"
#include "slot_table.h"
#include "wire.h"

namespace fltmgr {
namespace sim {

using Clock = std::chrono::steady_clock;

// HRESULTs the simulator clients return (numbers are Windows' own).
constexpr HRESULT kHrIoPending = HresultFromWin32(997);                // ERROR_IO_PENDING
constexpr HRESULT kHrNotFound = HresultFromWin32(2);                   // ERROR_FILE_NOT_FOUND: no such port
constexpr HRESULT kHrAccessDenied = HresultFromWin32(5);               // ERROR_ACCESS_DENIED
constexpr HRESULT kHrHandle = HresultFromWin32(6);                     // ERROR_INVALID_HANDLE (== E_HANDLE)
constexpr HRESULT kHrTooManyOpenFiles = HresultFromWin32(4);           // ERROR_TOO_MANY_OPEN_FILES
constexpr HRESULT kHrInvalidData = HresultFromWin32(13);               // ERROR_INVALID_DATA: a protocol error
constexpr HRESULT kHrNotSupported = HresultFromWin32(50);              // ERROR_NOT_SUPPORTED
constexpr HRESULT kHrInvalidArg = HresultFromWin32(87);                // ERROR_INVALID_PARAMETER (== E_INVALIDARG)
constexpr HRESULT kHrInsufficientBuffer = HresultFromWin32(122);       // ERROR_INSUFFICIENT_BUFFER
constexpr HRESULT kHrAborted = HresultFromWin32(995);                  // ERROR_OPERATION_ABORTED
constexpr HRESULT kHrTooManyRequests = HresultFromWin32(1450);         // ERROR_NO_SYSTEM_RESOURCES
constexpr HRESULT kHrTimeout = HresultFromWin32(1460);                 // ERROR_TIMEOUT
constexpr HRESULT kHrOutOfMemory = static_cast<HRESULT>(0x8007000Eu);  // E_OUTOFMEMORY

// STATUS_PENDING, never carried by a frame: "no answer yet" (TakeOrphanLocked with no orphan).
constexpr uint32_t kStatusPending = 0x00000103u;

constexpr int kDefaultConnectTimeoutMs = 30000;
// FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS (test hook and escape hatch for slow simulators): its value, nullptr
// when unset; a value that is not a positive decimal number gives the default.
int ConnectTimeoutMs(const char* value);
// Milliseconds left until deadline, 0 if passed, at most INT_MAX.
int RemainingMs(Clock::time_point deadline);

// What a get's NTSTATUS means to a synchronous FilterGetMessage.
inline HRESULT HresultFromGetStatus(uint32_t status) { return HresultFromWin32(Win32FromNtStatus(status)); }

// A caller blocked in a synchronous call: REPLY, SEND, or a get without OVERLAPPED. Lives on its stack.
struct Waiter {
  std::condition_variable cv;
  bool done = false;
  HRESULT hr = kHrHandle;
  DWORD bytes = 0;  // synchronous get: bytes written; send: output size
  // send
  bool isSend = false;
  uint8_t* out = nullptr;
  uint32_t outCapacity = 0;
};

struct PendingGet {
  PFILTER_MESSAGE_HEADER buffer = nullptr;  // where the message goes (a client may deliver elsewhere)
  uint32_t capacity = 0;                    // bytes, FILTER_MESSAGE_HEADER included
  LPOVERLAPPED overlapped = nullptr;        // null for a synchronous get
  Waiter* waiter = nullptr;                 // non-null for a synchronous get
  bool abandoned = false;                   // completed locally (cancelled, or handed an orphan)
  uint64_t order = 0;                       // issue order: the oldest pending get takes the next orphan
};

// A message that reached a get after it was completed locally.
struct Orphan {
  uint32_t replyLength = 0;
  uint64_t messageId = 0;
  std::vector<uint8_t> data;
};

// Buffered reader of simulator -> client frames over a byte stream.
class FrameReader {
 public:
  enum class Parse { kFrame, kNeedMore, kMalformed };

  bool Init();  // false when out of memory
  // A frame's payload stays valid until the next PrepareRead().
  Parse Next(wire::FrameHeader* header, const uint8_t** payload);
  // Room for the next read (enough for the frame being assembled); false when out of memory.
  bool PrepareRead(uint8_t** at, size_t* size);
  void Commit(size_t n) { end_ += n; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t cap_ = 0;
  size_t pos_ = 0;
  size_t end_ = 0;
  size_t need_ = wire::kHeaderSize;
};

// The CONNECT a client is about to make.
struct ConnectRequest {
  wire::Endpoint endpoint;
  std::vector<uint8_t> frame;  // the CONNECT frame
  bool syncHandle = false;     // FLT_PORT_FLAG_SYNC_HANDLE
};

// FilterConnectCommunicationPort's checks, in fltlib's order, then the endpoint (endpoint; "" or nullptr:
// none, which fails as if no driver were loaded), a refusal of the endpoint kind this client cannot reach
// (unreachable), and the CONNECT frame. *hPort is INVALID_HANDLE_VALUE from the start.
HRESULT PrepareConnect(const char* endpoint, wire::Endpoint::Kind unreachable, LPCWSTR name, DWORD options,
                       LPCVOID context, WORD contextSize, uint32_t pid, HANDLE* hPort, ConnectRequest* out);

// FilterSendMessage's argument checks (*bytesReturned is 0 from the start).
HRESULT CheckSendArgs(LPVOID in, DWORD inSize, LPVOID out, DWORD outSize, LPDWORD bytesReturned);

// The body of a C entry point: E_HANDLE for a handle that names no port, else call(*port) with an allocation
// failure turned into E_OUTOFMEMORY (nothing throws across the C API). port: a shared_ptr or a Ref.
template <class PortRef, class F>
HRESULT CallPort(const PortRef& port, F&& call) {
  if (!port) return kHrHandle;
  try {
    return call(*port.get());
  } catch (const std::bad_alloc&) {
    return kHrOutOfMemory;
  }
}

class Session {
 public:
  static_assert(SlotTable<PendingGet>::kCapacity == wire::kMaxPendingGets, "one flood limit for gets");
  static_assert(SlotTable<Waiter*>::kCapacity == wire::kMaxOutstandingRequests, "one flood limit for calls");

  virtual ~Session() = default;

  HRESULT Reply(PFILTER_REPLY_HEADER buffer, DWORD size);
  HRESULT Send(const void* in, DWORD inSize, void* out, DWORD outSize, DWORD* bytesReturned);

 protected:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // --- the client's part ------------------------------------------------------------------------------
  // Writes head (+ data) as one frame. False if the stream failed; the client then ends the connection, so
  // that the reader fails every request (nobody waits for an answer that cannot come).
  virtual bool WriteRequest(const uint8_t* head, size_t headSize, const void* data, size_t dataSize) = 0;
  // Reads into at: bytes read (> 0), 0 (nothing this time, read again), kReadEnded or kReadTimedOut.
  // timeoutMs < 0: no limit.
  static constexpr long kReadEnded = -1;
  static constexpr long kReadTimedOut = -2;
  virtual long ReadUpstream(uint8_t* at, size_t room, int timeoutMs) = 0;
  // Completes an overlapped get with the simulator's answer. Called with the DeliveryLock held, not mutex_.
  // False: a protocol error, the connection ends.
  virtual bool DeliverToOverlapped(const PendingGet& get, const wire::GetComplete& msg) = 0;
  // Gives the oldest orphan to an overlapped get that is already pending (the session then marks it
  // abandoned, so that its own answer becomes the next orphan); a get too small for it fails and the orphan
  // stays. mutex_ and the DeliveryLock held.
  virtual void GiveOrphanLocked(PendingGet& get) = 0;
  // Fails an overlapped get (the connection is over); mutex_ held.
  virtual void FailOverlappedLocked(PendingGet& get, uint32_t status) = 0;
  // Taken before mutex_ around a GET_COMPLETE's whole delivery; by default none.
  virtual std::unique_lock<std::mutex> DeliveryLock() { return std::unique_lock<std::mutex>(); }

  // --- for the client --------------------------------------------------------------------------------
  // After the CONNECT frame is written: reads until CONNECT_RESULT. Its HRESULT, or the failure.
  HRESULT AwaitConnectResult(Clock::time_point deadline);
  // Reads and dispatches frames until the connection is over (the reader thread's loop).
  void ReadUntilEnd();
  // Dispatches every complete frame in the read buffer. False: the connection is over (a protocol error,
  // DISCONNECT, or out of memory keeping an orphan).
  bool DispatchBuffered();

  // Registers a get; its id, or 0 when too many are pending. mutex_ held.
  uint32_t InsertGetLocked(PendingGet get);
  // Copies the oldest orphan into buffer: its status (STATUS_SUCCESS, or STATUS_BUFFER_TOO_SMALL and it
  // stays), or STATUS_PENDING if there is none. mutex_ held.
  uint32_t TakeOrphanLocked(PFILTER_MESSAGE_HEADER buffer, uint32_t size, DWORD* bytes);
  // A synchronous get: registers it (or serves it from an orphan), writes its GET, waits for the answer.
  HRESULT SyncGet(PFILTER_MESSAGE_HEADER buffer, DWORD size);
  // Fails every pending get (getStatus) and call (callHr); later calls fail with E_HANDLE.
  void MarkDead(uint32_t getStatus, HRESULT callHr);
  // Wakes a waiter; mutex_ held.
  static void Finish(Waiter* waiter, HRESULT hr, DWORD bytes);

  std::mutex mutex_;
  std::atomic<bool> dead_{false};
  SlotTable<PendingGet> gets_;
  SlotTable<Waiter*> calls_;  // REPLY and SEND
  std::deque<Orphan> orphans_;
  FrameReader reader_;  // the handshake, then the reader thread only

 private:
  HRESULT Call(uint8_t* head, size_t headSize, const void* data, size_t dataSize, Waiter* waiter);
  bool Dispatch(const wire::FrameHeader& header, const uint8_t* payload);
  bool OnGetComplete(uint32_t id, const uint8_t* payload, uint32_t size);
  // Gives the oldest orphan to the oldest get still pending, if any. mutex_ held.
  void HandOrphanToPendingGetLocked();
  static void CopyMessage(PFILTER_MESSAGE_HEADER buffer, uint32_t replyLength, uint64_t messageId, const uint8_t* data,
                          size_t size);

  uint64_t nextOrder_ = 0;
};

}  // namespace sim
}  // namespace fltmgr
