// Trainer: the CTR training step of DESIGN.md, evaluation, and checkpoints.
//
// One step: for every embedding group of the model, map ids to row keys with the group's
// compression method, de-duplicate, pull unique rows (one call, one request per shard), wrap
// them in a leaf tensor with requires_grad, expand with index_select, run forward and
// backward, push the leaf's gradient (one row per unique key), all-reduce dense gradients and
// step the dense optimizer.
//
// The trainer borrows the PS client, collective and recorder (they must outlive it). Not
// thread-safe: one thread drives it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ember/data/batch.h"
#include "ember/embedding/method.h"
#include "ember/models/ctr_model.h"
#include "ember/monitoring/recorder.h"
#include "ember/ps/client.h"
#include "ember/workers/collective.h"

namespace ember::workers {

struct TrainerConfig {
  embedding::MethodConfig embedding;  // dim is the "main" group's; other groups set their own
  models::CtrModelConfig model;
  std::vector<embedding::FieldInfo> fields;
  std::string dense_optimizer = "adam";  // "adam", "adagrad", "sgd"
  double dense_lr = 1e-3;
  uint64_t seed = 1;
};

struct ProgressOptions {
  bool enabled = true;
  bool tty = false;
  double log_interval_s = 10;
};

struct EpochStats {
  uint64_t samples = 0;
  uint64_t steps = 0;
  double seconds = 0;
  double mean_loss = 0;
};

struct EvalResult {
  uint64_t samples = 0;
  double auc = 0.5;
  double logloss = 0;
  double seconds = 0;
};

// Hooks into every training step (checkpointing, tests).
using StepCallback = std::function<Status(int64_t step)>;

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> Create(const TrainerConfig& config, ps::PsClient* ps, Collective* collective,
                                                 monitoring::Recorder* recorder = nullptr);
  ~Trainer();

  // One step on one batch; *loss receives the batch's mean log loss.
  Status TrainStep(const data::Batch& batch, double* loss);
  // One pass over `reader`. `epoch`/`epochs` only shape the progress line.
  Result<EpochStats> TrainEpoch(data::BatchReader* reader, int epoch, int epochs, const ProgressOptions& progress,
                                const StepCallback& on_step = {});
  // Scores every example of `reader` without creating rows; fills probabilities/labels if given.
  Result<EvalResult> Evaluate(data::BatchReader* reader, std::vector<float>* probabilities = nullptr,
                              std::vector<float>* labels = nullptr);
  // Click probabilities of one batch (no row creation, no gradients).
  Status Predict(const data::Batch& batch, std::vector<float>* probabilities);

  // Writes <root>/ckpt-<step>/ (shards, dense model, dense optimizer, manifest) atomically:
  // files go into a temporary directory that is renamed when complete. Returns the path.
  Result<std::string> SaveCheckpoint(const std::string& root, const std::string& config_text);
  // Restores rows, dense weights, optimizer state and step from a checkpoint directory.
  Status RestoreCheckpoint(const std::string& path);

  int64_t step() const { return step_; }
  models::CtrModel& model() { return *model_; }
  // Rows and bytes held by the PS, summed over tables.
  Result<std::pair<uint64_t, uint64_t>> TableFootprint();

 private:
  struct Group;
  Trainer() = default;
  Status Lookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs);
  Status PushGradients();
  Status AllReduceDense();

  TrainerConfig config_;
  ps::PsClient* ps_ = nullptr;
  Collective* collective_ = nullptr;
  monitoring::Recorder* recorder_ = nullptr;
  std::shared_ptr<models::CtrModel> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<std::unique_ptr<embedding::EmbeddingMethod>> methods_;
  std::vector<float> flat_grads_;
  int64_t step_ = 0;
};

// Reads "<path>/manifest.json" and returns the config text stored with the checkpoint.
Result<std::string> ReadCheckpointConfig(const std::string& path);
// Resolves a checkpoint root (containing ckpt-N directories) or a checkpoint directory to the
// newest complete checkpoint directory.
Result<std::string> ResolveCheckpoint(const std::string& path);

}  // namespace ember::workers
