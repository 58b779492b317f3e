#include "manage.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "blocking_calls.h"
#include "fltapi.h"
#include "manage_records.h"

namespace fltmgr {
namespace {

// Enumeration buffers start small (one record is a few hundred bytes) and grow to what the call says it needs;
// the cap bounds what a lying "needed" size can make us allocate.
constexpr DWORD kInitialBuffer = 1024;
constexpr DWORD kMaxBuffer = 64 * 1024;
// A find handle that never says ERROR_NO_MORE_ITEMS would otherwise loop for ever.
constexpr size_t kMaxRecords = 1u << 20;
// FilterAttach's created-name buffer (bytes): INSTANCE_NAME_MAX_CHARS (255) and a NUL fit with room to spare.
// Never retried with a larger one: a second call would attach a second instance.
constexpr DWORD kCreatedNameBytes = 1024 * sizeof(WCHAR);
// FilterGetDosName's buffer (WCHARs): a drive letter or a mount point path; grown once for a long mount path.
constexpr DWORD kDosNameChars = 261;
constexpr DWORD kMaxDosNameChars = 32768;

constexpr HRESULT kHrInvalidData = HresultFromWin32(13);          // ERROR_INVALID_DATA: a malformed record
constexpr HRESULT kHrInsufficientBuffer = HresultFromWin32(122);  // ERROR_INSUFFICIENT_BUFFER
constexpr HRESULT kHrMoreData = HresultFromWin32(234);            // ERROR_MORE_DATA
constexpr HRESULT kHrNoMoreItems = HresultFromWin32(259);         // ERROR_NO_MORE_ITEMS
constexpr HRESULT kHrAborted = HresultFromWin32(995);             // ERROR_OPERATION_ABORTED

enum class Op {
  kFilters,
  kFilterInstances,
  kVolumeInstances,
  kVolumes,
  kLoad,
  kUnload,
  kAttach,
  kDetach,
  kDosName,
  kPorts
};

bool ValidHandle(HANDLE h) { return h != nullptr && h != INVALID_HANDLE_VALUE; }

LPCWSTR Wide(const std::u16string& s) { return reinterpret_cast<LPCWSTR>(s.c_str()); }
// "" = not given: fltlib's optional arguments are NULL then.
LPCWSTR WideOrNull(const std::u16string& s) { return s.empty() ? nullptr : Wide(s); }

// The size to retry with after ERROR_INSUFFICIENT_BUFFER / ERROR_MORE_DATA: what the call said it needs, or
// double. 0 when past the cap.
DWORD GrownSize(DWORD current, DWORD needed) {
  const DWORD next = needed > current ? needed : (current < kMaxBuffer / 2 ? current * 2 : kMaxBuffer + 1);
  return next > kMaxBuffer ? 0 : next;
}

bool NeedsMore(HRESULT hr) { return hr == kHrInsufficientBuffer || hr == kHrMoreData; }

// One enumeration: FindFirst (growing its buffer), then FindNext until ERROR_NO_MORE_ITEMS, each buffer decoded
// by the records decoder. The find handle is closed on every path (FindClose's own result does not change the
// outcome). *syscall names the call whose result is returned.
struct Enumeration {
  const char* firstName;
  const char* nextName;
};

template <class T, class First, class Next, class Close, class Decode>
HRESULT Enumerate(const Enumeration& names, First first, Next next, Close close, Decode decode, std::vector<T>* out,
                  const char** syscall, std::string* detail) {
  std::vector<uint8_t> buffer(kInitialBuffer);
  HANDLE find = INVALID_HANDLE_VALUE;
  struct Closer {
    HANDLE* h;
    Close close;
    ~Closer() {
      if (ValidHandle(*h)) (void)close(*h);
    }
  } closer{&find, close};

  // Checks what one call returned and decodes it; false ends the enumeration with *hr.
  auto take = [&](HRESULT* hr, DWORD returned) {
    if (returned > buffer.size()) {
      *hr = kHrInvalidData;
      *detail = "the call reported more bytes than the buffer holds";
      return false;
    }
    if (out->size() >= kMaxRecords) {
      *hr = kHrInvalidData;
      *detail = "the enumeration did not end (more than a million records)";
      return false;
    }
    const char* why = decode(buffer.data(), static_cast<size_t>(returned), out);
    if (why != nullptr) {
      *hr = kHrInvalidData;
      *detail = why;
      return false;
    }
    return true;
  };
  auto grow = [&](DWORD needed) {
    const DWORD size = GrownSize(static_cast<DWORD>(buffer.size()), needed);
    if (size == 0) {
      *detail = "a record needs " + std::to_string(needed) + " bytes, more than the " + std::to_string(kMaxBuffer) +
                "-byte limit";
      return false;
    }
    buffer.assign(size, 0);
    return true;
  };

  *syscall = names.firstName;
  HRESULT hr = S_OK;
  for (;;) {
    DWORD returned = 0;
    HANDLE h = INVALID_HANDLE_VALUE;
    hr = first(buffer.data(), static_cast<DWORD>(buffer.size()), &returned, &h);
    if (SUCCEEDED(hr)) {
      find = h;
      if (!take(&hr, returned)) return hr;
      break;
    }
    if (ValidHandle(h)) (void)close(h);  // no handle is expected with a failure; never leak one
    if (hr == kHrNoMoreItems) return S_OK;
    if (!NeedsMore(hr) || !grow(returned)) return hr;
  }
  *syscall = names.nextName;
  for (;;) {
    DWORD returned = 0;
    hr = next(find, buffer.data(), static_cast<DWORD>(buffer.size()), &returned);
    if (hr == kHrNoMoreItems) return S_OK;
    if (NeedsMore(hr)) {
      if (!grow(returned)) return hr;
      continue;  // FindNext did not advance
    }
    if (FAILED(hr)) return hr;
    if (!take(&hr, returned)) return hr;
  }
}

class ManageCall : public BlockingCall {
 public:
  // syscall: the call named when it never runs (the executor stopped); Run() names the one that answered.
  ManageCall(Op op, const char* syscall, const ManagementApi* api, bool hasEndpoint, std::string endpoint,
             std::vector<std::u16string> args)
      : op_(op),
        api_(api),
        hasEndpoint_(hasEndpoint),
        endpoint_(std::move(endpoint)),
        args_(std::move(args)),
        syscall_(syscall) {}

