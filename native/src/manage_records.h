// The one place where the Windows management records (fltuserstructures.h) are read: what FilterFindFirst/Next,
// FilterInstanceFindFirst/Next, FilterVolumeFindFirst/Next and FilterVolumeInstanceFindFirst/Next write into the
// caller's buffer. The records come from the kernel (or the simulator's fltlib), so nothing in them is trusted:
// every offset and length is checked against the bytes returned, and a record that points outside them (or is
// shorter than its fixed part, or chains backwards) is an error, never an out-of-bounds read. Portable C++17,
// no OS calls, no N-API (native/test/manage_records_test.cc runs it under ASan with malformed records).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fltmgr {
namespace records {

// The byte layouts read here (x86 and x64 alike: every member is a ULONG, USHORT or enum). Checked against the
// header declarations in manage_records.cc (static_assert on offsetof) wherever those are compiled.
namespace layout {
// FILTER_AGGREGATE_STANDARD_INFORMATION: NextEntryOffset, Flags, then a union.
constexpr size_t kFasFlags = 4;
constexpr size_t kFasMiniFrameId = 12;
constexpr size_t kFasMiniInstances = 16;
constexpr size_t kFasMiniNameLength = 20;  // then NameBufferOffset, AltitudeLength, AltitudeBufferOffset
constexpr size_t kFasMiniSize = 28;        // the fixed part of a minifilter record
constexpr size_t kFasLegacyNameLength = 12;
constexpr size_t kFasLegacySize = 20;
// INSTANCE_AGGREGATE_STANDARD_INFORMATION.
constexpr size_t kIasFlags = 4;
constexpr size_t kIasMiniFlags = 8;
constexpr size_t kIasMiniFrameId = 12;
constexpr size_t kIasMiniFileSystem = 16;
constexpr size_t kIasMiniInstanceNameLength = 20;  // then 4 (length, offset) pairs: instance, altitude, volume, filter
constexpr size_t kIasMiniSize = 36;                // without Windows 8's SupportedFeatures (not read)
constexpr size_t kIasLegacyFlags = 8;
constexpr size_t kIasLegacyAltitudeLength = 12;  // then 3 pairs: altitude, volume, filter
constexpr size_t kIasLegacySize = 24;
// FILTER_VOLUME_STANDARD_INFORMATION.
constexpr size_t kFvsFlags = 4;
constexpr size_t kFvsFrameId = 8;
constexpr size_t kFvsFileSystem = 12;
constexpr size_t kFvsNameLength = 16;
constexpr size_t kFvsName = 18;  // the name follows in the record (FilterVolumeName[1])
// FLTSIM_PORT_INFORMATION (native/sim/fltsim_manage.h; the simulator's, no Windows equivalent).
constexpr size_t kPortMaxConnections = 4;
constexpr size_t kPortConnections = 8;
constexpr size_t kPortNameLength = 12;  // then PortNameBufferOffset, FilterNameLength, FilterNameBufferOffset
constexpr size_t kPortSize = 20;
}  // namespace layout

// Record flags (FLTFL_*). Both aggregate records say minifilter (1) or legacy filter (2) in their Flags.
constexpr uint32_t kIsMinifilter = 1;
constexpr uint32_t kIsLegacy = 2;

struct FilterRecord {
  uint32_t flags = 0;  // kIsMinifilter or kIsLegacy
  uint32_t frameId = 0;
  uint32_t instances = 0;
  std::u16string name;
  std::u16string altitude;
};

struct InstanceRecord {
  uint32_t flags = 0;       // kIsMinifilter or kIsLegacy
  uint32_t detached = 0;    // the minifilter part's Flags (FLTFL_IASIM_DETACHED_VOLUME)
  uint32_t frameId = 0;     // minifilter only
  uint32_t fileSystem = 0;  // FLT_FILESYSTEM_TYPE; minifilter only
  std::u16string name;      // minifilter only (a legacy filter has no instances by name)
  std::u16string altitude;
  std::u16string volume;
  std::u16string filter;
};

struct VolumeRecord {
  uint32_t flags = 0;  // FLTFL_VSI_DETACHED_VOLUME
  uint32_t frameId = 0;
  uint32_t fileSystem = 0;
  std::u16string name;
};

struct PortRecord {
  uint32_t maxConnections = 0;
  uint32_t connections = 0;
  std::u16string name;
  std::u16string filter;
};

// Each decodes every record of the NextEntryOffset chain in buffer[0, size) and appends them to *out.
// Returns nullptr, or (nothing appended) what is wrong with the bytes.
const char* DecodeFilters(const uint8_t* buffer, size_t size, std::vector<FilterRecord>* out);
const char* DecodeInstances(const uint8_t* buffer, size_t size, std::vector<InstanceRecord>* out);
const char* DecodeVolumes(const uint8_t* buffer, size_t size, std::vector<VolumeRecord>* out);
const char* DecodePorts(const uint8_t* buffer, size_t size, std::vector<PortRecord>* out);

// A NUL-terminated (or full) UTF-16 buffer of `units` code units: the text up to the first NUL.
std::u16string FromTerminated(const char16_t* text, size_t units);

}  // namespace records
}  // namespace fltmgr
