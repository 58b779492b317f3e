// libFuzzer target: the native frame codec (native/sim/wire.cc) and the MANAGE_RESULT decoder with the Windows
// record builders (native/sim/manage.cc). Every payload is copied into a heap
// block of exactly its size, so a decoder that reads one byte too far is an AddressSanitizer report.
// Invariants are checked against the documented rules (docs/wire-protocol.md), written out here again.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "../../sim/manage.h"
#include "../../sim/wire.h"
#include "fuzz_common.h"

namespace {
using namespace fltmgr::wire;
using fuzz::Input;

bool IsServerTypeByte(uint8_t t) { return t == 0x81 || t == 0x82 || t == 0x84 || t == 0x85 || t == 0x86 || t == 0x87; }
bool IsClientTypeByte(uint8_t t) { return t >= 0x01 && t <= 0x06; }

// The documented header rules. The order of the checks only decides which error is named.
HeaderError ExpectedHeader(const uint8_t* p, bool server) {
  const uint32_t length = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                          (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  if (length < 8 || static_cast<uint64_t>(length) > 8ull + 16ull * 1024 * 1024) return HeaderError::kBadLength;
  if (p[4] != 1) return HeaderError::kBadVersion;
  if (p[6] != 0 || p[7] != 0) return HeaderError::kBadFlags;
  if (!(server ? IsServerTypeByte(p[5]) : IsClientTypeByte(p[5]))) return HeaderError::kUnknownType;
  return HeaderError::kNone;
}

void CheckHeader(const uint8_t* p, bool server, FrameHeader* h, HeaderError* e) {
  FrameHeader header;
  std::memset(&header, 0xEE, sizeof(header));
  const HeaderError got = server ? DecodeServerHeader(p, &header) : DecodeClientHeader(p, &header);
  const HeaderError want = ExpectedHeader(p, server);
  FUZZ_REQUIRE(got == want, "%s header: got %s, want %s", server ? "server" : "client", HeaderErrorText(got),
               HeaderErrorText(want));
  FUZZ_REQUIRE(HeaderErrorText(got) != nullptr && *HeaderErrorText(got) != '\0', "empty error text");
  if (got == HeaderError::kNone) {
    FUZZ_REQUIRE(header.payloadSize == GetU32(p) - 8 && header.payloadSize <= kMaxPayload, "payloadSize %u",
                 header.payloadSize);
    FUZZ_REQUIRE(static_cast<uint8_t>(header.type) == p[5], "type");
    FUZZ_REQUIRE(header.id == GetU32(p + 8), "id");
    // Re-encoding a decoded header gives back the same 12 bytes.
    uint8_t again[kHeaderSize];
    EncodeHeader(again, header.type, header.id, header.payloadSize);
    FUZZ_REQUIRE(std::memcmp(again, p, kHeaderSize) == 0, "EncodeHeader(DecodeHeader(x)) != x");
  }
  *h = header;
  *e = got;
}

// Runs every payload decoder on a payload (valid for its type or not) and checks what each accepts.
void CheckPayloadDecoders(const std::vector<uint8_t>& bytes) {
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  // Exactly-sized heap copy: the redzone right after it catches over-reads (nullptr-free for size 0).
  std::unique_ptr<uint8_t[]> payload(new uint8_t[size == 0 ? 1 : size]);
  if (size != 0) std::memcpy(payload.get(), bytes.data(), size);
  const uint8_t* p = size == 0 ? payload.get() + 1 : payload.get();  // size 0: a pointer that must not be read

  int32_t value = 0x5A5A5A5A;
  const bool resultOk = DecodeResult(p, size, &value);
  FUZZ_REQUIRE(resultOk == (size == 4), "DecodeResult accepted size %u", size);
  if (resultOk) FUZZ_REQUIRE(value == GetI32(bytes.data()), "DecodeResult value");

  GetComplete gc;
  const bool gcOk = DecodeGetComplete(p, size, &gc);
  if (size < 16) {
    FUZZ_REQUIRE(!gcOk, "GET_COMPLETE of %u bytes accepted", size);
  } else {
    const uint32_t status = GetU32(bytes.data());
    // STATUS_SUCCESS (a message, any data) or a failure status (error or warning severity) without data.
    const bool expect = status == kStatusSuccess || (status >= 0x80000000u && size == 16);
    FUZZ_REQUIRE(gcOk == expect, "GET_COMPLETE status 0x%08x size %u: accepted=%d", status, size, gcOk);
    if (gcOk) {
      FUZZ_REQUIRE(
          gc.status == status && gc.replyLength == GetU32(bytes.data() + 4) && gc.messageId == GetU64(bytes.data() + 8),
          "GET_COMPLETE fields");
      FUZZ_REQUIRE(gc.data == p + 16 && gc.dataSize == size - 16, "GET_COMPLETE data view");
    }
  }
  // A get may only complete with STATUS_SUCCESS (a message) or a failure: any other success-class status
  // (STATUS_PENDING, informational) would complete an OVERLAPPED as "successful" with no header written, or
  // as still pending.
  if (gcOk) {
    FUZZ_REQUIRE(gc.status == kStatusSuccess || gc.status >= 0x80000000u,
                 "GET_COMPLETE with success-class status 0x%08x accepted", gc.status);
  }

  SendResult sr;
  const bool srOk = DecodeSendResult(p, size, &sr);
  if (size < 4) {
    FUZZ_REQUIRE(!srOk, "SEND_RESULT of %u bytes accepted", size);
  } else {
    const int32_t hr = GetI32(bytes.data());
    FUZZ_REQUIRE(srOk == (hr >= 0 || size == 4), "SEND_RESULT hr 0x%08x size %u: accepted=%d",
                 static_cast<uint32_t>(hr), size, srOk);
    if (srOk) FUZZ_REQUIRE(sr.hresult == hr && sr.data == p + 4 && sr.dataSize == size - 4, "SEND_RESULT view");
  }
}

void FrameStream(Input& in, bool server) {
  const std::vector<uint8_t> stream = in.Rest();
  size_t at = 0;
  while (stream.size() - at >= kHeaderSize) {
    // The header alone in its own block too.
    std::unique_ptr<uint8_t[]> head(new uint8_t[kHeaderSize]);
    std::memcpy(head.get(), stream.data() + at, kHeaderSize);
    FrameHeader h;
    HeaderError e;
    CheckHeader(head.get(), server, &h, &e);
    // The other direction must refuse every frame type this one accepts (and agree on everything else).
    FrameHeader other;
    HeaderError otherError;
    CheckHeader(head.get(), !server, &other, &otherError);
    if (e == HeaderError::kNone) FUZZ_REQUIRE(otherError == HeaderError::kUnknownType, "both directions accept");
    if (e != HeaderError::kNone && e != HeaderError::kUnknownType) FUZZ_REQUIRE(otherError == e, "directions disagree");
    if (e != HeaderError::kNone) return;  // the reader drops the connection here
    at += kHeaderSize;
    const size_t avail = stream.size() - at;
    const size_t take = h.payloadSize < avail ? h.payloadSize : avail;
    CheckPayloadDecoders(
        std::vector<uint8_t>(stream.begin() + static_cast<long>(at), stream.begin() + static_cast<long>(at + take)));
    if (take < h.payloadSize) return;  // the stream ends inside the frame
    at += take;
  }
  // A trailing partial header is simply "need more".
}

bool PrintableSecret(const std::string& s) {
  if (s.empty() || s.size() > 0xFFFF) return false;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) return false;
  }
  return true;
}

