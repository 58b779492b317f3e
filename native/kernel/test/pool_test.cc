// kh-test-sources: core.cc pool.cc
// The pool routines and the ledger's verifier checks (pool.cc): each check must fire, by count.
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "core.h"
#include "harness.h"

// filter.cc's part, stubbed: every instance but kDeadInstance sits on a 512-byte-sector volume.
static const PFLT_INSTANCE kInstance = reinterpret_cast<PFLT_INSTANCE>(0x1000);
static const PFLT_INSTANCE kDeadInstance = reinterpret_cast<PFLT_INSTANCE>(0x2000);
size_t kh::InstanceAlignment(PFLT_INSTANCE instance) { return instance == kDeadInstance ? 0 : 512; }

// The value gcc gives the multi-character constant 'cSlF' (the driver's spelling; the harness's C++ is
// built with -Wmultichar as an error): the first character is the most significant byte.
template <size_t N>
static constexpr ULONG Tag(const char (&text)[N]) {
  ULONG value = 0;
  for (size_t i = 0; i + 1 < N; ++i) value = (value << 8) | static_cast<unsigned char>(text[i]);
  return value;
}
static_assert(Tag("cSlF") == 0x63536C46u, "multi-character constant value");

static size_t ViolationCount() { return kh::Violations().size(); }
static bool LastViolationHas(const char* text) {
  const auto all = kh::Violations();
  return !all.empty() && all.back().find(text) != std::string::npos;
}
// Runs `body` and checks that it recorded exactly one violation mentioning `text`.
template <typename F>
static void ExpectViolation(const char* text, F body) {
  const size_t before = ViolationCount();
  body();
  if (ViolationCount() != before + 1 || !LastViolationHas(text)) {
    std::fprintf(stderr, "expected one violation with \"%s\"; last: %s\n", text,
                 kh::Violations().empty() ? "(none)" : kh::Violations().back().c_str());
    assert(false);
  }
}

static bool AllBytes(const void* block, size_t size, unsigned char value) {
  const unsigned char* p = static_cast<const unsigned char*>(block);
  for (size_t i = 0; i < size; ++i) {
    if (p[i] != value) return false;
  }
  return true;
}

