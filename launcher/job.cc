// The training job (job.h), for one process and every rank of a cluster.
#include "ember/launcher/job.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "ember/common/file.h"
#include "ember/common/progress.h"
#include "ember/common/sysinfo.h"
#include "ember/data/cache.h"
#include "ember/data/prefetch.h"
#include "ember/data/sharded.h"
#include "ember/embedding/export.h"
#include "ember/embedding/plan.h"
#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/serving/model_dir.h"
#include "epoch_choice.h"
#include "step_hooks.h"
#include "stream_gate.h"

namespace ember::launcher {
namespace {

// A count summed over the workers, exactly (16-bit limbs: exact in float sums of up to 256 workers).
Result<uint64_t> SumOverWorkers(workers::Collective* collective, uint64_t v) {
  float limbs[4];
  for (int i = 0; i < 4; ++i) limbs[i] = static_cast<float>((v >> (16 * i)) & 0xffff);
  EMBER_RETURN_IF_ERROR(collective->AllReduceSum(limbs, 4));
  uint64_t sum = 0;
  for (int i = 0; i < 4; ++i) sum += static_cast<uint64_t>(limbs[i]) << (16 * i);
  return sum;
}

// The lead's `data` on every worker (the others' contribute zeros to the sum).
Status ShareFromLead(workers::Collective* collective, float* data, size_t n) {
  if (collective->rank() != 0) std::fill(data, data + n, 0.0f);
  return collective->AllReduceSum(data, n);
}

// Every worker learns whether any failed `what`, so that none waits for one that has left.
Status AgreeOk(workers::Collective* collective, const Status& mine, const std::string& what) {
  float failed = mine.ok() ? 0.0f : 1.0f;
  EMBER_RETURN_IF_ERROR(collective->AllReduceSum(&failed, 1));
  if (!mine.ok()) return mine;
  if (failed > 0) return Status::FailedPrecondition(what + " failed on another worker");
  return Status::Ok();
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

void Linger(const RunConfig& c, monitoring::MetricsExporter* exporter, std::ostream& out) {
  if (!exporter || c.monitoring_linger_s <= 0) return;
  out << "serving metrics for " << c.monitoring_linger_s << " s more (monitoring.linger_s)" << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(c.monitoring_linger_s));
}

// With --resume: checkpoint.dir's newest complete checkpoint, whose table sizes are applied to
// *tc; "" without --resume.
Result<std::string> PrepareResume(const RunConfig& c, workers::TrainerConfig* tc) {
  if (!c.resume) return std::string();
  if (c.checkpoint_dir.empty()) return Status::InvalidArgument("--resume needs checkpoint.dir");
  if (tc->embedding.method == embedding::Method::kOptEmbed)
    return Status::InvalidArgument(
        "--resume: embedding.method = \"optembed\" trains in stages (supernet, search, retraining); resuming "
        "one is not supported");
  auto path = workers::ResolveCheckpoint(c.checkpoint_dir);
  if (!path.ok()) return path.status().WithContext("--resume");
  // The table sizes the checkpoint was trained with, so that ids map to the same rows, and its
  // model: with first-order weights or without, whatever model.first_order's auto says now.
  EMBER_RETURN_IF_ERROR(workers::ApplyCheckpointEmbedding(*path, tc));
  if (c.first_order && *c.first_order != tc->model.first_order)
    return Status::InvalidArgument("--resume: " + *path + " holds a " + models::ModelKindName(tc->model.kind) +
                                   (tc->model.first_order ? " with" : " without") +
                                   " first-order weights; model.first_order = " + (*c.first_order ? "true" : "false") +
                                   " cannot continue it (leave model.first_order unset to take the checkpoint's)");
  return path;
}

// OptEmbed's stage 2 on a trained supernet: checkpoints it (checkpoint.dir), searches widths and
// thresholds on data.valid under the budget, fills the search fields of *m, prints and records
// the result (optembed-search.json).
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

// The CTR job's state between its parts.
class CtrJob {
 public:
  CtrJob(const RunConfig& c, const JobContext& ctx)
      : c_(c),
        ctx_(ctx),
        coll_(ctx.collective),
        worker_(coll_->rank()),
        workers_(coll_->size()),
        lead_(worker_ == 0),
        log_(lead_ ? *ctx.out : quiet_) {}

