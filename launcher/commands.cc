#include "ember/launcher/commands.h"

#include <malloc.h>
#include <signal.h>
#include <torch/torch.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/common/progress.h"
#include "ember/common/sysinfo.h"
#include "ember/data/prefetch.h"
#include "ember/embedding/plan.h"
#include "ember/monitoring/exporter.h"
#include "ember/ps/in_process.h"
#include "ember/workers/collective.h"

namespace ember::launcher {
namespace {
Result<std::unique_ptr<data::BatchReader>> OpenReader(const RunConfig& c, const std::string& path, bool training) {
  auto r = data::CriteoReader::Open(MakeReaderOptions(c, path, training));
  if (!r.ok()) return r.status();
  return std::unique_ptr<data::BatchReader>(new data::PrefetchingReader(std::move(r).value()));
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

workers::ProgressOptions Progress(const RunConfig& c) {
  workers::ProgressOptions p;
  p.enabled = c.progress != "off";
  p.tty = c.progress == "auto" && StderrIsTty();
  p.log_interval_s = c.log_interval_s;
  return p;
}

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
                      {"eval_samples", m.eval_samples},
                      {"method", m.method},
                      {"table_values", m.table_values},
                      {"param_bytes", m.param_bytes},
                      {"full_bytes", m.full_bytes},
                      {"budget_bytes", m.budget_bytes},
                      {"planned_param_bytes", m.planned_param_bytes},
                      {"planned_resident_bytes", m.planned_resident_bytes}};
  if (m.supernet_rows) {
    j["kept_rows"] = m.kept_rows;
    j["supernet_rows"] = m.supernet_rows;
    j["widths"] = m.widths;
  }
  j["auc"] = m.auc >= 0 ? nlohmann::json(m.auc) : nlohmann::json(nullptr);
  j["logloss"] = m.logloss >= 0 ? nlohmann::json(m.logloss) : nlohmann::json(nullptr);
  if (!m.checkpoint.empty()) j["checkpoint"] = m.checkpoint;
  if (m.session) {
    j["recall_at_20"] = m.recall_at_20;
    j["mrr_at_20"] = m.mrr_at_20;
    j["cold_recall_at_20"] = m.cold_recall_at_20;
    j["cold_mrr_at_20"] = m.cold_mrr_at_20;
    j["rare_recall_at_20"] = m.rare_recall_at_20;
    j["rare_mrr_at_20"] = m.rare_mrr_at_20;
    j["valid_recall_at_20"] = m.valid_recall_at_20;
    j["test_examples"] = m.test_examples;
    j["cold_examples"] = m.cold_examples;
    j["rare_examples"] = m.rare_examples;
    j["best_epoch"] = m.best_epoch;
  }
  return WriteFileAtomic(path, j.dump(2) + "\n");
}

namespace {
// The main group's method as the trainer builds it (table ids from 0), for plans.
Result<std::unique_ptr<embedding::EmbeddingMethod>> MainMethod(const workers::TrainerConfig& tc) {
  embedding::MethodConfig ec = tc.embedding;
  ec.first_table = 0;
  ec.seed = PairSeed(tc.embedding.seed, 0);
  return embedding::MakeMethod(ec, tc.fields);
}

// Parameter bytes actually held, over every table.
uint64_t HeldParamBytes(const std::vector<ps::TableStats>& stats) {
  uint64_t bytes = 0;
  for (const auto& s : stats) bytes += s.param_bytes();
  return bytes;
}

// What the table collector reads at scrape time: the PS and the current trainer's table infos
// (OptEmbed swaps trainers mid-run).
struct TableWatch {
  std::mutex mu;
  ps::PsClient* ps = nullptr;
  std::vector<workers::TableInfo> infos;
  void Set(const workers::Trainer& t) {
    auto infos_now = t.TableInfos();
    std::lock_guard<std::mutex> lock(mu);
    infos = std::move(infos_now);
  }
};

}  // namespace

Result<std::unique_ptr<monitoring::MetricsExporter>> StartMetrics(const RunConfig& c, const std::string& role, int rank,
                                                                  std::ostream& out) {
  if (c.monitoring_port == 0) return std::unique_ptr<monitoring::MetricsExporter>();
  auto exporter = std::make_unique<monitoring::MetricsExporter>(role, rank);
  monitoring::HttpServerOptions o;
  o.bind = c.monitoring_bind;
  o.port = c.monitoring_port + rank;
  o.threads = 1;
  Status st = exporter->Start(o);
  if (!st.ok()) return st.WithContext("monitoring.port");
  out << "metrics: http://" << c.monitoring_bind << ":" << exporter->port() << "/metrics\n";
  return exporter;
}

Result<std::string> WriteCheckpoint(workers::Trainer* trainer, const RunConfig& c) {
  return WriteCheckpoint(c, [&](const std::string& root) { return trainer->SaveCheckpoint(root, c.text); });
}

Result<std::string> WriteCheckpoint(const RunConfig& c,
                                    const std::function<Result<std::string>(const std::string& root)>& save) {
  EMBER_RETURN_IF_ERROR(MakeDirs(c.checkpoint_dir));
  EMBER_ASSIGN_OR_RETURN(auto path, save(c.checkpoint_dir));
  // Only once the new checkpoint is complete do the oldest go.
  std::vector<std::pair<int64_t, std::string>> all;
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(c.checkpoint_dir, ec)) {
    const std::string name = entry.path().filename().string();
    // ckpt-N.tmp-PID of a writer that is gone (killed mid-write): never complete, removed.
    if (const size_t t = name.find(".tmp-"); name.rfind("ckpt-", 0) == 0 && t != std::string::npos) {
      const long pid = std::strtol(name.c_str() + t + 5, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(entry.path().string());
      continue;
    }
    if (name.rfind("ckpt-", 0) != 0 || name.size() <= 5 || name.find_first_not_of("0123456789", 5) != std::string::npos)
      continue;
    all.emplace_back(std::stoll(name.substr(5)), entry.path().string());
  }
  for (const auto& dir : stale) std::filesystem::remove_all(dir, ec);
  std::sort(all.begin(), all.end());
  for (size_t i = 0; c.checkpoint_keep > 0 && i + static_cast<size_t>(c.checkpoint_keep) < all.size(); ++i)
    std::filesystem::remove_all(all[i].second, ec);
  return path;
}

workers::StepCallback CheckpointEvery(workers::Trainer* trainer, const RunConfig& c, int epoch, uint64_t skipped,
                                      int workers, bool writer) {
  if (c.checkpoint_dir.empty() || c.checkpoint_every_steps <= 0) return {};
  auto steps = std::make_shared<uint64_t>(0);
  return [=, &c](int64_t step) -> Status {
    ++*steps;
    if (step % c.checkpoint_every_steps != 0) return Status::Ok();
    // Examples of the file passed this epoch: every worker's full batches (an epoch's last,
    // partial batch ends it, and a position past the end resumes with the next epoch).
    trainer->set_position({epoch, skipped + *steps * c.batch_size * static_cast<uint64_t>(workers)});
    if (!writer) return Status::Ok();
    return WriteCheckpoint(trainer, c).status();
  };
}

Result<std::string> PrepareResume(const RunConfig& c, workers::TrainerConfig* tc) {
  if (!c.resume) return std::string();
  if (c.checkpoint_dir.empty()) return Status::InvalidArgument("--resume needs checkpoint.dir");
  if (tc->embedding.method == "optembed")
    return Status::InvalidArgument(
        "--resume: embedding.method = \"optembed\" trains in stages (supernet, search, retraining); resuming "
        "one is not supported");
  auto path = workers::ResolveCheckpoint(c.checkpoint_dir);
  if (!path.ok()) return path.status().WithContext("--resume");
  // The table sizes the checkpoint was trained with, so that ids map to the same rows.
  EMBER_RETURN_IF_ERROR(workers::ApplyCheckpointEmbedding(*path, tc));
  return path;
}

Status Resume(workers::Trainer* trainer, const std::string& path, bool load_shards, std::ostream& out) {
  EMBER_RETURN_IF_ERROR(trainer->RestoreCheckpoint(path, load_shards));
  out << "resumed from " << path << " at step " << trainer->step() << " (epoch " << trainer->position().epoch + 1
      << ", " << trainer->position().examples << " examples in)" << std::endl;
  return Status::Ok();
}

namespace {
void Linger(const RunConfig& c, monitoring::MetricsExporter* exporter, std::ostream& out) {
  if (!exporter || c.monitoring_linger_s <= 0) return;
  out << "serving metrics for " << c.monitoring_linger_s << " s more (monitoring.linger_s)" << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(c.monitoring_linger_s));
}

Status TrainEpochs(workers::Trainer* trainer, const RunConfig& c, int epochs, RunMetrics* m,
                   workers::DataPosition from = {}) {  // by value: the trainer's own position changes below
  const auto progress = Progress(c);
  for (int e = static_cast<int>(from.epoch); e < epochs; ++e) {
    auto opts = MakeReaderOptions(c, c.train, true);
    opts.skip_examples = e == from.epoch ? from.examples : 0;
    auto inner = data::CriteoReader::Open(opts);
    if (!inner.ok()) return inner.status();
    data::PrefetchingReader reader(std::move(inner).value());
    auto stats = trainer->TrainEpoch(&reader, e, epochs, progress,
                                     CheckpointEvery(trainer, c, e, opts.skip_examples, /*workers=*/1));
    if (!stats.ok()) return stats.status();
    m->train_samples += stats->samples;
    m->train_seconds += stats->seconds;
    m->bad_lines += reader.bad_lines();
  }
  trainer->set_position({epochs, 0});
  if (m->train_samples == 0 && from.epoch == 0 && from.examples == 0)
    return Status::InvalidArgument(
        "no training examples read from " + c.train +
        (m->bad_lines ? " (" + std::to_string(m->bad_lines) + " malformed lines skipped)" : ""));
  return Status::Ok();
}
}  // namespace

