#include "ember/workers/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "checkpoint_dir.h"
#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/common/metrics.h"
#include "ember/common/progress.h"
#include "ember/embedding/batch_ids.h"
#include "ember/models/optembed.h"
#include "trainer_internal.h"

namespace ember::workers {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

BackgroundThread::BackgroundThread() : thread_([this] { Loop(); }) {}

BackgroundThread::~BackgroundThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::future<Status> BackgroundThread::Run(std::function<Status()> job) {
  std::packaged_task<Status()> task(std::move(job));
  auto done = task.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(task));
  }
  cv_.notify_all();
  return done;
}

void BackgroundThread::Loop() {
  for (;;) {
    std::packaged_task<Status()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      task = std::move(jobs_.front());
      jobs_.pop_front();
    }
    task();
  }
}

Trainer::~Trainer() = default;

embedding::MethodConfig GroupMethodConfig(const embedding::MethodConfig& main, const models::EmbeddingGroupSpec& spec,
                                          bool secondary, bool hashed) {
  embedding::MethodConfig ec = main;
  ec.dim = spec.dim;
  if (secondary) {
    const embedding::Method instead = hashed ? embedding::Method::kHash : embedding::Method::kFull;
    if (ec.method == embedding::Method::kOptEmbed || ec.method == embedding::Method::kDsl) ec.method = instead;
    for (auto& m : ec.field_methods)
      if (m == embedding::Method::kDsl) m = instead;
    ec.field_widths.clear();
  }
  // First-order groups are 1 wide: unified probes them at embedding.first_order_chunks probes,
  // summed where more than one.
  if (spec.first_order && spec.dim % ec.chunks != 0) {
    ec.chunks = ec.method == embedding::Method::kUnified ? std::max(1, ec.first_order_chunks) : 1;
    ec.sum_probes = ec.chunks > 1;
    ec.field_chunks.clear();
  }
  return ec;
}

Result<std::vector<GroupMethod>> MakeGroupMethods(const TrainerConfig& config) {
  models::CtrModelConfig mc = config.model;
  mc.embedding_dim = config.embedding.dim;
  std::vector<GroupMethod> out;
  uint32_t next_table = config.embedding.first_table;
  for (const auto& gs : models::EmbeddingGroupsOf(mc)) {
    const bool secondary = !out.empty();
    embedding::MethodConfig ec = secondary && config.first_order_embedding
                                     ? *config.first_order_embedding
                                     : GroupMethodConfig(config.embedding, gs, secondary);
    ec.first_table = next_table;
    ec.seed = PairSeed(config.embedding.seed, next_table);
    if (gs.first_order) ec.optimizer = config.linear_optimizer;
    auto method = embedding::MakeMethod(ec, config.fields);
    if (!method.ok()) return method.status().WithContext("embedding group '" + gs.name + "'");
    for (const auto& spec : (*method)->tables())
      if (spec.id < next_table || spec.id >= next_table + (*method)->tables().size())
        return Status::Internal("method tables are not contiguous");
    next_table += static_cast<uint32_t>((*method)->tables().size());
    out.push_back({gs, std::move(ec), std::move(method).value()});
  }
  return out;
}

