#include "ember/embedding/row_store.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "ember/common/half.h"
#include "ember/common/hash.h"
#include "ember/embedding/kernels.h"

namespace ember::embedding {

namespace {
// Keys are never the all-ones value (the sparse tables' and the exports' empty marker); the
// dense tables refuse it too, so that every table accepts the same keys.
constexpr uint64_t kReservedKey = ~uint64_t{0};
}  // namespace

RowStore::RowStore(const TableSpec& spec)
    : Table(spec),
      half_(spec.precision == Precision::kFp16),
      weight_floats_(half_ ? (spec.dim + 1) / 2 : spec.dim),
      stride_(weight_floats_ + StateFloats(spec.optimizer.kind, spec.dim)),
      entry_(kKeyFloats + stride_) {
  EMBER_CHECK(spec.dim > 0) << "dim " << spec.dim;
}

size_t RowStore::MemoryBytes() const {
  return SlotCapacity() * entry_ * sizeof(float) + index_.MemoryBytes() + touched_.capacity() * sizeof(uint64_t) +
         blocks_.capacity() * sizeof(blocks_[0]);
}

RowStore::MemoryParts RowStore::MemoryByPart() const {
  MemoryParts m;
  m.weights = size_ * static_cast<size_t>(weight_floats_) * sizeof(float);
  m.state = size_ * static_cast<size_t>(stride_ - weight_floats_) * sizeof(float);
  m.keys = size_ * kKeyFloats * sizeof(float);
  m.index = index_.MemoryBytes();
  m.other = MemoryBytes() - m.weights - m.state - m.keys - m.index;
  return m;
}

uint64_t RowStore::EstimateBytes(const TableSpec& spec, uint64_t rows) {
  const int weights = spec.precision == Precision::kFp16 ? (spec.dim + 1) / 2 : spec.dim;
  const uint64_t entry = static_cast<uint64_t>(kKeyFloats + weights + StateFloats(spec.optimizer.kind, spec.dim));
  const uint64_t blocks = (rows + kBlockSlots - 1) / kBlockSlots;
  const uint64_t slots = blocks > 1 ? blocks * kBlockSlots : rows ? FirstBlockSlots(rows) : 0;
  return slots * entry * sizeof(float) + SlotIndex::EstimateBytes(rows);
}

size_t RowStore::FirstBlockSlots(size_t slots) {
  size_t cap = kFirstBlockSlots;
  while (cap < slots && cap < kBlockSlots) cap *= 2;
  return std::min<size_t>(cap, kBlockSlots);
}

size_t RowStore::SlotCapacity() const {
  return blocks_.empty() ? 0 : (blocks_.size() - 1) * static_cast<size_t>(kBlockSlots) + first_capacity_;
}

void RowStore::Reserve(size_t slots) {
  if (slots <= first_capacity_ || first_capacity_ == kBlockSlots) return;
  const size_t cap = FirstBlockSlots(slots);
  std::unique_ptr<float[]> block(new float[cap * static_cast<size_t>(entry_)]);
  if (!blocks_.empty()) {
    std::memcpy(block.get(), blocks_[0].get(), size_ * static_cast<size_t>(entry_) * sizeof(float));
    blocks_[0] = std::move(block);
  } else {
    blocks_.push_back(std::move(block));
  }
  first_capacity_ = cap;
}

uint64_t RowStore::ResetRows() {
  row_scratch_.resize(static_cast<size_t>(spec_.dim));
  for (size_t s = 0; s < size_; ++s) {
    float* p = SlotPtr(static_cast<uint32_t>(s));
    if (half_) {
      InitRow(spec_, KeyAt(static_cast<uint32_t>(s)), row_scratch_.data());
      StoreWeights(p, row_scratch_.data());
    } else {
      InitRow(spec_, KeyAt(static_cast<uint32_t>(s)), p);
    }
    InitState(spec_.optimizer, spec_.dim, p + weight_floats_);
  }
  return size_;
}

uint32_t RowStore::NewSlot(uint64_t key, bool init) {
  const uint32_t slot = static_cast<uint32_t>(size_);
  if (slot < kBlockSlots) {
    Reserve(slot + 1);  // the first block grows by doubling (moving its rows) until whole
  } else if ((slot >> kBlockShift) >= blocks_.size()) {
    blocks_.emplace_back(new float[static_cast<size_t>(kBlockSlots) * entry_]);
  }
  std::memcpy(EntryPtr(slot), &key, sizeof(key));
  float* p = SlotPtr(slot);
  if (!init) {  // the caller writes the whole slot (a restored record)
  } else if (half_) {
    row_scratch_.resize(static_cast<size_t>(spec_.dim));
    InitRow(spec_, key, row_scratch_.data());
    p[weight_floats_ - 1] = 0.0f;  // the pad half of an odd dim
    StoreWeights(p, row_scratch_.data());
  } else {
    InitRow(spec_, key, p);
  }
  if (init) InitState(spec_.optimizer, spec_.dim, p + weight_floats_);
  if (track_) touched_.push_back(now_);
  ++size_;
  return slot;
}

void RowStore::LoadWeights(const float* slot, float* out) const {
  if (!half_) {
    std::memcpy(out, slot, sizeof(float) * static_cast<size_t>(spec_.dim));
    return;
  }
  uint16_t h[2];
  for (int j = 0; j < spec_.dim; j += 2) {
    std::memcpy(h, slot + j / 2, sizeof(h));
    out[j] = HalfToFloat(h[0]);
    if (j + 1 < spec_.dim) out[j + 1] = HalfToFloat(h[1]);
  }
}

void RowStore::StoreWeights(float* slot, const float* w) const {
  if (!half_) {
    std::memcpy(slot, w, sizeof(float) * static_cast<size_t>(spec_.dim));
    return;
  }
  uint16_t h[2] = {0, 0};
  for (int j = 0; j < spec_.dim; j += 2) {
    h[0] = FloatToHalf(w[j]);
    h[1] = j + 1 < spec_.dim ? FloatToHalf(w[j + 1]) : 0;
    std::memcpy(slot + j / 2, h, sizeof(h));
  }
}

void RowStore::Update(float* const* slots, size_t n, const float* grads) {
  if (!half_) {
    ApplyUpdate(spec_.optimizer, slots, n, spec_.dim, grads);
    return;
  }
  const size_t dim = static_cast<size_t>(spec_.dim), state = static_cast<size_t>(stride_ - weight_floats_);
  row_scratch_.resize(dim + state);
  float* tmp = row_scratch_.data();
  for (size_t i = 0; i < n; ++i) {
    LoadWeights(slots[i], tmp);
    std::memcpy(tmp + dim, slots[i] + weight_floats_, state * sizeof(float));
    ApplyUpdate(spec_.optimizer, &tmp, 1, spec_.dim, grads + i * dim);
    StoreWeights(slots[i], tmp);
    std::memcpy(slots[i] + weight_floats_, tmp + dim, state * sizeof(float));
  }
}

uint32_t RowStore::FindSlot(uint64_t key) const {
  return index_.Find(key, SlotIndex::Hash(key), [this](uint32_t s) { return KeyAt(s); });
}

std::pair<uint32_t, bool> RowStore::FindOrAppend(uint64_t key, uint64_t hash, bool init) {
  const auto key_at = [this](uint32_t s) { return KeyAt(s); };
  const uint32_t slot = index_.Find(key, hash, key_at);
  if (slot != SlotIndex::kAbsent) return {slot, false};
  if (index_.Full()) index_.Grow(size_, key_at);
  index_.FindOrInsert(key, hash, static_cast<uint32_t>(size_), key_at);
  return {NewSlot(key, init), true};
}

uint32_t RowStore::LookupOrInsert(uint64_t key) {
  EMBER_CHECK(key != kReservedKey) << "reserved key";
  const auto [slot, inserted] = FindOrAppend(key, SlotIndex::Hash(key));
  if (!inserted && track_) touched_[slot] = now_;
  return slot;
}

bool RowStore::Touched(uint64_t key, uint64_t* step) const {
  const uint32_t slot = FindSlot(key);
  if (!track_ || slot == SlotIndex::kAbsent) return false;
  *step = touched_[slot];
  return true;
}

uint64_t RowStore::EvictIdle(uint64_t before) {
  if (!track_) return 0;
  // Compact the surviving slots in creation order, then rebuild the index: one pass over the
  // rows per scan, and whole blocks past the survivors go back to the allocator.
  size_t keep = 0;
  const size_t bytes = sizeof(float) * static_cast<size_t>(entry_);
  for (size_t s = 0; s < size_; ++s) {
    if (touched_[s] < before) continue;
    if (keep != s) {
      std::memcpy(EntryPtr(static_cast<uint32_t>(keep)), EntryPtr(static_cast<uint32_t>(s)), bytes);
      touched_[keep] = touched_[s];
    }
    ++keep;
  }
  const uint64_t evicted = size_ - keep;
  if (evicted == 0) return 0;
  size_ = keep;
  touched_.resize(keep);
  blocks_.resize((keep + kBlockSlots - 1) / kBlockSlots);
  if (blocks_.empty()) first_capacity_ = 0;
  index_.Rebuild(keep, keep, [this](uint32_t s) { return KeyAt(s); });
  return evicted;
}

void RowStore::ForEachTouched(const std::function<void(uint64_t, uint64_t)>& fn) const {
  if (!track_) return;
  for (size_t s = 0; s < size_; ++s) fn(KeyAt(static_cast<uint32_t>(s)), touched_[s]);
}

Status RowStore::PutTouched(uint64_t key, uint64_t step) {
  const uint32_t slot = FindSlot(key);
  if (!track_) return Status::Corruption("touch step for table " + std::to_string(spec_.id) + ", which has no expiry");
  if (slot == SlotIndex::kAbsent) return Status::Corruption("touch step for a row the table does not hold");
  touched_[slot] = step;
  return Status::Ok();
}

const float* RowStore::Find(uint64_t key) const {
  const uint32_t slot = FindSlot(key);
  return slot == SlotIndex::kAbsent ? nullptr : SlotPtr(slot);
}

template <typename Fn>
void RowStore::Resolve(const uint64_t* keys, size_t n, bool create, Fn&& fn) {
  // Ring buffers of the hashes and candidate slots of the keys in flight.
  constexpr size_t kRing = 4 * kAhead;
  uint64_t hashes[kRing];
  uint32_t cand[kRing];
  const auto key_at = [this](uint32_t s) { return KeyAt(s); };
  const auto stage_group = [&](size_t j) {
    EMBER_CHECK(keys[j] != kReservedKey) << "reserved key";
    hashes[j % kRing] = SlotIndex::Hash(keys[j]);
    index_.PrefetchHome(index_.Home(hashes[j % kRing]));
  };
  const auto stage_row = [&](size_t j) {
    const uint64_t h = hashes[j % kRing];
    const uint32_t c = index_.FirstCandidate(index_.Home(h), h);
    cand[j % kRing] = c;
    if (c == SlotIndex::kAbsent) return;
    // Every cache line of the entry: a 76-byte entry spans three lines one time in eight.
    PrefetchSpan(EntryPtr(c), entry_);
  };
  // Rows created below must not move the first block while the batch's earlier rows are handed
  // out: room for the keys it lacks first (counted only while that block is not yet whole).
  if (create && first_capacity_ < kBlockSlots) {
    size_t fresh = 0;
    for (size_t i = 0; i < n && size_ + fresh < kBlockSlots; ++i) fresh += FindSlot(keys[i]) == SlotIndex::kAbsent;
    Reserve(std::min<size_t>(size_ + fresh, kBlockSlots));
  }
  for (size_t j = 0; j < std::min(n, 2 * kAhead); ++j) stage_group(j);
  for (size_t j = 0; j < std::min(n, kAhead); ++j) stage_row(j);
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n) stage_group(i + 2 * kAhead);
    if (i + kAhead < n) stage_row(i + kAhead);
    uint32_t s = cand[i % kRing];
    if (s == SlotIndex::kAbsent || KeyAt(s) != keys[i]) {
      const uint64_t h = hashes[i % kRing];
      if (create) {
        s = FindOrAppend(keys[i], h).first;
      } else if ((s = index_.Find(keys[i], h, key_at)) == SlotIndex::kAbsent) {
        fn(i, static_cast<float*>(nullptr));
        continue;
      }
    }
    if (create && track_) touched_[s] = now_;
    fn(i, SlotPtr(s));
  }
}

