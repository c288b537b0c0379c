// RunConfig: every config key of `ember train` / `ember eval`, read from TOML with
// `--set key=value` overrides. Each key is declared once (config_keys.cc: name, type, default,
// one line of doc, and the field it sets); docs/config.md's table is generated from those
// declarations and a test checks it. Modules own their configuration: the trainer's
// (workers::TrainerConfig, with the embedding method's embedding::MethodConfig and the model's
// models::CtrModelConfig) is embedded here and filled by the keys directly, not mirrored.
//
// Unknown keys and wrongly typed values are errors that name the key and the file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/criteo.h"
#include "ember/data/sessions.h"
#include "ember/embedding/plan.h"
#include "ember/models/session_model.h"
#include "ember/workers/trainer.h"

namespace ember::launcher {

struct RunConfig {
  // The config's defaults where they differ from a module's own.
  RunConfig() {
    trainer.embedding.lifecycle.sketch_width = 1 << 16;
    trainer.embedding.chunks = 0;  // embedding.chunks: embedding::AutoChunks(dim) (MakeTrainerConfig)
    // train.lr_decay, embedding.initial_accumulator, embedding.init_scale and embedding.lr: auto
    // (MakeTrainerConfig)
    trainer.dense_lr_decay = kAuto;
    trainer.embedding.optimizer.initial_accumulator = kAuto;
    trainer.embedding.init_scale = kAuto;
    trainer.embedding.optimizer.lr = kAuto;
  }
  // A numeric key left at its automatic default (resolved by MakeTrainerConfig).
  static constexpr float kAuto = -1.0f;

  // [data]
  std::string train;                     // data.train: training file or glob (several: joined by ", ", for messages)
  std::vector<std::string> train_files;  // data.train as an array of files or globs
  std::string test;                      // data.test: evaluation file ("" = no evaluation)
  std::string valid;                     // data.valid: validation file (OptEmbed's search)
  std::string format = "criteo";
  // Text formats other than criteo (schema.h): data.delimiter ("" = the format's), data.header,
  // data.columns, data.max_bag_length. `schema` is what they make (every CTR format, criteo
  // included), set by ParseConfig.
  std::string delimiter;
  bool header = true;
  std::vector<data::ColumnSpec> columns;
  bool follow = false;       // data.follow: train on data.train as it grows, until stopped
  double follow_poll_s = 1;  // data.follow_poll_seconds
  bool cache = false;        // data.cache: read through the binary cache (data/cache.h)
  std::string cache_dir;     // data.cache_dir ("" = beside the data)
  std::string schema_file;   // data.schema: a TOML file of `columns` (and delimiter, header)
  int64_t max_bag_length = 1024;
  std::shared_ptr<data::Schema> schema;
  data::BadLinePolicy on_bad_line = data::BadLinePolicy::kError;
  int num_sparse = 26;  // data.num_sparse (data.num_dense is trainer.model.num_dense)
  uint64_t max_rows = 0;
  std::string vocab;
  // A full table under a budget: the vocabulary ResolveEmbedding chose (the most frequent values
  // of data.train that fit), which every reader of the job applies. Not a configuration key.
  std::shared_ptr<const data::VocabFilter> budget_vocab;
  int64_t max_line_bytes = 1 << 20;
  // Session data (data.format "diginetica" or "yoochoose"; docs/sessions.md).
  std::string items;
  data::SessionProtocol sessions;
  double valid_fraction = 0.1;

  // The CTR trainer's own configuration: [embedding] (trainer.embedding), model.name,
  // model.bottom_mlp / top_mlp (trainer.model), train.optimizer, train.lr, train.seed,
  // train.mode, train.staleness, train.prefetch, [optembed], [dsl].
  workers::TrainerConfig trainer;
  // Session models' encoder (model.layers, attention_heads, dropout, max_length, pooling).
  models::SessionModelConfig session_model;
  std::vector<std::string> category_heads;  // default (m2trec): the "category" attribute if any
  bool category_heads_set = false;
  std::vector<double> head_weights;  // lambda per category head (default 1)
  uint64_t candidates = 0;           // train.candidates: sampled softmax (0 = full)
  int64_t patience = 0;              // train.patience: stop after epochs without val gain (0 = never)
  workers::RowReset reset_rows = workers::RowReset::kAuto;  // train.reset_rows (RowResetOf resolves auto)
  // model.first_order (unset: auto, MakeTrainerConfig: true for the models whose rows meet in dot
  // products or crosses, DLRM and DCN-v2).
  std::optional<bool> first_order;

  // [embedding] keys resolved against the data: the budget (parsed once, where it is read) and
  // per-field overrides by field name.
  embedding::Budget budget;
  std::string budget_text;  // as written, for messages ("" = none)
  std::vector<std::pair<std::string, embedding::Method>> field_methods;
  std::vector<std::pair<std::string, int64_t>> field_admit_after;
  // embedding.frequent_share: unified under a budget, the share of it that buys collisionless rows
  // for the most frequent values of data.train.
  double frequent_share = 0.5;

