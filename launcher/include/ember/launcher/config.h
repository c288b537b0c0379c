// RunConfig: every config key of `ember train` / `ember eval`, read from TOML with
// `--set key=value` overrides. docs/config.md lists each key with its default.
//
// Unknown keys and wrongly typed values are errors that name the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/criteo.h"
#include "ember/workers/trainer.h"

namespace ember::launcher {

struct RunConfig {
  // [data]
  std::string train;                  // data.train: training file (Criteo text format)
  std::string test;                   // data.test: evaluation file ("" = no evaluation)
  std::string format = "criteo";      // data.format
  std::string on_bad_line = "error";  // data.on_bad_line: "error" or "skip"
  int num_dense = 13;                 // data.num_dense
  int num_sparse = 26;                // data.num_sparse
  uint64_t max_rows = 0;              // data.max_rows: cap on training rows per epoch (0 = all)
  // [model]
  std::string model = "dlrm";
  std::vector<int64_t> bottom_mlp = {512, 256, 64};
  std::vector<int64_t> top_mlp = {512, 256};
  // [embedding]
  std::string method = "full";
  int dim = 16;
  uint64_t rows = 1 << 20;
  int tables = 2;  // embedding.tables (unified)
  int chunks = 2;  // embedding.chunks (unified)
  std::string sparse_optimizer = "rowwise_adagrad";
  double sparse_lr = 0.05;
  double initial_accumulator = 0.0;  // embedding.initial_accumulator (Adagrad variants)
  double sparse_eps = 1e-8;          // embedding.eps
  double init_scale = 0.01;
  uint64_t embedding_seed = 0;
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
  // [ps]
  int shards = 1;
  // [checkpoint]
  std::string checkpoint_dir;  // "" = no checkpoint

  // The effective configuration as TOML (stored in checkpoints).
  std::string text;
};

// Parses TOML text (source names it in errors), applies overrides ("key=value"; the value is
// TOML, or a bare string), validates.
Result<RunConfig> ParseConfig(const std::string& toml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});
Result<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides = {});

// Translations for the modules.
Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& config);
data::CriteoOptions MakeReaderOptions(const RunConfig& config, const std::string& path, bool training);

}  // namespace ember::launcher