void CheckEndpointResult(const char* text, bool ok, const Endpoint& ep, const std::string& why);

void ParseAndCheck(const std::string& text) {
  Endpoint ep;
  std::string why;
  const bool ok = ParseEndpoint(text.c_str(), &ep, &why);
  CheckEndpointResult(text.c_str(), ok, ep, why);
}

void CheckEndpointResult(const char* text, bool ok, const Endpoint& ep, const std::string& why) {
  const std::string s(text);
  if (!ok) {
    FUZZ_REQUIRE(!why.empty(), "refused endpoint without a reason: %s", text);
    return;
  }
  switch (ep.kind) {
    case Endpoint::Kind::kUnix:
      FUZZ_REQUIRE(!ep.path.empty(), "unix endpoint with an empty path");
      FUZZ_REQUIRE(s == ep.path ? s[0] == '/' : s == "unix:" + ep.path, "unix endpoint %s -> path %s", text,
                   ep.path.c_str());
      FUZZ_REQUIRE(ep.secret.empty(), "unix endpoint with a secret");
      break;
    case Endpoint::Kind::kTcp: {
      FUZZ_REQUIRE(s.compare(0, 4, "tcp:") == 0, "tcp kind for %s", text);
      FUZZ_REQUIRE(ep.address[0] == 127, "non-loopback tcp address accepted: %s", text);
      FUZZ_REQUIRE(ep.port != 0, "tcp port 0 accepted: %s", text);
      FUZZ_REQUIRE(PrintableSecret(ep.secret), "bad secret accepted: %s", text);
      // Canonical form parses to the same endpoint.
      const std::string canon = "tcp:" + std::to_string(ep.address[0]) + "." + std::to_string(ep.address[1]) + "." +
                                std::to_string(ep.address[2]) + "." + std::to_string(ep.address[3]) + ":" +
                                std::to_string(ep.port) + "#" + ep.secret;
      Endpoint again;
      std::string why2;
      FUZZ_REQUIRE(ParseEndpoint(canon.c_str(), &again, &why2), "canonical form refused: %s", canon.c_str());
      FUZZ_REQUIRE(again.kind == ep.kind && std::memcmp(again.address, ep.address, 4) == 0 && again.port == ep.port &&
                       again.secret == ep.secret,
                   "canonical form differs: %s", canon.c_str());
      FUZZ_REQUIRE(s.size() >= ep.secret.size() + 1 &&
                       s.compare(s.size() - ep.secret.size() - 1, std::string::npos, "#" + ep.secret) == 0,
                   "secret is not the text after '#': %s", text);
      break;
    }
    case Endpoint::Kind::kPipe:
      FUZZ_REQUIRE(ep.path.size() > 9 && ep.path.compare(0, 9, "\\\\.\\pipe\\") == 0, "pipe path %s", ep.path.c_str());
      FUZZ_REQUIRE(PrintableSecret(ep.secret), "bad pipe secret accepted: %s", text);
      FUZZ_REQUIRE(s == "pipe:" + ep.path + "#" + ep.secret, "pipe endpoint does not re-form: %s", text);
      break;
  }
}