  void Run() override {
    const char* ep = hasEndpoint_ ? endpoint_.c_str() : nullptr;
    const ManagementApi& a = *api_;
    switch (op_) {
      case Op::kFilters:
        hr_ = Enumerate(
            {"FilterFindFirst", "FilterFindNext"},
            [&](LPVOID b, DWORD n, LPDWORD r, LPHANDLE h) {
              return a.filterFindFirst(ep, FilterAggregateStandardInformation, b, n, r, h);
            },
            [&](HANDLE h, LPVOID b, DWORD n, LPDWORD r) {
              return a.filterFindNext(h, FilterAggregateStandardInformation, b, n, r);
            },
            a.filterFindClose, records::DecodeFilters, &filters_, &syscall_, &detail_);
        break;
      case Op::kFilterInstances:
        hr_ = Enumerate(
            {"FilterInstanceFindFirst", "FilterInstanceFindNext"},
            [&](LPVOID b, DWORD n, LPDWORD r, LPHANDLE h) {
              return a.instanceFindFirst(ep, Wide(args_[0]), InstanceAggregateStandardInformation, b, n, r, h);
            },
            [&](HANDLE h, LPVOID b, DWORD n, LPDWORD r) {
              return a.instanceFindNext(h, InstanceAggregateStandardInformation, b, n, r);
            },
            a.instanceFindClose, records::DecodeInstances, &instances_, &syscall_, &detail_);
        break;
      case Op::kVolumeInstances:
        hr_ = Enumerate(
            {"FilterVolumeInstanceFindFirst", "FilterVolumeInstanceFindNext"},
            [&](LPVOID b, DWORD n, LPDWORD r, LPHANDLE h) {
              return a.volumeInstanceFindFirst(ep, Wide(args_[0]), InstanceAggregateStandardInformation, b, n, r, h);
            },
            [&](HANDLE h, LPVOID b, DWORD n, LPDWORD r) {
              return a.volumeInstanceFindNext(h, InstanceAggregateStandardInformation, b, n, r);
            },
            a.volumeInstanceFindClose, records::DecodeInstances, &instances_, &syscall_, &detail_);
        break;
      case Op::kVolumes:
        hr_ = Enumerate(
            {"FilterVolumeFindFirst", "FilterVolumeFindNext"},
            [&](LPVOID b, DWORD n, LPDWORD r, LPHANDLE h) {
              return a.volumeFindFirst(ep, FilterVolumeStandardInformation, b, n, r, h);
            },
            [&](HANDLE h, LPVOID b, DWORD n, LPDWORD r) {
              return a.volumeFindNext(h, FilterVolumeStandardInformation, b, n, r);
            },
            a.volumeFindClose, records::DecodeVolumes, &volumes_, &syscall_, &detail_);
        break;
      case Op::kPorts:
        hr_ = Enumerate(
            {"SimulatorListPorts", "SimulatorListPorts"},
            [&](LPVOID b, DWORD n, LPDWORD r, LPHANDLE h) { return a.portFindFirst(ep, b, n, r, h); },
            [&](HANDLE h, LPVOID b, DWORD n, LPDWORD r) { return a.portFindNext(h, b, n, r); }, a.portFindClose,
            records::DecodePorts, &ports_, &syscall_, &detail_);
        break;
      case Op::kLoad:
        syscall_ = "FilterLoad";
        hr_ = a.load(ep, Wide(args_[0]));
        break;
      case Op::kUnload:
        syscall_ = "FilterUnload";
        hr_ = a.unload(ep, Wide(args_[0]));
        break;
      case Op::kAttach: {
        std::vector<WCHAR> created(kCreatedNameBytes / sizeof(WCHAR), 0);
        if (args_[2].empty()) {
          syscall_ = "FilterAttach";
          hr_ = a.attach(ep, Wide(args_[0]), Wide(args_[1]), WideOrNull(args_[3]), kCreatedNameBytes, created.data());
        } else {
          syscall_ = "FilterAttachAtAltitude";
          hr_ = a.attachAtAltitude(ep, Wide(args_[0]), Wide(args_[1]), Wide(args_[2]), WideOrNull(args_[3]),
                                   kCreatedNameBytes, created.data());
        }
        if (SUCCEEDED(hr_)) {
          value_ = records::FromTerminated(reinterpret_cast<const char16_t*>(created.data()), created.size());
        }
        break;
      }
      case Op::kDetach:
        syscall_ = "FilterDetach";
        hr_ = a.detach(ep, Wide(args_[0]), Wide(args_[1]), WideOrNull(args_[2]));
        break;
      case Op::kDosName: {
        syscall_ = "FilterGetDosName";
        std::vector<WCHAR> name(kDosNameChars, 0);
        hr_ = a.getDosName(ep, Wide(args_[0]), name.data(), static_cast<DWORD>(name.size()));
        if (NeedsMore(hr_)) {
          name.assign(kMaxDosNameChars, 0);
          hr_ = a.getDosName(ep, Wide(args_[0]), name.data(), static_cast<DWORD>(name.size()));
        }
        // No drive letter or mount point: S_OK and an empty string (Microsoft's documentation).
        if (SUCCEEDED(hr_))
          value_ = records::FromTerminated(reinterpret_cast<const char16_t*>(name.data()), name.size());
        break;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Base(env, hr_);
    if (FAILED(hr_)) {
      if (!detail_.empty()) result.Set("detail", Napi::String::New(env, detail_));
      return result;
    }
    switch (op_) {
      case Op::kFilters:
        result.Set("records", ToArray(env, filters_, [&](const records::FilterRecord& r, Napi::Object o) {
                     o.Set("flags", Napi::Number::New(env, r.flags));
                     o.Set("frame", Napi::Number::New(env, r.frameId));
                     o.Set("instances", Napi::Number::New(env, r.instances));
                     o.Set("name", Napi::String::New(env, r.name));
                     o.Set("altitude", Napi::String::New(env, r.altitude));
                   }));
        break;
      case Op::kFilterInstances:
      case Op::kVolumeInstances:
        result.Set("records", ToArray(env, instances_, [&](const records::InstanceRecord& r, Napi::Object o) {
                     o.Set("flags", Napi::Number::New(env, r.flags));
                     o.Set("detached", Napi::Number::New(env, r.detached));
                     o.Set("frame", Napi::Number::New(env, r.frameId));
                     o.Set("fileSystem", Napi::Number::New(env, r.fileSystem));
                     o.Set("name", Napi::String::New(env, r.name));
                     o.Set("altitude", Napi::String::New(env, r.altitude));
                     o.Set("volume", Napi::String::New(env, r.volume));
                     o.Set("filter", Napi::String::New(env, r.filter));
                   }));
        break;
      case Op::kVolumes:
        result.Set("records", ToArray(env, volumes_, [&](const records::VolumeRecord& r, Napi::Object o) {
                     o.Set("flags", Napi::Number::New(env, r.flags));
                     o.Set("frame", Napi::Number::New(env, r.frameId));
                     o.Set("fileSystem", Napi::Number::New(env, r.fileSystem));
                     o.Set("name", Napi::String::New(env, r.name));
                   }));
        break;
      case Op::kPorts:
        result.Set("records", ToArray(env, ports_, [&](const records::PortRecord& r, Napi::Object o) {
                     o.Set("maxConnections", Napi::Number::New(env, r.maxConnections));
                     o.Set("connections", Napi::Number::New(env, r.connections));
                     o.Set("name", Napi::String::New(env, r.name));
                     o.Set("filter", Napi::String::New(env, r.filter));
                   }));
        break;
      case Op::kAttach:
      case Op::kDosName:
        result.Set("value", Napi::String::New(env, value_));
        break;
      case Op::kLoad:
      case Op::kUnload:
      case Op::kDetach:
        break;
    }
    return result;
  }

  Napi::Value NotRun(Napi::Env env, NotRunReason) override { return Base(env, kHrAborted); }

 private:
  Napi::Object Base(Napi::Env env, HRESULT hr) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr)));
    result.Set("syscall", Napi::String::New(env, syscall_));
    return result;
  }

