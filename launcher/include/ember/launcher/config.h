// RunConfig: every config key of `ember train` / `ember eval`, read from TOML with
// `--set key=value` overrides. docs/config.md lists each key with its default.
//
// Unknown keys and wrongly typed values are errors that name the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/criteo.h"
#include "ember/data/sessions.h"
#include "ember/workers/trainer.h"

namespace ember::launcher {

struct RunConfig {
  // [data]
  std::string train;                  // data.train: training file (Criteo text format)
  std::string test;                   // data.test: evaluation file ("" = no evaluation)
  std::string valid;                  // data.valid: validation file (OptEmbed's search)
  std::string format = "criteo";      // data.format
  std::string on_bad_line = "error";  // data.on_bad_line: "error" or "skip"
  int num_dense = 13;                 // data.num_dense
  int num_sparse = 26;                // data.num_sparse
  uint64_t max_rows = 0;              // data.max_rows: cap on training rows per epoch (0 = all)
  std::string vocab;                  // data.vocab: a vocabulary file (ember vocab); others read as OOV
  // Session data (data.format "diginetica" or "yoochoose"; docs/sessions.md).
  std::string items;               // data.items: item attribute file
  data::SessionProtocol sessions;  // data.min_item_count, test_days, drop_boundary, cold_items, ...
  double valid_fraction = 0.1;     // data.valid_fraction: training examples held out to pick the epoch
  // [model]
  std::string model = "dlrm";
  std::vector<int64_t> bottom_mlp = {512, 256, 64};
  std::vector<int64_t> top_mlp = {512, 256};
  // Session models (m2trec, sasrec).
  int64_t layers = 2;
  int64_t attention_heads = 2;
  double dropout = 0.1;
  int64_t max_length = 50;
  std::string pooling;                      // "" = the model's
  std::vector<std::string> category_heads;  // default (m2trec): the "category" attribute if any
  bool category_heads_set = false;
  std::vector<double> head_weights;  // lambda per category head (default 1)
  uint64_t candidates = 0;           // train.candidates: sampled softmax (0 = full)
  int64_t patience = 0;              // train.patience: stop after epochs without val gain (0 = never)
  // [embedding]
  std::string method = "full";
  int dim = 16;
  uint64_t rows = 1 << 20;
  int tables = 2;                     // embedding.tables (unified)
  int chunks = 2;                     // embedding.chunks (unified)
  std::vector<int64_t> field_chunks;  // embedding.field_chunks (unified, per field; 0 = chunks)
  uint64_t collisionless_below = 0;   // embedding.collisionless_below (unified)
  double density = 1.0;               // embedding.density (dsl; the budget sets it when given)
  std::string budget;                 // embedding.budget: "" = none, a fraction or bytes
  std::string precision = "fp32";     // embedding.precision: "fp32" or "fp16" (dense tables)
  // embedding.field_methods: { C3 = "full", C7 = "dsl", ... }, per-field method overrides
  std::vector<std::pair<std::string, std::string>> field_methods;
  // Feature admission and expiry (docs/admission.md).
  int64_t admit_after = 0;
  std::vector<std::pair<std::string, int64_t>> field_admit_after;  // { C3 = 10, ... }
  double admit_probability = 1.0;
  int64_t admit_sketch_width = 1 << 16;  // counters per sketch row; 0: exact counts (unbounded)
  int64_t admit_sketch_depth = 4;
  int64_t expire_after_steps = 0;
  std::string fallback = "oov";
  int64_t fallback_rows = 0;
  std::string sparse_optimizer = "rowwise_adagrad";
  double sparse_lr = 0.05;
  double initial_accumulator = 0.0;  // embedding.initial_accumulator (Adagrad variants)
  double sparse_eps = 1e-8;          // embedding.eps
  double init_scale = 0.01;
  uint64_t embedding_seed = 0;
  int64_t max_line_bytes = 1 << 20;  // data.max_line_bytes: a longer data line is an error
  // [train]
  int epochs = 1;
  uint64_t batch_size = 1024;
  double lr = 1e-3;
  std::string dense_optimizer = "adam";
  int threads = 0;  // 0 = all cores
  uint64_t seed = 1;
  uint64_t eval_batch_size = 8192;
  std::string progress = "auto";  // "auto" (line on a terminal, log lines otherwise), "log", "off"
  double log_interval_s = 10;
  // [optembed]
  workers::OptEmbedConfig optembed;
  std::string retrain_init = "fresh";  // optembed.retrain_init: "fresh" or "inherit"
  int retrain_epochs = 0;              // optembed.retrain_epochs (0 = train.epochs)
  // [dsl]
  workers::DslConfig dsl;
  std::string dsl_decay = "cosine";  // dsl.decay: "cosine" or "none"
  // [ps]
  int shards = 1;                                    // ps.shards: in-process shards (one process)
  int ps_servers = 1;                                // ps.servers: under mpirun, the first k ranks serve shards
  std::string ps_bind = "127.0.0.1";                 // ps.bind: address PS servers listen on
  double ps_timeout_s = 300;                         // ps.timeout_s: a reply, a handshake, a frame, a vanished worker
  double ps_idle_timeout_s = 3600;                   // ps.idle_timeout_s: a worker's connection idle between frames
  int64_t ps_max_frame_bytes = int64_t{1} << 30;     // ps.max_frame_bytes: one frame's payload
  int64_t ps_max_buffered_bytes = int64_t{2} << 30;  // ps.max_buffered_bytes: all of a server's connections
  std::string collective = "auto";                   // train.collective: "auto", "mpi" or "nccl" (workers' all-reduce)
  std::string mode = "sync";  // train.mode: "sync", "bounded" or "async" (workers::TrainerConfig)
  int64_t staleness = 0;      // train.staleness: bounded mode's bound in steps
  bool prefetch = true;       // train.prefetch: pull the next batch's rows during a step
  // [checkpoint]
  std::string checkpoint_dir;          // "" = no checkpoint
  int64_t checkpoint_every_steps = 0;  // checkpoint.every_steps: also every N steps (0 = at the end only)
  int64_t checkpoint_keep = 3;         // checkpoint.keep: newest ckpt-N directories kept (0 = all)
  bool resume = false;                 // --resume: continue from checkpoint.dir's newest checkpoint
  // [monitoring]
  int monitoring_port = 0;                    // GET /metrics on port + rank (0 = off)
  std::string monitoring_bind = "127.0.0.1";  // address the metrics endpoint binds to
  double monitoring_linger_s = 0;             // keep serving this long after the run ends

  // The effective configuration as TOML (stored in checkpoints).
  std::string text;
};

// Parses TOML text (source names it in errors), applies overrides ("key=value"; the value is
// TOML, or a bare string), validates.
Result<RunConfig> ParseConfig(const std::string& toml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});
Result<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides = {});

// Translations for the modules. MakeTrainerConfig leaves field vocabularies at 0;
// ResolveEmbedding fills them from the training data (where the method or budget needs them)
// and applies the budget.
Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& config);
struct ResolvedEmbedding {
  uint64_t budget_bytes = 0;  // 0 = no budget
  uint64_t train_rows = 0;    // known when the training data was counted
  std::string note;           // what was made of the budget, where users should hear it
};
// `count_always` counts even where nothing needs the vocabularies (plans show them).
Result<ResolvedEmbedding> ResolveEmbedding(const RunConfig& config, workers::TrainerConfig* trainer,
                                           bool count_always = false);
data::CriteoOptions MakeReaderOptions(const RunConfig& config, const std::string& path, bool training);

}  // namespace ember::launcher