void Endpoints(Input& in) {
  const std::vector<uint8_t> rest = in.Rest();
  std::string text(rest.begin(), rest.end());
  text = text.c_str();  // up to the first NUL, as a C caller would pass it
  ParseAndCheck(text);
  // The same with the common prefixes, so the fuzzer does not have to find them.
  for (const char* prefix : {"unix:", "tcp:127.", "tcp:", "pipe:\\\\.\\pipe\\", "/"}) ParseAndCheck(prefix + text);
  Endpoint ep;
  std::string why;
  FUZZ_REQUIRE(!ParseEndpoint(nullptr, &ep, &why) && !why.empty(), "nullptr endpoint");
}

void Connect(Input& in) {
  const uint32_t options = in.U32();
  const uint32_t pid = in.U32();
  // Lengths: mostly small, sometimes past the u16 limits.
  const uint32_t nameUnitsRaw = in.U32();
  const uint32_t contextRaw = in.U32();
  const uint32_t secretRaw = in.U32();
  const bool big = (in.U8() & 1) != 0;
  const size_t nameUnits = big ? nameUnitsRaw % 0x10002u : nameUnitsRaw % 64u;
  const size_t contextBytes = big ? contextRaw % 0x10002u : contextRaw % 64u;
  const size_t secretBytes = big ? secretRaw % 0x10002u : secretRaw % 64u;
  const size_t size = ConnectPayloadSize(nameUnits, contextBytes, secretBytes);
  const bool fits = nameUnits <= 0x7FFF && contextBytes <= 0xFFFF && secretBytes <= 0xFFFF;
  FUZZ_REQUIRE((size != 0) == fits, "ConnectPayloadSize(%zu, %zu, %zu) = %zu", nameUnits, contextBytes, secretBytes,
               size);
  if (size == 0) return;
  FUZZ_REQUIRE(size == 14 + nameUnits * 2 + contextBytes + secretBytes, "ConnectPayloadSize = %zu", size);
  const std::vector<uint8_t> seed = in.Rest();
  auto byteAt = [&seed](size_t i) { return seed.empty() ? static_cast<uint8_t>(i) : seed[i % seed.size()]; };
  std::unique_ptr<char16_t[]> name(new char16_t[nameUnits == 0 ? 1 : nameUnits]);
  for (size_t i = 0; i < nameUnits; ++i) name[i] = static_cast<char16_t>(byteAt(2 * i) | (byteAt(2 * i + 1) << 8));
  std::unique_ptr<uint8_t[]> context(new uint8_t[contextBytes == 0 ? 1 : contextBytes]);
  for (size_t i = 0; i < contextBytes; ++i) context[i] = byteAt(i + 3);
  std::unique_ptr<char[]> secret(new char[secretBytes == 0 ? 1 : secretBytes]);
  for (size_t i = 0; i < secretBytes; ++i) secret[i] = static_cast<char>(byteAt(i + 5));

  std::unique_ptr<uint8_t[]> out(new uint8_t[size]);  // exactly the announced size
  EncodeConnectPayload(out.get(), options, pid, name.get(), nameUnits, contextBytes ? context.get() : nullptr,
                       contextBytes, secretBytes ? secret.get() : nullptr, secretBytes);
  // Parse it back by the documented layout.
  const uint8_t* p = out.get();
  FUZZ_REQUIRE(GetU32(p) == options && GetU32(p + 4) == pid, "CONNECT options/pid");
  size_t at = 8;
  FUZZ_REQUIRE(GetU16(p + at) == nameUnits * 2, "CONNECT nameBytes");
  at += 2;
  for (size_t i = 0; i < nameUnits; ++i, at += 2) FUZZ_REQUIRE(GetU16(p + at) == name[i], "CONNECT name unit %zu", i);
  FUZZ_REQUIRE(GetU16(p + at) == contextBytes, "CONNECT contextBytes");
  at += 2;
  FUZZ_REQUIRE(contextBytes == 0 || std::memcmp(p + at, context.get(), contextBytes) == 0, "CONNECT context");
  at += contextBytes;
  FUZZ_REQUIRE(GetU16(p + at) == secretBytes, "CONNECT secretBytes");
  at += 2;
  FUZZ_REQUIRE(secretBytes == 0 || std::memcmp(p + at, secret.get(), secretBytes) == 0, "CONNECT secret");
  at += secretBytes;
  FUZZ_REQUIRE(at == size, "CONNECT layout ends at %zu of %zu", at, size);
}

