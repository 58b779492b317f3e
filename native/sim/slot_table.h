// A small id -> value table for the pending requests of one simulator connection (native/sim/session.h).
//
// Ids are (generation << 12 | slot) so lookups are O(1), a freed slot is reused without allocating, and a
// reused slot gets a new id: a late frame or a CANCEL still in flight for the old id cannot hit the new
// request. Never 0 (the protocol's "unused" id). Not thread-safe: the owner locks.
#pragma once

#include <cstdint>
#include <vector>

namespace fltmgr {
namespace sim {

template <class T>
class SlotTable {
 public:
  static constexpr uint32_t kIndexBits = 12;
  static constexpr uint32_t kCapacity = 1u << kIndexBits;  // 4096, the protocol's flood limit
  static constexpr uint32_t kMaxGeneration = (1u << (32 - kIndexBits)) - 1;

  uint32_t size() const { return size_; }
  bool full() const { return size_ >= kCapacity; }

  // Returns the new id; 0 if the table is full. May throw std::bad_alloc while growing.
  uint32_t Insert(const T& value) {
    if (full()) return 0;
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      // Erase and Clear must never allocate: keep room for every slot in the free list.
      if (free_.capacity() < slots_.size() + 1) free_.reserve(2 * slots_.size() + 16);
      slots_.emplace_back();
      index = static_cast<uint32_t>(slots_.size() - 1);
    }
    Slot& s = slots_[index];
    s.generation = s.generation % kMaxGeneration + 1;
    s.used = true;
    s.value = value;
    ++size_;
    return (s.generation << kIndexBits) | index;
  }

  T* Find(uint32_t id) {
    const uint32_t index = id & (kCapacity - 1);
    if (index >= slots_.size()) return nullptr;
    Slot& s = slots_[index];
    if (!s.used || s.generation != (id >> kIndexBits)) return nullptr;
    return &s.value;
  }

  bool Erase(uint32_t id) {
    if (Find(id) == nullptr) return false;
    const uint32_t index = id & (kCapacity - 1);
    slots_[index].used = false;
    slots_[index].value = T();
    free_.push_back(index);
    --size_;
    return true;
  }

  // f(id, T&) for every entry, in slot order.
  template <class F>
  void ForEach(F&& f) {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].used) f((slots_[i].generation << kIndexBits) | i, slots_[i].value);
    }
  }

  void Clear() {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (!slots_[i].used) continue;
      slots_[i].used = false;
      slots_[i].value = T();
      free_.push_back(i);
    }
    size_ = 0;
  }

 private:
  struct Slot {
    uint32_t generation = 0;
    bool used = false;
    T value{};
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint32_t size_ = 0;
};

}  // namespace sim
}  // namespace fltmgr
