#include "wire.h"

#include <cstring>

namespace fltmgr {
namespace wire {
namespace {

bool IsServerType(uint8_t t) {
  return t == static_cast<uint8_t>(Type::kConnectResult) || t == static_cast<uint8_t>(Type::kGetComplete) ||
         t == static_cast<uint8_t>(Type::kReplyResult) || t == static_cast<uint8_t>(Type::kSendResult) ||
         t == static_cast<uint8_t>(Type::kDisconnect) || t == static_cast<uint8_t>(Type::kManageResult);
}

bool IsClientType(uint8_t t) {
  return t >= static_cast<uint8_t>(Type::kConnect) && t <= static_cast<uint8_t>(Type::kManage);
}

HeaderError DecodeHeader(const uint8_t* p, FrameHeader* out, bool (*typeOk)(uint8_t)) {
  const uint32_t length = GetU32(p);
  if (length < kLengthOverhead || length - kLengthOverhead > kMaxPayload) return HeaderError::kBadLength;
  if (p[4] != kVersion) return HeaderError::kBadVersion;
  if (GetU16(p + 6) != 0) return HeaderError::kBadFlags;
  if (!typeOk(p[5])) return HeaderError::kUnknownType;
  out->payloadSize = length - kLengthOverhead;
  out->type = static_cast<Type>(p[5]);
  out->id = GetU32(p + 8);
  return HeaderError::kNone;
}

// Decimal digits only, no sign, no leading '+'; false on overflow past max.
bool ParseDecimal(const char* begin, const char* end, uint32_t max, uint32_t* out) {
  if (begin == end || end - begin > 10) return false;
  uint64_t v = 0;
  for (const char* c = begin; c != end; ++c) {
    if (*c < '0' || *c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(*c - '0');
  }
  if (v > max) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseSecret(const std::string& s, std::string* why) {
  if (s.empty()) {
    *why = "endpoint needs a secret after '#'";
    return false;
  }
  if (s.size() > 0xFFFF) {
    *why = "secret is longer than 65535 bytes";
    return false;
  }
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) {
      *why = "secret must be printable ASCII";
      return false;
    }
  }
  return true;
}

bool ParseIpv4(const std::string& s, uint8_t* addr) {
  const char* p = s.c_str();
  const char* end = p + s.size();
  for (int i = 0; i < 4; ++i) {
    const char* q = p;
    while (q != end && *q != '.') ++q;
    if (q - p > 3) return false;
    uint32_t octet = 0;
    if (!ParseDecimal(p, q, 255, &octet)) return false;
    addr[i] = static_cast<uint8_t>(octet);
    if (i < 3) {
      if (q == end) return false;
      p = q + 1;
    } else if (q != end) {
      return false;
    }
  }
  return true;
}

}  // namespace

void EncodeHeader(uint8_t* out, Type type, uint32_t id, uint32_t payloadSize) {
  PutU32(out, payloadSize + kLengthOverhead);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>(type);
  PutU16(out + 6, 0);
  PutU32(out + 8, id);
}

HeaderError DecodeServerHeader(const uint8_t* p, FrameHeader* out) { return DecodeHeader(p, out, IsServerType); }
HeaderError DecodeClientHeader(const uint8_t* p, FrameHeader* out) { return DecodeHeader(p, out, IsClientType); }

const char* HeaderErrorText(HeaderError e) {
  switch (e) {
    case HeaderError::kNone:
      return "ok";
    case HeaderError::kBadLength:
      return "frame length out of range";
    case HeaderError::kBadVersion:
      return "unsupported protocol version";
    case HeaderError::kBadFlags:
      return "nonzero flags";
    case HeaderError::kUnknownType:
      return "unknown frame type";
  }
  return "?";
}

size_t ConnectPayloadSize(size_t nameUnits, size_t contextBytes, size_t secretBytes) {
  if (nameUnits > 0xFFFF / 2 || contextBytes > 0xFFFF || secretBytes > 0xFFFF) return 0;
  const size_t size = 4 + 4 + 2 + nameUnits * 2 + 2 + contextBytes + 2 + secretBytes;
  return size > kMaxPayload ? 0 : size;
}

void EncodeConnectPayload(uint8_t* out, uint32_t options, uint32_t clientPid, const char16_t* nameUtf16,
                          size_t nameUnits, const void* context, size_t contextBytes, const char* secret,
                          size_t secretBytes) {
  uint8_t* p = out;
  PutU32(p, options);
  PutU32(p + 4, clientPid);
  p += 8;
  PutU16(p, static_cast<uint16_t>(nameUnits * 2));
  p += 2;
  for (size_t i = 0; i < nameUnits; ++i, p += 2) PutU16(p, static_cast<uint16_t>(nameUtf16[i]));
  PutU16(p, static_cast<uint16_t>(contextBytes));
  p += 2;
  if (contextBytes != 0) std::memcpy(p, context, contextBytes);
  p += contextBytes;
  PutU16(p, static_cast<uint16_t>(secretBytes));
  p += 2;
  if (secretBytes != 0) std::memcpy(p, secret, secretBytes);
}

bool DecodeResult(const uint8_t* payload, uint32_t size, int32_t* value) {
  if (size != kResultPayloadSize) return false;
  *value = GetI32(payload);
  return true;
}

bool DecodeGetComplete(const uint8_t* payload, uint32_t size, GetComplete* out) {
  if (size < kGetCompletePrefixSize) return false;
  out->status = GetU32(payload);
  out->replyLength = GetU32(payload + 4);
  out->messageId = GetU64(payload + 8);
  out->data = payload + kGetCompletePrefixSize;
  out->dataSize = size - static_cast<uint32_t>(kGetCompletePrefixSize);
  // A get ends with a message (STATUS_SUCCESS) or a failure (error or warning severity). Any other
  // success-class status (STATUS_PENDING, informational) would complete the caller's I/O as still pending,
  // or as a success that wrote no FILTER_MESSAGE_HEADER.
  if (out->status != kStatusSuccess && out->status < 0x80000000u) return false;
  // Only a delivered message carries data (the protocol says `data` is empty otherwise).
  return out->status == kStatusSuccess || out->dataSize == 0;
}

bool DecodeSendResult(const uint8_t* payload, uint32_t size, SendResult* out) {
  if (size < kSendResultPrefixSize) return false;
  out->hresult = GetI32(payload);
  out->data = payload + kSendResultPrefixSize;
  out->dataSize = size - static_cast<uint32_t>(kSendResultPrefixSize);
  return out->hresult >= 0 || out->dataSize == 0;
}

bool ParseEndpoint(const char* text, Endpoint* out, std::string* why) {
  if (text == nullptr || *text == '\0') {
    *why = "empty endpoint";
    return false;
  }
  const std::string s(text);
  *out = Endpoint();
  if (s[0] == '/' || s.compare(0, 5, "unix:") == 0) {
    out->kind = Endpoint::Kind::kUnix;
    out->path = s[0] == '/' ? s : s.substr(5);
    if (out->path.empty()) {
      *why = "unix endpoint without a path";
      return false;
    }
    return true;
  }
  if (s.compare(0, 4, "tcp:") == 0) {
    out->kind = Endpoint::Kind::kTcp;
    const size_t hash = s.find('#');
    if (hash == std::string::npos) {
      *why = "tcp endpoint needs '#SECRET'";
      return false;
    }
    out->secret = s.substr(hash + 1);
    if (!ParseSecret(out->secret, why)) return false;
    const std::string hostPort = s.substr(4, hash - 4);
    const size_t colon = hostPort.rfind(':');
    if (colon == std::string::npos) {
      *why = "tcp endpoint needs HOST:PORT";
      return false;
    }
    if (!ParseIpv4(hostPort.substr(0, colon), out->address)) {
      *why = "tcp host must be an IPv4 literal";
      return false;
    }
    if (out->address[0] != 127) {
      *why = "tcp host must be a loopback address (127.x.y.z)";
      return false;
    }
    uint32_t port = 0;
    const char* portBegin = hostPort.c_str() + colon + 1;
    if (!ParseDecimal(portBegin, hostPort.c_str() + hostPort.size(), 65535, &port) || port == 0) {
      *why = "tcp port must be 1..65535";
      return false;
    }
    out->port = static_cast<uint16_t>(port);
    return true;
  }
  if (s.compare(0, 5, "pipe:") == 0) {
    out->kind = Endpoint::Kind::kPipe;
    // Pipe names may contain '#'; generated secrets do not.
    const size_t hash = s.rfind('#');
    if (hash == std::string::npos) {
      *why = "pipe endpoint needs '#SECRET'";
      return false;
    }
    out->secret = s.substr(hash + 1);
    if (!ParseSecret(out->secret, why)) return false;
    out->path = s.substr(5, hash - 5);
    if (out->path.compare(0, 9, "\\\\.\\pipe\\") != 0 || out->path.size() == 9) {
      *why = "pipe endpoint must be \\\\.\\pipe\\NAME";
      return false;
    }
    return true;
  }
  *why = "unknown endpoint syntax (expected unix:PATH, /PATH, tcp:127.0.0.1:PORT#SECRET or pipe:...#SECRET)";
  return false;
}

void EncodeGet(uint8_t* out, uint32_t id, uint32_t capacity) {
  EncodeHeader(out, Type::kGet, id, kGetPayloadSize);
  PutU32(out + kHeaderSize, capacity);
}

void EncodeReplyHead(uint8_t* out, int32_t status, uint64_t messageId, uint32_t dataSize) {
  EncodeHeader(out, Type::kReply, 0, static_cast<uint32_t>(kReplyPrefixSize) + dataSize);
  PutU32(out + kHeaderSize, static_cast<uint32_t>(status));
  PutU32(out + kHeaderSize + 4, 0);
  PutU64(out + kHeaderSize + 8, messageId);
}

void EncodeSendHead(uint8_t* out, uint32_t outputCapacity, uint32_t inputSize) {
  EncodeHeader(out, Type::kSend, 0, static_cast<uint32_t>(kSendPrefixSize) + inputSize);
  PutU32(out + kHeaderSize, outputCapacity);
}

}  // namespace wire
}  // namespace fltmgr