Status RunPlan(const RunConfig& c, std::ostream& out) {
  if (IsSessionModel(c))
    return Status::InvalidArgument("ember plan covers CTR models; session models print their tables when they train");
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  EMBER_ASSIGN_OR_RETURN(auto resolved, ResolveEmbedding(c, &tc, /*count_always=*/true));
  if (!resolved.note.empty()) out << resolved.note << "\n";
  EMBER_ASSIGN_OR_RETURN(auto method, MainMethod(tc));
  const auto plan = embedding::PlanMemory(*method, tc.embedding, tc.fields);
  char buf[256];
  std::snprintf(buf, sizeof(buf), "ember plan: method %s, dim %d, %zu fields; full table %s", plan.method.c_str(),
                tc.embedding.dim, tc.fields.size(),
                embedding::FormatBytes(static_cast<double>(plan.full_bytes)).c_str());
  out << buf;
  if (resolved.budget_bytes)
    out << "; budget " << embedding::FormatBytes(static_cast<double>(resolved.budget_bytes)) << " (" << c.budget << ")";
  out << "\n\nfield   vocab        tables        probes x width\n";
  for (int f = 0; f < method->num_fields(); ++f) {
    const auto& l = method->layout(f);
    std::string tables;
    for (size_t p = 0; p < l.probe_tables.size(); ++p) {
      const std::string id = std::to_string(l.probe_tables[p]);
      if (tables.find(id) == std::string::npos || tables.empty()) tables += (tables.empty() ? "" : ",") + id;
    }
    std::snprintf(buf, sizeof(buf), "%-7s %-12llu %-13s %zu x %d\n", tc.fields[f].name.c_str(),
                  static_cast<unsigned long long>(tc.fields[f].vocab), tables.c_str(), l.probe_tables.size(),
                  l.probe_dims.empty() ? 0 : l.probe_dims[0]);
    out << buf;
  }
  out << "\ntable  kind    rows         width  params        optimizer     resident (est.)\n";
  for (const auto& t : plan.tables) {
    std::snprintf(buf, sizeof(buf), "%-6u %-7s %-12llu %-6d %-13s %-13s %s\n", t.spec.id,
                  t.spec.kind == embedding::TableKind::kSparse ? "sparse" : "dense",
                  static_cast<unsigned long long>(t.rows), t.spec.dim,
                  embedding::FormatBytes(static_cast<double>(t.param_bytes)).c_str(),
                  embedding::FormatBytes(static_cast<double>(t.state_bytes)).c_str(),
                  embedding::FormatBytes(static_cast<double>(t.resident_bytes)).c_str());
    out << buf;
  }
  std::snprintf(buf, sizeof(buf), "\ntotal: params %s (%.4f of the full table)",
                embedding::FormatBytes(static_cast<double>(plan.param_bytes)).c_str(),
                plan.full_bytes ? static_cast<double>(plan.param_bytes) / static_cast<double>(plan.full_bytes) : 0.0);
  out << buf;
  if (resolved.budget_bytes)
    out << ", " << (plan.param_bytes <= resolved.budget_bytes ? "within" : "OVER") << " the budget of "
        << embedding::FormatBytes(static_cast<double>(resolved.budget_bytes));
  out << "; optimizer state " << embedding::FormatBytes(static_cast<double>(plan.state_bytes)) << "; resident (est.) "
      << embedding::FormatBytes(static_cast<double>(plan.resident_bytes)) << "\n";
  if (tc.embedding.method == "dsl")
    out << "dsl: density " << tc.embedding.density << " (entries kept per row, on average "
        << tc.embedding.density * static_cast<float>(tc.embedding.dim) << " of " << tc.embedding.dim << ")\n";
  if (tc.embedding.method == "optembed")
    out << "optembed: the supernet trains the full table above; the search keeps the retrained table"
        << (resolved.budget_bytes ? " within the budget" : " (no budget: widths by validation AUC only)") << "\n";
  if (tc.model.name == "deepfm")
    out << "(deepfm adds a 1-wide first-order group of the same layout, 1/" << tc.embedding.dim << " of this size)\n";
  return Status::Ok();
}