  Result<RunMetrics> Run() {
    if (!c_.export_dir.empty() && c_.checkpoint_dir.empty() && dynamic_cast<ps::RemoteClient*>(ctx_.ps))
      return Status::InvalidArgument(
          "export.dir with PS servers needs checkpoint.dir: the servers write their rows there for the export");
    if (c_.follow && c_.epochs != 1)
      return Status::InvalidArgument("data.follow trains one endless pass: train.epochs must be 1");
    EMBER_ASSIGN_OR_RETURN(tc_, MakeTrainerConfig(c_, workers_));
    if (RowsCarryOver(c_))
      log_ << "epochs 2-" << c_.epochs << " train the rows and first-order weights against the dense layers of epoch 1"
           << " (train.reset_rows never, train.lr_decay " << tc_.dense_lr_decay << ", embedding.initial_accumulator "
           << tc_.embedding.optimizer.initial_accumulator << ")" << std::endl;
    else if (c_.epochs > 1 && c_.reset_rows == workers::RowReset::kAuto &&
             RowResetOf(c_) == workers::RowReset::kEachEpoch)
      log_ << "epochs 2-" << c_.epochs << " restart the embedding rows (train.reset_rows auto for "
           << models::ModelKindName(c_.model()) << ": each_epoch; train.lr_decay " << tc_.dense_lr_decay
           << ", embedding.initial_accumulator " << tc_.embedding.optimizer.initial_accumulator << ")" << std::endl;
    else if (CapsRareRowSteps(c_) && c_.trainer.embedding.optimizer.initial_accumulator == RunConfig::kAuto)
      log_ << "embedding.initial_accumulator " << tc_.embedding.optimizer.initial_accumulator << " (auto for "
           << models::ModelKindName(c_.model()) << ": rarely seen rows move with their gradients, docs/quality.md)"
           << std::endl;
    EMBER_RETURN_IF_ERROR(Resolve());
    EMBER_ASSIGN_OR_RETURN(const std::string resume_from, PrepareResume(c_, &tc_));
    if (!c_.first_order && tc_.model.first_order && resume_from.empty())
      log_ << "model.first_order true (auto for " << models::ModelKindName(c_.model())
           << ": first-order weights beside rows that learn the pairs, docs/quality.md); rows start in ±"
           << tc_.embedding.init_scale << ", embedding.lr " << tc_.embedding.optimizer.lr << std::endl;
    else if (!c_.first_order && !resume_from.empty() && RowsMeetInProducts(c_))
      log_ << "model.first_order " << (tc_.model.first_order ? "true" : "false") << " (auto: as " << resume_from
           << " was trained)" << std::endl;
    EMBER_RETURN_IF_ERROR(Plan());
    // Declared after the PS (the caller's): stopped (no more scrapes) before the PS goes.
    EMBER_ASSIGN_OR_RETURN(exporter_, StartMetrics(c_, "train", ctx_.rank, log_));
    recorder_ = exporter_ ? &exporter_->registry() : nullptr;
    WatchTables();
    EMBER_ASSIGN_OR_RETURN(trainer_, workers::Trainer::Create(tc_, ctx_.ps, coll_, recorder_));
    watch_->Set(*trainer_);
    if (!resume_from.empty()) {
      // The lead loads the rows onto the shards (any number of them: rows are re-placed); every
      // worker restores the dense model, its optimizer, the step and the data position.
      EMBER_RETURN_IF_ERROR(trainer_->RestoreCheckpoint(resume_from, /*load_shards=*/lead_));
      log_ << "resumed from " << resume_from << " at step " << trainer_->step() << " (epoch "
           << trainer_->position().epoch + 1 << ", " << trainer_->position().examples << " examples in)" << std::endl;
      EMBER_RETURN_IF_ERROR(coll_->Barrier());
      choice_.Resume(*trainer_);
      ContinueExportChain();
    }
    validate_ = !c_.valid.empty() && tc_.embedding.method != embedding::Method::kOptEmbed;
    EMBER_RETURN_IF_ERROR(TrainEpochs(c_.epochs, trainer_->position()));
    if (tc_.embedding.method == embedding::Method::kOptEmbed && !hooks_.stopped)
      EMBER_RETURN_IF_ERROR(SearchAndRetrain());
    m_.samples_per_sec = m_.train_seconds > 0 ? static_cast<double>(m_.train_samples) / m_.train_seconds : 0;
    if (lead_) EMBER_RETURN_IF_ERROR(Finish());
    EMBER_RETURN_IF_ERROR(coll_->Barrier());
    m_.peak_rss_bytes = PeakRssBytes();
    log_ << "peak memory " << embedding::FormatBytes(static_cast<double>(m_.peak_rss_bytes)) << "\n";
    m_.report = lead_;
    Linger(c_, exporter_.get(), log_);
    return m_;
  }

