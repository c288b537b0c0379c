// SparseRowStore: the element-masked rows of Dynamic Sparse Learning (docs/compression.md).
//
// A row holds a `dim`-bit mask (dim <= 64) and only the values under it, packed in mask-bit
// order, followed by the optimizer state of those values (StateFloats(kind, popcount) floats:
// row-wise Adagrad keeps one accumulator per row, Adam/Adagrad per kept value). Rows live in
// per-population pools, so the memory held is that of the kept values, not of a dense table
// with a mask over it. Pulls expand a row to `dim` floats with zeros at masked entries; pushes
// update only kept entries (masked entries keep no optimizer state).
//
// A new row keeps `Allotment(spec, key)` entries at positions and values drawn from its key, so
// the table's total is fixed by the rows it holds. PruneGrow moves entries without changing that
// total: the fraction p of kept entries with the smallest |w| is pruned, and as many masked
// entries are grown where the gradient collected since SetCollectGrowth(true) is largest (ties
// among zero-gradient entries are filled in a seeded random order). Grown entries start at 0 with
// fresh optimizer state; an entry pruned in a round may regrow in the same round (at 0).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ember/common/key_index.h"
#include "ember/embedding/table.h"

namespace ember::embedding {

class SparseRowStore final : public Table {
 public:
  static constexpr int kMaxDim = 64;
  explicit SparseRowStore(const TableSpec& spec);

  size_t size() const override { return row_keys_.size(); }
  uint64_t values() const override { return values_; }
  size_t MemoryBytes() const override;

  void Pull(const uint64_t* keys, size_t n, float* out) override;
  void PullReadOnly(const uint64_t* keys, size_t n, float* out) const override;
  void Push(const uint64_t* keys, size_t n, const float* grads) override;

  void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const override;
  // Record: mask (u64), then the packed slot (values, then state).
  void ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const override;
  Status PutRecord(uint64_t key, std::string_view record) override;
  uint64_t ResetRows() override;

  bool Contains(uint64_t key) const override { return index_.Find(key) != KeyIndex::kAbsent; }
  bool Touched(uint64_t key, uint64_t* step) const override;

  // Floats of a row keeping `count` values under an optimizer: the values, then their state
  // (StateFloats(kind, count): per value and per row); fractional counts for planning.
  static double SlotFloats(OptimizerKind kind, double count);
  // Estimated MemoryBytes() of a table of `rows` rows (planning).
  static uint64_t EstimateBytes(const TableSpec& spec, uint64_t rows);
  // Entries a new row of `key` keeps.
  static int Allotment(const TableSpec& spec, uint64_t key);
  // Positions a new row of `key` keeps (Allotment(spec, key) bits).
  static uint64_t InitialMask(const TableSpec& spec, uint64_t key);
  // Mask of a row; false if the row is absent.
  bool Mask(uint64_t key, uint64_t* mask) const;

  // While on, pushes accumulate |gradient| per entry for the next PruneGrow.
  void SetCollectGrowth(bool on);
  // Method state: flag 1 = collecting; entries = each row's collected |gradient| (dim floats).
  uint32_t StateFlags() const override { return collect_ ? 1u : 0u; }
  void ForEachStateEntry(const std::function<void(uint64_t, std::string_view)>& fn) const override;
  Status PutStateFlags(uint32_t flags) override;
  Status PutStateEntry(uint64_t key, std::string_view entry) override;
  struct PruneGrowResult {
    uint64_t pruned = 0;
    uint64_t grown = 0;
    uint64_t values = 0;  // kept entries after the round (unchanged by it)
  };
  PruneGrowResult PruneGrow(double fraction, uint64_t seed);

 protected:
  uint64_t EvictIdle(uint64_t before) override;
  void ForEachTouched(const std::function<void(uint64_t key, uint64_t step)>& fn) const override;
  Status PutTouched(uint64_t key, uint64_t step) override;

 private:
  struct Row {
    uint64_t mask = 0;
    uint32_t slot = 0;  // in pools_[popcount(mask)]
  };
  // Rows of one population live in blocks of kPoolBlock slots, kept dense: a freed slot takes
  // the pool's last row (owner says whose it is), and a block no slot uses is released. Prune
  // and grow move rows between populations all the time; dense pools hold exactly the kept
  // entries, however they spread over populations.
  static constexpr int kPoolShift = 8;
  static constexpr uint32_t kPoolBlock = 1u << kPoolShift;
  struct Pool {
    std::vector<std::unique_ptr<float[]>> blocks;
    uint32_t used = 0;
    std::vector<uint32_t> owner;  // slot -> row index
  };
  int SlotFloats(int count) const;
  // The row's slot; nullptr for a population with nothing to store.
  float* SlotPtr(const Row& r) const {
    const int c = __builtin_popcountll(r.mask);
    const Pool& p = pools_[c];
    if (p.blocks.empty()) return nullptr;
    return p.blocks[r.slot >> kPoolShift].get() + static_cast<size_t>(r.slot & (kPoolBlock - 1)) * SlotFloats(c);
  }
  // A slot for row index `row` in the pool of `count` values.
  uint32_t Alloc(int count, uint32_t row);
  // Gives back row r's slot (its contents are lost): the pool's last row moves into it.
  void Free(const Row& r);
  // Row index of key, or -1.
  int64_t FindRow(uint64_t key) const;
  uint32_t LookupOrInsert(uint64_t key);
  void Expand(const Row& r, float* out) const;
  // Rebuilds row r under new_mask: entries in `survivors` keep their value and state, the other
  // entries of new_mask start at 0 with fresh state.
  void Remask(uint32_t r, uint64_t new_mask, uint64_t survivors);

  const int state_per_value_;  // optimizer floats per kept value
  const int state_per_row_;    // optimizer floats per row
  uint64_t values_ = 0;
  KeyIndex index_;  // key -> row
  std::vector<uint64_t> row_keys_;
  std::vector<Row> rows_;
  std::vector<uint64_t> touched_;  // by row, with expiry: step of the last Pull/Push
  std::vector<Pool> pools_;        // by population 0..dim
  bool collect_ = false;
  std::unordered_map<uint32_t, std::vector<float>> growth_;  // row -> |grad| summed per entry
  std::vector<float> scratch_;
};

}  // namespace ember::embedding
