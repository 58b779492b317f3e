#include "manage.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

namespace fltmgr {
namespace manage {
namespace {

constexpr HRESULT kHrInvalidArg = sim::kHrInvalidArg;
constexpr HRESULT kHrInsufficientBuffer = sim::kHrInsufficientBuffer;
constexpr HRESULT kHrInvalidData = sim::kHrInvalidData;
// The simulator closed the stream without a (complete) answer: it refused the request as malformed, or
// predates management requests.
constexpr HRESULT kHrNoAnswer = HresultFromWin32(109);  // ERROR_BROKEN_PIPE

// --- MANAGE_RESULT reader: every read is bounds-checked; a failed read poisons the reader ---------------------
class Reader {
 public:
  Reader(const uint8_t* p, uint32_t size) : p_(p), size_(size) {}
  bool U32(uint32_t* v) {
    if (!Need(4)) return false;
    *v = wire::GetU32(p_ + at_);
    at_ += 4;
    return true;
  }
  bool String(Str* s) {
    if (!Need(2)) return false;
    const uint16_t bytes = wire::GetU16(p_ + at_);
    at_ += 2;
    if ((bytes & 1u) != 0 || !Need(bytes)) {
      ok_ = false;
      return false;
    }
    s->resize(bytes / 2u);
    for (size_t i = 0; i < s->size(); ++i) (*s)[i] = static_cast<char16_t>(wire::GetU16(p_ + at_ + 2 * i));
    at_ += bytes;
    return true;
  }
  bool AtEnd() const { return ok_ && at_ == size_; }

 private:
  bool Need(size_t n) {
    if (!ok_ || n > size_ - at_) ok_ = false;
    return ok_;
  }
  const uint8_t* p_;
  uint32_t size_;
  uint32_t at_ = 0;
  bool ok_ = true;
};

bool ReadRecord(Reader& r, FilterRecord* f) {
  return r.U32(&f->flags) && r.U32(&f->frameId) && r.U32(&f->instances) && r.String(&f->name) && r.String(&f->altitude);
}
bool ReadRecord(Reader& r, InstanceRecord* i) {
  return r.U32(&i->flags) && r.U32(&i->frameId) && r.U32(&i->fileSystemType) && r.String(&i->instance) &&
         r.String(&i->altitude) && r.String(&i->volume) && r.String(&i->filter);
}
bool ReadRecord(Reader& r, VolumeRecord* v) {
  return r.U32(&v->flags) && r.U32(&v->frameId) && r.U32(&v->fileSystemType) && r.String(&v->volume) &&
         r.String(&v->dosName);
}
bool ReadRecord(Reader& r, PortRecord* p) {
  return r.U32(&p->maxConnections) && r.U32(&p->connections) && r.String(&p->port) && r.String(&p->filter);
}

template <class T>
bool ReadList(Reader& r, uint32_t count, std::vector<T>* out) {
  for (uint32_t i = 0; i < count; ++i) {  // a count larger than the payload fails at the first short read
    T record;
    if (!ReadRecord(r, &record)) return false;
    out->push_back(std::move(record));
  }
  return true;
}

// --- record building ---------------------------------------------------------------------------------------
// A record: a fixed part, then names. Offsets and lengths are bytes from the start of the record.
class RecordWriter {
 public:
  explicit RecordWriter(size_t fixedSize) : size_(fixedSize) {}
  // Places a name after what is placed so far; its offset (USHORT in every layout), or false if it cannot be
  // described.
  bool Place(const Str& s, USHORT* length, USHORT* offset) {
    const size_t bytes = s.size() * 2;
    if (bytes > 0xFFFFu || size_ > 0xFFFFu) return false;
    *length = static_cast<USHORT>(bytes);
    *offset = static_cast<USHORT>(size_);
    names_.push_back({&s, size_});
    size_ += bytes;
    return true;
  }
  // An inline name at the end of the fixed part (FILTER_FULL_INFORMATION, FILTER_VOLUME_*): the record ends
  // with it.
  bool PlaceInline(const Str& s, size_t at, USHORT* length) {
    const size_t bytes = s.size() * 2;
    if (bytes > 0xFFFFu) return false;
    *length = static_cast<USHORT>(bytes);
    names_.push_back({&s, at});
    size_ = at + bytes;
    return true;
  }
  // Writes the fixed part (fixedBytes of head) and the names, or reports the size needed.
  HRESULT Write(const void* head, size_t fixedBytes, void* buffer, DWORD capacity, DWORD* returned) const {
    if (size_ > 0xFFFFFFFFu) return kHrInvalidData;
    *returned = static_cast<DWORD>(size_);
    if (capacity < size_) return kHrInsufficientBuffer;
    uint8_t* out = static_cast<uint8_t*>(buffer);
    std::memset(out, 0, size_);
    std::memcpy(out, head, std::min(fixedBytes, size_));
    for (const Name& n : names_) {
      if (!n.s->empty()) std::memcpy(out + n.at, n.s->data(), n.s->size() * 2);
    }
    return S_OK;
  }

