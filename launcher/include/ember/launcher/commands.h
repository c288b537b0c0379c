// The `ember` subcommands as functions, so tests reach them without the CLI.
// Each prints a human summary to `out` and returns the metrics it computed.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/data/vocab.h"
#include "ember/embedding/export.h"
#include "ember/launcher/config.h"
#include "ember/monitoring/exporter.h"
#include "ember/serving/model_dir.h"
#include "ember/serving/server.h"

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
  // Embedding memory: parameter bytes held (4 per stored weight, plus DSL masks), the full
  // table's, the budget's (0 = none) and the plan's estimates.
  std::string method;
  uint64_t table_values = 0;
  uint64_t param_bytes = 0;
  uint64_t full_bytes = 0;
  uint64_t budget_bytes = 0;
  uint64_t planned_param_bytes = 0;
  uint64_t planned_resident_bytes = 0;
  // OptEmbed: rows kept after pruning / rows of the supernet, and the searched widths.
  uint64_t kept_rows = 0;
  uint64_t supernet_rows = 0;
  std::vector<int> widths;
  // Session models: Recall@20 and MRR@20 (fractions, not x100) over the test examples, over
  // those whose target is cold (unseen in training) and rare; the validation Recall@20 of the
  // epoch reported (chosen on it).
  bool session = false;
  double recall_at_20 = 0, mrr_at_20 = 0, cold_recall_at_20 = 0, cold_mrr_at_20 = 0, rare_recall_at_20 = 0,
         rare_mrr_at_20 = 0, valid_recall_at_20 = 0;
  uint64_t test_examples = 0, cold_examples = 0, rare_examples = 0;
  int best_epoch = 0;
  bool stopped = false;  // ended by SIGTERM / SIGINT (checkpointed where it stopped)
  // CTR runs with data.valid: the best epoch's validation AUC and log loss (-1: none).
  double valid_auc = -1, valid_logloss = -1;
  // Under mpirun only the first worker reports (metrics JSON); other ranks' metrics stay local.
  bool report = true;
};

// Writes metrics as a JSON object (atomically).
Status WriteMetricsJson(const std::string& path, const RunMetrics& m);

// train.progress and train.log_interval_s as the trainers take them.
workers::ProgressOptions Progress(const RunConfig& config);

// Applies train.threads to LibTorch's intra-op pool.
void ConfigureThreads(int threads);

// ember train: one process (in-process shards), or under mpirun one rank of a cluster (job.h).
Result<RunMetrics> RunTrain(const RunConfig& config, std::ostream& out);
// data.train (or data.valid, data.test) opened for reading, with a prefetching thread.
Result<std::unique_ptr<data::BatchReader>> OpenReader(const RunConfig& config, const std::string& path, bool training);
// Every embedding group's method as the trainer builds it, and their memory plans: `total` sums
// the groups' tables and bytes, and its full_bytes is the full fp32 table of every group (what a
// budget is a fraction of).
struct ModelPlan {
  std::vector<workers::GroupMethod> groups;
  embedding::MemoryPlan total;
};
Result<ModelPlan> PlanModel(const workers::TrainerConfig& config);

// Session recommendation (docs/sessions.md): model.name "m2trec" or "sasrec" on data.format
// "diginetica" or "yoochoose".
bool IsSessionModel(const RunConfig& config);
// A session model needs session data and session data a session model.
Status CheckSessionConfig(const RunConfig& config);
// Reads and prepares the session files of a config (the protocol), printing a summary.
Result<data::SessionData> LoadSessionData(const RunConfig& config, std::ostream& log);
// Trains on `ps`: epochs (this worker's share of each), the first worker evaluating validation
// and test after each and keeping the test metrics of the best validation epoch.
Status RunSessionWorker(const RunConfig& config, const data::SessionData& data, ps::PsClient* ps,
                        workers::Collective* collective, monitoring::Recorder* recorder, std::ostream& log,
                        RunMetrics* m);
// ember eval of a session checkpoint `path` trained with `config`: Recall@20 and MRR@20 (overall,
// cold, rare) on the config's test split, or on the test sessions of `test_path` (the config's
// training log still defines the catalogue).
Result<RunMetrics> RunSessionEval(const std::string& path, RunConfig config, const std::string& test_path, int threads,
                                  std::ostream& out);