void Encoders(Input& in) {
  const uint32_t id = in.U32();
  const uint32_t capacity = in.U32();
  const int32_t status = static_cast<int32_t>(in.U32());
  const uint64_t messageId = in.U64();
  const uint32_t dataSize = in.U32() % (kMaxReplyData + 1);
  const uint32_t inputSize = in.U32() % (kMaxSendInput + 1);
  const uint8_t type = in.U8();
  const uint32_t payloadSize = in.U32() % (kMaxPayload + 1);
  FrameHeader h;

  std::unique_ptr<uint8_t[]> get(new uint8_t[kGetFrameSize]);
  EncodeGet(get.get(), id, capacity);
  FUZZ_REQUIRE(DecodeClientHeader(get.get(), &h) == HeaderError::kNone && h.type == Type::kGet && h.id == id &&
                   h.payloadSize == kGetPayloadSize && GetU32(get.get() + kHeaderSize) == capacity,
               "GET round trip");

  std::unique_ptr<uint8_t[]> reply(new uint8_t[kReplyHeadSize]);
  EncodeReplyHead(reply.get(), status, messageId, dataSize);
  FUZZ_REQUIRE(DecodeClientHeader(reply.get(), &h) == HeaderError::kNone && h.type == Type::kReply && h.id == 0 &&
                   h.payloadSize == kReplyPrefixSize + dataSize,
               "REPLY header round trip (data %u)", dataSize);
  const uint8_t* rp = reply.get() + kHeaderSize;
  FUZZ_REQUIRE(GetI32(rp) == status && GetU32(rp + 4) == 0 && GetU64(rp + 8) == messageId, "REPLY prefix");

  std::unique_ptr<uint8_t[]> send(new uint8_t[kSendHeadSize]);
  EncodeSendHead(send.get(), capacity, inputSize);
  FUZZ_REQUIRE(DecodeClientHeader(send.get(), &h) == HeaderError::kNone && h.type == Type::kSend &&
                   h.payloadSize == kSendPrefixSize + inputSize && GetU32(send.get() + kHeaderSize) == capacity,
               "SEND header round trip (input %u)", inputSize);

  uint8_t any[kHeaderSize];
  EncodeHeader(any, static_cast<Type>(type), id, payloadSize);
  const HeaderError se = DecodeServerHeader(any, &h);
  FUZZ_REQUIRE((se == HeaderError::kNone) == IsServerTypeByte(type), "server header for type 0x%02x", type);
  if (se == HeaderError::kNone) FUZZ_REQUIRE(h.payloadSize == payloadSize && h.id == id, "server header fields");
  const HeaderError ce = DecodeClientHeader(any, &h);
  FUZZ_REQUIRE((ce == HeaderError::kNone) == IsClientTypeByte(type), "client header for type 0x%02x", type);
}

