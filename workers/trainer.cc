#include "ember/workers/trainer.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/common/metrics.h"
#include "ember/common/progress.h"
#include "ember/embedding/dedup.h"

namespace ember::workers {
namespace {
using Clock = std::chrono::steady_clock;
constexpr const char* kManifestFormat = "ember-checkpoint";
constexpr int kManifestVersion = 1;

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

template <typename Fn>
Status TorchCall(const char* what, Fn&& fn) {
  try {
    fn();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + ": " + e.what());
  }
}
}  // namespace

struct Trainer::Group {
  embedding::EmbeddingMethod* method = nullptr;
  int dim = 0;
  int total_probes = 0;
  uint32_t first_table = 0;
  size_t num_tables = 0;
  std::vector<int> probe_offset;
  std::vector<int> widths;
  std::vector<uint64_t> keys, scratch, sorted_unique;
  std::vector<size_t> table_begin;
  std::vector<int64_t> perm;
  embedding::KeyDeduper dedup;
  torch::Tensor inverse, rows;

  // fn(table id, begin, end) for every table with rows in this batch's leaf.
  template <typename Fn>
  void ForEachTable(Fn&& fn) const {
    for (size_t t = 0; t < num_tables; ++t)
      if (table_begin[t] != table_begin[t + 1])
        fn(first_table + static_cast<uint32_t>(t), table_begin[t], table_begin[t + 1]);
  }
};

Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::Create(const TrainerConfig& config, ps::PsClient* ps, Collective* collective,
                                                 monitoring::Recorder* recorder) {
  std::unique_ptr<Trainer> t(new Trainer());
  t->config_ = config;
  t->ps_ = ps;
  t->collective_ = collective;
  t->recorder_ = recorder ? recorder : monitoring::NullRecorder();
  torch::manual_seed(config.seed);
  models::CtrModelConfig mc = config.model;
  mc.num_fields = static_cast<int>(config.fields.size());
  mc.embedding_dim = config.embedding.dim;
  EMBER_ASSIGN_OR_RETURN(t->model_, models::MakeCtrModel(mc));
  uint32_t next_table = config.embedding.first_table;
  for (const auto& gs : t->model_->embedding_groups()) {
    embedding::MethodConfig ec = config.embedding;
    ec.dim = gs.dim;
    ec.first_table = next_table;
    ec.seed = PairSeed(config.embedding.seed, next_table);
    auto method = embedding::MakeMethod(ec, config.fields);
    if (!method.ok()) return method.status().WithContext("embedding group '" + gs.name + "'");
    auto g = std::make_unique<Group>();
    g->method = method->get();
    g->dim = (*method)->tables().front().dim;
    g->first_table = next_table;
    g->num_tables = (*method)->tables().size();
    for (const auto& spec : (*method)->tables()) {
      // One leaf tensor per group: its tables share a row width.
      if (spec.dim != g->dim)
        return Status::InvalidArgument("embedding group '" + gs.name + "': tables of different widths (" +
                                       std::to_string(spec.dim) + ", " + std::to_string(g->dim) + ")");
      if (spec.id < next_table || spec.id >= next_table + g->num_tables)
        return Status::Internal("method tables are not contiguous");
    }
    for (int f = 0; f < (*method)->num_fields(); ++f) {
      g->probe_offset.push_back(g->total_probes);
      g->total_probes += (*method)->num_probes(f);
      g->widths.push_back((*method)->layout(f).output_dim);
      if (g->widths.back() != gs.dim)
        return Status::InvalidArgument("embedding group '" + gs.name + "': field " + std::to_string(f) + " is " +
                                       std::to_string(g->widths.back()) + " wide, model " + mc.name + " needs " +
                                       std::to_string(gs.dim));
    }
    EMBER_RETURN_IF_ERROR(ps->CreateTables((*method)->tables()));
    next_table += static_cast<uint32_t>(g->num_tables);
    t->groups_.push_back(std::move(g));
    t->methods_.push_back(std::move(method).value());
  }
  const auto params = t->model_->parameters();
  const std::string& opt = config.dense_optimizer;
  if (opt == "adam") {
    t->optimizer_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(config.dense_lr));
  } else if (opt == "adagrad") {
    t->optimizer_ = std::make_unique<torch::optim::Adagrad>(params, torch::optim::AdagradOptions(config.dense_lr));
  } else if (opt == "sgd") {
    t->optimizer_ = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(config.dense_lr));
  } else {
    return Status::InvalidArgument("train.optimizer: unknown dense optimizer '" + opt +
                                   "' (expected adam, adagrad or sgd)");
  }
  return t;
}

