// Batch: one mini-batch of CTR examples, and the BatchReader interface that yields them.
#pragma once

#include <cstdint>
#include <vector>

#include "ember/common/status.h"

namespace ember::data {

// Id of an empty categorical field (a value of its own, distinct from every hex id < 2^64-1).
inline constexpr uint64_t kMissingId = ~uint64_t{0};

struct Batch {
  size_t size = 0;
  int num_dense = 0;
  int num_sparse = 0;
  std::vector<float> labels;     // [size]
  std::vector<float> dense;      // [size x num_dense], row-major
  std::vector<uint64_t> sparse;  // [num_sparse x size], field-major: sparse[f * size + i]

  void Reset(int dense_fields, int sparse_fields, size_t capacity) {
    size = 0;
    num_dense = dense_fields;
    num_sparse = sparse_fields;
    labels.resize(capacity);
    dense.resize(capacity * dense_fields);
    sparse.resize(capacity * sparse_fields);
  }
  const uint64_t* field(int f) const { return sparse.data() + static_cast<size_t>(f) * labels.size(); }
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
};

}  // namespace ember::data
