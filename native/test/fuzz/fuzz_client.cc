// libFuzzer target: the real compat client (compat_fltlib.cc, native/sim/session.cc, compat_kernel32.cc) against a
// scripted fake simulator. Each input is a script (layout in fuzz_common.h): the fuzz thread connects a port over a
// Unix socket, plays the server on its end of that socket (answering the ids it actually read from the client, or
// writing malformed frames and raw bytes), makes overlapped and synchronous calls, and checks what the client
// reports. Blocking calls (FilterSendMessage, FilterReplyMessage, synchronous FilterGetMessage) run on helper
// threads; the fuzz thread waits until each has written its frame (or returned) before going on.
//
// Invariants (any violation aborts, so libFuzzer keeps the input):
// - connect succeeds (with S_OK and a handle) only after a well-formed CONNECT_RESULT with a success code,
//   and fails with the CONNECT_RESULT's failure code and no handle otherwise;
// - every overlapped get that returned ERROR_IO_PENDING completes exactly once (at the latest when the handle
//   is closed); nothing else completes; a get whose FilterGetMessage failed never completes;
// - after CloseHandle(port) every overlapped get is complete; after CancelIoEx(h, ov) succeeded, ov is;
// - no completion carries STATUS_PENDING; a get GetOverlappedResult reports as successful transferred
//   16..capacity bytes, its FILTER_MESSAGE_HEADER and data are exactly those of a GET_COMPLETE the server
//   wrote (each delivered at most once), and the buffer past the byte count is untouched; a failed get left
//   its whole buffer untouched; a failure status is one the server sent or one the client makes locally;
// - FilterSendMessage / FilterReplyMessage return the server's answer when every frame before it was well
//   formed, E_HANDLE when there was none; output past bytesReturned is untouched, all of it on failure;
// - the client only sends well-formed frames: GETs with fresh ids, CANCELs for ids it sent as GETs (never
//   on a synchronous handle), REPLY/SEND carrying exactly the caller's bytes;
// - no call blocks forever (libFuzzer -timeout) and no memory error (buffers are freed as soon as the caller
//   owns them again, so a late write is an AddressSanitizer report).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../compat/win32_compat.h"
#include "../../sim/wire.h"
#include "fuzz_common.h"

namespace {
using namespace fltmgr;
using fuzz::Input;
using Bytes = std::vector<uint8_t>;

constexpr uint8_t kPattern = 0xA5;
constexpr ULONG_PTR kKey = 0x5EED;
constexpr size_t kMaxOps = 64;
constexpr size_t kMaxLiveHelpers = 6;
const char16_t kPortName[] = u"\\FuzzPort";
const uint8_t kContext[4] = {'f', 'u', 'z', 'z'};
const HRESULT kIoPending = HRESULT_FROM_WIN32(ERROR_IO_PENDING);
const HRESULT kAborted = HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED);  // FltSimAbortPort's answer to waiters
void* const kOvPointer = reinterpret_cast<void*>(static_cast<uintptr_t>(0x11112222));
const HANDLE kOvEvent = reinterpret_cast<HANDLE>(static_cast<uintptr_t>(0x33334444));

std::string gDir;
std::string gPath;
std::string gEndpoint;
int gListen = -1;

bool AllPattern(const uint8_t* p, size_t n) {
  static uint8_t block[4096];
  static const bool filled = (std::memset(block, kPattern, sizeof(block)), true);
  (void)filled;
  for (size_t at = 0; at < n; at += sizeof(block)) {
    const size_t len = n - at < sizeof(block) ? n - at : sizeof(block);
    if (std::memcmp(p + at, block, len) != 0) return false;
  }
  return true;
}

std::unique_ptr<uint8_t[]> PatternBuffer(size_t n) {
  std::unique_ptr<uint8_t[]> b(new uint8_t[n == 0 ? 1 : n]);
  std::memset(b.get(), kPattern, n == 0 ? 1 : n);
  return b;
}