  template <class T, class Fill>
  static Napi::Array ToArray(Napi::Env env, const std::vector<T>& items, Fill fill) {
    Napi::Array array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      fill(items[i], o);
      array.Set(static_cast<uint32_t>(i), o);
    }
    return array;
  }

  const Op op_;
  const ManagementApi* api_;
  const bool hasEndpoint_;
  const std::string endpoint_;
  const std::vector<std::u16string> args_;
  const char* syscall_;
  HRESULT hr_ = S_OK;
  std::string detail_;
  std::vector<records::FilterRecord> filters_;
  std::vector<records::InstanceRecord> instances_;
  std::vector<records::VolumeRecord> volumes_;
  std::vector<records::PortRecord> ports_;
  std::u16string value_;
};

struct OpSpec {
  const char* name;
  Op op;
  size_t args;
  const char* syscall;  // the first fltlib call it makes
};
constexpr OpSpec kOps[] = {
    {"filters", Op::kFilters, 0, "FilterFindFirst"},
    {"filterInstances", Op::kFilterInstances, 1, "FilterInstanceFindFirst"},
    {"volumeInstances", Op::kVolumeInstances, 1, "FilterVolumeInstanceFindFirst"},
    {"volumes", Op::kVolumes, 0, "FilterVolumeFindFirst"},
    {"load", Op::kLoad, 1, "FilterLoad"},
    {"unload", Op::kUnload, 1, "FilterUnload"},
    {"attach", Op::kAttach, 4, "FilterAttach"},
    {"detach", Op::kDetach, 3, "FilterDetach"},
    {"dosName", Op::kDosName, 1, "FilterGetDosName"},
    {"ports", Op::kPorts, 0, "SimulatorListPorts"},
};

}  // namespace

