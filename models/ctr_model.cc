#include "ember/models/ctr_model.h"

#include <sstream>

namespace ember::models {
namespace {

torch::nn::Sequential Mlp(int64_t in, const std::vector<int64_t>& widths, bool relu_last) {
  torch::nn::Sequential seq;
  for (size_t i = 0; i < widths.size(); ++i) {
    seq->push_back(torch::nn::Linear(in, widths[i]));
    if (i + 1 < widths.size() || relu_last) seq->push_back(torch::nn::ReLU());
    in = widths[i];
  }
  return seq;
}

class Dlrm final : public CtrModel {
 public:
  explicit Dlrm(const CtrModelConfig& c) : c_(c) {
    std::vector<int64_t> bottom = c.bottom_mlp;
    bottom.push_back(c.embedding_dim);
    bottom_ = register_module("bottom", Mlp(c.num_dense, bottom, true));
    const int64_t n = c.num_fields + 1;
    std::vector<int64_t> flat;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) flat.push_back(i * n + j);
    tri_ = register_buffer("tri", torch::tensor(flat, torch::kLong));
    std::vector<int64_t> top = c.top_mlp;
    top.push_back(1);
    top_ = register_module("top", Mlp(c.embedding_dim + static_cast<int64_t>(flat.size()), top, false));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0), F = c_.num_fields, d = c_.embedding_dim;
    auto x = bottom_->forward(dense);                                        // [B, d]
    auto e = groups[0].values.view({B, F, d});                               // [B, F, d]
    auto t = torch::cat({x.unsqueeze(1), e}, 1);                             // [B, F+1, d]
    auto z = torch::bmm(t, t.transpose(1, 2)).view({B, (F + 1) * (F + 1)});  // [B, (F+1)^2]
    auto inter = z.index_select(1, tri_);                                    // [B, F(F+1)/2]
    return top_->forward(torch::cat({x, inter}, 1)).squeeze(1);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return {{"main", c_.embedding_dim}}; }
  std::string model_name() const override { return "dlrm"; }

 private:
  CtrModelConfig c_;
  torch::nn::Sequential bottom_{nullptr}, top_{nullptr};
  torch::Tensor tri_;
};

class DeepFm final : public CtrModel {
 public:
  explicit DeepFm(const CtrModelConfig& c) : c_(c) {
    std::vector<int64_t> deep = c.top_mlp;
    deep.push_back(1);
    deep_ = register_module("deep", Mlp(int64_t{c.num_fields} * c.embedding_dim + c.num_dense, deep, false));
    dense_linear_ = register_module("dense_linear", torch::nn::Linear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0), F = c_.num_fields, d = c_.embedding_dim;
    auto e = groups[0].values.view({B, F, d});
    auto sum = e.sum(1);
    auto fm = 0.5 * (sum * sum - (e * e).sum(1)).sum(1);  // [B]
    auto first = groups[1].values.sum(1);                 // [B]
    auto deep = deep_->forward(torch::cat({groups[0].values, dense}, 1)).squeeze(1);
    auto lin = c_.num_dense > 0 ? dense_linear_->forward(dense).squeeze(1) : dense_linear_->bias.expand({B});
    return fm + first + deep + lin;
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override {
    return {{"main", c_.embedding_dim}, {"linear", 1}};
  }
  std::string model_name() const override { return "deepfm"; }

 private:
  CtrModelConfig c_;
  torch::nn::Sequential deep_{nullptr};
  torch::nn::Linear dense_linear_{nullptr};
};

class LogisticRegression final : public CtrModel {
 public:
  explicit LogisticRegression(const CtrModelConfig& c) : c_(c) {
    dense_linear_ = register_module("dense_linear", torch::nn::Linear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0);
    auto lin = c_.num_dense > 0 ? dense_linear_->forward(dense).squeeze(1) : dense_linear_->bias.expand({B});
    return lin + groups[0].values.sum(1);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return {{"linear", 1}}; }
  std::string model_name() const override { return "lr"; }

 private:
  CtrModelConfig c_;
  torch::nn::Linear dense_linear_{nullptr};
};

Status CheckWidths(const std::vector<int64_t>& widths, const char* key) {
  for (int64_t w : widths)
    if (w <= 0 || w > 65536)
      return Status::InvalidArgument(std::string(key) + ": layer widths must be in [1, 65536], got " +
                                     std::to_string(w));
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<CtrModel>> MakeCtrModel(const CtrModelConfig& c) {
  if (c.num_fields < 1) return Status::InvalidArgument("model needs at least one categorical field");
  if (c.num_dense < 0) return Status::InvalidArgument("negative dense feature count");
  if (c.embedding_dim < 1) return Status::InvalidArgument("embedding.dim must be >= 1");
  EMBER_RETURN_IF_ERROR(CheckWidths(c.bottom_mlp, "model.bottom_mlp"));
  EMBER_RETURN_IF_ERROR(CheckWidths(c.top_mlp, "model.top_mlp"));
  try {
    if (c.kind == ModelKind::kDlrm) {
      if (c.num_dense < 1) return Status::InvalidArgument("dlrm needs dense features for its bottom MLP");
      return std::shared_ptr<CtrModel>(std::make_shared<Dlrm>(c));
    }
    if (c.kind == ModelKind::kDeepFm) return std::shared_ptr<CtrModel>(std::make_shared<DeepFm>(c));
    if (c.kind == ModelKind::kLr) return std::shared_ptr<CtrModel>(std::make_shared<LogisticRegression>(c));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("building model: ") + e.what());
  }
  return Status::InvalidArgument(std::string("model.name: '") + ModelKindName(c.kind) +
                                 "' is not a CTR model (dlrm, deepfm or lr)");
}

Result<std::string> SaveModule(torch::nn::Module& module) {
  try {
    torch::serialize::OutputArchive archive;
    module.save(archive);
    std::ostringstream os;
    archive.save_to(os);
    return os.str();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("saving model: ") + e.what());
  }
}

Status LoadModule(torch::nn::Module& module, const std::string& bytes, const std::string& source) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream is(bytes);
    // Onto the device the module lives on (a CPU checkpoint loads onto a GPU model and back).
    const auto params = module.parameters();
    archive.load_from(is, params.empty() ? c10::optional<torch::Device>() : params[0].device());
    module.load(archive);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Corruption(source + ": cannot load model weights: " + e.what());
  }
}

}  // namespace ember::models