 private:
  struct Name {
    const Str* s;
    size_t at;
  };
  size_t size_;
  std::vector<Name> names_;
};

// The simulator's number as is, even one past the enum's last name (a cast could not hold it).
void SetFileSystemType(FLT_FILESYSTEM_TYPE* field, uint32_t value) {
  static_assert(sizeof(FLT_FILESYSTEM_TYPE) == sizeof(value), "FLT_FILESYSTEM_TYPE is 4 bytes");
  std::memcpy(field, &value, sizeof(value));
}

bool IsLegacy(uint32_t flags) { return flags == FLTFL_AGGREGATE_INFO_IS_LEGACYFILTER; }

// A record with names after its fixed part: fill(record, writer) sets the fields and places the names (false:
// a name the record's USHORT fields cannot describe).
template <class Rec, class Fill>
HRESULT Build(Fill fill, void* buffer, DWORD size, DWORD* returned) {
  Rec rec;
  std::memset(&rec, 0, sizeof(rec));
  RecordWriter w(sizeof(rec));
  if (!fill(rec, w)) return kHrInvalidData;
  return w.Write(&rec, sizeof(rec), buffer, size, returned);
}

// A record ending with its one name inline at offset `at`: fill(record) sets the fields and returns the name's
// length field.
template <class Rec, class Fill>
HRESULT BuildInline(size_t at, const Str& name, Fill fill, void* buffer, DWORD size, DWORD* returned) {
  Rec rec;
  std::memset(&rec, 0, sizeof(rec));
  USHORT* length = fill(rec);
  RecordWriter w(0);
  if (!w.PlaceInline(name, at, length)) return kHrInvalidData;
  return w.Write(&rec, at, buffer, size, returned);
}

// The MiniFilter part both aggregate filter records share.
template <class Part>
bool PlaceMiniFilter(const FilterRecord& f, RecordWriter& w, Part* m) {
  m->FrameID = f.frameId;
  m->NumberOfInstances = f.instances;
  return w.Place(f.name, &m->FilterNameLength, &m->FilterNameBufferOffset) &&
         w.Place(f.altitude, &m->FilterAltitudeLength, &m->FilterAltitudeBufferOffset);
}

// Altitude, volume and filter names, in that order: INSTANCE_FULL_INFORMATION and both aggregate parts.
template <class Part>
bool PlaceInstanceNames(const InstanceRecord& i, RecordWriter& w, Part* p) {
  return w.Place(i.altitude, &p->AltitudeLength, &p->AltitudeBufferOffset) &&
         w.Place(i.volume, &p->VolumeNameLength, &p->VolumeNameBufferOffset) &&
         w.Place(i.filter, &p->FilterNameLength, &p->FilterNameBufferOffset);
}

bool ValidClass(FindKind kind, int infoClass) {
  switch (kind) {
    case FindKind::kFilters:
      return infoClass >= FilterFullInformation && infoClass <= FilterAggregateStandardInformation;
    case FindKind::kInstances:
      return infoClass >= InstanceBasicInformation && infoClass <= InstanceAggregateStandardInformation;
    case FindKind::kVolumes:
      return infoClass >= FilterVolumeBasicInformation && infoClass <= FilterVolumeStandardInformation;
    case FindKind::kPorts:
      return infoClass == 0;
  }
  return false;
}

// --- the C entry points' shared parts --------------------------------------------------------------------

// A string argument: null = "" (not given), or E_INVALIDARG when required.
HRESULT Arg(LPCWSTR s, bool required, Str* out) {
  out->clear();
  if (s == nullptr) return required ? kHrInvalidArg : S_OK;
  const char16_t* units = reinterpret_cast<const char16_t*>(s);  // wchar_t on Windows: UTF-16 either way
  size_t n = 0;
  while (units[n] != 0) {
    if (++n > kMaxStringBytes / 2) return kHrInvalidArg;
  }
  out->assign(units, n);
  return S_OK;
}

// The body of a C entry point: nothing throws across the C API.
template <class F>
HRESULT Guard(F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return sim::kHrOutOfMemory;
  }
}

HRESULT FindFirst(const char* endpoint, FindKind kind, Op op, const Str* args, size_t argCount, int infoClass,
                  LPVOID buffer, DWORD size, LPDWORD returned, HANDLE* find) {
  if (find != nullptr) *find = INVALID_HANDLE_VALUE;
  if (returned != nullptr) *returned = 0;
  if (find == nullptr || returned == nullptr || (buffer == nullptr && size != 0)) return kHrInvalidArg;
  if (!ValidClass(kind, infoClass)) return kHrInvalidArg;
  Host& host = ThisHost();
  Result result;
  const HRESULT hr = Request(host, endpoint, op, args, argCount, &result);
  if (FAILED(hr)) return hr;
  auto state = std::make_shared<FindState>(kind, std::move(result));
  // The first record now: a buffer too small, or an empty list, leaves no handle behind.
  const HRESULT first = state->Next(infoClass, buffer, size, returned);
  if (FAILED(first)) return first;
  HANDLE h = host.InsertFind(std::move(state));
  if (h == nullptr) {
    *returned = 0;
    return sim::kHrOutOfMemory;
  }
  *find = h;
  return S_OK;
}

HRESULT FindNext(HANDLE h, FindKind kind, int infoClass, LPVOID buffer, DWORD size, LPDWORD returned) {
  std::shared_ptr<FindState> state = ThisHost().LookupFind(h);
  if (!state || state->kind() != kind) return sim::kHrHandle;
  if (returned == nullptr || (buffer == nullptr && size != 0)) return kHrInvalidArg;
  *returned = 0;
  if (!ValidClass(kind, infoClass)) return kHrInvalidArg;
  return state->Next(infoClass, buffer, size, returned);
}

HRESULT FindClose(HANDLE h, FindKind kind) {
  Host& host = ThisHost();
  std::shared_ptr<FindState> state = host.LookupFind(h);
  if (!state || state->kind() != kind) return sim::kHrHandle;
  return host.CloseFind(h) ? S_OK : sim::kHrHandle;
}

// Copies name + NUL into out (capacity in WCHARs).
HRESULT CopyName(const Str& name, LPWSTR out, size_t capacityChars) {
  if (capacityChars < name.size() + 1) return kHrInsufficientBuffer;
  if (!name.empty()) std::memcpy(out, name.data(), name.size() * 2);
  out[name.size()] = 0;
  return S_OK;
}

HRESULT Attach(const char* endpoint, LPCWSTR filter, LPCWSTR volume, LPCWSTR altitude, bool altitudeRequired,
               LPCWSTR instance, DWORD createdBytes, LPWSTR created) {
  Str args[4];
  HRESULT hr = Arg(filter, true, &args[0]);
  if (SUCCEEDED(hr)) hr = Arg(volume, true, &args[1]);
  if (SUCCEEDED(hr)) hr = Arg(altitude, altitudeRequired, &args[2]);
  if (SUCCEEDED(hr)) hr = Arg(instance, false, &args[3]);
  if (FAILED(hr)) return hr;
  if (created == nullptr && createdBytes != 0) return kHrInvalidArg;
  Result result;
  hr = Request(ThisHost(), endpoint, Op::kAttach, args, 4, &result);
  if (FAILED(hr) || created == nullptr) return hr;
  // The instance exists now whatever happens to the name [unverified what fltlib does with a short buffer].
  return CopyName(result.name, created, createdBytes / 2);
}

}  // namespace

int ArgCount(Op op) {
  switch (op) {
    case Op::kFilters:
    case Op::kVolumes:
    case Op::kPorts:
      return 0;
    case Op::kLoad:
    case Op::kUnload:
    case Op::kDosName:
      return 1;
    case Op::kInstances:
      return 2;
    case Op::kDetach:
      return 3;
    case Op::kAttach:
      return 4;
  }
  return -1;
}

HRESULT EncodeManage(Op op, uint32_t clientPid, const Str* args, size_t argCount, const std::string& secret,
                     std::vector<uint8_t>* frame) {
  if (ArgCount(op) < 0 || static_cast<size_t>(ArgCount(op)) != argCount) return kHrInvalidArg;
  if (secret.size() > 0xFFFFu) return kHrInvalidArg;
  size_t payload = kManagePrefixSize + 2 + secret.size();
  for (size_t i = 0; i < argCount; ++i) {
    if (args[i].size() * 2 > kMaxStringBytes) return kHrInvalidArg;
    payload += 2 + args[i].size() * 2;
  }
  if (payload > wire::kMaxPayload) return kHrInvalidArg;
  try {
    frame->assign(wire::kHeaderSize + payload, 0);
  } catch (const std::bad_alloc&) {
    return sim::kHrOutOfMemory;
  }
  uint8_t* p = frame->data();
  wire::EncodeHeader(p, wire::Type::kManage, 0, static_cast<uint32_t>(payload));
  p += wire::kHeaderSize;
  wire::PutU32(p, static_cast<uint32_t>(op));
  wire::PutU32(p + 4, clientPid);
  wire::PutU16(p + 8, static_cast<uint16_t>(argCount));
  p += kManagePrefixSize;
  for (size_t i = 0; i < argCount; ++i) {
    wire::PutU16(p, static_cast<uint16_t>(args[i].size() * 2));
    p += 2;
    for (char16_t c : args[i]) {
      wire::PutU16(p, static_cast<uint16_t>(c));
      p += 2;
    }
  }
  wire::PutU16(p, static_cast<uint16_t>(secret.size()));
  if (!secret.empty()) std::memcpy(p + 2, secret.data(), secret.size());
  return S_OK;
}

bool DecodeManageResult(Op op, const uint8_t* payload, uint32_t size, Result* out) {
  *out = Result();
  Reader r(payload, size);
  uint32_t hr = 0;
  uint32_t count = 0;
  if (!r.U32(&hr) || !r.U32(&count)) return false;
  out->hr = static_cast<HRESULT>(hr);
  if (FAILED(out->hr)) return count == 0 && r.AtEnd();
  bool ok = false;
  switch (op) {
    case Op::kFilters:
      ok = ReadList(r, count, &out->filters);
      break;
    case Op::kInstances:
      ok = ReadList(r, count, &out->instances);
      break;
    case Op::kVolumes:
      ok = ReadList(r, count, &out->volumes);
      break;
    case Op::kPorts:
      ok = ReadList(r, count, &out->ports);
      break;
    case Op::kAttach:
    case Op::kDosName:
      ok = count == 1 && r.String(&out->name);
      break;
    case Op::kLoad:
    case Op::kUnload:
    case Op::kDetach:
      ok = count == 0;
      break;
  }
  return ok && r.AtEnd();
}

HRESULT BuildFilterRecord(const FilterRecord& f, int infoClass, void* buffer, DWORD size, DWORD* returned) {
  if (returned == nullptr) return kHrInvalidArg;
  *returned = 0;
  const bool legacy = IsLegacy(f.flags);
  switch (infoClass) {
    case FilterFullInformation:
      return BuildInline<FILTER_FULL_INFORMATION>(
          offsetof(FILTER_FULL_INFORMATION, FilterNameBuffer), f.name,
          [&](FILTER_FULL_INFORMATION& r) {
            r.FrameID = f.frameId;
            r.NumberOfInstances = f.instances;
            return &r.FilterNameLength;
          },
          buffer, size, returned);
    case FilterAggregateBasicInformation:
      return Build<FILTER_AGGREGATE_BASIC_INFORMATION>(
          [&](FILTER_AGGREGATE_BASIC_INFORMATION& r, RecordWriter& w) {
            r.Flags = legacy ? FLTFL_AGGREGATE_INFO_IS_LEGACYFILTER : FLTFL_AGGREGATE_INFO_IS_MINIFILTER;
            if (!legacy) return PlaceMiniFilter(f, w, &r.Type.MiniFilter);
            auto& l = r.Type.LegacyFilter;
            return w.Place(f.name, &l.FilterNameLength, &l.FilterNameBufferOffset);
          },
          buffer, size, returned);
    case FilterAggregateStandardInformation:
      return Build<FILTER_AGGREGATE_STANDARD_INFORMATION>(
          [&](FILTER_AGGREGATE_STANDARD_INFORMATION& r, RecordWriter& w) {
            r.Flags = legacy ? FLTFL_ASI_IS_LEGACYFILTER : FLTFL_ASI_IS_MINIFILTER;
            if (!legacy) return PlaceMiniFilter(f, w, &r.Type.MiniFilter);
            auto& l = r.Type.LegacyFilter;
            return w.Place(f.name, &l.FilterNameLength, &l.FilterNameBufferOffset) &&
                   w.Place(f.altitude, &l.FilterAltitudeLength, &l.FilterAltitudeBufferOffset);
          },
          buffer, size, returned);
    default:
      return kHrInvalidArg;
  }
}

HRESULT BuildInstanceRecord(const InstanceRecord& i, int infoClass, void* buffer, DWORD size, DWORD* returned) {
  if (returned == nullptr) return kHrInvalidArg;
  *returned = 0;
  switch (infoClass) {
    case InstanceBasicInformation:
      return Build<INSTANCE_BASIC_INFORMATION>(
          [&](INSTANCE_BASIC_INFORMATION& r, RecordWriter& w) {
            return w.Place(i.instance, &r.InstanceNameLength, &r.InstanceNameBufferOffset);
          },
          buffer, size, returned);
    case InstancePartialInformation:
      return Build<INSTANCE_PARTIAL_INFORMATION>(
          [&](INSTANCE_PARTIAL_INFORMATION& r, RecordWriter& w) {
            return w.Place(i.instance, &r.InstanceNameLength, &r.InstanceNameBufferOffset) &&
                   w.Place(i.altitude, &r.AltitudeLength, &r.AltitudeBufferOffset);
          },
          buffer, size, returned);
    case InstanceFullInformation:
      return Build<INSTANCE_FULL_INFORMATION>(
          [&](INSTANCE_FULL_INFORMATION& r, RecordWriter& w) {
            return w.Place(i.instance, &r.InstanceNameLength, &r.InstanceNameBufferOffset) &&
                   PlaceInstanceNames(i, w, &r);
          },
          buffer, size, returned);
    case InstanceAggregateStandardInformation:
      return Build<INSTANCE_AGGREGATE_STANDARD_INFORMATION>(
          [&](INSTANCE_AGGREGATE_STANDARD_INFORMATION& r, RecordWriter& w) {
            if (IsLegacy(i.flags)) {
              r.Flags = FLTFL_IASI_IS_LEGACYFILTER;  // a legacy filter has no instance name or frame
              return PlaceInstanceNames(i, w, &r.Type.LegacyFilter);
            }
            r.Flags = FLTFL_IASI_IS_MINIFILTER;
            auto& m = r.Type.MiniFilter;
            m.FrameID = i.frameId;
            SetFileSystemType(&m.VolumeFileSystemType, i.fileSystemType);
            return w.Place(i.instance, &m.InstanceNameLength, &m.InstanceNameBufferOffset) &&
                   PlaceInstanceNames(i, w, &m);
          },
          buffer, size, returned);
    default:
      return kHrInvalidArg;
  }
}

HRESULT BuildVolumeRecord(const VolumeRecord& v, int infoClass, void* buffer, DWORD size, DWORD* returned) {
  if (returned == nullptr) return kHrInvalidArg;
  *returned = 0;
  switch (infoClass) {
    case FilterVolumeBasicInformation:
      return BuildInline<FILTER_VOLUME_BASIC_INFORMATION>(
          offsetof(FILTER_VOLUME_BASIC_INFORMATION, FilterVolumeName), v.volume,
          [](FILTER_VOLUME_BASIC_INFORMATION& r) { return &r.FilterVolumeNameLength; }, buffer, size, returned);
    case FilterVolumeStandardInformation:
      return BuildInline<FILTER_VOLUME_STANDARD_INFORMATION>(
          offsetof(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeName), v.volume,
          [&](FILTER_VOLUME_STANDARD_INFORMATION& r) {
            r.Flags = v.flags;
            r.FrameID = v.frameId;
            SetFileSystemType(&r.FileSystemType, v.fileSystemType);
            return &r.FilterVolumeNameLength;
          },
          buffer, size, returned);
    default:
      return kHrInvalidArg;
  }
}

HRESULT BuildPortRecord(const PortRecord& p, void* buffer, DWORD size, DWORD* returned) {
  if (returned == nullptr) return kHrInvalidArg;
  *returned = 0;
  return Build<FLTSIM_PORT_INFORMATION>(
      [&](FLTSIM_PORT_INFORMATION& r, RecordWriter& w) {
        r.MaxConnections = p.maxConnections;
        r.Connections = p.connections;
        return w.Place(p.port, &r.PortNameLength, &r.PortNameBufferOffset) &&
               w.Place(p.filter, &r.FilterNameLength, &r.FilterNameBufferOffset);
      },
      buffer, size, returned);
}

size_t FindState::CountLocked() const {
  switch (kind_) {
    case FindKind::kFilters:
      return snapshot_.filters.size();
    case FindKind::kInstances:
      return snapshot_.instances.size();
    case FindKind::kVolumes:
      return snapshot_.volumes.size();
    case FindKind::kPorts:
      return snapshot_.ports.size();
  }
  return 0;
}

HRESULT FindState::Next(int infoClass, void* buffer, DWORD size, DWORD* returned) {
  std::lock_guard<std::mutex> lock(mutex_);
  *returned = 0;
  const size_t count = CountLocked();
  if (kind_ == FindKind::kFilters && infoClass == FilterFullInformation) {
    while (cursor_ < count && IsLegacy(snapshot_.filters[cursor_].flags)) ++cursor_;
  }
  if (cursor_ >= count) return kHrNoMoreItems;
  HRESULT hr = kHrInvalidArg;
  switch (kind_) {
    case FindKind::kFilters:
      hr = BuildFilterRecord(snapshot_.filters[cursor_], infoClass, buffer, size, returned);
      break;
    case FindKind::kInstances:
      hr = BuildInstanceRecord(snapshot_.instances[cursor_], infoClass, buffer, size, returned);
      break;
    case FindKind::kVolumes:
      hr = BuildVolumeRecord(snapshot_.volumes[cursor_], infoClass, buffer, size, returned);
      break;
    case FindKind::kPorts:
      hr = BuildPortRecord(snapshot_.ports[cursor_], buffer, size, returned);
      break;
  }
  if (SUCCEEDED(hr)) ++cursor_;
  return hr;
}

HRESULT Request(Host& host, const char* endpoint, Op op, const Str* args, size_t argCount, Result* out) {
  *out = Result();
  std::string text;
  if (endpoint != nullptr && *endpoint != '\0') {
    text = endpoint;
  } else if (!host.DefaultEndpoint(&text) || text.empty()) {
    return sim::kHrNotFound;  // no simulator: as if no driver
  }
  wire::Endpoint ep;
  std::string why;
  if (!wire::ParseEndpoint(text.c_str(), &ep, &why)) return kHrInvalidArg;
  if (ep.kind == host.Unreachable()) return sim::kHrNotSupported;
  std::vector<uint8_t> frame;
  HRESULT hr = EncodeManage(op, host.ProcessId(), args, argCount, ep.secret, &frame);
  if (FAILED(hr)) return hr;

  std::string setting;
  const int timeoutMs = sim::ConnectTimeoutMs(host.ConnectTimeoutSetting(&setting) ? setting.c_str() : nullptr);
  const sim::Clock::time_point deadline = sim::Clock::now() + std::chrono::milliseconds(timeoutMs);
  std::unique_ptr<Stream> stream;
  hr = host.Open(ep, deadline, &stream);
  if (FAILED(hr)) return hr;
  if (!stream->WriteAll(frame.data(), frame.size())) return sim::kHrNotFound;

  // Exactly one frame, MANAGE_RESULT, then nothing: the simulator closes the stream after it.
  std::vector<uint8_t> in;
  wire::FrameHeader header{};
  size_t need = wire::kHeaderSize;
  bool haveHeader = false;
  uint8_t chunk[4096];
  for (;;) {
    if (in.size() >= need) {
      if (haveHeader) break;
      if (wire::DecodeServerHeader(in.data(), &header) != wire::HeaderError::kNone ||
          header.type != wire::Type::kManageResult || header.id != 0) {
        return kHrInvalidData;
      }
      haveHeader = true;
      need = wire::kHeaderSize + header.payloadSize;
      continue;
    }
    // Never more than the frame: bytes after it would be a protocol error we do not wait for.
    const size_t room = std::min(sizeof(chunk), need - in.size());
    const long n = stream->Read(chunk, room, sim::RemainingMs(deadline));
    if (n == Stream::kTimedOut) return sim::kHrTimeout;
    if (n <= 0) return kHrNoAnswer;
    in.insert(in.end(), chunk, chunk + n);
  }
  if (!DecodeManageResult(op, in.data() + wire::kHeaderSize, header.payloadSize, out)) return kHrInvalidData;
  return out->hr;
}

}  // namespace manage
}  // namespace fltmgr

