// Simulator wire protocol, version 1 (docs/wire-protocol.md): constants, frame encoding and decoding, and
// endpoint-string parsing. Plain portable C++17 with no OS calls: the POSIX compat layer and the Windows
// simulator-backed fltlib both build on it. All integers on the wire are little-endian whatever the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fltmgr {
namespace wire {

constexpr uint8_t kVersion = 1;
// length(4) version(1) type(1) flags(2) id(4)
constexpr size_t kHeaderSize = 12;
// `length` counts the bytes after itself: 8 header bytes + payload.
constexpr uint32_t kLengthOverhead = 8;
constexpr uint32_t kMaxPayload = 16u * 1024u * 1024u;
// The simulator treats more than this many pending gets (or outstanding SEND/REPLY requests) on one
// connection as a flood; the client refuses locally before reaching it.
constexpr uint32_t kMaxPendingGets = 4096;
constexpr uint32_t kMaxOutstandingRequests = 4096;

// Fixed payload prefixes.
constexpr size_t kGetPayloadSize = 4;          // u32 capacity
constexpr size_t kReplyPrefixSize = 16;        // i32 status, u32 reserved, u64 messageId
constexpr size_t kSendPrefixSize = 4;          // u32 outputCapacity
constexpr size_t kGetCompletePrefixSize = 16;  // i32 ntstatus, u32 replyLength, u64 messageId
constexpr size_t kResultPayloadSize = 4;       // CONNECT_RESULT, REPLY_RESULT, DISCONNECT
constexpr size_t kSendResultPrefixSize = 4;    // i32 hresult
constexpr size_t kMessageHeaderSize = 16;      // FILTER_MESSAGE_HEADER / FILTER_REPLY_HEADER (MSVC)

// Largest data a client may put after the fixed prefix of REPLY / SEND.
constexpr uint32_t kMaxReplyData = kMaxPayload - static_cast<uint32_t>(kReplyPrefixSize);
constexpr uint32_t kMaxSendInput = kMaxPayload - static_cast<uint32_t>(kSendPrefixSize);

enum class Type : uint8_t {
  kConnect = 0x01,
  kGet = 0x02,
  kCancel = 0x03,
  kReply = 0x04,
  kSend = 0x05,
  kManage = 0x06,  // a management request: the stream's only request (native/sim/manage.h)
  kConnectResult = 0x81,
  kGetComplete = 0x82,
  kReplyResult = 0x84,
  kSendResult = 0x85,
  kDisconnect = 0x86,
  kManageResult = 0x87,
};

// NTSTATUS values carried by GET_COMPLETE and DISCONNECT (as unsigned bit patterns).
constexpr uint32_t kStatusSuccess = 0x00000000u;
constexpr uint32_t kStatusBufferTooSmall = 0xC0000023u;
constexpr uint32_t kStatusCancelled = 0xC0000120u;
constexpr uint32_t kStatusPortDisconnected = 0xC0000037u;

// --- little-endian helpers ---------------------------------------------------------------------------
inline void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}
inline void PutU64(uint8_t* p, uint64_t v) {
  PutU32(p, static_cast<uint32_t>(v));
  PutU32(p + 4, static_cast<uint32_t>(v >> 32));
}
inline uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>(static_cast<uint16_t>(p[0]) | static_cast<uint16_t>(p[1] << 8));
}
inline uint32_t GetU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t GetU64(const uint8_t* p) {
  return static_cast<uint64_t>(GetU32(p)) | (static_cast<uint64_t>(GetU32(p + 4)) << 32);
}
inline int32_t GetI32(const uint8_t* p) { return static_cast<int32_t>(GetU32(p)); }

// --- frames ------------------------------------------------------------------------------------------
// Writes the 12-byte header of a frame whose payload is payloadSize bytes (caller keeps it <= kMaxPayload).
void EncodeHeader(uint8_t* out, Type type, uint32_t id, uint32_t payloadSize);