 private:
  // The lead counts field vocabularies (where the method or budget needs them, and with metrics
  // on, for the compression ratio) into the cache; the others then read it instead of counting
  // the file again.
  Status Resolve() {
    auto resolve = [&]() -> Status {
      EMBER_ASSIGN_OR_RETURN(resolved_, ResolveEmbedding(c_, &tc_, /*count_always=*/c_.monitoring_port > 0));
      return Status::Ok();
    };
    if (lead_) {
      EMBER_RETURN_IF_ERROR(AgreeOk(coll_, resolve(), "counting the vocabulary of data.train"));
    } else {
      EMBER_RETURN_IF_ERROR(AgreeOk(coll_, Status::Ok(), "counting the vocabulary of data.train"));
      EMBER_RETURN_IF_ERROR(resolve());
    }
    if (!resolved_.note.empty()) log_ << resolved_.note << "\n";
    if (resolved_.vocab) c_.budget_vocab = resolved_.vocab;  // every reader of the job applies it
    return Status::Ok();
  }

  Status Plan() {
    m_.method = embedding::MethodName(tc_.embedding.method);
    m_.budget_bytes = resolved_.budget_bytes;
    EMBER_ASSIGN_OR_RETURN(auto model_plan, PlanModel(tc_));
    const embedding::MemoryPlan& plan = model_plan.total;
    m_.full_bytes = resolved_.full_bytes ? resolved_.full_bytes : plan.full_bytes;
    m_.planned_param_bytes = plan.param_bytes;
    m_.planned_resident_bytes = plan.resident_bytes;
    log_ << "embedding: " << embedding::MethodName(tc_.embedding.method) << ", params "
         << embedding::FormatBytes(plan.param_bytes)
         << (m_.full_bytes ? " (" + std::to_string(static_cast<double>(plan.param_bytes) / m_.full_bytes) + " of full)"
                           : std::string())
         << (m_.budget_bytes ? ", budget " + embedding::FormatBytes(m_.budget_bytes) : std::string()) << "\n";
    return Status::Ok();
  }

  // The lead's metrics show the whole job's tables (rows, shard skew).
  void WatchTables() {
    watch_ = std::make_shared<TableWatch>();
    watch_->ps = ctx_.ps;
    if (!exporter_ || !lead_) return;
    auto& reg = exporter_->registry();
    reg.SetGauge("embedding_budget_bytes", static_cast<double>(m_.budget_bytes));
    reg.AddCollector([watch = watch_](monitoring::Recorder& r) {
      std::lock_guard<std::mutex> lock(watch->mu);
      auto stats = watch->ps->Stats();
      if (stats.ok()) workers::RecordTableMetrics(*stats, watch->infos, &r);
    });
  }