// --- the FltSim* management calls (declared in fltsim_manage.h) ------------------------------------------------

using fltmgr::manage::FindKind;
using fltmgr::manage::Guard;
using fltmgr::manage::Op;
using fltmgr::manage::Str;

HRESULT FltSimFilterLoad(const char* endpoint, LPCWSTR lpFilterName) {
  return Guard([&] {
    Str name;
    const HRESULT hr = fltmgr::manage::Arg(lpFilterName, true, &name);
    if (FAILED(hr)) return hr;
    fltmgr::manage::Result result;
    return fltmgr::manage::Request(fltmgr::manage::ThisHost(), endpoint, Op::kLoad, &name, 1, &result);
  });
}

HRESULT FltSimFilterUnload(const char* endpoint, LPCWSTR lpFilterName) {
  return Guard([&] {
    Str name;
    const HRESULT hr = fltmgr::manage::Arg(lpFilterName, true, &name);
    if (FAILED(hr)) return hr;
    fltmgr::manage::Result result;
    return fltmgr::manage::Request(fltmgr::manage::ThisHost(), endpoint, Op::kUnload, &name, 1, &result);
  });
}

HRESULT FltSimFilterFindFirst(const char* endpoint, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                              DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterFind) {
  return Guard([&] {
    return fltmgr::manage::FindFirst(endpoint, FindKind::kFilters, Op::kFilters, nullptr, 0, dwInformationClass,
                                     lpBuffer, dwBufferSize, lpBytesReturned, lpFilterFind);
  });
}
HRESULT FltSimFilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                             DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return Guard([&] {
    return fltmgr::manage::FindNext(hFilterFind, FindKind::kFilters, dwInformationClass, lpBuffer, dwBufferSize,
                                    lpBytesReturned);
  });
}
HRESULT FltSimFilterFindClose(HANDLE hFilterFind) {
  return Guard([&] { return fltmgr::manage::FindClose(hFilterFind, FindKind::kFilters); });
}

