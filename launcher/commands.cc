#include "ember/launcher/commands.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "ember/common/file.h"
#include "ember/common/progress.h"
#include "ember/common/sysinfo.h"
#include "ember/data/prefetch.h"
#include "ember/ps/in_process.h"
#include "ember/workers/collective.h"

namespace ember::launcher {
namespace {
Result<std::unique_ptr<data::BatchReader>> OpenReader(const RunConfig& c, const std::string& path, bool training) {
  auto r = data::CriteoReader::Open(MakeReaderOptions(c, path, training));
  if (!r.ok()) return r.status();
  return std::unique_ptr<data::BatchReader>(new data::PrefetchingReader(std::move(r).value()));
}

workers::ProgressOptions Progress(const RunConfig& c) {
  workers::ProgressOptions p;
  p.enabled = c.progress != "off";
  p.tty = c.progress == "auto" && StderrIsTty();
  p.log_interval_s = c.log_interval_s;
  return p;
}

std::string Bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof(buf), "%.2f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", b / double(1ull << 20));
  else
    std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
  return buf;
}
}  // namespace

void ConfigureThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

Status WriteMetricsJson(const std::string& path, const RunMetrics& m) {
  nlohmann::json j = {{"samples_per_sec", m.samples_per_sec},
                      {"train_samples", m.train_samples},
                      {"train_seconds", m.train_seconds},
                      {"peak_rss_bytes", m.peak_rss_bytes},
                      {"table_rows", m.table_rows},
                      {"table_bytes", m.table_bytes},
                      {"bad_lines", m.bad_lines},
                      {"eval_samples", m.eval_samples}};
  j["auc"] = m.auc >= 0 ? nlohmann::json(m.auc) : nlohmann::json(nullptr);
  j["logloss"] = m.logloss >= 0 ? nlohmann::json(m.logloss) : nlohmann::json(nullptr);
  if (!m.checkpoint.empty()) j["checkpoint"] = m.checkpoint;
  return WriteFileAtomic(path, j.dump(2) + "\n");
}

Result<RunMetrics> RunTrain(const RunConfig& c, std::ostream& out) {
  if (c.train.empty()) return Status::InvalidArgument("data.train is not set");
  ConfigureThreads(c.threads);
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  ps::InProcessClient ps(c.shards);
  workers::LocalCollective collective;
  EMBER_ASSIGN_OR_RETURN(auto trainer, workers::Trainer::Create(tc, &ps, &collective));
  RunMetrics m;
  const auto progress = Progress(c);
  for (int e = 0; e < c.epochs; ++e) {
    EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c, c.train, true));
    auto stats = trainer->TrainEpoch(reader.get(), e, c.epochs, progress);
    if (!stats.ok()) return stats.status();
    m.train_samples += stats->samples;
    m.train_seconds += stats->seconds;
    m.bad_lines += reader->bad_lines();
  }
  if (m.train_samples == 0)
    return Status::InvalidArgument(
        "no training examples read from " + c.train +
        (m.bad_lines ? " (" + std::to_string(m.bad_lines) + " malformed lines skipped)" : ""));
  m.samples_per_sec = m.train_seconds > 0 ? m.train_samples / m.train_seconds : 0;
  EMBER_ASSIGN_OR_RETURN(auto footprint, trainer->TableFootprint());
  m.table_rows = footprint.first;
  m.table_bytes = footprint.second;
  out << "trained " << m.train_samples << " samples in " << ProgressReporter::FormatDuration(m.train_seconds) << " ("
      << static_cast<uint64_t>(m.samples_per_sec) << " samples/s); tables hold " << m.table_rows << " rows, "
      << Bytes(m.table_bytes) << "\n";
  if (m.bad_lines) out << "skipped " << m.bad_lines << " malformed lines (data.on_bad_line = \"skip\")\n";
  if (!c.test.empty()) {
    EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c, c.test, false));
    EMBER_ASSIGN_OR_RETURN(auto eval, trainer->Evaluate(reader.get()));
    m.auc = eval.auc;
    m.logloss = eval.logloss;
    m.eval_samples = eval.samples;
    char buf[160];
    std::snprintf(buf, sizeof(buf), "test: %llu samples, AUC %.5f, logloss %.5f\n",
                  static_cast<unsigned long long>(eval.samples), eval.auc, eval.logloss);
    out << buf;
  }
  if (!c.checkpoint_dir.empty()) {
    EMBER_RETURN_IF_ERROR(MakeDirs(c.checkpoint_dir));
    EMBER_ASSIGN_OR_RETURN(m.checkpoint, trainer->SaveCheckpoint(c.checkpoint_dir, c.text));
    out << "checkpoint written to " << m.checkpoint << "\n";
  }
  m.peak_rss_bytes = PeakRssBytes();
  out << "peak memory " << Bytes(m.peak_rss_bytes) << "\n";
  return m;
}

Result<RunMetrics> RunEval(const std::string& checkpoint, const std::string& data_path, int threads,
                           std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(std::string path, workers::ResolveCheckpoint(checkpoint));
  EMBER_ASSIGN_OR_RETURN(std::string text, workers::ReadCheckpointConfig(path));
  EMBER_ASSIGN_OR_RETURN(RunConfig c, ParseConfig(text, path + "/manifest.json#config"));
  ConfigureThreads(threads > 0 ? threads : c.threads);
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  ps::InProcessClient ps(c.shards);
  workers::LocalCollective collective;
  EMBER_ASSIGN_OR_RETURN(auto trainer, workers::Trainer::Create(tc, &ps, &collective));
  EMBER_RETURN_IF_ERROR(trainer->RestoreCheckpoint(path));
  const std::string data = data_path.empty() ? c.test : data_path;
  if (data.empty()) return Status::InvalidArgument("no data file: pass --data (the checkpoint's data.test is empty)");
  EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c, data, false));
  EMBER_ASSIGN_OR_RETURN(auto eval, trainer->Evaluate(reader.get()));
  RunMetrics m;
  m.auc = eval.auc;
  m.logloss = eval.logloss;
  m.eval_samples = eval.samples;
  m.samples_per_sec = eval.seconds > 0 ? eval.samples / eval.seconds : 0;
  m.peak_rss_bytes = PeakRssBytes();
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s (step %lld) on %s: %llu samples, AUC %.5f, logloss %.5f\n", path.c_str(),
                static_cast<long long>(trainer->step()), data.c_str(), static_cast<unsigned long long>(eval.samples),
                eval.auc, eval.logloss);
  out << buf;
  return m;
}

Result<data::OracleStats> RunDatagenCtr(const data::SyntheticCtrOptions& o, const std::string& out_path,
                                        std::ostream& out) {
  ProgressReporter::Options po;
  po.label = "datagen";
  po.total = static_cast<double>(o.rows);
  po.tty = StderrIsTty();
  ProgressReporter reporter(po);
  auto stats = data::WriteSyntheticCtr(o, out_path, [&](uint64_t done) { reporter.Update(static_cast<double>(done)); });
  if (!stats.ok()) return stats.status();
  reporter.Finish(static_cast<double>(o.rows));
  char buf[256];
  std::snprintf(buf, sizeof(buf), "wrote %llu rows to %s (CTR %.4f); oracle AUC %.5f, logloss %.5f in %s.oracle.json\n",
                static_cast<unsigned long long>(stats->rows), out_path.c_str(), stats->ctr, stats->auc, stats->logloss,
                out_path.c_str());
  out << buf;
  return stats;
}

}  // namespace ember::launcher
