#include "ember/serving/model.h"

#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "ember/data/vocab.h"
#include "ember/embedding/batch_ids.h"
#include "ember/embedding/lookup.h"
#include "ember/embedding/model_description.h"
#include "ember/models/ctr_model.h"
#include "ember/models/dense_linear.h"

namespace ember::serving {

struct ServingModel::Impl {
  struct Group {
    std::unique_ptr<embedding::EmbeddingMethod> method;
    int model_dim = 0;   // the model's width per field
    int slot_dim = 0;    // one probe's slot: the widest table (narrower rows zero-padded)
    int max_probes = 0;  // slots per field (fields with fewer probes read zero slots)
    // Trained on a vocabulary (MethodConfig::vocabulary): the key of each one-row-per-value
    // table's out-of-vocabulary row, which a value without a row of its own reads.
    std::map<uint32_t, uint64_t> oov_keys;
  };
  std::shared_ptr<models::CtrModel> model;
  torch::Device device = torch::kCPU;
  std::vector<Group> groups;
  std::map<uint32_t, std::unique_ptr<embedding::ExportedTable>> tables;
};

ServingModel::~ServingModel() = default;

std::string ServingModel::version() const {
  const std::string& p = file_->path();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

double ServingModel::age_seconds() const {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::max(0.0, (std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() - written_ns_) * 1e-9);
}

std::string ServingModel::kind() const { return file_->model().value("kind", "ctr"); }

uint64_t ServingModel::rows() const {
  uint64_t r = 0;
  for (const auto& [id, t] : impl_->tables) r += t->rows();
  return r;
}

Result<std::unique_ptr<ServingModel>> ServingModel::Load(const std::string& path, const std::string& device,
                                                         const std::string& dense_precision) {
  if (device != "cpu" && device != "cuda")
    return Status::InvalidArgument("--device '" + device + "' is not one of cpu, cuda");
  EMBER_ASSIGN_OR_RETURN(const models::DensePrecision precision, models::ParseDensePrecision(dense_precision));
  if (precision != models::DensePrecision::kFp32 && device != "cpu")
    return Status::InvalidArgument(std::string("dense precision ") + dense_precision +
                                   " runs on the CPU only, not --device " + device);
  if (device == "cuda" && !torch::cuda::is_available())
    return Status::InvalidArgument(
        "--device cuda: no CUDA device here (this build's LibTorch has no CUDA, or no GPU is visible)");
  std::unique_ptr<ServingModel> m(new ServingModel());
  EMBER_ASSIGN_OR_RETURN(m->file_, embedding::ExportFile::Open(path));
  m->impl_ = std::make_unique<Impl>();
  const auto& j = m->file_->model();
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (j.value("kind", "") != "ctr") return bad("model kind '" + j.value("kind", "") + "' is not served (ctr only)");
  auto described = embedding::ModelDescription::FromJson(j);
  if (!described.ok()) return described.status().WithContext(path);
  const embedding::ModelDescription& d = *described;
  models::CtrModelConfig mc;
  {
    auto kind = models::ParseModelKind(d.model);
    if (!kind.ok()) return bad(kind.status().message());
    mc.kind = *kind;
  }
  mc.num_dense = d.num_dense;
  mc.num_fields = static_cast<int>(d.fields.size());
  mc.embedding_dim = d.embedding_dim;
  mc.bottom_mlp = d.bottom_mlp;
  mc.top_mlp = d.top_mlp;
  mc.cross_layers = d.cross_layers;
  mc.cross_rank = d.cross_rank;
  mc.first_order = d.first_order;
  {
    auto structure = models::ParseCrossStructure(d.cross_structure);
    if (!structure.ok()) return bad(structure.status().message());
    mc.cross_structure = *structure;
  }
  for (const auto& described_group : d.groups) {
    embedding::MethodConfig gm = described_group.method;
    auto method = embedding::MakeMethod(gm, d.fields);
    if (!method.ok()) return method.status().WithContext(path);
    // Unified's frequent values are the values their tables hold a row for.
    if (std::any_of(gm.frequent_counts.begin(), gm.frequent_counts.end(), [](uint64_t n) { return n > 0; })) {
      auto frequent = std::make_shared<embedding::FrequentValues>();
      frequent->fields.resize(d.fields.size());
      for (int f = 0; f < (*method)->num_fields(); ++f) {
        const int64_t id = (*method)->frequent_table(f);
        if (id < 0) continue;
        EMBER_ASSIGN_OR_RETURN(auto t, embedding::ExportedTable::Open(*m->file_, static_cast<uint32_t>(id)));
        const uint64_t rows = embedding::UnifiedFrequentRows(gm, static_cast<size_t>(f));
        for (uint64_t i = 0; i < t->rows(); ++i) {
          const uint64_t local = embedding::KeyLocal(t->key(i));
          if (local % rows == 0) frequent->fields[f].insert(local / rows);
        }
        gm.frequent_counts[f] = frequent->fields[f].size();
      }
      gm.frequent = std::move(frequent);
      method = embedding::MakeMethod(gm, d.fields);
      if (!method.ok()) return method.status().WithContext(path);
    }
    const auto& g = described_group;
    Impl::Group group;
    group.method = std::move(method).value();
    group.model_dim = g.dim;
    group.slot_dim = group.method->slot_dim();
    group.max_probes = group.method->max_probes();
    if (group.method->field_dim() != group.model_dim) return bad("a group's slots do not match its width");
    if (g.method.vocabulary) {
      const embedding::EmbeddingMethod& em = *group.method;
      const uint64_t oov = data::kOovId;
      for (int f = 0; f < em.num_fields(); ++f) {
        if (em.num_probes(f) != 1) continue;  // one row per value is one probe per value
        uint64_t key = 0;
        em.MapIds(f, &oov, 1, &key);
        const size_t i = embedding::KeyTable(key) - em.tables()[0].id;
        // Not where a missing row means something else: a value not admitted (its fallback row),
        // or pruned by OptEmbed (zeros or its hashed fallback).
        if (i < em.tables().size() && !em.hashed(i) && !em.admits(i) && !em.tables()[i].frozen)
          group.oov_keys[embedding::KeyTable(key)] = key;
      }
    }
    for (const auto& spec : group.method->tables()) {
      if (m->impl_->tables.count(spec.id)) continue;
      EMBER_ASSIGN_OR_RETURN(auto t, embedding::ExportedTable::Open(*m->file_, spec.id));
      if (t->spec().dim != spec.dim) return bad("table " + std::to_string(spec.id) + " width differs from its method");
      m->impl_->tables[spec.id] = std::move(t);
    }
    m->impl_->groups.push_back(std::move(group));
  }
  m->num_dense_ = mc.num_dense;
  m->num_sparse_ = mc.num_fields;
  m->step_ = d.step;
  {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
      m->written_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  if (d.input_schema.empty()) {
    m->schema_ = data::CriteoSchema(mc.num_dense, mc.num_fields);
  } else {
    auto schema = data::Schema::FromJson(d.input_schema);
    if (!schema.ok()) return schema.status().WithContext(path);
    if (schema->num_dense() != mc.num_dense || schema->num_fields() != mc.num_fields)
      return bad("the input schema's columns do not match the model's fields");
    m->schema_ = std::move(schema).value();
  }
  EMBER_ASSIGN_OR_RETURN(m->impl_->model, models::MakeCtrModel(mc));
  if (m->impl_->model->embedding_groups().size() != m->impl_->groups.size())
    return bad("the model has a different number of embedding groups than the file");
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor t) -> Status {
    std::vector<int64_t> shape;
    const float* data = m->file_->Dense(name, &shape);
    if (!data) return bad("dense weights '" + name + "' missing");
    if (shape != t.sizes().vec()) return bad("dense weights '" + name + "' have another shape");
    t.copy_(torch::from_blob(const_cast<float*>(data), t.sizes(), torch::kFloat));
    return Status::Ok();
  };
  for (auto& item : m->impl_->model->named_parameters()) EMBER_RETURN_IF_ERROR(load(item.key(), item.value()));
  for (auto& item : m->impl_->model->named_buffers()) EMBER_RETURN_IF_ERROR(load("buffer:" + item.key(), item.value()));
  m->impl_->device = device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  m->impl_->model->to(m->impl_->device);
  m->impl_->model->eval();
  EMBER_RETURN_IF_ERROR(models::SetDensePrecision(*m->impl_->model, precision).WithContext(path));
  m->dense_precision_ = models::DensePrecisionName(precision);
  return m;
}

Status ServingModel::Predict(const data::Batch& batch, std::vector<float>* probabilities) const {
  const size_t B = batch.size;
  probabilities->resize(B);
  if (B == 0) return Status::Ok();
  if (batch.num_sparse != num_sparse_ || batch.num_dense != num_dense_)
    return Status::InvalidArgument("batch has " + std::to_string(batch.num_dense) + " dense and " +
                                   std::to_string(batch.num_sparse) + " categorical fields, the model expects " +
                                   std::to_string(num_dense_) + " and " + std::to_string(num_sparse_));
  // The trainer's lookup (embedding::BatchLookup), reading rows from the exported tables.
  std::vector<models::GroupInput> inputs;
  for (const auto& g : impl_->groups) {
    embedding::BatchLookup lookup(g.method.get());
    embedding::PrepareLookup(batch, &lookup);
    const size_t D = static_cast<size_t>(g.slot_dim);
    torch::Tensor leaf = torch::zeros({static_cast<int64_t>(lookup.leaf_rows()), g.slot_dim}, torch::kFloat);
    float* rows = leaf.data_ptr<float>();
    lookup.ForEachTable([&](uint32_t id, size_t b, size_t e, bool admits) {
      const embedding::ExportedTable& table = *impl_->tables.at(id);
      const auto oov = g.oov_keys.find(id);
      for (size_t pos = b; pos < e; ++pos) {
        bool found = table.Lookup(lookup.sorted_keys()[pos], rows + pos * D);
        // Outside the training vocabulary: the field's out-of-vocabulary row.
        if (!found && oov != g.oov_keys.end()) found = table.Lookup(oov->second, rows + pos * D);
        if (admits) lookup.own()[pos] = found;  // a value never admitted reads its fallback row, as in training
      }
    });
    lookup.ApplyFallbacks();
    auto& slots = lookup.slots();
    const int64_t width = static_cast<int64_t>(g.method->num_fields()) * g.max_probes * g.slot_dim;
    models::GroupInput in;
    torch::Tensor offsets, weights;
    if (lookup.bagged()) {
      auto& o = lookup.bag_offsets();
      auto& w = lookup.bag_weights();
      offsets = torch::from_blob(o.data(), {static_cast<int64_t>(o.size())}, torch::kLong);
      weights = torch::from_blob(w.data(), {static_cast<int64_t>(w.size())}, torch::kFloat);
    }
    in.values =
        models::GatherSlots(leaf, torch::from_blob(slots.data(), {static_cast<int64_t>(slots.size())}, torch::kLong),
                            offsets, weights, static_cast<int64_t>(B), width)
            .to(impl_->device);
    if (g.method->sums_probes()) in.values = models::SumProbes(in.values, g.max_probes, g.slot_dim);
    in.widths.assign(static_cast<size_t>(g.method->num_fields()), g.model_dim);
    inputs.push_back(std::move(in));
  }
  try {
    torch::NoGradGuard no_grad;
    const int64_t b = static_cast<int64_t>(B);
    auto dense =
        torch::from_blob(const_cast<float*>(batch.dense.data()), {b, batch.num_dense}, torch::kFloat).to(impl_->device);
    auto p = torch::sigmoid(impl_->model->Forward(dense, inputs)).to(torch::kCPU).contiguous();
    std::memcpy(probabilities->data(), p.data_ptr<float>(), B * sizeof(float));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("prediction: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace ember::serving