Result<std::unique_ptr<Trainer>> Trainer::Create(const TrainerConfig& config, ps::PsClient* ps, Collective* collective,
                                                 monitoring::Recorder* recorder) {
  std::unique_ptr<Trainer> t(new Trainer());
  t->config_ = config;
  t->ps_ = ps;
  t->collective_ = collective;
  t->recorder_ = recorder ? recorder : monitoring::NullRecorder();
  EMBER_ASSIGN_OR_RETURN(t->sync_, StepSync::Create(config.sync, collective));
  EMBER_ASSIGN_OR_RETURN(t->device_, ResolveDevice(config.device));
  t->stage_ = t->device_.is_cuda() || config.stage_rows;
  if (t->device_.is_cuda() && config.embedding.method == embedding::Method::kOptEmbed)
    return Status::InvalidArgument(
        "train.device = \"cuda\": OptEmbed's supernet and search run on the CPU only (use train.device = \"cpu\")");
  t->recorder_->SetGauge("train_staleness_bound", t->sync_.bound());
  t->recorder_->SetGauge("train_staleness_steps", 0);
  models::CtrModelConfig mc = config.model;
  mc.num_fields = static_cast<int>(config.fields.size());
  mc.embedding_dim = config.embedding.dim;
  {
    auto seeded = SeededInit(config.seed);  // the same initial dense model on every worker
    EMBER_ASSIGN_OR_RETURN(t->model_, models::MakeCtrModel(mc));
  }
  EMBER_RETURN_IF_ERROR(TorchCall("moving the model to the device", [&] { t->model_->to(t->device_); }));
  EMBER_ASSIGN_OR_RETURN(auto built, MakeGroupMethods(config));
  const auto groups = t->model_->embedding_groups();
  if (groups.size() != built.size())
    return Status::Internal("the model reads " + std::to_string(groups.size()) + " embedding groups, " +
                            std::to_string(built.size()) + " were planned");
  for (auto& gm : built) {
    const auto& gs = gm.spec;
    const embedding::MethodConfig& ec = gm.config;
    std::unique_ptr<embedding::EmbeddingMethod> method = std::move(gm.method);
    auto g = std::make_unique<Group>();
    g->method = method.get();
    g->config = ec;
    g->dim = method->slot_dim();
    g->max_probes = method->max_probes();
    g->first_table = ec.first_table;
    g->num_tables = method->tables().size();
    g->optembed_supernet = ec.method == embedding::Method::kOptEmbed && ec.field_widths.empty();
    g->first_order = gs.first_order;
    for (const auto& spec : method->tables()) g->dsl |= spec.kind == embedding::TableKind::kSparse;
    if (method->field_dim() != gs.dim)
      return Status::InvalidArgument("embedding group '" + gs.name + "': fields are " + std::to_string(g->max_probes) +
                                     " probes of " + std::to_string(g->dim) + " wide, model " +
                                     models::ModelKindName(mc.kind) + " needs " + std::to_string(gs.dim));
    g->widths.assign(static_cast<size_t>(method->num_fields()), gs.dim);
    for (auto& r : g->buffers) r.lookup = std::make_unique<embedding::BatchLookup>(method.get());
    if (g->optembed_supernet) {
      t->thresholds_ = torch::zeros({static_cast<int64_t>(config.fields.size())}, torch::kFloat).requires_grad_(true);
      t->threshold_optimizer_ = std::make_unique<torch::optim::SGD>(
          std::vector<torch::Tensor>{t->thresholds_}, torch::optim::SGDOptions(config.optembed.threshold_lr));
    }
    EMBER_RETURN_IF_ERROR(ps->CreateTables(method->tables()));
    t->groups_.push_back(std::move(g));
    t->methods_.push_back(std::move(method));
  }
  t->optimizer_ = MakeDenseOptimizer(config.dense_optimizer, t->model_->parameters(), config.dense_lr);
  return t;
}

