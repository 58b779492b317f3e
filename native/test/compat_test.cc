// Standalone tests of the POSIX compat layer (kernel32 subset + simulator-backed fltlib; the management calls
// in manage_test.cc) against an in-process fake simulator. Run through native/test/run.sh (ASan/UBSan and TSan
// builds).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "../compat/win32_compat.h"
#include "../sim/wire.h"
#include "fake_sim.h"
#include "manage_test.h"

using fltmgr::wire::Type;
using test::Bytes;
using test::FakeSim;
using test::Frame;
using test::ServerConn;

namespace {

std::string gDir;
const char16_t kPortName[] = u"\\ScannerPort";
const HRESULT kIoPending = HRESULT_FROM_WIN32(ERROR_IO_PENDING);
const HRESULT kNotFound = HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);

HANDLE Connect(const FakeSim& sim, DWORD options = 0, HRESULT* hrOut = nullptr) {
  HANDLE h = INVALID_HANDLE_VALUE;
  const HRESULT hr = FltSimConnectCommunicationPort(sim.endpoint().c_str(), reinterpret_cast<LPCWSTR>(kPortName),
                                                    options, nullptr, 0, nullptr, &h);
  if (hrOut) *hrOut = hr;
  if (!hrOut) CHECK_EQ(hr, S_OK);
  return hr == S_OK ? h : nullptr;
}

// A message buffer with the OVERLAPPED embedded, the way the core lays out its requests.
struct Request {
  OVERLAPPED ov;
  alignas(8) uint8_t buffer[256];
  PFILTER_MESSAGE_HEADER header() { return reinterpret_cast<PFILTER_MESSAGE_HEADER>(buffer); }
};

Bytes Payload(uint64_t tag, size_t size) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>((tag * 31 + i) & 0xFF);
  return b;
}

// ---------------------------------------------------------------------------------------------------
void TestWire() {
  using namespace fltmgr::wire;
  uint8_t h[12];
  EncodeHeader(h, Type::kGetComplete, 0x01020304, 20);
  FrameHeader fh;
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kNone);
  CHECK_EQ(fh.payloadSize, 20u);
  CHECK(fh.type == Type::kGetComplete);
  CHECK_EQ(fh.id, 0x01020304u);
  CHECK_EQ(GetU32(h), 28u);
  CHECK_EQ(h[4], 1);
  CHECK(DecodeClientHeader(h, &fh) == HeaderError::kUnknownType);
  h[4] = 2;
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kBadVersion);
  h[4] = 1;
  h[7] = 1;
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kBadFlags);
  h[7] = 0;
  PutU32(h, 7);
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kBadLength);
  PutU32(h, 8 + kMaxPayload);
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kNone);
  PutU32(h, 9 + kMaxPayload);
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kBadLength);
  PutU32(h, 0xFFFFFFFFu);
  CHECK(DecodeServerHeader(h, &fh) == HeaderError::kBadLength);

  Endpoint ep;
  std::string why;
  CHECK(ParseEndpoint("/tmp/sim.sock", &ep, &why) && ep.kind == Endpoint::Kind::kUnix && ep.path == "/tmp/sim.sock");
  CHECK(ParseEndpoint("unix:/a/b#c", &ep, &why) && ep.path == "/a/b#c" && ep.secret.empty());
  CHECK(ParseEndpoint("tcp:127.0.0.1:4567#s3cret", &ep, &why) && ep.kind == Endpoint::Kind::kTcp && ep.port == 4567 &&
        ep.address[0] == 127 && ep.address[3] == 1 && ep.secret == "s3cret");
  CHECK(ParseEndpoint("pipe:\\\\.\\pipe\\fltmgr#x#abc", &ep, &why) && ep.kind == Endpoint::Kind::kPipe &&
        ep.path == "\\\\.\\pipe\\fltmgr#x" && ep.secret == "abc");
  for (const char* bad : {"", "unix:", "relative.sock", "tcp:127.0.0.1:80", "tcp:127.0.0.1:80#", "tcp:10.0.0.1:80#s",
                          "tcp:127.0.0.1:0#s", "tcp:127.0.0.1:65536#s", "tcp:127.0.0:80#s", "tcp:127.0.0.1.1:80#s",
                          "tcp:127.0.0.256:80#s", "tcp:localhost:80#s", "tcp:127.0.0.1:+80#s", "tcp:127.0.0.1:80#a b",
                          "pipe:\\\\.\\pipe\\#s", "pipe:foo#s", "http://x"}) {
    if (ParseEndpoint(bad, &ep, &why)) {
      std::fprintf(stderr, "  endpoint accepted: %s\n", bad);
      ++test::Failures();
    }
  }
  CHECK(!ParseEndpoint(nullptr, &ep, &why));

  const char16_t name[] = u"Ab";
  const uint8_t ctx[3] = {9, 8, 7};
  const size_t n = ConnectPayloadSize(2, 3, 2);
  CHECK_EQ(n, 4u + 4 + 2 + 4 + 2 + 3 + 2 + 2);
  Bytes p(n);
  EncodeConnectPayload(p.data(), 1, 77, name, 2, ctx, 3, "zz", 2);
  const Bytes expect = {1, 0, 0, 0, 77, 0, 0, 0, 4, 0, 'A', 0, 'b', 0, 3, 0, 9, 8, 7, 2, 0, 'z', 'z'};
  CHECK(p == expect);
  CHECK_EQ(ConnectPayloadSize(0x8000, 0, 0), 0u);
  CHECK_EQ(ConnectPayloadSize(0, 0x10000, 0), 0u);

  GetComplete gc;
  Bytes g = test::GetCompletePayload(0, 40, 0x1122334455667788ull, {1, 2, 3});
  CHECK(DecodeGetComplete(g.data(), static_cast<uint32_t>(g.size()), &gc) && gc.dataSize == 3 &&
        gc.messageId == 0x1122334455667788ull && gc.replyLength == 40);
  CHECK(!DecodeGetComplete(g.data(), 15, &gc));
  g = test::GetCompletePayload(kStatusCancelled, 0, 0, {1});
  CHECK(!DecodeGetComplete(g.data(), static_cast<uint32_t>(g.size()), &gc));
  // A get completes with STATUS_SUCCESS (a message) or a failure. Any other success-class status is malformed:
  // STATUS_PENDING left the OVERLAPPED "pending" after its completion was queued, and an informational status
  // made a successful 0-byte get with no header written (found by native/test/fuzz/fuzz_client).
  for (const uint32_t status : {0x00000103u, 0x00000001u, 0x40000000u, 0x7FFFFFFFu}) {
    g = test::GetCompletePayload(status, 0, 0, {});
    CHECK(!DecodeGetComplete(g.data(), static_cast<uint32_t>(g.size()), &gc));
  }
  for (const uint32_t status : {kStatusCancelled, kStatusBufferTooSmall, 0x80000005u, 0xC0000001u}) {
    g = test::GetCompletePayload(status, 0, 0, {});
    CHECK(DecodeGetComplete(g.data(), static_cast<uint32_t>(g.size()), &gc) && gc.status == status);
  }
  int32_t v = 0;
  CHECK(!DecodeResult(g.data(), 3, &v) && !DecodeResult(g.data(), 5, &v) && DecodeResult(g.data(), 4, &v));
  SendResult sr;
  Bytes s = test::Cat({test::U32(0x80070032u), {1}});
  CHECK(!DecodeSendResult(s.data(), static_cast<uint32_t>(s.size()), &sr));
  s = test::Cat({test::U32(0), {1, 2}});
  CHECK(DecodeSendResult(s.data(), static_cast<uint32_t>(s.size()), &sr) && sr.dataSize == 2);
  CHECK(!DecodeSendResult(s.data(), 3, &sr));
}

void TestConnectOk() {
  FakeSim sim(gDir, "ok.sock");
  std::u16string name;
  Bytes context;
  std::string secret;
  uint32_t options = 99, pid = 0;
  bool eof = false;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake(0, &name, &context, &secret, &options, &pid));
    eof = c.WaitEof();
  });
  const uint8_t ctx[5] = {1, 2, 3, 4, 5};
  HANDLE h = INVALID_HANDLE_VALUE;
  CHECK_EQ(FltSimConnectCommunicationPort(sim.endpoint().c_str(), reinterpret_cast<LPCWSTR>(kPortName), 0, ctx, 5,
                                          nullptr, &h),
           S_OK);
  CHECK(h != INVALID_HANDLE_VALUE && h != nullptr);
  CHECK(CloseHandle(h));
  sim.Join();
  CHECK(name == kPortName);
  CHECK(context == Bytes(ctx, ctx + 5));
  CHECK(secret.empty());
  CHECK_EQ(options, 0u);
  CHECK_EQ(pid, static_cast<uint32_t>(getpid()));
  CHECK(eof);
}

