// pool.cc - the pool routines (ExAllocatePool2, ExFreePoolWithTag, FltAllocate/FreePoolAlignedWithTag) and
// the ledger behind them (harness.h, "Pool"): every live block with its size, tag, family and allocating
// routine, so the verifier can name a bad free and report leaks by tag at unload.
//
// The memory itself comes from posix_memalign and is freed for real, so that under ASan a use after free or
// an overflow past the requested size is ASan's report (quarantine is ASan's job, not the ledger's).
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "harness.h"

namespace kh {
namespace {

// Larger requests fail as "insufficient resources" instead of reaching the allocator (which under ASan
// aborts on absurd sizes rather than returning NULL).
constexpr size_t kMaxBlock = size_t{1} << 30;
// How many freed addresses are remembered, so that a second free is named a double free.
constexpr size_t kRecentlyFreed = 4096;
// What an uninitialised block is filled with (POOL_FLAG_UNINITIALIZED): not zero, so code that forgot to
// initialise reads garbage, as it may on Windows.
constexpr unsigned char kUninitialisedByte = 0xA5;

struct Block {
  size_t size;
  uint32_t tag;
  PoolFamily family;
  const char* routine;  // the allocating routine (a string literal)
};

std::mutex g_mutex;
std::unordered_map<void*, Block> g_blocks;
std::unordered_set<void*> g_freed;  // recently freed addresses (g_freed_order bounds it)
std::deque<void*> g_freed_order;

const char* FreeRoutine(PoolFamily family) {
  switch (family) {
    case PoolFamily::kPool:
      return "ExFreePoolWithTag";
    case PoolFamily::kAligned:
      return "FltFreePoolAlignedWithTag";
    case PoolFamily::kObject:
      return "the routine that releases it";
  }
  return "?";
}

void RememberFreed(void* block) {
  if (g_freed.insert(block).second) {
    g_freed_order.push_back(block);
    if (g_freed_order.size() > kRecentlyFreed) {
      g_freed.erase(g_freed_order.front());
      g_freed_order.pop_front();
    }
  }
}

bool AfterUnload(const char* routine) {
  if (CurrentPhase() != Phase::kUnloaded) return false;
  Violation(routine, "called after the driver was unloaded");
  return true;
}

}  // namespace

std::string TagName(uint32_t tag) {
  // A multi-character constant's first character is its most significant byte; the pool stores the tag
  // little-endian, so the tools print the bytes in memory order.
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const unsigned char c = static_cast<unsigned char>(tag >> (8 * i));
    out += c == 0 ? ' ' : (c >= 0x20 && c <= 0x7E) ? static_cast<char>(c) : '?';
  }
  return out;
}

void* PoolAllocate(size_t size, uint32_t tag, size_t alignment, bool zero, const char* routine, PoolFamily family) {
  if (size == 0 || size > kMaxBlock) return nullptr;
  if (alignment < 16) alignment = 16;
  void* block = nullptr;
  if (posix_memalign(&block, alignment, size) != 0) return nullptr;
  std::memset(block, zero ? 0 : kUninitialisedByte, size);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_blocks[block] = Block{size, tag, family, routine};
  // The address is live again: a later free of it is a first free. (Its entry in g_freed_order goes stale;
  // dropping it later at worst forgets that an address was freed, and a second free is then still reported,
  // as "not a pool block".)
  g_freed.erase(block);
  return block;
}

bool PoolFree(void* block, uint32_t tag, const char* routine, PoolFamily family) {
  std::unique_lock<std::mutex> lock(g_mutex);
  if (block == nullptr) {
    lock.unlock();
    Violation(routine, "freeing a NULL pointer");
    return false;
  }
  const auto it = g_blocks.find(block);
  if (it == g_blocks.end()) {
    const bool twice = g_freed.count(block) != 0;
    lock.unlock();
    if (twice) {
      Violation(routine, "double free of %p (already freed)", block);
    } else {
      Violation(routine, "freeing %p, which is not a pool block (never allocated, or not its start)", block);
    }
    return false;
  }
  const Block b = it->second;
  if (b.family != family) {
    lock.unlock();
    Violation(routine, "%p ('%s', %zu bytes) was allocated by %s: free it with %s", block, TagName(b.tag).c_str(),
              b.size, b.routine, FreeRoutine(b.family));
    return false;
  }
  if (tag != 0 && tag != b.tag) {
    lock.unlock();
    Violation(routine, "%p was allocated with tag '%s' but freed with tag '%s'", block, TagName(b.tag).c_str(),
              TagName(tag).c_str());
    return false;
  }
  g_blocks.erase(it);
  RememberFreed(block);
  lock.unlock();
  std::free(block);
  return true;
}

size_t PoolReportLeaks(const char* routine) {
  struct PerTag {
    size_t blocks = 0;
    size_t bytes = 0;
    const char* routine = nullptr;
  };
  std::map<uint32_t, PerTag> leaks;  // ordered, so the report is stable
  size_t total = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& entry : g_blocks) {
      PerTag& t = leaks[entry.second.tag];
      ++t.blocks;
      t.bytes += entry.second.size;
      t.routine = entry.second.routine;
      ++total;
    }
  }
  for (const auto& entry : leaks) {
    Violation(routine, "leaked pool tag '%s': %zu allocation%s, %zu bytes (from %s)", TagName(entry.first).c_str(),
              entry.second.blocks, entry.second.blocks == 1 ? "" : "s", entry.second.bytes, entry.second.routine);
  }
  return total;
}

