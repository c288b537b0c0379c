#include "ember/embedding/sparse_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "ember/common/hash.h"
#include "ember/embedding/kernels.h"

namespace ember::embedding {
namespace {
// Kept entry or growth candidate during PruneGrow.
struct Entry {
  float score;
  uint32_t row;
  uint32_t bit;
};
}  // namespace

SparseRowStore::SparseRowStore(const TableSpec& spec)
    : Table(spec),
      state_per_value_(StateFloats(spec.optimizer.kind, 1) - StateFloats(spec.optimizer.kind, 0)),
      state_per_row_(StateFloats(spec.optimizer.kind, 0)) {
  EMBER_CHECK(spec.dim > 0 && spec.dim <= kMaxDim) << "sparse table dim " << spec.dim;
  pools_.resize(static_cast<size_t>(spec.dim) + 1);
}

double SparseRowStore::SlotFloats(OptimizerKind kind, double count) {
  const int per_row = StateFloats(kind, 0), per_value = StateFloats(kind, 1) - per_row;
  return count * (1 + per_value) + per_row;
}

int SparseRowStore::SlotFloats(int count) const {
  // The kernels' layout for a row of `count` values: weights, then StateFloats(kind, count).
  return count * (1 + state_per_value_) + state_per_row_;
}

size_t SparseRowStore::MemoryBytes() const {
  size_t bytes = index_.MemoryBytes() + (row_keys_.capacity() + touched_.capacity()) * sizeof(uint64_t) +
                 rows_.capacity() * sizeof(Row);
  for (size_t c = 0; c < pools_.size(); ++c)
    bytes += pools_[c].blocks.size() * kPoolBlock * sizeof(float) * SlotFloats(static_cast<int>(c)) +
             pools_[c].owner.capacity() * sizeof(uint32_t);
  return bytes;
}

uint64_t SparseRowStore::EstimateBytes(const TableSpec& spec, uint64_t rows) {
  uint64_t vec = 1;
  while (vec < rows) vec *= 2;
  const double floats = SlotFloats(spec.optimizer.kind, static_cast<double>(spec.density) * spec.dim);
  // Dense pools: the slots hold exactly the kept entries (and each row's state) wherever prune
  // and grow move them, plus each slot's owner and about a block's slack per population (a
  // partly used block and a spare, at most).
  // (Owners are vectors per pool: 1.5 times their size on average.) Expiry adds each row's step.
  const uint64_t partial_blocks = 2 * (static_cast<uint64_t>(spec.dim) + 1);
  const bool tracked = spec.lifecycle.expires() && !spec.frozen;
  return KeyIndex::EstimateBytes(rows) + vec * (sizeof(uint64_t) + sizeof(Row) + (tracked ? sizeof(uint64_t) : 0)) +
         static_cast<uint64_t>(static_cast<double>(rows) * (floats * sizeof(float) + 1.5 * sizeof(uint32_t))) +
         static_cast<uint64_t>(static_cast<double>(partial_blocks * kPoolBlock) * floats * sizeof(float));
}

int SparseRowStore::Allotment(const TableSpec& spec, uint64_t key) {
  const double want = static_cast<double>(spec.density) * spec.dim;
  int k = static_cast<int>(std::floor(want));
  if (UnitFromHash(Mix64(key ^ Mix64(spec.seed + 0x6a09e667))) < want - k) ++k;
  return std::min(k, spec.dim);
}

uint32_t SparseRowStore::Alloc(int count, uint32_t row) {
  Pool& p = pools_[count];
  const size_t floats = static_cast<size_t>(SlotFloats(count));
  if (floats == 0) return 0;  // nothing stored: every row shares slot 0
  const uint32_t s = p.used++;
  if ((s >> kPoolShift) >= p.blocks.size()) p.blocks.emplace_back(new float[kPoolBlock * floats]);
  p.owner.push_back(row);
  return s;
}

void SparseRowStore::Free(const Row& r) {
  const int c = __builtin_popcountll(r.mask);
  const size_t floats = static_cast<size_t>(SlotFloats(c));
  if (floats == 0) return;
  Pool& p = pools_[c];
  const uint32_t last = --p.used;
  if (r.slot != last) {
    float* dst = p.blocks[r.slot >> kPoolShift].get() + static_cast<size_t>(r.slot & (kPoolBlock - 1)) * floats;
    const float* src = p.blocks[last >> kPoolShift].get() + static_cast<size_t>(last & (kPoolBlock - 1)) * floats;
    std::memcpy(dst, src, floats * sizeof(float));
    const uint32_t moved = p.owner[last];
    p.owner[r.slot] = moved;
    rows_[moved].slot = r.slot;
  }
  p.owner.pop_back();
  // Keep one spare block past the last used one: a row moving back and forth across a block
  // boundary does not allocate each time.
  while (p.blocks.size() > (static_cast<size_t>(p.used) >> kPoolShift) + 2) p.blocks.pop_back();
}

uint64_t SparseRowStore::InitialMask(const TableSpec& spec, uint64_t key) {
  // The row's allotment of positions: a partial Fisher-Yates shuffle driven by the key.
  const int k = Allotment(spec, key);
  int pos[kMaxDim];
  for (int j = 0; j < spec.dim; ++j) pos[j] = j;
  uint64_t h = Mix64(key ^ Mix64(spec.seed + 0xbb67ae85));
  uint64_t mask = 0;
  for (int j = 0; j < k; ++j) {
    h = Mix64(h + 0x9e3779b97f4a7c15ULL);
    const int pick = j + static_cast<int>(h % static_cast<uint64_t>(spec.dim - j));
    std::swap(pos[j], pos[pick]);
    mask |= uint64_t{1} << pos[j];
  }
  return mask;
}

int64_t SparseRowStore::FindRow(uint64_t key) const {
  const uint32_t r = index_.Find(key);
  return r == KeyIndex::kAbsent ? -1 : static_cast<int64_t>(r);
}

uint32_t SparseRowStore::LookupOrInsert(uint64_t key) {
  EMBER_CHECK(key != KeyIndex::kEmpty) << "reserved key";
  const auto [r, inserted] = index_.Insert(key, static_cast<uint32_t>(rows_.size()));
  if (!inserted) {
    if (track_) touched_[r] = now_;
    return r;
  }
  if (track_) touched_.push_back(now_);
  // New row: its initial mask and the initial values at those positions.
  const uint64_t mask = InitialMask(spec_, key);
  const int k = __builtin_popcountll(mask);
  float init[kMaxDim];
  InitRow(spec_, key, init);
  Row row;
  row.mask = mask;
  row.slot = Alloc(k, static_cast<uint32_t>(rows_.size()));
  float* p = SlotPtr(row);
  int c = 0;
  for (uint64_t m = mask; m; m &= m - 1) p[c++] = init[__builtin_ctzll(m)];
  InitState(spec_.optimizer, k, p + k);
  rows_.push_back(row);
  row_keys_.push_back(key);
  values_ += static_cast<uint64_t>(k);
  return r;
}

uint64_t SparseRowStore::ResetRows() {
  float init[kMaxDim];
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& row = rows_[i];
    const int k = __builtin_popcountll(row.mask);
    InitRow(spec_, row_keys_[i], init);
    float* p = SlotPtr(row);
    int c = 0;
    for (uint64_t m = row.mask; m; m &= m - 1) p[c++] = init[__builtin_ctzll(m)];
    InitState(spec_.optimizer, k, p + k);
  }
  return rows_.size();
}