Status Trainer::PrepareRows(const data::Batch& batch, bool training, int buffer, std::vector<ps::PullSlice>* slices,
                            LookupCounts* counts) {
  if (batch.num_sparse != static_cast<int>(config_.fields.size()))
    return Status::InvalidArgument("batch has " + std::to_string(batch.num_sparse) +
                                   " categorical fields, model expects " + std::to_string(config_.fields.size()));
  slices->clear();
  *counts = {};
  for (auto& gp : groups_) {
    Group& g = *gp;
    Group::Rows& r = g.buffers[buffer];
    embedding::BatchLookup& lookup = *r.lookup;
    embedding::PrepareLookup(batch, &lookup);
    // The leaf: one row per unique key (and fallback), plus an all-zero row for padding slots.
    // torch::empty + memset rather than torch::zeros: on the prefetch thread an ATen fill
    // would start an OpenMP team of its own.
    const int64_t leaf_rows = static_cast<int64_t>(lookup.leaf_rows());
    r.rows = torch::empty({leaf_rows, g.dim}, torch::TensorOptions(torch::kFloat).pinned_memory(device_.is_cuda()));
    float* rows = r.rows.data_ptr<float>();
    if (lookup.narrow() || lookup.padded())
      std::memset(rows, 0, static_cast<size_t>(leaf_rows * g.dim) * sizeof(float));
    lookup.ForEachTable([&](uint32_t table, size_t b, size_t e, bool admits) {
      ps::PullSlice s;
      s.table = table;
      s.keys = lookup.sorted_keys().data() + b;
      s.n = e - b;
      s.out = rows + b * g.dim;
      s.stride = static_cast<size_t>(g.dim);
      s.create_missing = training;
      if (admits) s.own = lookup.own() + b;
      slices->push_back(s);
    });
    counts->keys += lookup.keys();
    counts->unique += lookup.rows();
    counts->bytes += lookup.rows() * (sizeof(uint64_t) + static_cast<size_t>(g.dim) * sizeof(float));
  }
  return Status::Ok();
}

void Trainer::RecordPull(const LookupCounts& counts, double seconds, bool training) {
  const monitoring::Labels phase = {{"phase", training ? "train" : "eval"}};
  recorder_->Observe("ps_pull_seconds", seconds, phase);
  recorder_->AddCounter("ps_pull_rows_total", static_cast<double>(counts.unique), phase);
  recorder_->AddCounter("ps_pull_bytes_total", static_cast<double>(counts.bytes), phase);
  recorder_->AddCounter("lookup_keys_total", static_cast<double>(counts.keys), phase);
  recorder_->AddCounter("lookup_unique_keys_total", static_cast<double>(counts.unique), phase);
  if (training) {
    recorder_->SetGauge("lookup_keys_per_batch", static_cast<double>(counts.keys));
    recorder_->SetGauge("lookup_unique_ratio",
                        counts.keys ? static_cast<double>(counts.unique) / static_cast<double>(counts.keys) : 0.0);
  }
}

Status Trainer::FinishLookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs,
                             bool mask_rows) {
  inputs->clear();
  uint64_t admitting = 0, fell = 0;
  for (auto& gp : groups_) {
    Group& g = *gp;
    Group::Rows& r = g.now();
    // Keys the shards hold no row for read (and train) their fallback row instead.
    const auto fb = r.lookup->ApplyFallbacks();
    admitting += fb.admitting;
    fell += fb.fell;
    auto& slots = r.lookup->slots();
    r.index = torch::from_blob(slots.data(), {static_cast<int64_t>(slots.size())}, torch::kLong).clone();
    r.offsets = r.weights = torch::Tensor();
    if (r.lookup->bagged()) {
      auto& offsets = r.lookup->bag_offsets();
      auto& weights = r.lookup->bag_weights();
      r.offsets = torch::from_blob(offsets.data(), {static_cast<int64_t>(offsets.size())}, torch::kLong).clone();
      r.weights = torch::from_blob(weights.data(), {static_cast<int64_t>(weights.size())}, torch::kFloat).clone();
    }
    torch::Tensor index = r.index, offsets = r.offsets, weights = r.weights;
    r.leaf = r.rows;
    if (stage_) {  // host -> device, asynchronous from pinned memory
      r.leaf = r.rows.to(device_, /*non_blocking=*/true, /*copy=*/true);
      index = r.index.to(device_, /*non_blocking=*/true);
      if (offsets.defined()) {
        offsets = offsets.to(device_, /*non_blocking=*/true);
        weights = weights.to(device_, /*non_blocking=*/true);
      }
    }
    if (training) r.leaf.requires_grad_(true);
    models::GroupInput in;
    const int64_t width = static_cast<int64_t>(g.method->num_fields()) * g.max_probes * g.dim;
    in.values = models::GatherSlots(r.leaf, index, offsets, weights, static_cast<int64_t>(batch.size), width);
    if (g.method->sums_probes()) in.values = models::SumProbes(in.values, g.max_probes, g.dim);
    if (g.optembed_supernet && mask_rows)
      in.values = models::OptEmbedMask(in.values, thresholds_, g.dim, /*sample_dims=*/training);
    in.widths = g.widths;
    inputs->push_back(std::move(in));
  }
  if (admitting > 0) {
    const monitoring::Labels phase = {{"phase", training ? "train" : "eval"}};
    recorder_->AddCounter("embedding_admission_lookups_total", static_cast<double>(admitting), phase);
    recorder_->AddCounter("embedding_fallback_lookups_total", static_cast<double>(fell), phase);
    if (training)
      recorder_->SetGauge("embedding_fallback_ratio", static_cast<double>(fell) / static_cast<double>(admitting));
  }
  return Status::Ok();
}

