// Test helpers: a tiny CHECK framework and an in-process fake simulator speaking the server half of
// docs/wire-protocol.md over a Unix socket (or TCP loopback) in a temporary directory.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../compat/win32_compat.h"
#include "../sim/wire.h"

namespace test {

// How long a test waits for something that must happen (a frame, a completion, an EOF) before it calls it hung.
// Generous on purpose: CI runs these under TSan on a busy 2-core machine. A guard, never an expectation.
constexpr int kHangGuardMs = 60000;

inline std::atomic<int>& Failures() {
  static std::atomic<int> failures{0};
  return failures;
}

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "  CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ++test::Failures();                                                               \
    }                                                                                   \
  } while (0)

#define CHECK_EQ(a, b)                                                                                              \
  do {                                                                                                              \
    const auto va_ = (a);                                                                                           \
    const auto vb_ = (b);                                                                                           \
    if (!(va_ == vb_)) {                                                                                            \
      std::fprintf(stderr, "  CHECK_EQ failed at %s:%d: %s == %s (0x%llx vs 0x%llx)\n", __FILE__, __LINE__, #a, #b, \
                   static_cast<unsigned long long>(va_), static_cast<unsigned long long>(vb_));                     \
      ++test::Failures();                                                                                           \
    }                                                                                                               \
  } while (0)

using Bytes = std::vector<uint8_t>;

struct Frame {
  fltmgr::wire::Type type = fltmgr::wire::Type::kConnect;
  uint32_t id = 0;
  Bytes payload;
};

inline Bytes U32(uint32_t v) {
  Bytes b(4);
  fltmgr::wire::PutU32(b.data(), v);
  return b;
}

inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes GetCompletePayload(uint32_t status, uint32_t replyLength, uint64_t messageId, const Bytes& data) {
  Bytes b(16);
  fltmgr::wire::PutU32(b.data(), status);
  fltmgr::wire::PutU32(b.data() + 4, replyLength);
  fltmgr::wire::PutU64(b.data() + 8, messageId);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// --- MANAGE (native/sim/manage.h): what a management request carries, and canned answers ----------------
struct ManageRequest {
  uint32_t op = 0;
  uint32_t pid = 0;
  std::vector<std::u16string> args;
  std::string secret;
};

// A wire string: u16 byteLength + UTF-16LE.
inline Bytes Str16(const std::u16string& s) {
  Bytes b(2 + s.size() * 2);
  fltmgr::wire::PutU16(b.data(), static_cast<uint16_t>(s.size() * 2));
  for (size_t i = 0; i < s.size(); ++i) fltmgr::wire::PutU16(b.data() + 2 + 2 * i, static_cast<uint16_t>(s[i]));
  return b;
}

// A MANAGE_RESULT payload: i32 hresult, u32 count, the records' bytes.
inline Bytes ManageResultPayload(uint32_t hresult, uint32_t count, const Bytes& records = {}) {
  return Cat({U32(hresult), U32(count), records});
}

inline Bytes FilterRecordBytes(uint32_t flags, uint32_t frame, uint32_t instances, const std::u16string& name,
                               const std::u16string& altitude) {
  return Cat({U32(flags), U32(frame), U32(instances), Str16(name), Str16(altitude)});
}
inline Bytes InstanceRecordBytes(uint32_t flags, uint32_t frame, uint32_t fsType, const std::u16string& instance,
                                 const std::u16string& altitude, const std::u16string& volume,
                                 const std::u16string& filter) {
  return Cat({U32(flags), U32(frame), U32(fsType), Str16(instance), Str16(altitude), Str16(volume), Str16(filter)});
}
inline Bytes VolumeRecordBytes(uint32_t flags, uint32_t frame, uint32_t fsType, const std::u16string& volume,
                               const std::u16string& dosName) {
  return Cat({U32(flags), U32(frame), U32(fsType), Str16(volume), Str16(dosName)});
}
inline Bytes PortRecordBytes(uint32_t maxConnections, uint32_t connections, const std::u16string& port,
                             const std::u16string& filter) {
  return Cat({U32(maxConnections), U32(connections), Str16(port), Str16(filter)});
}

// One accepted stream, server side.
class ServerConn {
 public:
  explicit ServerConn(int fd) : fd_(fd) {}
  ~ServerConn() { Close(); }
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // false on EOF, error, malformed client frame or time-out.
  bool Read(Frame* f, int timeoutMs = kHangGuardMs) {
    for (;;) {
      const size_t avail = buf_.size() - pos_;
      if (avail >= fltmgr::wire::kHeaderSize) {
        fltmgr::wire::FrameHeader h;
        const uint8_t* p = buf_.data() + pos_;
        if (fltmgr::wire::DecodeClientHeader(p, &h) != fltmgr::wire::HeaderError::kNone) return false;
        const size_t total = fltmgr::wire::kHeaderSize + h.payloadSize;
        if (avail >= total) {
          f->type = h.type;
          f->id = h.id;
          f->payload.assign(p + fltmgr::wire::kHeaderSize, p + total);
          pos_ += total;
          return true;
        }
      }
      if (!Fill(timeoutMs)) return false;
    }
  }

  // True if the client closed the stream (EOF) within the time-out, discarding frames.
  bool WaitEof(int timeoutMs = kHangGuardMs) {
    Frame f;
    while (Read(&f, timeoutMs)) {
    }
    return eof_;
  }

  // True if a complete frame or EOF is already buffered or readable without waiting.
  bool Readable() {
    pollfd p = {fd_, POLLIN, 0};
    return buf_.size() - pos_ >= fltmgr::wire::kHeaderSize || poll(&p, 1, 0) > 0;
  }

  void Write(fltmgr::wire::Type type, uint32_t id, const Bytes& payload) {
    Bytes frame(fltmgr::wire::kHeaderSize);
    fltmgr::wire::EncodeHeader(frame.data(), type, id, static_cast<uint32_t>(payload.size()));
    frame.insert(frame.end(), payload.begin(), payload.end());
    WriteRaw(frame);
  }

  void WriteRaw(const Bytes& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // client gone; the test checks what it needs elsewhere
      }
      off += static_cast<size_t>(n);
    }
  }

