// Batch: one mini-batch of CTR examples, and the BatchReader interface that yields them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/status.h"

namespace ember::data {

// Id of an empty categorical field (a value of its own, distinct from every hex id < 2^64-1).
inline constexpr uint64_t kMissingId = ~uint64_t{0};

// A multi-hot field's ids in a batch: example i's ids are ids[offsets[i] .. offsets[i + 1]), with
// their pooling weights alongside (1 for sum pooling, 1 / length for mean, times the id's own
// weight where the column is weighted).
struct Bags {
  std::vector<uint64_t> ids;
  std::vector<float> weights;
  std::vector<uint32_t> offsets;  // [size + 1]
  void Clear(size_t capacity) {
    ids.clear();
    weights.clear();
    offsets.clear();
    offsets.reserve(capacity + 1);
    offsets.push_back(0);
  }
};

// Where a text stream goes on after a batch: the file, the byte offset of its next line and that
// line's number (readers that have no such place leave it invalid). A checkpoint records it, so
// that a resumed run seeks there instead of reading the stream up to its position.
struct StreamCursor {
  bool valid = false;
  std::string file;
  uint64_t offset = 0;
  uint64_t line = 0;  // lines of `file` before offset
};

struct Batch {
  StreamCursor end;  // after this batch's last row (ShardedReader: after its group's last batch)
  size_t size = 0;
  int num_dense = 0;
  int num_sparse = 0;
  std::vector<float> labels;     // [size]
  std::vector<float> dense;      // [size x num_dense], row-major
  std::vector<uint64_t> sparse;  // [num_sparse x size], field-major: sparse[f * size + i]
  // Multi-hot fields: multi_hot[f] = 1 where field f is a bag (its sparse entries are unused);
  // empty = every field one-hot. bags[f] holds field f's bags.
  std::vector<uint8_t> multi_hot;
  std::vector<Bags> bags;

  // `multi`: per field, 1 where it is multi-hot (nullptr: none).
  void Reset(int dense_fields, int sparse_fields, size_t capacity, const std::vector<uint8_t>* multi = nullptr) {
    end.valid = false;
    size = 0;
    num_dense = dense_fields;
    num_sparse = sparse_fields;
    labels.resize(capacity);
    dense.resize(capacity * dense_fields);
    sparse.resize(capacity * sparse_fields);
    bool any = false;
    if (multi)
      for (uint8_t m : *multi) any |= m != 0;
    if (any) {
      multi_hot = *multi;
      bags.resize(multi_hot.size());
      for (size_t f = 0; f < multi_hot.size(); ++f)
        if (multi_hot[f]) bags[f].Clear(capacity);
    } else {
      multi_hot.clear();
      bags.clear();
    }
  }
  const uint64_t* field(int f) const { return sparse.data() + static_cast<size_t>(f) * labels.size(); }
  bool is_multi_hot(int f) const { return !multi_hot.empty() && multi_hot[static_cast<size_t>(f)]; }
  bool any_multi_hot() const { return !multi_hot.empty(); }
  // Every id of field f in this batch (a one-hot field's column, a multi-hot field's bags).
  const uint64_t* field_ids(int f, size_t* count) const {
    if (is_multi_hot(f)) {
      *count = bags[static_cast<size_t>(f)].ids.size();
      return bags[static_cast<size_t>(f)].ids.data();
    }
    *count = size;
    return field(f);
  }
};

// Yields batches until the source is exhausted. Not thread-safe.
class BatchReader {
 public:
  virtual ~BatchReader() = default;
  // Fills *batch; returns false at the end of the data (batch->size == 0 then).
  virtual Result<bool> Next(Batch* batch) = 0;
  // Fraction of the source consumed, in [0, 1] (for progress and ETA).
  virtual double Progress() const = 0;
  // Lines skipped under on_bad_line = "skip".
  virtual uint64_t bad_lines() const = 0;
  virtual int num_dense() const = 0;
  virtual int num_sparse() const = 0;
  // Whether Next would return without waiting for more input (a reader ahead of its consumer, or
  // at its end). A followed stream waiting for data is not ready: the trainer then trains the
  // batch it has instead of holding it back for the next one.
  virtual bool Ready() const { return true; }
};

}  // namespace ember::data