Status EvaluateTest(workers::Trainer* trainer, const RunConfig& c, RunMetrics* m, std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c, c.test, false));
  EMBER_ASSIGN_OR_RETURN(auto eval, trainer->Evaluate(reader.get()));
  m->auc = eval.auc;
  m->logloss = eval.logloss;
  m->eval_samples = eval.samples;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "test: %llu samples, AUC %.5f, logloss %.5f\n",
                static_cast<unsigned long long>(eval.samples), eval.auc, eval.logloss);
  out << buf;
  return Status::Ok();
}

uint32_t NextTableId(const Result<std::vector<ps::TableStats>>& stats) {
  uint32_t next = 0;
  if (stats.ok())
    for (const auto& s : *stats) next = std::max(next, s.table + 1);
  return next;
}

Result<workers::OptEmbedArch> SearchOptEmbedStage(workers::Trainer* supernet, const RunConfig& c, uint64_t budget_bytes,
                                                  RunMetrics* m, std::ostream& out) {
  if (!c.checkpoint_dir.empty()) {
    EMBER_RETURN_IF_ERROR(MakeDirs(c.checkpoint_dir));
    EMBER_ASSIGN_OR_RETURN(auto path, supernet->SaveCheckpoint(c.checkpoint_dir, c.text, "supernet"));
    out << "optembed supernet checkpoint: " << path << "\n";
  }
  // glibc raises its mmap threshold to the size of every large block freed; the search's
  // hundreds of scoring passes then fragment the heap (peak memory of a 100k-row run 1.37 GiB).
  // A fixed 4 MiB threshold from here on kept it at 0.43 GiB; training before the search keeps
  // glibc's default, which measured ~13% faster steps than the fixed threshold.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  EMBER_ASSIGN_OR_RETURN(auto valid, OpenReader(c, c.valid, false));
  EMBER_ASSIGN_OR_RETURN(auto arch, supernet->SearchOptEmbed(valid.get(), budget_bytes));
  for (size_t f = 0; f < arch.kept_rows.size(); ++f) {
    m->kept_rows += arch.kept_rows[f];
    m->supernet_rows += arch.total_rows[f];
  }
  m->widths = arch.widths;
  std::string ws;
  for (int w : arch.widths) ws += (ws.empty() ? "" : ",") + std::to_string(w);
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "optembed search: keeps %llu of %llu rows (%.1f%% pruned, threshold shift %.2f), %s, val AUC %.5f\n",
                static_cast<unsigned long long>(m->kept_rows), static_cast<unsigned long long>(m->supernet_rows),
                m->supernet_rows ? 100.0 * (1.0 - static_cast<double>(m->kept_rows) / m->supernet_rows) : 0.0,
                arch.shift, embedding::FormatBytes(static_cast<double>(arch.bytes)).c_str(), arch.val_auc);
  out << buf << "optembed widths: " << ws << "\n";
  if (!c.checkpoint_dir.empty()) {
    nlohmann::json j = {
        {"widths", arch.widths},         {"kept_rows", arch.kept_rows},   {"total_rows", arch.total_rows},
        {"bytes", arch.bytes},           {"val_auc", arch.val_auc},       {"evaluated", arch.evaluated},
        {"thresholds", arch.thresholds}, {"threshold_shift", arch.shift}, {"budget_bytes", budget_bytes}};
    EMBER_RETURN_IF_ERROR(WriteFileAtomic(c.checkpoint_dir + "/optembed-search.json", j.dump(2) + "\n"));
  }
  return arch;
}