  // Epochs [from.epoch, epochs) of data.train, this worker's share of each (batch w of every W);
  // m_.train_samples becomes every worker's.
  Status TrainEpochs(int epochs, workers::DataPosition from) {  // by value: the trainer's own position changes
    workers::ProgressOptions progress = Progress(c_);
    progress.enabled = progress.enabled && lead_;
    uint64_t samples = 0;
    for (int e = static_cast<int>(from.epoch); e < epochs; ++e) {
      // A resumed epoch's rows were reset when it began (before the checkpoint).
      // OptEmbed's retraining on inherited rows keeps them (a reset would throw the supernet's away).
      const bool inherited = retraining_ && c_.retrain_init == "inherit";
      if (e > 0 && (e != from.epoch || from.examples == 0) && !inherited &&
          RowResetOf(c_) == workers::RowReset::kEachEpoch)
        EMBER_RETURN_IF_ERROR(ResetRows());
      auto opts = MakeReaderOptions(c_, c_.train, true);
      opts.skip_examples = e == from.epoch ? from.examples : 0;  // before the split among workers
      if (e == from.epoch && from.examples > 0 && from.cursor.valid && !c_.cache)
        opts.resume = from.cursor;  // seek there instead of reading the examples again
      // A followed stream under mpirun: the workers agree before each step that all hold a batch.
      const bool gated = c_.follow && workers_ > 1;
      auto gate_stop = std::make_shared<std::atomic<bool>>(false);
      if (gated) opts.stop = [gate_stop] { return StopRequested() || gate_stop->load(); };
      EMBER_ASSIGN_OR_RETURN(auto inner, data::OpenDataReader(opts, c_.cache, c_.cache_dir));
      std::unique_ptr<data::BatchReader> reader = std::make_unique<data::PrefetchingReader>(std::move(inner));
      if (workers_ > 1) reader = std::make_unique<data::ShardedReader>(std::move(reader), worker_, workers_);
      if (gated)
        reader = std::make_unique<StreamGate>(std::move(reader), coll_, std::min(c_.follow_poll_s, 0.1), gate_stop,
                                              [] { return StopRequested(); });
      EMBER_ASSIGN_OR_RETURN(
          auto stats, trainer_->TrainEpoch(reader.get(), e, epochs, progress,
                                           MakeStepHooks(trainer_.get(), ctx_.ps, coll_, c_, e, opts.skip_examples,
                                                         /*lead=*/lead_, &hooks_)));
      samples += stats.samples;
      m_.train_seconds += stats.seconds;
      m_.bad_lines += reader->bad_lines();
      if (c_.follow) hooks_.stopped = true;  // a followed stream ends only when the job is stopped
      if (stats.stopped || c_.follow) {      // SIGTERM / SIGINT: the position is where the epoch stopped
        EMBER_ASSIGN_OR_RETURN(const uint64_t all, SumOverWorkers(coll_, samples));
        m_.train_samples += all;
        return Status::Ok();
      }
      if (validate_) {
        bool stop = false;
        EMBER_RETURN_IF_ERROR(choice_.Validate(trainer_.get(), e, &stop));
        if (stop) break;
      }
    }
    if (validate_) EMBER_RETURN_IF_ERROR(choice_.KeepBest(trainer_.get(), &m_));
    trainer_->set_position({epochs, 0, {}});
    EMBER_ASSIGN_OR_RETURN(const uint64_t all, SumOverWorkers(coll_, samples));
    m_.train_samples += all;
    if (all == 0 && from.epoch == 0 && from.examples == 0)
      return Status::InvalidArgument(
          "no training examples read from " + c_.train +
          (m_.bad_lines ? " (" + std::to_string(m_.bad_lines) + " malformed lines skipped)" : ""));
    return Status::Ok();
  }