Status Trainer::Lookup(const data::Batch& batch, bool training, std::vector<models::GroupInput>* inputs) {
  const size_t B = batch.size;
  if (batch.num_sparse != static_cast<int>(config_.fields.size()))
    return Status::InvalidArgument("batch has " + std::to_string(batch.num_sparse) +
                                   " categorical fields, model expects " + std::to_string(config_.fields.size()));
  inputs->clear();
  std::vector<ps::PullSlice> slices;
  for (auto& gp : groups_) {
    Group& g = *gp;
    const size_t TP = static_cast<size_t>(g.total_probes);
    g.keys.resize(B * TP);
    for (int f = 0; f < g.method->num_fields(); ++f) {
      const size_t P = static_cast<size_t>(g.method->num_probes(f));
      const size_t off = static_cast<size_t>(g.probe_offset[f]);
      if (P == 1 && TP == 1) {
        g.method->MapIds(f, batch.field(f), B, g.keys.data());
        continue;
      }
      g.scratch.resize(B * P);
      g.method->MapIds(f, batch.field(f), B, g.scratch.data());
      for (size_t i = 0; i < B; ++i)
        for (size_t p = 0; p < P; ++p) g.keys[i * TP + off + p] = g.scratch[i * P + p];
    }
    const size_t n = g.keys.size();
    g.inverse = torch::empty({static_cast<int64_t>(n)}, torch::kLong);
    int64_t* inv = g.inverse.data_ptr<int64_t>();
    g.dedup.Dedup(g.keys.data(), n, inv);
    const auto& unique = g.dedup.unique();
    const size_t U = unique.size();
    g.table_begin.assign(g.num_tables + 1, 0);
    if (g.num_tables == 1) {
      g.sorted_unique.assign(unique.begin(), unique.end());
      g.table_begin[1] = U;
    } else {
      // Counting sort by table so that each table's rows are contiguous in the leaf.
      for (uint64_t k : unique) ++g.table_begin[embedding::KeyTable(k) - g.first_table + 1];
      for (size_t t = 0; t < g.num_tables; ++t) g.table_begin[t + 1] += g.table_begin[t];
      std::vector<size_t> fill(g.table_begin.begin(), g.table_begin.end() - 1);
      g.sorted_unique.resize(U);
      g.perm.resize(U);
      for (size_t u = 0; u < U; ++u) {
        const size_t pos = fill[embedding::KeyTable(unique[u]) - g.first_table]++;
        g.sorted_unique[pos] = unique[u];
        g.perm[u] = static_cast<int64_t>(pos);
      }
      for (size_t i = 0; i < n; ++i) inv[i] = g.perm[inv[i]];
    }
    g.rows = torch::empty({static_cast<int64_t>(U), g.dim}, torch::kFloat);
    float* rows = g.rows.data_ptr<float>();
    g.ForEachTable([&](uint32_t table, size_t b, size_t e) {
      ps::PullSlice s;
      s.table = table;
      s.keys = g.sorted_unique.data() + b;
      s.n = e - b;
      s.out = rows + b * g.dim;
      s.create_missing = training;
      slices.push_back(s);
    });
    recorder_->AddCounter("lookup_keys_total", static_cast<double>(n));
    recorder_->AddCounter("lookup_unique_keys_total", static_cast<double>(U));
  }
  EMBER_RETURN_IF_ERROR(ps_->Pull(slices));
  for (auto& gp : groups_) {
    Group& g = *gp;
    if (training) g.rows.requires_grad_(true);
    models::GroupInput in;
    in.values = g.rows.index_select(0, g.inverse).view({static_cast<int64_t>(B), g.total_probes * g.dim});
    in.widths = g.widths;
    inputs->push_back(std::move(in));
  }
  return Status::Ok();
}

