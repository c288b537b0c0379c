// What a Trainer writes and reads besides its steps: its model description, exports, table
// infos for metrics, and checkpoints (trainer.h).
#include <nlohmann/json.hpp>

#include "checkpoint_dir.h"
#include "ember/workers/trainer.h"
#include "trainer_internal.h"

namespace ember::workers {

const char* RowResetName(RowReset r) {
  return r == RowReset::kEachEpoch ? "each_epoch" : r == RowReset::kNever ? "never" : "auto";
}

Status Trainer::ResetRows() {
  for (const auto& g : groups_) {
    if (g->first_order || g->optembed_supernet) continue;
    for (size_t i = 0; i < g->num_tables; ++i) {
      ps::TableOp op;
      op.kind = ps::TableOp::Kind::kResetRows;
      op.table = g->first_table + static_cast<uint32_t>(i);
      EMBER_RETURN_IF_ERROR(
          ps_->Apply(op).status().WithContext("resetting the rows of table " + std::to_string(op.table)));
    }
  }
  return Status::Ok();
}

embedding::ModelDescription Trainer::Describe() const {
  embedding::ModelDescription d;
  const auto& mc = config_.model;
  d.model = models::ModelKindName(mc.kind);
  d.num_dense = mc.num_dense;
  d.embedding_dim = config_.embedding.dim;
  d.bottom_mlp = mc.bottom_mlp;
  d.top_mlp = mc.top_mlp;
  d.cross_layers = mc.cross_layers;
  d.cross_structure = models::CrossStructureName(mc.cross_structure);
  d.cross_rank = mc.cross_rank;
  d.first_order = mc.first_order;
  d.fields = config_.fields;
  d.input_schema = config_.input_schema;
  const auto specs = model_->embedding_groups();
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    d.groups.push_back({specs[gi].name, specs[gi].dim, groups_[gi]->config});
  d.step = step_;
  return d;
}

Status Trainer::Export(embedding::ExportWriter* writer) const {
  if (thresholds_.defined())
    return Status::FailedPrecondition(
        "an OptEmbed supernet is not exported: export the final checkpoint (its retrained, pruned tables)");
  writer->SetModel(Describe().ToJson());
  for (const auto& item : model_->named_parameters()) {
    auto t = item.value().detach().to(torch::kCPU).contiguous();
    EMBER_RETURN_IF_ERROR(writer->AddDense(item.key(), t.sizes().vec(), t.data_ptr<float>()));
  }
  for (const auto& item : model_->named_buffers()) {
    auto t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    EMBER_RETURN_IF_ERROR(writer->AddDense("buffer:" + item.key(), t.sizes().vec(), t.data_ptr<float>()));
  }
  return Status::Ok();
}

std::vector<TableInfo> Trainer::TableInfos() const {
  std::vector<TableInfo> infos;
  const auto groups = model_->embedding_groups();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const embedding::EmbeddingMethod& m = *groups_[gi]->method;
    const size_t first = infos.size();
    for (size_t t = 0; t < m.tables().size(); ++t) {
      TableInfo info;
      info.table = m.tables()[t].id;
      info.method = m.name();
      info.hashed = m.hashed(t);
      info.capacity = info.hashed ? m.tables()[t].rows : 0;
      infos.push_back(info);
    }
    // A field's full table (vocab x the group's width, fp32) is split over its probes' tables in
    // proportion to the probes' widths.
    bool known = true;
    for (int f = 0; f < m.num_fields(); ++f) {
      const auto& l = m.layout(f);
      const uint64_t vocab = config_.fields[static_cast<size_t>(f)].vocab;
      known &= vocab > 0;
      int width = 0;
      for (int d : l.probe_dims) width += d;
      for (size_t p = 0; p < l.probe_tables.size() && width > 0; ++p) {
        TableInfo& info = infos[first + (l.probe_tables[p] - m.tables()[0].id)];
        info.ids += vocab;
        info.full_bytes += vocab * static_cast<uint64_t>(groups[gi].dim) * sizeof(float) *
                           static_cast<uint64_t>(l.probe_dims[p]) / static_cast<uint64_t>(width);
      }
    }
    if (!known)
      for (size_t i = first; i < infos.size(); ++i) infos[i].full_bytes = infos[i].ids = 0;
  }
  return infos;
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

Result<std::string> Trainer::SaveCheckpoint(const std::string& root, const std::string& config_text,
                                            const std::string& name, Env* env) {
  // A pull of the next step's rows may be in flight (creating rows): the shards are written
  // after it, so the checkpoint and the rows in hand agree.
  if (prefetch_.batch) prefetch_.done.wait();
  nlohmann::json manifest = {{"step", step_}, {"model", model_->model_name()}};
  manifest["position"] = {{"epoch", position_.epoch}, {"examples", position_.examples}};
  if (position_.cursor.valid)
    manifest["position"]["cursor"] = {
        {"file", position_.cursor.file}, {"offset", position_.cursor.offset}, {"line", position_.cursor.line}};
  // The sizes a budget chose (rows of hashed tables, DSL density), the vocabularies and
  // OptEmbed's widths: ids map to rows through them (ApplyCheckpointEmbedding).
  manifest["description"] = Describe().ToJson();
  if (!run_state_.is_null()) manifest["run"] = run_state_;
  if (config_.embedding.method == embedding::Method::kOptEmbed) {
    nlohmann::json oe = {{"stage", config_.embedding.field_widths.empty() ? "supernet" : "retrain"}};
    if (thresholds_.defined()) oe["thresholds"] = thresholds();
    manifest["optembed"] = oe;
  }
  return WriteCheckpointDir(root, name.empty() ? "ckpt-" + std::to_string(step_) : name, ps_, *model_, *optimizer_,
                            config_text, std::move(manifest), env);
}

Status Trainer::RestoreCheckpoint(const std::string& path, bool load_shards, Env* env) {
  if (prefetch_.batch) return Status::FailedPrecondition("restore while the next batch's rows are in flight");
  sync_.Restarted();
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path, env));
  EMBER_RETURN_IF_ERROR(LoadCheckpointDir(path, m, ps_, *model_, *optimizer_, load_shards, env));
  step_ = m.value("step", int64_t{0});
  run_state_ = m.contains("run") && m["run"].is_object() ? m["run"] : nlohmann::json();
  EMBER_ASSIGN_OR_RETURN(position_, ReadPosition(path, m));
  if (thresholds_.defined() && m.contains("optembed") && m["optembed"].contains("thresholds")) {
    std::vector<float> t;
    try {
      t = m["optembed"]["thresholds"].get<std::vector<float>>();
    } catch (const std::exception& e) {
      return Status::Corruption(path + "/manifest.json: bad optembed thresholds: " + e.what());
    }
    if (static_cast<int64_t>(t.size()) != thresholds_.numel())
      return Status::Corruption(path + "/manifest.json: " + std::to_string(t.size()) + " thresholds for " +
                                std::to_string(thresholds_.numel()) + " fields");
    torch::NoGradGuard no_grad;
    thresholds_.copy_(torch::from_blob(t.data(), {static_cast<int64_t>(t.size())}, torch::kFloat));
  }
  return Status::Ok();
}

}  // namespace ember::workers