// FilterInstanceFindFirst (a filter's instances) and FilterVolumeInstanceFindFirst (a volume's) are both the
// INSTANCES request, with the other argument not given.
HRESULT FltSimFilterInstanceFindFirst(const char* endpoint, LPCWSTR lpFilterName,
                                      INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                      DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterInstanceFind) {
  return Guard([&] {
    if (lpFilterInstanceFind != nullptr) *lpFilterInstanceFind = INVALID_HANDLE_VALUE;
    Str args[2];
    const HRESULT hr = fltmgr::manage::Arg(lpFilterName, true, &args[0]);
    if (FAILED(hr)) return hr;
    return fltmgr::manage::FindFirst(endpoint, FindKind::kInstances, Op::kInstances, args, 2, dwInformationClass,
                                     lpBuffer, dwBufferSize, lpBytesReturned, lpFilterInstanceFind);
  });
}
HRESULT FltSimFilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                     LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return Guard([&] {
    return fltmgr::manage::FindNext(hFilterInstanceFind, FindKind::kInstances, dwInformationClass, lpBuffer,
                                    dwBufferSize, lpBytesReturned);
  });
}
HRESULT FltSimFilterInstanceFindClose(HANDLE hFilterInstanceFind) {
  return Guard([&] { return fltmgr::manage::FindClose(hFilterInstanceFind, FindKind::kInstances); });
}

