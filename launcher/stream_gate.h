// Internal to launcher/: `data.follow` under mpirun. Each worker reads its share of the stream
// (every W-th batch) in a thread of its own; before each step the workers agree, with a 3-float
// all-reduce, that every one of them holds its batch — or that one was told to stop, or its
// reader ended or failed. So all train the same steps and stop after the same one, and none sits
// in a step's all-reduce while another waits for data. While the stream has nothing, the workers
// meet every `poll_s` seconds (sleeping between), which is also how fast a stop is seen.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>

#include "ember/data/batch.h"
#include "ember/workers/collective.h"

namespace ember::launcher {

class StreamGate final : public data::BatchReader {
 public:
  // `stop` is set once the workers agree to stop; the inner reader's stop() must read it (so a
  // read waiting for data returns). `local_stop` says whether this process was told to stop.
  StreamGate(std::unique_ptr<data::BatchReader> inner, workers::Collective* collective, double poll_s,
             std::shared_ptr<std::atomic<bool>> stop, std::function<bool()> local_stop);
  ~StreamGate() override;
  Result<bool> Next(data::Batch* batch) override;
  // Never ahead: the trainer trains the batch it holds, then asks for the next after the step's
  // hooks (every worker calls Next at the same point of its step).
  bool Ready() const override { return false; }
  double Progress() const override { return inner_->Progress(); }
  uint64_t bad_lines() const override { return inner_->bad_lines(); }
  int num_dense() const override { return inner_->num_dense(); }
  int num_sparse() const override { return inner_->num_sparse(); }

 private:
  void Drain();  // ends a read in flight (after stop_ is set)

  std::unique_ptr<data::BatchReader> inner_;
  workers::Collective* collective_;
  double poll_s_;
  std::shared_ptr<std::atomic<bool>> stop_;
  std::function<bool()> local_stop_;
  data::Batch held_;
  std::future<Result<bool>> pending_;
  std::optional<Result<bool>> got_;
};

}  // namespace ember::launcher
