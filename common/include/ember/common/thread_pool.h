// A fixed-size thread pool with a blocking ParallelFor.
//
// ParallelFor(n, fn) splits [0, n) into contiguous chunks, runs fn(begin, end) on the
// workers and the calling thread, and returns when all chunks are done. With 1 thread it
// runs inline. Thread-safe: ParallelFor may be called from several threads, but not from
// inside fn (no nesting).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ember {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  void ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn, size_t min_chunk = 1);

 private:
  void WorkerLoop();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::vector<std::function<void()>> tasks_;
  size_t pending_ = 0;
  bool stop_ = false;
};

}  // namespace ember
