// Writes the seed corpora (native/test/fuzz/corpus/<target>/) from valid frames built with the wire.h
// encoders and from client scripts in the layout of fuzz_common.h. Run through `run.sh seeds`.
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "../../sim/wire.h"
#include "fuzz_common.h"

namespace {
using namespace fltmgr::wire;
using fuzz::Script;
using Bytes = std::vector<uint8_t>;

std::string gOut;
int gCount = 0;

void Write(const std::string& target, const std::string& name, const Bytes& bytes) {
  const std::string dir = gOut + "/" + target;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fclose(f);
  ++gCount;
}

Bytes FrameBytes(Type type, uint32_t id, const Bytes& payload) {
  Bytes f(kHeaderSize);
  EncodeHeader(f.data(), type, id, static_cast<uint32_t>(payload.size()));
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

Bytes U32(uint32_t v) {
  Bytes b(4);
  PutU32(b.data(), v);
  return b;
}

Bytes GetCompletePayload(uint32_t status, uint32_t replyLength, uint64_t id, const Bytes& data) {
  Bytes b(16);
  PutU32(b.data(), status);
  PutU32(b.data() + 4, replyLength);
  PutU64(b.data() + 8, id);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes Mode(uint8_t mode, const Bytes& rest) {
  Bytes b{mode};
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

Bytes Str(const char* s) { return Bytes(s, s + std::char_traits<char>::length(s)); }

void WireSeeds() {
  const std::string t = "fuzz_wire";
  const Bytes msg = {'E', 'I', 'C', 'A', 'R'};
  const Bytes connectResult = FrameBytes(Type::kConnectResult, 0, U32(0));
  const Bytes message = FrameBytes(Type::kGetComplete, 0x1001, GetCompletePayload(0, 17, 0x100000001ull, msg));
  const Bytes tooSmall = FrameBytes(Type::kGetComplete, 0x1002, GetCompletePayload(kStatusBufferTooSmall, 4096, 0, {}));
  const Bytes cancelled = FrameBytes(Type::kGetComplete, 0x2001, GetCompletePayload(kStatusCancelled, 0, 0, {}));
  const Bytes replyResult = FrameBytes(Type::kReplyResult, 0x1003, U32(0x801F0020u));
  const Bytes sendResult = FrameBytes(Type::kSendResult, 0x1004, Cat({U32(0), {1, 2, 3, 4}}));
  const Bytes sendFailed = FrameBytes(Type::kSendResult, 0x1005, U32(0x80070032u));
  const Bytes disconnect = FrameBytes(Type::kDisconnect, 0, U32(kStatusPortDisconnected));
  Write(t, "server-session",
        Mode(fuzz::kWireServerStream,
             Cat({connectResult, message, tooSmall, cancelled, replyResult, sendResult, sendFailed, disconnect})));
  Write(t, "server-message", Mode(fuzz::kWireServerStream, message));
  Write(t, "server-truncated", Mode(fuzz::kWireServerStream, Bytes(message.begin(), message.end() - 2)));
  Bytes badVersion = replyResult;
  badVersion[4] = 2;
  Write(t, "server-bad-version", Mode(fuzz::kWireServerStream, badVersion));
  // Regression (found by fuzz_wire): GET_COMPLETE with STATUS_PENDING must be refused.
  Write(t, "regress-get-status-pending",
        Mode(fuzz::kWireServerStream, FrameBytes(Type::kGetComplete, 0x1001, GetCompletePayload(0x103, 0, 0, {}))));

  Bytes connect(ConnectPayloadSize(4, 2, 3));
  const char16_t name[] = u"\\Prt";
  const uint8_t ctx[2] = {7, 8};
  EncodeConnectPayload(connect.data(), 0, 4242, name, 4, ctx, 2, "abc", 3);
  Bytes get(kGetFrameSize);
  EncodeGet(get.data(), 0x1001, 4096);
  Bytes reply(kReplyHeadSize);
  EncodeReplyHead(reply.data(), 0, 0x100000001ull, 1);
  PutU32(reply.data() + 8, 0x1003);
  reply.push_back(1);
  Bytes send(kSendHeadSize);
  EncodeSendHead(send.data(), 64, 2);
  PutU32(send.data() + 8, 0x1004);
  send.push_back(9);
  send.push_back(9);
  Write(t, "client-session",
        Mode(fuzz::kWireClientStream,
             Cat({FrameBytes(Type::kConnect, 0, connect), get, FrameBytes(Type::kCancel, 0x1001, {}), reply, send})));

  const char* endpoints[] = {"unix:/tmp/sim.sock",
                             "/tmp/fltmgr-sim/sim.sock",
                             "tcp:127.0.0.1:4567#s3cret",
                             "tcp:127.1.2.3:65535#~!",
                             "pipe:\\\\.\\pipe\\fltmgr#x#abc",
                             "tcp:10.0.0.1:80#s",
                             "tcp:127.0.0.1:0#s",
                             "pipe:foo#s"};
  int i = 0;
  for (const char* e : endpoints) Write(t, "endpoint-" + std::to_string(i++), Mode(fuzz::kWireEndpoint, Str(e)));

  Write(t, "connect-small",
        Mode(fuzz::kWireConnect,
             Script().U32(1).U32(4242).U32(12).U32(8).U32(16).U8(0).Bytes(Str("\\ScannerPort agent-v1")).bytes()));
  Write(t, "connect-big",
        Mode(fuzz::kWireConnect, Script().U32(0).U32(1).U32(0x7FFF).U32(0xFFFF).U32(0x10000).U8(1).bytes()));
  Write(t, "encoders",
        Mode(fuzz::kWireEncoders,
             Script().U32(0x1001).U32(4096).U32(0xC0000022u).U64(7).U32(3).U32(5).U8(0x85).U32(20).bytes()));

  // MANAGE_RESULT payloads (u8 op - 1, then the payload): one per record shape, and a failure.
  const Bytes mname = {14, 0, 's', 0, 'c', 0, 'a', 0, 'n', 0, 'n', 0, 'e', 0, 'r', 0};
  const Bytes altitude = {12, 0, '2', 0, '6', 0, '5', 0, '0', 0, '0', 0, '0', 0};
  const Bytes volume = {6, 0, '\\', 0, 'V', 0, '1', 0};
  const Bytes dos = {4, 0, 'C', 0, ':', 0};
  Write(t, "manage-filters",
        Mode(fuzz::kWireManage, Cat({Bytes{0}, U32(0), U32(2), U32(1), U32(0), U32(1), mname, altitude, U32(2), U32(0),
                                     U32(0), mname, Bytes{0, 0}})));
  Write(
      t, "manage-instances",
      Mode(fuzz::kWireManage, Cat({Bytes{1}, U32(0), U32(1), U32(1), U32(0), U32(2), mname, altitude, volume, mname})));
  Write(t, "manage-volumes",
        Mode(fuzz::kWireManage, Cat({Bytes{2}, U32(0), U32(1), U32(0), U32(0), U32(28), volume, dos})));
  Write(t, "manage-attach", Mode(fuzz::kWireManage, Cat({Bytes{5}, U32(0), U32(1), mname})));
  Write(t, "manage-ports", Mode(fuzz::kWireManage, Cat({Bytes{8}, U32(0), U32(1), U32(4), U32(1), mname, mname})));
  Write(t, "manage-failure", Mode(fuzz::kWireManage, Cat({Bytes{1}, U32(0x801F0013u), U32(0)})));
}

// ---- client scripts ---------------------------------------------------------------------------------
Script& Get(Script& s, uint8_t capSel) { return s.U8(fuzz::kOpGet).U8(capSel); }
Script& Message(Script& s, uint8_t which, const Bytes& data, uint32_t replyLength = 0) {
  return s.U8(fuzz::kOpGetComplete)
      .U8(which)
      .U8(1)
      .U32(replyLength)
      .U32(0xABCD)
      .U8(static_cast<uint8_t>(data.size()))
      .Bytes(data);
}

void ClientSeeds() {
  const std::string t = "fuzz_client";
  const Bytes data = {'h', 'e', 'l', 'l', 'o'};
  {
    Script s;
    s.U8(0);
    Get(s, 64);
    Get(s, 64);
    Message(s, 0, data, 17).U8(fuzz::kOpDrain);
    Message(s, 0, {}, 0).U8(fuzz::kOpDrain).U8(fuzz::kOpCancel).U8(255).U8(fuzz::kOpDrain);
    Write(t, "get-message-cancel", s.bytes());
  }
  {
    Script s;
    s.U8(0).U8(fuzz::kOpSend).U8(3).U8(32).Bytes({1, 2, 3});
    s.U8(fuzz::kOpSendResult).U8(0).U8(1).U32(0).U8(4).Bytes({9, 8, 7, 6});
    s.U8(fuzz::kOpReply).U32(0).U8(2).Bytes({5, 5});
    s.U8(fuzz::kOpReplyResult).U8(0).U32(0x801F0020u).U8(fuzz::kOpDrain);
    Write(t, "send-reply", s.bytes());
  }
  {
    // A message crosses a cancel: it must reach the next get.
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpCancel).U8(0);
    Message(s, 0, data, 21);
    Get(s, 64);
    s.U8(fuzz::kOpDrain);
    Write(t, "orphan", s.bytes());
  }
  {
    // Buffer too small, then a larger get.
    Script s;
    s.U8(0);
    Get(s, 16);
    s.U8(fuzz::kOpGetStatus).U8(0).U8(1).U32(0).U32(64).U8(fuzz::kOpDrain);
    Get(s, 200);
    Message(s, 0, Bytes(40, 0x42), 56).U8(fuzz::kOpDrain);
    Write(t, "too-small", s.bytes());
  }
  {
    Script s;
    s.U8(fuzz::kFlagSyncHandle).U8(fuzz::kOpSyncGet).U8(48);
    Message(s, 0, data, 0);
    s.U8(fuzz::kOpGet).U8(64).U8(fuzz::kOpDrain);
    Write(t, "sync-handle", s.bytes());
  }
  {
    Script s;
    s.U8(fuzz::kFlagNoIocp);
    Get(s, 100);
    Get(s, 100);
    Message(s, 1, data, 0).U8(fuzz::kOpDrain).U8(fuzz::kOpDisconnect).U32(kStatusPortDisconnected).U8(fuzz::kOpDrain);
    Write(t, "no-iocp-disconnect", s.bytes());
  }
  {
    Script s;
    s.U8(fuzz::kFlagServerClosesFirst);
    Get(s, 64);
    s.U8(fuzz::kOpSend).U8(0).U8(0).U8(fuzz::kOpRawFrame).U8(1).U8(1).U32(0).U8(16).Bytes(Bytes(16, 0));
    Write(t, "raw-frame", s.bytes());
  }
  {
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpRawBytes).U8(12).Bytes({4, 0, 0, 0, 1, 0x82, 0, 0, 1, 0x10, 0, 0});
    Write(t, "raw-bytes", s.bytes());
  }
  {
    Script s;
    s.U8(fuzz::kHandshakeHresult << fuzz::kHandshakeShift).U32(0x80070005u);
    Write(t, "connect-refused", s.bytes());
  }
  {
    Script s;
    s.U8(fuzz::kHandshakeRaw << fuzz::kHandshakeShift).U8(16);
    s.Bytes(FrameBytes(Type::kConnectResult, 0, U32(0)));
    Get(s, 64).U8(fuzz::kOpClientClose).U8(fuzz::kOpDrain);
    Write(t, "connect-raw", s.bytes());
  }
  {
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpGetStatus).U8(0).U8(2).U32(0xC0000001u).U32(0).U8(fuzz::kOpDrain);
    Write(t, "get-failure-status", s.bytes());
  }
  {
    // Messages larger than the client's read buffer (64 KiB) and its shrink threshold (1 MiB).
    Script s;
    s.U8(0);
    Get(s, 254);
    Get(s, 255);
    s.U8(fuzz::kOpGetComplete).U8(0).U8(2).U32(0).U32(1).U8(0);
    s.U8(fuzz::kOpGetComplete).U8(0).U8(2).U32(0).U32(2).U8(0).U8(fuzz::kOpDrain);
    Get(s, 64);
    Message(s, 0, data).U8(fuzz::kOpDrain);
    Write(t, "big-messages", s.bytes());
  }
  {
    // Two half-buffer messages back to back: the second straddles the end of the read buffer.
    Script s;
    s.U8(0);
    Get(s, 254);
    Get(s, 254);
    s.U8(fuzz::kOpGetComplete).U8(0).U8(6).U32(0).U32(3).U8(0);
    s.U8(fuzz::kOpGetComplete).U8(0).U8(6).U32(0).U32(4).U8(0).U8(fuzz::kOpDrain);
    Write(t, "half-buffer-messages", s.bytes());
  }
  {
    // A SEND bigger than the socket buffer (written in pieces), a big SEND_RESULT, a big REPLY.
    Script s;
    s.U8(0).U8(fuzz::kOpSend).U8(255).U8(255).U8(fuzz::kOpSendResult).U8(0).U8(3).U32(0).U8(0);
    s.U8(fuzz::kOpReply).U32(0).U8(255).U8(fuzz::kOpReplyResult).U8(0).U32(0).U8(fuzz::kOpDrain);
    Write(t, "big-calls", s.bytes());
  }
  {
    // A message that crossed a cancel goes to a synchronous get that is already waiting.
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpSyncGet).U8(64).U8(fuzz::kOpCancel).U8(0);
    Message(s, 0, data).U8(fuzz::kOpDrain);
    Write(t, "orphan-to-sync-get", s.bytes());
  }
  {
    // The server goes away altogether while calls are pending; the next writes fail.
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpSend).U8(1).U8(8).U8(7).U8(fuzz::kOpServerClose);
    Get(s, 64);
    s.U8(fuzz::kOpReply).U32(0).U8(0).U8(fuzz::kOpDrain);
    Write(t, "server-close", s.bytes());
  }
  {
    // FltSimAbortPort with a get, a synchronous get and a SEND pending, then more calls on the handle.
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpSyncGet).U8(64).U8(fuzz::kOpSend).U8(2).U8(8).U8(1).U8(2).U8(fuzz::kOpAbort);
    Get(s, 64);
    s.U8(fuzz::kOpDrain);
    Write(t, "abort", s.bytes());
  }
  // Regressions: GET_COMPLETE with a success-class status other than STATUS_SUCCESS (found by fuzz_client:
  // the get completed as "successful" with 0 bytes and no header written, or with STATUS_PENDING).
  for (const uint32_t status : {0x40000000u, 0x00000103u}) {
    Script s;
    s.U8(0);
    Get(s, 64);
    s.U8(fuzz::kOpGetStatus).U8(0).U8(2).U32(status).U32(0).U8(fuzz::kOpDrain);
    char name[64];
    std::snprintf(name, sizeof(name), "regress-get-status-%08x", status);
    Write(t, name, s.bytes());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  gOut = argv[1];
  mkdir(gOut.c_str(), 0755);
  WireSeeds();
  ClientSeeds();
  std::printf("wrote %d seed inputs under %s\n", gCount, gOut.c_str());
  return 0;
}