Result<std::unique_ptr<workers::Trainer>> MakeOptEmbedRetrainer(const workers::TrainerConfig& supernet_config,
                                                                const workers::OptEmbedArch& arch, uint32_t first_table,
                                                                ps::PsClient* ps, workers::Collective* collective,
                                                                monitoring::Recorder* recorder,
                                                                workers::Trainer* supernet, bool reinit,
                                                                int64_t first_step) {
  workers::TrainerConfig rc = supernet_config;
  rc.embedding.field_widths = arch.widths;
  rc.embedding.first_table = first_table;
  EMBER_ASSIGN_OR_RETURN(auto retrainer, workers::Trainer::Create(rc, ps, collective, recorder));
  retrainer->set_step(first_step);
  if (supernet) EMBER_RETURN_IF_ERROR(retrainer->AdoptOptEmbedRows(*supernet, arch.thresholds, reinit));
  return retrainer;
}

Status RunInspect(const std::string& path, bool json, std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(auto info, workers::InspectCheckpoint(path));
  auto kind = [](const embedding::TableSpec& s) {
    std::string k = s.kind == embedding::TableKind::kSparse ? "sparse" : "dense";
    if (s.frozen) k += ", frozen";
    return k;
  };
  if (json) {
    nlohmann::json j = {{"path", info.path},
                        {"step", info.step},
                        {"position", {{"epoch", info.position.epoch}, {"examples", info.position.examples}}},
                        {"model", info.model},
                        {"method", info.method},
                        {"num_shards", info.num_shards},
                        {"bytes", info.bytes}};
    for (const auto& f : info.files) j["files"].push_back({{"name", f.name}, {"kind", f.kind}, {"bytes", f.bytes}});
    for (const auto& t : info.tables)
      j["tables"].push_back({{"id", t.spec.id},
                             {"kind", kind(t.spec)},
                             {"dim", t.spec.dim},
                             {"precision", t.spec.precision == embedding::Precision::kFp16 ? "fp16" : "fp32"},
                             {"optimizer", embedding::OptimizerName(t.spec.optimizer.kind)},
                             {"rows", t.rows},
                             {"values", t.values},
                             {"bytes", t.bytes}});
    out << j.dump(2) << "\n";
    return Status::Ok();
  }
  out << "checkpoint " << info.path << "\n"
      << "  step " << info.step << "; data position: " << info.position.epoch << " epoch(s) done, "
      << info.position.examples << " examples into the next\n  model " << info.model << ", embedding method "
      << info.method << ", written by " << info.num_shards << " shard(s), " << Bytes(info.bytes) << " in "
      << info.files.size() << " files (all verified)\n";
  char buf[256];
  std::snprintf(buf, sizeof(buf), "  %5s  %-14s %4s %5s %-16s %12s %14s %12s\n", "table", "kind", "dim", "prec",
                "optimizer", "rows", "values", "memory");
  out << buf;
  uint64_t rows = 0, values = 0, bytes = 0;
  for (const auto& t : info.tables) {
    std::snprintf(buf, sizeof(buf), "  %5u  %-14s %4d %5s %-16s %12llu %14llu %12s\n", t.spec.id, kind(t.spec).c_str(),
                  t.spec.dim, t.spec.precision == embedding::Precision::kFp16 ? "fp16" : "fp32",
                  embedding::OptimizerName(t.spec.optimizer.kind), static_cast<unsigned long long>(t.rows),
                  static_cast<unsigned long long>(t.values), Bytes(t.bytes).c_str());
    out << buf;
    rows += t.rows;
    values += t.values;
    bytes += t.bytes;
  }
  out << "  total: " << info.tables.size() << " tables, " << rows << " rows, " << values << " values, " << Bytes(bytes)
      << " in memory with optimizer state\n";
  for (const auto& f : info.files) out << "  file " << f.name << " (" << f.kind << ", " << Bytes(f.bytes) << ")\n";
  return Status::Ok();
}

