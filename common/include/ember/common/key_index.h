// KeyIndex: a flat open-addressing map from u64 keys to dense u32 ids (linear probing, load
// factor at most 1/2). Stores give each new key the next id (its row's position), so the index
// holds only (key, id) pairs. The all-ones key is reserved as the empty marker.
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "ember/common/hash.h"

namespace ember {

class KeyIndex {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr uint32_t kAbsent = ~uint32_t{0};

  KeyIndex() : keys_(kMinCapacity, kEmpty), ids_(kMinCapacity, 0), mask_(kMinCapacity - 1) {}

  size_t size() const { return size_; }
  // The id of key, or kAbsent.
  uint32_t Find(uint64_t key) const {
    for (size_t b = Mix64(key) & mask_;; b = (b + 1) & mask_) {
      if (keys_[b] == key) return ids_[b];
      if (keys_[b] == kEmpty) return kAbsent;
    }
  }
  // The id of key and false, or, if absent, inserts it with id `next` and returns (next, true).
  std::pair<uint32_t, bool> Insert(uint64_t key, uint32_t next) {
    if ((size_ + 1) * 2 > keys_.size()) Grow();
    size_t b = Mix64(key) & mask_;
    for (; keys_[b] != kEmpty; b = (b + 1) & mask_)
      if (keys_[b] == key) return {ids_[b], false};
    keys_[b] = key;
    ids_[b] = next;
    ++size_;
    return {next, true};
  }
  // Brings key's bucket into cache ahead of a lookup.
  void Prefetch(uint64_t key) const {
    const size_t b = Mix64(key) & mask_;
    __builtin_prefetch(&keys_[b]);
    __builtin_prefetch(&ids_[b]);
  }
  size_t MemoryBytes() const { return keys_.capacity() * (sizeof(uint64_t) + sizeof(uint32_t)); }
  // MemoryBytes() once `n` keys are in.
  static uint64_t EstimateBytes(uint64_t n) {
    uint64_t cap = kMinCapacity;
    while (n * 2 > cap) cap *= 2;
    return cap * (sizeof(uint64_t) + sizeof(uint32_t));
  }

 private:
  static constexpr size_t kMinCapacity = 1024;
  void Grow() {
    std::vector<uint64_t> old_keys(keys_.size() * 2, kEmpty);
    std::vector<uint32_t> old_ids(ids_.size() * 2, 0);
    old_keys.swap(keys_);
    old_ids.swap(ids_);
    mask_ = keys_.size() - 1;
    for (size_t i = 0; i < old_keys.size(); ++i) {
      if (old_keys[i] == kEmpty) continue;
      size_t b = Mix64(old_keys[i]) & mask_;
      while (keys_[b] != kEmpty) b = (b + 1) & mask_;
      keys_[b] = old_keys[i];
      ids_[b] = old_ids[i];
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<uint32_t> ids_;
  size_t mask_;
  size_t size_ = 0;
};

}  // namespace ember
