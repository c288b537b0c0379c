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

  KeyIndex() : buckets_(kMinCapacity), mask_(kMinCapacity - 1) {}

  size_t size() const { return size_; }
  // The id of key, or kAbsent.
  uint32_t Find(uint64_t key) const {
    for (size_t b = Mix64(key) & mask_;; b = (b + 1) & mask_) {
      if (buckets_[b].key == key) return buckets_[b].id;
      if (buckets_[b].key == kEmpty) return kAbsent;
    }
  }
  // The id of key and false, or, if absent, inserts it with id `next` and returns (next, true).
  std::pair<uint32_t, bool> Insert(uint64_t key, uint32_t next) {
    if ((size_ + 1) * 2 > buckets_.size()) Grow();
    return InsertAt(Home(key), key, next);
  }
  // Batched lookups: compute (and prefetch) home buckets ahead of the probes; before each
  // InsertAt, MakeRoom() grows the table if one more key would overfill it and then returns true:
  // the homes computed before have moved.
  bool MakeRoom() {
    if ((size_ + 1) * 2 <= buckets_.size()) return false;
    Grow();
    return true;
  }
  size_t Home(uint64_t key) const { return Mix64(key) & mask_; }
  void PrefetchHome(size_t home) const { __builtin_prefetch(&buckets_[home]); }
  // Insert from a home bucket, after MakeRoom().
  std::pair<uint32_t, bool> InsertAt(size_t home, uint64_t key, uint32_t next) {
    size_t b = home;
    for (; buckets_[b].key != kEmpty; b = (b + 1) & mask_)
      if (buckets_[b].key == key) return {uint32_t{buckets_[b].id}, false};
    buckets_[b] = {key, next};
    ++size_;
    return {next, true};
  }
  // Brings key's bucket into cache ahead of a lookup.
  void Prefetch(uint64_t key) const { PrefetchHome(Home(key)); }
  size_t MemoryBytes() const { return buckets_.capacity() * sizeof(Bucket); }
  // MemoryBytes() once `n` keys are in.
  static uint64_t EstimateBytes(uint64_t n) {
    uint64_t cap = kMinCapacity;
    while (n * 2 > cap) cap *= 2;
    return cap * sizeof(Bucket);
  }

 private:
  // Key and id side by side, packed to 12 bytes: one cache line per probe for 14 buckets in 16
  // (the other 2 straddle a line), at the memory of two parallel arrays.
  struct __attribute__((packed)) Bucket {
    uint64_t key = kEmpty;
    uint32_t id = 0;
  };
  static_assert(sizeof(Bucket) == 12);
  static constexpr size_t kMinCapacity = 1024;
  void Grow() {
    std::vector<Bucket> old(buckets_.size() * 2);
    old.swap(buckets_);
    mask_ = buckets_.size() - 1;
    for (const Bucket& o : old) {
      if (o.key == kEmpty) continue;
      size_t b = Home(o.key);
      while (buckets_[b].key != kEmpty) b = (b + 1) & mask_;
      buckets_[b] = o;
    }
  }

  std::vector<Bucket> buckets_;
  size_t mask_;
  size_t size_ = 0;
};

}  // namespace ember