void PoolOutstanding(size_t* blocks, size_t* bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  size_t sum = 0;
  for (const auto& entry : g_blocks) sum += entry.second.size;
  if (blocks != nullptr) *blocks = g_blocks.size();
  if (bytes != nullptr) *bytes = sum;
}

}  // namespace kh

namespace {

// POOL_FLAGS (the POOL_FLAGS reference page): the low 32 bits are required (an unknown one fails the
// allocation), the high 32 bits optional (ignored when unknown).
constexpr POOL_FLAGS kRequiredMask = 0xFFFFFFFFull;
constexpr POOL_FLAGS kFlagUseQuota = 0x1;      // accepted: the harness charges no quota
constexpr POOL_FLAGS kFlagCacheAligned = 0x8;  // cache-line (64-byte) alignment
// What the harness implements; any other required flag (session pool, executable pool, raise on failure:
// the harness has no SEH to raise into) is refused with a violation rather than half-honoured.
constexpr POOL_FLAGS kSupported =
    kFlagUseQuota | POOL_FLAG_UNINITIALIZED | kFlagCacheAligned | POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED;

// The POOL_TYPE values FltAllocatePoolAlignedWithTag takes (its reference page), by number since the
// header declares only the three the sample uses.
constexpr int kNonPagedPoolCacheAligned = 4;
constexpr int kPagedPoolCacheAligned = 5;
constexpr int kNonPagedPoolNxCacheAligned = 516;

}  // namespace

extern "C" {

PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag) {
  static const char kRoutine[] = "ExAllocatePool2";
  if (kh::AfterUnload(kRoutine)) return nullptr;
  const POOL_FLAGS required = Flags & kRequiredMask;
  if ((required & ~kSupported) != 0) {
    kh::Violation(kRoutine, "unsupported required pool flags 0x%llx",
                  static_cast<unsigned long long>(required & ~kSupported));
    return nullptr;
  }
  const POOL_FLAGS kind = required & (POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED);
  if (kind != POOL_FLAG_NON_PAGED && kind != POOL_FLAG_PAGED) {
    kh::Violation(kRoutine, "flags 0x%llx must name exactly one of POOL_FLAG_NON_PAGED and POOL_FLAG_PAGED",
                  static_cast<unsigned long long>(Flags));
    return nullptr;
  }
  if (Tag == 0) {
    kh::Violation(kRoutine, "tag 0 is invalid");
    return nullptr;
  }
  if (NumberOfBytes == 0) {
    kh::Violation(kRoutine, "NumberOfBytes must not be 0");
    return nullptr;
  }
  // 16 bytes is what the pool guarantees on 64-bit (8 on 32-bit; 16 serves both).
  const size_t alignment = (required & kFlagCacheAligned) != 0 ? 64 : 16;
  return kh::PoolAllocate(NumberOfBytes, Tag, alignment, (required & POOL_FLAG_UNINITIALIZED) == 0, kRoutine);
}

VOID ExFreePoolWithTag(PVOID P, ULONG Tag) {
  static const char kRoutine[] = "ExFreePoolWithTag";
  if (kh::AfterUnload(kRoutine)) return;
  kh::PoolFree(P, Tag, kRoutine, kh::PoolFamily::kPool);
}

PVOID FLTAPI FltAllocatePoolAlignedWithTag(PFLT_INSTANCE Instance, POOL_TYPE PoolType, SIZE_T NumberOfBytes,
                                           ULONG Tag) {
  static const char kRoutine[] = "FltAllocatePoolAlignedWithTag";
  if (kh::AfterUnload(kRoutine)) return nullptr;
  const int type = static_cast<int>(PoolType);
  const bool cacheAligned =
      type == kNonPagedPoolCacheAligned || type == kPagedPoolCacheAligned || type == kNonPagedPoolNxCacheAligned;
  if (type != NonPagedPool && type != PagedPool && type != NonPagedPoolNx && !cacheAligned) {
    kh::Violation(kRoutine, "unsupported PoolType %d", type);
    return nullptr;
  }
  if (Tag == 0) {
    kh::Violation(kRoutine, "tag 0 is invalid");
    return nullptr;
  }
  const size_t sector = Instance != nullptr ? kh::InstanceAlignment(Instance) : 0;
  if (sector == 0) {
    kh::Violation(kRoutine, "Instance %p is not an instance of this filter", static_cast<void*>(Instance));
    return nullptr;
  }
  const size_t alignment = std::max<size_t>(sector, cacheAligned ? 64 : 16);
  // 0 bytes is allowed: the smallest block that meets the alignment.
  const size_t size = NumberOfBytes == 0 ? alignment : NumberOfBytes;
  // Not zeroed: the reference page promises nothing, so the driver must not rely on it.
  return kh::PoolAllocate(size, Tag, alignment, false, kRoutine, kh::PoolFamily::kAligned);
}

VOID FLTAPI FltFreePoolAlignedWithTag(PFLT_INSTANCE Instance, PVOID Buffer, ULONG Tag) {
  static const char kRoutine[] = "FltFreePoolAlignedWithTag";
  if (kh::AfterUnload(kRoutine)) return;
  if (Instance == nullptr) kh::Violation(kRoutine, "Instance is NULL");
  kh::PoolFree(Buffer, Tag, kRoutine, kh::PoolFamily::kAligned);
}

}  // extern "C"
