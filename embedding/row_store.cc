#include "ember/embedding/row_store.h"

#include <cstring>
#include <unordered_map>

#include "ember/common/hash.h"
#include "ember/embedding/kernels.h"

namespace ember::embedding {
namespace {
constexpr uint32_t kStoreMagic = 0x52424d45;  // "EMBR"
constexpr uint32_t kStoreVersion = 1;

template <typename T>
void AppendPod(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
bool ReadPod(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}
}  // namespace

RowStore::RowStore(const TableSpec& spec)
    : spec_(spec), stride_(spec.dim + StateFloats(spec.optimizer.kind, spec.dim)) {
  EMBER_CHECK(spec.dim > 0) << "dim " << spec.dim;
  index_keys_.assign(1024, kEmpty);
  index_slots_.assign(1024, 0);
  mask_ = 1023;
}

size_t RowStore::MemoryBytes() const {
  return blocks_.size() * static_cast<size_t>(kBlockSlots) * stride_ * sizeof(float) +
         index_keys_.size() * (sizeof(uint64_t) + sizeof(uint32_t)) + slot_keys_.capacity() * sizeof(uint64_t);
}

size_t RowStore::Bucket(uint64_t key) const { return Mix64(key) & mask_; }

void RowStore::InitRow(const TableSpec& spec, uint64_t key, float* w) {
  uint64_t h = Mix64(key ^ Mix64(spec.seed + 0x51ed2701));
  for (int j = 0; j < spec.dim; ++j) {
    h = Mix64(h + 0x9e3779b97f4a7c15ULL);
    w[j] = static_cast<float>((2.0 * UnitFromHash(h) - 1.0) * spec.init_scale);
  }
}

uint32_t RowStore::NewSlot(uint64_t key) {
  const uint32_t slot = static_cast<uint32_t>(size_);
  if ((slot >> kBlockShift) >= blocks_.size()) {
    blocks_.emplace_back(new float[static_cast<size_t>(kBlockSlots) * stride_]);
  }
  float* p = SlotPtr(slot);
  InitRow(spec_, key, p);
  for (int j = spec_.dim; j < stride_; ++j) p[j] = 0.0f;
  if (spec_.optimizer.kind == OptimizerKind::kAdagrad) {
    for (int j = spec_.dim; j < stride_; ++j) p[j] = spec_.optimizer.initial_accumulator;
  } else if (spec_.optimizer.kind == OptimizerKind::kRowwiseAdagrad) {
    p[spec_.dim] = spec_.optimizer.initial_accumulator;
  }
  slot_keys_.push_back(key);
  ++size_;
  return slot;
}

void RowStore::Grow() {
  std::vector<uint64_t> old_keys = std::move(index_keys_);
  std::vector<uint32_t> old_slots = std::move(index_slots_);
  const size_t cap = old_keys.size() * 2;
  index_keys_.assign(cap, kEmpty);
  index_slots_.assign(cap, 0);
  mask_ = cap - 1;
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (old_keys[i] == kEmpty) continue;
    size_t b = Bucket(old_keys[i]);
    while (index_keys_[b] != kEmpty) b = (b + 1) & mask_;
    index_keys_[b] = old_keys[i];
    index_slots_[b] = old_slots[i];
  }
}

uint32_t RowStore::LookupOrInsert(uint64_t key) {
  size_t b = Bucket(key);
  for (;;) {
    const uint64_t k = index_keys_[b];
    if (k == key) return index_slots_[b];
    if (k == kEmpty) break;
    b = (b + 1) & mask_;
  }
  if ((size_ + 1) * 2 > index_keys_.size()) {
    Grow();
    return LookupOrInsert(key);
  }
  const uint32_t slot = NewSlot(key);
  index_keys_[b] = key;
  index_slots_[b] = slot;
  return slot;
}

const float* RowStore::Find(uint64_t key) const {
  size_t b = Bucket(key);
  for (;;) {
    const uint64_t k = index_keys_[b];
    if (k == key) return SlotPtr(index_slots_[b]);
    if (k == kEmpty) return nullptr;
    b = (b + 1) & mask_;
  }
}

void RowStore::FindOrCreate(const uint64_t* keys, size_t n, float** ptrs) {
  // Hash and prefetch the index ahead of the probe loop: lookups are cache misses.
  constexpr size_t kAhead = 8;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      const size_t b = Bucket(keys[i + kAhead]);
      __builtin_prefetch(&index_keys_[b]);
      __builtin_prefetch(&index_slots_[b]);
    }
    EMBER_CHECK(keys[i] != kEmpty) << "reserved key";
    ptrs[i] = SlotPtr(LookupOrInsert(keys[i]));
  }
}

void RowStore::Pull(const uint64_t* keys, size_t n, float* out) {
  scratch_ptrs_.resize(n);
  FindOrCreate(keys, n, scratch_ptrs_.data());
  GatherRows(scratch_ptrs_.data(), n, spec_.dim, out);
}