Bytes Frame(wire::Type type, uint32_t id, const Bytes& payload) {
  Bytes f(wire::kHeaderSize);
  wire::EncodeHeader(f.data(), type, id, static_cast<uint32_t>(payload.size()));
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

Bytes U32Bytes(uint32_t v) {
  Bytes b(4);
  wire::PutU32(b.data(), v);
  return b;
}

NTSTATUS OverlappedStatus(const OVERLAPPED* ov) {
  return static_cast<NTSTATUS>(static_cast<uint32_t>(__atomic_load_n(&ov->Internal, __ATOMIC_ACQUIRE)));
}

struct OvGet {
  std::unique_ptr<OVERLAPPED> ov;
  std::unique_ptr<uint8_t[]> buf;
  uint32_t cap = 0;
};

struct Helper {
  enum Kind { kSend, kReply, kSyncGet } kind = kSend;
  uint32_t serial = 0;
  std::thread thread;
  std::atomic<bool> done{false};
  bool frameSeen = false;
  HRESULT hr = static_cast<HRESULT>(0x7FFFFFFF);
  // kSend
  Bytes input;
  std::unique_ptr<uint8_t[]> out;
  uint32_t outSize = 0;
  DWORD bytes = 0xFFFFFFFFu;
  // kReply
  std::unique_ptr<uint8_t[]> reply;
  uint32_t replySize = 0;
  uint32_t replyStatus = 0;
  // kSyncGet
  std::unique_ptr<uint8_t[]> getBuf;
  uint32_t getCap = 0;
};

struct SrvGet {
  uint32_t id;
  uint32_t cap;
};
struct SrvCall {
  uint32_t id;
  uint32_t serial;
  bool isSend;
  uint32_t outCap;
};
struct Msg {
  uint32_t replyLength;
  uint64_t messageId;
  Bytes data;
  bool delivered = false;
};
struct Answer {
  bool binding;   // every server frame before it was well formed and the handle was open: it must arrive
  bool accepted;  // well formed itself (a malformed answer must never be reported)
  HRESULT hr;
  Bytes data;
};

struct Session {
  bool syncHandle = false;
  bool useIocp = true;
  HANDLE port = nullptr;
  HANDLE iocp = nullptr;
  int srv = -1;
  bool srvWriteOpen = true;
  bool clientEof = false;
  int wake[2] = {-1, -1};
  Bytes inbuf;

  std::vector<SrvGet> srvGets;  // GETs read and not answered yet
  std::set<uint32_t> everGets;
  size_t getFrames = 0;
  std::vector<SrvCall> srvCalls;  // REPLY/SEND read and not answered yet
  std::vector<Msg> msgs;          // messages written in well-formed GET_COMPLETEs
  std::set<uint32_t> statuses;    // failure statuses written in GET_COMPLETEs
  std::map<uint32_t, Answer> answers;
  bool clean = true;  // every server frame so far was one the client must accept; the handle is open
  bool raw = false;   // arbitrary frames or bytes were written: the client may legitimately see anything
  bool clientClosed = false;
  bool aborted = false;  // FltSimAbortPort was called: waiting calls may return kAborted
  uint64_t msgCounter = 0;
  uint32_t nextSerial = 1;
  int bigGets = 0;  // gets over 4 KiB so far, and over 1 MiB: bounded, each costs page faults
  int hugeGets = 0;
  int bigCalls = 0;  // SEND/REPLY with kBigCallData bytes

  std::vector<std::unique_ptr<OvGet>> outstanding;
  std::vector<std::unique_ptr<Helper>> helpers;
};

Helper* FindHelper(Session& s, Helper::Kind kind, uint32_t serial) {
  for (auto& h : s.helpers) {
    if (h->kind == kind && h->serial == serial) return h.get();
  }
  return nullptr;
}

// ---- the server's view of the client's frames -----------------------------------------------------
void OnClientFrame(Session& s, const wire::FrameHeader& h, const uint8_t* p) {
  switch (h.type) {
    case wire::Type::kGet: {
      FUZZ_REQUIRE(h.payloadSize == wire::kGetPayloadSize, "GET payload of %u bytes", h.payloadSize);
      const uint32_t cap = wire::GetU32(p);
      FUZZ_REQUIRE(cap >= sizeof(FILTER_MESSAGE_HEADER), "GET with capacity %u", cap);
      FUZZ_REQUIRE(h.id != 0, "GET with id 0");
      for (const SrvGet& g : s.srvGets) FUZZ_REQUIRE(g.id != h.id, "GET id 0x%x reused while pending", h.id);
      s.srvGets.push_back({h.id, cap});
      s.everGets.insert(h.id);
      ++s.getFrames;
      return;
    }
    case wire::Type::kCancel:
      FUZZ_REQUIRE(h.payloadSize == 0, "CANCEL with a payload");
      FUZZ_REQUIRE(s.everGets.count(h.id) == 1, "CANCEL for id 0x%x that was never a GET", h.id);
      FUZZ_REQUIRE(!s.syncHandle, "CANCEL on a synchronous handle");
      return;
    case wire::Type::kReply: {
      FUZZ_REQUIRE(h.payloadSize >= wire::kReplyPrefixSize, "REPLY payload of %u bytes", h.payloadSize);
      const uint64_t messageId = wire::GetU64(p + 8);
      Helper* helper = FindHelper(s, Helper::kReply, static_cast<uint32_t>(messageId));
      FUZZ_REQUIRE(messageId >> 32 == 0 && helper != nullptr && !helper->frameSeen, "REPLY for message %llx",
                   static_cast<unsigned long long>(messageId));
      FUZZ_REQUIRE(wire::GetU32(p) == helper->replyStatus && wire::GetU32(p + 4) == 0, "REPLY status/reserved");
      const uint32_t dataSize = h.payloadSize - static_cast<uint32_t>(wire::kReplyPrefixSize);
      FUZZ_REQUIRE(
          dataSize == helper->replySize - sizeof(FILTER_REPLY_HEADER) &&
              std::memcmp(p + wire::kReplyPrefixSize, helper->reply.get() + sizeof(FILTER_REPLY_HEADER), dataSize) == 0,
          "REPLY data differs from the caller's buffer");
      FUZZ_REQUIRE(h.id != 0, "REPLY with id 0");
      for (const SrvCall& c : s.srvCalls) FUZZ_REQUIRE(c.id != h.id, "call id 0x%x reused while pending", h.id);
      helper->frameSeen = true;
      s.srvCalls.push_back({h.id, helper->serial, false, 0});
      return;
    }
    case wire::Type::kSend: {
      FUZZ_REQUIRE(h.payloadSize >= wire::kSendPrefixSize + 4, "SEND payload of %u bytes", h.payloadSize);
      const Bytes input(p + wire::kSendPrefixSize, p + h.payloadSize);
      Helper* helper = FindHelper(s, Helper::kSend, wire::GetU32(input.data()));
      FUZZ_REQUIRE(helper != nullptr && !helper->frameSeen, "SEND with unknown tag");
      FUZZ_REQUIRE(wire::GetU32(p) == helper->outSize, "SEND output capacity %u, caller's %u", wire::GetU32(p),
                   helper->outSize);
      FUZZ_REQUIRE(input == helper->input, "SEND input differs from the caller's buffer");
      FUZZ_REQUIRE(h.id != 0, "SEND with id 0");
      for (const SrvCall& c : s.srvCalls) FUZZ_REQUIRE(c.id != h.id, "call id 0x%x reused while pending", h.id);
      helper->frameSeen = true;
      s.srvCalls.push_back({h.id, helper->serial, true, helper->outSize});
      return;
    }
    default:
      FUZZ_REQUIRE(false, "client sent frame type 0x%02x after the handshake", static_cast<unsigned>(h.type));
  }
}

// Reads whatever the client has written and processes the complete frames.
void Pump(Session& s) {
  while (!s.clientEof) {
    uint8_t tmp[8192];
    const ssize_t n = recv(s.srv, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n > 0) {
      s.inbuf.insert(s.inbuf.end(), tmp, tmp + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    s.clientEof = true;  // EOF or reset: the client closed or shut down its socket
  }
  size_t at = 0;
  while (s.inbuf.size() - at >= wire::kHeaderSize) {
    wire::FrameHeader h;
    const wire::HeaderError e = wire::DecodeClientHeader(s.inbuf.data() + at, &h);
    FUZZ_REQUIRE(e == wire::HeaderError::kNone, "client sent a bad header: %s", wire::HeaderErrorText(e));
    if (s.inbuf.size() - at < wire::kHeaderSize + h.payloadSize) break;
    OnClientFrame(s, h, s.inbuf.data() + at + wire::kHeaderSize);
    at += wire::kHeaderSize + h.payloadSize;
  }
  s.inbuf.erase(s.inbuf.begin(), s.inbuf.begin() + static_cast<long>(at));
}

// Waits for a helper to be woken, or for client bytes. No time limit: a hang is libFuzzer's -timeout.
void WaitForActivity(Session& s) {
  pollfd fds[2] = {{s.wake[0], POLLIN, 0}, {s.srv, POLLIN, 0}};
  const nfds_t n = s.clientEof ? 1 : 2;
  while (poll(fds, n, -1) < 0 && errno == EINTR) {
  }
  uint8_t tmp[64];
  while (read(s.wake[0], tmp, sizeof(tmp)) > 0) {
  }
}

void SrvWrite(Session& s, const Bytes& b) {
  if (!s.srvWriteOpen) return;
  size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = send(s.srv, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      s.clean = false;  // the client has gone (EPIPE / ECONNRESET)
      return;
    }
    off += static_cast<size_t>(n);
  }
}

// Limits big buffers per input; past the limit a get gets 64 bytes.
uint32_t Capacity(Session& s, uint8_t sel) {
  const uint32_t cap = fuzz::GetCapacity(sel);
  if (cap > (1u << 20)) return s.hugeGets++ < 1 ? cap : 64;
  if (cap > 4096) return s.bigGets++ < 2 ? cap : 64;
  return cap;
}

void ServerClose(Session& s) {
  if (s.srv < 0) return;
  Pump(s);
  close(s.srv);
  s.srv = -1;
  s.srvWriteOpen = false;
  s.clientEof = true;  // nothing more can be read from the client
  s.clean = false;
}

void ServerHangUp(Session& s) {
  if (!s.srvWriteOpen) return;
  (void)shutdown(s.srv, SHUT_WR);
  s.srvWriteOpen = false;
  s.clean = false;
}

// ---- quiescence ----------------------------------------------------------------------------------
// Waits until every other thread of the process (the client's reader, blocked calls, libFuzzer's own) is
// asleep, and stays so across two looks without a context switch: then the client has processed all that
// the server wrote (its reader sleeps in recv only with nothing left to read), and every completion it will
// make from that is queued. This makes runs repeatable without any time-out.
struct ThreadState {
  long tid;
  bool sleeping;
  std::string switches;
};

std::vector<ThreadState> OtherThreads() {
  std::vector<ThreadState> out;
  const long self = syscall(SYS_gettid);
  DIR* d = opendir("/proc/self/task");
  FUZZ_REQUIRE(d != nullptr, "opendir /proc/self/task");
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const long tid = std::strtol(e->d_name, nullptr, 10);
    if (tid == self) continue;
    std::ifstream status(std::string("/proc/self/task/") + e->d_name + "/status");
    ThreadState t{tid, false, ""};
    std::string line;
    bool any = false;
    while (std::getline(status, line)) {
      any = true;
      if (line.compare(0, 6, "State:") == 0) t.sleeping = line.find("(sleeping)") != std::string::npos;
      if (line.find("ctxt_switches:") != std::string::npos) t.switches += line;
    }
    if (any) out.push_back(t);  // a thread that exited meanwhile has no status left
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const ThreadState& a, const ThreadState& b) { return a.tid < b.tid; });
  return out;
}

