// RowStore: the dense rows of one table (or of one table's shard) with their optimizer state.
//
// Storage is an arena of fixed-size blocks of entries, each the row's key (8 bytes) followed by
// its slot: `dim` weights, then StateFloats(optimizer, dim) floats. A SlotIndex (hash tags and
// slot numbers, no keys) finds the entry; the key stored in the entry confirms the match, so a
// lookup's only random access outside the small index is the row itself. Per row that is the
// slot, 8 bytes of key and 6-7.5 bytes of index (+ 8 bytes of last-touch step with expiry).
// With fp16 precision the weights take ceil(dim / 2) floats' room (dim halfs) and are widened
// to fp32 for every pull and update; Find/Put/records then see that storage layout.
// Rows are created on first Pull or Push with the deterministic initialiser of TableSpec, so a
// row's initial value depends only on (spec.seed, key). Pointers to rows stay valid for the
// store's lifetime (blocks never move) until an eviction (Table::Expire) compacts the slots,
// except while the first block grows (up to kBlockSlots rows): no pointer is kept across calls.
//
// Batched calls only: one call moves a batch of keys. Keys in one Push must be unique.
// Thread-compatible: callers serialise access (ps::Shard holds a mutex).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/slot_index.h"
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
  // MemoryBytes() by part: weights and optimizer state (what the rows hold), the keys stored
  // beside them, the index, and the rest (unfilled entries of the last block, the block table,
  // the touch steps of expiry).
  struct MemoryParts {
    size_t weights = 0, state = 0, keys = 0, index = 0, other = 0;
  };
  MemoryParts MemoryByPart() const;
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
    for (size_t s = 0; s < size_; ++s) fn(KeyAt(static_cast<uint32_t>(s)), SlotPtr(static_cast<uint32_t>(s)));
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

  bool Contains(uint64_t key) const override { return FindSlot(key) != SlotIndex::kAbsent; }
  bool Touched(uint64_t key, uint64_t* step) const override;

 protected:
  uint64_t EvictIdle(uint64_t before) override;
  void ForEachTouched(const std::function<void(uint64_t key, uint64_t step)>& fn) const override;
  Status PutTouched(uint64_t key, uint64_t step) override;

 private:
  static constexpr int kBlockShift = 12;  // 4096 entries per block
  static constexpr uint32_t kBlockSlots = 1u << kBlockShift;
  // The first block starts at this many entries and doubles until whole, so that a small table
  // (a field of a few values, a full table under a small budget) holds little more than its rows.
  static constexpr uint32_t kFirstBlockSlots = 64;
  static size_t FirstBlockSlots(size_t slots);  // its size for `slots` slots
  size_t SlotCapacity() const;                  // slots allocated
  // Room for `slots` slots (at most a block) in the first block, moving its rows if it grows.
  void Reserve(size_t slots);
  static constexpr int kKeyFloats = 2;  // the key's room at the start of an entry

  float* EntryPtr(uint32_t slot) const {
    return blocks_[slot >> kBlockShift].get() + static_cast<size_t>(slot & (kBlockSlots - 1)) * entry_;
  }
  float* SlotPtr(uint32_t slot) const { return EntryPtr(slot) + kKeyFloats; }
  uint64_t KeyAt(uint32_t slot) const {
    uint64_t key;
    std::memcpy(&key, EntryPtr(slot), sizeof(key));
    return key;
  }
  // The slot of key, or SlotIndex::kAbsent.
  uint32_t FindSlot(uint64_t key) const;
  // Returns the slot of key, inserting a fresh initialised row if absent.
  uint32_t LookupOrInsert(uint64_t key);
  // The slot of key (hash: its SlotIndex::Hash) and false, or a new slot appended for it (see
  // NewSlot) and true.
  std::pair<uint32_t, bool> FindOrAppend(uint64_t key, uint64_t hash, bool init = true);
  // Resolves keys to slot pointers and calls fn(i, slot) for each, in order. A software pipeline
  // overlaps the misses: key i + 2 * kAhead has its index group prefetched, key i + kAhead its
  // candidate row, while key i is confirmed and handed to fn (its row then in cache).
  // create: missing rows are created (and touched rows stamped); otherwise a missing row's slot
  // is nullptr and nothing changes.
  static constexpr size_t kAhead = 8;
  template <typename Fn>
  void Resolve(const uint64_t* keys, size_t n, bool create, Fn&& fn);
  // Appends a slot for key: initial weights and optimizer state, or (init = false) uninitialised.
  uint32_t NewSlot(uint64_t key, bool init = true);

  // Widens a slot's weights to dim floats / narrows dim floats into a slot.
  void LoadWeights(const float* slot, float* out) const;
  void StoreWeights(float* slot, const float* weights) const;
  // Optimizer update of rows given by slot pointers (fp16: through an fp32 copy).
  void Update(float* const* slots, size_t n, const float* grads);

  bool half_;
  int weight_floats_;
  int stride_;
  int entry_;  // floats per entry: the key's room + stride_
  size_t size_ = 0;
  SlotIndex index_;  // key -> slot
  std::vector<std::unique_ptr<float[]>> blocks_;
  size_t first_capacity_ = 0;      // slots of blocks_[0] (kBlockSlots once whole)
  std::vector<uint64_t> touched_;  // by slot, with expiry: step of the last Pull/Push
  std::vector<float*> scratch_ptrs_;
  std::vector<float> frozen_grads_;
  std::vector<float> row_scratch_;
};

}  // namespace ember::embedding