Status Trainer::Lookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs,
                       bool mask_rows) {
  std::vector<ps::PullSlice> slices;
  LookupCounts counts;
  for (auto& gp : groups_) gp->current = 0;
  EMBER_RETURN_IF_ERROR(PrepareRows(batch, training, 0, &slices, &counts));
  const auto pull_start = Clock::now();
  uint64_t seen = 0;
  EMBER_RETURN_IF_ERROR(ps_->Pull(slices, {training ? sync_.PullWait(step_) : 0, &seen}));
  RecordPull(counts, std::chrono::duration<double>(Clock::now() - pull_start).count(), training);
  if (training) RecordStaleness(step_, seen);
  return FinishLookup(batch, training, inputs, mask_rows);
}

void Trainer::RecordStaleness(int64_t step, uint64_t clock) {
  recorder_->SetGauge("train_staleness_steps",
                      static_cast<double>(std::max<int64_t>(0, step - static_cast<int64_t>(clock))));
}

void Trainer::StartPrefetch(const data::Batch& next) {
  // The pull for the step after this one: into the other buffers, on a thread of its own.
  prefetch_.batch = &next;
  prefetch_.step = step_ + 1;
  const uint64_t wait = sync_.PullWait(step_ + 1);
  prefetch_.done = prefetch_thread_.Run([this, &next, wait] {
    std::vector<ps::PullSlice> slices;
    Status st = PrepareRows(next, /*training=*/true, 1 - groups_[0]->current, &slices, &prefetch_.counts);
    if (!st.ok()) return st;
    const auto start = Clock::now();
    st = ps_->Pull(slices, {wait, &prefetch_.clock});
    prefetch_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return st;
  });
}

Status Trainer::FinishPrefetch(const data::Batch& batch, std::vector<models::GroupInput>* inputs) {
  if (prefetch_.batch != &batch || prefetch_.step != step_)
    return Status::Internal("prefetched rows are for another batch");
  prefetch_.batch = nullptr;
  EMBER_RETURN_IF_ERROR(prefetch_.done.get());
  for (auto& gp : groups_) gp->current = 1 - gp->current;
  RecordPull(prefetch_.counts, prefetch_.seconds, /*training=*/true);
  RecordStaleness(step_, prefetch_.clock);
  return FinishLookup(batch, /*training=*/true, inputs, /*mask_rows=*/true);
}