void TestConnectEnvironment() {
  FakeSim sim(gDir, "env.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    c.WaitEof();
  });
  const std::string path = sim.endpoint().substr(5);  // plain absolute path form
  setenv("FLTMGR_SIMULATOR", path.c_str(), 1);
  HANDLE h = INVALID_HANDLE_VALUE;
  CHECK_EQ(FilterConnectCommunicationPort(reinterpret_cast<LPCWSTR>(kPortName), 0, nullptr, 0, nullptr, &h), S_OK);
  CHECK(CloseHandle(h));
  sim.Join();
  // "" also means the environment.
  unsetenv("FLTMGR_SIMULATOR");
  h = nullptr;
  CHECK_EQ(FilterConnectCommunicationPort(reinterpret_cast<LPCWSTR>(kPortName), 0, nullptr, 0, nullptr, &h), kNotFound);
  CHECK(h == INVALID_HANDLE_VALUE);
  CHECK_EQ(FltSimConnectCommunicationPort("", reinterpret_cast<LPCWSTR>(kPortName), 0, nullptr, 0, nullptr, &h),
           kNotFound);
}

void TestConnectFailures() {
  const LPCWSTR name = reinterpret_cast<LPCWSTR>(kPortName);
  HANDLE h = nullptr;
  // Missing socket file.
  const std::string missing = "unix:" + gDir + "/missing.sock";
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), name, 0, nullptr, 0, nullptr, &h), kNotFound);
  CHECK(h == INVALID_HANDLE_VALUE);
  // Socket file with nobody listening: refused.
  {
    const std::string path = gDir + "/stale.sock";
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un;
    std::memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", path.c_str());
    CHECK_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0);
    close(fd);
    CHECK_EQ(FltSimConnectCommunicationPort(path.c_str(), name, 0, nullptr, 0, nullptr, &h), kNotFound);
    unlink(path.c_str());
  }
  // TCP port bound but not listening: refused.
  {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in in;
    std::memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(in);
    CHECK_EQ(bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
    CHECK_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len), 0);
    const std::string ep = "tcp:127.0.0.1:" + std::to_string(ntohs(in.sin_port)) + "#s";
    CHECK_EQ(FltSimConnectCommunicationPort(ep.c_str(), name, 0, nullptr, 0, nullptr, &h), kNotFound);
    close(fd);
  }
  // Argument errors.
  const uint8_t ctx[2] = {1, 2};
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), name, 0, ctx, 0, nullptr, &h), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), name, 0, nullptr, 2, nullptr, &h), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), name, 2, nullptr, 0, nullptr, &h), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), nullptr, 0, nullptr, 0, nullptr, &h), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort(missing.c_str(), name, 0, nullptr, 0, nullptr, nullptr), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort("bogus", name, 0, nullptr, 0, nullptr, &h), E_INVALIDARG);
  CHECK_EQ(FltSimConnectCommunicationPort("pipe:\\\\.\\pipe\\x#s", name, 0, nullptr, 0, nullptr, &h),
           HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED));
  const std::string longPath = "unix:/" + std::string(200, 'x');
  CHECK_EQ(FltSimConnectCommunicationPort(longPath.c_str(), name, 0, nullptr, 0, nullptr, &h), E_INVALIDARG);

  // The simulator refuses the connection: its HRESULT surfaces.
  for (const uint32_t refusal : {0x80070005u, 0x800704D6u, 0x80070002u}) {
    FakeSim sim(gDir, "refuse.sock");
    sim.Serve([&](ServerConn& c) {
      CHECK(c.Handshake(static_cast<int32_t>(refusal)));
      c.WaitEof();
    });
    HRESULT hr = S_OK;
    h = Connect(sim, 0, &hr);
    CHECK_EQ(hr, static_cast<HRESULT>(refusal));
    sim.Join();
  }
  // Closed before answering; a malformed answer; no answer within the time-out.
  {
    FakeSim sim(gDir, "eof.sock");
    sim.Serve([&](ServerConn& c) {
      Frame f;
      CHECK(c.Read(&f));
    });
    HRESULT hr = S_OK;
    Connect(sim, 0, &hr);
    CHECK_EQ(hr, kNotFound);
  }
  {
    FakeSim sim(gDir, "bad.sock");
    sim.Serve([&](ServerConn& c) {
      Frame f;
      CHECK(c.Read(&f));
      c.Write(Type::kConnectResult, 0, {0, 0});  // 2-byte result
      c.WaitEof();
    });
    HRESULT hr = S_OK;
    Connect(sim, 0, &hr);
    CHECK_EQ(hr, HRESULT_FROM_WIN32(13u));
  }
  {
    FakeSim sim(gDir, "slow.sock");
    sim.Serve([&](ServerConn& c) { c.WaitEof(); });
    setenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", "200", 1);
    HRESULT hr = S_OK;
    const auto t0 = std::chrono::steady_clock::now();
    Connect(sim, 0, &hr);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    unsetenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS");
    CHECK_EQ(hr, HRESULT_FROM_WIN32(1460u));
    CHECK(ms >= 150 && ms < 20000);  // the 200 ms, not the 30 s default (the upper bound allows a busy machine)
  }
}

void TestTcp() {
  FakeSim sim("t0p-s3cret");
  std::string secret;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake(0, nullptr, nullptr, &secret));
    uint32_t cap = 0;
    const uint32_t id = c.ReadGet(&cap);
    CHECK_EQ(cap, 256u);
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 5, {7, 7}));
    c.WaitEof();
  });
  HANDLE h = Connect(sim);
  Request r;
  CHECK_EQ(FilterGetMessage(h, r.header(), sizeof(r.buffer), nullptr), S_OK);
  CHECK_EQ(r.header()->MessageId, 5u);
  CHECK_EQ(r.buffer[16], 7);
  CHECK(CloseHandle(h));
  sim.Join();
  CHECK(secret == "t0p-s3cret");
}

// Overlapped gets complete through the IOCP with header, data, key and byte count.
void TestOverlappedGets() {
  FakeSim sim(gDir, "gets.sock");
  constexpr int kGets = 8;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    std::vector<uint32_t> ids;
    for (int i = 0; i < kGets; ++i) {
      uint32_t cap = 0;
      ids.push_back(c.ReadGet(&cap));
      CHECK_EQ(cap, 256u);
    }
    // Answer in reverse order: completions are matched by id, not by position.
    for (int i = kGets - 1; i >= 0; --i) {
      c.Write(Type::kGetComplete, ids[i], test::GetCompletePayload(0, 16 + 8, 1000 + i, Payload(i, 10 + i)));
    }
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  CHECK(iocp != nullptr);
  CHECK(CreateIoCompletionPort(port, iocp, 42, 0) == iocp);
  std::vector<Request> reqs(kGets);
  for (Request& r : reqs) {
    std::memset(&r, 0xAB, sizeof(r));
    r.ov.hEvent = nullptr;
    CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  }
  std::set<int> seen;
  while (seen.size() < kGets) {
    OVERLAPPED_ENTRY entries[4];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(iocp, entries, 4, &n, test::kHangGuardMs, FALSE)) {
      CHECK(false);
      break;
    }
    for (ULONG k = 0; k < n; ++k) {
      CHECK_EQ(entries[k].lpCompletionKey, 42u);
      CHECK_EQ(entries[k].Internal, 0u);
      Request* r = reinterpret_cast<Request*>(entries[k].lpOverlapped);  // OVERLAPPED is first
      const int i = static_cast<int>(r->header()->MessageId - 1000);
      CHECK(i >= 0 && i < kGets);
      seen.insert(i);
      CHECK_EQ(r->header()->ReplyLength, 24u);
      CHECK_EQ(entries[k].dwNumberOfBytesTransferred, 16u + 10 + i);
      CHECK(std::memcmp(r->buffer + 16, Payload(i, 10 + i).data(), 10 + i) == 0);
      CHECK_EQ(r->buffer[16 + 10 + i], 0xAB);  // nothing written past the data
      DWORD bytes = 0;
      CHECK(GetOverlappedResult(port, &r->ov, &bytes, FALSE));
      CHECK_EQ(bytes, 16u + 10 + i);
    }
  }
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
}