Status RecordTables(ps::PsClient* ps, RunMetrics* m) {
  EMBER_ASSIGN_OR_RETURN(auto stats, ps->Stats());
  m->table_rows = m->table_bytes = m->table_values = 0;
  for (const auto& s : stats) {
    m->table_rows += s.rows;
    m->table_bytes += s.bytes;
    m->table_values += s.values;
  }
  m->param_bytes = HeldParamBytes(stats);
  return Status::Ok();
}

Status CheckInputs(const RunConfig& c) {
  // Every data file opens and its first examples parse before any training: a bad data.test
  // is not found an hour later, after the run it was meant to score.
  for (const auto& [key, path] : {std::pair<const char*, const std::string*>{"data.train", &c.train},
                                  {"data.valid", &c.valid},
                                  {"data.test", &c.test}}) {
    if (path->empty()) continue;
    auto opts = MakeReaderOptions(c, *path, false);
    opts.batch_size = 16;
    opts.max_rows = 16;
    auto reader = data::CriteoReader::Open(opts);
    if (!reader.ok()) return reader.status().WithContext(key);
    data::Batch batch;
    auto got = (*reader)->Next(&batch);
    if (!got.ok()) return got.status().WithContext(key);
  }
  return Status::Ok();
}

Result<RunMetrics> RunTrain(const RunConfig& c, std::ostream& out) {
  if (c.train.empty()) return Status::InvalidArgument("data.train is not set");
  EMBER_RETURN_IF_ERROR(CheckSessionConfig(c));
  if (!IsSessionModel(c)) EMBER_RETURN_IF_ERROR(CheckInputs(c));
  if (UnderMpi()) return RunTrainCluster(c, out);
  if (IsSessionModel(c)) return RunSessionTrain(c, out);
  ConfigureThreads(c.threads);
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  // With metrics on, field vocabularies are counted (once; cached) for the compression ratio.
  EMBER_ASSIGN_OR_RETURN(auto resolved, ResolveEmbedding(c, &tc, /*count_always=*/c.monitoring_port > 0));
  if (!resolved.note.empty()) out << resolved.note << "\n";
  if (tc.embedding.method == "optembed" && c.valid.empty())
    return Status::InvalidArgument("embedding.method = \"optembed\" needs data.valid (its search scores widths on it)");
  EMBER_ASSIGN_OR_RETURN(const std::string resume_from, PrepareResume(c, &tc));
  RunMetrics m;
  m.method = tc.embedding.method;
  m.budget_bytes = resolved.budget_bytes;
  m.full_bytes = embedding::FullTableBytes(tc.embedding.dim, tc.fields);
  {
    EMBER_ASSIGN_OR_RETURN(auto method, MainMethod(tc));
    const auto plan = embedding::PlanMemory(*method, tc.embedding, tc.fields);
    m.planned_param_bytes = plan.param_bytes;
    m.planned_resident_bytes = plan.resident_bytes;
    out << "embedding: " << tc.embedding.method << ", params " << embedding::FormatBytes(plan.param_bytes)
        << (m.full_bytes ? " (" + std::to_string(static_cast<double>(plan.param_bytes) / m.full_bytes) + " of full)"
                         : std::string())
        << (m.budget_bytes ? ", budget " + embedding::FormatBytes(m.budget_bytes) : std::string()) << "\n";
  }
  ps::InProcessClient ps(c.shards);
  workers::LocalCollective collective;
  // Declared after the PS: stopped (no more scrapes) before the PS goes.
  EMBER_ASSIGN_OR_RETURN(auto exporter, StartMetrics(c, "train", /*rank=*/0, out));
  monitoring::Recorder* recorder = exporter ? &exporter->registry() : nullptr;
  auto watch = std::make_shared<TableWatch>();
  watch->ps = &ps;
  if (exporter) {
    auto& reg = exporter->registry();
    reg.SetGauge("embedding_budget_bytes", static_cast<double>(m.budget_bytes));
    reg.AddCollector([watch](monitoring::Recorder& r) {
      std::lock_guard<std::mutex> lock(watch->mu);
      auto stats = watch->ps->Stats();
      if (stats.ok()) workers::RecordTableMetrics(*stats, watch->infos, &r);
    });
  }
  EMBER_ASSIGN_OR_RETURN(auto trainer, workers::Trainer::Create(tc, &ps, &collective, recorder));
  watch->Set(*trainer);
  if (!resume_from.empty()) EMBER_RETURN_IF_ERROR(Resume(trainer.get(), resume_from, /*load_shards=*/true, out));
  EMBER_RETURN_IF_ERROR(TrainEpochs(trainer.get(), c, c.epochs, &m, trainer->position()));
  if (tc.embedding.method == "optembed") {
    // Stage 1 done: search widths (stage 2), retrain (stage 3).
    const uint32_t next = NextTableId(ps.Stats());
    EMBER_ASSIGN_OR_RETURN(auto arch, SearchOptEmbedStage(trainer.get(), c, resolved.budget_bytes, &m, out));
    EMBER_ASSIGN_OR_RETURN(auto retrainer,
                           MakeOptEmbedRetrainer(tc, arch, next, &ps, &collective, recorder, trainer.get(),
                                                 c.retrain_init == "fresh", trainer->step()));
    trainer = std::move(retrainer);
    watch->Set(*trainer);
    m.train_samples = 0;
    m.train_seconds = 0;
    EMBER_RETURN_IF_ERROR(TrainEpochs(trainer.get(), c, c.retrain_epochs > 0 ? c.retrain_epochs : c.epochs, &m));
  }
  m.samples_per_sec = m.train_seconds > 0 ? m.train_samples / m.train_seconds : 0;
  EMBER_RETURN_IF_ERROR(RecordTables(&ps, &m));
  out << "trained " << m.train_samples << " samples in " << ProgressReporter::FormatDuration(m.train_seconds) << " ("
      << static_cast<uint64_t>(m.samples_per_sec) << " samples/s); tables hold " << m.table_rows << " rows, params "
      << Bytes(m.param_bytes) << ", " << Bytes(m.table_bytes) << " with optimizer state and index\n";
  if (m.bad_lines) out << "skipped " << m.bad_lines << " malformed lines (data.on_bad_line = \"skip\")\n";
  // The checkpoint first: a failing evaluation must not cost the trained model.
  if (!c.checkpoint_dir.empty()) {
    EMBER_ASSIGN_OR_RETURN(m.checkpoint, WriteCheckpoint(trainer.get(), c));
    out << "checkpoint written to " << m.checkpoint << "\n";
  }
  if (!c.test.empty()) EMBER_RETURN_IF_ERROR(EvaluateTest(trainer.get(), c, &m, out));
  m.peak_rss_bytes = PeakRssBytes();
  out << "peak memory " << Bytes(m.peak_rss_bytes) << "\n";
  Linger(c, exporter.get(), out);
  return m;
}