void SparseRowStore::Expand(const Row& r, float* out) const {
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(spec_.dim));
  const float* p = SlotPtr(r);
  int c = 0;
  for (uint64_t m = r.mask; m; m &= m - 1) out[__builtin_ctzll(m)] = p[c++];
}

bool SparseRowStore::Mask(uint64_t key, uint64_t* mask) const {
  const int64_t r = FindRow(key);
  if (r < 0) return false;
  *mask = rows_[static_cast<size_t>(r)].mask;
  return true;
}

void SparseRowStore::Pull(const uint64_t* keys, size_t n, float* out) {
  if (spec_.frozen) {
    PullReadOnly(keys, n, out);
    return;
  }
  for (size_t i = 0; i < n; ++i) Expand(rows_[LookupOrInsert(keys[i])], out + i * spec_.dim);
}

void SparseRowStore::PullReadOnly(const uint64_t* keys, size_t n, float* out) const {
  const size_t dim = static_cast<size_t>(spec_.dim);
  for (size_t i = 0; i < n; ++i) {
    const int64_t r = FindRow(keys[i]);
    float* o = out + i * dim;
    if (r >= 0) {
      Expand(rows_[static_cast<size_t>(r)], o);
    } else if (spec_.frozen) {
      std::memset(o, 0, dim * sizeof(float));
    } else {
      // The value the row would start with: its initial mask over the initial row.
      float init[kMaxDim];
      InitRow(spec_, keys[i], init);
      const uint64_t mask = InitialMask(spec_, keys[i]);
      for (size_t j = 0; j < dim; ++j) o[j] = ((mask >> j) & 1) ? init[j] : 0.0f;
    }
  }
}

