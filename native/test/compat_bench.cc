// Throughput of the compat layer against the in-process C++ fake simulator (an upper bound: the real
// simulator is TypeScript). Build and run: bash native/test/bench.sh
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "../compat/win32_compat.h"
#include "../sim/wire.h"
#include "fake_sim.h"

using fltmgr::wire::Type;
using test::Bytes;
using test::FakeSim;
using test::Frame;
using test::ServerConn;

namespace {

constexpr size_t kPayload = 64;

// Answers every GET with a message at once (completions for all readable GETs in one write), every
// REPLY with S_OK, every SEND with its input.
void Serve(ServerConn& c, bool wantReply) {
  if (!c.Handshake()) return;
  Frame f;
  uint64_t mid = 0;
  Bytes out;
  const Bytes data(kPayload, 0x5A);
  for (;;) {
    if (!c.Read(&f, 30000)) return;
    do {
      uint8_t h[12];
      Bytes payload;
      switch (f.type) {
        case Type::kGet:
          payload = test::GetCompletePayload(0, wantReply ? 16 + 8 : 0, mid++, data);
          break;
        case Type::kReply:
          payload = test::U32(0);
          break;
        case Type::kSend:
          payload = test::Cat({test::U32(0), Bytes(f.payload.begin() + 4, f.payload.end())});
          break;
        default:
          return;
      }
      const Type t = f.type == Type::kGet     ? Type::kGetComplete
                     : f.type == Type::kReply ? Type::kReplyResult
                                              : Type::kSendResult;
      fltmgr::wire::EncodeHeader(h, t, f.id, static_cast<uint32_t>(payload.size()));
      out.insert(out.end(), h, h + 12);
      out.insert(out.end(), payload.begin(), payload.end());
    } while (c.Readable() && c.Read(&f, 0));
    c.WriteRaw(out);
    out.clear();
  }
}

struct Request {
  OVERLAPPED ov;
  alignas(8) uint8_t buffer[16 + kPayload];
};

double Receive(const std::string& dir, bool reply, int messages, int outstanding) {
  FakeSim sim(dir, reply ? "bench-r.sock" : "bench-g.sock");
  sim.Serve([&](ServerConn& c) { Serve(c, reply); });
  HANDLE port = INVALID_HANDLE_VALUE;
  if (FltSimConnectCommunicationPort(sim.endpoint().c_str(), reinterpret_cast<LPCWSTR>(u"P"), 0, nullptr, 0, nullptr,
                                     &port) != S_OK) {
    std::fprintf(stderr, "connect failed\n");
    std::exit(1);
  }
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  std::vector<Request> reqs(static_cast<size_t>(outstanding));
  const auto t0 = std::chrono::steady_clock::now();
  for (Request& r : reqs) {
    FilterGetMessage(port, reinterpret_cast<PFILTER_MESSAGE_HEADER>(r.buffer), sizeof(r.buffer), &r.ov);
  }
  int received = 0, posted = outstanding;
  while (received < messages) {
    OVERLAPPED_ENTRY entries[64];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(iocp, entries, 64, &n, 10000, FALSE)) break;
    for (ULONG k = 0; k < n; ++k) {
      Request* r = reinterpret_cast<Request*>(entries[k].lpOverlapped);
      ++received;
      if (reply) {
        struct {
          FILTER_REPLY_HEADER h;
          uint8_t data[8];
        } rep = {};
        rep.h.MessageId = reinterpret_cast<PFILTER_MESSAGE_HEADER>(r->buffer)->MessageId;
        FilterReplyMessage(port, &rep.h, sizeof(rep));
      }
      if (posted < messages) {
        FilterGetMessage(port, reinterpret_cast<PFILTER_MESSAGE_HEADER>(r->buffer), sizeof(r->buffer), &r->ov);
        ++posted;
      }
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CloseHandle(port);
  CloseHandle(iocp);
  sim.Join();
  return received / s;
}

double Send(const std::string& dir, int threads, int perThread) {
  FakeSim sim(dir, "bench-s.sock");
  sim.Serve([&](ServerConn& c) { Serve(c, false); });
  HANDLE port = INVALID_HANDLE_VALUE;
  FltSimConnectCommunicationPort(sim.endpoint().c_str(), reinterpret_cast<LPCWSTR>(u"P"), 0, nullptr, 0, nullptr,
                                 &port);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      uint8_t in[kPayload] = {}, out[kPayload];
      for (int i = 0; i < perThread; ++i) {
        DWORD bytes = 0;
        FilterSendMessage(port, in, sizeof(in), out, sizeof(out), &bytes);
      }
    });
  }
  for (std::thread& t : ts) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CloseHandle(port);
  sim.Join();
  return threads * perThread / s;
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/fltmgr-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 2;
  const std::string dir = tmpl;
  std::printf("gets, no reply, 32 outstanding : %9.0f msg/s\n", Receive(dir, false, 500000, 32));
  std::printf("gets + FilterReplyMessage      : %9.0f msg/s\n", Receive(dir, true, 200000, 32));
  std::printf("FilterSendMessage, 1 thread    : %9.0f msg/s\n", Send(dir, 1, 100000));
  std::printf("FilterSendMessage, 4 threads   : %9.0f msg/s\n", Send(dir, 4, 50000));
  rmdir(tmpl);
  return 0;
}