Napi::Value Manage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "op must be a string");
  const std::string opName = info[0].As<Napi::String>().Utf8Value();
  const OpSpec* spec = nullptr;
  for (const OpSpec& s : kOps) {
    if (opName == s.name) spec = &s;
  }
  if (spec == nullptr) throw Napi::TypeError::New(env, "unknown management op '" + opName + "'");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object options = info[1].As<Napi::Object>();

  // The backend names are FilterPort.backend's, as connect takes them (addon.cc).
  Napi::Value backendValue = options.Get("backend");
  const std::string backend = backendValue.IsString() ? backendValue.As<Napi::String>().Utf8Value() : std::string();
  if (backend != "fltlib" && backend != "simulator")
    throw Napi::TypeError::New(env, "backend must be 'fltlib' or 'simulator'");
  const ManagementApi* api = backend == "fltlib" ? FltlibManagementApi() : SimulatorManagementApi();
  if (api == nullptr) throw Napi::Error::New(env, "fltlib (the real Filter Manager) is not available on this platform");
  if (spec->op == Op::kPorts && api->portFindFirst == nullptr)
    throw Napi::Error::New(env, "only the simulator lists communication ports");
  Napi::Value endpointValue = options.Get("endpoint");
  const bool hasEndpoint = endpointValue.IsString();
  std::string endpoint = hasEndpoint ? endpointValue.As<Napi::String>().Utf8Value() : std::string();
  if (endpoint.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "endpoint contains a NUL character");

  // Strings; undefined = "" (not given) for the optional ones. A NUL would cut the name short in C.
  std::vector<std::u16string> args;
  for (size_t i = 0; i < spec->args; ++i) {
    Napi::Value v = info[i + 2];
    if (v.IsUndefined()) {
      args.emplace_back();
      continue;
    }
    if (!v.IsString()) throw Napi::TypeError::New(env, "management arguments must be strings");
    args.push_back(v.As<Napi::String>().Utf16Value());
    if (args.back().find(u'\0') != std::u16string::npos)
      throw Napi::TypeError::New(env, "management arguments must not contain NUL characters");
  }

  Addon* addon = env.GetInstanceData<Addon>();
  return addon->calls->Submit(env, std::make_unique<ManageCall>(spec->op, spec->syscall, api, hasEndpoint,
                                                                std::move(endpoint), std::move(args)));
}

}  // namespace fltmgr
