// fltlib management calls for non-Windows hosts (declarations: win32_compat.h and native/sim/fltsim_manage.h).
// Everything but the transport and the handles is native/sim/manage.cc; here: one blocking socket per
// request (unix or TCP loopback, the same connect as a port's), and find handles as compat handles.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include "../sim/manage.h"
#include "handle.h"
#include "socket.h"

namespace fltmgr {
namespace compat {
namespace {

class SocketStream final : public manage::Stream {
 public:
  explicit SocketStream(int fd) : fd_(fd) {}
  ~SocketStream() override { close(fd_); }
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  bool WriteAll(const uint8_t* data, size_t size) override {
    while (size > 0) {
      const ssize_t n = send(fd_, data, size, kSendFlags);  // bounded by SO_SNDTIMEO (OpenSocket)
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  long Read(uint8_t* at, size_t room, int timeoutMs) override {
    for (;;) {
      pollfd p = {fd_, POLLIN, 0};
      const int ready = poll(&p, 1, timeoutMs);
      if (ready < 0 && errno == EINTR) continue;  // the deadline is re-read by the caller's next call
      if (ready < 0) return kEnded;
      if (ready == 0) return kTimedOut;
      const ssize_t n = recv(fd_, at, room, 0);
      if (n < 0 && errno == EINTR) continue;
      return n <= 0 ? kEnded : static_cast<long>(n);
    }
  }

 private:
  const int fd_;
};

// A find handle: an ordinary compat handle (Filter*FindClose or CloseHandle closes it).
class FindObject final : public Object {
 public:
  static constexpr uint32_t kMagic = kMagicFind;
  explicit FindObject(std::shared_ptr<manage::FindState> state) : Object(kMagic), state_(std::move(state)) {}
  void OnClose() override {}
  const std::shared_ptr<manage::FindState>& state() const { return state_; }

 private:
  const std::shared_ptr<manage::FindState> state_;
};

class PosixHost final : public manage::Host {
 public:
  bool DefaultEndpoint(std::string* out) override { return Env("FLTMGR_SIMULATOR", out); }
  bool ConnectTimeoutSetting(std::string* out) override { return Env("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", out); }
  wire::Endpoint::Kind Unreachable() const override { return wire::Endpoint::Kind::kPipe; }
  uint32_t ProcessId() const override { return static_cast<uint32_t>(getpid()); }

  HRESULT Open(const wire::Endpoint& ep, sim::Clock::time_point deadline,
               std::unique_ptr<manage::Stream>* out) override {
    HRESULT hr = S_OK;
    const int fd = OpenSocket(ep, deadline, &hr);
    if (fd < 0) return hr;
    out->reset(new (std::nothrow) SocketStream(fd));
    if (!*out) {
      close(fd);
      return E_OUTOFMEMORY;
    }
    return S_OK;
  }

  HANDLE InsertFind(std::shared_ptr<manage::FindState> state) override {
    FindObject* o = new (std::nothrow) FindObject(std::move(state));
    return o == nullptr ? nullptr : static_cast<Object*>(o);
  }
  std::shared_ptr<manage::FindState> LookupFind(HANDLE h) override {
    Ref<FindObject> o = RefFromHandle<FindObject>(h);
    return o ? o->state() : nullptr;
  }
  bool CloseFind(HANDLE h) override {
    Ref<FindObject> o = RefFromHandle<FindObject>(h);
    return o && CloseObject(o.get());
  }

 private:
  static bool Env(const char* name, std::string* out) {
    const char* v = std::getenv(name);
    if (v == nullptr) return false;
    *out = v;
    return true;
  }
};

}  // namespace
}  // namespace compat

manage::Host& manage::ThisHost() {
  static compat::PosixHost host;  // stateless
  return host;
}

}  // namespace fltmgr

// --- fltlib's names: the FLTMGR_SIMULATOR endpoint ---------------------------------------------------------

HRESULT FilterLoad(LPCWSTR lpFilterName) { return FltSimFilterLoad(nullptr, lpFilterName); }
HRESULT FilterUnload(LPCWSTR lpFilterName) { return FltSimFilterUnload(nullptr, lpFilterName); }
HRESULT FilterFindFirst(FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                        LPDWORD lpBytesReturned, LPHANDLE lpFilterFind) {
  return FltSimFilterFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned, lpFilterFind);
}
HRESULT FilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                       DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterFindNext(hFilterFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterFindClose(HANDLE hFilterFind) { return FltSimFilterFindClose(hFilterFind); }
HRESULT FilterInstanceFindFirst(LPCWSTR lpFilterName, INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterInstanceFind) {
  return FltSimFilterInstanceFindFirst(nullptr, lpFilterName, dwInformationClass, lpBuffer, dwBufferSize,
                                       lpBytesReturned, lpFilterInstanceFind);
}
HRESULT FilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                               LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterInstanceFindNext(hFilterInstanceFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterInstanceFindClose(HANDLE hFilterInstanceFind) {
  return FltSimFilterInstanceFindClose(hFilterInstanceFind);
}
HRESULT FilterVolumeFindFirst(FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                              LPDWORD lpBytesReturned, PHANDLE lpVolumeFind) {
  return FltSimFilterVolumeFindFirst(nullptr, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned,
                                     lpVolumeFind);
}
HRESULT FilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                             DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeFindNext(hVolumeFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FilterVolumeFindClose(HANDLE hVolumeFind) { return FltSimFilterVolumeFindClose(hVolumeFind); }
HRESULT FilterVolumeInstanceFindFirst(LPCWSTR lpVolumeName, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                      LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                      LPHANDLE lpVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindFirst(nullptr, lpVolumeName, dwInformationClass, lpBuffer, dwBufferSize,
                                             lpBytesReturned, lpVolumeInstanceFind);
}
HRESULT FilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                     LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterVolumeInstanceFindNext(hVolumeInstanceFind, dwInformationClass, lpBuffer, dwBufferSize,
                                            lpBytesReturned);
}
HRESULT FilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind) {
  return FltSimFilterVolumeInstanceFindClose(hVolumeInstanceFind);
}
HRESULT FilterAttach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                     DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttach(nullptr, lpFilterName, lpVolumeName, lpInstanceName, dwCreatedInstanceNameLength,
                            lpCreatedInstanceName);
}
HRESULT FilterAttachAtAltitude(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpAltitude, LPCWSTR lpInstanceName,
                               DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return FltSimFilterAttachAtAltitude(nullptr, lpFilterName, lpVolumeName, lpAltitude, lpInstanceName,
                                      dwCreatedInstanceNameLength, lpCreatedInstanceName);
}
HRESULT FilterDetach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName) {
  return FltSimFilterDetach(nullptr, lpFilterName, lpVolumeName, lpInstanceName);
}
HRESULT FilterGetDosName(LPCWSTR lpVolumeName, LPWSTR lpDosName, DWORD dwDosNameBufferSize) {
  return FltSimFilterGetDosName(nullptr, lpVolumeName, lpDosName, dwDosNameBufferSize);
}