Status Trainer::PushGradients(int64_t batch_examples) {
  std::vector<ps::PushSlice> slices;
  std::vector<torch::Tensor> keep;
  size_t rows = 0, bytes = 0;
  for (auto& gp : groups_) {
    Group& g = *gp;
    Group::Rows& r = g.now();
    torch::Tensor grad = r.leaf.grad();
    if (!grad.defined()) continue;
    grad = grad.to(torch::kCPU).contiguous();  // device -> host for the push (no copy on the CPU)
    if (g.first_order) grad = grad * static_cast<float>(sync_.SumScale(batch_examples));
    keep.push_back(grad);
    const float* gd = grad.data_ptr<float>();
    r.lookup->ForEachTable([&](uint32_t table, size_t b, size_t e, bool) {
      ps::PushSlice s;
      s.table = table;
      s.keys = r.lookup->sorted_keys().data() + b;
      s.n = e - b;
      s.grads = gd + b * g.dim;
      s.stride = static_cast<size_t>(g.dim);
      slices.push_back(s);
      rows += e - b;
      bytes += (e - b) * (sizeof(uint64_t) + static_cast<size_t>(g.dim) * sizeof(float));
    });
  }
  const auto start = Clock::now();
  EMBER_RETURN_IF_ERROR(ps_->Push(slices, sync_.PushClock(step_)));
  sync_.Pushed();
  recorder_->Observe("ps_push_seconds", std::chrono::duration<double>(Clock::now() - start).count());
  recorder_->AddCounter("ps_push_rows_total", static_cast<double>(rows));
  recorder_->AddCounter("ps_push_bytes_total", static_cast<double>(bytes));
  return Status::Ok();
}

std::vector<torch::Tensor> Trainer::DenseParams() {
  auto params = model_->parameters();
  if (thresholds_.defined()) params.push_back(thresholds_);
  return params;
}

Status Trainer::AllReduceDense() { return sync_.AllReduceMeanGrads(DenseParams()); }

Status Trainer::TrainStep(const data::Batch& batch, double* loss) { return TrainStep(batch, nullptr, loss); }

Status Trainer::NonFiniteLoss(double loss, const std::vector<models::GroupInput>& inputs) const {
  // Name where it came from: the rows the step read (which tables), or the dense model.
  std::string where;
  for (size_t g = 0; g < inputs.size() && g < groups_.size(); ++g) {
    if (!inputs[g].values.defined() || torch::isfinite(inputs[g].values).all().item<bool>()) continue;
    if (!where.empty()) where += ", ";
    const auto& gp = *groups_[g];
    where += "embedding group " + std::to_string(g) + " (tables " + std::to_string(gp.first_table);
    if (gp.num_tables > 1) where += " .. " + std::to_string(gp.first_table + gp.num_tables - 1);
    where += ")";
  }
  if (where.empty())
    where = "the dense model (every row it read is finite): lower train.lr";
  else
    where = "non-finite rows in " + where;
  return Status::FailedPrecondition("training step " + std::to_string(step_) + ": the loss is " + std::to_string(loss) +
                                    "; stopped before pushing it (" + where + ")");
}

Status Trainer::TrainStep(const data::Batch& batch, const data::Batch* next, double* loss) {
  if (batch.size == 0) return Status::InvalidArgument("empty batch");
  const auto start = Clock::now();
  std::vector<models::GroupInput> inputs;
  if (prefetch_.batch)
    EMBER_RETURN_IF_ERROR(FinishPrefetch(batch, &inputs));
  else
    EMBER_RETURN_IF_ERROR(Lookup(batch, /*training=*/true, &inputs));
  // The next batch's rows: pulled while this step computes where the mode lets them be a step
  // old (async, bounded with staleness >= 1), else right after this step's push (they must
  // include it); never across table maintenance, which changes rows between steps.
  const bool prefetch = next && config_.prefetch && next->size > 0 && !MaintenanceAfter(step_ + 1);
  const bool early = prefetch && sync_.PrefetchDuringStep();
  if (early) StartPrefetch(*next);
  const int64_t B = static_cast<int64_t>(batch.size);
  double step_loss = 0;
  Status st = TorchCall("training step", [&] {
    auto dense =
        torch::from_blob(const_cast<float*>(batch.dense.data()), {B, batch.num_dense}, torch::kFloat).to(device_);
    auto labels = torch::from_blob(const_cast<float*>(batch.labels.data()), {B}, torch::kFloat).to(device_);
    optimizer_->zero_grad();
    if (threshold_optimizer_) threshold_optimizer_->zero_grad();
    auto logits = model_->Forward(dense, inputs);
    auto l = torch::binary_cross_entropy_with_logits(logits, labels);
    step_loss = l.item<double>();
    if (loss) *loss = step_loss;
    if (!std::isfinite(step_loss)) return;  // nothing is pushed or stepped from it
    if (thresholds_.defined()) l = l + config_.optembed.alpha * torch::exp(-thresholds_).sum();
    l.backward();
  });
  EMBER_RETURN_IF_ERROR(st);
  if (!std::isfinite(step_loss)) return NonFiniteLoss(step_loss, inputs);
  EMBER_RETURN_IF_ERROR(PushGradients(B));
  if (prefetch && !early) StartPrefetch(*next);
  EMBER_RETURN_IF_ERROR(AllReduceDense());
  EMBER_RETURN_IF_ERROR(TorchCall("dense optimizer step", [&] {
    optimizer_->step();
    if (threshold_optimizer_) threshold_optimizer_->step();
  }));
  ++step_;
  EMBER_RETURN_IF_ERROR(MaintainTables());
  recorder_->AddCounter("train_samples_total", static_cast<double>(B));
  recorder_->AddCounter("train_steps_total", 1);
  recorder_->Observe("train_step_seconds", std::chrono::duration<double>(Clock::now() - start).count());
  return Status::Ok();
}

