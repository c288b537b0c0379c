#include "ember/workers/session_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "checkpoint_dir.h"
#include "ember/common/progress.h"
#include "ember/embedding/lookup.h"

namespace ember::workers {
namespace {
using Clock = std::chrono::steady_clock;
constexpr int kTopK = 20;
}  // namespace

void AddRank(uint64_t rank, int k, RankMetrics* m) {
  ++m->n;
  if (rank >= 1 && rank <= static_cast<uint64_t>(k)) {
    m->recall += 1;
    m->mrr += 1.0 / static_cast<double>(rank);
  }
}

void FinishRanks(RankMetrics* m) {
  if (m->n == 0) return;
  m->recall /= static_cast<double>(m->n);
  m->mrr /= static_cast<double>(m->n);
}

std::vector<uint64_t> TargetRanks(const torch::Tensor& scores, const std::vector<int64_t>& targets) {
  auto s = scores.slice(1, 1);  // column 0 is the padding item
  auto t = torch::tensor(targets, torch::kLong).sub(1).unsqueeze(1);
  auto target_scores = s.gather(1, t);
  auto ranks = (s >= target_scores).sum(1).contiguous();
  std::vector<uint64_t> out(targets.size());
  const int64_t* r = ranks.data_ptr<int64_t>();
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint64_t>(r[i]);
  return out;
}

SessionTrainer::SessionTrainer(const SessionTrainerConfig& config, const data::SessionData* data, ps::PsClient* ps,
                               Collective* collective, monitoring::Recorder* recorder)
    : config_(config), data_(data), ps_(ps), collective_(collective), recorder_(recorder), rng_(config.seed) {}

Result<std::unique_ptr<SessionTrainer>> SessionTrainer::Create(const SessionTrainerConfig& config,
                                                               const data::SessionData* data, ps::PsClient* ps,
                                                               Collective* collective, monitoring::Recorder* recorder) {
  std::unique_ptr<SessionTrainer> t(
      new SessionTrainer(config, data, ps, collective, recorder ? recorder : monitoring::NullRecorder()));
  if (!models::IsSessionModel(config.model.kind))
    return Status::InvalidArgument(std::string("model.name: \"") + models::ModelKindName(config.model.kind) +
                                   "\" is not a session model (m2trec, sasrec)");
  t->ids_ = config.model.kind == models::ModelKind::kSasRec;
  const auto& m = config.embedding.method;
  if (m != embedding::Method::kFull && m != embedding::Method::kHash && m != embedding::Method::kUnified)
    return Status::InvalidArgument(std::string("embedding.method: \"") + embedding::MethodName(m) +
                                   "\" is not available for session models (full, hash, unified)");
  if (config.embedding.lifecycle.admits())
    return Status::InvalidArgument("embedding.admit_after: feature admission is not available for session models");
  std::vector<embedding::FieldInfo> fields;
  if (t->ids_) {
    fields.push_back({"item", data->num_items() + 1});
  } else {
    if (data->items.attribute_names.empty())
      return Status::InvalidArgument(
          "model.name = \"m2trec\" represents items by their metadata only: give data.items (an item attribute "
          "file) or data.item_id_attribute = true");
    for (size_t a = 0; a < data->items.attribute_names.size(); ++a)
      fields.push_back({data->items.attribute_names[a], data->items.cardinality[a]});
  }
  EMBER_ASSIGN_OR_RETURN(t->method_, embedding::MakeMethod(config.embedding, fields));
  if (!t->ids_) {
    // M2TRec: a value no training item carries (a new brand, a cold item's own id) has a row that
    // never learnt from a session (only pushed down as a negative) and, hashed, would read another
    // value's row: it contributes zeros instead.
    for (size_t a = 0; a < data->items.attribute_names.size(); ++a) {
      std::vector<bool> trained(data->items.cardinality[a], false);
      for (uint32_t i = 1; i <= data->num_train_items; ++i) trained[data->items.values[a][i]] = true;
      t->trained_values_.push_back(std::move(trained));
    }
  }
  int64_t item_dim = 0;
  for (int f = 0; f < t->method_->num_fields(); ++f) item_dim += t->method_->layout(f).output_dim;
  {
    // The columns of a lookup's [slots x slot width] that hold a probe's row (not padding).
    const int S = t->method_->max_probes(), D = t->method_->slot_dim();
    std::vector<int64_t> cols;
    for (int f = 0; f < t->method_->num_fields(); ++f) {
      const auto& layout = t->method_->layout(f);
      for (size_t q = 0; q < layout.probe_dims.size(); ++q)
        for (int c = 0; c < layout.probe_dims[q]; ++c)
          cols.push_back((static_cast<int64_t>(f) * S + static_cast<int64_t>(q)) * D + c);
    }
    if (static_cast<int64_t>(cols.size()) != static_cast<int64_t>(t->method_->num_fields()) * S * D)
      t->columns_ = torch::tensor(cols, torch::kLong);
  }
  for (const auto& h : config.heads) {
    auto it = std::find(data->items.attribute_names.begin(), data->items.attribute_names.end(), h);
    if (it == data->items.attribute_names.end())
      return Status::InvalidArgument("model.heads: \"" + h + "\" is not an item attribute");
    t->head_attr_.push_back(static_cast<int>(it - data->items.attribute_names.begin()));
  }
  models::SessionModelConfig mc = config.model;
  mc.item_dim = item_dim;
  if (mc.heads < 1 || item_dim % mc.heads != 0)
    return Status::InvalidArgument("model.attention_heads: " + std::to_string(mc.heads) +
                                   " attention heads do not divide the item width " + std::to_string(item_dim));
  mc.head_classes.clear();
  for (int a : t->head_attr_) mc.head_classes.push_back(data->items.cardinality[a]);
  mc.head_weights = config.head_weights;
  mc.head_weights.resize(mc.head_classes.size(), 1.0);
  t->config_.head_weights = mc.head_weights;
  EMBER_ASSIGN_OR_RETURN(t->sync_, StepSync::Create(config.sync, collective));
  {
    auto seeded = SeededInit(config.seed);  // the same initial dense model on every worker
    t->model_ = models::SessionModel(mc);
  }
  EMBER_RETURN_IF_ERROR(ps->CreateTables(t->method_->tables()));
  t->optimizer_ = MakeDenseOptimizer(config.dense_optimizer, t->model_->parameters(), config.dense_lr);
  return t;
}

uint64_t SessionTrainer::FieldId(int f, uint32_t item) const {
  return ids_ ? item : data_->items.values[static_cast<size_t>(f)][item];
}

Result<SessionTrainer::Pulled> SessionTrainer::Represent(const std::vector<uint32_t>& items, bool training) {
  const size_t n = items.size(), F = static_cast<size_t>(method_->num_fields());
  Pulled p;
  p.lookup = std::make_shared<embedding::BatchLookup>(method_.get());
  embedding::BatchLookup& lookup = *p.lookup;
  std::vector<uint64_t> ids(n * F);  // field-major, as a batch holds them
  for (size_t f = 0; f < F; ++f)
    for (size_t i = 0; i < n; ++i) ids[f * n + i] = FieldId(static_cast<int>(f), items[i]);
  lookup.Prepare(ids.data(), n, n);
  const int64_t D = lookup.slot_dim();
  p.leaf = torch::zeros({static_cast<int64_t>(lookup.leaf_rows()), D}, torch::kFloat);
  float* rows = p.leaf.data_ptr<float>();
  std::vector<ps::PullSlice> slices;
  lookup.ForEachTable([&](uint32_t table, size_t b, size_t e, bool) {
    ps::PullSlice sl;
    sl.table = table;
    sl.keys = lookup.sorted_keys().data() + b;
    sl.n = e - b;
    sl.out = rows + b * static_cast<size_t>(D);
    sl.stride = static_cast<size_t>(D);
    sl.create_missing = training;
    slices.push_back(sl);
  });
  // Training pulls wait as the mode says; evaluation waits for every worker's pushes of the steps
  // run so far (workers run equal step counts), so that its scores do not depend on timing.
  const uint64_t wait = training ? sync_.PullWait(step_) : sync_.EvalWait(step_);
  const auto start = Clock::now();
  EMBER_RETURN_IF_ERROR(ps_->Pull(slices, {wait, nullptr}));
  if (training) {
    recorder_->Observe("ps_pull_seconds", std::chrono::duration<double>(Clock::now() - start).count());
    recorder_->AddCounter("ps_pull_rows_total", static_cast<double>(lookup.rows()));
    p.leaf.requires_grad_(true);
  }
  // Cloned: autograd keeps the index for the backward pass.
  auto& slots = lookup.slots();
  auto index = torch::from_blob(slots.data(), {static_cast<int64_t>(slots.size())}, torch::kLong).clone();
  torch::Tensor x = p.leaf.index_select(0, index).view({static_cast<int64_t>(n), -1});
  // Each field's probes at their own widths: the slots' zero padding dropped.
  if (columns_.defined()) x = x.index_select(1, columns_);
  if (!trained_values_.empty()) {
    // M2TRec: a value no training item carries reads zeros.
    std::vector<float> mask;
    int64_t col = 0;
    bool any = false;
    const int64_t width = x.size(1);
    for (size_t f = 0; f < F; ++f) {
      const auto& trained = trained_values_[f];
      const int64_t w = method_->layout(static_cast<int>(f)).output_dim;
      for (size_t i = 0; i < n; ++i)
        if (!trained[ids[f * n + i]]) {
          if (!any) mask.assign(n * static_cast<size_t>(width), 1.0f);
          any = true;
          std::fill_n(mask.begin() + static_cast<int64_t>(i) * width + col, w, 0.0f);
        }
      col += w;
    }
    if (any) x = x * torch::from_blob(mask.data(), {static_cast<int64_t>(n), width}, torch::kFloat).clone();
  }
  p.x = x;
  return p;
}

Status SessionTrainer::PushLeaves(const Pulled& p) {
  std::vector<ps::PushSlice> slices;
  torch::Tensor grad;
  uint64_t rows = 0;
  if (p.lookup) {
    grad = p.leaf.grad();
    if (!grad.defined()) grad = torch::zeros_like(p.leaf);
    grad = grad.contiguous();
    const float* gd = grad.data_ptr<float>();
    const size_t D = static_cast<size_t>(p.lookup->slot_dim());
    p.lookup->ForEachTable([&](uint32_t table, size_t b, size_t e, bool) {
      ps::PushSlice sl;
      sl.table = table;
      sl.keys = p.lookup->sorted_keys().data() + b;
      sl.n = e - b;
      sl.grads = gd + b * D;
      sl.stride = D;
      slices.push_back(sl);
      rows += sl.n;
    });
  }
  const auto start = Clock::now();
  EMBER_RETURN_IF_ERROR(ps_->Push(slices, sync_.PushClock(step_)));
  sync_.Pushed();
  recorder_->Observe("ps_push_seconds", std::chrono::duration<double>(Clock::now() - start).count());
  recorder_->AddCounter("ps_push_rows_total", static_cast<double>(rows));
  return Status::Ok();
}

Status SessionTrainer::AllReduceDense() { return sync_.AllReduceMeanGrads(model_->parameters()); }

Result<std::pair<torch::Tensor, SessionTrainer::Pulled>> SessionTrainer::Forward(
    const std::vector<data::SessionExample>& batch, bool training) {
  const int64_t B = static_cast<int64_t>(batch.size());
  const int L_max = static_cast<int>(config_.model.max_length);
  std::vector<std::vector<uint32_t>> prefixes(batch.size());
  std::vector<uint32_t> targets(batch.size());
  int64_t L = 1;
  for (size_t b = 0; b < batch.size(); ++b) {
    prefixes[b] = data_->Prefix(data_->train_sessions, batch[b], L_max);
    targets[b] = data_->train_sessions[batch[b].session][batch[b].length];
    L = std::max<int64_t>(L, static_cast<int64_t>(prefixes[b].size()));
  }
  // The step's items: candidates first (their order gives the logits' columns), then prefixes.
  const uint32_t N = data_->num_items();
  std::vector<uint32_t> items;
  std::unordered_map<uint32_t, int64_t> pos;
  auto add = [&](uint32_t i) {
    auto [it, inserted] = pos.emplace(i, static_cast<int64_t>(items.size()));
    if (inserted) items.push_back(i);
    return it->second;
  };
  const bool full = config_.candidates == 0 || config_.candidates >= N;
  if (full) {
    for (uint32_t i = 1; i <= N; ++i) add(i);
  } else {
    for (uint32_t t : targets) add(t);
    std::uniform_int_distribution<uint32_t> pick(1, N);
    for (uint64_t k = 0; k < config_.candidates; ++k) add(pick(rng_));
  }
  const int64_t C = static_cast<int64_t>(items.size());
  std::vector<int64_t> prefix_idx(static_cast<size_t>(B * L));
  std::vector<uint8_t> pad(static_cast<size_t>(B * L));
  for (int64_t b = 0; b < B; ++b) {
    const auto& pf = prefixes[static_cast<size_t>(b)];
    const int64_t off = L - static_cast<int64_t>(pf.size());
    for (int64_t l = 0; l < L; ++l) {
      const bool is_pad = l < off;
      pad[static_cast<size_t>(b * L + l)] = is_pad;
      prefix_idx[static_cast<size_t>(b * L + l)] = is_pad ? -1 : add(pf[static_cast<size_t>(l - off)]);
    }
  }
  const int64_t U = static_cast<int64_t>(items.size());
  for (auto& v : prefix_idx)
    if (v < 0) v = U;  // the zero row
  EMBER_ASSIGN_OR_RETURN(auto pulled, Represent(items, training));
  auto x = torch::cat({pulled.x, torch::zeros({1, pulled.x.size(1)})}, 0);
  auto seq = x.index_select(0, torch::tensor(prefix_idx, torch::kLong)).view({B, L, -1});
  auto pad_t = torch::tensor(std::vector<int64_t>(pad.begin(), pad.end()), torch::kLong).view({B, L}).to(torch::kBool);
  model_->train(training);
  auto z = model_->Encode(seq, pad_t);
  auto logits = model_->Score(z, pulled.x.slice(0, 0, C));
  std::vector<int64_t> target_col(batch.size());
  for (size_t b = 0; b < batch.size(); ++b) target_col[b] = pos.at(targets[b]);
  std::vector<torch::Tensor> head_logits, head_targets;
  for (size_t h = 0; h < head_attr_.size(); ++h) {
    head_logits.push_back(model_->Head(h, z));
    std::vector<int64_t> ht(batch.size());
    for (size_t b = 0; b < batch.size(); ++b)
      ht[b] = data_->items.values[static_cast<size_t>(head_attr_[h])][targets[b]];
    head_targets.push_back(torch::tensor(ht, torch::kLong));
  }
  auto loss = models::SessionLoss(logits, torch::tensor(target_col, torch::kLong), head_logits, head_targets,
                                  config_.head_weights);
  return std::make_pair(loss, std::move(pulled));
}

Result<double> SessionTrainer::BatchLoss(const std::vector<data::SessionExample>& batch) {
  torch::NoGradGuard no_grad;
  EMBER_ASSIGN_OR_RETURN(auto fw, Forward(batch, false));
  return fw.first.item<double>();
}

uint64_t SessionTrainer::StepsPerEpoch(size_t examples) const {
  const uint64_t W = static_cast<uint64_t>(collective_->size()), B = config_.batch_size;
  const uint64_t batches = (examples + B - 1) / B;
  return (batches + W - 1) / W;
}

Result<EpochStats> SessionTrainer::TrainEpoch(const std::vector<data::SessionExample>& examples, int epoch, int epochs,
                                              const ProgressOptions& progress, uint64_t first_step,
                                              const SessionStepCallback& on_step) {
  const int W = collective_->size(), w = collective_->rank();
  // The same shuffle on every worker (seeded by epoch); worker w takes batches w, w + W, ...
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle_rng(config_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), shuffle_rng);
  const uint64_t B = config_.batch_size;
  const uint64_t steps = StepsPerEpoch(order.size());
  ProgressReporter::Options po;
  po.label = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  po.unit = "examples";
  const double skipped =
      static_cast<double>(std::min<uint64_t>(first_step * B * static_cast<uint64_t>(W), order.size()));
  po.total = (static_cast<double>(order.size()) - skipped) / W;
  po.tty = progress.tty;
  po.log_interval_s = progress.log_interval_s;
  ProgressReporter reporter(po);
  EpochStats stats;
  double loss_sum = 0;
  const auto start = Clock::now();
  std::vector<data::SessionExample> batch;
  for (uint64_t s = first_step; s < steps; ++s) {
    const uint64_t bi = s * static_cast<uint64_t>(W) + static_cast<uint64_t>(w);
    batch.clear();
    for (uint64_t i = bi * B; i < std::min<uint64_t>((bi + 1) * B, order.size()); ++i)
      batch.push_back(examples[order[i]]);
    optimizer_->zero_grad();
    // Dropout masks and sampled candidates drawn from the step's own seed: a run resumed from a
    // checkpoint draws what the uninterrupted run drew. LibTorch's generator is the process's:
    // the forward pass holds it (SeededInit), so workers on threads of one process draw what
    // separate processes draw. (Its pulls wait only for pushes the last all-reduce implies.)
    const uint64_t step_seed = config_.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(step_) * W + w;
    rng_.seed(step_seed);
    if (!batch.empty()) {
      Result<std::pair<torch::Tensor, Pulled>> fw = Status::Internal("no forward pass");
      double loss = 0;
      EMBER_RETURN_IF_ERROR(TorchCall("training step", [&] {
        {
          auto seeded = SeededInit(step_seed);
          fw = Forward(batch, true);
        }
        if (!fw.ok()) return;
        loss = fw->first.item<double>();
        if (std::isfinite(loss)) fw->first.backward();
      }));
      EMBER_RETURN_IF_ERROR(fw.status());
      if (!std::isfinite(loss))
        return Status::FailedPrecondition("training step " + std::to_string(step_) + ": the loss is " +
                                          std::to_string(loss) + "; stopped before pushing it (lower train.lr)");
      EMBER_RETURN_IF_ERROR(PushLeaves(fw->second));
      loss_sum += loss * static_cast<double>(batch.size());
    } else {
      EMBER_RETURN_IF_ERROR(PushLeaves(Pulled{}));  // an empty push: the step still counts
    }
    EMBER_RETURN_IF_ERROR(AllReduceDense());
    EMBER_RETURN_IF_ERROR(TorchCall("dense optimizer step", [&] { optimizer_->step(); }));
    ++step_;
    stats.samples += batch.size();
    ++stats.steps;
    recorder_->AddCounter("train_samples_total", static_cast<double>(batch.size()));
    recorder_->AddCounter("train_steps_total", 1);
    if (progress.enabled)
      reporter.Update(
          static_cast<double>(stats.samples), -1,
          "loss " + std::to_string(stats.samples ? loss_sum / static_cast<double>(stats.samples) : 0.0).substr(0, 6));
    if (on_step) EMBER_RETURN_IF_ERROR(on_step(s + 1));
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.mean_loss = stats.samples ? loss_sum / static_cast<double>(stats.samples) : 0;
  if (progress.enabled) reporter.Finish(static_cast<double>(stats.samples));
  recorder_->SetGauge("train_loss", stats.mean_loss);
  return stats;
}

Result<SessionEval> SessionTrainer::Evaluate(const std::vector<std::vector<uint32_t>>& sessions,
                                             const std::vector<data::SessionExample>& examples) {
  torch::NoGradGuard no_grad;
  model_->eval();
  const auto start = Clock::now();
  const uint32_t N = data_->num_items();
  std::vector<uint32_t> all(N + 1);
  std::iota(all.begin(), all.end(), 0);
  EMBER_ASSIGN_OR_RETURN(auto catalog, Represent(all, false));
  auto x = catalog.x.clone();
  x[0].zero_();  // the padding item
  SessionEval ev;
  const int L_max = static_cast<int>(config_.model.max_length);
  for (size_t b0 = 0; b0 < examples.size(); b0 += config_.eval_batch_size) {
    const size_t b1 = std::min(examples.size(), b0 + config_.eval_batch_size);
    const int64_t B = static_cast<int64_t>(b1 - b0);
    std::vector<std::vector<uint32_t>> prefixes;
    std::vector<int64_t> targets;
    int64_t L = 1;
    for (size_t i = b0; i < b1; ++i) {
      prefixes.push_back(data_->Prefix(sessions, examples[i], L_max));
      targets.push_back(sessions[examples[i].session][examples[i].length]);
      L = std::max<int64_t>(L, static_cast<int64_t>(prefixes.back().size()));
    }
    std::vector<int64_t> idx(static_cast<size_t>(B * L), 0);
    std::vector<int64_t> pad(static_cast<size_t>(B * L), 1);
    for (int64_t b = 0; b < B; ++b) {
      const auto& pf = prefixes[static_cast<size_t>(b)];
      const int64_t off = L - static_cast<int64_t>(pf.size());
      for (int64_t l = off; l < L; ++l) {
        idx[static_cast<size_t>(b * L + l)] = pf[static_cast<size_t>(l - off)];
        pad[static_cast<size_t>(b * L + l)] = 0;
      }
    }
    auto seq = x.index_select(0, torch::tensor(idx, torch::kLong)).view({B, L, -1});
    auto z = model_->Encode(seq, torch::tensor(pad, torch::kLong).view({B, L}).to(torch::kBool));
    auto scores = model_->Score(z, x);
    const auto ranks = TargetRanks(scores, targets);
    for (size_t i = 0; i < ranks.size(); ++i) {
      const auto t = static_cast<uint32_t>(targets[i]);
      AddRank(ranks[i], kTopK, &ev.all);
      if (data_->cold(t))
        AddRank(ranks[i], kTopK, &ev.cold);
      else if (data_->train_count[t] <= static_cast<uint32_t>(config_.rare_max_count))
        AddRank(ranks[i], kTopK, &ev.rare);
    }
  }
  FinishRanks(&ev.all);
  FinishRanks(&ev.cold);
  FinishRanks(&ev.rare);
  ev.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return ev;
}

namespace {
nlohmann::json RanksJson(const RankMetrics& m) { return {{"n", m.n}, {"recall", m.recall}, {"mrr", m.mrr}}; }

RankMetrics RanksFrom(const nlohmann::json& j) {
  RankMetrics m;
  m.n = j.value("n", uint64_t{0});
  m.recall = j.value("recall", 0.0);
  m.mrr = j.value("mrr", 0.0);
  return m;
}
}  // namespace

Result<std::string> SessionTrainer::SaveCheckpoint(const std::string& root, const std::string& config_text,
                                                   const SessionRunState& state, const std::string& name) {
  const auto& t = state.best_test;
  nlohmann::json manifest = {
      {"step", step_},
      {"model", models::ModelKindName(config_.model.kind)},
      {"position", {{"epoch", state.position.epoch}, {"examples", state.position.examples}}},
      {"embedding",
       {{"method", embedding::MethodName(config_.embedding.method)},
        {"rows", config_.embedding.rows},
        {"density", config_.embedding.density}}},
      {"sessions",
       {{"items", data_->num_items()},
        {"attributes", data_->items.attribute_names},
        {"cardinality", data_->items.cardinality},
        {"best_epoch", state.best_epoch},
        {"best_valid_recall", state.best_valid},
        {"since_best", state.since_best},
        {"best_test", {{"all", RanksJson(t.all)}, {"cold", RanksJson(t.cold)}, {"rare", RanksJson(t.rare)}}}}}};
  return WriteCheckpointDir(root, name.empty() ? "ckpt-" + std::to_string(step_) : name, ps_, *model_, *optimizer_,
                            config_text, std::move(manifest));
}

Result<SessionRunState> SessionTrainer::RestoreCheckpoint(const std::string& path, bool load_shards) {
  const std::string file = path + "/manifest.json";
  // The model and catalogue are checked before anything is loaded.
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  const std::string model = models::ModelKindName(config_.model.kind);
  if (m.value("model", "") != model)
    return Status::FailedPrecondition(file + ": a checkpoint of model \"" + m.value("model", "") + "\", not \"" +
                                      model + "\"");
  if (!m.contains("sessions") || !m["sessions"].is_object())
    return Status::Corruption(file + ": no \"sessions\" block (not a session model's checkpoint)");
  const auto& js = m["sessions"];
  SessionRunState state;
  try {
    state.items = js.at("items").get<uint64_t>();
    const auto cardinality = js.at("cardinality").get<std::vector<uint32_t>>();
    // The rows hold attribute values (M2TRec) or item ids (the ID model): those must mean the same.
    if (ids_ ? state.items != data_->num_items() : cardinality != data_->items.cardinality)
      return Status::FailedPrecondition(
          file + ": trained on a catalogue of " + std::to_string(state.items) + " items and attribute cardinalities " +
          nlohmann::json(cardinality).dump() + "; the data gives " + std::to_string(data_->num_items()) + " and " +
          nlohmann::json(data_->items.cardinality).dump() + " (the data files or the data.* protocol keys changed)");
    state.best_epoch = js.value("best_epoch", 0);
    state.best_valid = js.value("best_valid_recall", -1.0);
    state.since_best = js.value("since_best", 0);
    if (js.contains("best_test")) {
      const auto& t = js["best_test"];
      state.best_test.all = RanksFrom(t.at("all"));
      state.best_test.cold = RanksFrom(t.at("cold"));
      state.best_test.rare = RanksFrom(t.at("rare"));
    }
  } catch (const std::exception& e) {
    return Status::Corruption(file + ": bad \"sessions\" block: " + e.what());
  }
  EMBER_RETURN_IF_ERROR(LoadCheckpointDir(path, m, ps_, *model_, *optimizer_, load_shards));
  EMBER_ASSIGN_OR_RETURN(state.position, ReadPosition(path, m));
  step_ = m.value("step", int64_t{0});
  sync_.Restarted();
  return state;
}

}  // namespace ember::workers
