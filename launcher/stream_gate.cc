#include "stream_gate.h"

#include <chrono>
#include <thread>
#include <utility>

namespace ember::launcher {

StreamGate::StreamGate(std::unique_ptr<data::BatchReader> inner, workers::Collective* collective, double poll_s,
                       std::shared_ptr<std::atomic<bool>> stop, std::function<bool()> local_stop)
    : inner_(std::move(inner)),
      collective_(collective),
      poll_s_(poll_s),
      stop_(std::move(stop)),
      local_stop_(std::move(local_stop)) {}

StreamGate::~StreamGate() {
  stop_->store(true);
  Drain();
}

void StreamGate::Drain() {
  if (pending_.valid()) (void)pending_.get();
}

Result<bool> StreamGate::Next(data::Batch* batch) {
  if (!got_ && !pending_.valid()) pending_ = std::async(std::launch::async, [this] { return inner_->Next(&held_); });
  for (;;) {
    if (!got_ && pending_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) got_ = pending_.get();
    const bool have = got_ && got_->ok() && **got_;
    const bool ended = got_.has_value() && !have;  // the reader failed, or (max_rows) ran out
    float flags[3] = {have ? 1.0f : 0.0f, local_stop_() ? 1.0f : 0.0f, ended ? 1.0f : 0.0f};
    EMBER_RETURN_IF_ERROR(collective_->AllReduceSum(flags, 3));
    if (flags[1] > 0 || flags[2] > 0) {  // all stop before this step: its batches stay unread
      stop_->store(true);
      Drain();
      batch->size = 0;
      if (got_ && !got_->ok()) return got_->status();
      return false;
    }
    if (flags[0] >= static_cast<float>(collective_->size())) {
      std::swap(*batch, held_);
      got_.reset();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s_));
  }
}

}  // namespace ember::launcher
