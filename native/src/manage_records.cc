#include "manage_records.h"

#include <cstddef>
#include <utility>

#include "../sim/fltsim_manage.h"  // the record declarations: <fltuser.h> on Windows, native/compat elsewhere

namespace fltmgr {
namespace records {
namespace {

// The offsets read below are the headers' (Windows SDK or mingw-w64 on Windows, native/compat elsewhere, itself
// checked against mingw-w64 by test/struct-abi.test.ts).
#define FLTMGR_AT(type, member, at) static_assert(offsetof(type, member) == (at), #type "." #member)
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Flags, layout::kFasFlags);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FrameID, layout::kFasMiniFrameId);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.NumberOfInstances, layout::kFasMiniInstances);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FilterNameLength, layout::kFasMiniNameLength);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FilterNameBufferOffset,
          layout::kFasMiniNameLength + 2);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FilterAltitudeLength, layout::kFasMiniNameLength + 4);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FilterAltitudeBufferOffset,
          layout::kFasMiniNameLength + 6);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.LegacyFilter.FilterNameLength, layout::kFasLegacyNameLength);
FLTMGR_AT(FILTER_AGGREGATE_STANDARD_INFORMATION, Type.LegacyFilter.FilterAltitudeBufferOffset,
          layout::kFasLegacyNameLength + 6);
static_assert(sizeof(FILTER_AGGREGATE_STANDARD_INFORMATION) == layout::kFasMiniSize, "FILTER_AGGREGATE_STANDARD size");
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Flags, layout::kIasFlags);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.Flags, layout::kIasMiniFlags);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FrameID, layout::kIasMiniFrameId);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.VolumeFileSystemType, layout::kIasMiniFileSystem);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.InstanceNameLength,
          layout::kIasMiniInstanceNameLength);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.MiniFilter.FilterNameBufferOffset,
          layout::kIasMiniInstanceNameLength + 14);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.LegacyFilter.Flags, layout::kIasLegacyFlags);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.LegacyFilter.AltitudeLength, layout::kIasLegacyAltitudeLength);
FLTMGR_AT(INSTANCE_AGGREGATE_STANDARD_INFORMATION, Type.LegacyFilter.FilterNameBufferOffset,
          layout::kIasLegacyAltitudeLength + 10);
FLTMGR_AT(FILTER_VOLUME_STANDARD_INFORMATION, Flags, layout::kFvsFlags);
FLTMGR_AT(FILTER_VOLUME_STANDARD_INFORMATION, FrameID, layout::kFvsFrameId);
FLTMGR_AT(FILTER_VOLUME_STANDARD_INFORMATION, FileSystemType, layout::kFvsFileSystem);
FLTMGR_AT(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeNameLength, layout::kFvsNameLength);
FLTMGR_AT(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeName, layout::kFvsName);
FLTMGR_AT(FLTSIM_PORT_INFORMATION, MaxConnections, layout::kPortMaxConnections);
FLTMGR_AT(FLTSIM_PORT_INFORMATION, Connections, layout::kPortConnections);
FLTMGR_AT(FLTSIM_PORT_INFORMATION, PortNameLength, layout::kPortNameLength);
FLTMGR_AT(FLTSIM_PORT_INFORMATION, FilterNameBufferOffset, layout::kPortNameLength + 6);
static_assert(sizeof(FLTSIM_PORT_INFORMATION) == layout::kPortSize, "FLTSIM_PORT_INFORMATION size");
#undef FLTMGR_AT

// Little-endian reads at any alignment (a buffer from the simulator's fltlib or a lying record may be unaligned).
uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// One record: `size` bytes from `base` (its extent: up to the next record, or to the end of what was returned).
struct Record {
  const uint8_t* base;
  size_t size;
};

// A UTF-16LE string of `length` bytes at `offset` from the start of the record, after its fixed part.
const char* ReadString(const Record& r, size_t fixedSize, size_t offset, size_t length, std::u16string* out) {
  if (length == 0) {
    out->clear();
    return nullptr;
  }
  if (length % 2 != 0) return "a name length is odd (UTF-16 names have an even byte length)";
  if (offset < fixedSize) return "a name offset points into the record's fixed part";
  if (offset > r.size || length > r.size - offset) return "a name lies outside the record";
  out->resize(length / 2);
  for (size_t i = 0; i < length / 2; ++i) (*out)[i] = static_cast<char16_t>(U16(r.base + offset + 2 * i));
  return nullptr;
}

// A (length, offset) pair of USHORTs at `at` in the record.
const char* ReadPair(const Record& r, size_t fixedSize, size_t at, std::u16string* out) {
  return ReadString(r, fixedSize, U16(r.base + at + 2), U16(r.base + at), out);
}