Result<EpochStats> Trainer::TrainEpoch(data::BatchReader* reader, int epoch, int epochs,
                                       const ProgressOptions& progress, const StepCallback& on_step) {
  EpochStats stats;
  model_->train();
  EMBER_RETURN_IF_ERROR(TorchCall("setting the epoch's dense learning rate", [&] {
    const double lr = config_.dense_lr * std::pow(config_.dense_lr_decay, epoch);
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }));
  ProgressReporter::Options po;
  po.label = "train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  po.unit = "samples";
  po.tty = progress.tty;
  po.log_interval_s = progress.log_interval_s;
  ProgressReporter reporter(po);
  const auto start = Clock::now();
  // Two batches: the next is read ahead so that its rows can be pulled during this step.
  data::Batch batches[2];
  int cur = 0;
  double loss_sum = 0, ema = -1;
  auto gauges_at = start;
  uint64_t gauges_samples = 0;
  recorder_->SetGauge("train_epoch", epoch + 1);
  // However this loop ends, a pull still in flight finishes before its batch goes away.
  struct DrainPrefetch {
    Prefetch* p;
    ~DrainPrefetch() {
      if (p->batch) (void)p->done.get();
      p->batch = nullptr;
    }
  } drain{&prefetch_};
  auto have = reader->Next(&batches[cur]);
  if (!have.ok()) return have.status();
  while (*have) {
    data::Batch& batch = batches[cur];
    // The next batch first (its pull overlaps this step), unless reading it would wait (a followed
    // stream): then this batch trains now, without the overlap, and the next is read after.
    const bool ahead = reader->Ready();
    Result<bool> have_next = false;
    if (ahead) {
      have_next = reader->Next(&batches[1 - cur]);
      if (!have_next.ok()) return have_next.status();
    }
    double loss = 0;
    EMBER_RETURN_IF_ERROR(TrainStep(batch, ahead && *have_next ? &batches[1 - cur] : nullptr, &loss));
    trained_end_ = batch.end;
    stats.samples += batch.size;
    stats.steps += 1;
    loss_sum += loss * static_cast<double>(batch.size);
    ema = ema < 0 ? loss : 0.98 * ema + 0.02 * loss;
    if (on_step) EMBER_RETURN_IF_ERROR(on_step(step_));
    if (stop_requested_) {  // after this step: the caller checkpoints where it ended
      stop_requested_ = false;
      stats.stopped = true;
      break;
    }
    const auto now = Clock::now();
    if (now - gauges_at >= std::chrono::seconds(1)) {
      RecordTrainingGauges(ema, static_cast<double>(stats.samples - gauges_samples) /
                                    std::chrono::duration<double>(now - gauges_at).count());
      gauges_at = now;
      gauges_samples = stats.samples;
    }
    if (progress.enabled) {
      char extra[64];
      std::snprintf(extra, sizeof(extra), "loss %.4f", ema);
      reporter.Update(static_cast<double>(stats.samples), reader->Progress(), extra);
    }
    if (!ahead) {  // after the step's callback: its checkpoint or export does not wait for more data
      have_next = reader->Next(&batches[1 - cur]);
      if (!have_next.ok()) return have_next.status();
    }
    have = have_next;
    cur = 1 - cur;
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.mean_loss = stats.samples ? loss_sum / static_cast<double>(stats.samples) : 0;
  if (progress.enabled) {
    char extra[64];
    std::snprintf(extra, sizeof(extra), "mean loss %.4f", stats.mean_loss);
    reporter.Finish(static_cast<double>(stats.samples), extra);
  }
  RecordTrainingGauges(ema, stats.seconds > 0 ? static_cast<double>(stats.samples) / stats.seconds : 0.0);
  recorder_->SetGauge("train_epoch_loss", stats.mean_loss);
  return stats;
}

void Trainer::RecordTrainingGauges(double loss, double samples_per_second) {
  if (loss >= 0) recorder_->SetGauge("train_loss", loss);
  recorder_->SetGauge("train_samples_per_second", samples_per_second);
  recorder_->SetGauge("train_step", static_cast<double>(step_));
  if (thresholds_.defined()) {
    const auto t = thresholds();
    for (size_t f = 0; f < config_.fields.size(); ++f)
      recorder_->SetGauge("optembed_threshold", t[f], {{"field", config_.fields[f].name}});
  }
}

Status Trainer::Predict(const data::Batch& batch, std::vector<float>* probabilities) {
  probabilities->resize(batch.size);
  if (batch.size == 0) return Status::Ok();
  torch::NoGradGuard no_grad;
  std::vector<models::GroupInput> inputs;
  EMBER_RETURN_IF_ERROR(Lookup(batch, /*training=*/false, &inputs));
  const int64_t B = static_cast<int64_t>(batch.size);
  return TorchCall("prediction", [&] {
    auto dense =
        torch::from_blob(const_cast<float*>(batch.dense.data()), {B, batch.num_dense}, torch::kFloat).to(device_);
    auto p = torch::sigmoid(model_->Forward(dense, inputs)).to(torch::kCPU).contiguous();
    std::memcpy(probabilities->data(), p.data_ptr<float>(), batch.size * sizeof(float));
  });
}

Result<EvalResult> EvaluateWith(data::BatchReader* reader, const PredictFn& predict, std::vector<float>* probabilities,
                                std::vector<float>* labels) {
  const auto start = Clock::now();
  std::vector<float> all_p, all_y, p;
  data::Batch batch;
  for (;;) {
    EMBER_ASSIGN_OR_RETURN(bool got, reader->Next(&batch));
    if (!got) break;
    EMBER_RETURN_IF_ERROR(predict(batch, &p));
    all_p.insert(all_p.end(), p.begin(), p.end());
    all_y.insert(all_y.end(), batch.labels.begin(), batch.labels.begin() + static_cast<long>(batch.size));
  }
  EvalResult r;
  r.samples = all_p.size();
  r.auc = ExactAuc(all_p, all_y);
  r.logloss = LogLoss(all_p, all_y);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (probabilities) *probabilities = std::move(all_p);
  if (labels) *labels = std::move(all_y);
  return r;
}

Result<EvalResult> Trainer::Evaluate(data::BatchReader* reader, std::vector<float>* probabilities,
                                     std::vector<float>* labels) {
  model_->eval();
  auto r = EvaluateWith(
      reader, [this](const data::Batch& b, std::vector<float>* p) { return Predict(b, p); }, probabilities, labels);
  model_->train();
  if (!r.ok()) return r.status();
  recorder_->SetGauge("eval_auc", r->auc);
  recorder_->SetGauge("eval_logloss", r->logloss);
  recorder_->SetGauge("eval_samples", static_cast<double>(r->samples));
  return r;
}

}  // namespace ember::workers