// Several completions come back from one GetQueuedCompletionStatusEx call.
void TestBatching() {
  FakeSim sim(gDir, "batch.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    Bytes frames;
    for (int i = 0; i < 5; ++i) {
      const uint32_t id = c.ReadGet();
      Bytes payload = test::GetCompletePayload(0, 0, i, {static_cast<uint8_t>(i)});
      Bytes f(12);
      fltmgr::wire::EncodeHeader(f.data(), Type::kGetComplete, id, static_cast<uint32_t>(payload.size()));
      frames.insert(frames.end(), f.begin(), f.end());
      frames.insert(frames.end(), payload.begin(), payload.end());
    }
    c.WriteRaw(frames);  // all five in one write
    Frame f;
    CHECK(c.Read(&f) && f.type == Type::kSend);
    // The reader handles frames in order: once the send returns, all five completions are queued.
    c.Write(Type::kSendResult, f.id, test::U32(0));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 7, 0);  // create + associate in one call
  CHECK(iocp != nullptr);
  Request reqs[5];
  for (Request& r : reqs) CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  DWORD bytes = 99;
  CHECK_EQ(FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes), S_OK);
  CHECK_EQ(bytes, 0u);
  OVERLAPPED_ENTRY entries[16];
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, entries, 16, &n, 0, FALSE));
  CHECK_EQ(n, 5u);
  for (ULONG k = 0; k < n; ++k) CHECK_EQ(entries[k].lpCompletionKey, 7u);
  CHECK(!GetQueuedCompletionStatusEx(iocp, entries, 16, &n, 0, FALSE));
  CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
}

OVERLAPPED_ENTRY DequeueNow(HANDLE iocp) {
  OVERLAPPED_ENTRY e;
  std::memset(&e, 0, sizeof(e));
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, &e, 1, &n, 0, FALSE));
  return e;
}

void SyncPoint(HANDLE port) {
  DWORD bytes = 0;
  CHECK_EQ(FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes), S_OK);
}

// CancelIoEx completes at once, without the simulator's help; a message that crossed the CANCEL is kept
// for the next get (a too-small buffer gets STATUS_BUFFER_TOO_SMALL and the message stays).
void TestCancel() {
  FakeSim sim(gDir, "cancel.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    const uint32_t a = c.ReadGet();
    const uint32_t b1 = c.ReadGet();
    const uint32_t b2 = c.ReadGet();
    Frame f;
    CHECK(c.Read(&f) && f.type == Type::kCancel && f.id == a && f.payload.empty());
    c.Write(Type::kGetComplete, a, test::GetCompletePayload(fltmgr::wire::kStatusCancelled, 0, 0, {}));
    // Messages that were already on their way when the CANCELs arrived (which are then ignored). Both CANCELs
    // are read first: a message that crossed B1's CANCEL while B2 is still pending goes to B2 (the next get),
    // and then CancelIoEx(B2) would find nothing, depending on thread timing.
    CHECK(c.Read(&f) && f.type == Type::kCancel && f.id == b1);
    CHECK(c.Read(&f) && f.type == Type::kCancel && f.id == b2);
    c.Write(Type::kGetComplete, b1, test::GetCompletePayload(0, 20, 77, {1, 2, 3}));
    c.Write(Type::kGetComplete, b2, test::GetCompletePayload(0, 0, 78, {4}));
    CHECK(c.Read(&f) && f.type == Type::kSend);
    c.Write(Type::kSendResult, f.id, test::U32(0));
    // The orphans went to new gets locally: the next GET is the one for E.
    const uint32_t e = c.ReadGet();
    c.Write(Type::kGetComplete, e, test::GetCompletePayload(0, 0, 88, {}));
    CHECK(c.Read(&f) && f.type == Type::kSend);
    c.Write(Type::kSendResult, f.id, test::U32(0));
    // CancelIoEx(NULL) with three pending gets: three CANCELs, answered.
    std::vector<uint32_t> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(c.ReadGet());
    for (int i = 0; i < 3; ++i) {
      CHECK(c.Read(&f) && f.type == Type::kCancel);
      CHECK(std::find(ids.begin(), ids.end(), f.id) != ids.end());
      c.Write(Type::kGetComplete, f.id, test::GetCompletePayload(fltmgr::wire::kStatusCancelled, 0, 0, {}));
    }
    CHECK(c.Read(&f) && f.type == Type::kSend);
    c.Write(Type::kSendResult, f.id, test::U32(0));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  Request a, b1, b2;
  CHECK(!CancelIoEx(port, &a.ov));
  CHECK_EQ(GetLastError(), ERROR_NOT_FOUND);
  CHECK_EQ(FilterGetMessage(port, a.header(), sizeof(a.buffer), &a.ov), kIoPending);
  CHECK_EQ(FilterGetMessage(port, b1.header(), sizeof(b1.buffer), &b1.ov), kIoPending);
  CHECK_EQ(FilterGetMessage(port, b2.header(), sizeof(b2.buffer), &b2.ov), kIoPending);
  CHECK(CancelIoEx(port, &a.ov));
  OVERLAPPED_ENTRY e = DequeueNow(iocp);  // already queued when CancelIoEx returns
  CHECK(e.lpOverlapped == &a.ov);
  CHECK_EQ(e.Internal, static_cast<ULONG_PTR>(0xC0000120u));
  CHECK_EQ(e.dwNumberOfBytesTransferred, 0u);
  DWORD bytes = 5;
  CHECK(!GetOverlappedResult(port, &a.ov, &bytes, FALSE));
  CHECK_EQ(GetLastError(), ERROR_OPERATION_ABORTED);
  CHECK_EQ(bytes, 0u);
  CHECK(!CancelIoEx(port, &a.ov));  // completed: nothing to cancel
  CHECK_EQ(GetLastError(), ERROR_NOT_FOUND);
  CHECK(CancelIoEx(port, &b1.ov));
  CHECK(CancelIoEx(port, &b2.ov));
  e = DequeueNow(iocp);
  CHECK(e.lpOverlapped == &b1.ov && e.Internal == 0xC0000120u);
  e = DequeueNow(iocp);
  CHECK(e.lpOverlapped == &b2.ov && e.Internal == 0xC0000120u);
  SyncPoint(port);  // the simulator's answers to the three CANCELs have been read
  ULONG n = 0;
  CHECK(!GetQueuedCompletionStatusEx(iocp, &e, 1, &n, 0, FALSE));  // no second completion for A, B1, B2
  CHECK_EQ(GetLastError(), WAIT_TIMEOUT);

  Request d, c1, c2;
  CHECK_EQ(FilterGetMessage(port, d.header(), 16, &d.ov), kIoPending);
  e = DequeueNow(iocp);
  CHECK(e.lpOverlapped == &d.ov && e.Internal == 0xC0000023u);
  CHECK_EQ(FilterGetMessage(port, c1.header(), sizeof(c1.buffer), &c1.ov), kIoPending);
  e = DequeueNow(iocp);
  CHECK(e.lpOverlapped == &c1.ov && e.Internal == 0);
  CHECK_EQ(e.dwNumberOfBytesTransferred, 19u);
  CHECK_EQ(c1.header()->MessageId, 77u);
  CHECK_EQ(c1.header()->ReplyLength, 20u);
  CHECK(c1.buffer[16] == 1 && c1.buffer[18] == 3);
  CHECK_EQ(FilterGetMessage(port, c2.header(), sizeof(c2.buffer), nullptr), S_OK);  // synchronous get
  CHECK_EQ(c2.header()->MessageId, 78u);
  CHECK_EQ(c2.buffer[16], 4);

  // The message wins: the get completed before CancelIoEx, which then finds nothing.
  Request eReq;
  CHECK_EQ(FilterGetMessage(port, eReq.header(), sizeof(eReq.buffer), &eReq.ov), kIoPending);
  SyncPoint(port);
  e = DequeueNow(iocp);
  CHECK(e.lpOverlapped == &eReq.ov && e.Internal == 0 && eReq.header()->MessageId == 88u);
  CHECK(!CancelIoEx(port, &eReq.ov));
  CHECK_EQ(GetLastError(), ERROR_NOT_FOUND);

  Request more[3];
  for (Request& r : more) CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  CHECK(CancelIoEx(port, nullptr));
  OVERLAPPED_ENTRY batch[8];
  CHECK(GetQueuedCompletionStatusEx(iocp, batch, 8, &n, 0, FALSE));
  CHECK_EQ(n, 3u);
  for (ULONG k = 0; k < n; ++k) CHECK_EQ(batch[k].Internal, static_cast<ULONG_PTR>(0xC0000120u));
  CHECK(!CancelIoEx(port, nullptr));
  CHECK_EQ(GetLastError(), ERROR_NOT_FOUND);
  SyncPoint(port);
  CHECK(!GetQueuedCompletionStatusEx(iocp, &e, 1, &n, 20, FALSE));
  CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
}

// Cancellation does not wait for the simulator (which may be stuck, or run on the thread that waits).
void TestCancelWithSilentSimulator() {
  FakeSim sim(gDir, "silent.sock");
  std::promise<void> done;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    for (int i = 0; i < 4; ++i) c.ReadGet();
    done.get_future().wait();  // reads nothing more, answers nothing
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  Request reqs[4];
  for (Request& r : reqs) CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  CHECK(CancelIoEx(port, nullptr));
  OVERLAPPED_ENTRY batch[8];
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, batch, 8, &n, 0, FALSE));
  CHECK_EQ(n, 4u);
  CHECK(CloseHandle(port));
  CHECK(!GetQueuedCompletionStatusEx(iocp, batch, 8, &n, 0, FALSE));  // no further completions on close
  done.set_value();
  CHECK(CloseHandle(iocp));
  sim.Join();
}

