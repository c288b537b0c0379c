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
#include "ember/data/cache.h"
#include "ember/data/prefetch.h"
#include "ember/embedding/plan.h"
#include "ember/monitoring/exporter.h"
#include "ember/ps/in_process.h"
#include "ember/workers/collective.h"

namespace ember::launcher {
namespace {
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
  j["stopped"] = m.stopped;
  if (m.valid_auc >= 0) {
    j["best_epoch"] = m.best_epoch;
    j["valid_auc"] = m.valid_auc;
    j["valid_logloss"] = m.valid_logloss;
  }
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

Result<std::unique_ptr<data::BatchReader>> OpenReader(const RunConfig& c, const std::string& path, bool training) {
  auto r = data::OpenDataReader(MakeReaderOptions(c, path, training), c.cache, c.cache_dir);
  if (!r.ok()) return r.status();
  return std::unique_ptr<data::BatchReader>(new data::PrefetchingReader(std::move(r).value()));
}

Result<ModelPlan> PlanModel(const workers::TrainerConfig& tc) {
  ModelPlan p;
  EMBER_ASSIGN_OR_RETURN(p.groups, workers::MakeGroupMethods(tc));
  p.total.method = embedding::MethodName(tc.embedding.method);
  for (const auto& g : p.groups) {
    auto plan = embedding::PlanMemory(*g.method, g.config, tc.fields);
    p.total.param_bytes += plan.param_bytes;
    p.total.state_bytes += plan.state_bytes;
    p.total.resident_bytes += plan.resident_bytes;
    p.total.full_bytes += plan.full_bytes;
    for (auto& t : plan.tables) p.total.tables.push_back(std::move(t));
  }
  return p;
}

namespace {
// Parameter bytes actually held, over every table.
uint64_t HeldParamBytes(const std::vector<ps::TableStats>& stats) {
  uint64_t bytes = 0;
  for (const auto& s : stats) bytes += s.param_bytes();
  return bytes;
}

}  // namespace

Status RunPlan(const RunConfig& c, std::ostream& out) {
  if (IsSessionModel(c))
    return Status::InvalidArgument("ember plan covers CTR models; session models print their tables when they train");
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  EMBER_ASSIGN_OR_RETURN(auto resolved, ResolveEmbedding(c, &tc, /*count_always=*/true));
  if (!resolved.note.empty()) out << resolved.note << "\n";
  EMBER_ASSIGN_OR_RETURN(auto model_plan, PlanModel(tc));
  const embedding::MemoryPlan& plan = model_plan.total;
  const embedding::EmbeddingMethod* method = model_plan.groups[0].method.get();
  char buf[256];
  // The full table of every value (a full table under a budget keeps fewer).
  const uint64_t full_bytes = resolved.full_bytes ? resolved.full_bytes : plan.full_bytes;
  std::snprintf(buf, sizeof(buf), "ember plan: method %s, dim %d, %zu fields; full table %s", plan.method.c_str(),
                tc.embedding.dim, tc.fields.size(), embedding::FormatBytes(static_cast<double>(full_bytes)).c_str());
  out << buf;
  if (resolved.budget_bytes)
    out << "; budget " << embedding::FormatBytes(static_cast<double>(resolved.budget_bytes)) << " (" << c.budget_text
        << ")";
  out << "\n\nfield   vocab        tables        probes x width\n";
  for (int f = 0; f < method->num_fields(); ++f) {
    const auto& l = method->layout(f);
    std::string tables;
    for (size_t p = 0; p < l.probe_tables.size(); ++p) {
      const std::string id = std::to_string(l.probe_tables[p]);
      if (tables.find(id) == std::string::npos || tables.empty()) tables += (tables.empty() ? "" : ",") + id;
    }
    // Unified's frequent values read their field's own table instead.
    if (method->frequent_table(f) >= 0) tables += " +" + std::to_string(method->frequent_table(f));
    std::snprintf(buf, sizeof(buf), "%-7s %-12llu %-13s %zu x %d%s\n", tc.fields[f].name.c_str(),
                  static_cast<unsigned long long>(tc.fields[f].vocab), tables.c_str(), l.probe_tables.size(),
                  l.probe_dims.empty() ? 0 : l.probe_dims[0],
                  method->sums_probes() && l.probe_tables.size() > 1 ? ", summed" : "");
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
                full_bytes ? static_cast<double>(plan.param_bytes) / static_cast<double>(full_bytes) : 0.0);
  out << buf;
  if (resolved.budget_bytes)
    out << ", " << (plan.param_bytes <= resolved.budget_bytes ? "within" : "OVER") << " the budget of "
        << embedding::FormatBytes(static_cast<double>(resolved.budget_bytes));
  out << "; optimizer state " << embedding::FormatBytes(static_cast<double>(plan.state_bytes)) << "; resident (est.) "
      << embedding::FormatBytes(static_cast<double>(plan.resident_bytes)) << "\n";
  if (tc.embedding.method == embedding::Method::kDsl)
    out << "dsl: density " << tc.embedding.density << " (entries kept per row, on average "
        << tc.embedding.density * static_cast<float>(tc.embedding.dim) << " of " << tc.embedding.dim << ")"
        << (tc.embedding.dsl_rows ? "; the values share " + std::to_string(tc.embedding.dsl_rows) +
                                        " hashed rows (a row per value would keep less than dsl.min_density)"
                                  : std::string())
        << "\n";
  if (tc.embedding.method == embedding::Method::kOptEmbed)
    out << "optembed: the supernet trains the full table above; the search keeps the retrained table"
        << (resolved.budget_bytes ? " within the budget" : " (no budget: widths by validation AUC only)") << "\n";
  if (model_plan.groups.size() > 1) {
    const auto& fo = model_plan.groups[1];
    out << "(" << models::ModelKindName(tc.model.kind) << "'s first-order weights: the " << fo.spec.dim
        << "-wide group '" << fo.spec.name << "', " << embedding::MethodName(fo.config.method)
        << (fo.config.sum_probes ? ", " + std::to_string(fo.config.chunks) + " probes summed" : std::string())
        << (resolved.budget_bytes ? ", in its share of the budget" : "") << "; tables from " << fo.config.first_table
        << ")\n";
  }
  return Status::Ok();
}

uint32_t NextTableId(const Result<std::vector<ps::TableStats>>& stats) {
  uint32_t next = 0;
  if (stats.ok())
    for (const auto& s : *stats) next = std::max(next, s.table + 1);
  return next;
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

namespace {
// A trainer restored from a checkpoint, with the PS and collective it borrows.
struct Restored {
  std::string path;
  RunConfig config;
  workers::TrainerConfig trainer_config;
  std::unique_ptr<ps::InProcessClient> ps;
  workers::LocalCollective collective;
  std::unique_ptr<workers::Trainer> trainer;
  uint64_t budget_bytes = 0;  // a full table's budget, measured against every value of data.train
};

// A full table under a budget: the vocabulary it kept and the budget, counted again from the
// checkpoint's data.train (its readers map the values outside the vocabulary as training did).
Status ResolveBudgetVocabulary(Restored* r) {
  if (!r->trainer_config.embedding.vocabulary || !r->config.vocab.empty() || !r->config.budget.set())
    return Status::Ok();
  workers::TrainerConfig again = r->trainer_config;
  auto resolved = ResolveEmbedding(r->config, &again);
  if (!resolved.ok())
    return resolved.status().WithContext(r->path + ": the budget's vocabulary (counted from data.train)");
  r->config.budget_vocab = resolved->vocab;
  r->budget_bytes = resolved->budget_bytes;
  return Status::Ok();
}

// Unified's frequent values (embedding.frequent_share), counted again from the checkpoint's
// data.train: the checkpoint holds how many each field kept, which the count must repeat.
Status ResolveFrequentValues(Restored* r) {
  workers::TrainerConfig& t = r->trainer_config;
  uint64_t kept = 0;
  for (uint64_t n : t.embedding.frequent_counts) kept += n;
  if (kept == 0) return Status::Ok();
  workers::TrainerConfig again = t;
  auto resolved = ResolveEmbedding(r->config, &again);
  const std::string what =
      r->path + ": unified's frequent values (counted again from data.train '" + r->config.train + "')";
  if (!resolved.ok()) return resolved.status().WithContext(what);
  if (!again.embedding.frequent || again.embedding.frequent_counts != t.embedding.frequent_counts)
    return Status::FailedPrecondition(what + ": data.train no longer has the values the checkpoint was trained with");
  t.embedding.frequent = again.embedding.frequent;
  if (t.first_order_embedding) t.first_order_embedding->frequent = again.embedding.frequent;
  return Status::Ok();
}

// `reads_ids`: the restored trainer maps ids to rows (evaluation); an export copies rows only.
Result<std::unique_ptr<Restored>> Restore(const std::string& checkpoint, int threads, bool reads_ids) {
  auto r = std::make_unique<Restored>();
  EMBER_ASSIGN_OR_RETURN(r->path, workers::ResolveCheckpoint(checkpoint));
  EMBER_ASSIGN_OR_RETURN(std::string text, workers::ReadCheckpointConfig(r->path));
  EMBER_ASSIGN_OR_RETURN(r->config, ParseConfig(text, r->path + "/manifest.json#config"));
  if (IsSessionModel(r->config))
    return Status::InvalidArgument(r->path + ": a session model's checkpoint (" +
                                   models::ModelKindName(r->config.model()) +
                                   "); ember export and serve cover CTR models, ember eval scores it");
  ConfigureThreads(threads > 0 ? threads : r->config.threads);
  EMBER_ASSIGN_OR_RETURN(r->trainer_config, MakeTrainerConfig(r->config));
  // The tables' sizes come from the checkpoint: what a budget chose and OptEmbed's widths.
  EMBER_RETURN_IF_ERROR(workers::ApplyCheckpointEmbedding(r->path, &r->trainer_config));
  if (reads_ids) EMBER_RETURN_IF_ERROR(ResolveFrequentValues(r.get()));
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
Result<RunMetrics> EvalExport(const std::string& model_path, const std::string& data, int threads,
                              const std::string& dense_precision, std::ostream& out) {
  if (data.empty()) return Status::InvalidArgument("evaluating an exported model needs --data");
  ConfigureThreads(threads);
  EMBER_ASSIGN_OR_RETURN(auto model, serving::ServingModel::Load(model_path, "cpu", dense_precision));
  data::CriteoOptions o;
  o.path = data;
  o.batch_size = 8192;
  o.num_dense = model->num_dense();
  o.num_sparse = model->num_sparse();
  o.schema = std::make_shared<data::Schema>(model->schema());
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
  std::snprintf(buf, sizeof(buf), "%s (export, %s rows, %s dense layers) on %s: %llu samples, AUC %.5f, logloss %.5f\n",
                model_path.c_str(), embedding::ExportPrecisionName(model->file().precision()),
                model->dense_precision().c_str(), data.c_str(), static_cast<unsigned long long>(m.eval_samples), m.auc,
                m.logloss);
  out << buf;
  return m;
}
}  // namespace

Result<RunMetrics> RunEval(const std::string& checkpoint, const std::string& data_path, int threads, std::ostream& out,
                           const std::string& dense_precision) {
  if (IsRegularFile(checkpoint)) return EvalExport(checkpoint, data_path, threads, dense_precision, out);
  if (dense_precision != "fp32")
    return Status::InvalidArgument("--dense-precision " + dense_precision +
                                   ": an exported model's option (--model FILE); a checkpoint evaluates at fp32");
  {
    EMBER_ASSIGN_OR_RETURN(const std::string path, workers::ResolveCheckpoint(checkpoint));
    EMBER_ASSIGN_OR_RETURN(std::string text, workers::ReadCheckpointConfig(path));
    EMBER_ASSIGN_OR_RETURN(auto config, ParseConfig(text, path + "/manifest.json#config"));
    if (IsSessionModel(config)) return RunSessionEval(path, std::move(config), data_path, threads, out);
  }
  EMBER_ASSIGN_OR_RETURN(auto r, Restore(checkpoint, threads, /*reads_ids=*/true));
  EMBER_RETURN_IF_ERROR(ResolveBudgetVocabulary(r.get()));
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

Status RunFlatten(const std::string& in_path, const std::string& out_path, std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(auto f, embedding::ExportFile::Open(in_path));
  EMBER_RETURN_IF_ERROR(
      PosixEnv()->WriteFileAtomic(out_path, std::string_view(reinterpret_cast<const char*>(f->data()), f->size())));
  out << "wrote " << out_path << ": the full export of " << in_path << " (" << f->chain().size() << " file"
      << (f->chain().size() == 1 ? "" : "s") << " resolved, " << f->size() << " bytes)\n";
  return Status::Ok();
}

Result<ExportReport> RunExport(const std::string& checkpoint, const std::string& out_path,
                               const std::string& precision_name, std::ostream& out, const std::string& delta_parent) {
  EMBER_ASSIGN_OR_RETURN(auto precision, embedding::ParseExportPrecision(precision_name));
  EMBER_ASSIGN_OR_RETURN(auto r, Restore(checkpoint, 0, /*reads_ids=*/false));
  // The budget a full table was held to, where data.train is still there to count it (the export
  // itself needs no data: serving reads the out-of-vocabulary rows for values without a row).
  (void)ResolveBudgetVocabulary(r.get());
  embedding::ExportWriter writer(precision);
  EMBER_RETURN_IF_ERROR(r->trainer->Export(&writer));
  EMBER_ASSIGN_OR_RETURN(auto stats, r->ps->Stats());
  ExportReport report;
  report.path = out_path;
  report.held_param_bytes = HeldParamBytes(stats);
  EMBER_RETURN_IF_ERROR(r->ps->ExportTables(&writer));
  {
    EMBER_ASSIGN_OR_RETURN(auto model_plan, PlanModel(r->trainer_config));
    report.planned_param_bytes = model_plan.total.param_bytes;
    // The budget the run was held to (OptEmbed's plan counts every row; its search prunes to this).
    if (r->budget_bytes) {
      report.budget_bytes = r->budget_bytes;
    } else if (const embedding::Budget& budget = r->config.budget;
               budget.set() && !(r->trainer_config.embedding.vocabulary && r->config.vocab.empty())) {
      // (A full table's budget is measured against data.train's every value, unknown here.)
      const uint64_t full = model_plan.total.full_bytes;
      report.budget_bytes = std::min(
          full, budget.bytes ? budget.bytes : static_cast<uint64_t>(budget.fraction * static_cast<double>(full)));
    }
  }
  if (delta_parent.empty()) {
    EMBER_ASSIGN_OR_RETURN(report.summary, writer.Write(out_path));
  } else {
    EMBER_ASSIGN_OR_RETURN(report.summary, writer.WriteDelta(out_path, delta_parent));
  }
  const auto& sm = report.summary;
  out << "exported " << r->path << " to " << out_path << " (" << embedding::ExportPrecisionName(precision) << " rows"
      << (delta_parent.empty() ? "" : "; a delta against " + delta_parent + ": rows changed since it, keys evicted")
      << ")\n\ntable  rows         " << (delta_parent.empty() ? "" : "evicted      ")
      << "values        keys, scales, masks\n";
  char buf[256];
  for (const auto& t : sm.tables) {
    std::string evicted;
    if (!delta_parent.empty()) {
      std::snprintf(buf, sizeof(buf), "%-12llu ", static_cast<unsigned long long>(t.evicted));
      evicted = buf;
    }
    std::snprintf(buf, sizeof(buf), "%-6u %-12llu %s%-13s %s\n", t.id, static_cast<unsigned long long>(t.rows),
                  evicted.c_str(), embedding::FormatBytes(static_cast<double>(t.value_bytes)).c_str(),
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
        << r->config.budget_text << " of the full table)\n";
  return report;
}

Status RunServe(const std::string& model_path, const serving::ServeOptions& options, std::ostream& out,
                const std::function<void(int port)>& wait) {
  EMBER_RETURN_IF_ERROR(serving::ValidateServeOptions(options).WithContext("ember serve"));
  if (options.forward_workers > 1) {  // passes side by side, each on one thread
    SetBlasThreads(1);
    torch::set_num_threads(1);
  }
  // A directory: its newest model, and every newer one as it appears (serving/model_dir.h).
  std::unique_ptr<serving::ModelWatcher> watcher;
  std::shared_ptr<const serving::ServingModel> model;
  if (std::filesystem::is_directory(model_path)) {
    watcher = std::make_unique<serving::ModelWatcher>(model_path, options.device, options.dense_precision,
                                                      options.poll_seconds,
                                                      [&out](const std::string& line) { out << line << std::endl; });
    EMBER_ASSIGN_OR_RETURN(model, watcher->LoadFirst());
  } else {
    EMBER_ASSIGN_OR_RETURN(auto loaded,
                           serving::ServingModel::Load(model_path, options.device, options.dense_precision));
    model = std::move(loaded);
  }
  serving::PredictionServer server(model, options);
  EMBER_RETURN_IF_ERROR(server.Start().WithContext("ember serve"));
  out << "serving " << model->file().path() << " (" << model->kind() << ", " << model->rows() << " rows, "
      << embedding::FormatBytes(static_cast<double>(model->file().size())) << ") on http://" << options.bind << ":"
      << server.port() << " (POST /v1/predict, GET /healthz, GET /metrics)"
      << (watcher ? "; watching " + model_path + " for newer models" : std::string()) << std::endl;
  if (watcher) watcher->Start(&server);
  model.reset();  // the server holds the live one (and swaps it)
  wait(server.port());
  if (watcher) watcher->Stop();
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

Status RunPrepare(const RunConfig& c, std::ostream& out) {
  if (!c.schema)
    return Status::InvalidArgument("ember prepare reads CTR data (data.format \"" + c.format + "\" has none)");
  if (c.train.empty()) return Status::InvalidArgument("data.train is not set");
  for (const auto& [key, path] : {std::pair<const char*, const std::string*>{"data.train", &c.train},
                                  {"data.valid", &c.valid},
                                  {"data.test", &c.test}}) {
    if (path->empty()) continue;
    data::CriteoOptions o = MakeReaderOptions(c, *path, true);
    const std::string cache = data::CachePath(o, c.cache_dir);
    const std::string stale = data::CacheStaleness(o, cache);
    if (stale.empty()) {
      out << key << ": " << cache << " is up to date\n";
      continue;
    }
    if (!c.cache_dir.empty()) EMBER_RETURN_IF_ERROR(MakeDirs(c.cache_dir));
    auto built = data::BuildCache(o, cache);
    if (!built.ok()) return built.status().WithContext(key);
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%s: %llu rows into %s (%.1f MiB) in %.2fs, %.0f rows/s parsed (%s)%s\n", key,
                  static_cast<unsigned long long>(built->rows), cache.c_str(),
                  static_cast<double>(built->bytes) / (1 << 20), built->seconds,
                  static_cast<double>(built->rows) / std::max(built->seconds, 1e-9), stale.c_str(),
                  built->bad_lines ? (", " + std::to_string(built->bad_lines) + " bad lines skipped").c_str() : "");
    out << buf;
  }
  return Status::Ok();
}

Status RunVocab(const VocabOptions& o, std::ostream& out) {
  if (o.cut.min_count < 1) return Status::InvalidArgument("--min-count must be >= 1");
  data::CriteoOptions opts;
  opts.path = o.data;
  opts.batch_size = 4096;
  opts.num_dense = o.num_dense;
  opts.num_sparse = o.num_sparse;
  if (!o.config.empty()) {
    EMBER_ASSIGN_OR_RETURN(RunConfig c, LoadConfig(o.config));
    if (!c.schema) return Status::InvalidArgument(o.config + ": data.format \"" + c.format + "\" has no fields");
    opts.num_dense = c.trainer.model.num_dense;
    opts.num_sparse = c.num_sparse;
    opts.schema = c.schema;
  }
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
