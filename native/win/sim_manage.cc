// The simulator-backed fltlib management calls for Windows and Wine (declarations: native/sim/fltsim_manage.h).
// Everything but the transport and the handles is native/sim/manage.cc; here: one stream per request over the
// relay's upstream (upstream.h: named pipe or TCP), and find handles in a registry keyed by a real handle
// (an unsignalled event) so that the values are unique and a stray CloseHandle on one is harmless.
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "../sim/manage.h"
#include "sim_fltlib.h"
#include "upstream.h"

namespace fltmgr {
namespace winsim {
namespace {

class UpstreamStream final : public manage::Stream {
 public:
  explicit UpstreamStream(std::unique_ptr<Upstream> up) : up_(std::move(up)) {}
  bool WriteAll(const uint8_t* data, size_t size) override { return up_->WriteAll(data, size); }
  long Read(uint8_t* at, size_t room, int timeoutMs) override {
    for (;;) {
      const long n = ReadUpstreamFor(*up_, at, room, timeoutMs);
      if (n != 0) return n == -2 ? kTimedOut : (n < 0 ? kEnded : n);
    }
  }

 private:
  std::unique_ptr<Upstream> up_;
};

class WinHost final : public manage::Host {
 public:
  bool DefaultEndpoint(std::string* out) override { return ReadEnv("FLTMGR_SIMULATOR", out); }
  bool ConnectTimeoutSetting(std::string* out) override { return ReadEnv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", out); }
  wire::Endpoint::Kind Unreachable() const override { return wire::Endpoint::Kind::kUnix; }
  uint32_t ProcessId() const override { return GetCurrentProcessId(); }

  HRESULT Open(const wire::Endpoint& ep, sim::Clock::time_point deadline,
               std::unique_ptr<manage::Stream>* out) override {
    std::unique_ptr<Upstream> up;
    const HRESULT hr = OpenUpstream(ep, deadline, &up);
    if (FAILED(hr)) return hr;
    out->reset(new (std::nothrow) UpstreamStream(std::move(up)));
    return *out ? S_OK : E_OUTOFMEMORY;
  }

  HANDLE InsertFind(std::shared_ptr<manage::FindState> state) override {
    HANDLE h = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (h == nullptr) return nullptr;
    try {
      std::lock_guard<std::mutex> lock(mu_);
      finds_[h] = std::move(state);
    } catch (const std::bad_alloc&) {
      CloseHandle(h);
      return nullptr;
    }
    return h;
  }
  std::shared_ptr<manage::FindState> LookupFind(HANDLE h) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = finds_.find(h);
    return it == finds_.end() ? nullptr : it->second;
  }
  bool CloseFind(HANDLE h) override {
    std::shared_ptr<manage::FindState> doomed;  // released after the lock
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = finds_.find(h);
      if (it == finds_.end()) return false;
      doomed = std::move(it->second);
      finds_.erase(it);
    }
    CloseHandle(h);
    return true;
  }

 private:
  std::mutex mu_;
  std::unordered_map<HANDLE, std::shared_ptr<manage::FindState>> finds_;
};

}  // namespace
}  // namespace winsim

manage::Host& manage::ThisHost() {
  // Never destroyed: a call may still run on another thread while the process (or the DLL) goes away.
  static winsim::WinHost* const host = new winsim::WinHost();
  return *host;
}

}  // namespace fltmgr