// FltSimAbortPort: callers waiting on a simulator that never answers (a reply, a send) or that stopped reading
// (a writer blocked on a full socket) return ERROR_OPERATION_ABORTED; pending gets complete; the handle stays
// valid until CloseHandle.
void TestAbortWithSilentSimulator() {
  FakeSim sim(gDir, "abort.sock");
  std::promise<void> replyRead, sendStarted, done;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    CHECK(c.ReadGet() != 0);  // never completed
    Frame f;
    CHECK(c.Read(&f) && f.type == Type::kReply);  // never answered
    replyRead.set_value();
    // Take the first 64 KiB of the SEND, then read nothing more: the sender is now blocked in its write.
    size_t taken = 0;
    uint8_t chunk[4096];
    while (taken < 65536) {
      const ssize_t r = recv(c.fd(), chunk, sizeof(chunk), 0);
      if (r <= 0) break;
      taken += static_cast<size_t>(r);
    }
    sendStarted.set_value();
    done.get_future().wait();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  Request get;
  CHECK_EQ(FilterGetMessage(port, get.header(), sizeof(get.buffer), &get.ov), kIoPending);
  const HRESULT aborted = HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED);
  std::thread replier([&] {
    FILTER_REPLY_HEADER reply{};
    CHECK_EQ(FilterReplyMessage(port, &reply, sizeof(reply)), aborted);
  });
  replyRead.get_future().wait();
  std::thread sender([&] {
    std::vector<uint8_t> big(8u << 20, 7);
    DWORD bytes = 0;
    CHECK_EQ(FilterSendMessage(port, big.data(), static_cast<DWORD>(big.size()), nullptr, 0, &bytes), aborted);
  });
  sendStarted.get_future().wait();
  CHECK_EQ(FltSimAbortPort(port), S_OK);
  replier.join();
  sender.join();
  OVERLAPPED_ENTRY e;
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, &e, 1, &n, test::kHangGuardMs, FALSE));
  CHECK_EQ(e.Internal, static_cast<ULONG_PTR>(0xC0000120u));  // STATUS_CANCELLED
  DWORD bytes = 0;
  CHECK_EQ(FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes), E_HANDLE);
  CHECK_EQ(FltSimAbortPort(port), S_OK);  // idempotent
  CHECK(CloseHandle(port));
  done.set_value();
  CHECK(CloseHandle(iocp));
  sim.Join();
}

void TestReplyAndSend() {
  FakeSim sim(gDir, "reply.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    Frame f;
    CHECK(c.Read(&f) && f.type == Type::kReply);
    CHECK_EQ(f.payload.size(), 16u + 3);
    CHECK_EQ(fltmgr::wire::GetU32(f.payload.data()), 0xC0000022u);
    CHECK_EQ(fltmgr::wire::GetU32(f.payload.data() + 4), 0u);
    CHECK_EQ(fltmgr::wire::GetU64(f.payload.data() + 8), 0x123456789ull);
    CHECK(Bytes(f.payload.begin() + 16, f.payload.end()) == Bytes({4, 5, 6}));
    c.Write(Type::kReplyResult, f.id, test::U32(0));
    CHECK(c.Read(&f) && f.type == Type::kReply && f.payload.size() == 16);
    c.Write(Type::kReplyResult, f.id, test::U32(0x801F0020u));
    // SEND with output.
    CHECK(c.Read(&f) && f.type == Type::kSend);
    CHECK_EQ(fltmgr::wire::GetU32(f.payload.data()), 64u);
    CHECK(Bytes(f.payload.begin() + 4, f.payload.end()) == Bytes({'h', 'i'}));
    c.Write(Type::kSendResult, f.id, test::Cat({test::U32(0), {'o', 'k', '!'}}));
    // SEND failing.
    CHECK(c.Read(&f) && f.type == Type::kSend);
    c.Write(Type::kSendResult, f.id, test::U32(0x80070032u));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  struct {
    FILTER_REPLY_HEADER header;
    uint8_t data[3];
  } reply;
  reply.header.Status = static_cast<NTSTATUS>(0xC0000022);
  reply.header.MessageId = 0x123456789ull;
  reply.data[0] = 4;
  reply.data[1] = 5;
  reply.data[2] = 6;
  CHECK_EQ(FilterReplyMessage(port, &reply.header, sizeof(FILTER_REPLY_HEADER) + 3), S_OK);
  CHECK_EQ(FilterReplyMessage(port, &reply.header, sizeof(FILTER_REPLY_HEADER)), ERROR_FLT_NO_WAITER_FOR_REPLY_HR);
  CHECK_EQ(FilterReplyMessage(port, &reply.header, 15), E_INVALIDARG);
  CHECK_EQ(FilterReplyMessage(port, nullptr, 16), E_INVALIDARG);
  char in[2] = {'h', 'i'};
  uint8_t out[64];
  DWORD bytes = 0;
  CHECK_EQ(FilterSendMessage(port, in, 2, out, sizeof(out), &bytes), S_OK);
  CHECK_EQ(bytes, 3u);
  CHECK(std::memcmp(out, "ok!", 3) == 0);
  bytes = 9;
  CHECK_EQ(FilterSendMessage(port, in, 2, out, sizeof(out), &bytes), static_cast<HRESULT>(0x80070032u));
  CHECK_EQ(bytes, 0u);
  CHECK_EQ(FilterSendMessage(port, in, 2, out, sizeof(out), nullptr), E_INVALIDARG);
  CHECK_EQ(FilterSendMessage(port, nullptr, 2, out, sizeof(out), &bytes), E_INVALIDARG);
  CHECK_EQ(FilterSendMessage(port, in, 2, nullptr, 4, &bytes), E_INVALIDARG);
  Request r;
  CHECK_EQ(FilterGetMessage(port, r.header(), 15, &r.ov), E_INVALIDARG);
  CHECK_EQ(FilterGetMessage(port, nullptr, 64, &r.ov), E_INVALIDARG);
  CHECK(CloseHandle(port));
  sim.Join();
}

// Many threads send on one handle; the server answers out of order when it can.
void TestConcurrentSends() {
  FakeSim sim(gDir, "sends.sock");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    std::vector<Frame> held;
    Frame f;
    for (;;) {
      if (!c.Read(&f)) break;
      if (f.type != Type::kSend) {
        CHECK(false);
        break;
      }
      held.push_back(f);
      if (held.size() < 3 && c.Readable()) continue;
      for (auto it = held.rbegin(); it != held.rend(); ++it) {
        Bytes out(it->payload.begin() + 4, it->payload.end());
        std::reverse(out.begin(), out.end());
        c.Write(Type::kSendResult, it->id, test::Cat({test::U32(0), out}));
      }
      held.clear();
    }
  });
  HANDLE port = Connect(sim);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        char in[32];
        const int len = std::snprintf(in, sizeof(in), "t%d-i%d", t, i);
        char out[32];
        DWORD bytes = 0;
        if (FilterSendMessage(port, in, static_cast<DWORD>(len), out, sizeof(out), &bytes) != S_OK) continue;
        std::string expect(in, static_cast<size_t>(len));
        std::reverse(expect.begin(), expect.end());
        if (bytes == static_cast<DWORD>(len) && std::string(out, bytes) == expect) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK_EQ(ok.load(), kThreads * kPerThread);
  CHECK(CloseHandle(port));
  sim.Join();
}