// --- MANAGE_RESULT -------------------------------------------------------------------------------------------
namespace manage = fltmgr::manage;

void PutStr(std::vector<uint8_t>* out, const manage::Str& s) {
  const size_t at = out->size();
  out->resize(at + 2 + s.size() * 2);
  PutU16(out->data() + at, static_cast<uint16_t>(s.size() * 2));
  for (size_t i = 0; i < s.size(); ++i) PutU16(out->data() + at + 2 + 2 * i, static_cast<uint16_t>(s[i]));
}
void PutNum(std::vector<uint8_t>* out, uint32_t v) {
  const size_t at = out->size();
  out->resize(at + 4);
  PutU32(out->data() + at, v);
}

// The payload a decoded result came from, written back in the documented layout.
std::vector<uint8_t> Reencode(manage::Op op, const manage::Result& r) {
  std::vector<uint8_t> out;
  PutNum(&out, static_cast<uint32_t>(r.hr));
  const size_t countAt = out.size();
  PutNum(&out, 0);
  uint32_t count = 0;
  for (const auto& f : r.filters) {
    PutNum(&out, f.flags), PutNum(&out, f.frameId), PutNum(&out, f.instances), PutStr(&out, f.name);
    PutStr(&out, f.altitude), ++count;
  }
  for (const auto& i : r.instances) {
    PutNum(&out, i.flags), PutNum(&out, i.frameId), PutNum(&out, i.fileSystemType), PutStr(&out, i.instance);
    PutStr(&out, i.altitude), PutStr(&out, i.volume), PutStr(&out, i.filter), ++count;
  }
  for (const auto& v : r.volumes) {
    PutNum(&out, v.flags), PutNum(&out, v.frameId), PutNum(&out, v.fileSystemType), PutStr(&out, v.volume);
    PutStr(&out, v.dosName), ++count;
  }
  for (const auto& p : r.ports) {
    PutNum(&out, p.maxConnections), PutNum(&out, p.connections), PutStr(&out, p.port), PutStr(&out, p.filter);
    ++count;
  }
  if ((op == manage::Op::kAttach || op == manage::Op::kDosName) && r.hr >= 0) PutStr(&out, r.name), ++count;
  PutU32(out.data() + countAt, count);
  return out;
}

// Builds a record into an exactly-sized heap block (and one byte less, which must be refused), then checks that
// every offset+length pair stays inside what was written.
template <class Build>
void CheckRecord(Build build, const char* what) {
  DWORD need = 0;
  const HRESULT first = build(nullptr, 0, &need);
  if (first == fltmgr::sim::kHrInvalidArg || first == fltmgr::sim::kHrInvalidData) return;
  FUZZ_REQUIRE(first == fltmgr::sim::kHrInsufficientBuffer && need > 0, "%s: empty buffer gave 0x%08x", what,
               static_cast<unsigned>(first));
  std::unique_ptr<uint8_t[]> exact(new uint8_t[need]);
  DWORD got = 0;
  FUZZ_REQUIRE(build(exact.get(), need, &got) == S_OK && got == need, "%s: exact buffer", what);
  std::unique_ptr<uint8_t[]> shorter(new uint8_t[need]);
  FUZZ_REQUIRE(build(shorter.get(), need - 1, &got) == fltmgr::sim::kHrInsufficientBuffer && got == need,
               "%s: one byte short", what);
}