void SparseRowStore::Push(const uint64_t* keys, size_t n, const float* grads) {
  const size_t dim = static_cast<size_t>(spec_.dim);
  scratch_.resize(dim);
  for (size_t i = 0; i < n; ++i) {
    int64_t r;
    if (spec_.frozen) {
      r = FindRow(keys[i]);
      if (r < 0) continue;
    } else {
      r = LookupOrInsert(keys[i]);
    }
    const float* g = grads + i * dim;
    if (collect_) {
      auto& acc = growth_[static_cast<uint32_t>(r)];
      if (acc.empty()) acc.assign(dim, 0.0f);
      for (size_t j = 0; j < dim; ++j) acc[j] += std::fabs(g[j]);
    }
    Row& row = rows_[static_cast<size_t>(r)];
    int c = 0;
    for (uint64_t m = row.mask; m; m &= m - 1) scratch_[c++] = g[__builtin_ctzll(m)];
    if (c == 0) continue;
    float* p = SlotPtr(row);
    ApplyUpdateRef(spec_.optimizer, &p, 1, c, scratch_.data());
  }
}

void SparseRowStore::ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const {
  std::vector<float> row(static_cast<size_t>(spec_.dim));
  for (size_t r = 0; r < rows_.size(); ++r) {
    Expand(rows_[r], row.data());
    fn(row_keys_[r], row.data());
  }
}

void SparseRowStore::ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const {
  std::string rec;
  for (size_t r = 0; r < rows_.size(); ++r) {
    const Row& row = rows_[r];
    const int c = __builtin_popcountll(row.mask);
    rec.assign(reinterpret_cast<const char*>(&row.mask), sizeof(row.mask));
    if (SlotFloats(c) > 0)
      rec.append(reinterpret_cast<const char*>(SlotPtr(row)), sizeof(float) * static_cast<size_t>(SlotFloats(c)));
    fn(row_keys_[r], rec);
  }
}