// DISCONNECT (or EOF) ends the connection: gets complete with STATUS_PORT_DISCONNECTED, waiting calls get
// E_HANDLE, later calls fail at once.
void RunDisconnect(bool sendDisconnectFrame) {
  FakeSim sim(gDir, "disc.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    int gets = 0;
    bool sendSeen = false;
    Frame f;
    while ((gets < 3 || !sendSeen) && c.Read(&f)) {
      if (f.type == Type::kGet) ++gets;
      if (f.type == Type::kSend) sendSeen = true;
    }
    if (sendDisconnectFrame) c.Write(Type::kDisconnect, 0, test::U32(0xC0000037u));
    c.Close();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  CHECK(CreateIoCompletionPort(port, iocp, 3, 0) == iocp);
  Request reqs[3];
  for (Request& r : reqs) CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  HRESULT sendHr = S_OK;
  std::thread sender([&] {
    DWORD bytes = 0;
    sendHr = FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes);
  });
  for (int i = 0; i < 3; ++i) {
    OVERLAPPED_ENTRY e;
    ULONG n = 0;
    CHECK(GetQueuedCompletionStatusEx(iocp, &e, 1, &n, test::kHangGuardMs, FALSE));
    CHECK_EQ(e.Internal, static_cast<ULONG_PTR>(0xC0000037u));
    CHECK_EQ(e.lpCompletionKey, 3u);
    DWORD bytes = 1;
    CHECK(!GetOverlappedResult(port, e.lpOverlapped, &bytes, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  }
  sender.join();
  CHECK_EQ(sendHr, E_HANDLE);
  Request late;
  CHECK_EQ(FilterGetMessage(port, late.header(), sizeof(late.buffer), &late.ov), E_HANDLE);
  CHECK_EQ(FilterGetMessage(port, late.header(), sizeof(late.buffer), nullptr), E_HANDLE);
  DWORD bytes = 0;
  CHECK_EQ(FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes), E_HANDLE);
  FILTER_REPLY_HEADER rh = {0, 1};
  CHECK_EQ(FilterReplyMessage(port, &rh, sizeof(rh)), E_HANDLE);
  CHECK(!CancelIoEx(port, nullptr));
  CHECK_EQ(GetLastError(), ERROR_NOT_FOUND);
  OVERLAPPED_ENTRY e;
  ULONG n = 0;
  CHECK(!GetQueuedCompletionStatusEx(iocp, &e, 1, &n, 50, FALSE));  // the late get posted nothing
  CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
}
void TestDisconnect() { RunDisconnect(true); }
void TestEof() { RunDisconnect(false); }

// CloseHandle with gets pending: they complete with STATUS_CANCELLED through the IOCP; a blocked send
// returns E_HANDLE; a blocked synchronous get returns ERROR_OPERATION_ABORTED.
void TestCloseWithPending() {
  FakeSim sim(gDir, "close.sock");
  std::promise<void> allIn;
  bool eof = false;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    int gets = 0, sends = 0;
    Frame f;
    while ((gets < 5 || sends < 1) && c.Read(&f)) {
      if (f.type == Type::kGet) ++gets;
      if (f.type == Type::kSend) ++sends;
    }
    allIn.set_value();
    eof = c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 9, 0);
  Request reqs[4];
  for (Request& r : reqs) CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  HRESULT sendHr = S_OK, syncHr = S_OK;
  std::thread sender([&] {
    DWORD bytes = 0;
    uint8_t out[8];
    sendHr = FilterSendMessage(port, out, 8, out, 8, &bytes);
  });
  std::thread syncGetter([&] {
    Request r;
    syncHr = FilterGetMessage(port, r.header(), sizeof(r.buffer), nullptr);
  });
  allIn.get_future().wait();  // both threads are inside their calls
  CHECK(CloseHandle(port));
  sender.join();
  syncGetter.join();
  CHECK_EQ(sendHr, E_HANDLE);
  CHECK_EQ(syncHr, HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED));
  OVERLAPPED_ENTRY entries[8];
  ULONG n = 0;
  // CloseHandle returns after every completion is queued.
  CHECK(GetQueuedCompletionStatusEx(iocp, entries, 8, &n, 0, FALSE));
  CHECK_EQ(n, 4u);
  for (ULONG k = 0; k < n; ++k) {
    CHECK_EQ(entries[k].Internal, static_cast<ULONG_PTR>(0xC0000120u));
    CHECK_EQ(entries[k].lpCompletionKey, 9u);
  }
  CHECK(CloseHandle(iocp));
  sim.Join();
  CHECK(eof);
}

void TestIocpBasics() {
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  CHECK(iocp != nullptr);
  OVERLAPPED sentinel;
  CHECK(PostQueuedCompletionStatus(iocp, 7, 99, &sentinel));
  CHECK(PostQueuedCompletionStatus(iocp, 0, 0, nullptr));
  CHECK(PostQueuedCompletionStatus(iocp, 1, 2, nullptr));
  OVERLAPPED_ENTRY e[4];
  std::memset(e, 0xFF, sizeof(e));
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, e, 2, &n, INFINITE, FALSE));
  CHECK_EQ(n, 2u);
  CHECK(e[0].lpOverlapped == &sentinel);
  CHECK_EQ(e[0].lpCompletionKey, 99u);
  CHECK_EQ(e[0].dwNumberOfBytesTransferred, 7u);
  CHECK_EQ(e[0].Internal, 0u);
  CHECK(e[1].lpOverlapped == nullptr);
  CHECK(GetQueuedCompletionStatusEx(iocp, e, 4, &n, 0, FALSE));
  CHECK_EQ(n, 1u);
  CHECK_EQ(e[0].lpCompletionKey, 2u);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(!GetQueuedCompletionStatusEx(iocp, e, 4, &n, 30, FALSE));
  CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(25));
  CHECK(!GetQueuedCompletionStatusEx(iocp, e, 0, &n, 0, FALSE));
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  CHECK(!GetQueuedCompletionStatusEx(iocp, nullptr, 1, &n, 0, FALSE));
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);

  // Posts from other threads wake a waiter (the sentinel pattern).
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    PostQueuedCompletionStatus(iocp, 0, 0xDEAD, nullptr);
  });
  CHECK(GetQueuedCompletionStatusEx(iocp, e, 4, &n, test::kHangGuardMs, FALSE));
  CHECK_EQ(e[0].lpCompletionKey, 0xDEADu);
  poster.join();

  // Several waiters, many posts: every entry is dequeued once.
  std::atomic<int> got{0};
  std::atomic<int> exited{0};
  std::vector<std::thread> waiters;
  for (int w = 0; w < 3; ++w) {
    waiters.emplace_back([&] {
      for (;;) {
        OVERLAPPED_ENTRY batch[5];
        ULONG m = 0;
        if (!GetQueuedCompletionStatusEx(iocp, batch, 5, &m, INFINITE, FALSE)) return;
        for (ULONG k = 0; k < m; ++k) {
          if (batch[k].lpCompletionKey == 0) {  // stop sentinel (a batch may hold several)
            ++exited;
            return;
          }
          ++got;
        }
      }
    });
  }
  for (int i = 0; i < 3000; ++i) PostQueuedCompletionStatus(iocp, 0, 1, nullptr);
  while (got.load() < 3000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  while (exited.load() < 3) {
    PostQueuedCompletionStatus(iocp, 0, 0, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (std::thread& t : waiters) t.join();
  CHECK_EQ(got.load(), 3000);
  while (GetQueuedCompletionStatusEx(iocp, e, 4, &n, 0, FALSE)) {
  }

  // CloseHandle wakes a waiter with ERROR_ABANDONED_WAIT_0. Nothing shows when the waiter is inside the wait:
  // one that only gets there after the close sees ERROR_INVALID_HANDLE instead. Such a round proves nothing and
  // is repeated with a fresh port and a longer head start, so a busy machine cannot fail this check, while a
  // close that does not wake its waiter fails every round (it hangs: alarm()).
  DWORD err = 0;
  BOOL ok = TRUE;
  HANDLE closing = iocp;
  for (int round = 0, headStartMs = 50;; ++round, headStartMs *= 2) {
    if (round > 0) closing = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
    CHECK(closing != nullptr);
    std::thread waiter([&] {
      OVERLAPPED_ENTRY x;
      ULONG m = 0;
      ok = GetQueuedCompletionStatusEx(closing, &x, 1, &m, INFINITE, FALSE);
      err = GetLastError();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(headStartMs));
    CHECK(CloseHandle(closing));
    waiter.join();
    if (ok || err != ERROR_INVALID_HANDLE || round == 8) break;
  }
  CHECK(!ok);
  CHECK_EQ(err, ERROR_ABANDONED_WAIT_0);
}

// A port's completions for an IOCP closed before them are dropped; the OVERLAPPED still gets the result.
void TestIocpClosedBeforeCompletion() {
  FakeSim sim(gDir, "iocpclosed.sock");
  std::promise<void> closed;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    const uint32_t id = c.ReadGet();
    closed.get_future().wait();
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 3, {1, 2}));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  Request r;
  CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  DWORD bytes = 0;
  CHECK(!GetOverlappedResult(port, &r.ov, &bytes, FALSE));
  CHECK_EQ(GetLastError(), ERROR_IO_INCOMPLETE);
  CHECK(CloseHandle(iocp));
  closed.set_value();
  for (int i = 0; i < test::kHangGuardMs && !GetOverlappedResult(port, &r.ov, &bytes, FALSE); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_EQ(bytes, 18u);
  CHECK_EQ(r.header()->MessageId, 3u);
  CHECK(CloseHandle(port));
  sim.Join();
}

// A port never associated with an IOCP: the OVERLAPPED alone carries the result.
void TestNoIocp() {
  FakeSim sim(gDir, "noiocp.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    const uint32_t id = c.ReadGet();
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 4, {}));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  Request r;
  CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
  DWORD bytes = 0;
  for (int i = 0; i < test::kHangGuardMs && !GetOverlappedResult(port, &r.ov, &bytes, FALSE); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_EQ(bytes, 16u);
  CHECK(CloseHandle(port));
  sim.Join();
}

void TestSyncHandleAndSyncGet() {
  FakeSim sim(gDir, "sync.sock");
  uint32_t options = 0;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake(0, nullptr, nullptr, nullptr, &options));
    uint32_t cap = 0;
    uint32_t id = c.ReadGet(&cap);
    CHECK_EQ(cap, 40u);
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(fltmgr::wire::kStatusBufferTooSmall, 100, 0, {}));
    id = c.ReadGet(&cap);
    CHECK_EQ(cap, 256u);
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 48, 11, Payload(1, 84)));
    c.WaitEof();
  });
  HRESULT hr = S_OK;
  HANDLE port = Connect(sim, FLT_PORT_FLAG_SYNC_HANDLE, &hr);
  CHECK_EQ(hr, S_OK);
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  CHECK(CreateIoCompletionPort(port, iocp, 1, 0) == nullptr);
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  Request r;
  CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), E_INVALIDARG);
  CHECK_EQ(FilterGetMessage(port, r.header(), 40, nullptr), HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER));
  CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), nullptr), S_OK);
  CHECK_EQ(r.header()->MessageId, 11u);
  CHECK_EQ(r.header()->ReplyLength, 48u);
  CHECK(std::memcmp(r.buffer + 16, Payload(1, 84).data(), 84) == 0);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
  CHECK_EQ(options, FLT_PORT_FLAG_SYNC_HANDLE);
}

