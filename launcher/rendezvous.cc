#include "ember/launcher/rendezvous.h"

namespace ember::launcher {

class ThreadWorld::Member_ final : public Rendezvous {
 public:
  Member_(ThreadWorld* world, int rank) : world_(world), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return world_->size_; }
  Status Broadcast(std::string* bytes, int root) override {
    if (root < 0 || root >= world_->size_)
      return Status::InvalidArgument("broadcast from rank " + std::to_string(root));
    EMBER_ASSIGN_OR_RETURN(auto all, world_->Exchange(rank_, rank_ == root ? *bytes : std::string(), "broadcast"));
    if (all[static_cast<size_t>(root)].size() != bytes->size())
      return Status::InvalidArgument("broadcast of " + std::to_string(bytes->size()) + " bytes at rank " +
                                     std::to_string(rank_) + ", " +
                                     std::to_string(all[static_cast<size_t>(root)].size()) + " at the root");
    *bytes = all[static_cast<size_t>(root)];
    return Status::Ok();
  }
  Result<std::vector<std::string>> AllGather(const std::string& mine) override {
    return world_->Exchange(rank_, mine, "all-gather");
  }
  Status Barrier() override { return world_->Exchange(rank_, "", "barrier").status(); }
  Result<workers::Collective*> SplitWorkers(int first_worker, const std::string&, std::string* name) override {
    EMBER_ASSIGN_OR_RETURN(auto all, world_->Exchange(rank_, std::to_string(first_worker), "split"));
    for (const auto& f : all)
      if (f != all[0]) return Status::InvalidArgument("split: the ranks disagree on the first worker");
    if (first_worker < 0 || first_worker >= world_->size_)
      return Status::InvalidArgument("split: no worker rank at " + std::to_string(first_worker));
    if (name) *name = "threads";
    if (rank_ < first_worker) return static_cast<workers::Collective*>(nullptr);
    std::lock_guard<std::mutex> lock(world_->mu_);
    if (!world_->group_) world_->group_ = std::make_unique<workers::InProcessGroup>(world_->size_ - first_worker);
    return world_->group_->Member(rank_ - first_worker);
  }

 private:
  ThreadWorld* world_;
  const int rank_;
};

ThreadWorld::ThreadWorld(int size, std::chrono::milliseconds timeout)
    : size_(size), timeout_(timeout), slots_(static_cast<size_t>(size)) {
  for (int r = 0; r < size; ++r) members_.push_back(std::make_unique<Member_>(this, r));
}
ThreadWorld::~ThreadWorld() = default;

Rendezvous* ThreadWorld::Member(int rank) { return members_.at(static_cast<size_t>(rank)).get(); }

Result<std::vector<std::string>> ThreadWorld::Exchange(int rank, const std::string& mine, const char* what) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto late = [&] {
    return Status::Unavailable(std::string(what) + ": rank " + std::to_string(rank) + " waited " +
                               std::to_string(timeout_.count()) + " ms for the other ranks");
  };
  // The previous round drains before this one fills.
  if (!cv_.wait_until(lock, deadline, [this] { return departed_ == 0; })) return late();
  const uint64_t gen = generation_;
  slots_[static_cast<size_t>(rank)] = mine;
  if (++arrived_ == size_) {
    result_ = slots_;
    ++generation_;
    departed_ = size_;
    arrived_ = 0;
    cv_.notify_all();
  } else if (!cv_.wait_until(lock, deadline, [&] { return generation_ != gen; })) {
    --arrived_;  // withdrawn: the round cannot complete without this rank anyway
    return late();
  }
  std::vector<std::string> out = result_;
  if (--departed_ == 0) cv_.notify_all();
  return out;
}

}  // namespace ember::launcher