bool AllAsleep(const std::vector<ThreadState>& ts) {
  for (const ThreadState& t : ts) {
    if (!t.sleeping) return false;
  }
  return true;
}

void Settle() {
  std::vector<ThreadState> before = OtherThreads();
  for (;;) {
    if (!AllAsleep(before)) {
      sched_yield();
      before = OtherThreads();
      continue;
    }
    std::vector<ThreadState> after = OtherThreads();
    bool same = after.size() == before.size() && AllAsleep(after);
    for (size_t i = 0; same && i < after.size(); ++i) {
      same = after[i].tid == before[i].tid && after[i].switches == before[i].switches;
    }
    if (same) return;
    before = std::move(after);
  }
}

// ---- checks of what the client reports ---------------------------------------------------------
void CheckMessage(Session& s, const uint8_t* buf, uint32_t cap, DWORD bytes, const char* what) {
  FUZZ_REQUIRE(bytes >= sizeof(FILTER_MESSAGE_HEADER) && bytes <= cap,
               "%s: successful get reported %u bytes (capacity %u): no FILTER_MESSAGE_HEADER written", what, bytes,
               cap);
  FUZZ_REQUIRE(AllPattern(buf + bytes, cap - bytes), "%s: get wrote past the %u bytes it reported", what, bytes);
  FILTER_MESSAGE_HEADER header;
  std::memcpy(&header, buf, sizeof(header));
  const uint8_t* data = buf + sizeof(header);
  const size_t dataSize = bytes - sizeof(header);
  for (Msg& m : s.msgs) {
    if (!m.delivered && m.replyLength == header.ReplyLength && m.messageId == header.MessageId &&
        m.data.size() == dataSize && (dataSize == 0 || std::memcmp(m.data.data(), data, dataSize) == 0)) {
      m.delivered = true;
      return;
    }
  }
  FUZZ_REQUIRE(s.raw,
               "%s: delivered message (replyLength %u, id %llx, %zu data bytes) was not sent by the server, "
               "or was delivered twice",
               what, header.ReplyLength, static_cast<unsigned long long>(header.MessageId), dataSize);
}

void CheckFailureStatus(Session& s, NTSTATUS status, const char* what) {
  const uint32_t u = static_cast<uint32_t>(status);
  FUZZ_REQUIRE(status == STATUS_CANCELLED || status == STATUS_PORT_DISCONNECTED || status == STATUS_BUFFER_TOO_SMALL ||
                   s.statuses.count(u) == 1 || s.raw,
               "%s: failed with status 0x%08x that nobody produced", what, u);
}

void CheckFinishedGet(Session& s, OvGet& g, NTSTATUS status, DWORD bytes) {
  OVERLAPPED* ov = g.ov.get();
  FUZZ_REQUIRE(status != STATUS_PENDING, "overlapped get completed with STATUS_PENDING");
  FUZZ_REQUIRE(ov->u.Pointer == kOvPointer && ov->hEvent == kOvEvent, "OVERLAPPED fields beyond Internal* written");
  DWORD reported = 0xFFFFFFFFu;
  SetLastError(0);
  const BOOL ok = GetOverlappedResult(s.clientClosed ? nullptr : s.port, ov, &reported, FALSE);
  FUZZ_REQUIRE(ok || GetLastError() != ERROR_IO_INCOMPLETE, "completed get is still incomplete");
  FUZZ_REQUIRE(reported == bytes, "GetOverlappedResult bytes %u, completion %u", reported, bytes);
  if (ok) {
    CheckMessage(s, g.buf.get(), g.cap, bytes, "overlapped get");
    return;
  }
  FUZZ_REQUIRE(bytes == 0, "failed get (status 0x%08x) reports %u bytes", static_cast<uint32_t>(status), bytes);
  FUZZ_REQUIRE(AllPattern(g.buf.get(), g.cap), "failed get (status 0x%08x) wrote its buffer",
               static_cast<uint32_t>(status));
  CheckFailureStatus(s, status, "overlapped get");
}

