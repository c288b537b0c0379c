// Trainer: the CTR training step of docs/architecture.md, evaluation, and checkpoints.
//
// One step: for every embedding group of the model, map ids to row keys with the group's
// compression method, de-duplicate, pull unique rows (one call, one request per shard), wrap
// them in a leaf tensor with requires_grad, expand with index_select, run forward and
// backward, push the leaf's gradient (one row per unique key), all-reduce dense gradients and
// step the dense optimizer. The leaf's rows are as wide as the group's widest table (narrower
// rows zero-padded, strided pulls and pushes), and fields with fewer probes than the widest
// read an all-zero padding row, so every field reaches the model at the group's width.
// OptEmbed's supernet masks the looked-up rows (thresholds are trained here, with their own
// SGD); DSL tables are pruned and regrown on the shards every dsl.interval steps.
//
// The trainer borrows the PS client, collective and recorder (they must outlive it). Not
// thread-safe: one thread drives it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ember/common/env.h"
#include "ember/data/batch.h"
#include "ember/embedding/export.h"
#include "ember/embedding/method.h"
#include "ember/embedding/model_description.h"
#include "ember/models/ctr_model.h"
#include "ember/monitoring/recorder.h"
#include "ember/ps/client.h"
#include "ember/workers/collective.h"
#include "ember/workers/step_sync.h"
#include "ember/workers/table_metrics.h"

