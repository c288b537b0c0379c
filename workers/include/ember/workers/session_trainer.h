// SessionTrainer: the next-item training loop (docs/sessions.md) on the PS.
//
// Item representations live in PS tables under an embedding method (full, hash or unified):
// M2TRec's tables are one field per metadata attribute (x_i = concat_a A_a[attr_a(i)], no item
// table, so cold items have a representation); the ID baseline's ("sasrec") one field "item"
// (x_i = E[i]). One step, on a batch of (prefix -> next item) examples: collect the items the
// step needs (the prefixes' and the candidates': the whole catalog with a full softmax, else the
// batch's targets plus `candidates` uniformly sampled items, shared by the batch), map them to
// row keys, pull the unique rows into leaf tensors, build x for those items, encode, score, take
// the multi-task loss, backward, push the rows' gradients, all-reduce dense gradients and step
// the dense optimizer. Workers take interleaved batches of the shuffled examples and run the
// same number of steps (the last may be empty) so that sync mode's clocks advance together.
//
// Evaluation ranks each test target against the whole catalog (pessimistic ties: rank = items
// scoring >= the target, padding never a candidate): Recall@20 and MRR@20 over all examples,
// over cold targets (unseen in training) and over rare ones (seen 1..rare_max_count times).
//
// Borrows the data, PS client, collective and recorder (they must outlive it). One thread.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ember/data/sessions.h"
#include "ember/embedding/method.h"
#include "ember/models/session_model.h"
#include "ember/monitoring/recorder.h"
#include "ember/ps/client.h"
#include "ember/workers/collective.h"
#include "ember/workers/trainer.h"

namespace ember::embedding {
class BatchLookup;
}

namespace ember::workers {

struct SessionTrainerConfig {
  embedding::MethodConfig embedding;  // dim: per attribute (m2trec) or the item row (sasrec)
  models::SessionModelConfig model;   // item_dim is derived from the method's layouts
  std::vector<std::string> heads;     // model.category_heads: attributes with a category head
  std::vector<double> head_weights;   // lambda per head (default 1)
  DenseOptimizer dense_optimizer = DenseOptimizer::kAdam;
  double dense_lr = 1e-3;
  uint64_t batch_size = 1024;  // train.batch_size (the same default as the CTR trainer)
  uint64_t candidates = 0;     // sampled softmax: shared negatives per step (0 = full softmax)
  uint64_t seed = 1;
  SyncConfig sync;  // train.mode and train.staleness (step_sync.h)
  uint64_t eval_batch_size = 512;
  int rare_max_count = 10;
};

struct RankMetrics {
  uint64_t n = 0;
  double recall = 0;  // share of examples with the target in the top k
  double mrr = 0;     // mean of 1 / rank, 0 beyond k
};

struct SessionEval {
  RankMetrics all, cold, rare;
  double seconds = 0;
};

// Where a session run stands, kept in its checkpoints beside the rows and the dense state.
struct SessionRunState {
  DataPosition position;   // epoch, and the examples of it trained by all workers together
  int best_epoch = 0;      // 1-based epoch the validation chose so far (0: none yet)
  double best_valid = -1;  // its validation Recall@20
  int since_best = 0;      // epochs since without a validation gain
  SessionEval best_test;   // its test metrics
  uint64_t items = 0;      // catalogue size the checkpoint was trained on (restored, not saved from here)
};

// Called after each training step with the steps of the epoch done so far (this one included).
using SessionStepCallback = std::function<Status(uint64_t steps_done)>;

// Adds one example whose target ranks `rank` (1 = best) to m (as sums; Finish divides).
void AddRank(uint64_t rank, int k, RankMetrics* m);
void FinishRanks(RankMetrics* m);
// Ranks of targets[b] in scores [B, N] (column 0 = padding, never a candidate): the number of
// columns 1..N-1 scoring >= the target's score.
std::vector<uint64_t> TargetRanks(const torch::Tensor& scores, const std::vector<int64_t>& targets);

class SessionTrainer {
 public:
  static Result<std::unique_ptr<SessionTrainer>> Create(const SessionTrainerConfig& config,
                                                        const data::SessionData* data, ps::PsClient* ps,
                                                        Collective* collective, monitoring::Recorder* recorder);
  // One pass over data.train minus the held-out validation examples (this worker's share),
  // starting after the epoch's first `first_step` steps (a resumed run).
  Result<EpochStats> TrainEpoch(const std::vector<data::SessionExample>& examples, int epoch, int epochs,
                                const ProgressOptions& progress, uint64_t first_step = 0,
                                const SessionStepCallback& on_step = {});
  // Steps per epoch over `examples` (every worker runs this many).
  uint64_t StepsPerEpoch(size_t examples) const;
  // Ranks every example's target over the whole catalog.
  Result<SessionEval> Evaluate(const std::vector<std::vector<uint32_t>>& sessions,
                               const std::vector<data::SessionExample>& examples);

  // Writes <root>/<name> ("" = ckpt-<step>): rows, dense model, optimizer and `state`, plus the
  // catalogue's shape (items, attribute cardinalities) that a restore checks against its data.
  Result<std::string> SaveCheckpoint(const std::string& root, const std::string& config_text,
                                     const SessionRunState& state, const std::string& name = "");
  // Restores rows (with load_shards; under a cluster the first worker loads them), dense model,
  // optimizer and step; refuses a checkpoint of another model, or whose rows mean other things
  // (M2TRec: other attribute cardinalities; the ID model: another catalogue size). Returns its
  // state.
  Result<SessionRunState> RestoreCheckpoint(const std::string& path, bool load_shards);

  const embedding::EmbeddingMethod& method() const { return *method_; }
  models::SessionModel& model() { return model_; }
  int64_t step() const { return step_; }
  // The loss of one batch without training (tests).
  Result<double> BatchLoss(const std::vector<data::SessionExample>& batch);

 private:
  SessionTrainer(const SessionTrainerConfig& config, const data::SessionData* data, ps::PsClient* ps,
                 Collective* collective, monitoring::Recorder* recorder);
  // Representations [items.size(), item_dim] of `items` from pulled rows; with `leaves`, the
  // rows are leaf tensors (their gradients are pushed by PushLeaves).
  struct Pulled {
    torch::Tensor x;                                 // [items, item_dim]
    std::shared_ptr<embedding::BatchLookup> lookup;  // null: nothing pulled (an empty step)
    torch::Tensor leaf;                              // [lookup rows, slot width], the pushed gradient's
  };

  Result<Pulled> Represent(const std::vector<uint32_t>& items, bool training);
  Status PushLeaves(const Pulled& p);
  Status AllReduceDense();
  // Forward of a batch: loss (and the step's pulled rows).
  Result<std::pair<torch::Tensor, Pulled>> Forward(const std::vector<data::SessionExample>& batch, bool training);
  // Item attribute value ids (the method's field ids) of item i, field f.
  uint64_t FieldId(int f, uint32_t item) const;

  SessionTrainerConfig config_;
  const data::SessionData* data_;
  ps::PsClient* ps_;
  Collective* collective_;
  monitoring::Recorder* recorder_;
  std::unique_ptr<embedding::EmbeddingMethod> method_;
  bool ids_;                    // the ID baseline: one field, the item id
  std::vector<int> head_attr_;  // attribute index of each head
  // M2TRec: per attribute, per value, whether a training item carries it (else it reads zeros).
  std::vector<std::vector<bool>> trained_values_;
  torch::Tensor columns_;  // the non-padding columns of a lookup (undefined: all are)
  models::SessionModel model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
  StepSync sync_;
};

}  // namespace ember::workers