HRESULT FltSimFilterVolumeFindFirst(const char* endpoint, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass,
                                    LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                    PHANDLE lpVolumeFind) {
  return Guard([&] {
    return fltmgr::manage::FindFirst(endpoint, FindKind::kVolumes, Op::kVolumes, nullptr, 0, dwInformationClass,
                                     lpBuffer, dwBufferSize, lpBytesReturned, lpVolumeFind);
  });
}
HRESULT FltSimFilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass,
                                   LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return Guard([&] {
    return fltmgr::manage::FindNext(hVolumeFind, FindKind::kVolumes, dwInformationClass, lpBuffer, dwBufferSize,
                                    lpBytesReturned);
  });
}
HRESULT FltSimFilterVolumeFindClose(HANDLE hVolumeFind) {
  return Guard([&] { return fltmgr::manage::FindClose(hVolumeFind, FindKind::kVolumes); });
}

HRESULT FltSimFilterVolumeInstanceFindFirst(const char* endpoint, LPCWSTR lpVolumeName,
                                            INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                            DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                            LPHANDLE lpVolumeInstanceFind) {
  return Guard([&] {
    if (lpVolumeInstanceFind != nullptr) *lpVolumeInstanceFind = INVALID_HANDLE_VALUE;
    Str args[2];
    const HRESULT hr = fltmgr::manage::Arg(lpVolumeName, true, &args[1]);
    if (FAILED(hr)) return hr;
    return fltmgr::manage::FindFirst(endpoint, FindKind::kInstances, Op::kInstances, args, 2, dwInformationClass,
                                     lpBuffer, dwBufferSize, lpBytesReturned, lpVolumeInstanceFind);
  });
}
HRESULT FltSimFilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                           LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return FltSimFilterInstanceFindNext(hVolumeInstanceFind, dwInformationClass, lpBuffer, dwBufferSize, lpBytesReturned);
}
HRESULT FltSimFilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind) {
  return FltSimFilterInstanceFindClose(hVolumeInstanceFind);
}

