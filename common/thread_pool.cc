#include "ember/common/thread_pool.h"

#include <algorithm>

namespace ember {

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < std::max(1, num_threads); ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_ && tasks_.empty()) return;
      task = std::move(tasks_.back());
      tasks_.pop_back();
    }
    task();
    {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
    }
    done_cv_.notify_all();
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn, size_t min_chunk) {
  if (n == 0) return;
  const size_t threads = static_cast<size_t>(num_threads());
  const size_t chunks = std::min(threads, std::max<size_t>(1, n / std::max<size_t>(1, min_chunk)));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  const size_t per = (n + chunks - 1) / chunks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t c = 1; c < chunks; ++c) {
      const size_t b = c * per, e = std::min(n, b + per);
      if (b >= e) continue;
      ++pending_;
      tasks_.emplace_back([&fn, b, e] { fn(b, e); });
    }
  }
  cv_.notify_all();
  fn(0, std::min(n, per));
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
}

}  // namespace ember
