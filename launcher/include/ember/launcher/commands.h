// The `ember` subcommands as functions, so tests reach them without the CLI.
// Each prints a human summary to `out` and returns the metrics it computed.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "ember/common/status.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/launcher/config.h"

namespace ember::launcher {

struct RunMetrics {
  double auc = -1;  // -1 when no evaluation ran
  double logloss = -1;
  double samples_per_sec = 0;
  uint64_t train_samples = 0;
  double train_seconds = 0;
  uint64_t eval_samples = 0;
  uint64_t table_rows = 0;
  uint64_t table_bytes = 0;
  uint64_t peak_rss_bytes = 0;
  uint64_t bad_lines = 0;
  std::string checkpoint;  // path written, if any
};

// Writes metrics as a JSON object (atomically).
Status WriteMetricsJson(const std::string& path, const RunMetrics& m);

// Applies train.threads to LibTorch's intra-op pool.
void ConfigureThreads(int threads);

Result<RunMetrics> RunTrain(const RunConfig& config, std::ostream& out);
// Evaluates a checkpoint (a ckpt-N directory or a checkpoint.dir root) on a data file.
Result<RunMetrics> RunEval(const std::string& checkpoint, const std::string& data_path, int threads, std::ostream& out);
Result<data::OracleStats> RunDatagenCtr(const data::SyntheticCtrOptions& options, const std::string& out_path,
                                        std::ostream& out);

}  // namespace ember::launcher