  // train.reset_rows between epochs: once every worker's pushes are in, the lead resets the shards'
  // rows, and no worker pulls before it is done.
  Status ResetRows() {
    EMBER_RETURN_IF_ERROR(coll_->Barrier());
    const Status st = lead_ ? trainer_->ResetRows() : Status::Ok();
    return AgreeOk(coll_, st, "resetting the embedding rows for the next epoch");
  }

  // OptEmbed's stages 2 and 3. The supernet's thresholds are the same on every worker
  // (all-reduced with the model). The lead searches while the others wait for its widths and
  // thresholds; every worker builds the retraining trainer, the lead moves the kept rows on the
  // shards, and all retrain.
  Status SearchAndRetrain() {
    const uint32_t next = NextTableId(ctx_.ps->Stats());
    // Under a budget, optembed.fallback_share of it becomes a hashed table for the pruned values
    // (weights counted as the search counts kept rows); the search keeps rows within the rest,
    // and what it leaves unused goes to the fallback table too.
    const uint64_t budget = resolved_.main_budget_bytes;
    // A fallback row is as wide as the main group's slots (LR's only group is 1 wide).
    const uint64_t row_bytes = static_cast<uint64_t>(trainer_->method(0).slot_dim()) * sizeof(float);
    uint64_t search_budget = budget, fallback_rows = 0;
    const auto& emb = tc_.embedding;
    const bool admission =
        emb.lifecycle.admits() ||
        std::any_of(emb.field_admit_after.begin(), emb.field_admit_after.end(), [](uint32_t k) { return k > 1; });
    const bool fallback = budget > 0 && tc_.optembed.fallback_share > 0 && !admission;
    if (fallback) {
      fallback_rows = static_cast<uint64_t>(tc_.optembed.fallback_share * static_cast<double>(budget)) / row_bytes;
      search_budget -= fallback_rows * row_bytes;
    }
    workers::OptEmbedArch arch;
    Status searched = Status::Ok();
    if (lead_) {
      auto found = SearchOptEmbedStage(trainer_.get(), c_, search_budget, &m_, log_);
      if (found.ok()) arch = *found;
      searched = found.status();
    }
    EMBER_RETURN_IF_ERROR(AgreeOk(coll_, searched, "the OptEmbed search"));
    const size_t F = tc_.fields.size();
    // Widths, thresholds and the fallback's rows (in two 24-bit halves, exact in floats).
    std::vector<float> shared(2 * F + 2, 0.0f);
    if (lead_) {
      for (size_t f = 0; f < F; ++f) {
        shared[f] = static_cast<float>(arch.widths[f]);
        shared[F + f] = arch.thresholds[f];
      }
      // Where the search keeps every row, nothing reads a fallback.
      uint64_t kept = 0, total = 0;
      for (size_t f = 0; f < arch.kept_rows.size(); ++f) kept += arch.kept_rows[f];
      for (uint64_t t : arch.total_rows) total += t;
      fallback_rows = fallback && kept < total ? (budget - std::min(budget, arch.bytes)) / row_bytes : 0;
      shared[2 * F] = static_cast<float>(fallback_rows >> 24);
      shared[2 * F + 1] = static_cast<float>(fallback_rows & 0xffffff);
    }
    EMBER_RETURN_IF_ERROR(ShareFromLead(coll_, shared.data(), shared.size()));
    fallback_rows = (static_cast<uint64_t>(shared[2 * F]) << 24) | static_cast<uint64_t>(shared[2 * F + 1]);
    arch.widths.assign(F, 0);
    arch.thresholds.assign(F, 0);
    for (size_t f = 0; f < F; ++f) {
      arch.widths[f] = static_cast<int>(shared[f]);
      arch.thresholds[f] = shared[F + f];
    }
    workers::TrainerConfig rc = tc_;
    rc.embedding.field_widths = arch.widths;
    rc.embedding.first_table = next;
    if (fallback_rows > 0) {
      rc.embedding.fallback = embedding::Fallback::kHash;
      rc.embedding.fallback_rows = fallback_rows;
      if (lead_) log_ << "optembed retraining: pruned values read a hashed table of " << fallback_rows << " rows\n";
    }
    EMBER_ASSIGN_OR_RETURN(auto retrainer, workers::Trainer::Create(rc, ctx_.ps, coll_, recorder_));
    retrainer->set_step(trainer_->step());  // the shards refuse steps that move back
    if (lead_)
      EMBER_RETURN_IF_ERROR(retrainer->AdoptOptEmbedRows(*trainer_, arch.thresholds, c_.retrain_init == "fresh"));
    EMBER_RETURN_IF_ERROR(coll_->Barrier());
    trainer_ = std::move(retrainer);
    watch_->Set(*trainer_);
    m_.train_samples = 0;
    m_.train_seconds = 0;
    retraining_ = true;
    return TrainEpochs(c_.retrain_epochs > 0 ? c_.retrain_epochs : c_.epochs, {});
  }