void TestBufferTooSmallOverlapped() {
  FakeSim sim(gDir, "small.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    const uint32_t id = c.ReadGet();
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(fltmgr::wire::kStatusBufferTooSmall, 4096, 0, {}));
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  Request r;
  std::memset(r.buffer, 0xCD, sizeof(r.buffer));
  CHECK_EQ(FilterGetMessage(port, r.header(), 16, &r.ov), kIoPending);
  OVERLAPPED_ENTRY e;
  ULONG n = 0;
  CHECK(GetQueuedCompletionStatusEx(iocp, &e, 1, &n, test::kHangGuardMs, FALSE));
  CHECK_EQ(e.Internal, static_cast<ULONG_PTR>(0xC0000023u));
  CHECK_EQ(e.dwNumberOfBytesTransferred, 0u);
  CHECK_EQ(r.buffer[0], 0xCD);  // buffer untouched
  DWORD bytes = 0;
  CHECK(!GetOverlappedResult(port, &r.ov, &bytes, FALSE));
  CHECK_EQ(GetLastError(), ERROR_INSUFFICIENT_BUFFER);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();
}

void TestLargeMessages() {
  FakeSim sim(gDir, "large.sock");
  constexpr size_t kBig = 4 * 1024 * 1024 + 3;
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    uint32_t cap = 0;
    uint32_t id = c.ReadGet(&cap);
    CHECK_EQ(cap, static_cast<uint32_t>(16 + kBig));
    c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 1, Payload(9, kBig)));
    Frame f;
    CHECK(c.Read(&f) && f.type == Type::kSend && f.payload.size() == 4 + kBig);
    CHECK(Bytes(f.payload.begin() + 4, f.payload.end()) == Payload(5, kBig));
    c.Write(Type::kSendResult, f.id, test::Cat({test::U32(0), Payload(6, kBig)}));
    // Small messages after the big ones (the read buffer shrinks back).
    for (int i = 0; i < 100; ++i) {
      id = c.ReadGet();
      c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 100 + i, Payload(i, 100)));
    }
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[16 + kBig]);
  auto* header = reinterpret_cast<PFILTER_MESSAGE_HEADER>(buf.get());
  CHECK_EQ(FilterGetMessage(port, header, static_cast<DWORD>(16 + kBig), nullptr), S_OK);
  CHECK(std::memcmp(buf.get() + 16, Payload(9, kBig).data(), kBig) == 0);
  Bytes in = Payload(5, kBig);
  Bytes out(kBig + 10);
  DWORD bytes = 0;
  CHECK_EQ(
      FilterSendMessage(port, in.data(), static_cast<DWORD>(kBig), out.data(), static_cast<DWORD>(out.size()), &bytes),
      S_OK);
  CHECK_EQ(bytes, static_cast<DWORD>(kBig));
  CHECK(std::memcmp(out.data(), Payload(6, kBig).data(), kBig) == 0);
  for (int i = 0; i < 100; ++i) {
    Request r;
    CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), nullptr), S_OK);
    CHECK_EQ(r.header()->MessageId, static_cast<uint64_t>(100 + i));
  }
  CHECK(CloseHandle(port));
  sim.Join();
}

void TestBadHandles() {
  HANDLE iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  Request r;
  const HANDLE misaligned = reinterpret_cast<HANDLE>(static_cast<uintptr_t>(3));
  for (HANDLE bad : {static_cast<HANDLE>(nullptr), INVALID_HANDLE_VALUE, iocp, misaligned}) {
    CHECK_EQ(FilterGetMessage(bad, r.header(), sizeof(r.buffer), &r.ov), E_HANDLE);
    FILTER_REPLY_HEADER rh = {0, 0};
    CHECK_EQ(FilterReplyMessage(bad, &rh, sizeof(rh)), E_HANDLE);
    DWORD bytes = 0;
    CHECK_EQ(FilterSendMessage(bad, nullptr, 0, nullptr, 0, &bytes), E_HANDLE);
    CHECK(!CancelIoEx(bad, nullptr));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(CreateIoCompletionPort(bad, iocp, 0, 0) == nullptr);
    // INVALID_HANDLE_VALUE means "create": with an existing port that is a parameter error.
    CHECK_EQ(GetLastError(), bad == INVALID_HANDLE_VALUE ? ERROR_INVALID_PARAMETER : ERROR_INVALID_HANDLE);
  }
  OVERLAPPED_ENTRY e;
  ULONG n = 0;
  for (HANDLE bad : {static_cast<HANDLE>(nullptr), INVALID_HANDLE_VALUE, misaligned}) {
    CHECK(!GetQueuedCompletionStatusEx(bad, &e, 1, &n, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(!PostQueuedCompletionStatus(bad, 0, 0, nullptr));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(!CloseHandle(bad));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  }
  CHECK(CreateIoCompletionPort(INVALID_HANDLE_VALUE, iocp, 0, 0) == nullptr);
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);

  // A port where an IOCP is expected, and the reverse; a second association.
  FakeSim sim(gDir, "bad.sock");
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    c.WaitEof();
  });
  HANDLE port = Connect(sim);
  CHECK(!GetQueuedCompletionStatusEx(port, &e, 1, &n, 0, FALSE));
  CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  CHECK(!PostQueuedCompletionStatus(port, 0, 0, nullptr));
  CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
  CHECK(CreateIoCompletionPort(port, port, 0, 0) == nullptr);
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  CHECK(CreateIoCompletionPort(port, iocp, 1, 0) == iocp);
  CHECK(CreateIoCompletionPort(port, iocp, 1, 0) == nullptr);
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  CHECK(CloseHandle(port));
  CHECK(CloseHandle(iocp));
  sim.Join();

  // Last error is per thread.
  SetLastError(1234);
  DWORD other = 0;
  std::thread t([&] { other = GetLastError(); });
  t.join();
  CHECK_EQ(other, 0u);
  CHECK_EQ(GetLastError(), 1234u);
}