void RowStore::FindOrCreate(const uint64_t* keys, size_t n, float** ptrs) {
  Resolve(keys, n, /*create=*/true, [&](size_t i, float* p) { ptrs[i] = p; });
}

void RowStore::Pull(const uint64_t* keys, size_t n, float* out) {
  if (spec_.frozen) {
    PullReadOnly(keys, n, out);
    return;
  }
  const size_t dim = static_cast<size_t>(spec_.dim);
  if (half_)
    Resolve(keys, n, true, [&](size_t i, float* p) { LoadWeights(p, out + i * dim); });
  else
    Resolve(keys, n, true, [&](size_t i, float* p) { std::memcpy(out + i * dim, p, dim * sizeof(float)); });
}

void RowStore::PullReadOnly(const uint64_t* keys, size_t n, float* out) const {
  // Resolve without create changes nothing: the const_cast is only for the shared code path.
  const size_t dim = static_cast<size_t>(spec_.dim);
  const_cast<RowStore*>(this)->Resolve(keys, n, /*create=*/false, [&](size_t i, float* p) {
    float* o = out + i * dim;
    if (p)
      LoadWeights(p, o);
    else if (spec_.frozen)
      std::memset(o, 0, dim * sizeof(float));
    else
      InitRow(spec_, keys[i], o);
  });
}