// Walks the NextEntryOffset chain. Each entry must have at least 4 bytes (NextEntryOffset); a non-zero
// NextEntryOffset must move forward and stay inside the buffer, 4-byte aligned as Windows aligns entries.
template <class T, class DecodeOne>
const char* Walk(const uint8_t* buffer, size_t size, std::vector<T>* out, DecodeOne decodeOne) {
  if (buffer == nullptr || size == 0) return "no record was returned";
  std::vector<T> decoded;
  size_t at = 0;
  for (;;) {
    if (size - at < 4) return "a record is shorter than its NextEntryOffset";
    const uint32_t next = U32(buffer + at);
    if (next != 0 && (next % 4 != 0 || next > size - at)) return "NextEntryOffset points outside the buffer";
    const Record r{buffer + at, next != 0 ? next : size - at};
    T record;
    const char* why = decodeOne(r, &record);
    if (why != nullptr) return why;
    decoded.push_back(std::move(record));
    if (next == 0) break;
    at += next;
  }
  for (T& record : decoded) out->push_back(std::move(record));
  return nullptr;
}

}  // namespace

const char* DecodeFilters(const uint8_t* buffer, size_t size, std::vector<FilterRecord>* out) {
  return Walk(buffer, size, out, [](const Record& r, FilterRecord* f) -> const char* {
    using namespace layout;
    if (r.size < kFasFlags + 4) return "a filter record is shorter than its header";
    const uint32_t flags = U32(r.base + kFasFlags);
    if ((flags & kIsMinifilter) != 0) {
      if (r.size < kFasMiniSize) return "a minifilter record is shorter than its fixed part";
      f->flags = kIsMinifilter;
      f->frameId = U32(r.base + kFasMiniFrameId);
      f->instances = U32(r.base + kFasMiniInstances);
      const char* why = ReadPair(r, kFasMiniSize, kFasMiniNameLength, &f->name);
      return why != nullptr ? why : ReadPair(r, kFasMiniSize, kFasMiniNameLength + 4, &f->altitude);
    }
    if ((flags & kIsLegacy) != 0) {
      if (r.size < kFasLegacySize) return "a legacy filter record is shorter than its fixed part";
      f->flags = kIsLegacy;
      const char* why = ReadPair(r, kFasLegacySize, kFasLegacyNameLength, &f->name);
      return why != nullptr ? why : ReadPair(r, kFasLegacySize, kFasLegacyNameLength + 4, &f->altitude);
    }
    return "a filter record is neither a minifilter nor a legacy filter";
  });
}

const char* DecodeInstances(const uint8_t* buffer, size_t size, std::vector<InstanceRecord>* out) {
  return Walk(buffer, size, out, [](const Record& r, InstanceRecord* i) -> const char* {
    using namespace layout;
    if (r.size < kIasFlags + 4) return "an instance record is shorter than its header";
    const uint32_t flags = U32(r.base + kIasFlags);
    if ((flags & kIsMinifilter) != 0) {
      if (r.size < kIasMiniSize) return "a minifilter instance record is shorter than its fixed part";
      i->flags = kIsMinifilter;
      i->detached = U32(r.base + kIasMiniFlags);
      i->frameId = U32(r.base + kIasMiniFrameId);
      i->fileSystem = U32(r.base + kIasMiniFileSystem);
      std::u16string* fields[] = {&i->name, &i->altitude, &i->volume, &i->filter};
      for (size_t k = 0; k < 4; ++k) {
        const char* why = ReadPair(r, kIasMiniSize, kIasMiniInstanceNameLength + 4 * k, fields[k]);
        if (why != nullptr) return why;
      }
      return nullptr;
    }
    if ((flags & kIsLegacy) != 0) {
      if (r.size < kIasLegacySize) return "a legacy instance record is shorter than its fixed part";
      i->flags = kIsLegacy;
      i->detached = U32(r.base + kIasLegacyFlags);
      std::u16string* fields[] = {&i->altitude, &i->volume, &i->filter};
      for (size_t k = 0; k < 3; ++k) {
        const char* why = ReadPair(r, kIasLegacySize, kIasLegacyAltitudeLength + 4 * k, fields[k]);
        if (why != nullptr) return why;
      }
      return nullptr;
    }
    return "an instance record is neither a minifilter's nor a legacy filter's";
  });
}

const char* DecodeVolumes(const uint8_t* buffer, size_t size, std::vector<VolumeRecord>* out) {
  return Walk(buffer, size, out, [](const Record& r, VolumeRecord* v) -> const char* {
    using namespace layout;
    if (r.size < kFvsName) return "a volume record is shorter than its fixed part";
    v->flags = U32(r.base + kFvsFlags);
    v->frameId = U32(r.base + kFvsFrameId);
    v->fileSystem = U32(r.base + kFvsFileSystem);
    return ReadString(r, kFvsName, kFvsName, U16(r.base + kFvsNameLength), &v->name);
  });
}

const char* DecodePorts(const uint8_t* buffer, size_t size, std::vector<PortRecord>* out) {
  return Walk(buffer, size, out, [](const Record& r, PortRecord* p) -> const char* {
    using namespace layout;
    if (r.size < kPortSize) return "a port record is shorter than its fixed part";
    p->maxConnections = U32(r.base + kPortMaxConnections);
    p->connections = U32(r.base + kPortConnections);
    const char* why = ReadPair(r, kPortSize, kPortNameLength, &p->name);
    return why != nullptr ? why : ReadPair(r, kPortSize, kPortNameLength + 4, &p->filter);
  });
}

std::u16string FromTerminated(const char16_t* text, size_t units) {
  size_t n = 0;
  while (n < units && text[n] != u'\0') ++n;
  return std::u16string(text, n);
}

}  // namespace records
}  // namespace fltmgr
