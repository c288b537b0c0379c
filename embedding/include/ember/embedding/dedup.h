// KeyDeduper: de-duplicates a batch of row keys.
//
// Dedup(keys, n, inverse) sets unique() to the distinct keys in first-seen order and writes
// inverse[i] = position of keys[i] in unique(). The index is a flat open-addressing table
// reused across calls (no allocation per key once warm). DedupRef is the plain twin
// (std::unordered_map). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ember::embedding {

class KeyDeduper {
 public:
  void Dedup(const uint64_t* keys, size_t n, int64_t* inverse);
  const std::vector<uint64_t>& unique() const { return unique_; }

 private:
  std::vector<uint64_t> slots_key_;
  std::vector<int64_t> slots_pos_;
  std::vector<uint32_t> used_;  // slot indices to clear
  std::vector<uint64_t> unique_;
};

void DedupRef(const uint64_t* keys, size_t n, std::vector<uint64_t>* unique, int64_t* inverse);

}  // namespace ember::embedding