// Scores data.test with `trainer`, fills the evaluation fields of *m and prints a line.
Status EvaluateTest(workers::Trainer* trainer, const RunConfig& config, RunMetrics* m, std::ostream& out);
// Starts rank `rank`'s metrics endpoint (role "train", "ps-server") on monitoring.port + rank, or
// returns null when monitoring.port is 0; prints its address to `out`.
Result<std::unique_ptr<monitoring::MetricsExporter>> StartMetrics(const RunConfig& config, const std::string& role,
                                                                  int rank, std::ostream& out);
// Writes a checkpoint of `trainer` into checkpoint.dir, then removes the oldest ckpt-N beyond
// checkpoint.keep.
Result<std::string> WriteCheckpoint(workers::Trainer* trainer, const RunConfig& config);
// The same for any writer: `save` writes a checkpoint under the root it is given and returns its
// directory.
Result<std::string> WriteCheckpoint(const RunConfig& config,
                                    const std::function<Result<std::string>(const std::string& root)>& save);
// ember inspect: what a checkpoint (a ckpt-N directory or a checkpoint.dir root: its newest)
// holds — step, data position, model, files, and per table kind, width, precision, optimizer,
// rows, values and bytes — after verifying every file; as text or JSON.
Status RunInspect(const std::string& path, bool json, std::ostream& out);

// ember vocab: counts every field's values in `data` and writes the cut vocabulary to `out`
// (data/vocab.h), printing per field the values seen and kept and the share of examples kept.
struct VocabOptions {
  std::string data, out;
  std::string config;  // read the data as this config's data.format / data.columns say
  data::VocabCut cut;
  int num_dense = 13;
  int num_sparse = 26;
};
Status RunVocab(const VocabOptions& options, std::ostream& out);
// `ember prepare`: builds the binary cache of data.train, data.valid and data.test (where set) in
// data.cache_dir, rebuilding stale ones; prints rows, bytes and the parse rate of each.
Status RunPrepare(const RunConfig& config, std::ostream& out);
// The tables' rows, bytes, values and parameter bytes as the PS holds them, into *m.
Status RecordTables(ps::PsClient* ps, RunMetrics* m);
// The first table id above every table the PS holds (0 if the stats failed).
uint32_t NextTableId(const Result<std::vector<ps::TableStats>>& stats);
// True when this process is one of several ranks started by mpirun.
bool UnderMpi();
// Prints, per field and per table, the method's rows, widths and bytes against the budget.
Status RunPlan(const RunConfig& config, std::ostream& out);
// Evaluates a checkpoint (a ckpt-N directory or a checkpoint.dir root) or an exported model
// file on a data file (default: the checkpoint config's data.test; an export needs one). A
// session model's checkpoint: RunSessionEval. dense_precision ("fp32", "bf16", "int8"): an
// exported model's dense layers, as `ember serve --dense-precision` runs them.
Result<RunMetrics> RunEval(const std::string& checkpoint, const std::string& data_path, int threads, std::ostream& out,
                           const std::string& dense_precision = "fp32");

struct ExportReport {
  std::string path;
  embedding::ExportSummary summary;
  uint64_t held_param_bytes = 0;     // the tables' parameter bytes in the checkpoint (fp32 / fp16, masks)
  uint64_t planned_param_bytes = 0;  // what `ember plan` promised for this configuration
  uint64_t budget_bytes = 0;         // embedding.budget in bytes (0 = none)
};
// Writes the compact model of a checkpoint (`precision`: fp32, fp16 or int8) and prints its
// size, per table and against the plan. With `delta_parent` (an export in out_path's directory)
// it writes a delta against that export instead (embedding/export.h).
Result<ExportReport> RunExport(const std::string& checkpoint, const std::string& out_path, const std::string& precision,
                               std::ostream& out, const std::string& delta_parent = "");
// `ember export --flatten`: writes the full export a delta (or a full export) stands for.
Status RunFlatten(const std::string& in_path, const std::string& out_path, std::ostream& out);
// Loads an export and serves it until wait(port) returns (the CLI waits for SIGINT/SIGTERM).
Status RunServe(const std::string& model_path, const serving::ServeOptions& options, std::ostream& out,
                const std::function<void(int port)>& wait);
Result<data::OracleStats> RunDatagenCtr(const data::SyntheticCtrOptions& options, const std::string& out_path,
                                        std::ostream& out);

}  // namespace ember::launcher