Status SparseRowStore::PutRecord(uint64_t key, std::string_view record) {
  if (key == KeyIndex::kEmpty) return Status::Corruption("reserved key in table " + std::to_string(spec_.id));
  uint64_t mask = 0;
  if (record.size() < sizeof(mask)) return Status::Corruption("sparse row record too short");
  std::memcpy(&mask, record.data(), sizeof(mask));
  if (spec_.dim < 64 && (mask >> spec_.dim) != 0)
    return Status::Corruption("sparse row mask has bits beyond dim " + std::to_string(spec_.dim));
  const int c = __builtin_popcountll(mask);
  const size_t want = sizeof(mask) + sizeof(float) * static_cast<size_t>(SlotFloats(c));
  if (record.size() != want)
    return Status::Corruption("sparse row record of " + std::to_string(record.size()) + " bytes, expected " +
                              std::to_string(want));
  for (size_t at = sizeof(mask); at + 4 <= want; at += 4) {
    uint32_t bits;
    std::memcpy(&bits, record.data() + at, 4);
    if (((bits >> 23) & 0xff) == 0xff)
      return Status::Corruption("row " + std::to_string(KeyLocal(key)) + " of table " + std::to_string(spec_.id) +
                                " holds a value that is not finite");
  }
  const int64_t existing = FindRow(key);
  uint32_t r;
  if (existing >= 0) {
    r = static_cast<uint32_t>(existing);
  } else {
    r = LookupOrInsert(key);
  }
  Row& row = rows_[r];
  values_ -= static_cast<uint64_t>(__builtin_popcountll(row.mask));
  Free(row);
  row.mask = mask;
  row.slot = Alloc(c, r);
  if (want > sizeof(mask)) std::memcpy(SlotPtr(row), record.data() + sizeof(mask), want - sizeof(mask));
  values_ += static_cast<uint64_t>(c);
  return Status::Ok();
}

void SparseRowStore::SetCollectGrowth(bool on) {
  collect_ = on;
  if (!on) growth_.clear();
}

void SparseRowStore::ForEachStateEntry(const std::function<void(uint64_t, std::string_view)>& fn) const {
  // In key order, so that the bytes of a checkpoint do not depend on the hash map's order.
  std::vector<std::pair<uint64_t, const std::vector<float>*>> entries;
  for (const auto& [r, acc] : growth_) entries.emplace_back(row_keys_[r], &acc);
  std::sort(entries.begin(), entries.end());
  for (const auto& [key, acc] : entries)
    fn(key, std::string_view(reinterpret_cast<const char*>(acc->data()), acc->size() * sizeof(float)));
}

Status SparseRowStore::PutStateFlags(uint32_t flags) {
  if (flags > 1) return Status::Corruption("unknown sparse table state flags " + std::to_string(flags));
  collect_ = flags == 1;
  return Status::Ok();
}

Status SparseRowStore::PutStateEntry(uint64_t key, std::string_view entry) {
  if (entry.size() != sizeof(float) * static_cast<size_t>(spec_.dim))
    return Status::Corruption("growth entry of " + std::to_string(entry.size()) + " bytes, expected " +
                              std::to_string(sizeof(float) * spec_.dim));
  const int64_t r = FindRow(key);
  if (r < 0) return Status::Corruption("growth entry for a row that is not in the table");
  auto& acc = growth_[static_cast<uint32_t>(r)];
  acc.resize(static_cast<size_t>(spec_.dim));
  std::memcpy(acc.data(), entry.data(), entry.size());
  return Status::Ok();
}

