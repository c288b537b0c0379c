#include "ember/embedding/dedup.h"

#include <unordered_map>

#include "ember/common/hash.h"

namespace ember::embedding {

void KeyDeduper::Dedup(const uint64_t* keys, size_t n, int64_t* inverse) {
  size_t cap = 64;
  while (cap < 2 * n) cap <<= 1;
  if (slots_pos_.size() < cap) {
    slots_key_.assign(cap, 0);
    slots_pos_.assign(cap, -1);
  } else {
    cap = slots_pos_.size();
  }
  const size_t mask = cap - 1;
  unique_.clear();
  used_.clear();
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = keys[i];
    size_t b = Mix64(k) & mask;
    for (;;) {
      if (slots_pos_[b] < 0) {
        slots_pos_[b] = static_cast<int64_t>(unique_.size());
        slots_key_[b] = k;
        used_.push_back(static_cast<uint32_t>(b));
        inverse[i] = slots_pos_[b];
        unique_.push_back(k);
        break;
      }
      if (slots_key_[b] == k) {
        inverse[i] = slots_pos_[b];
        break;
      }
      b = (b + 1) & mask;
    }
  }
  for (uint32_t b : used_) slots_pos_[b] = -1;
}

void DedupRef(const uint64_t* keys, size_t n, std::vector<uint64_t>* unique, int64_t* inverse) {
  std::unordered_map<uint64_t, int64_t> pos;
  unique->clear();
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = pos.emplace(keys[i], static_cast<int64_t>(unique->size()));
    if (inserted) unique->push_back(keys[i]);
    inverse[i] = it->second;
  }
}

}  // namespace ember::embedding