namespace ember::workers {

// OptEmbed (docs/compression.md). Thresholds are dense parameters on the workers (one per
// field, all-reduced with the model, trained by their own SGD); the supernet's row masks and
// per-sample dimension masks are computed in the forward pass from the pulled full rows.
struct OptEmbedConfig {
  double alpha = 3e-4;         // weight of sum_f exp(-t_f)
  double threshold_lr = 1e-2;  // SGD on the thresholds
  // Search (stage 2). Sized so that the three stages cost about 3 trainings (docs/compression.md:
  // 2.9x one training at a 1/10 budget, at the test AUC of the earlier 8x larger search).
  int population = 10;
  int rounds = 10;
  int mutants = 5;
  int children = 5;
  int keep = 5;  // best candidates carried into the next round
  double mutate_prob = 0.1;
  uint64_t search_samples = 8000;  // validation examples scored per candidate
  uint64_t seed = 7;
  // Under a budget, this share of it is kept for a hashed table that pruned values read in
  // retraining (stage 3) instead of zeros; the search keeps rows within the rest, and the table
  // also takes what the kept rows leave. 0: zeros.
  double fallback_share = 0.25;
};

// Dynamic Sparse Learning (docs/compression.md): prune/grow every `interval` steps with the
// fraction p(s) = p_min + (p0 - p_min) (1 + cos(pi s / total_steps)) / 2; the growth gradient is
// collected over the last `grow_window` steps before a round.
struct DslConfig {
  int64_t interval = 100;
  double p0 = 0.5;
  double p_min = 0.005;
  int64_t total_steps = 0;  // 0: no decay (p0 throughout)
  int64_t grow_window = 10;
};

// train.reset_rows: whether the embedding rows (not the first-order weights) restart from their
// initial values at the start of every epoch after the first, while the dense model, the
// first-order weights and their optimizers carry on (MEDA, Fan et al. 2024). A second pass over
// the same examples lets an MLP fit the rows that memorised those examples in the first pass,
// which ruins the model on new data; fresh rows each epoch let the MLP and the first-order
// weights keep learning (FM's pairwise rows overfit the same way without an MLP). kAuto is a
// configuration's: the job resolves it per model (launcher RowResetOf).
enum class RowReset { kEachEpoch, kNever, kAuto };
const char* RowResetName(RowReset r);

struct TrainerConfig {
  embedding::MethodConfig embedding;  // dim is the "main" group's; other groups set their own
  // The method of a 1-wide first-order group beside the main one (DeepFM, Wide & Deep, FM) where
  // it is not derived from `embedding`: under embedding.budget, its share of the budget (set by
  // the launcher), or what a checkpoint's model description says it was built with.
  std::optional<embedding::MethodConfig> first_order_embedding;
  models::CtrModelConfig model;
  // The sparse optimizer of first-order groups (EmbeddingGroupSpec::first_order: LR's, DeepFM's,
  // Wide & Deep's and FM's 1-wide rows), which see gradients of the batch's summed loss; the
  // other groups use embedding.optimizer. FTRL-proximal with L2 by default: the first-order
  // weights of rare values shrink towards zero instead of memorising their few examples.
  embedding::OptimizerConfig linear_optimizer = [] {
    embedding::OptimizerConfig o;
    o.kind = embedding::OptimizerKind::kFtrl;
    o.lr = 0.1f;
    o.beta = 1.0f;
    o.l2 = 10.0f;
    return o;
  }();
  std::vector<embedding::FieldInfo> fields;
  // The data's schema (data::Schema's JSON; "" = the Criteo layout), kept in model descriptions
  // so that exports read request rows as training read the data.
  std::string input_schema;
  DenseOptimizer dense_optimizer = DenseOptimizer::kAdam;
  double dense_lr = 1e-3;
  // train.lr_decay: epoch e (from 0) trains the dense model at dense_lr * lr_decay^e.
  double dense_lr_decay = 0.5;
  uint64_t seed = 1;
  SyncConfig sync;  // train.mode and train.staleness (step_sync.h)
  // Pull the next batch's rows while this step runs (during its compute where the mode allows
  // rows a step old, else after its push).
  bool prefetch = true;
  // train.device: the dense model, its optimizer and the interaction. Pulled rows are copied to
  // the device (from pinned host buffers, asynchronously) and their gradients back for the push.
  DeviceKind device = DeviceKind::kCpu;
  // Tests: take the copies above even on the CPU (the CPU standing in for a device).
  bool stage_rows = false;
  OptEmbedConfig optembed;
  DslConfig dsl;
};

// One embedding group's compression method as the trainer builds it.
struct GroupMethod {
  models::EmbeddingGroupSpec spec;
  embedding::MethodConfig config;
  std::unique_ptr<embedding::EmbeddingMethod> method;
};
// The method config of embedding group `spec` derived from the main group's `main` (table ids
// and salts aside): `main` at the group's width; for a later (`secondary`, first-order) group
// the main method too, except where it needs width (OptEmbed, DSL, per-field DSL), which becomes
// full tables, or hashed rows with `hashed` (a budget's share). First-order groups (1 wide) are
// probed at one chunk under unified.
embedding::MethodConfig GroupMethodConfig(const embedding::MethodConfig& main, const models::EmbeddingGroupSpec& spec,
                                          bool secondary, bool hashed = false);
// The methods of the model's embedding groups (models::EmbeddingGroupsOf), table ids
// consecutive from embedding.first_table: each by GroupMethodConfig from `embedding`, except a
// later group where `first_order_embedding` is set, which takes it. First-order groups train
// with `linear_optimizer`. Errors name the group.
Result<std::vector<GroupMethod>> MakeGroupMethods(const TrainerConfig& config);

// OptEmbed search result: per-field widths, the rows each field keeps, bytes, fitness.
struct OptEmbedArch {
  std::vector<int> widths;
  // Row thresholds applied: the learned ones plus the searched shift (>= 0, the same for every
  // field), which the budget may need when the learned thresholds prune too little.
  std::vector<float> thresholds;
  double shift = 0;
  std::vector<uint64_t> kept_rows;
  std::vector<uint64_t> total_rows;
  uint64_t bytes = 0;
  double val_auc = 0;
  int evaluated = 0;
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
  bool stopped = false;  // ended early by RequestStop
};

struct EvalResult {
  uint64_t samples = 0;
  double auc = 0.5;
  double logloss = 0;
  double seconds = 0;
};

// Hooks into every training step (checkpointing, tests).
using StepCallback = std::function<Status(int64_t step)>;

// Where training stands in its data: the epoch, and the examples of the training file passed in
// it (by all workers). Stored in checkpoints; a resumed run continues from there.
struct DataPosition {
  int64_t epoch = 0;
  uint64_t examples = 0;
  data::StreamCursor cursor;  // where those examples end in a text stream (else invalid)
};

// One thread running jobs in order (the trainer's prefetch): a persistent thread, so that the
// thread-local state its jobs build (allocator caches, OpenMP teams) lives across steps.
class BackgroundThread {
 public:
  BackgroundThread();
  ~BackgroundThread();
  std::future<Status> Run(std::function<Status()> job);

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<Status()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> Create(const TrainerConfig& config, ps::PsClient* ps, Collective* collective,
                                                 monitoring::Recorder* recorder = nullptr);
  ~Trainer();