  // The lead's report, checkpoint and test.
  // A resumed job's first delta continues from the newest export at or before its step (later ones
  // belong to the run that was cut short; one this job rewrites no longer resolves them).
  void ContinueExportChain() {
    if (!c_.export_delta || c_.export_dir.empty()) return;
    for (const auto& [step, path] : serving::ListModels(c_.export_dir)) {
      if (step > trainer_->step()) continue;
      hooks_.last_export_path = path;
      hooks_.deltas_since_full = static_cast<int64_t>(embedding::ExportChainFiles(path).size()) - 1;
      return;
    }
  }

  Status Finish() {
    EMBER_RETURN_IF_ERROR(RecordTables(ctx_.ps, &m_));
    log_ << "trained " << m_.train_samples << " samples"
         << (workers_ > 1 ? " on " + std::to_string(workers_) + " workers" : "") << " in "
         << ProgressReporter::FormatDuration(m_.train_seconds) << " (" << static_cast<uint64_t>(m_.samples_per_sec)
         << " samples/s); tables hold " << m_.table_rows << " rows, params "
         << embedding::FormatBytes(static_cast<double>(m_.param_bytes)) << ", "
         << embedding::FormatBytes(static_cast<double>(m_.table_bytes)) << " with optimizer state and index\n";
    if (m_.bad_lines) log_ << "skipped " << m_.bad_lines << " malformed lines (data.on_bad_line = \"skip\")\n";
    // The checkpoint first: a failing evaluation must not cost the trained model.
    if (!c_.checkpoint_dir.empty()) {
      EMBER_ASSIGN_OR_RETURN(m_.checkpoint, WriteCheckpoint(trainer_.get(), c_));
      log_ << "checkpoint written to " << m_.checkpoint << "\n";
    }
    if (!c_.export_dir.empty() && hooks_.last_export_step != trainer_->step()) {
      EMBER_ASSIGN_OR_RETURN(const std::string path, ExportWhileTraining(trainer_.get(), ctx_.ps, c_, &hooks_));
      log_ << "exported to " << path << "\n";
    }
    if (hooks_.stopped) {
      const auto& p = trainer_->position();
      log_ << "stopped by a signal after step " << trainer_->step() << " (epoch " << p.epoch + 1 << ", " << p.examples
           << " examples in)" << (c_.checkpoint_dir.empty() ? "" : "; `ember train --resume` continues from there")
           << "\n";
      m_.stopped = true;
      return Status::Ok();  // no test: the run did not finish
    }
    if (!c_.test.empty()) EMBER_RETURN_IF_ERROR(EvaluateTest(trainer_.get(), c_, &m_, log_));
    return Status::Ok();
  }

