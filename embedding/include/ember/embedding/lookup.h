// BatchLookup: what rows one batch reads from a group of fields that share a compression
// method, and where each row goes — the lookup the CTR trainer pulls through the PS and serving
// reads from an exported model, written once.
//
// Prepare maps every (example, field) id to its probe keys, de-duplicates them, orders the unique
// keys by table (each table's keys contiguous: one pull slice per table) and adds, for every key
// of an admitting table, its fallback key. The leaf is then rows() rows of slot_dim() floats (plus
// an all-zero padding row when some field has fewer probes than the widest); slots() gives, per
// example, field and probe slot, the leaf row it reads. A reader fills the leaf in key order and
// marks in own() the admitting keys that have a row of their own; ApplyFallbacks points the
// others' slots at their fallback row. No LibTorch: the caller gathers (index_select) and pushes.
//
// Multi-hot fields (bags of ids with pooling weights): when a field has bags, every (example,
// field, probe) slot becomes a bag of leaf rows: slots() lists the leaf row of every entry in slot
// order, bag_offsets() where each slot's entries begin (slots + 1 values) and bag_weights() their
// weights, for an embedding_bag sum; a one-hot field's slot is a bag of one with weight 1, a
// missing probe an empty bag (zeros).
// One BatchLookup per in-flight batch; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ember/embedding/dedup.h"
#include "ember/embedding/method.h"

namespace ember::embedding {

// One field's ids in a batch: ids[i] for example i (offsets null), or, for a multi-hot field,
// example i's bag ids[offsets[i] .. offsets[i + 1]) with weights alongside.
struct FieldIds {
  const uint64_t* ids = nullptr;
  const uint32_t* offsets = nullptr;
  const float* weights = nullptr;
  size_t count = 0;  // ids (n for a one-hot field)
};

class BatchLookup {
 public:
  // `method` must outlive this; its tables are contiguous ids from tables()[0].id.
  explicit BatchLookup(const EmbeddingMethod* method);

  // `ids`: field-major, ids[f * stride + i] is example i's id of field f (data::Batch's layout).
  void Prepare(const uint64_t* ids, size_t n, size_t stride);
  // `fields[f]` for every field of the method.
  void Prepare(const std::vector<FieldIds>& fields, size_t n);
  // Whether slots() are bags (some field is multi-hot): then pool with bag_offsets / bag_weights.
  bool bagged() const { return bagged_; }
  std::vector<int64_t>& bag_offsets() { return bag_offsets_; }
  std::vector<float>& bag_weights() { return bag_weights_; }

  const EmbeddingMethod& method() const { return *method_; }
  int slot_dim() const { return slot_dim_; }
  int max_probes() const { return max_probes_; }
  bool padded() const { return padded_; }  // some field has fewer probes: slots read a zero row
  bool narrow() const { return narrow_; }  // some table is narrower than slot_dim (rows zero-padded)
  size_t examples() const { return n_; }
  size_t keys() const { return keys_; }           // probe keys of the batch, before de-duplication
  size_t unique() const { return unique_; }       // distinct probe keys (the first rows of the leaf)
  size_t rows() const { return sorted_.size(); }  // unique keys and fallback keys
  size_t leaf_rows() const { return rows() + (padded_ ? 1 : 0); }
  const std::vector<uint64_t>& sorted_keys() const { return sorted_; }
  // fn(table id, begin, end, admits) for every table with keys in the leaf, in key order.
  template <typename Fn>
  void ForEachTable(Fn&& fn) const {
    for (size_t t = 0; t + 1 < table_begin_.size(); ++t)
      if (table_begin_[t] != table_begin_[t + 1])
        fn(first_table_ + static_cast<uint32_t>(t), table_begin_[t], table_begin_[t + 1], method_->admits(t));
  }
  // Per leaf row: whether the reader found the key's own row (admitting tables only; 1 preset).
  uint8_t* own() { return own_.data(); }
  bool admitting() const { return !fallback_row_.empty(); }
  // [examples x fields x max_probes] leaf rows (int64 for LibTorch's index_select).
  std::vector<int64_t>& slots() { return slots_; }

  struct Fallbacks {
    uint64_t admitting = 0;  // unique keys of admitting tables
    uint64_t fell = 0;       // of those, without a row of their own
  };
  // After the reader filled own(): slots of keys without their own row read their fallback's.
  Fallbacks ApplyFallbacks();

 private:
  const EmbeddingMethod* method_;
  uint32_t first_table_ = 0;
  int slot_dim_ = 0, max_probes_ = 0, total_probes_ = 0;
  bool padded_ = false, narrow_ = false, bagged_ = false;
  void Finish(size_t n);  // dedup, order by table, fallbacks, slots
  std::vector<int> probe_offset_;
  size_t n_ = 0, keys_ = 0, unique_ = 0;
  std::vector<uint64_t> probe_keys_, scratch_, sorted_, flat_;  // flat_: one-hot FieldIds, field-major
  std::vector<int64_t> inverse_, perm_, slots_, remap_, bag_offsets_;
  std::vector<float> bag_weights_;
  std::vector<size_t> table_begin_, fill_;
  std::vector<uint8_t> own_;
  std::vector<int64_t> fallback_row_;                   // per unique key: its fallback's leaf row (-1: none)
  std::unordered_map<uint64_t, size_t> fallback_slot_;  // fallback key -> leaf row
  KeyDeduper dedup_;
};

}  // namespace ember::embedding