  // One step on one batch; *loss receives the batch's mean log loss.
  Status TrainStep(const data::Batch& batch, double* loss);
  // The same, starting the pull of `next` (the following step's batch, or null), which must stay
  // alive and unchanged until the next TrainStep.
  Status TrainStep(const data::Batch& batch, const data::Batch* next, double* loss);
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
  // `name` replaces "ckpt-<step>" (stage checkpoints). Method state (OptEmbed thresholds and
  // widths) goes into the manifest.
  // Files go through `env` (the PS client writes its shard files through its own).
  Result<std::string> SaveCheckpoint(const std::string& root, const std::string& config_text,
                                     const std::string& name = "", Env* env = PosixEnv());
  // Restores rows, dense weights, optimizer state, step and data position from a checkpoint
  // directory. `load_shards` = false leaves the PS alone (another worker of a cluster loads it).
  Status RestoreCheckpoint(const std::string& path, bool load_shards = true, Env* env = PosixEnv());
  // The data position the next checkpoint records (set by the training loop).
  void set_position(const DataPosition& p) { position_ = p; }
  // Ends the running epoch after the current step (a step callback calls it; see TrainEpoch).
  void RequestStop() { stop_requested_ = true; }
  // Continues another trainer's step count (a later stage on the same shards: a shard refuses
  // steps that move back).
  void set_step(int64_t step) { step_ = step; }
  const DataPosition& position() const { return position_; }
  // Where the stream goes on after the batch the last step trained (data::Batch::end).
  const data::StreamCursor& trained_end() const { return trained_end_; }
  // The job's own state (e.g. the epoch chosen on validation so far), written into checkpoint
  // manifests ("run") and read back by RestoreCheckpoint.
  void set_run_state(nlohmann::json state) { run_state_ = std::move(state); }
  const nlohmann::json& run_state() const { return run_state_; }

  // OptEmbed stage 2: evolutionary search of per-field widths and a threshold shift on
  // `validation` under `budget_bytes` (0 = no budget; candidates over it are repaired by
  // narrowing fields or pruning more).
  Result<OptEmbedArch> SearchOptEmbed(data::BatchReader* validation, uint64_t budget_bytes);
  // OptEmbed stage 3: copies the rows of `supernet` whose L1 exceeds `thresholds[field]` into
  // this trainer's (retraining) tables, fresh-initialised if `reinit`, then drops the supernet's.
  Status AdoptOptEmbedRows(const Trainer& supernet, const std::vector<float>& thresholds, bool reinit);
  // Every row of the embedding groups (not the first-order ones; not an OptEmbed supernet's)
  // back to its initial value with fresh optimizer state (train.reset_rows).
  Status ResetRows();
  // Thresholds of the OptEmbed supernet (empty otherwise).
  std::vector<float> thresholds() const;

  int64_t step() const { return step_; }
  // Embedding group g's method (its tables and layouts).
  const embedding::EmbeddingMethod& method(size_t g) const { return *methods_.at(g); }
  models::CtrModel& model() { return *model_; }
  // Rows and bytes held by the PS, summed over tables.
  Result<std::pair<uint64_t, uint64_t>> TableFootprint();
  // What this model is (architecture, fields, each group's method as built): checkpoints and
  // exports carry it.
  embedding::ModelDescription Describe() const;
  // Adds the model description and the dense
  // weights to an export; the caller adds the tables. Refuses an OptEmbed supernet.
  Status Export(embedding::ExportWriter* writer) const;
  // Method, hashing and full-table bytes of each of this trainer's tables (for metrics).
  std::vector<TableInfo> TableInfos() const;