  RunConfig c_;  // a copy: Resolve() may add a budget's vocabulary
  const JobContext& ctx_;
  workers::Collective* coll_;
  const int worker_, workers_;
  const bool lead_;
  bool retraining_ = false;  // OptEmbed's stage 3
  std::ostringstream quiet_;
  std::ostream& log_;
  workers::TrainerConfig tc_;
  ResolvedEmbedding resolved_;
  RunMetrics m_;
  std::unique_ptr<monitoring::MetricsExporter> exporter_;
  monitoring::Recorder* recorder_ = nullptr;
  std::shared_ptr<TableWatch> watch_;
  std::unique_ptr<workers::Trainer> trainer_;
  // Epoch choice on data.valid (not under OptEmbed, whose search scores on it).
  bool validate_ = false;
  EpochChoice choice_{c_, coll_, log_};
  StepHookState hooks_;
};

Result<RunMetrics> RunSessionJob(const RunConfig& c, const JobContext& ctx) {
  workers::Collective* coll = ctx.collective;
  std::ostringstream quiet;
  std::ostream& log = coll->rank() == 0 ? *ctx.out : quiet;
  EMBER_ASSIGN_OR_RETURN(auto d, LoadSessionData(c, log));
  EMBER_ASSIGN_OR_RETURN(auto exporter, StartMetrics(c, "train", ctx.rank, log));
  RunMetrics m;
  EMBER_RETURN_IF_ERROR(RunSessionWorker(c, d, ctx.ps, coll, exporter ? &exporter->registry() : nullptr, log, &m));
  EMBER_ASSIGN_OR_RETURN(m.train_samples, SumOverWorkers(coll, m.train_samples));
  m.samples_per_sec = m.train_seconds > 0 ? static_cast<double>(m.train_samples) / m.train_seconds : 0;
  if (coll->size() > 1) log << "trained " << m.train_samples << " examples on " << coll->size() << " workers\n";
  EMBER_RETURN_IF_ERROR(coll->Barrier());
  m.peak_rss_bytes = PeakRssBytes();
  m.report = coll->rank() == 0;
  return m;
}

// Every data file opens and its first examples parse before any training: a bad data.test is
// not found an hour later, after the run it was meant to score.
Status CheckInputs(const RunConfig& c) {
  for (const auto& [key, path] : {std::pair<const char*, const std::string*>{"data.train", &c.train},
                                  {"data.valid", &c.valid},
                                  {"data.test", &c.test}}) {
    if (path->empty() || (c.follow && path == &c.train)) continue;  // a followed stream may not have begun
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

}  // namespace

Result<RunMetrics> RunJob(const RunConfig& c, const JobContext& ctx) {
  if (IsSessionModel(c)) return RunSessionJob(c, ctx);
  CtrJob job(c, ctx);
  return job.Run();
}

Result<RunMetrics> RunTrain(const RunConfig& c, std::ostream& out) {
  if (c.train.empty()) return Status::InvalidArgument("data.train is not set");
  EMBER_RETURN_IF_ERROR(CheckSessionConfig(c));
  EMBER_RETURN_IF_ERROR(workers::ResolveDevice(c.trainer.device).status());  // before any work
  if (!IsSessionModel(c)) {
    EMBER_RETURN_IF_ERROR(CheckInputs(c));
    if (c.method() == embedding::Method::kOptEmbed && c.valid.empty())
      return Status::InvalidArgument(
          "embedding.method = \"optembed\" needs data.valid (its search scores widths on it)");
  }
  ConfigureThreads(c.threads);
  if (UnderMpi()) {
    EMBER_ASSIGN_OR_RETURN(auto world, MakeMpiRendezvous());
    return RunClusterRank(c, world.get(), out);
  }
  ps::InProcessClient ps(c.shards);
  workers::LocalCollective collective;
  JobContext ctx;
  ctx.ps = &ps;
  ctx.collective = &collective;
  ctx.out = &out;
  return RunJob(c, ctx);
}

}  // namespace ember::launcher