Status Trainer::PushGradients() {
  std::vector<ps::PushSlice> slices;
  std::vector<torch::Tensor> keep;
  for (auto& gp : groups_) {
    Group& g = *gp;
    torch::Tensor grad = g.rows.grad();
    if (!grad.defined()) continue;
    grad = grad.contiguous();
    keep.push_back(grad);
    const float* gd = grad.data_ptr<float>();
    g.ForEachTable([&](uint32_t table, size_t b, size_t e) {
      ps::PushSlice s;
      s.table = table;
      s.keys = g.sorted_unique.data() + b;
      s.n = e - b;
      s.grads = gd + b * g.dim;
      slices.push_back(s);
    });
  }
  return ps_->Push(slices);
}

Status Trainer::AllReduceDense() {
  if (collective_->size() <= 1) return Status::Ok();
  auto params = model_->parameters();
  size_t total = 0;
  for (auto& p : params) total += static_cast<size_t>(p.numel());
  flat_grads_.assign(total, 0.0f);
  size_t off = 0;
  for (auto& p : params) {
    const size_t n = static_cast<size_t>(p.numel());
    if (p.grad().defined()) {
      auto g = p.grad().contiguous();
      std::memcpy(flat_grads_.data() + off, g.data_ptr<float>(), n * sizeof(float));
    }
    off += n;
  }
  EMBER_RETURN_IF_ERROR(collective_->AllReduceSum(flat_grads_.data(), total));
  const float scale = 1.0f / static_cast<float>(collective_->size());
  off = 0;
  for (auto& p : params) {
    const size_t n = static_cast<size_t>(p.numel());
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    auto g = torch::from_blob(flat_grads_.data() + off, p.sizes(), torch::kFloat);
    p.mutable_grad().copy_(g * scale);
    off += n;
  }
  return Status::Ok();
}

Status Trainer::TrainStep(const data::Batch& batch, double* loss) {
  if (batch.size == 0) return Status::InvalidArgument("empty batch");
  std::vector<models::GroupInput> inputs;
  EMBER_RETURN_IF_ERROR(Lookup(batch, /*training=*/true, &inputs));
  const int64_t B = static_cast<int64_t>(batch.size);
  Status st = TorchCall("training step", [&] {
    auto dense = torch::from_blob(const_cast<float*>(batch.dense.data()), {B, batch.num_dense}, torch::kFloat);
    auto labels = torch::from_blob(const_cast<float*>(batch.labels.data()), {B}, torch::kFloat);
    optimizer_->zero_grad();
    auto logits = model_->Forward(dense, inputs);
    auto l = torch::binary_cross_entropy_with_logits(logits, labels);
    l.backward();
    if (loss) *loss = l.item<double>();
  });
  EMBER_RETURN_IF_ERROR(st);
  EMBER_RETURN_IF_ERROR(PushGradients());
  EMBER_RETURN_IF_ERROR(AllReduceDense());
  EMBER_RETURN_IF_ERROR(TorchCall("dense optimizer step", [&] { optimizer_->step(); }));
  ++step_;
  recorder_->AddCounter("train_samples_total", static_cast<double>(B));
  recorder_->AddCounter("train_steps_total", 1);
  return Status::Ok();
}

