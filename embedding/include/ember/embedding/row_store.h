// RowStore: the dense rows of one table (or of one table's shard) with their optimizer state.
//
// Storage is a flat open-addressing hash index (key -> slot, linear probing) over an arena of
// fixed-size blocks; a slot holds `dim` weights followed by StateFloats(optimizer, dim) floats.
// With fp16 precision the weights take ceil(dim / 2) floats' room (dim halfs) and are widened
// to fp32 for every pull and update; Find/Put/records then see that storage layout.
// Rows are created on first Pull or Push with the deterministic initialiser of TableSpec, so a
// row's initial value depends only on (spec.seed, key). Pointers to rows stay valid for the
// store's lifetime (blocks never move) until an eviction (Table::Expire) compacts the slots.
//
// Batched calls only: one call moves a batch of keys. Keys in one Push must be unique.
// Thread-compatible: callers serialise access (ps::Shard holds a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/key_index.h"
#include "ember/common/status.h"
#include "ember/embedding/table.h"
#include "ember/embedding/types.h"

namespace ember::embedding {

class RowStore final : public Table {
 public:
  explicit RowStore(const TableSpec& spec);

  // Floats per slot: the weights' room (dim, or ceil(dim / 2) for fp16) + optimizer state.
  int stride() const { return stride_; }
  size_t size() const override { return size_; }
  uint64_t values() const override { return static_cast<uint64_t>(size_) * spec_.dim; }
  size_t MemoryBytes() const override;
  // Estimated MemoryBytes() of a table of `rows` rows (planning).
  static uint64_t EstimateBytes(const TableSpec& spec, uint64_t rows);

  // out[i*dim .. (i+1)*dim) = weights of keys[i]; missing rows are created.
  void Pull(const uint64_t* keys, size_t n, float* out) override;
  // Like Pull, but missing rows read as their initial value and are not inserted (evaluation).
  void PullReadOnly(const uint64_t* keys, size_t n, float* out) const override;
  // Applies the optimizer with grads[i*dim ..] to keys[i]; missing rows are created first.
  void Push(const uint64_t* keys, size_t n, const float* grads) override;
  // Plain twins of Pull/Push (per-key lookups, reference kernels) for tests and benchmarks.
  void PullRef(const uint64_t* keys, size_t n, float* out);
  void PushRef(const uint64_t* keys, size_t n, const float* grads);

  // Read-only lookup: the slot of key, or nullptr if absent (weights then state).
  const float* Find(uint64_t key) const;
  // Pointers to the slots of keys, creating missing rows. ptrs must hold n entries.
  void FindOrCreate(const uint64_t* keys, size_t n, float** ptrs);
  // Calls fn(key, slot) for every row, in slot (creation) order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (size_t s = 0; s < size_; ++s) fn(slot_keys_[s], SlotPtr(static_cast<uint32_t>(s)));
  }
  // Inserts or overwrites a row with `stride()` floats (restore, resharding).
  void Put(uint64_t key, const float* slot);
  // Inserts a row with these `dim` weights (nullptr: its initial ones) and fresh optimizer state;
  // an existing row keeps its state and takes the weights.
  void Assign(uint64_t key, const float* weights);

  void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const override;
  // Record: the slot's stride() floats.
  void ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const override;
  Status PutRecord(uint64_t key, std::string_view record) override;
  uint64_t ResetRows() override;

  bool Contains(uint64_t key) const override { return index_.Find(key) != KeyIndex::kAbsent; }
  bool Touched(uint64_t key, uint64_t* step) const override;

 protected:
  uint64_t EvictIdle(uint64_t before) override;
  void ForEachTouched(const std::function<void(uint64_t key, uint64_t step)>& fn) const override;
  Status PutTouched(uint64_t key, uint64_t step) override;

 private:
  static constexpr int kBlockShift = 12;  // 4096 slots per block
  static constexpr uint32_t kBlockSlots = 1u << kBlockShift;

  float* SlotPtr(uint32_t slot) const {
    return blocks_[slot >> kBlockShift].get() + static_cast<size_t>(slot & (kBlockSlots - 1)) * stride_;
  }
  // Returns the slot of key, inserting a fresh initialised row if absent.
  uint32_t LookupOrInsert(uint64_t key);
  // Appends a slot for key: initial weights and optimizer state, or (init = false) uninitialised.
  uint32_t NewSlot(uint64_t key, bool init = true);
  void Grow();

  // Widens a slot's weights to dim floats / narrows dim floats into a slot.
  void LoadWeights(const float* slot, float* out) const;
  void StoreWeights(float* slot, const float* weights) const;
  // Optimizer update of rows given by slot pointers (fp16: through an fp32 copy).
  void Update(float* const* slots, size_t n, const float* grads);

  bool half_;
  int weight_floats_;
  int stride_;
  size_t size_ = 0;
  KeyIndex index_;  // key -> slot
  std::vector<std::unique_ptr<float[]>> blocks_;
  std::vector<uint64_t> slot_keys_;
  std::vector<uint64_t> touched_;  // by slot, with expiry: step of the last Pull/Push
  std::vector<float*> scratch_ptrs_;
  std::vector<float> frozen_grads_;
  std::vector<float> row_scratch_;
};

}  // namespace ember::embedding