// The fixed part of a REPLY / SEND frame (header + prefix); the variable data is written after it. id 0: the
// caller's request table sets it (PutU32 at offset 8) when it knows the id.
constexpr size_t kGetFrameSize = kHeaderSize + kGetPayloadSize;
void EncodeGet(uint8_t* out, uint32_t id, uint32_t capacity);
constexpr size_t kReplyHeadSize = kHeaderSize + kReplyPrefixSize;
constexpr size_t kSendHeadSize = kHeaderSize + kSendPrefixSize;
void EncodeReplyHead(uint8_t* out, int32_t status, uint64_t messageId, uint32_t dataSize);
void EncodeSendHead(uint8_t* out, uint32_t outputCapacity, uint32_t inputSize);

struct FrameHeader {
  uint32_t payloadSize;
  Type type;
  uint32_t id;
};

enum class HeaderError {
  kNone,
  kBadLength,  // length < 8 or payload > kMaxPayload
  kBadVersion,
  kBadFlags,
  kUnknownType,
};

// Decodes 12 header bytes. Accepts only the types a client receives (0x81..0x87 as listed); a
// client-to-simulator type from the server is kUnknownType.
HeaderError DecodeServerHeader(const uint8_t* p, FrameHeader* out);
// The same for frames a server receives (used by test servers and the simulator-side tooling).
HeaderError DecodeClientHeader(const uint8_t* p, FrameHeader* out);
const char* HeaderErrorText(HeaderError e);

// CONNECT payload. nameUtf16 holds nameUnits UTF-16 code units in host order (no terminator).
// Returns 0 if a field is too long for its u16 length or the payload exceeds kMaxPayload.
size_t ConnectPayloadSize(size_t nameUnits, size_t contextBytes, size_t secretBytes);
void EncodeConnectPayload(uint8_t* out, uint32_t options, uint32_t clientPid, const char16_t* nameUtf16,
                          size_t nameUnits, const void* context, size_t contextBytes, const char* secret,
                          size_t secretBytes);

// Payload views of simulator -> client frames. Each returns false if the payload is malformed for its type
// (wrong size, data where none is allowed, a GET_COMPLETE status that is neither STATUS_SUCCESS nor a
// failure). Data pointers alias the payload.
struct GetComplete {
  uint32_t status;       // NTSTATUS bit pattern
  uint32_t replyLength;  // or, with STATUS_BUFFER_TOO_SMALL, the size needed (header included)
  uint64_t messageId;
  const uint8_t* data;
  uint32_t dataSize;
};
struct SendResult {
  int32_t hresult;
  const uint8_t* data;
  uint32_t dataSize;
};
bool DecodeResult(const uint8_t* payload, uint32_t size, int32_t* value);  // CONNECT/REPLY_RESULT, DISCONNECT
bool DecodeGetComplete(const uint8_t* payload, uint32_t size, GetComplete* out);
bool DecodeSendResult(const uint8_t* payload, uint32_t size, SendResult* out);

// --- endpoints ---------------------------------------------------------------------------------------
struct Endpoint {
  enum class Kind { kUnix, kTcp, kPipe };
  Kind kind = Kind::kUnix;
  std::string path;         // kUnix: socket path; kPipe: \\.\pipe\NAME
  uint8_t address[4] = {};  // kTcp: IPv4 loopback address
  uint16_t port = 0;        // kTcp
  std::string secret;       // kTcp, kPipe (required, ASCII, 1..65535 bytes)
};

// Parses `unix:PATH`, an absolute path (starting with '/'), `tcp:127.x.y.z:PORT#SECRET` or
// `pipe:\\.\pipe\NAME#SECRET`. TCP must be an IPv4 loopback literal (the secret travels in clear).
// On failure returns false and sets *why.
bool ParseEndpoint(const char* text, Endpoint* out, std::string* why);

}  // namespace wire
}  // namespace fltmgr