  // Reads CONNECT and answers it. Returns false if the first frame is not a well-formed CONNECT.
  bool Handshake(int32_t result = 0, std::u16string* name = nullptr, Bytes* context = nullptr,
                 std::string* secret = nullptr, uint32_t* options = nullptr, uint32_t* pid = nullptr) {
    Frame f;
    if (!Read(&f) || f.type != fltmgr::wire::Type::kConnect || f.id != 0) return false;
    const Bytes& p = f.payload;
    size_t at = 0;
    auto need = [&](size_t n) { return at + n <= p.size(); };
    if (!need(10)) return false;
    if (options) *options = fltmgr::wire::GetU32(p.data());
    if (pid) *pid = fltmgr::wire::GetU32(p.data() + 4);
    at = 8;
    const uint16_t nameBytes = fltmgr::wire::GetU16(p.data() + at);
    at += 2;
    if (!need(nameBytes + 2u)) return false;
    if (name) {
      name->clear();
      for (size_t i = 0; i < nameBytes; i += 2) {
        name->push_back(static_cast<char16_t>(fltmgr::wire::GetU16(p.data() + at + i)));
      }
    }
    at += nameBytes;
    const uint16_t ctxBytes = fltmgr::wire::GetU16(p.data() + at);
    at += 2;
    if (!need(ctxBytes + 2u)) return false;
    if (context) context->assign(p.begin() + static_cast<long>(at), p.begin() + static_cast<long>(at + ctxBytes));
    at += ctxBytes;
    const uint16_t secretBytes = fltmgr::wire::GetU16(p.data() + at);
    at += 2;
    if (at + secretBytes != p.size()) return false;
    if (secret) secret->assign(reinterpret_cast<const char*>(p.data() + at), secretBytes);
    Write(fltmgr::wire::Type::kConnectResult, 0, U32(static_cast<uint32_t>(result)));
    return true;
  }