void SparseRowStore::Remask(uint32_t r, uint64_t new_mask, uint64_t survivors) {
  Row& row = rows_[r];
  const uint64_t old_mask = row.mask;
  if (old_mask == new_mask && (survivors & old_mask) == old_mask) return;
  const int old_c = __builtin_popcountll(old_mask), new_c = __builtin_popcountll(new_mask);
  const float* old_ptr = SlotPtr(row);
  std::vector<float> old(old_ptr ? old_ptr : nullptr, old_ptr ? old_ptr + SlotFloats(old_c) : nullptr);
  Free(row);
  row.mask = new_mask;
  row.slot = Alloc(new_c, r);
  float* p = SlotPtr(row);
  std::fill(p, p + SlotFloats(new_c), 0.0f);
  // Position of a bit among a mask's set bits.
  auto rank = [](uint64_t mask, int bit) { return __builtin_popcountll(mask & ((uint64_t{1} << bit) - 1)); };
  for (uint64_t m = new_mask; m; m &= m - 1) {
    const int bit = __builtin_ctzll(m);
    const int nj = rank(new_mask, bit);
    const bool kept = (old_mask & survivors) >> bit & 1;
    const int oj = kept ? rank(old_mask, bit) : 0;
    p[nj] = kept ? old[oj] : 0.0f;
    for (int s = 0; s < state_per_value_; ++s)
      p[new_c + s * new_c + nj] = kept ? old[old_c + s * old_c + oj] : InitialStateValue(spec_.optimizer, s);
  }
  for (int s = 0; s < state_per_row_; ++s)
    p[new_c * (1 + state_per_value_) + s] = old[old_c * (1 + state_per_value_) + s];
  values_ += static_cast<uint64_t>(new_c);
  values_ -= static_cast<uint64_t>(old_c);
}

SparseRowStore::PruneGrowResult SparseRowStore::PruneGrow(double fraction, uint64_t seed) {
  PruneGrowResult res;
  const uint64_t n = values_;
  const uint64_t k = std::min<uint64_t>(n, static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(n))));
  if (k == 0) {
    res.values = n;
    growth_.clear();
    return res;
  }
  // Rows are visited and ties broken in key order, not in the order rows were created: on a
  // cluster, concurrent workers' pulls create rows in an order that varies from run to run.
  std::vector<uint32_t> by_key(rows_.size());
  for (uint32_t r = 0; r < rows_.size(); ++r) by_key[r] = r;
  std::sort(by_key.begin(), by_key.end(), [&](uint32_t a, uint32_t b) { return row_keys_[a] < row_keys_[b]; });
  // Prune: the k kept entries of smallest magnitude (ties broken by key, then bit).
  std::vector<Entry> active;
  active.reserve(n);
  for (uint32_t r = 0; r < rows_.size(); ++r) {
    const float* p = SlotPtr(rows_[r]);
    int c = 0;
    for (uint64_t m = rows_[r].mask; m; m &= m - 1)
      active.push_back({std::fabs(p[c++]), r, static_cast<uint32_t>(__builtin_ctzll(m))});
  }
  auto smaller = [this](const Entry& a, const Entry& b) {
    if (a.score != b.score) return a.score < b.score;
    return a.row != b.row ? row_keys_[a.row] < row_keys_[b.row] : a.bit < b.bit;
  };
  std::nth_element(active.begin(), active.begin() + static_cast<int64_t>(k - 1), active.end(), smaller);
  std::vector<uint64_t> masks(rows_.size());
  for (size_t r = 0; r < rows_.size(); ++r) masks[r] = rows_[r].mask;
  for (uint64_t i = 0; i < k; ++i) masks[active[i].row] &= ~(uint64_t{1} << active[i].bit);
  std::vector<uint64_t> survivors = masks;  // kept entries that were not pruned
  res.pruned = k;
  std::vector<Entry>().swap(active);
  // Grow: the k masked entries with the largest collected |gradient| ...
  std::vector<Entry> cand;
  for (const auto& [r, acc] : growth_) {
    for (int j = 0; j < spec_.dim; ++j)
      if (!((masks[r] >> j) & 1) && acc[static_cast<size_t>(j)] > 0.0f)
        cand.push_back({acc[static_cast<size_t>(j)], r, static_cast<uint32_t>(j)});
  }
  auto larger = [&](const Entry& a, const Entry& b) { return smaller(b, a); };
  uint64_t grown = 0;
  if (cand.size() > k) std::nth_element(cand.begin(), cand.begin() + static_cast<int64_t>(k - 1), cand.end(), larger);
  for (size_t i = 0; i < cand.size() && grown < k; ++i, ++grown) masks[cand[i].row] |= uint64_t{1} << cand[i].bit;
  // ... then, when fewer had a gradient, masked entries in a seeded random order.
  std::mt19937_64 rng(seed);
  const uint64_t full = spec_.dim == 64 ? ~uint64_t{0} : (uint64_t{1} << spec_.dim) - 1;
  uint64_t attempts = 0;
  while (grown < k && !rows_.empty()) {
    uint32_t r;
    if (attempts++ < 64 * k) {
      r = by_key[rng() % rows_.size()];
    } else {  // nearly full table: scan for any masked entry
      size_t i = 0;
      while (i < by_key.size() && masks[by_key[i]] == full) ++i;
      if (i == by_key.size()) break;
      r = by_key[i];
    }
    const uint64_t free_bits = ~masks[r] & full;
    if (!free_bits) continue;
    int pick = static_cast<int>(rng() % static_cast<uint64_t>(__builtin_popcountll(free_bits)));
    uint64_t m = free_bits;
    while (pick-- > 0) m &= m - 1;
    masks[r] |= m & (~m + 1);
    ++grown;
  }
  res.grown = grown;
  for (uint32_t r = 0; r < rows_.size(); ++r) Remask(r, masks[r], survivors[r]);
  growth_.clear();
  res.values = values_;
  return res;
}

}  // namespace ember::embedding