void TestGetOverlappedResultMapping() {
  struct Case {
    uint32_t status;
    BOOL ok;
    DWORD error;
  };
  const Case cases[] = {
      {0x00000000u, TRUE, 0},
      {0x00000102u, TRUE, 0},  // STATUS_TIMEOUT: a success code
      {0xC0000120u, FALSE, ERROR_OPERATION_ABORTED},
      {0xC0000023u, FALSE, ERROR_INSUFFICIENT_BUFFER},
      {0x80000005u, FALSE, ERROR_MORE_DATA},
      {0xC0000037u, FALSE, ERROR_INVALID_HANDLE},
      {0xC0000008u, FALSE, ERROR_INVALID_HANDLE},
      {0xC000014Bu, FALSE, ERROR_BROKEN_PIPE},
      {0xC0001234u, FALSE, 317},
      {0x00000103u, FALSE, ERROR_IO_INCOMPLETE},
  };
  for (const Case& c : cases) {
    OVERLAPPED ov;
    std::memset(&ov, 0, sizeof(ov));
    ov.Internal = c.status;
    ov.InternalHigh = 21;
    DWORD bytes = 0;
    SetLastError(0);
    const BOOL ok = GetOverlappedResult(nullptr, &ov, &bytes, FALSE);
    CHECK_EQ(ok, c.ok);
    if (!c.ok) CHECK_EQ(GetLastError(), c.error);
    if (c.status != 0x103u) CHECK_EQ(bytes, 21u);
  }
  OVERLAPPED ov;
  std::memset(&ov, 0, sizeof(ov));
  DWORD bytes = 0;
  CHECK(!GetOverlappedResult(nullptr, &ov, &bytes, TRUE));
  CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
  CHECK(!GetOverlappedResult(nullptr, nullptr, &bytes, FALSE));
  CHECK(!GetOverlappedResult(nullptr, &ov, nullptr, FALSE));
}

// Each malformed server frame kills the connection like a disconnect.
void TestMalformedFrames() {
  struct Bad {
    const char* what;
    std::function<void(ServerConn&, uint32_t getId)> send;
  };
  auto raw = [](uint32_t length, uint8_t version, uint8_t type, uint16_t flags, uint32_t id, Bytes payload) {
    Bytes f(12);
    fltmgr::wire::PutU32(f.data(), length);
    f[4] = version;
    f[5] = type;
    fltmgr::wire::PutU16(f.data() + 6, flags);
    fltmgr::wire::PutU32(f.data() + 8, id);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  };
  const Bytes ok16 = test::GetCompletePayload(0, 0, 1, {});
  const std::vector<Bad> bads = {
      {"bad version", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(24, 2, 0x82, 0, id, ok16)); }},
      {"bad flags", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(24, 1, 0x82, 1, id, ok16)); }},
      {"unknown type", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(24, 1, 0x83, 0, id, ok16)); }},
      {"client type", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(24, 1, 0x02, 0, id, ok16)); }},
      {"short length", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(4, 1, 0x82, 0, id, {})); }},
      {"oversized", [&](ServerConn& c, uint32_t id) { c.WriteRaw(raw(9 + (16u << 20), 1, 0x82, 0, id, {})); }},
      {"unknown get id", [&](ServerConn& c, uint32_t id) { c.Write(Type::kGetComplete, id + 1, ok16); }},
      {"short get payload", [&](ServerConn& c, uint32_t id) { c.Write(Type::kGetComplete, id, Bytes(15)); }},
      {"data over capacity",
       [&](ServerConn& c, uint32_t id) {
         c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, 0, 1, Bytes(241)));  // capacity 256
       }},
      {"cancel with data",
       [&](ServerConn& c, uint32_t id) {
         c.Write(Type::kGetComplete, id, test::GetCompletePayload(fltmgr::wire::kStatusCancelled, 0, 0, {1}));
       }},
      {"second connect result", [&](ServerConn& c, uint32_t) { c.Write(Type::kConnectResult, 0, test::U32(0)); }},
      {"unknown reply id", [&](ServerConn& c, uint32_t) { c.Write(Type::kReplyResult, 77, test::U32(0)); }},
      {"send result unknown id", [&](ServerConn& c, uint32_t) { c.Write(Type::kSendResult, 77, test::U32(0)); }},
      {"short disconnect", [&](ServerConn& c, uint32_t) { c.Write(Type::kDisconnect, 0, Bytes(2)); }},
      // A success-class status other than STATUS_SUCCESS would complete a get with a header never written.
      {"status 0x102",
       [&](ServerConn& c, uint32_t id) { c.Write(Type::kGetComplete, id, test::GetCompletePayload(0x102, 0, 1, {})); }},
      {"status 0x1",
       [&](ServerConn& c, uint32_t id) { c.Write(Type::kGetComplete, id, test::GetCompletePayload(0x1, 0, 1, {})); }},
      {"status 0x40000000",
       [&](ServerConn& c, uint32_t id) {
         c.Write(Type::kGetComplete, id, test::GetCompletePayload(0x40000000, 0, 1, {}));
       }},
      {"truncated then eof", [&](ServerConn& c, uint32_t id) {
         Bytes f = raw(24, 1, 0x82, 0, id, ok16);
         f.resize(20);
         c.WriteRaw(f);
       }}};
  for (const Bad& bad : bads) {
    FakeSim sim(gDir, "malformed.sock");
    bool eof = false;
    sim.Serve([&](ServerConn& c) {
      CHECK(c.Handshake());
      const uint32_t id = c.ReadGet();
      bad.send(c, id);
      if (std::string(bad.what) == "truncated then eof") {
        c.Close();
        eof = true;
        return;
      }
      eof = c.WaitEof();  // the client drops the stream
    });
    HANDLE port = Connect(sim);
    HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
    Request r;
    CHECK_EQ(FilterGetMessage(port, r.header(), 256, &r.ov), kIoPending);
    OVERLAPPED_ENTRY e;
    ULONG n = 0;
    const BOOL got = GetQueuedCompletionStatusEx(iocp, &e, 1, &n, test::kHangGuardMs, FALSE);
    CHECK(got);
    if (!got || e.Internal != 0xC0000037u) std::fprintf(stderr, "  (case: %s)\n", bad.what);
    CHECK_EQ(e.Internal, static_cast<ULONG_PTR>(0xC0000037u));
    DWORD bytes = 0;
    CHECK_EQ(FilterSendMessage(port, nullptr, 0, nullptr, 0, &bytes), E_HANDLE);
    sim.Join();  // the client shut the stream down without being closed
    CHECK(eof);
    CHECK(CloseHandle(port));
    CHECK(CloseHandle(iocp));
  }
}

// The flood guard: 4096 pending gets per connection, then a local refusal.
void TestManyOutstandingGets() {
  FakeSim sim(gDir, "many.sock");
  std::atomic<int> getsSeen{0};
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    Frame f;
    while (c.Read(&f)) {
      if (f.type == Type::kGet) ++getsSeen;
    }
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
  constexpr int kMax = 4096;
  std::vector<Request> reqs(kMax + 1);
  for (int i = 0; i < kMax; ++i) {
    CHECK_EQ(FilterGetMessage(port, reqs[i].header(), 64, &reqs[i].ov), kIoPending);
  }
  CHECK_EQ(FilterGetMessage(port, reqs[kMax].header(), 64, &reqs[kMax].ov), HRESULT_FROM_WIN32(1450u));
  CHECK(CloseHandle(port));
  std::set<OVERLAPPED*> done;
  OVERLAPPED_ENTRY entries[128];
  ULONG n = 0;
  while (GetQueuedCompletionStatusEx(iocp, entries, 128, &n, 0, FALSE)) {
    for (ULONG k = 0; k < n; ++k) {
      CHECK_EQ(entries[k].Internal, static_cast<ULONG_PTR>(0xC0000120u));
      done.insert(entries[k].lpOverlapped);
    }
  }
  CHECK_EQ(done.size(), static_cast<size_t>(kMax));
  CHECK(CloseHandle(iocp));
  sim.Join();
  CHECK_EQ(getsSeen.load(), kMax);
}

