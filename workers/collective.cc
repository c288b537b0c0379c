#include "ember/workers/collective.h"

#include <algorithm>

namespace ember::workers {

class InProcessGroup::Endpoint final : public Collective {
 public:
  Endpoint(InProcessGroup* group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size_; }
  Status AllReduceSum(float* data, size_t n) override { return group_->Reduce(rank_, data, n); }
  Status Barrier() override { return group_->Reduce(rank_, nullptr, 0); }

 private:
  InProcessGroup* group_;
  int rank_;
};

InProcessGroup::InProcessGroup(int size) : size_(size), buffers_(size, nullptr) {
  for (int r = 0; r < size; ++r) members_.push_back(std::make_unique<Endpoint>(this, r));
}

Status InProcessGroup::Reduce(int rank, float* data, size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  // Wait until the previous round has fully drained.
  cv_.wait(lock, [this] { return departed_ == 0; });
  const uint64_t gen = generation_;
  if (arrived_ == 0) n_ = n;
  if (n != n_)
    return Status::InvalidArgument("all-reduce size mismatch: rank " + std::to_string(rank) + " has " +
                                   std::to_string(n) + ", expected " + std::to_string(n_));
  buffers_[rank] = data;
  if (++arrived_ == size_) {
    sum_.assign(n_, 0.0f);
    for (int r = 0; r < size_; ++r)  // fixed order: deterministic sums
      for (size_t i = 0; i < n_; ++i) sum_[i] += buffers_[r][i];
    ++generation_;
    departed_ = size_;
    arrived_ = 0;
    cv_.notify_all();
  } else {
    cv_.wait(lock, [&] { return generation_ != gen; });
  }
  if (data) std::copy(sum_.begin(), sum_.end(), data);
  if (--departed_ == 0) cv_.notify_all();
  return Status::Ok();
}

}  // namespace ember::workers
