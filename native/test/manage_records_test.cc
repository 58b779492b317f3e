// native/src/manage_records.cc under ASan/UBSan: well-formed records decode, and every lie a record can tell
// (an offset or length past the bytes returned, a chain that runs outside the buffer, a truncated fixed part)
// is an error, never a read outside the buffer. Each case copies the record into a heap block of exactly the
// size returned, so ASan catches any byte read beyond it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../src/manage_records.h"

using namespace fltmgr::records;

namespace {

int failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

struct Bytes {
  std::vector<uint8_t> b;
  explicit Bytes(size_t n) : b(n, 0) {}
  void U16(size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v);
    b[at + 1] = static_cast<uint8_t>(v >> 8);
  }
  void U32(size_t at, uint32_t v) {
    U16(at, static_cast<uint16_t>(v));
    U16(at + 2, static_cast<uint16_t>(v >> 16));
  }
  // Writes text as UTF-16LE at `at`; returns its byte length.
  uint16_t Str(size_t at, const char* text) {
    const size_t n = std::strlen(text);
    for (size_t i = 0; i < n; ++i) U16(at + 2 * i, static_cast<uint16_t>(text[i]));
    return static_cast<uint16_t>(2 * n);
  }
  void Pair(size_t at, size_t offset, const char* text) {
    U16(at, Str(offset, text));
    U16(at + 2, static_cast<uint16_t>(offset));
  }
};

// Runs decode on an exact-size heap copy of the first `size` bytes.
template <class T, class F>
const char* Run(const Bytes& bytes, size_t size, std::vector<T>* out, F decode) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size == 0 ? 1 : size]);
  if (size != 0) std::memcpy(copy.get(), bytes.b.data(), size);
  return decode(copy.get(), size, out);
}

std::u16string U(const char* text) { return std::u16string(text, text + std::strlen(text)); }

Bytes Minifilter(const char* name, const char* altitude) {
  Bytes r(64);
  r.U32(4, kIsMinifilter);
  r.U32(12, 0);  // frame
  r.U32(16, 3);  // instances
  r.Pair(20, 28, name);
  r.Pair(24, 28 + 2 * std::strlen(name), altitude);
  r.b.resize(28 + 2 * (std::strlen(name) + std::strlen(altitude)));
  return r;
}

void Filters() {
  Bytes r = Minifilter("scan", "385100");
  std::vector<FilterRecord> out;
  CHECK(Run(r, r.b.size(), &out, DecodeFilters) == nullptr);
  CHECK(out.size() == 1 && out[0].name == U("scan") && out[0].altitude == U("385100") && out[0].instances == 3 &&
        out[0].flags == kIsMinifilter);

  // Legacy filter.
  Bytes l(40);
  l.U32(4, kIsLegacy);
  l.Pair(12, 20, "old");
  l.Pair(16, 26, "1");
  l.b.resize(28);
  out.clear();
  CHECK(Run(l, l.b.size(), &out, DecodeFilters) == nullptr);
  CHECK(out.size() == 1 && out[0].flags == kIsLegacy && out[0].name == U("old") && out[0].altitude == U("1"));

  // Every truncation of a good record fails (and reads nothing past the end).
  for (size_t n = 0; n < r.b.size(); ++n) {
    out.clear();
    CHECK(Run(r, n, &out, DecodeFilters) != nullptr);
    CHECK(out.empty());
  }
  // A name offset past the end, a length past the end, an odd length, an offset into the fixed part.
  Bytes bad = r;
  bad.U16(22, 0xFFF0);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  bad = r;
  bad.U16(20, 0xFFFE);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  bad = r;
  bad.U16(24, 3);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  bad = r;
  bad.U16(22, 4);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  // Neither kind.
  bad = r;
  bad.U32(4, 0);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  CHECK(out.empty());

  // A chain of two, then chains that lie.
  Bytes two(0);
  Bytes a = Minifilter("a", "2");
  Bytes b = Minifilter("bb", "1");
  const size_t first = (a.b.size() + 3) / 4 * 4;
  two.b = a.b;
  two.b.resize(first);
  two.b.insert(two.b.end(), b.b.begin(), b.b.end());
  two.U32(0, static_cast<uint32_t>(first));
  out.clear();
  CHECK(Run(two, two.b.size(), &out, DecodeFilters) == nullptr);
  CHECK(out.size() == 2 && out[0].name == U("a") && out[1].name == U("bb"));
  bad = two;
  bad.U32(0, static_cast<uint32_t>(two.b.size() + 4));  // past the end
  out.clear();
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  bad.U32(0, 2);  // unaligned
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  // The second record's name runs past the buffer: nothing is appended, not even the first.
  bad = two;
  bad.U16(first + 20, 0x100);
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  CHECK(out.empty());
  // A first record whose name reaches into the second one's bytes is bounded by NextEntryOffset.
  bad = two;
  bad.U16(20, static_cast<uint16_t>(first));
  CHECK(Run(bad, bad.b.size(), &out, DecodeFilters) != nullptr);
  CHECK(Run(r, 0, &out, DecodeFilters) != nullptr);
}