void RowStore::Push(const uint64_t* keys, size_t n, const float* grads) {
  const size_t dim = static_cast<size_t>(spec_.dim);
  if (spec_.frozen) {
    // Only rows that exist learn; the rest stay absent (and read zero).
    scratch_ptrs_.clear();
    frozen_grads_.clear();
    for (size_t i = 0; i < n; ++i) {
      const float* p = Find(keys[i]);
      if (!p) continue;
      scratch_ptrs_.push_back(const_cast<float*>(p));
      frozen_grads_.insert(frozen_grads_.end(), grads + i * dim, grads + (i + 1) * dim);
    }
    Update(scratch_ptrs_.data(), scratch_ptrs_.size(), frozen_grads_.data());
    return;
  }
  // Updated in small groups as they resolve, while their rows are in cache.
  constexpr size_t kGroup = 8;
  float* ptrs[kGroup];
  size_t first = 0, m = 0;
  Resolve(keys, n, true, [&](size_t i, float* p) {
    if (m == 0) first = i;
    ptrs[m++] = p;
    if (m == kGroup) {
      Update(ptrs, m, grads + first * dim);
      m = 0;
    }
  });
  if (m) Update(ptrs, m, grads + first * dim);
}

void RowStore::PullRef(const uint64_t* keys, size_t n, float* out) {
  EMBER_CHECK(!half_) << "reference twins are fp32 only";
  for (size_t i = 0; i < n; ++i) {
    const float* p = SlotPtr(LookupOrInsert(keys[i]));
    GatherRowsRef(&p, 1, spec_.dim, out + i * spec_.dim);
  }
}