HRESULT FltSimFilterAttach(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                           DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName) {
  return Guard([&] {
    return fltmgr::manage::Attach(endpoint, lpFilterName, lpVolumeName, nullptr, false, lpInstanceName,
                                  dwCreatedInstanceNameLength, lpCreatedInstanceName);
  });
}
HRESULT FltSimFilterAttachAtAltitude(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName,
                                     LPCWSTR lpAltitude, LPCWSTR lpInstanceName, DWORD dwCreatedInstanceNameLength,
                                     LPWSTR lpCreatedInstanceName) {
  return Guard([&] {
    return fltmgr::manage::Attach(endpoint, lpFilterName, lpVolumeName, lpAltitude, true, lpInstanceName,
                                  dwCreatedInstanceNameLength, lpCreatedInstanceName);
  });
}

HRESULT FltSimFilterDetach(const char* endpoint, LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName) {
  return Guard([&] {
    Str args[3];
    HRESULT hr = fltmgr::manage::Arg(lpFilterName, true, &args[0]);
    if (SUCCEEDED(hr)) hr = fltmgr::manage::Arg(lpVolumeName, true, &args[1]);
    if (SUCCEEDED(hr)) hr = fltmgr::manage::Arg(lpInstanceName, false, &args[2]);
    if (FAILED(hr)) return hr;
    fltmgr::manage::Result result;
    return fltmgr::manage::Request(fltmgr::manage::ThisHost(), endpoint, Op::kDetach, args, 3, &result);
  });
}

