// ShardedReader: worker w of W takes batch w of every group of W consecutive batches of the
// inner reader; a last, incomplete group is dropped by every worker alike, so all workers take
// the same number of steps (their dense all-reduce pairs up). Workers read the same file with the
// same batch size, so the split needs no coordination.
#pragma once

#include <memory>

#include "ember/data/batch.h"

namespace ember::data {

class ShardedReader final : public BatchReader {
 public:
  ShardedReader(std::unique_ptr<BatchReader> inner, int worker, int workers);
  Result<bool> Next(Batch* batch) override;
  double Progress() const override { return inner_->Progress(); }
  uint64_t bad_lines() const override { return inner_->bad_lines(); }
  int num_dense() const override { return inner_->num_dense(); }
  int num_sparse() const override { return inner_->num_sparse(); }
  bool Ready() const override { return inner_->Ready(); }

 private:
  std::unique_ptr<BatchReader> inner_;
  const int worker_, workers_;
  Batch skip_;
};

}  // namespace ember::data