void RowStore::PullReadOnly(const uint64_t* keys, size_t n, float* out) const {
  const size_t dim = static_cast<size_t>(spec_.dim);
  for (size_t i = 0; i < n; ++i) {
    const float* p = Find(keys[i]);
    if (p)
      std::memcpy(out + i * dim, p, dim * sizeof(float));
    else
      InitRow(spec_, keys[i], out + i * dim);
  }
}

void RowStore::Push(const uint64_t* keys, size_t n, const float* grads) {
  scratch_ptrs_.resize(n);
  FindOrCreate(keys, n, scratch_ptrs_.data());
  ApplyUpdate(spec_.optimizer, scratch_ptrs_.data(), n, spec_.dim, grads);
}

void RowStore::PullRef(const uint64_t* keys, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const float* p = SlotPtr(LookupOrInsert(keys[i]));
    GatherRowsRef(&p, 1, spec_.dim, out + i * spec_.dim);
  }
}

void RowStore::PushRef(const uint64_t* keys, size_t n, const float* grads) {
  for (size_t i = 0; i < n; ++i) {
    float* p = SlotPtr(LookupOrInsert(keys[i]));
    ApplyUpdateRef(spec_.optimizer, &p, 1, spec_.dim, grads + i * spec_.dim);
  }
}

void RowStore::Put(uint64_t key, const float* slot) {
  std::memcpy(SlotPtr(LookupOrInsert(key)), slot, sizeof(float) * stride_);
}

void RowStore::AppendTo(std::string* out) const {
  AppendPod(out, kStoreMagic);
  AppendPod(out, kStoreVersion);
  AppendPod(out, spec_.id);
  AppendPod(out, static_cast<int32_t>(spec_.dim));
  AppendPod(out, spec_.rows);
  AppendPod(out, spec_.init_scale);
  AppendPod(out, spec_.seed);
  AppendPod(out, static_cast<int32_t>(spec_.optimizer.kind));
  AppendPod(out, spec_.optimizer.lr);
  AppendPod(out, spec_.optimizer.eps);
  AppendPod(out, spec_.optimizer.beta1);
  AppendPod(out, spec_.optimizer.beta2);
  AppendPod(out, spec_.optimizer.initial_accumulator);
  AppendPod(out, static_cast<uint64_t>(size_));
  out->reserve(out->size() + size_ * (8 + 4 * stride_));
  for (size_t s = 0; s < size_; ++s) {
    AppendPod(out, slot_keys_[s]);
    out->append(reinterpret_cast<const char*>(SlotPtr(static_cast<uint32_t>(s))), sizeof(float) * stride_);
  }
}

Result<std::unique_ptr<RowStore>> RowStore::ParseFrom(std::string_view* in, const std::string& source) {
  uint32_t magic = 0, version = 0;
  TableSpec spec;
  int32_t dim = 0, kind = 0;
  uint64_t count = 0;
  const std::string_view start = *in;
  auto truncated = [&] {
    return Status::Corruption(source + ": truncated table section at byte " +
                              std::to_string(start.size() - in->size()));
  };
  if (!ReadPod(in, &magic) || !ReadPod(in, &version)) return truncated();
  if (magic != kStoreMagic) return Status::Corruption(source + ": bad table magic");
  if (version != kStoreVersion)
    return Status::Corruption(source + ": unsupported table version " + std::to_string(version));
  if (!ReadPod(in, &spec.id) || !ReadPod(in, &dim) || !ReadPod(in, &spec.rows) || !ReadPod(in, &spec.init_scale) ||
      !ReadPod(in, &spec.seed) || !ReadPod(in, &kind) || !ReadPod(in, &spec.optimizer.lr) ||
      !ReadPod(in, &spec.optimizer.eps) || !ReadPod(in, &spec.optimizer.beta1) || !ReadPod(in, &spec.optimizer.beta2) ||
      !ReadPod(in, &spec.optimizer.initial_accumulator) || !ReadPod(in, &count))
    return truncated();
  if (dim <= 0 || dim > 65536 || kind < 0 || kind > 3 || spec.id >= kMaxTables)
    return Status::Corruption(source + ": bad table header (dim " + std::to_string(dim) + ")");
  spec.dim = dim;
  spec.optimizer.kind = static_cast<OptimizerKind>(kind);
  auto store = std::make_unique<RowStore>(spec);
  const size_t row_bytes = 8 + sizeof(float) * store->stride();
  if (count > in->size() / row_bytes) return truncated();
  std::vector<float> slot(store->stride());
  for (uint64_t r = 0; r < count; ++r) {
    uint64_t key = 0;
    ReadPod(in, &key);
    std::memcpy(slot.data(), in->data(), sizeof(float) * slot.size());
    in->remove_prefix(sizeof(float) * slot.size());
    if (key == kEmpty) return Status::Corruption(source + ": reserved key in table");
    store->Put(key, slot.data());
  }
  return store;
}

}  // namespace ember::embedding
