// How a worker's steps synchronise with the shards and the other workers, for both trainers
// (the CTR Trainer and the SessionTrainer): the training mode, the clock a pull waits for, the
// clock a push carries, the dense all-reduce, and the dense model's seeded start and optimizer.
// docs/distributed.md "Training modes".
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/ps/client.h"
#include "ember/workers/collective.h"

namespace ember::workers {

// train.mode: kSync (a step's pushes from all workers are summed on the shards and applied as
// one update; every worker's next pull sees exactly it), kBounded (pushes applied on arrival; a
// pull for step t waits until every worker's pushes of steps < t - staleness are applied) or
// kAsync (pulls never wait). Dense gradients are all-reduced every step in every mode.
enum class TrainMode { kSync, kBounded, kAsync };
Result<TrainMode> ParseTrainMode(const std::string& name);
const char* TrainModeName(TrainMode mode);

struct SyncConfig {
  TrainMode mode = TrainMode::kSync;
  int64_t staleness = 0;  // kBounded's bound, in steps
};

class StepSync {
 public:
  // Checks the staleness against the mode.
  static Result<StepSync> Create(const SyncConfig& config, Collective* collective);

  // The shard clock a training pull for `step` waits for (nothing before this worker's first
  // push: fresh shards, or a restart).
  uint64_t PullWait(int64_t step) const;
  // Evaluation after `steps` steps waits for every worker's pushes of them (workers run equal
  // step counts), so that its scores do not depend on timing.
  uint64_t EvalWait(int64_t steps) const { return pushed_ ? static_cast<uint64_t>(steps) : 0; }
  // The clock a push of `step` carries; call Pushed() once it is sent.
  ps::PushClock PushClock(int64_t step) const;
  void Pushed() { pushed_ = true; }
  // After a restore: the shards' clocks start again with the next push.
  void Restarted() { pushed_ = false; }
  // Whether the next batch's pull may start before this step's push (its rows may be a step old).
  bool PrefetchDuringStep() const {
    return config_.mode == TrainMode::kAsync || (config_.mode == TrainMode::kBounded && config_.staleness >= 1);
  }
  // What turns a worker's batch-mean gradient of `examples` examples into a summed-loss one as the
  // shards apply it: sync averages the workers' pushes, so there it is the global batch.
  double SumScale(int64_t examples) const {
    const double w = config_.mode == TrainMode::kSync ? collective_->size() : 1;
    return static_cast<double>(examples) * w;
  }
  // The staleness bound as a gauge: 0 (sync), the bound (bounded), infinity (async).
  double bound() const;
  const SyncConfig& config() const { return config_; }

  // Replaces each parameter's gradient by its mean over the workers (absent gradients count as
  // zero), through one flat all-reduce.
  Status AllReduceMeanGrads(const std::vector<torch::Tensor>& params);

 private:
  SyncConfig config_;
  Collective* collective_ = nullptr;
  bool pushed_ = false;
  std::vector<float> flat_;
};

// The same mean over `collective` through the buffer `flat` (StepSync's, for callers without one).
Status AllReduceMeanGrads(const std::vector<torch::Tensor>& params, Collective* collective, std::vector<float>* flat);

// train.optimizer: the dense model's optimizer.
enum class DenseOptimizer { kAdam, kAdagrad, kSgd };
Result<DenseOptimizer> ParseDenseOptimizer(const std::string& name);
const char* DenseOptimizerName(DenseOptimizer kind);
std::unique_ptr<torch::optim::Optimizer> MakeDenseOptimizer(DenseOptimizer kind,
                                                            const std::vector<torch::Tensor>& params, double lr);

// train.device: where the dense model, its optimizer and the interaction run. kAuto is CUDA
// when this build's LibTorch has it and a GPU is visible, else the CPU.
enum class DeviceKind { kCpu, kCuda, kAuto };
const char* DeviceKindName(DeviceKind kind);
// The device to run on, or an error naming train.device when CUDA is asked for and absent.
Result<torch::Device> ResolveDevice(DeviceKind kind);

// Seeds LibTorch's generator for a dense model's initial weights and holds a process-wide lock
// until the returned guard goes: trainers created on several threads of one process (the
// in-process cluster) draw the same weights as separate processes do.
std::unique_lock<std::mutex> SeededInit(uint64_t seed);

}  // namespace ember::workers
