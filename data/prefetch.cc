#include "ember/data/prefetch.h"

namespace ember::data {

PrefetchingReader::PrefetchingReader(std::unique_ptr<BatchReader> inner, int depth)
    : inner_(std::move(inner)),
      depth_(std::max(1, depth)),
      num_dense_(inner_->num_dense()),
      num_sparse_(inner_->num_sparse()) {
  thread_ = std::thread([this] { Run(); });
}

PrefetchingReader::~PrefetchingReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PrefetchingReader::Run() {
  for (;;) {
    Batch b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || static_cast<int>(ready_.size()) < depth_; });
      if (stop_) return;
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      }
    }
    auto got = inner_->Next(&b);
    std::lock_guard<std::mutex> lock(mu_);
    progress_ = inner_->Progress();
    bad_lines_ = inner_->bad_lines();
    if (!got.ok()) {
      error_ = got.status();
      done_ = true;
    } else if (!*got) {
      done_ = true;
    } else {
      ready_.push_back(std::move(b));
    }
    cv_.notify_all();
    if (done_) return;
  }
}

Result<bool> PrefetchingReader::Next(Batch* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !ready_.empty() || done_; });
  if (!ready_.empty()) {
    free_.push_back(std::move(*batch));
    *batch = std::move(ready_.front());
    ready_.pop_front();
    cv_.notify_all();
    return true;
  }
  if (!error_.ok()) return error_;
  batch->size = 0;
  return false;
}

bool PrefetchingReader::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !ready_.empty() || done_;
}

double PrefetchingReader::Progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_;
}

uint64_t PrefetchingReader::bad_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bad_lines_;
}

}  // namespace ember::data