Result<EpochStats> Trainer::TrainEpoch(data::BatchReader* reader, int epoch, int epochs,
                                       const ProgressOptions& progress, const StepCallback& on_step) {
  EpochStats stats;
  model_->train();
  ProgressReporter::Options po;
  po.label = "train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  po.unit = "samples";
  po.tty = progress.tty;
  po.log_interval_s = progress.log_interval_s;
  ProgressReporter reporter(po);
  const auto start = Clock::now();
  data::Batch batch;
  double loss_sum = 0, ema = -1;
  for (;;) {
    auto got = reader->Next(&batch);
    if (!got.ok()) return got.status();
    if (!*got) break;
    double loss = 0;
    EMBER_RETURN_IF_ERROR(TrainStep(batch, &loss));
    stats.samples += batch.size;
    stats.steps += 1;
    loss_sum += loss * static_cast<double>(batch.size);
    ema = ema < 0 ? loss : 0.98 * ema + 0.02 * loss;
    if (on_step) EMBER_RETURN_IF_ERROR(on_step(step_));
    if (progress.enabled) {
      char extra[64];
      std::snprintf(extra, sizeof(extra), "loss %.4f", ema);
      reporter.Update(static_cast<double>(stats.samples), reader->Progress(), extra);
    }
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.mean_loss = stats.samples ? loss_sum / static_cast<double>(stats.samples) : 0;
  if (progress.enabled) {
    char extra[64];
    std::snprintf(extra, sizeof(extra), "mean loss %.4f", stats.mean_loss);
    reporter.Finish(static_cast<double>(stats.samples), extra);
  }
  recorder_->SetGauge("train_loss", stats.mean_loss);
  return stats;
}

Status Trainer::Predict(const data::Batch& batch, std::vector<float>* probabilities) {
  probabilities->resize(batch.size);
  if (batch.size == 0) return Status::Ok();
  torch::NoGradGuard no_grad;
  std::vector<models::GroupInput> inputs;
  EMBER_RETURN_IF_ERROR(Lookup(batch, /*training=*/false, &inputs));
  const int64_t B = static_cast<int64_t>(batch.size);
  return TorchCall("prediction", [&] {
    auto dense = torch::from_blob(const_cast<float*>(batch.dense.data()), {B, batch.num_dense}, torch::kFloat);
    auto p = torch::sigmoid(model_->Forward(dense, inputs)).contiguous();
    std::memcpy(probabilities->data(), p.data_ptr<float>(), batch.size * sizeof(float));
  });
}

Result<EvalResult> Trainer::Evaluate(data::BatchReader* reader, std::vector<float>* probabilities,
                                     std::vector<float>* labels) {
  model_->eval();
  const auto start = Clock::now();
  std::vector<float> all_p, all_y, p;
  data::Batch batch;
  for (;;) {
    auto got = reader->Next(&batch);
    if (!got.ok()) return got.status();
    if (!*got) break;
    EMBER_RETURN_IF_ERROR(Predict(batch, &p));
    all_p.insert(all_p.end(), p.begin(), p.end());
    all_y.insert(all_y.end(), batch.labels.begin(), batch.labels.begin() + static_cast<long>(batch.size));
  }
  model_->train();
  EvalResult r;
  r.samples = all_p.size();
  r.auc = ExactAuc(all_p, all_y);
  r.logloss = LogLoss(all_p, all_y);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  recorder_->SetGauge("eval_auc", r.auc);
  recorder_->SetGauge("eval_logloss", r.logloss);
  if (probabilities) *probabilities = std::move(all_p);
  if (labels) *labels = std::move(all_y);
  return r;
}

Result<std::pair<uint64_t, uint64_t>> Trainer::TableFootprint() {
  EMBER_ASSIGN_OR_RETURN(auto stats, ps_->Stats());
  uint64_t rows = 0, bytes = 0;
  for (const auto& s : stats) {
    rows += s.rows;
    bytes += s.bytes;
  }
  return std::make_pair(rows, bytes);
}

Result<std::string> Trainer::SaveCheckpoint(const std::string& root, const std::string& config_text) {
  const std::string final_dir = root + "/ckpt-" + std::to_string(step_);
  const std::string tmp = final_dir + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  EMBER_RETURN_IF_ERROR(MakeDirs(tmp));
  EMBER_ASSIGN_OR_RETURN(auto files, ps_->SaveShards(tmp));
  nlohmann::json jfiles = nlohmann::json::array();
  for (const auto& f : files)
    jfiles.push_back({{"name", f.name}, {"bytes", f.bytes}, {"checksum", Hex(f.checksum)}, {"kind", "shard"}});
  EMBER_ASSIGN_OR_RETURN(std::string model_bytes, models::SaveModule(*model_));
  std::string opt_bytes;
  EMBER_RETURN_IF_ERROR(TorchCall("saving optimizer", [&] {
    torch::serialize::OutputArchive archive;
    optimizer_->save(archive);
    std::ostringstream os;
    archive.save_to(os);
    opt_bytes = os.str();
  }));
  for (const auto& [name, bytes] :
       {std::pair<std::string, const std::string*>{"dense.pt", &model_bytes}, {"dense_optimizer.pt", &opt_bytes}}) {
    EMBER_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/" + name, *bytes));
    jfiles.push_back(
        {{"name", name}, {"bytes", bytes->size()}, {"checksum", Hex(Checksum(*bytes))}, {"kind", "dense"}});
  }
  nlohmann::json manifest = {
      {"format", kManifestFormat},     {"version", kManifestVersion},     {"step", step_},         {"hash", kHashName},
      {"model", model_->model_name()}, {"num_shards", ps_->num_shards()}, {"config", config_text}, {"files", jfiles}};
  EMBER_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/manifest.json", manifest.dump(2) + "\n"));
  std::filesystem::remove_all(final_dir, ec);
  std::filesystem::rename(tmp, final_dir, ec);
  if (ec) return Status::IoError("cannot rename " + tmp + " to " + final_dir + ": " + ec.message());
  EMBER_RETURN_IF_ERROR(SyncDir(root));
  return final_dir;
}

namespace {
Result<nlohmann::json> ReadManifest(const std::string& path) {
  const std::string file = path + "/manifest.json";
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Corruption(file + ": not valid JSON: " + e.what());
  }
  if (!m.is_object() || m.value("format", "") != kManifestFormat)
    return Status::Corruption(file + ": not an ember checkpoint manifest");
  if (m.value("version", 0) != kManifestVersion) return Status::Corruption(file + ": unsupported manifest version");
  if (m.value("hash", "") != kHashName)
    return Status::FailedPrecondition(file + ": written with hash '" + m.value("hash", "") + "', this build uses " +
                                      kHashName);
  if (!m.contains("files") || !m["files"].is_array() || !m.contains("config") || !m["config"].is_string())
    return Status::Corruption(file + ": missing files or config");
  return m;
}
}  // namespace