HRESULT FltSimFilterGetDosName(const char* endpoint, LPCWSTR lpVolumeName, LPWSTR lpDosName,
                               DWORD dwDosNameBufferSize) {
  return Guard([&] {
    Str volume;
    HRESULT hr = fltmgr::manage::Arg(lpVolumeName, true, &volume);
    if (FAILED(hr)) return hr;
    if (lpDosName == nullptr) return fltmgr::sim::kHrInvalidArg;
    fltmgr::manage::Result result;
    hr = fltmgr::manage::Request(fltmgr::manage::ThisHost(), endpoint, Op::kDosName, &volume, 1, &result);
    if (FAILED(hr)) return hr;
    return fltmgr::manage::CopyName(result.name, lpDosName, dwDosNameBufferSize);
  });
}

HRESULT FltSimPortFindFirst(const char* endpoint, LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                            LPHANDLE lpPortFind) {
  return Guard([&] {
    return fltmgr::manage::FindFirst(endpoint, FindKind::kPorts, Op::kPorts, nullptr, 0, 0, lpBuffer, dwBufferSize,
                                     lpBytesReturned, lpPortFind);
  });
}
HRESULT FltSimPortFindNext(HANDLE hPortFind, LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned) {
  return Guard([&] {
    return fltmgr::manage::FindNext(hPortFind, FindKind::kPorts, 0, lpBuffer, dwBufferSize, lpBytesReturned);
  });
}
HRESULT FltSimPortFindClose(HANDLE hPortFind) {
  return Guard([&] { return fltmgr::manage::FindClose(hPortFind, FindKind::kPorts); });
}