void RowStore::PushRef(const uint64_t* keys, size_t n, const float* grads) {
  EMBER_CHECK(!half_) << "reference twins are fp32 only";
  for (size_t i = 0; i < n; ++i) {
    float* p = SlotPtr(LookupOrInsert(keys[i]));
    ApplyUpdateRef(spec_.optimizer, &p, 1, spec_.dim, grads + i * spec_.dim);
  }
}

void RowStore::Put(uint64_t key, const float* slot) {
  std::memcpy(SlotPtr(LookupOrInsert(key)), slot, sizeof(float) * stride_);
}

void RowStore::ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const {
  if (!half_) {
    for (size_t s = 0; s < size_; ++s) fn(KeyAt(static_cast<uint32_t>(s)), SlotPtr(static_cast<uint32_t>(s)));
    return;
  }
  std::vector<float> row(static_cast<size_t>(spec_.dim));
  for (size_t s = 0; s < size_; ++s) {
    LoadWeights(SlotPtr(static_cast<uint32_t>(s)), row.data());
    fn(KeyAt(static_cast<uint32_t>(s)), row.data());
  }
}

void RowStore::Assign(uint64_t key, const float* weights) {
  float* p = SlotPtr(LookupOrInsert(key));
  if (weights) StoreWeights(p, weights);
}

void RowStore::ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const {
  const size_t bytes = sizeof(float) * static_cast<size_t>(stride_);
  for (size_t s = 0; s < size_; ++s)
    fn(KeyAt(static_cast<uint32_t>(s)),
       std::string_view(reinterpret_cast<const char*>(SlotPtr(static_cast<uint32_t>(s))), bytes));
}

Status RowStore::PutRecord(uint64_t key, std::string_view record) {
  if (record.size() != sizeof(float) * static_cast<size_t>(stride_))
    return Status::Corruption("row record of " + std::to_string(record.size()) + " bytes, table " +
                              std::to_string(spec_.id) + " expects " + std::to_string(sizeof(float) * stride_));
  if (key == kReservedKey) return Status::Corruption("reserved key in table " + std::to_string(spec_.id));
  // A NaN or infinity in a stored row would poison every prediction that reads it: refused.
  const char* p = record.data();
  const size_t halves = half_ ? static_cast<size_t>(spec_.dim) : 0;
  for (size_t i = 0; i < halves; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    if (((h >> 10) & 0x1f) == 0x1f)
      return Status::Corruption("row " + std::to_string(KeyLocal(key)) + " of table " + std::to_string(spec_.id) +
                                " holds a weight that is not finite");
  }
  for (size_t i = half_ ? static_cast<size_t>(weight_floats_) : 0; i < static_cast<size_t>(stride_); ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + 4 * i, 4);
    if (((bits >> 23) & 0xff) == 0xff)
      return Status::Corruption("row " + std::to_string(KeyLocal(key)) + " of table " + std::to_string(spec_.id) +
                                " holds a value that is not finite");
  }
  // A new slot is left uninitialised: every float of it is overwritten here.
  const uint32_t slot = FindOrAppend(key, SlotIndex::Hash(key), /*init=*/false).first;
  std::memcpy(SlotPtr(slot), record.data(), record.size());
  return Status::Ok();
}

}  // namespace ember::embedding
