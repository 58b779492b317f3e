// The receive loop, without Node-API: N overlapped FilterGetMessage requests on one port, one native thread
// dequeuing their completions from an I/O completion port in batches. The addon wraps it (receive_loop_napi.h) and
// so does the native benchmark client (bench/native), so both measure the same code.
//
// Request lifecycle (one request per concurrency slot):
//   Pending (a get is outstanding) -> completion dequeued -> Held (message handed to the owner)
//   -> owner replies or releases -> a command packet is posted to the IOCP -> the thread replies with
//   FilterReplyMessage and posts a new get -> Pending.
// So a slow consumer means fewer outstanding gets, never unbounded memory. The thread never waits for its
// owner, so the owner may join it. Requests are freed only after the thread has dequeued the completion of
// every get it posted.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fltapi.h"
#include "port_handle.h"

namespace fltmgr {

// An I/O completion port. A handle can be associated with one only once, so it lives as long as the port
// and successive receive loops share it.
class CompletionPort {
 public:
  // Creates a completion port and associates `port` with it. Returns nullptr and sets *hr on failure.
  static std::shared_ptr<CompletionPort> Associate(PortHandle& port, HRESULT* hr);
  explicit CompletionPort(HANDLE handle) : handle_(handle) {}
  ~CompletionPort() { CloseHandle(handle_); }
  CompletionPort(const CompletionPort&) = delete;
  CompletionPort& operator=(const CompletionPort&) = delete;
  HANDLE handle() const { return handle_; }

 private:
  HANDLE handle_;
};

// Most outstanding gets (receive concurrency) one port may have.
constexpr uint32_t kMaxReceiveConcurrency = 4096;

struct ReceiveOptions {
  uint32_t concurrency;    // outstanding gets
  uint32_t bufferSize;     // initial message buffer, FILTER_MESSAGE_HEADER included
  uint32_t maxBufferSize;  // growth limit on ERROR_INSUFFICIENT_BUFFER
};

struct ReceiveEvent {
  enum Kind : uint8_t { kMessage, kReplyDone, kError, kDisconnected, kStopped } kind;
  uint32_t slot;
  HRESULT hr;
};

class ReceiveLoop {
 public:
  // Called on the receive thread when events are waiting and no notification is outstanding. It must not
  // block; the owner later calls TakeEvents().
  using Notify = void (*)(void* context);

  ReceiveLoop(std::shared_ptr<PortHandle> port, std::shared_ptr<CompletionPort> iocp, const ReceiveOptions& options,
              Notify notify, void* notifyContext);
  ~ReceiveLoop();
  ReceiveLoop(const ReceiveLoop&) = delete;
  ReceiveLoop& operator=(const ReceiveLoop&) = delete;

  // Owner thread. Start: acquires the port for the thread's lifetime; false if the port is closed.
  bool Start();
  void Stop();  // asks the thread to cancel outstanding gets, drain and exit; idempotent
  void Join();  // after the kStopped event (or to wait for it); bounded: never waits for the owner
  bool started() const { return started_; }
  bool joined() const { return joined_; }

  // Owner thread. Moves pending events into `out` (cleared first) and re-arms the notification. A kMessage
  // event marks its slot held by the owner until Reply() or Release().
  void TakeEvents(std::vector<ReceiveEvent>& out);
  // Owner thread, while the slot is held: the message.
  const FILTER_MESSAGE_HEADER& Header(uint32_t slot) const;
  const uint8_t* Payload(uint32_t slot) const;
  uint32_t PayloadSize(uint32_t slot) const;
  // Owner thread. Reply (status + data after FILTER_REPLY_HEADER) and re-post the get; the result comes
  // back as kReplyDone. E_INVALIDARG if the slot is not held or the data is larger than the message allows.
  HRESULT Reply(uint32_t slot, NTSTATUS status, const uint8_t* data, size_t size);
  HRESULT Release(uint32_t slot);  // give the slot back without replying

 private:
  struct Request;
  void Run();
  void Dispatch(const OVERLAPPED_ENTRY& entry);
  void PostGet(Request& request);
  void OnGetCompleted(Request& request);
  void OnCommand(Request& request);
  void Push(ReceiveEvent event);
  void Flush();
  static Request* FromOverlapped(OVERLAPPED* overlapped);

  std::shared_ptr<PortHandle> port_;
  std::shared_ptr<CompletionPort> completionPort_;
  const HANDLE iocp_;
  const ReceiveOptions options_;
  const Notify notify_;
  void* const notifyContext_;
  std::vector<std::unique_ptr<Request>> requests_;
  std::thread thread_;

  // Owner thread only.
  bool started_ = false;
  bool joined_ = false;
  bool stopPosted_ = false;
  std::vector<bool> held_;

  // Receive thread only.
  uint32_t outstanding_ = 0;
  bool stopping_ = false;
  bool dead_ = false;

  std::mutex outboxMutex_;
  std::vector<ReceiveEvent> outbox_;  // bounded: at most ~2 events per request plus a few
  bool notified_ = false;
};

}  // namespace fltmgr