namespace {
// A trainer restored from a checkpoint, with the PS and collective it borrows.
struct Restored {
  std::string path;
  RunConfig config;
  workers::TrainerConfig trainer_config;
  std::unique_ptr<ps::InProcessClient> ps;
  workers::LocalCollective collective;
  std::unique_ptr<workers::Trainer> trainer;
};

Result<std::unique_ptr<Restored>> Restore(const std::string& checkpoint, int threads) {
  auto r = std::make_unique<Restored>();
  EMBER_ASSIGN_OR_RETURN(r->path, workers::ResolveCheckpoint(checkpoint));
  EMBER_ASSIGN_OR_RETURN(std::string text, workers::ReadCheckpointConfig(r->path));
  EMBER_ASSIGN_OR_RETURN(r->config, ParseConfig(text, r->path + "/manifest.json#config"));
  if (IsSessionModel(r->config))
    return Status::InvalidArgument(r->path + ": a session model's checkpoint (" + r->config.model +
                                   "); ember export and serve cover CTR models, ember eval scores it");
  ConfigureThreads(threads > 0 ? threads : r->config.threads);
  EMBER_ASSIGN_OR_RETURN(r->trainer_config, MakeTrainerConfig(r->config));
  // The tables' sizes come from the checkpoint: what a budget chose and OptEmbed's widths.
  EMBER_RETURN_IF_ERROR(workers::ApplyCheckpointEmbedding(r->path, &r->trainer_config));
  r->ps = std::make_unique<ps::InProcessClient>(r->config.shards);
  EMBER_ASSIGN_OR_RETURN(r->trainer, workers::Trainer::Create(r->trainer_config, r->ps.get(), &r->collective));
  EMBER_RETURN_IF_ERROR(r->trainer->RestoreCheckpoint(r->path));
  return r;
}

bool IsRegularFile(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

// Scores an exported model on a data file.
Result<RunMetrics> EvalExport(const std::string& model_path, const std::string& data, int threads, std::ostream& out) {
  if (data.empty()) return Status::InvalidArgument("evaluating an exported model needs --data");
  ConfigureThreads(threads);
  EMBER_ASSIGN_OR_RETURN(auto model, serving::ServingModel::Load(model_path));
  data::CriteoOptions o;
  o.path = data;
  o.batch_size = 8192;
  o.num_dense = model->num_dense();
  o.num_sparse = model->num_sparse();
  EMBER_ASSIGN_OR_RETURN(auto reader, data::CriteoReader::Open(o));
  data::PrefetchingReader prefetch(std::move(reader));
  EMBER_ASSIGN_OR_RETURN(auto eval, workers::EvaluateWith(&prefetch, [&](const data::Batch& b, std::vector<float>* p) {
                           return model->Predict(b, p);
                         }));
  RunMetrics m;
  m.eval_samples = eval.samples;
  m.auc = eval.auc;
  m.logloss = eval.logloss;
  m.samples_per_sec = eval.seconds > 0 ? static_cast<double>(eval.samples) / eval.seconds : 0;
  m.peak_rss_bytes = PeakRssBytes();
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s (export, %s rows) on %s: %llu samples, AUC %.5f, logloss %.5f\n",
                model_path.c_str(), embedding::ExportPrecisionName(model->file().precision()), data.c_str(),
                static_cast<unsigned long long>(m.eval_samples), m.auc, m.logloss);
  out << buf;
  return m;
}
}  // namespace