int main() {
  kh::SetPhase(kh::Phase::kRunning);
  assert(kh::TagName(Tag("cSlF")) == "FlSc");
  assert(kh::TagName(Tag("ab")) == "ba  ");

  // ExAllocatePool2: zeroed, 16-byte aligned, in the ledger; freed with its tag.
  void* a = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, Tag("cSlF"));
  assert(a != nullptr && reinterpret_cast<uintptr_t>(a) % 16 == 0 && AllBytes(a, 100, 0));
  void* b = ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED, 40, Tag("cSlF"));
  assert(b != nullptr && !AllBytes(b, 40, 0));  // the uninitialised pattern, not zeros
  void* c =
      ExAllocatePool2(POOL_FLAG_NON_PAGED | 0x8 /* CACHE_ALIGNED */ | (1ull << 40) /* optional */, 8, Tag("xTlF"));
  assert(c != nullptr && reinterpret_cast<uintptr_t>(c) % 64 == 0);
  size_t blocks = 0, bytes = 0;
  kh::PoolOutstanding(&blocks, &bytes);
  assert(blocks == 3 && bytes == 148);
  const size_t clean = ViolationCount();
  ExFreePoolWithTag(b, Tag("cSlF"));
  ExFreePoolWithTag(c, 0);  // tag 0: no tag check
  assert(ViolationCount() == clean);

  // Refusals: NULL plus a violation each.
  ExpectViolation("unsupported required pool flags 0x20", [] {
    assert(ExAllocatePool2(POOL_FLAG_NON_PAGED | 0x20 /* RAISE_ON_FAILURE */, 8, Tag("tseT")) == nullptr);
  });
  ExpectViolation("exactly one", [] { assert(ExAllocatePool2(POOL_FLAG_UNINITIALIZED, 8, Tag("tseT")) == nullptr); });
  ExpectViolation("exactly one",
                  [] { assert(ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 8, Tag("tseT")) == nullptr); });
  ExpectViolation("tag 0", [] { assert(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0) == nullptr); });
  ExpectViolation("must not be 0", [] { assert(ExAllocatePool2(POOL_FLAG_NON_PAGED, 0, Tag("tseT")) == nullptr); });
  // Too big is "insufficient resources": NULL, no violation.
  assert(ExAllocatePool2(POOL_FLAG_NON_PAGED, SIZE_MAX / 2, Tag("tseT")) == nullptr && ViolationCount() == clean + 5);

  // Wrong tag: reported, block not freed.
  ExpectViolation("freed with tag 'Oops'", [a] { ExFreePoolWithTag(a, Tag("spoO")); });
  kh::PoolOutstanding(&blocks, nullptr);
  assert(blocks == 1);
  ExFreePoolWithTag(a, Tag("cSlF"));
  // Double free, named as such; a pointer that was never a block; NULL.
  ExpectViolation("double free", [a] { ExFreePoolWithTag(a, Tag("cSlF")); });
  int local = 0;
  ExpectViolation("not a pool block", [&local] { ExFreePoolWithTag(&local, Tag("cSlF")); });
  ExpectViolation("NULL", [] { ExFreePoolWithTag(nullptr, Tag("cSlF")); });

  // FltAllocatePoolAlignedWithTag: sector-aligned; 0 bytes gives the smallest aligned block.
  void* r = FltAllocatePoolAlignedWithTag(kInstance, NonPagedPoolNx, 700, Tag("rSlF"));
  assert(r != nullptr && reinterpret_cast<uintptr_t>(r) % 512 == 0);
  std::memset(r, 1, 700);
  void* z = FltAllocatePoolAlignedWithTag(kInstance, PagedPool, 0, Tag("rSlF"));
  assert(z != nullptr && reinterpret_cast<uintptr_t>(z) % 512 == 0);
  // Wrong family both ways: reported, not freed.
  ExpectViolation("free it with FltFreePoolAlignedWithTag", [r] { ExFreePoolWithTag(r, Tag("rSlF")); });
  void* e = ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, Tag("eSlF"));
  ExpectViolation("free it with ExFreePoolWithTag", [e] { FltFreePoolAlignedWithTag(kInstance, e, Tag("eSlF")); });
  ExFreePoolWithTag(e, Tag("eSlF"));
  ExpectViolation("freed with tag", [r] { FltFreePoolAlignedWithTag(kInstance, r, Tag("cSlF")); });
  const size_t before = ViolationCount();
  FltFreePoolAlignedWithTag(kInstance, r, Tag("rSlF"));
  FltFreePoolAlignedWithTag(kInstance, z, Tag("rSlF"));
  assert(ViolationCount() == before);
  ExpectViolation("double free", [r] { FltFreePoolAlignedWithTag(kInstance, r, Tag("rSlF")); });
  ExpectViolation("not an instance", [] {
    assert(FltAllocatePoolAlignedWithTag(kDeadInstance, NonPagedPool, 8, Tag("rSlF")) == nullptr);
  });
  ExpectViolation("not an instance",
                  [] { assert(FltAllocatePoolAlignedWithTag(nullptr, NonPagedPool, 8, Tag("rSlF")) == nullptr); });
  ExpectViolation("PoolType 7", [] {
    assert(FltAllocatePoolAlignedWithTag(kInstance, static_cast<POOL_TYPE>(7), 8, Tag("rSlF")) == nullptr);
  });
  ExpectViolation("tag 0", [] { assert(FltAllocatePoolAlignedWithTag(kInstance, NonPagedPool, 8, 0) == nullptr); });

  // A reused address is a live block again, not a double free.
  void* first = ExAllocatePool2(POOL_FLAG_NON_PAGED, 24, Tag("uSlF"));
  ExFreePoolWithTag(first, Tag("uSlF"));
  bool reused = false;
  for (int i = 0; i < 64 && !reused; ++i) {
    void* again = ExAllocatePool2(POOL_FLAG_NON_PAGED, 24, Tag("uSlF"));
    reused = again == first;
    const size_t n = ViolationCount();
    ExFreePoolWithTag(again, Tag("uSlF"));
    assert(ViolationCount() == n);
  }

  // Leaks by tag at unload (the wrong-tag block above was freed, so only these).
  kh::PoolOutstanding(&blocks, &bytes);
  assert(blocks == 0 && bytes == 0);
  void* l1 = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, Tag("cSlF"));
  void* l2 = ExAllocatePool2(POOL_FLAG_NON_PAGED, 44, Tag("cSlF"));
  void* l3 = FltAllocatePoolAlignedWithTag(kInstance, NonPagedPool, 10, Tag("rSlF"));
  const size_t beforeLeaks = ViolationCount();
  assert(kh::PoolReportLeaks("FltUnregisterFilter") == 3);
  const auto all = kh::Violations();
  assert(all.size() == beforeLeaks + 2);
  assert(all[beforeLeaks].find("FltUnregisterFilter: leaked pool tag 'FlSc': 2 allocations, 144 bytes") == 0);
  assert(all[beforeLeaks + 1].find("'FlSr': 1 allocation, 10 bytes (from FltAllocatePoolAlignedWithTag)") !=
         std::string::npos);
  ExFreePoolWithTag(l1, Tag("cSlF"));
  ExFreePoolWithTag(l2, Tag("cSlF"));
  FltFreePoolAlignedWithTag(kInstance, l3, Tag("rSlF"));
  assert(kh::PoolReportLeaks("FltUnregisterFilter") == 0 && ViolationCount() == beforeLeaks + 2);

  // After unload no driver code may run.
  kh::SetPhase(kh::Phase::kUnloaded);
  ExpectViolation("after the driver was unloaded",
                  [] { assert(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, Tag("tseT")) == nullptr); });
  std::puts("pool_test: ok");
  return 0;
}