void Drain(Session& s) {
  if (s.useIocp && s.iocp != nullptr) {
    for (;;) {
      OVERLAPPED_ENTRY entries[8];
      std::memset(entries, 0, sizeof(entries));
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(s.iocp, entries, 8, &n, 0, FALSE)) {
        FUZZ_REQUIRE(GetLastError() == WAIT_TIMEOUT, "GetQueuedCompletionStatusEx error %u", GetLastError());
        break;
      }
      FUZZ_REQUIRE(n >= 1 && n <= 8, "dequeued %u entries", n);
      for (ULONG i = 0; i < n; ++i) {
        const OVERLAPPED_ENTRY& e = entries[i];
        FUZZ_REQUIRE(e.lpCompletionKey == kKey, "completion key %lx", static_cast<unsigned long>(e.lpCompletionKey));
        auto it = std::find_if(s.outstanding.begin(), s.outstanding.end(),
                               [&e](const std::unique_ptr<OvGet>& g) { return g->ov.get() == e.lpOverlapped; });
        FUZZ_REQUIRE(it != s.outstanding.end(), "completion for an OVERLAPPED that is not pending (twice, or never)");
        const NTSTATUS status = static_cast<NTSTATUS>(static_cast<uint32_t>(e.Internal));
        FUZZ_REQUIRE(OverlappedStatus((*it)->ov.get()) == status, "entry status 0x%08x, OVERLAPPED 0x%08x",
                     static_cast<uint32_t>(status), static_cast<uint32_t>(OverlappedStatus((*it)->ov.get())));
        FUZZ_REQUIRE((*it)->ov->InternalHigh == e.dwNumberOfBytesTransferred, "entry bytes differ from OVERLAPPED");
        CheckFinishedGet(s, **it, status, e.dwNumberOfBytesTransferred);
        s.outstanding.erase(it);  // frees the buffer: a late write is a use-after-free
      }
    }
  } else {
    for (size_t i = 0; i < s.outstanding.size();) {
      OvGet& g = *s.outstanding[i];
      const NTSTATUS status = OverlappedStatus(g.ov.get());
      if (status == STATUS_PENDING) {
        ++i;
        continue;
      }
      CheckFinishedGet(s, g, status, static_cast<DWORD>(g.ov->InternalHigh));
      s.outstanding.erase(s.outstanding.begin() + static_cast<long>(i));
    }
  }
}

void CheckHelper(Session& s, Helper& h) {
  const auto it = s.answers.find(h.serial);
  const Answer* a = it == s.answers.end() ? nullptr : &it->second;
  switch (h.kind) {
    case Helper::kSend:
    case Helper::kReply: {
      const char* what = h.kind == Helper::kSend ? "FilterSendMessage" : "FilterReplyMessage";
      if (h.kind == Helper::kSend) {
        FUZZ_REQUIRE(h.bytes <= h.outSize, "%s returned %u bytes for %u", what, h.bytes, h.outSize);
        if (SUCCEEDED(h.hr)) {
          FUZZ_REQUIRE(AllPattern(h.out.get() + h.bytes, h.outSize - h.bytes), "%s wrote past bytesReturned", what);
        } else {
          FUZZ_REQUIRE(h.bytes == 0 && AllPattern(h.out.get(), h.outSize), "%s failed (0x%08x) but wrote output", what,
                       static_cast<uint32_t>(h.hr));
        }
      }
      if (s.raw) return;  // any answer may have come from a raw frame
      const bool lost = h.hr == E_HANDLE || (s.aborted && h.hr == kAborted);  // the connection ended first
      if (a == nullptr || !a->accepted) {
        FUZZ_REQUIRE(lost, "%s returned 0x%08x with no (well-formed) answer", what, static_cast<uint32_t>(h.hr));
        return;
      }
      if (a->binding) {
        FUZZ_REQUIRE(h.hr == a->hr, "%s returned 0x%08x, the server answered 0x%08x", what, static_cast<uint32_t>(h.hr),
                     static_cast<uint32_t>(a->hr));
      } else {
        FUZZ_REQUIRE(h.hr == a->hr || lost, "%s returned 0x%08x, the server answered 0x%08x", what,
                     static_cast<uint32_t>(h.hr), static_cast<uint32_t>(a->hr));
      }
      if (h.kind == Helper::kSend && h.hr == a->hr && SUCCEEDED(h.hr)) {
        FUZZ_REQUIRE(
            h.bytes == a->data.size() && (h.bytes == 0 || std::memcmp(h.out.get(), a->data.data(), h.bytes) == 0),
            "FilterSendMessage output differs from SEND_RESULT (%u bytes, sent %zu)", h.bytes, a->data.size());
      }
      return;
    }
    case Helper::kSyncGet:
      FUZZ_REQUIRE(h.hr != kIoPending, "synchronous FilterGetMessage returned ERROR_IO_PENDING");
      if (SUCCEEDED(h.hr)) {
        FUZZ_REQUIRE(h.hr == S_OK, "synchronous get returned success code 0x%08x", static_cast<uint32_t>(h.hr));
        // No byte count comes back: find the message whose data is followed by untouched bytes.
        FILTER_MESSAGE_HEADER header;
        std::memcpy(&header, h.getBuf.get(), sizeof(header));
        for (Msg& m : s.msgs) {
          const size_t end = sizeof(header) + m.data.size();
          if (!m.delivered && m.replyLength == header.ReplyLength && m.messageId == header.MessageId &&
              end <= h.getCap &&
              (m.data.empty() || std::memcmp(h.getBuf.get() + 16, m.data.data(), m.data.size()) == 0) &&
              AllPattern(h.getBuf.get() + end, h.getCap - end)) {
            m.delivered = true;
            return;
          }
        }
        FUZZ_REQUIRE(s.raw, "synchronous get delivered a message the server did not send");
      } else {
        FUZZ_REQUIRE(AllPattern(h.getBuf.get(), h.getCap), "failed synchronous get (0x%08x) wrote its buffer",
                     static_cast<uint32_t>(h.hr));
      }
      return;
  }
}