Result<std::string> ReadCheckpointConfig(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  return m["config"].get<std::string>();
}

Result<std::string> ResolveCheckpoint(const std::string& path) {
  if (PathExists(path + "/manifest.json")) return path;
  if (!PathExists(path)) return Status::NotFound("checkpoint path " + path + " does not exist");
  int64_t best = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    if (!PathExists(entry.path().string() + "/manifest.json")) continue;
    try {
      best = std::max<int64_t>(best, std::stoll(name.substr(5)));
    } catch (...) {
    }
  }
  if (best < 0) return Status::NotFound("no complete checkpoint (ckpt-N/manifest.json) in " + path);
  return path + "/ckpt-" + std::to_string(best);
}

Status Trainer::RestoreCheckpoint(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  std::vector<ps::ShardFile> shards;
  std::string model_bytes, opt_bytes;
  for (const auto& f : m["files"]) {
    ps::ShardFile sf;
    sf.name = f.value("name", "");
    sf.bytes = f.value("bytes", uint64_t{0});
    sf.checksum = std::stoull(f.value("checksum", "0"), nullptr, 16);
    if (sf.name.empty() || sf.name.find('/') != std::string::npos)
      return Status::Corruption(path + "/manifest.json: bad file name '" + sf.name + "'");
    if (f.value("kind", "") == "shard") {
      shards.push_back(sf);
      continue;
    }
    const std::string file = path + "/" + sf.name;
    EMBER_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
    if (bytes.size() != sf.bytes || Checksum(bytes) != sf.checksum)
      return Status::Corruption(file + ": size or checksum does not match the manifest (file is corrupted)");
    (sf.name == "dense.pt" ? model_bytes : opt_bytes) = std::move(bytes);
  }
  if (model_bytes.empty()) return Status::Corruption(path + ": checkpoint has no dense.pt");
  EMBER_RETURN_IF_ERROR(models::LoadModule(*model_, model_bytes, path + "/dense.pt"));
  if (!opt_bytes.empty()) {
    EMBER_RETURN_IF_ERROR(TorchCall("loading optimizer state", [&] {
                            torch::serialize::InputArchive archive;
                            std::istringstream is(opt_bytes);
                            archive.load_from(is);
                            optimizer_->load(archive);
                          }).WithContext(path + "/dense_optimizer.pt"));
  }
  EMBER_RETURN_IF_ERROR(ps_->LoadShards(path, shards));
  step_ = m.value("step", int64_t{0});
  return Status::Ok();
}

}  // namespace ember::workers