  // [train]
  int epochs = 1;
  uint64_t batch_size = 1024;
  int threads = 0;  // 0 = all cores
  uint64_t eval_batch_size = 8192;
  std::string progress = "auto";  // "auto" (line on a terminal, log lines otherwise), "log", "off"
  double log_interval_s = 10;
  std::string collective = "auto";  // "auto", "mpi" or "nccl" (workers' all-reduce)
  // [optembed], [dsl]
  std::string retrain_init = "fresh";  // "fresh" or "inherit"
  int retrain_epochs = 0;              // 0 = train.epochs
  std::string dsl_decay = "cosine";    // "cosine" or "none"
  // [ps]
  int shards = 1;      // in-process shards (one process)
  int ps_servers = 1;  // under mpirun, the first k ranks serve shards
  std::string ps_bind = "127.0.0.1";
  double ps_timeout_s = 300;
  double ps_idle_timeout_s = 3600;
  int64_t ps_max_frame_bytes = int64_t{1} << 30;
  int64_t ps_max_buffered_bytes = int64_t{2} << 30;
  // [checkpoint]
  std::string checkpoint_dir;  // "" = no checkpoint
  int64_t checkpoint_every_steps = 0;
  int64_t checkpoint_keep = 3;
  bool resume = false;  // --resume: continue from checkpoint.dir's newest checkpoint
  // [export]: models written while training (step_hooks.h)
  std::string export_dir;  // "" = none
  int64_t export_every_steps = 0;
  double export_every_seconds = 0;
  std::string export_precision = "fp32";
  int64_t export_keep = 5;
  bool export_delta = false;       // exports after the first are deltas against the one before
  int64_t export_full_every = 10;  // with export_delta: a full export after this many deltas
  // [monitoring]
  int monitoring_port = 0;  // GET /metrics on port + rank (0 = off)
  std::string monitoring_bind = "127.0.0.1";
  double monitoring_linger_s = 0;

  // Shorthands for what most code asks.
  embedding::Method method() const { return trainer.embedding.method; }
  models::ModelKind model() const { return trainer.model.kind; }

  // The effective configuration as TOML (stored in checkpoints).
  std::string text;
};

// A declared key: its name, type and default as docs/config.md shows them, one line of doc.
struct ConfigKeyDoc {
  std::string name, type, default_text, doc;
};
std::vector<ConfigKeyDoc> ConfigKeyDocs();
// docs/config.md's key table, generated from the declarations.
std::string ConfigKeysMarkdown();
// The value `key` has in `config`, as TOML ("" for keys without a plain value).
std::string ShowConfigValue(const RunConfig& config, const std::string& key);

// Parses TOML text (source names it in errors), applies overrides ("key=value"; the value is
// TOML, or a bare string), validates.
Result<RunConfig> ParseConfig(const std::string& toml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});
Result<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides = {});

// The trainer's configuration: the embedded one with what needs the data's shape (the fields,
// per-field overrides by name). Field vocabularies stay 0; ResolveEmbedding fills them from
// the training data (where the method or budget needs them) and applies the budget. `workers`:
// the training job's workers (the global batch of train.mode = "sync" is theirs together).
Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& config, int workers = 1);

// train.reset_rows resolved: auto is each_epoch for the models whose factorization machine
// multiplies the rows directly (deepfm, fm), never for the others (docs/quality.md).
workers::RowReset RowResetOf(const RunConfig& config);
// Whether embedding rows carry over between epochs: a CTR model with rows besides the first-order
// weights (every model but lr), several epochs, train.reset_rows resolving to "never".
bool RowsCarryOver(const RunConfig& config);
// Whether the auto embedding.initial_accumulator caps the steps of rarely seen rows: where rows
// carry over, and for the models whose factorization machine multiplies rows directly (deepfm, fm).
bool CapsRareRowSteps(const RunConfig& config);
// Whether the model reads its rows through dot products or crosses (dlrm, dcn_v2): the auto
// model.first_order, embedding.init_scale and embedding.lr are theirs (docs/quality.md).
bool RowsMeetInProducts(const RunConfig& config);
// The auto embedding.initial_accumulator where it caps them, in per-example units: divided by
// the square of the global batch, as the rows' gradients are of the batch's mean loss.
constexpr double kCarriedAccumulator = 40.0;
struct ResolvedEmbedding {
  uint64_t budget_bytes = 0;  // 0 = no budget; else of every embedding group together
  // The main group's share of it (bytes in proportion to the groups' widths): what OptEmbed's
  // search holds the retrained main table to.
  uint64_t main_budget_bytes = 0;
  uint64_t train_rows = 0;  // known when the training data was counted
  std::string note;         // what was made of the budget, where users should hear it
  // A full table under a budget: the values kept (RunConfig::budget_vocab), and the full table of
  // every value of data.train, which the budget is measured against.
  std::shared_ptr<const data::VocabFilter> vocab;
  uint64_t full_bytes = 0;
};
// `count_always` counts even where nothing needs the vocabularies (plans show them).
Result<ResolvedEmbedding> ResolveEmbedding(const RunConfig& config, workers::TrainerConfig* trainer,
                                           bool count_always = false);
data::CriteoOptions MakeReaderOptions(const RunConfig& config, const std::string& path, bool training);

}  // namespace ember::launcher