// Joins and checks the helpers that have returned; with all = true waits for every one.
void ReapHelpers(Session& s, bool all) {
  for (;;) {
    std::vector<const Helper*> finished;
    for (const auto& h : s.helpers) {
      if (h->done.load(std::memory_order_acquire)) finished.push_back(h.get());
    }
    // A returned call has written its whole frame, if it wrote one: read it before forgetting the call.
    Pump(s);
    for (size_t i = 0; i < s.helpers.size();) {
      Helper& h = *s.helpers[i];
      if (std::find(finished.begin(), finished.end(), &h) == finished.end()) {
        ++i;
        continue;
      }
      h.thread.join();
      CheckHelper(s, h);
      s.helpers.erase(s.helpers.begin() + static_cast<long>(i));  // frees its buffers
    }
    if (!all || s.helpers.empty()) return;
    WaitForActivity(s);
  }
}

size_t LiveHelpers(const Session& s) { return s.helpers.size(); }

// Starts a blocking call on its own thread and waits until it has written its frame or returned, so the
// call holds its reference to the handle before anything else happens (CloseHandle included).
void Launch(Session& s, std::unique_ptr<Helper> owned) {
  Helper& h = *owned;
  s.helpers.push_back(std::move(owned));
  const size_t getsBefore = s.getFrames;
  HANDLE port = s.port;
  const int wakeFd = s.wake[1];
  h.thread = std::thread([&h, port, wakeFd] {
    switch (h.kind) {
      case Helper::kSend:
        h.hr = FilterSendMessage(port, h.input.data(), static_cast<DWORD>(h.input.size()),
                                 h.outSize ? h.out.get() : nullptr, h.outSize, &h.bytes);
        break;
      case Helper::kReply:
        h.hr = FilterReplyMessage(port, reinterpret_cast<PFILTER_REPLY_HEADER>(h.reply.get()), h.replySize);
        break;
      case Helper::kSyncGet:
        h.hr = FilterGetMessage(port, reinterpret_cast<PFILTER_MESSAGE_HEADER>(h.getBuf.get()), h.getCap, nullptr);
        break;
    }
    h.done.store(true, std::memory_order_release);
    const uint8_t one = 1;
    (void)!write(wakeFd, &one, 1);
  });
  for (;;) {
    Pump(s);
    if (h.kind == Helper::kSyncGet ? s.getFrames > getsBefore : h.frameSeen) return;
    if (h.done.load(std::memory_order_acquire)) return;
    WaitForActivity(s);
  }
}

// ---- ops ----------------------------------------------------------------------------------------
void OpGet(Session& s, Input& in) {
  const uint32_t cap = Capacity(s, in.U8());
  if (s.clientClosed) return;
  std::unique_ptr<OvGet> g(new OvGet);
  g->ov.reset(new OVERLAPPED);
  std::memset(g->ov.get(), 0, sizeof(OVERLAPPED));
  g->ov->u.Pointer = kOvPointer;
  g->ov->hEvent = kOvEvent;
  g->buf = PatternBuffer(cap);
  g->cap = cap;
  const HRESULT hr = FilterGetMessage(s.port, reinterpret_cast<PFILTER_MESSAGE_HEADER>(g->buf.get()), cap, g->ov.get());
  if (cap < sizeof(FILTER_MESSAGE_HEADER) || s.syncHandle) {
    FUZZ_REQUIRE(hr == E_INVALIDARG, "FilterGetMessage(capacity %u, sync %d) returned 0x%08x", cap, s.syncHandle,
                 static_cast<uint32_t>(hr));
  } else if (s.clean) {
    FUZZ_REQUIRE(hr == kIoPending, "FilterGetMessage on a healthy port returned 0x%08x", static_cast<uint32_t>(hr));
  } else {
    FUZZ_REQUIRE(hr == kIoPending || hr == E_HANDLE, "FilterGetMessage returned 0x%08x", static_cast<uint32_t>(hr));
  }
  if (hr == kIoPending) {
    s.outstanding.push_back(std::move(g));
  } else {
    FUZZ_REQUIRE(AllPattern(g->buf.get(), cap), "refused get wrote its buffer");
  }
  Pump(s);
}

void OpCancel(Session& s, Input& in) {
  const uint8_t which = in.U8();
  if (s.clientClosed) return;
  SetLastError(0);
  if (which == 255) {
    if (!CancelIoEx(s.port, nullptr)) FUZZ_REQUIRE(GetLastError() == ERROR_NOT_FOUND, "CancelIoEx(NULL) error");
  } else if (s.outstanding.empty() || which >= 250) {
    OVERLAPPED foreign;
    std::memset(&foreign, 0, sizeof(foreign));
    FUZZ_REQUIRE(!CancelIoEx(s.port, &foreign) && GetLastError() == ERROR_NOT_FOUND, "foreign OVERLAPPED cancelled");
  } else {
    OvGet& g = *s.outstanding[which % s.outstanding.size()];
    if (CancelIoEx(s.port, g.ov.get())) {
      // Cancellation completes at once, without the simulator.
      FUZZ_REQUIRE(OverlappedStatus(g.ov.get()) != STATUS_PENDING, "CancelIoEx succeeded but the get is pending");
    } else {
      FUZZ_REQUIRE(GetLastError() == ERROR_NOT_FOUND, "CancelIoEx error %u", GetLastError());
    }
  }
  Pump(s);
}

void OpSend(Session& s, Input& in) {
  const uint8_t inLen = in.U8();
  const uint32_t outSize = fuzz::SendOutCapacity(in.U8());
  Bytes data = in.Bytes(inLen);
  if (s.clientClosed || LiveHelpers(s) >= kMaxLiveHelpers) return;
  if (inLen == 255 && s.bigCalls++ < 1) data.assign(fuzz::kBigCallData, 0x3C);  // written in several pieces
  std::unique_ptr<Helper> h(new Helper);
  h->kind = Helper::kSend;
  h->serial = s.nextSerial++;
  h->input = U32Bytes(h->serial);
  h->input.insert(h->input.end(), data.begin(), data.end());
  h->outSize = outSize;
  h->out = PatternBuffer(outSize);
  Launch(s, std::move(h));
}