  // Reads a MANAGE (the stream's first frame) and parses it strictly. False if it is anything else.
  bool ReadManage(ManageRequest* out) {
    Frame f;
    if (!Read(&f) || f.type != fltmgr::wire::Type::kManage || f.id != 0) return false;
    const Bytes& p = f.payload;
    if (p.size() < 10) return false;
    out->op = fltmgr::wire::GetU32(p.data());
    out->pid = fltmgr::wire::GetU32(p.data() + 4);
    const uint16_t argc = fltmgr::wire::GetU16(p.data() + 8);
    size_t at = 10;
    out->args.clear();
    for (uint16_t i = 0; i < argc; ++i) {
      if (at + 2 > p.size()) return false;
      const uint16_t bytes = fltmgr::wire::GetU16(p.data() + at);
      at += 2;
      if ((bytes & 1) != 0 || at + bytes > p.size()) return false;
      std::u16string s;
      for (size_t k = 0; k < bytes; k += 2) s.push_back(static_cast<char16_t>(fltmgr::wire::GetU16(p.data() + at + k)));
      out->args.push_back(s);
      at += bytes;
    }
    if (at + 2 > p.size()) return false;
    const uint16_t secretBytes = fltmgr::wire::GetU16(p.data() + at);
    at += 2;
    if (at + secretBytes != p.size()) return false;
    out->secret.assign(reinterpret_cast<const char*>(p.data() + at), secretBytes);
    return true;
  }

  // Answers a MANAGE as the simulator does: one MANAGE_RESULT, then the stream is closed.
  void AnswerManage(const Bytes& resultPayload) {
    Write(fltmgr::wire::Type::kManageResult, 0, resultPayload);
    Close();
  }

  // Reads frames until a GET arrives; returns its id (0 on failure) and capacity.
  uint32_t ReadGet(uint32_t* capacity = nullptr) {
    Frame f;
    if (!Read(&f) || f.type != fltmgr::wire::Type::kGet || f.payload.size() != 4) return 0;
    if (capacity) *capacity = fltmgr::wire::GetU32(f.payload.data());
    return f.id;
  }

 private:
  bool Fill(int timeoutMs) {
    pollfd p = {fd_, POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, timeoutMs);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    uint8_t tmp[65536];
    const ssize_t r = recv(fd_, tmp, sizeof(tmp), 0);
    if (r <= 0) {
      eof_ = r == 0;
      return false;
    }
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > 65536) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(pos_));
      pos_ = 0;
    }
    buf_.insert(buf_.end(), tmp, tmp + r);
    return true;
  }

  int fd_;
  Bytes buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

// A listening socket plus one server thread per accepted connection (handler runs on it).
class FakeSim {
 public:
  using Handler = std::function<void(ServerConn&)>;

  // Unix socket at dir/name.
  FakeSim(const std::string& dir, const std::string& name) {
    path_ = dir + "/" + name;
    unlink(path_.c_str());
    listen_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un un;
    std::memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", path_.c_str());
    if (bind(listen_, reinterpret_cast<sockaddr*>(&un), sizeof(un)) != 0 || listen(listen_, 64) != 0) {
      std::perror("fake sim bind/listen");
    }
    endpoint_ = "unix:" + path_;
  }

  // TCP on 127.0.0.1, ephemeral port.
  explicit FakeSim(const std::string& secret) {
    listen_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in in;
    std::memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = 0;
    socklen_t len = sizeof(in);
    if (bind(listen_, reinterpret_cast<sockaddr*>(&in), sizeof(in)) != 0 || listen(listen_, 64) != 0 ||
        getsockname(listen_, reinterpret_cast<sockaddr*>(&in), &len) != 0) {
      std::perror("fake sim tcp");
    }
    endpoint_ = "tcp:127.0.0.1:" + std::to_string(ntohs(in.sin_port)) + "#" + secret;
  }

  ~FakeSim() {
    Join();
    if (listen_ >= 0) close(listen_);
    if (!path_.empty()) unlink(path_.c_str());
  }

  const std::string& endpoint() const { return endpoint_; }

  // Accepts `count` connections in the background, each served by handler on its own thread.
  void Serve(Handler handler, int count = 1) {
    acceptor_ = std::thread([this, handler, count] {
      std::vector<std::thread> threads;
      for (int i = 0; i < count; ++i) {
        pollfd p = {listen_, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0) break;
        const int fd = accept(listen_, nullptr, nullptr);
        if (fd < 0) break;
        threads.emplace_back([fd, handler] {
          ServerConn conn(fd);
          handler(conn);
        });
      }
      for (std::thread& t : threads) t.join();
    });
  }

  void Join() {
    if (acceptor_.joinable()) acceptor_.join();
  }

 private:
  int listen_ = -1;
  std::string path_;
  std::string endpoint_;
  std::thread acceptor_;
};

}  // namespace test
