// PrefetchingReader: runs another BatchReader on a background thread, keeping up to `depth`
// parsed batches ready, so parsing overlaps training. Next/Progress are called by one
// consumer thread; the wrapped reader is touched only by the background thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "ember/data/batch.h"

namespace ember::data {

class PrefetchingReader final : public BatchReader {
 public:
  PrefetchingReader(std::unique_ptr<BatchReader> inner, int depth = 4);
  ~PrefetchingReader() override;

  Result<bool> Next(Batch* batch) override;
  double Progress() const override;
  uint64_t bad_lines() const override;
  int num_dense() const override { return num_dense_; }
  int num_sparse() const override { return num_sparse_; }
  bool Ready() const override;

 private:
  void Run();

  std::unique_ptr<BatchReader> inner_;
  const int depth_;
  const int num_dense_, num_sparse_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  std::vector<Batch> free_;
  Status error_;
  bool done_ = false;
  bool stop_ = false;
  double progress_ = 0;
  uint64_t bad_lines_ = 0;
  std::thread thread_;
};

}  // namespace ember::data