 private:
  struct Group;
  struct LookupCounts {
    size_t keys = 0, unique = 0, bytes = 0;
  };
  // The next step's pull, running on its own thread into the groups' other row buffers.
  struct Prefetch {
    const data::Batch* batch = nullptr;  // null: none in flight
    int64_t step = 0;
    std::future<Status> done;
    LookupCounts counts;
    double seconds = 0;
    uint64_t clock = 0;
  };
  Trainer() = default;
  // `mask_rows` = false skips OptEmbed's row masks (the search applies its own).
  Status Lookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs,
                bool mask_rows = true);
  // Lookup's parts: ids to unique keys and pull slices into row buffer `buffer` (no PS call, no
  // recorder: runs on the prefetch thread), and the model inputs from the current buffers.
  Status PrepareRows(const data::Batch& batch, bool training, int buffer, std::vector<ps::PullSlice>* slices,
                     LookupCounts* counts);
  Status FinishLookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs, bool mask_rows);
  void RecordPull(const LookupCounts& counts, double seconds, bool training);
  void RecordStaleness(int64_t step, uint64_t clock);
  // The error of a step whose loss is not finite, naming the step and the tables read.
  Status NonFiniteLoss(double loss, const std::vector<models::GroupInput>& inputs) const;
  void StartPrefetch(const data::Batch& next);
  Status FinishPrefetch(const data::Batch& batch, std::vector<models::GroupInput>* inputs);
  // Whether DSL maintenance runs at the end of the step that makes step() == step.
  bool MaintenanceAfter(int64_t step) const;
  // Pushes this step's row gradients (first-order groups' scaled to the summed loss of the
  // step's examples: this worker's `batch_examples`, and every worker's in sync mode).
  Status PushGradients(int64_t batch_examples);
  Status AllReduceDense();
  Status MaintainTables();
  // Loss (if >= 0), throughput, step and OptEmbed thresholds, as gauges.
  void RecordTrainingGauges(double loss, double samples_per_second);
  std::vector<torch::Tensor> DenseParams();

  TrainerConfig config_;
  ps::PsClient* ps_ = nullptr;
  Collective* collective_ = nullptr;
  monitoring::Recorder* recorder_ = nullptr;
  std::shared_ptr<models::CtrModel> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<std::unique_ptr<embedding::EmbeddingMethod>> methods_;
  int64_t step_ = 0;
  bool stop_requested_ = false;
  DataPosition position_;
  data::StreamCursor trained_end_;
  nlohmann::json run_state_;
  StepSync sync_;
  torch::Device device_ = torch::kCPU;
  bool stage_ = false;  // rows are copied to device_ (and gradients back)
  Prefetch prefetch_;
  BackgroundThread prefetch_thread_;
  torch::Tensor thresholds_;  // OptEmbed supernet
  std::unique_ptr<torch::optim::SGD> threshold_optimizer_;
};

// Scores every example of `reader` with `predict` (a batch's click probabilities): AUC, log loss,
// time; fills probabilities/labels if given. Trainer::Evaluate and exported models use it.
using PredictFn = std::function<Status(const data::Batch&, std::vector<float>*)>;
Result<EvalResult> EvaluateWith(data::BatchReader* reader, const PredictFn& predict,
                                std::vector<float>* probabilities = nullptr, std::vector<float>* labels = nullptr);

// Reads "<path>/manifest.json" and returns the config text stored with the checkpoint.
Result<std::string> ReadCheckpointConfig(const std::string& path);
// Applies the embedding sizes a checkpoint was trained with (hashed rows and DSL density a
// budget chose, field vocabularies, Unified Embedding's probes per value, OptEmbed's retraining
// widths and table ids) and whether the model has first-order weights beside its rows
// (model.first_order) to *config, so that ids map to the same rows without the training data.
Status ApplyCheckpointEmbedding(const std::string& path, TrainerConfig* config);
// Resolves a checkpoint root (containing ckpt-N directories) or a checkpoint directory to the
// newest complete checkpoint directory.
Result<std::string> ResolveCheckpoint(const std::string& path, Env* env = PosixEnv());

// What a checkpoint holds (ember inspect): every file is read and verified against the manifest.
struct CheckpointInfo {
  std::string path;
  int64_t step = 0;
  DataPosition position;
  std::string model, method;
  int num_shards = 0;
  struct File {
    std::string name, kind;
    uint64_t bytes = 0;
  };
  std::vector<File> files;
  uint64_t bytes = 0;  // all files
  struct Table {
    embedding::TableSpec spec;
    uint64_t rows = 0, values = 0, bytes = 0;  // bytes: rows, optimizer state and index in memory
  };
  std::vector<Table> tables;  // by id, summed over shard files
};
Result<CheckpointInfo> InspectCheckpoint(const std::string& path);

}  // namespace ember::workers