Result<RunMetrics> RunEval(const std::string& checkpoint, const std::string& data_path, int threads,
                           std::ostream& out) {
  if (IsRegularFile(checkpoint)) return EvalExport(checkpoint, data_path, threads, out);
  {
    EMBER_ASSIGN_OR_RETURN(const std::string path, workers::ResolveCheckpoint(checkpoint));
    EMBER_ASSIGN_OR_RETURN(std::string text, workers::ReadCheckpointConfig(path));
    EMBER_ASSIGN_OR_RETURN(auto config, ParseConfig(text, path + "/manifest.json#config"));
    if (IsSessionModel(config)) return RunSessionEval(path, std::move(config), data_path, threads, out);
  }
  EMBER_ASSIGN_OR_RETURN(auto r, Restore(checkpoint, threads));
  const std::string data = data_path.empty() ? r->config.test : data_path;
  if (data.empty()) return Status::InvalidArgument("no data file: pass --data (the checkpoint's data.test is empty)");
  EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(r->config, data, false));
  EMBER_ASSIGN_OR_RETURN(auto eval, r->trainer->Evaluate(reader.get()));
  RunMetrics m;
  m.auc = eval.auc;
  m.logloss = eval.logloss;
  m.eval_samples = eval.samples;
  m.samples_per_sec = eval.seconds > 0 ? eval.samples / eval.seconds : 0;
  m.peak_rss_bytes = PeakRssBytes();
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s (step %lld) on %s: %llu samples, AUC %.5f, logloss %.5f\n", r->path.c_str(),
                static_cast<long long>(r->trainer->step()), data.c_str(), static_cast<unsigned long long>(eval.samples),
                eval.auc, eval.logloss);
  out << buf;
  return m;
}