void CheckNames(const uint8_t* rec, DWORD size, std::initializer_list<std::pair<size_t, size_t>> fields) {
  for (const auto& f : fields) {  // (length field offset, offset field offset)
    const uint32_t len = GetU16(rec + f.first);
    const uint32_t off = GetU16(rec + f.second);
    FUZZ_REQUIRE(off + len <= size && off % 2 == 0 && len % 2 == 0, "name at %u+%u outside %u", off, len, size);
  }
}

void Manage(Input& in) {
  const manage::Op op = static_cast<manage::Op>(1 + in.U8() % 9);
  const std::vector<uint8_t> bytes = in.Rest();
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  std::unique_ptr<uint8_t[]> payload(new uint8_t[size == 0 ? 1 : size]);
  if (size != 0) std::memcpy(payload.get(), bytes.data(), size);
  manage::Result r;
  if (!manage::DecodeManageResult(op, size == 0 ? payload.get() + 1 : payload.get(), size, &r)) return;
  // Accepted: exactly the documented layout (it re-encodes to the same bytes), no records with a failure.
  FUZZ_REQUIRE(Reencode(op, r) == bytes, "MANAGE_RESULT op %u does not re-encode to its input",
               static_cast<unsigned>(op));
  if (r.hr < 0)
    FUZZ_REQUIRE(r.filters.empty() && r.instances.empty() && r.volumes.empty() && r.ports.empty(), "records");
  for (const auto& f : r.filters) {
    for (int cls = 0; cls <= 3; ++cls) {
      CheckRecord([&](void* b, DWORD n, DWORD* got) { return manage::BuildFilterRecord(f, cls, b, n, got); }, "filter");
    }
  }
  for (const auto& i : r.instances) {
    for (int cls = 0; cls <= 4; ++cls) {
      CheckRecord([&](void* b, DWORD n, DWORD* got) { return manage::BuildInstanceRecord(i, cls, b, n, got); },
                  "instance");
    }
    std::vector<uint8_t> full(sizeof(INSTANCE_FULL_INFORMATION) + 4 * 65536);
    DWORD got = 0;
    if (manage::BuildInstanceRecord(i, InstanceFullInformation, full.data(), static_cast<DWORD>(full.size()), &got) ==
        S_OK) {
      CheckNames(full.data(), got,
                 {{offsetof(INSTANCE_FULL_INFORMATION, InstanceNameLength),
                   offsetof(INSTANCE_FULL_INFORMATION, InstanceNameBufferOffset)},
                  {offsetof(INSTANCE_FULL_INFORMATION, AltitudeLength),
                   offsetof(INSTANCE_FULL_INFORMATION, AltitudeBufferOffset)},
                  {offsetof(INSTANCE_FULL_INFORMATION, VolumeNameLength),
                   offsetof(INSTANCE_FULL_INFORMATION, VolumeNameBufferOffset)},
                  {offsetof(INSTANCE_FULL_INFORMATION, FilterNameLength),
                   offsetof(INSTANCE_FULL_INFORMATION, FilterNameBufferOffset)}});
    }
  }
  for (const auto& v : r.volumes) {
    for (int cls = 0; cls <= 2; ++cls) {
      CheckRecord([&](void* b, DWORD n, DWORD* got) { return manage::BuildVolumeRecord(v, cls, b, n, got); }, "volume");
    }
  }
  for (const auto& p : r.ports) {
    CheckRecord([&](void* b, DWORD n, DWORD* got) { return manage::BuildPortRecord(p, b, n, got); }, "port");
  }
}

}  // namespace

// manage.cc's FltSim* entry points need a Host; this target only decodes, so none is ever asked for.
fltmgr::manage::Host& fltmgr::manage::ThisHost() { std::abort(); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  switch (in.U8() % fuzz::kWireModes) {
    case fuzz::kWireServerStream:
      FrameStream(in, true);
      break;
    case fuzz::kWireClientStream:
      FrameStream(in, false);
      break;
    case fuzz::kWireEndpoint:
      Endpoints(in);
      break;
    case fuzz::kWireConnect:
      Connect(in);
      break;
    case fuzz::kWireEncoders:
      Encoders(in);
      break;
    case fuzz::kWireManage:
      Manage(in);
      break;
  }
  return 0;
}