void OpReply(Session& s, Input& in) {
  const uint32_t status = in.U32();
  const uint8_t lenSel = in.U8();
  Bytes data = in.Bytes(lenSel);
  if (s.clientClosed || LiveHelpers(s) >= kMaxLiveHelpers) return;
  if (lenSel == 255 && s.bigCalls++ < 1) data.assign(fuzz::kBigCallData, 0x3D);
  const size_t len = data.size();
  std::unique_ptr<Helper> h(new Helper);
  h->kind = Helper::kReply;
  h->serial = s.nextSerial++;
  h->replySize = static_cast<uint32_t>(sizeof(FILTER_REPLY_HEADER) + len);
  h->reply = PatternBuffer(h->replySize);
  FILTER_REPLY_HEADER header;
  std::memset(&header, 0, sizeof(header));
  header.Status = static_cast<NTSTATUS>(status);
  header.MessageId = h->serial;
  std::memcpy(h->reply.get(), &header, sizeof(header));
  if (len != 0) std::memcpy(h->reply.get() + sizeof(header), data.data(), len);
  h->replyStatus = status;
  Launch(s, std::move(h));
}

void OpSyncGet(Session& s, Input& in) {
  const uint32_t cap = Capacity(s, in.U8());
  if (s.clientClosed || LiveHelpers(s) >= kMaxLiveHelpers) return;
  if (cap < sizeof(FILTER_MESSAGE_HEADER)) {
    std::unique_ptr<uint8_t[]> buf = PatternBuffer(cap);
    const HRESULT hr = FilterGetMessage(s.port, reinterpret_cast<PFILTER_MESSAGE_HEADER>(buf.get()), cap, nullptr);
    FUZZ_REQUIRE(hr == E_INVALIDARG && AllPattern(buf.get(), cap), "synchronous get of %u bytes: 0x%08x", cap,
                 static_cast<uint32_t>(hr));
    return;
  }
  std::unique_ptr<Helper> h(new Helper);
  h->kind = Helper::kSyncGet;
  h->serial = s.nextSerial++;
  h->getCap = cap;
  h->getBuf = PatternBuffer(cap);
  Launch(s, std::move(h));
}

void OpGetComplete(Session& s, Input& in) {
  const uint8_t which = in.U8();
  const uint8_t flags = in.U8();
  const uint32_t replyLength = in.U32();
  const uint32_t tag = in.U32();
  const uint8_t len = in.U8();
  Bytes data = in.Bytes(len);
  Pump(s);
  const uint64_t messageId = (static_cast<uint64_t>(tag) << 32) | ++s.msgCounter;
  if (s.srvGets.empty()) {  // id 0 is never a get: the client must drop the connection
    Bytes payload(16);
    wire::PutU32(payload.data() + 4, replyLength);
    wire::PutU64(payload.data() + 8, messageId);
    SrvWrite(s, Frame(wire::Type::kGetComplete, 0, payload));
    s.clean = false;
    return;
  }
  const size_t k = which % s.srvGets.size();
  const SrvGet g = s.srvGets[k];
  const size_t room = g.cap - sizeof(FILTER_MESSAGE_HEADER);
  if ((flags & 2) != 0) {  // a message as big as the buffer allows (or half): one byte value, the counter at both ends
    const size_t n = (flags & 4) != 0 ? room / 2 : room;
    data.assign(n, static_cast<uint8_t>(s.msgCounter * 37 + 1));
    if (n >= 16) {
      wire::PutU64(data.data(), s.msgCounter);
      wire::PutU64(data.data() + n - 8, s.msgCounter);
    }
  }
  if ((flags & 1) != 0 && data.size() > room) data.resize(room);
  Bytes payload(16);
  wire::PutU32(payload.data(), wire::kStatusSuccess);
  wire::PutU32(payload.data() + 4, replyLength);
  wire::PutU64(payload.data() + 8, messageId);
  payload.insert(payload.end(), data.begin(), data.end());
  const bool accepted = data.size() <= room;
  SrvWrite(s, Frame(wire::Type::kGetComplete, g.id, payload));
  s.srvGets.erase(s.srvGets.begin() + static_cast<long>(k));
  if (accepted) {
    s.msgs.push_back({replyLength, messageId, data, false});
  } else {
    s.clean = false;
  }
}

void OpGetStatus(Session& s, Input& in) {
  const uint8_t which = in.U8();
  const uint8_t sel = in.U8();
  const uint32_t rawStatus = in.U32();
  const uint32_t replyLength = in.U32();
  Pump(s);
  const uint32_t status = (sel & 3) == 0   ? wire::kStatusCancelled
                          : (sel & 3) == 1 ? wire::kStatusBufferTooSmall
                                           : rawStatus;
  const bool withData = (sel & 4) != 0;
  Bytes payload(16);
  wire::PutU32(payload.data(), status);
  wire::PutU32(payload.data() + 4, replyLength);
  if (withData) payload.push_back(0x5C);
  if (s.srvGets.empty()) {
    SrvWrite(s, Frame(wire::Type::kGetComplete, 0, payload));
    s.clean = false;
    return;
  }
  const size_t k = which % s.srvGets.size();
  const SrvGet g = s.srvGets[k];
  SrvWrite(s, Frame(wire::Type::kGetComplete, g.id, payload));
  s.srvGets.erase(s.srvGets.begin() + static_cast<long>(k));
  if (status == wire::kStatusSuccess) {
    if (payload.size() - 16 <= g.cap - sizeof(FILTER_MESSAGE_HEADER)) {
      s.msgs.push_back({replyLength, 0, Bytes(payload.begin() + 16, payload.end()), false});
    } else {
      s.clean = false;
    }
  } else if (!withData && status >= 0x80000000u) {
    s.statuses.insert(status);
  } else {
    s.clean = false;  // data with a failure status, or a success-class status without a message: malformed
  }
}

void OpCallResult(Session& s, Input& in, bool send) {
  const uint8_t which = in.U8();
  const uint8_t flags = send ? in.U8() : 0;
  const HRESULT hr = static_cast<HRESULT>(in.U32());
  Bytes data;
  if (send) data = in.Bytes(in.U8());
  Pump(s);
  std::vector<size_t> candidates;
  for (size_t i = 0; i < s.srvCalls.size(); ++i) {
    if (s.srvCalls[i].isSend == send) candidates.push_back(i);
  }
  const wire::Type type = send ? wire::Type::kSendResult : wire::Type::kReplyResult;
  Bytes payload = U32Bytes(static_cast<uint32_t>(hr));
  if (candidates.empty()) {
    payload.insert(payload.end(), data.begin(), data.end());
    SrvWrite(s, Frame(type, 0, payload));  // id 0 is never a call
    s.clean = false;
    return;
  }
  const size_t k = candidates[which % candidates.size()];
  const SrvCall c = s.srvCalls[k];
  bool accepted = true;
  if (send) {
    if ((flags & 2) != 0) data.assign(c.outCap, static_cast<uint8_t>(c.serial));
    if ((flags & 1) != 0) {
      if (data.size() > c.outCap) data.resize(c.outCap);
      if (hr < 0) data.clear();
    }
    accepted = data.size() <= c.outCap && (hr >= 0 || data.empty());
    payload.insert(payload.end(), data.begin(), data.end());
  }
  const bool binding = s.clean && accepted;
  SrvWrite(s, Frame(type, c.id, payload));
  s.srvCalls.erase(s.srvCalls.begin() + static_cast<long>(k));
  // s.clean again: the write itself may have found the client gone.
  s.answers[c.serial] = Answer{binding && s.clean, accepted, hr, data};
  if (!accepted) s.clean = false;
}