void Instances() {
  Bytes r(36 + 2 * 64);
  r.U32(4, kIsMinifilter);
  r.U32(12, 0);
  r.U32(16, 2);  // NTFS
  size_t at = 36;
  const char* texts[] = {"scan Instance", "385100", "\\Device\\HarddiskVolume1", "scan"};
  for (size_t k = 0; k < 4; ++k) {
    r.Pair(20 + 4 * k, at, texts[k]);
    at += 2 * std::strlen(texts[k]);
  }
  r.b.resize(at);
  std::vector<InstanceRecord> out;
  CHECK(Run(r, r.b.size(), &out, DecodeInstances) == nullptr);
  CHECK(out.size() == 1 && out[0].name == U("scan Instance") && out[0].altitude == U("385100") &&
        out[0].volume == U("\\Device\\HarddiskVolume1") && out[0].filter == U("scan") && out[0].fileSystem == 2);
  for (size_t n = 0; n < r.b.size(); ++n) CHECK(Run(r, n, &out, DecodeInstances) != nullptr);
  for (size_t k = 0; k < 4; ++k) {
    Bytes bad = r;
    bad.U16(20 + 4 * k + 2, static_cast<uint16_t>(r.b.size() - 1));
    CHECK(Run(bad, bad.b.size(), &out, DecodeInstances) != nullptr);
  }
  // Legacy.
  Bytes l(24 + 20);
  l.U32(4, kIsLegacy);
  l.Pair(12, 24, "1");
  l.Pair(16, 26, "C:");
  l.Pair(20, 30, "old");
  l.b.resize(36);
  out.clear();
  CHECK(Run(l, l.b.size(), &out, DecodeInstances) == nullptr);
  CHECK(out.size() == 1 && out[0].flags == kIsLegacy && out[0].filter == U("old") && out[0].name.empty());
  for (size_t n = 0; n < l.b.size(); ++n) CHECK(Run(l, n, &out, DecodeInstances) != nullptr);
}

void Volumes() {
  Bytes r(18 + 60);
  r.U32(4, 1);
  r.U32(12, 28);  // REFS
  r.U16(16, r.Str(18, "\\Device\\HarddiskVolume2"));
  r.b.resize(18 + 2 * std::strlen("\\Device\\HarddiskVolume2"));
  std::vector<VolumeRecord> out;
  CHECK(Run(r, r.b.size(), &out, DecodeVolumes) == nullptr);
  CHECK(out.size() == 1 && out[0].name == U("\\Device\\HarddiskVolume2") && out[0].fileSystem == 28 &&
        out[0].flags == 1);
  for (size_t n = 0; n < r.b.size(); ++n) CHECK(Run(r, n, &out, DecodeVolumes) != nullptr);
  Bytes bad = r;
  bad.U16(16, 0xFFFE);
  CHECK(Run(bad, bad.b.size(), &out, DecodeVolumes) != nullptr);
}

void Ports() {
  Bytes r(20 + 64);
  r.U32(4, 16);
  r.U32(8, 1);
  r.Pair(12, 20, "\\Scan");
  r.Pair(16, 20 + 10, "scan");
  r.b.resize(20 + 10 + 8);
  std::vector<PortRecord> out;
  CHECK(Run(r, r.b.size(), &out, DecodePorts) == nullptr);
  CHECK(out.size() == 1 && out[0].name == U("\\Scan") && out[0].filter == U("scan") && out[0].maxConnections == 16 &&
        out[0].connections == 1);
  for (size_t n = 0; n < r.b.size(); ++n) CHECK(Run(r, n, &out, DecodePorts) != nullptr);
  Bytes bad = r;
  bad.U16(18, 0xFFFF);
  CHECK(Run(bad, bad.b.size(), &out, DecodePorts) != nullptr);
}

void Terminated() {
  const char16_t text[] = {u'C', u':', 0, u'x'};
  CHECK(FromTerminated(text, 4) == U("C:"));
  CHECK(FromTerminated(text, 1) == U("C"));
  CHECK(FromTerminated(text, 0).empty());
}

}  // namespace

int main() {
  Filters();
  Instances();
  Volumes();
  Ports();
  Terminated();
  if (failures != 0) {
    std::fprintf(stderr, "manage_records_test: %d failure(s)\n", failures);
    return 1;
  }
  std::printf("manage_records_test: ok\n");
  return 0;
}
