#include "ember/embedding/row_store.h"

#include <cstring>
#include <unordered_map>

#include "ember/common/half.h"
#include "ember/common/hash.h"
#include "ember/embedding/kernels.h"

namespace ember::embedding {

RowStore::RowStore(const TableSpec& spec)
    : Table(spec),
      half_(spec.precision == Precision::kFp16),
      weight_floats_(half_ ? (spec.dim + 1) / 2 : spec.dim),
      stride_(weight_floats_ + StateFloats(spec.optimizer.kind, spec.dim)) {
  EMBER_CHECK(spec.dim > 0) << "dim " << spec.dim;
}

size_t RowStore::MemoryBytes() const {
  return blocks_.size() * static_cast<size_t>(kBlockSlots) * stride_ * sizeof(float) + index_.MemoryBytes() +
         (slot_keys_.capacity() + touched_.capacity()) * sizeof(uint64_t);
}

uint64_t RowStore::EstimateBytes(const TableSpec& spec, uint64_t rows) {
  const int weights = spec.precision == Precision::kFp16 ? (spec.dim + 1) / 2 : spec.dim;
  const uint64_t stride = static_cast<uint64_t>(weights + StateFloats(spec.optimizer.kind, spec.dim));
  const uint64_t blocks = (rows + kBlockSlots - 1) / kBlockSlots;
  uint64_t vec = 1;
  while (vec < rows) vec *= 2;
  return blocks * kBlockSlots * stride * sizeof(float) + KeyIndex::EstimateBytes(rows) + vec * sizeof(uint64_t);
}

uint64_t RowStore::ResetRows() {
  row_scratch_.resize(static_cast<size_t>(spec_.dim));
  for (size_t s = 0; s < size_; ++s) {
    float* p = SlotPtr(static_cast<uint32_t>(s));
    if (half_) {
      InitRow(spec_, slot_keys_[s], row_scratch_.data());
      StoreWeights(p, row_scratch_.data());
    } else {
      InitRow(spec_, slot_keys_[s], p);
    }
    InitState(spec_.optimizer, spec_.dim, p + weight_floats_);
  }
  return size_;
}

uint32_t RowStore::NewSlot(uint64_t key, bool init) {
  const uint32_t slot = static_cast<uint32_t>(size_);
  if ((slot >> kBlockShift) >= blocks_.size()) {
    blocks_.emplace_back(new float[static_cast<size_t>(kBlockSlots) * stride_]);
  }
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
  slot_keys_.push_back(key);
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

uint32_t RowStore::LookupOrInsert(uint64_t key) {
  const auto [slot, inserted] = index_.Insert(key, static_cast<uint32_t>(size_));
  if (inserted)
    NewSlot(key);
  else if (track_)
    touched_[slot] = now_;
  return slot;
}

bool RowStore::Touched(uint64_t key, uint64_t* step) const {
  const uint32_t slot = index_.Find(key);
  if (!track_ || slot == KeyIndex::kAbsent) return false;
  *step = touched_[slot];
  return true;
}

uint64_t RowStore::EvictIdle(uint64_t before) {
  if (!track_) return 0;
  // Compact the surviving slots in creation order, then rebuild the index: one pass over the
  // rows per scan, and whole blocks past the survivors go back to the allocator.
  size_t keep = 0;
  const size_t bytes = sizeof(float) * static_cast<size_t>(stride_);
  for (size_t s = 0; s < size_; ++s) {
    if (touched_[s] < before) continue;
    if (keep != s) {
      std::memcpy(SlotPtr(static_cast<uint32_t>(keep)), SlotPtr(static_cast<uint32_t>(s)), bytes);
      slot_keys_[keep] = slot_keys_[s];
      touched_[keep] = touched_[s];
    }
    ++keep;
  }
  const uint64_t evicted = size_ - keep;
  if (evicted == 0) return 0;
  size_ = keep;
  slot_keys_.resize(keep);
  touched_.resize(keep);
  blocks_.resize((keep + kBlockSlots - 1) / kBlockSlots);
  index_ = KeyIndex();
  for (size_t s = 0; s < keep; ++s) index_.Insert(slot_keys_[s], static_cast<uint32_t>(s));
  return evicted;
}

void RowStore::ForEachTouched(const std::function<void(uint64_t, uint64_t)>& fn) const {
  if (!track_) return;
  for (size_t s = 0; s < size_; ++s) fn(slot_keys_[s], touched_[s]);
}

Status RowStore::PutTouched(uint64_t key, uint64_t step) {
  const uint32_t slot = index_.Find(key);
  if (!track_) return Status::Corruption("touch step for table " + std::to_string(spec_.id) + ", which has no expiry");
  if (slot == KeyIndex::kAbsent) return Status::Corruption("touch step for a row the table does not hold");
  touched_[slot] = step;
  return Status::Ok();
}

const float* RowStore::Find(uint64_t key) const {
  const uint32_t slot = index_.Find(key);
  return slot == KeyIndex::kAbsent ? nullptr : SlotPtr(slot);
}

void RowStore::FindOrCreate(const uint64_t* keys, size_t n, float** ptrs) {
  // Lookups are cache (and TLB) misses: in chunks, hash every key and prefetch its bucket first,
  // then probe, so that the misses of a chunk overlap instead of stalling one after another.
  constexpr size_t kChunk = 64;
  size_t homes[kChunk];
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t m = std::min(kChunk, n - c);
    for (size_t i = 0; i < m; ++i) {
      EMBER_CHECK(keys[c + i] != KeyIndex::kEmpty) << "reserved key";
      homes[i] = index_.Home(keys[c + i]);
      index_.PrefetchHome(homes[i]);
    }
    for (size_t i = 0; i < m; ++i) {
      if (index_.MakeRoom())
        for (size_t j = i; j < m; ++j) homes[j] = index_.Home(keys[c + j]);
      const auto [slot, inserted] = index_.InsertAt(homes[i], keys[c + i], static_cast<uint32_t>(size_));
      if (inserted)
        NewSlot(keys[c + i]);
      else if (track_)
        touched_[slot] = now_;
      ptrs[c + i] = SlotPtr(slot);
    }
  }
}

void RowStore::Pull(const uint64_t* keys, size_t n, float* out) {
  if (spec_.frozen) {
    PullReadOnly(keys, n, out);
    return;
  }
  scratch_ptrs_.resize(n);
  FindOrCreate(keys, n, scratch_ptrs_.data());
  if (half_) {
    for (size_t i = 0; i < n; ++i) LoadWeights(scratch_ptrs_[i], out + i * spec_.dim);
    return;
  }
  GatherRows(scratch_ptrs_.data(), n, spec_.dim, out);
}

void RowStore::PullReadOnly(const uint64_t* keys, size_t n, float* out) const {
  const size_t dim = static_cast<size_t>(spec_.dim);
  for (size_t i = 0; i < n; ++i) {
    const float* p = Find(keys[i]);
    if (p)
      LoadWeights(p, out + i * dim);
    else if (spec_.frozen)
      std::memset(out + i * dim, 0, dim * sizeof(float));
    else
      InitRow(spec_, keys[i], out + i * dim);
  }
}

void RowStore::Push(const uint64_t* keys, size_t n, const float* grads) {
  if (spec_.frozen) {
    // Only rows that exist learn; the rest stay absent (and read zero).
    scratch_ptrs_.clear();
    frozen_grads_.clear();
    const size_t dim = static_cast<size_t>(spec_.dim);
    for (size_t i = 0; i < n; ++i) {
      const float* p = Find(keys[i]);
      if (!p) continue;
      scratch_ptrs_.push_back(const_cast<float*>(p));
      frozen_grads_.insert(frozen_grads_.end(), grads + i * dim, grads + (i + 1) * dim);
    }
    Update(scratch_ptrs_.data(), scratch_ptrs_.size(), frozen_grads_.data());
    return;
  }
  scratch_ptrs_.resize(n);
  FindOrCreate(keys, n, scratch_ptrs_.data());
  Update(scratch_ptrs_.data(), n, grads);
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
    for (size_t s = 0; s < size_; ++s) fn(slot_keys_[s], SlotPtr(static_cast<uint32_t>(s)));
    return;
  }
  std::vector<float> row(static_cast<size_t>(spec_.dim));
  for (size_t s = 0; s < size_; ++s) {
    LoadWeights(SlotPtr(static_cast<uint32_t>(s)), row.data());
    fn(slot_keys_[s], row.data());
  }
}

void RowStore::Assign(uint64_t key, const float* weights) {
  float* p = SlotPtr(LookupOrInsert(key));
  if (weights) StoreWeights(p, weights);
}

void RowStore::ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const {
  const size_t bytes = sizeof(float) * static_cast<size_t>(stride_);
  for (size_t s = 0; s < size_; ++s)
    fn(slot_keys_[s], std::string_view(reinterpret_cast<const char*>(SlotPtr(static_cast<uint32_t>(s))), bytes));
}

Status RowStore::PutRecord(uint64_t key, std::string_view record) {
  if (record.size() != sizeof(float) * static_cast<size_t>(stride_))
    return Status::Corruption("row record of " + std::to_string(record.size()) + " bytes, table " +
                              std::to_string(spec_.id) + " expects " + std::to_string(sizeof(float) * stride_));
  if (key == KeyIndex::kEmpty) return Status::Corruption("reserved key in table " + std::to_string(spec_.id));
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
  const auto [slot, inserted] = index_.Insert(key, static_cast<uint32_t>(size_));
  if (inserted) NewSlot(key, /*init=*/false);  // every float of the slot is overwritten below
  std::memcpy(SlotPtr(slot), record.data(), record.size());
  return Status::Ok();
}

}  // namespace ember::embedding