void OpRawFrame(Session& s, Input& in) {
  static const uint8_t kTypes[] = {0x81, 0x82, 0x84, 0x85, 0x86};
  const uint8_t typeSel = in.U8();
  const uint8_t idSel = in.U8();
  const uint32_t idRaw = in.U32();
  const Bytes payload = in.Bytes(in.U8());
  Pump(s);
  const uint8_t type = typeSel < 250 ? kTypes[typeSel % 5] : typeSel;
  uint32_t id = 0;
  switch (idSel & 3) {
    case 0:
      id = idRaw;
      break;
    case 1:
      if (!s.srvGets.empty()) id = s.srvGets[idRaw % s.srvGets.size()].id;
      break;
    case 2:
      if (!s.srvCalls.empty()) id = s.srvCalls[idRaw % s.srvCalls.size()].id;
      break;
    default:
      break;
  }
  Bytes f(wire::kHeaderSize);
  wire::PutU32(f.data(), static_cast<uint32_t>(payload.size() + wire::kLengthOverhead));
  f[4] = wire::kVersion;
  f[5] = type;
  wire::PutU32(f.data() + 8, id);
  f.insert(f.end(), payload.begin(), payload.end());
  SrvWrite(s, f);
  s.raw = true;
  s.clean = false;
}

void OpRawBytes(Session& s, Input& in) {
  const Bytes bytes = in.Bytes(in.U8());
  SrvWrite(s, bytes);
  s.raw = true;
  s.clean = false;
}

// Before the client ends the connection itself: a call still waiting may now fail even if its answer is
// already on the way.
void UnbindWaitingCalls(Session& s) {
  for (const auto& h : s.helpers) {
    const auto it = s.answers.find(h->serial);
    if (it != s.answers.end() && !h->done.load(std::memory_order_acquire)) it->second.binding = false;
  }
}

void Abort(Session& s) {
  if (s.clientClosed) return;
  UnbindWaitingCalls(s);
  FUZZ_REQUIRE(FltSimAbortPort(s.port) == S_OK, "FltSimAbortPort failed");
  s.aborted = true;
  s.clean = false;
}

void ClientClose(Session& s) {
  if (s.clientClosed) return;
  UnbindWaitingCalls(s);
  FUZZ_REQUIRE(CloseHandle(s.port), "CloseHandle(port) failed: %u", GetLastError());
  s.clientClosed = true;
  s.clean = false;
  // Every overlapped get is complete once CloseHandle has returned.
  for (const auto& g : s.outstanding) {
    FUZZ_REQUIRE(OverlappedStatus(g->ov.get()) != STATUS_PENDING, "get still pending after CloseHandle");
  }
}

// ---- one session ----------------------------------------------------------------------------------
// Reads one complete client frame during the handshake (blocking; false on EOF).
bool ReadFrame(int fd, Bytes* buf, wire::FrameHeader* h, Bytes* payload) {
  for (;;) {
    if (buf->size() >= wire::kHeaderSize) {
      FUZZ_REQUIRE(wire::DecodeClientHeader(buf->data(), h) == wire::HeaderError::kNone, "bad CONNECT header");
      const size_t total = wire::kHeaderSize + h->payloadSize;
      if (buf->size() >= total) {
        payload->assign(buf->begin() + wire::kHeaderSize, buf->begin() + static_cast<long>(total));
        buf->erase(buf->begin(), buf->begin() + static_cast<long>(total));
        return true;
      }
    }
    uint8_t tmp[4096];
    const ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf->insert(buf->end(), tmp, tmp + n);
  }
}

void CheckConnectPayload(const Bytes& p, uint32_t options) {
  Bytes expect(wire::ConnectPayloadSize(9, sizeof(kContext), 0));
  wire::EncodeConnectPayload(expect.data(), options, static_cast<uint32_t>(getpid()), kPortName, 9, kContext,
                             sizeof(kContext), nullptr, 0);
  FUZZ_REQUIRE(p == expect, "CONNECT payload differs");
}

