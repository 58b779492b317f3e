// Shared by the libFuzzer targets and the seed generator: a front-to-back input reader, an invariant check
// that aborts with a message (libFuzzer then saves the input as a crash artifact), and the layout of the
// inputs (first byte selects what the input means).
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace fuzz {

[[noreturn]] inline void Violation(const char* file, int line, const char* fmt, ...) {
  std::fprintf(stderr, "\n==== INVARIANT VIOLATED at %s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_REQUIRE(cond, ...)                                      \
  do {                                                               \
    if (!(cond)) ::fuzz::Violation(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

// Reads the input front to back; past the end every read yields zeros, so any input is a valid script.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return at_ >= n_; }
  size_t remaining() const { return at_ < n_ ? n_ - at_ : 0; }
  uint8_t U8() { return at_ < n_ ? p_[at_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() {
    const uint32_t lo = U16();
    return lo | (static_cast<uint32_t>(U16()) << 16);
  }
  uint64_t U64() {
    const uint64_t lo = U32();
    return lo | (static_cast<uint64_t>(U32()) << 32);
  }
  // n bytes; past the end of the input the missing bytes are a simple counter pattern.
  std::vector<uint8_t> Bytes(size_t n) {
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = at_ < n_ ? p_[at_++] : static_cast<uint8_t>(i * 7 + 1);
    return out;
  }
  // Everything that is left.
  std::vector<uint8_t> Rest() {
    std::vector<uint8_t> out(p_ + (at_ < n_ ? at_ : n_), p_ + n_);
    at_ = n_;
    return out;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t at_ = 0;
};

// Appends little-endian values (seed generation).
class Script {
 public:
  Script& U8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  Script& U16(uint16_t v) { return U8(static_cast<uint8_t>(v)).U8(static_cast<uint8_t>(v >> 8)); }
  Script& U32(uint32_t v) { return U16(static_cast<uint16_t>(v)).U16(static_cast<uint16_t>(v >> 16)); }
  Script& U64(uint64_t v) { return U32(static_cast<uint32_t>(v)).U32(static_cast<uint32_t>(v >> 32)); }
  Script& Bytes(const std::vector<uint8_t>& v) {
    b_.insert(b_.end(), v.begin(), v.end());
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// ---- fuzz_wire: input[0] % kWireModes selects the mode, the rest is its input ----------------------
enum WireMode : uint8_t {
  kWireServerStream = 0,  // server->client frames, decoded like the compat reader does
  kWireClientStream = 1,  // client->server frames (DecodeClientHeader + payload checks)
  kWireEndpoint = 2,      // ParseEndpoint on the rest (NUL-terminated at the first 0 byte)
  kWireConnect = 3,       // ConnectPayloadSize / EncodeConnectPayload round trip
  kWireEncoders = 4,      // EncodeGet / EncodeReplyHead / EncodeSendHead / EncodeHeader round trips
  kWireManage = 5,        // u8 op, then a MANAGE_RESULT payload: DecodeManageResult + the Windows records
  kWireModes = 6,
};

// ---- fuzz_client: a script of client calls and server answers ---------------------------------------
// Header byte: bit 0 synchronous handle (FLT_PORT_FLAG_SYNC_HANDLE); bit 1 no completion port (OVERLAPPED
// polled with GetOverlappedResult); bit 2 at the end, the server hangs up before CloseHandle (else after);
// bits 3-4 handshake: 0/1 CONNECT_RESULT S_OK, 2 CONNECT_RESULT with a u32 hresult from the input, 3 a u8
// length and that many raw bytes, then the server hangs up.
enum ClientFlag : uint8_t {
  kFlagSyncHandle = 1,
  kFlagNoIocp = 2,
  kFlagServerClosesFirst = 4,
};
constexpr uint8_t kHandshakeShift = 3;
enum Handshake : uint8_t { kHandshakeOk = 0, kHandshakeHresult = 2, kHandshakeRaw = 3 };

// Then ops, one byte each (value % kOpCount) followed by its arguments.
enum Op : uint8_t {
  kOpGet = 0,          // u8 capacity selector: FilterGetMessage with an OVERLAPPED
  kOpCancel = 1,       // u8 which: 255 = CancelIoEx(h, NULL), else one pending get (or a foreign OVERLAPPED)
  kOpSend = 2,         // u8 input bytes (255: 300000), u8 output capacity selector: FilterSendMessage (own thread)
  kOpReply = 3,        // u32 status, u8 data bytes (255: 300000): FilterReplyMessage (own thread)
  kOpSyncGet = 4,      // u8 capacity selector: FilterGetMessage without an OVERLAPPED (own thread)
  kOpDrain = 5,        // wait until the client is idle, then take every completion and check it
  kOpGetComplete = 6,  // u8 which get, u8 flags (1: clamp data to fit, 2: fill the buffer, 2+4: half of it), u32
                       // replyLength, u32 id tag, u8 len, data
  kOpGetStatus = 7,  // u8 which get, u8 sel (0 CANCELLED, 1 BUFFER_TOO_SMALL, 2 u32 from input; +4: with a data byte),
                     // u32 status, u32 replyLength
  kOpReplyResult = 8,    // u8 which reply, u32 hresult
  kOpSendResult = 9,     // u8 which send, u8 flags (1: make it valid, 2: fill the output), u32 hresult, u8 len, data
  kOpRawFrame = 10,      // u8 type, u8 id selector, u32 id, u8 len, payload: a frame with a valid length field
  kOpRawBytes = 11,      // u8 len, bytes
  kOpDisconnect = 12,    // u32 status: DISCONNECT, then the server stops writing
  kOpServerHangUp = 13,  // the server stops writing (shutdown SHUT_WR): the client sees EOF
  kOpClientClose = 14,   // CloseHandle(port) now; later client ops are skipped
  kOpServerClose = 15,   // the server closes its socket altogether: the client's next writes fail
  kOpAbort = 16,         // FltSimAbortPort(port): the connection ends, the handle stays open
  kOpCount = 17,
};

// u8 selector -> get buffer capacity (below 16 is invalid and must be refused). 254 and 255 are larger than
// the client's 64 KiB read buffer and its 1 MiB shrink threshold.
inline uint32_t GetCapacity(uint8_t sel) {
  if (sel == 254) return 16u + 100000u;
  if (sel == 255) return 16u + (1u << 20) + 64u;
  return sel <= 200 ? sel : 16u + (sel - 200u) * 64u;
}
// u8 selector -> FilterSendMessage output capacity.
inline uint32_t SendOutCapacity(uint8_t sel) { return sel == 255 ? 100000u : sel <= 200 ? sel : (sel - 200u) * 64u; }
// Selector 255 of a SEND input or REPLY data length: more than a socket buffer holds.
constexpr uint32_t kBigCallData = 300000;

}  // namespace fuzz
