// security_pool_stub.cc - a malloc-based stand-in for pool.cc (harness.h, "Pool"), so security_test links
// before the real pool lands. Same signatures; it keeps a ledger only to report unknown pointers, double frees
// and wrong tags the way pool.cc does (as violations, never freeing then). Swap it for pool.cc when it exists:
// drop the #include in security_test.cc and add pool.cc to its kh-test-sources line.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "harness.h"

namespace kh {
namespace {

struct Block {
  size_t size;
  uint32_t tag;
};
std::mutex g_pool_mutex;
std::map<void*, Block> g_blocks;

}  // namespace

void* PoolAllocate(size_t size, uint32_t tag, size_t alignment, bool zero, const char* routine) {
  (void)routine;
  if (size == 0 || alignment < 16) return nullptr;
  const size_t rounded = (size + alignment - 1) / alignment * alignment;  // aligned_alloc wants a multiple
  void* block = std::aligned_alloc(alignment, rounded);
  if (block == nullptr) return nullptr;
  std::memset(block, zero ? 0 : 0xA5, size);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_blocks[block] = Block{size, tag};
  return block;
}

bool PoolFree(void* block, uint32_t tag, const char* routine) {
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    auto it = g_blocks.find(block);
    if (it == g_blocks.end()) {
      Violation(routine, "%p was not allocated from the pool, or was already freed", block);
      return false;
    }
    if (tag != 0 && it->second.tag != tag) {
      Violation(routine, "tag %s differs from the allocation's %s", TagName(tag).c_str(),
                TagName(it->second.tag).c_str());
      return false;
    }
    g_blocks.erase(it);
  }
  std::free(block);
  return true;
}

size_t PoolReportLeaks(const char* routine) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  for (const auto& entry : g_blocks) {
    Violation(routine, "leaked %zu bytes tagged %s", entry.second.size, TagName(entry.second.tag).c_str());
  }
  return g_blocks.size();
}

void PoolOutstanding(size_t* blocks, size_t* bytes) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  *blocks = g_blocks.size();
  *bytes = 0;
  for (const auto& entry : g_blocks) *bytes += entry.second.size;
}

std::string TagName(uint32_t tag) {
  std::string name(4, ' ');
  for (int i = 0; i < 4; i++) name[i] = static_cast<char>((tag >> (8 * i)) & 0xFF);
  return name;
}

}  // namespace kh