void RunSession(Input& in) {
  Session s;
  const uint8_t flags = in.U8();
  s.syncHandle = (flags & fuzz::kFlagSyncHandle) != 0;
  s.useIocp = (flags & fuzz::kFlagNoIocp) == 0;
  const uint8_t handshake = (flags >> fuzz::kHandshakeShift) & 3;
  const bool serverClosesFirst = (flags & fuzz::kFlagServerClosesFirst) != 0;
  FUZZ_REQUIRE(pipe2(s.wake, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2");

  // Connect on a helper thread while this thread plays the simulator's handshake.
  const DWORD options = s.syncHandle ? FLT_PORT_FLAG_SYNC_HANDLE : 0;
  HANDLE handle = nullptr;
  HRESULT connectHr = S_OK;
  std::atomic<bool> connectDone{false};
  std::thread connector([&] {
    connectHr = FltSimConnectCommunicationPort(gEndpoint.c_str(), reinterpret_cast<LPCWSTR>(kPortName), options,
                                               kContext, sizeof(kContext), nullptr, &handle);
    connectDone.store(true);
    const uint8_t one = 1;
    (void)!write(s.wake[1], &one, 1);
  });
  for (;;) {
    pollfd fds[2] = {{gListen, POLLIN, 0}, {s.wake[0], POLLIN, 0}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[0].revents & POLLIN) break;
    FUZZ_REQUIRE(!connectDone.load(), "connect returned 0x%08x before the server accepted",
                 static_cast<uint32_t>(connectHr));
  }
  s.srv = accept4(gListen, nullptr, nullptr, SOCK_CLOEXEC);
  FUZZ_REQUIRE(s.srv >= 0, "accept: %s", std::strerror(errno));
  wire::FrameHeader h;
  Bytes payload;
  FUZZ_REQUIRE(ReadFrame(s.srv, &s.inbuf, &h, &payload) && h.type == wire::Type::kConnect && h.id == 0,
               "first frame is not CONNECT");
  CheckConnectPayload(payload, options);
  HRESULT expectHr = S_OK;
  Bytes rawHandshake;
  if (handshake == fuzz::kHandshakeRaw) {
    rawHandshake = in.Bytes(in.U8());
    SrvWrite(s, rawHandshake);
    ServerHangUp(s);
    s.raw = true;
  } else {
    if (handshake == fuzz::kHandshakeHresult) expectHr = static_cast<HRESULT>(in.U32());
    SrvWrite(s, Frame(wire::Type::kConnectResult, 0, U32Bytes(static_cast<uint32_t>(expectHr))));
  }
  connector.join();
  if (handshake == fuzz::kHandshakeRaw) {
    if (SUCCEEDED(connectHr)) {
      // Only a well-formed CONNECT_RESULT with that very hresult may open the port.
      wire::FrameHeader rh;
      FUZZ_REQUIRE(rawHandshake.size() >= wire::kHeaderSize + 4 &&
                       wire::DecodeServerHeader(rawHandshake.data(), &rh) == wire::HeaderError::kNone &&
                       rh.type == wire::Type::kConnectResult && rh.payloadSize == 4 &&
                       wire::GetI32(rawHandshake.data() + wire::kHeaderSize) >= 0,
                   "connected (0x%08x) without a valid CONNECT_RESULT", static_cast<uint32_t>(connectHr));
      FUZZ_REQUIRE(connectHr == S_OK, "connect returned success code 0x%08x", static_cast<uint32_t>(connectHr));
    }
  } else {
    // Any success code connects, and the caller sees S_OK.
    FUZZ_REQUIRE(connectHr == (expectHr < 0 ? expectHr : S_OK), "connect returned 0x%08x, CONNECT_RESULT said 0x%08x",
                 static_cast<uint32_t>(connectHr), static_cast<uint32_t>(expectHr));
  }
  if (FAILED(connectHr)) {
    FUZZ_REQUIRE(handle == INVALID_HANDLE_VALUE, "failed connect left a handle");
    close(s.srv);
    close(s.wake[0]);
    close(s.wake[1]);
    return;
  }
  FUZZ_REQUIRE(handle != nullptr && handle != INVALID_HANDLE_VALUE, "connected without a handle");
  s.port = handle;

  if (s.useIocp) {
    s.iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
    FUZZ_REQUIRE(s.iocp != nullptr, "CreateIoCompletionPort");
    const HANDLE assoc = CreateIoCompletionPort(s.port, s.iocp, kKey, 0);
    if (s.syncHandle) {
      FUZZ_REQUIRE(assoc == nullptr && GetLastError() == ERROR_INVALID_PARAMETER, "synchronous handle associated");
    } else {
      FUZZ_REQUIRE(assoc == s.iocp, "association failed: %u", GetLastError());
      FUZZ_REQUIRE(CreateIoCompletionPort(s.port, s.iocp, kKey, 0) == nullptr, "second association accepted");
    }
  }

  for (size_t ops = 0; ops < kMaxOps && !in.empty(); ++ops) {
    switch (in.U8() % fuzz::kOpCount) {
      case fuzz::kOpGet:
        OpGet(s, in);
        break;
      case fuzz::kOpCancel:
        OpCancel(s, in);
        break;
      case fuzz::kOpSend:
        OpSend(s, in);
        break;
      case fuzz::kOpReply:
        OpReply(s, in);
        break;
      case fuzz::kOpSyncGet:
        OpSyncGet(s, in);
        break;
      case fuzz::kOpDrain:
        Settle();
        Drain(s);
        ReapHelpers(s, false);
        break;
      case fuzz::kOpGetComplete:
        OpGetComplete(s, in);
        break;
      case fuzz::kOpGetStatus:
        OpGetStatus(s, in);
        break;
      case fuzz::kOpReplyResult:
        OpCallResult(s, in, false);
        break;
      case fuzz::kOpSendResult:
        OpCallResult(s, in, true);
        break;
      case fuzz::kOpRawFrame:
        OpRawFrame(s, in);
        break;
      case fuzz::kOpRawBytes:
        OpRawBytes(s, in);
        break;
      case fuzz::kOpDisconnect:
        SrvWrite(s, Frame(wire::Type::kDisconnect, 0, U32Bytes(in.U32())));
        ServerHangUp(s);
        break;
      case fuzz::kOpServerHangUp:
        ServerHangUp(s);
        break;
      case fuzz::kOpClientClose:
        ClientClose(s);
        break;
      case fuzz::kOpServerClose:
        ServerClose(s);
        break;
      case fuzz::kOpAbort:
        Abort(s);
        break;
    }
  }

  // Teardown. With the server gone first, the client must fail every pending request by itself.
  Settle();
  if (serverClosesFirst) {
    ServerHangUp(s);
    ReapHelpers(s, true);
  }
  ClientClose(s);
  ServerHangUp(s);
  ReapHelpers(s, true);
  Drain(s);
  FUZZ_REQUIRE(s.outstanding.empty(), "%zu overlapped gets never completed", s.outstanding.size());
  if (s.iocp != nullptr) FUZZ_REQUIRE(CloseHandle(s.iocp), "CloseHandle(iocp)");
  if (s.srv >= 0) close(s.srv);
  close(s.wake[0]);
  close(s.wake[1]);
}

void Cleanup() {
  if (gListen >= 0) close(gListen);
  if (!gPath.empty()) unlink(gPath.c_str());
  if (!gDir.empty()) rmdir(gDir.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  char tmpl[] = "/tmp/fltmgr-fuzz-XXXXXX";
  FUZZ_REQUIRE(mkdtemp(tmpl) != nullptr, "mkdtemp");
  gDir = tmpl;
  gPath = gDir + "/sim.sock";
  gEndpoint = "unix:" + gPath;
  gListen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un;
  std::memset(&un, 0, sizeof(un));
  un.sun_family = AF_UNIX;
  std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", gPath.c_str());
  FUZZ_REQUIRE(
      gListen >= 0 && bind(gListen, reinterpret_cast<sockaddr*>(&un), sizeof(un)) == 0 && listen(gListen, 16) == 0,
      "listen on %s: %s", gPath.c_str(), std::strerror(errno));
  std::atexit(Cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  RunSession(in);
  return 0;
}