Result<ExportReport> RunExport(const std::string& checkpoint, const std::string& out_path,
                               const std::string& precision_name, std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(auto precision, embedding::ParseExportPrecision(precision_name));
  EMBER_ASSIGN_OR_RETURN(auto r, Restore(checkpoint, 0));
  embedding::ExportWriter writer(precision);
  EMBER_RETURN_IF_ERROR(r->trainer->Export(&writer));
  EMBER_ASSIGN_OR_RETURN(auto stats, r->ps->Stats());
  ExportReport report;
  report.path = out_path;
  report.held_param_bytes = HeldParamBytes(stats);
  for (int i = 0; i < r->ps->num_shards(); ++i)
    for (const auto& s : stats)
      if (const embedding::Table* t = r->ps->shard(i).table(s.table)) EMBER_RETURN_IF_ERROR(writer.AddTable(*t));
  {
    EMBER_ASSIGN_OR_RETURN(auto method, MainMethod(r->trainer_config));
    report.planned_param_bytes =
        embedding::PlanMemory(*method, r->trainer_config.embedding, r->trainer_config.fields).param_bytes;
    // The budget the run was held to (OptEmbed's plan counts every row; its search prunes to this).
    if (!r->config.budget.empty()) {
      EMBER_ASSIGN_OR_RETURN(auto budget, embedding::ParseBudget(r->config.budget));
      const uint64_t full = embedding::FullTableBytes(r->trainer_config.embedding.dim, r->trainer_config.fields);
      report.budget_bytes = std::min(
          full, budget.bytes ? budget.bytes : static_cast<uint64_t>(budget.fraction * static_cast<double>(full)));
    }
  }
  EMBER_ASSIGN_OR_RETURN(report.summary, writer.Write(out_path));
  const auto& sm = report.summary;
  out << "exported " << r->path << " to " << out_path << " (" << embedding::ExportPrecisionName(precision)
      << " rows)\n\ntable  rows         values        keys, scales, masks\n";
  char buf[256];
  for (const auto& t : sm.tables) {
    std::snprintf(buf, sizeof(buf), "%-6u %-12llu %-13s %s\n", t.id, static_cast<unsigned long long>(t.rows),
                  embedding::FormatBytes(static_cast<double>(t.value_bytes)).c_str(),
                  embedding::FormatBytes(static_cast<double>(t.other_bytes)).c_str());
    out << buf;
  }
  std::snprintf(
      buf, sizeof(buf),
      "\nfile %llu bytes (%s) = table values %llu + keys/scales/masks %llu + dense weights %llu + header %llu "
      "+ alignment/trailer %llu\n",
      static_cast<unsigned long long>(sm.file_bytes),
      embedding::FormatBytes(static_cast<double>(sm.file_bytes)).c_str(),
      static_cast<unsigned long long>(sm.value_bytes()), static_cast<unsigned long long>(sm.other_bytes()),
      static_cast<unsigned long long>(sm.dense_bytes), static_cast<unsigned long long>(sm.header_bytes),
      static_cast<unsigned long long>(sm.padding_bytes));
  out << buf;
  std::snprintf(buf, sizeof(buf),
                "table parameters: %s in the checkpoint, %s promised by the plan (main group), %s exported as %s\n",
                embedding::FormatBytes(static_cast<double>(report.held_param_bytes)).c_str(),
                embedding::FormatBytes(static_cast<double>(report.planned_param_bytes)).c_str(),
                embedding::FormatBytes(static_cast<double>(sm.value_bytes())).c_str(),
                embedding::ExportPrecisionName(precision));
  out << buf;
  if (report.budget_bytes)
    out << "embedding.budget: " << embedding::FormatBytes(static_cast<double>(report.budget_bytes)) << " ("
        << r->config.budget << " of the full table)\n";
  return report;
}

Status RunServe(const std::string& model_path, const serving::ServeOptions& options, std::ostream& out,
                const std::function<void(int port)>& wait) {
  EMBER_RETURN_IF_ERROR(serving::ValidateServeOptions(options).WithContext("ember serve"));
  EMBER_ASSIGN_OR_RETURN(auto model, serving::ServingModel::Load(model_path));
  serving::PredictionServer server(model.get(), options);
  EMBER_RETURN_IF_ERROR(server.Start().WithContext("ember serve"));
  out << "serving " << model_path << " (" << model->kind() << ", " << model->rows() << " rows, "
      << embedding::FormatBytes(static_cast<double>(model->file().size())) << ") on http://" << options.bind << ":"
      << server.port() << " (POST /v1/predict, GET /healthz, GET /metrics)" << std::endl;
  wait(server.port());
  server.Stop();
  out << "ember serve: stopped" << std::endl;
  return Status::Ok();
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

Status RunVocab(const VocabOptions& o, std::ostream& out) {
  if (o.cut.min_count < 1) return Status::InvalidArgument("--min-count must be >= 1");
  data::CriteoOptions opts;
  opts.path = o.data;
  opts.batch_size = 4096;
  opts.num_dense = o.num_dense;
  opts.num_sparse = o.num_sparse;
  EMBER_ASSIGN_OR_RETURN(auto inner, data::CriteoReader::Open(opts));
  data::PrefetchingReader reader(std::move(inner));
  EMBER_ASSIGN_OR_RETURN(data::Vocabulary v, data::CountVocabulary(&reader, o.cut));
  v.source = o.data;
  EMBER_RETURN_IF_ERROR(data::WriteVocabulary(o.out, v));
  uint64_t seen = 0, kept = 0;
  out << "field  values seen  values kept  examples kept\n";
  char line[128];
  for (size_t f = 0; f < v.fields.size(); ++f) {
    const auto& fv = v.fields[f];
    std::snprintf(
        line, sizeof(line), "C%-4zu %11llu  %11zu  %12.2f%%\n", f + 1, static_cast<unsigned long long>(fv.distinct),
        fv.values.size(),
        100.0 * static_cast<double>(fv.kept_occurrences) / static_cast<double>(std::max<uint64_t>(1, fv.occurrences)));
    out << line;
    seen += fv.distinct;
    kept += fv.values.size();
  }
  out << "wrote " << o.out << ": " << kept << " of " << seen << " values over " << v.rows << " examples (min count "
      << o.cut.min_count << (o.cut.top_k ? ", top " + std::to_string(o.cut.top_k) : "") << "); set data.vocab = \""
      << o.out << "\" to train on it\n";
  return Status::Ok();
}

}  // namespace ember::launcher