namespace ember::embedding {

bool SparseRowStore::Touched(uint64_t key, uint64_t* step) const {
  const int64_t r = FindRow(key);
  if (!track_ || r < 0) return false;
  *step = touched_[static_cast<size_t>(r)];
  return true;
}

uint64_t SparseRowStore::EvictIdle(uint64_t before) {
  if (!track_) return 0;
  // Evicted rows' slots go back to their pools (the pools' last rows move into them); survivors are compacted in
  // row order (collected growth follows its row); the index is rebuilt.
  // Slots first (freeing moves pool rows, by their indices before compaction), then the rows.
  size_t evicted = 0;
  for (size_t r = 0; r < rows_.size(); ++r)
    if (touched_[r] < before) {
      values_ -= static_cast<uint64_t>(__builtin_popcountll(rows_[r].mask));
      Free(rows_[r]);
      ++evicted;
    }
  if (evicted == 0) return 0;
  std::unordered_map<uint32_t, std::vector<float>> growth;
  std::vector<uint32_t> moved_to(rows_.size());
  size_t keep = 0;
  for (size_t r = 0; r < rows_.size(); ++r) {
    if (touched_[r] < before) continue;
    auto g = growth_.find(static_cast<uint32_t>(r));
    if (g != growth_.end()) growth.emplace(static_cast<uint32_t>(keep), std::move(g->second));
    moved_to[r] = static_cast<uint32_t>(keep);
    rows_[keep] = rows_[r];
    row_keys_[keep] = row_keys_[r];
    touched_[keep] = touched_[r];
    ++keep;
  }
  for (auto& pool : pools_)
    for (uint32_t& o : pool.owner) o = moved_to[o];
  rows_.resize(keep);
  row_keys_.resize(keep);
  touched_.resize(keep);
  growth_ = std::move(growth);
  index_ = KeyIndex();
  for (size_t r = 0; r < keep; ++r) index_.Insert(row_keys_[r], static_cast<uint32_t>(r));
  return evicted;
}

void SparseRowStore::ForEachTouched(const std::function<void(uint64_t, uint64_t)>& fn) const {
  if (!track_) return;
  for (size_t r = 0; r < rows_.size(); ++r) fn(row_keys_[r], touched_[r]);
}

Status SparseRowStore::PutTouched(uint64_t key, uint64_t step) {
  const int64_t r = FindRow(key);
  if (!track_) return Status::Corruption("touch step for table " + std::to_string(spec_.id) + ", which has no expiry");
  if (r < 0) return Status::Corruption("touch step for a row the table does not hold");
  touched_[static_cast<size_t>(r)] = step;
  return Status::Ok();
}

}  // namespace ember::embedding