// The receive-loop pattern under load: outstanding gets, batched dequeues, replies from the dequeuing
// thread, re-posted gets, and CancelIoEx racing with deliveries from another thread. Every message is
// seen once and every get completes exactly once.
void TestStress() {
  FakeSim sim(gDir, "stress.sock");
  constexpr int kMessages = 20000;
  constexpr int kOutstanding = 32;
  std::atomic<int> replies{0};
  std::atomic<int> crossings{0};  // CANCELs that arrived after the message: the client keeps it as an orphan
  sim.Serve([&](ServerConn& c) {
    CHECK(c.Handshake());
    std::deque<uint32_t> pending;
    std::map<uint64_t, bool> awaitingReply;
    int sent = 0;
    Frame f;
    for (;;) {
      const bool canDeliver = !pending.empty() && sent < kMessages;
      if (!canDeliver || c.Readable()) {
        if (!c.Read(&f, 20000)) return;  // EOF once the client closes
        switch (f.type) {
          case Type::kGet:
            pending.push_back(f.id);
            break;
          case Type::kCancel: {
            auto it = std::find(pending.begin(), pending.end(), f.id);
            if (it != pending.end()) {
              pending.erase(it);
              c.Write(Type::kGetComplete, f.id, test::GetCompletePayload(fltmgr::wire::kStatusCancelled, 0, 0, {}));
            } else {
              ++crossings;
            }
            break;
          }
          case Type::kReply: {
            const uint64_t mid = fltmgr::wire::GetU64(f.payload.data() + 8);
            const bool waiting = awaitingReply.erase(mid) == 1;
            c.Write(Type::kReplyResult, f.id, test::U32(waiting ? 0 : 0x801F0020u));
            ++replies;
            break;
          }
          default:
            CHECK(false);
            return;
        }
        continue;
      }
      const uint32_t id = pending.front();
      pending.pop_front();
      const uint64_t mid = static_cast<uint64_t>(sent++);
      const bool wantReply = mid % 2 == 0;
      if (wantReply) awaitingReply[mid] = true;
      c.Write(Type::kGetComplete, id, test::GetCompletePayload(0, wantReply ? 24 : 0, mid, Payload(mid, mid % 200)));
    }
  });
  HANDLE port = Connect(sim);
  HANDLE iocp = CreateIoCompletionPort(port, nullptr, 5, 0);
  std::vector<Request> reqs(kOutstanding);
  std::vector<bool> seen(kMessages, false);
  int received = 0, cancelled = 0, outstanding = 0, duplicates = 0, badReplies = 0;
  std::atomic<bool> stop{false};
  std::thread canceller([&] {
    while (!stop.load()) {
      CancelIoEx(port, nullptr);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  for (Request& r : reqs) {
    CHECK_EQ(FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov), kIoPending);
    ++outstanding;
  }
  while (received < kMessages) {
    OVERLAPPED_ENTRY entries[16];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(iocp, entries, 16, &n, test::kHangGuardMs, FALSE)) {
      CHECK(false);
      break;
    }
    for (ULONG k = 0; k < n; ++k) {
      --outstanding;
      Request* r = reinterpret_cast<Request*>(entries[k].lpOverlapped);
      if (entries[k].Internal == 0) {
        const uint64_t mid = r->header()->MessageId;
        if (mid >= kMessages || seen[mid]) {
          ++duplicates;
        } else {
          seen[mid] = true;
          ++received;
          if (entries[k].dwNumberOfBytesTransferred != 16 + mid % 200 ||
              (mid % 200 != 0 && std::memcmp(r->buffer + 16, Payload(mid, mid % 200).data(), mid % 200) != 0)) {
            ++duplicates;
          }
        }
        if (r->header()->ReplyLength != 0) {
          struct {
            FILTER_REPLY_HEADER h;
            uint8_t data[8];
          } reply;
          reply.h.Status = 0;
          reply.h.MessageId = mid;
          std::memset(reply.data, 1, sizeof(reply.data));
          if (FilterReplyMessage(port, &reply.h, sizeof(reply)) != S_OK) ++badReplies;
        }
      } else {
        CHECK_EQ(entries[k].Internal, static_cast<ULONG_PTR>(0xC0000120u));
        ++cancelled;
      }
      if (received < kMessages) {
        CHECK_EQ(FilterGetMessage(port, r->header(), sizeof(r->buffer), &r->ov), kIoPending);
        ++outstanding;
      }
    }
  }
  stop = true;
  canceller.join();
  // Drain: close, then every outstanding get comes back.
  CHECK(CloseHandle(port));
  while (outstanding > 0) {
    OVERLAPPED_ENTRY entries[16];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(iocp, entries, 16, &n, 0, FALSE)) break;
    outstanding -= static_cast<int>(n);
  }
  CHECK_EQ(outstanding, 0);
  CHECK_EQ(received, kMessages);
  CHECK_EQ(duplicates, 0);
  CHECK_EQ(badReplies, 0);
  CHECK_EQ(replies.load(), kMessages / 2);
  std::printf("    (stress: %d messages, %d gets cancelled, %d messages crossed a CANCEL)\n", kMessages, cancelled,
              crossings.load());
  CHECK(CloseHandle(iocp));
  sim.Join();
}

// Close racing with traffic in flight: the reader may be mid-completion while CloseHandle runs.
void TestCloseRace() {
  for (int round = 0; round < 30; ++round) {
    FakeSim sim(gDir, "race.sock");
    sim.Serve([&](ServerConn& c) {
      if (!c.Handshake()) return;
      Frame f;
      while (c.Read(&f)) {
        if (f.type == Type::kGet) c.Write(Type::kGetComplete, f.id, test::GetCompletePayload(0, 0, 1, {1, 2, 3}));
        if (f.type == Type::kSend) c.Write(Type::kSendResult, f.id, test::U32(0));
      }
    });
    HANDLE port = Connect(sim);
    HANDLE iocp = CreateIoCompletionPort(port, nullptr, 1, 0);
    std::vector<Request> reqs(16);
    int outstanding = 0;
    for (Request& r : reqs) {
      if (FilterGetMessage(port, r.header(), sizeof(r.buffer), &r.ov) == kIoPending) ++outstanding;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(round * 37));
    CHECK(CloseHandle(port));
    OVERLAPPED_ENTRY entries[32];
    ULONG n = 0;
    while (GetQueuedCompletionStatusEx(iocp, entries, 32, &n, 0, FALSE)) {
      for (ULONG k = 0; k < n; ++k) {
        CHECK(entries[k].Internal == 0 || entries[k].Internal == 0xC0000120u);
      }
      outstanding -= static_cast<int>(n);
    }
    CHECK_EQ(outstanding, 0);
    CHECK(CloseHandle(iocp));
    sim.Join();
  }
}

struct TestCase {
  const char* name;
  void (*fn)();
};

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // only the fake server's writes; the compat layer never relies on it
  alarm(600);                // a hung test fails the run instead of blocking CI
  char tmpl[] = "/tmp/fltmgr-compat-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  gDir = tmpl;
  const TestCase tests[] = {
      {"wire", TestWire},
      {"connect_ok", TestConnectOk},
      {"connect_environment", TestConnectEnvironment},
      {"connect_failures", TestConnectFailures},
      {"tcp", TestTcp},
      {"overlapped_gets", TestOverlappedGets},
      {"batching", TestBatching},
      {"cancel", TestCancel},
      {"cancel_with_silent_simulator", TestCancelWithSilentSimulator},
      {"reply_and_send", TestReplyAndSend},
      {"abort_with_silent_simulator", TestAbortWithSilentSimulator},
      {"concurrent_sends", TestConcurrentSends},
      {"disconnect", TestDisconnect},
      {"eof", TestEof},
      {"close_with_pending", TestCloseWithPending},
      {"iocp_basics", TestIocpBasics},
      {"iocp_closed_before_completion", TestIocpClosedBeforeCompletion},
      {"no_iocp", TestNoIocp},
      {"sync_handle_and_sync_get", TestSyncHandleAndSyncGet},
      {"buffer_too_small", TestBufferTooSmallOverlapped},
      {"large_messages", TestLargeMessages},
      {"bad_handles", TestBadHandles},
      {"get_overlapped_result", TestGetOverlappedResultMapping},
      {"malformed_frames", TestMalformedFrames},
      {"many_outstanding_gets", TestManyOutstandingGets},
      {"stress", TestStress},
      {"close_race", TestCloseRace},
      {"manage_encoding", TestManageEncoding},
      {"manage_decoding", TestManageDecoding},
      {"manage_records", TestManageRecords},
      {"manage_find", [] { TestManageFind(gDir); }},
      {"manage_instances_volumes", [] { TestManageInstancesAndVolumes(gDir); }},
      {"manage_calls", [] { TestManageCalls(gDir); }},
      {"manage_ports_secret", TestManagePortsAndSecret},
      {"manage_malformed", [] { TestManageMalformed(gDir); }},
  };
  const char* only = argc > 1 ? argv[1] : nullptr;
  int failedTests = 0;
  for (const TestCase& t : tests) {
    if (only != nullptr && std::strcmp(only, t.name) != 0) continue;
    const int before = test::Failures().load();
    const auto t0 = std::chrono::steady_clock::now();
    t.fn();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    const bool ok = test::Failures().load() == before;
    if (!ok) ++failedTests;
    std::printf("%s %s (%lld ms)\n", ok ? "ok  " : "FAIL", t.name, static_cast<long long>(ms));
    std::fflush(stdout);
  }
  rmdir(gDir.c_str());
  std::printf(failedTests == 0 ? "all tests passed\n" : "%d test(s) failed\n", failedTests);
  return failedTests == 0 ? 0 : 1;
}
