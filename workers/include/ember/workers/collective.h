// Collective: dense-gradient all-reduce among the worker ranks.
//
// Implementations: LocalCollective (one worker; no-op), InProcessGroup (every rank a thread in
// one process, for tests), and MPI / NCCL (distributed training issue). AllReduceSum leaves
// the element-wise sum over ranks in every rank's buffer; every rank must call it with the same
// n, in the same order. The reduction order is fixed (rank 0 + 1 + ...), so results are
// deterministic.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "ember/common/status.h"

namespace ember::workers {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Status AllReduceSum(float* data, size_t n) = 0;
  virtual Status Barrier() = 0;
};

class LocalCollective final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status AllReduceSum(float*, size_t) override { return Status::Ok(); }
  Status Barrier() override { return Status::Ok(); }
};

// A group of `size` in-process ranks; Member(r) is rank r's endpoint, to be used by one thread.
class InProcessGroup {
 public:
  explicit InProcessGroup(int size);
  Collective* Member(int rank) { return members_[rank].get(); }

 private:
  class Endpoint;
  friend class Endpoint;
  Status Reduce(int rank, float* data, size_t n);

  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<float*> buffers_;
  size_t n_ = 0;
  int arrived_ = 0;
  int departed_ = 0;
  uint64_t generation_ = 0;
  std::vector<float> sum_;
  std::vector<std::unique_ptr<Collective>> members_;
};

}  // namespace ember::workers
