// The receive loop: N overlapped FilterGetMessage requests on one port, one native thread dequeuing their
// completions from an I/O completion port in batches, and one thread-safe-function call per batch.
//
// Request lifecycle (one request per concurrency slot):
//   Pending (a get is outstanding) -> completion dequeued -> WithJs (message handed to JS)
//   -> JS replies or releases -> a command packet is posted to the IOCP -> the thread replies with
//   FilterReplyMessage and posts a new get -> Pending.
// So a slow JS handler means fewer outstanding gets, never unbounded memory. The thread never waits for
// JS (NonBlockingCall only), so JS may join it. Requests are freed only after the thread has dequeued the
// completion of every get it posted.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fltapi.h"
#include "port_handle.h"

namespace fltmgr {

class Receiver;
struct ReceiverContext;  // what the thread-safe function carries (keeps the Receiver alive)

void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* data);
using BatchTsfn = Napi::TypedThreadSafeFunction<ReceiverContext, void, CallJsWithBatch>;

// An I/O completion port. A handle can be associated with one only once, so it lives as long as the port
// and successive receive loops share it.
class CompletionPort {
 public:
  explicit CompletionPort(HANDLE handle) : handle_(handle) {}
  ~CompletionPort() { CloseHandle(handle_); }
  CompletionPort(const CompletionPort&) = delete;
  CompletionPort& operator=(const CompletionPort&) = delete;
  HANDLE handle() const { return handle_; }

 private:
  HANDLE handle_;
};

struct ReceiverOptions {
  uint32_t concurrency;    // outstanding gets
  uint32_t bufferSize;     // initial message buffer, FILTER_MESSAGE_HEADER included
  uint32_t maxBufferSize;  // growth limit on ERROR_INSUFFICIENT_BUFFER
};

class Receiver : public std::enable_shared_from_this<Receiver> {
 public:
  // Creates the IOCP, associates the port, creates the thread-safe function and starts the thread.
  // Throws a JS error on failure (after cleaning up).
  static std::shared_ptr<Receiver> Start(Napi::Env env, const std::shared_ptr<PortHandle>& port,
                                         const std::shared_ptr<CompletionPort>& iocp,
                                         const ReceiverOptions& options, Napi::Function onBatch, bool ref);
  // Creates a completion port and associates `port` with it (once per port handle). Throws a JS error.
  static std::shared_ptr<CompletionPort> Associate(Napi::Env env, const std::shared_ptr<PortHandle>& port);
  ~Receiver();

  // JS thread. Asks the thread to cancel outstanding gets, drain and exit. Idempotent.
  void Stop();
  // JS thread. Blocks until the thread has exited (it never waits for JS, so this is bounded by how fast
  // outstanding gets can be cancelled). Releases the env cleanup hook.
  void Join();
  // JS thread. Reply to the message in `slot` (status + data after FILTER_REPLY_HEADER), then re-post the get.
  // Returns S_OK or E_INVALIDARG (slot not held by JS / too large) or the post failure.
  HRESULT Reply(uint32_t slot, NTSTATUS status, const uint8_t* data, size_t size);
  // JS thread. Give the slot back without replying.
  HRESULT Release(uint32_t slot);
  void Ref(Napi::Env env);
  void Unref(Napi::Env env);
  bool running() const { return started_ && !joined_; }

 private:
  struct Request;
  struct Event {
    enum Kind : uint8_t { kMessage, kReplyDone, kError, kDisconnected, kStopped } kind;
    uint32_t slot;
    HRESULT hr;
  };
  friend void CallJsWithBatch(Napi::Env env, Napi::Function callback, ReceiverContext* context, void* data);

  Receiver(std::shared_ptr<PortHandle> port, std::shared_ptr<CompletionPort> iocp, const ReceiverOptions& options);
  void Run();
  void Dispatch(const OVERLAPPED_ENTRY& entry);
  void PostGet(Request& request);
  void OnGetCompleted(Request& request);
  void OnCommand(Request& request);
  void Push(Event event);
  void Flush();
  Napi::Value TakeBatch(Napi::Env env);
  static Request* FromOverlapped(OVERLAPPED* overlapped);

  std::shared_ptr<PortHandle> port_;
  const ReceiverOptions options_;
  std::shared_ptr<CompletionPort> completionPort_;
  HANDLE iocp_;
  std::vector<std::unique_ptr<Request>> requests_;
  std::thread thread_;
  BatchTsfn tsfn_;
  Napi::Env env_ = Napi::Env(nullptr);
  bool started_ = false;
  bool joined_ = false;
  bool stopPosted_ = false;
  bool cleanupHookAdded_ = false;
  std::vector<bool> heldByJs_;  // JS thread only

  // Receive thread only.
  uint32_t outstanding_ = 0;
  bool stopping_ = false;
  bool dead_ = false;

  std::mutex outboxMutex_;
  std::vector<Event> outbox_;  // bounded: at most ~2 events per request plus a few
  bool callPending_ = false;
};

}  // namespace fltmgr
