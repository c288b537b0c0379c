#include "ember/models/ctr_model.h"

#include <sstream>

#include "ember/models/dense_linear.h"
#include "ember/models/fused_ops.h"

namespace ember::models {
namespace {

torch::nn::Sequential Mlp(int64_t in, const std::vector<int64_t>& widths, bool relu_last) {
  torch::nn::Sequential seq;
  for (size_t i = 0; i < widths.size(); ++i) {
    seq->push_back(DenseLinear(in, widths[i]));
    if (i + 1 < widths.size() || relu_last) seq->push_back(torch::nn::ReLU());
    in = widths[i];
  }
  return seq;
}

// An Mlp's forward. Under training (gradients on) each Linear, with the ReLU after it, runs as one
// fused operation (LinearActivation); otherwise the modules' own forward (DenseLinear's inference
// paths).
torch::Tensor MlpForward(torch::nn::Sequential& seq, torch::Tensor x) {
  if (!torch::GradMode::is_enabled()) return seq->forward(x);
  auto it = seq->begin();
  while (it != seq->end()) {
    auto* linear = it->ptr()->as<DenseLinearImpl>();
    if (!linear) {
      x = it->forward(x);
      ++it;
      continue;
    }
    ++it;
    const bool relu = it != seq->end() && it->ptr()->as<torch::nn::ReLUImpl>() != nullptr;
    if (relu) ++it;
    x = LinearActivation(x, linear->weight, linear->bias, relu);
  }
  return x;
}

// first-order sum + dense linear term, [B]
torch::Tensor LinearTerms(DenseLinear& dense_linear, int num_dense, const torch::Tensor& dense,
                          const torch::Tensor& first_order) {
  const int64_t B = dense.size(0);
  auto lin = num_dense > 0 ? dense_linear->forward(dense).squeeze(1) : dense_linear->bias.expand({B});
  return lin + first_order.sum(1);
}

// 0.5 * ((sum_f e_f)^2 - sum_f e_f^2) summed over the width, [B]
torch::Tensor FmPairs(const torch::Tensor& e) {
  auto sum = e.sum(1);
  return 0.5 * (sum * sum - (e * e).sum(1)).sum(1);
}

// Without dense features (Avazu) there is no bottom MLP: the interactions are the fields' alone.
class Dlrm final : public CtrModel {
 public:
  explicit Dlrm(const CtrModelConfig& c) : c_(c) {
    const bool bottom = c.num_dense > 0;
    if (bottom) {
      std::vector<int64_t> widths = c.bottom_mlp;
      widths.push_back(c.embedding_dim);
      bottom_ = register_module("bottom", Mlp(c.num_dense, widths, true));
    }
    const int64_t n = c.num_fields + (bottom ? 1 : 0);
    std::vector<int64_t> flat;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) flat.push_back(i * n + j);
    tri_ = register_buffer("tri", torch::tensor(flat, torch::kLong));
    std::vector<int64_t> top = c.top_mlp;
    top.push_back(1);
    top_ = register_module("top", Mlp((bottom ? c.embedding_dim : 0) + static_cast<int64_t>(flat.size()), top, false));
    if (c.first_order) dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0), F = c_.num_fields, d = c_.embedding_dim;
    torch::Tensor out;
    if (!bottom_) {
      out = MlpForward(top_, DotInteraction(groups[0].values.view({B, F, d}), tri_)).squeeze(1);
    } else {
      auto x = MlpForward(bottom_, dense);  // [B, d]
      // [B, d + F(F+1)/2]: x, then the dot products of the pairs of (x, e_1 .. e_F)
      out = MlpForward(top_, DotInteractionWithDense(x, groups[0].values, tri_)).squeeze(1);
    }
    return dense_linear_ ? out + LinearTerms(dense_linear_, c_.num_dense, dense, groups[1].values) : out;
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "dlrm"; }

 private:
  CtrModelConfig c_;
  torch::nn::Sequential bottom_{nullptr}, top_{nullptr};
  DenseLinear dense_linear_{nullptr};  // first_order
  torch::Tensor tri_;
};

class DeepFm final : public CtrModel {
 public:
  explicit DeepFm(const CtrModelConfig& c) : c_(c) {
    std::vector<int64_t> deep = c.top_mlp;
    deep.push_back(1);
    deep_ = register_module("deep", Mlp(int64_t{c.num_fields} * c.embedding_dim + c.num_dense, deep, false));
    dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0), F = c_.num_fields, d = c_.embedding_dim;
    auto e = groups[0].values.view({B, F, d});
    auto deep = MlpForward(deep_, torch::cat({groups[0].values, dense}, 1)).squeeze(1);
    return FmPairs(e) + deep + LinearTerms(dense_linear_, c_.num_dense, dense, groups[1].values);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "deepfm"; }

 private:
  CtrModelConfig c_;
  torch::nn::Sequential deep_{nullptr};
  DenseLinear dense_linear_{nullptr};
};

class LogisticRegression final : public CtrModel {
 public:
  explicit LogisticRegression(const CtrModelConfig& c) : c_(c) {
    dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    return LinearTerms(dense_linear_, c_.num_dense, dense, groups[0].values);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "lr"; }

 private:
  CtrModelConfig c_;
  DenseLinear dense_linear_{nullptr};
};

class DcnV2 final : public CtrModel {
 public:
  explicit DcnV2(const CtrModelConfig& c) : c_(c) {
    const int64_t in = int64_t{c.num_fields} * c.embedding_dim + c.num_dense;
    for (int l = 0; l < c.cross_layers; ++l) {
      const std::string n = "cross" + std::to_string(l);
      if (c.cross_rank > 0) {
        v_.push_back(register_module(n + "_v", DenseLinear(torch::nn::LinearOptions(in, c.cross_rank).bias(false))));
        u_.push_back(register_module(n + "_u", DenseLinear(c.cross_rank, in)));
      } else {
        u_.push_back(register_module(n, DenseLinear(in, in)));
      }
    }
    const bool stacked = c.cross_structure == CrossStructure::kStacked;
    if (c.top_mlp.empty()) {
      head_ = register_module("head", DenseLinear(in, 1));
    } else {
      mlp_ = register_module("mlp", Mlp(in, c.top_mlp, true));
      head_ = register_module("head", DenseLinear(c.top_mlp.back() + (stacked ? 0 : in), 1));
    }
    if (c.first_order) dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    auto x0 = c_.num_dense > 0 ? torch::cat({dense, groups[0].values}, 1) : groups[0].values;
    auto x = x0;
    for (size_t l = 0; l < u_.size(); ++l) {
      auto w = c_.cross_rank > 0 ? u_[l]->forward(v_[l]->forward(x)) : u_[l]->forward(x);
      x = x0 * w + x;
    }
    torch::Tensor out;
    if (!mlp_)
      out = head_->forward(x).squeeze(1);
    else if (c_.cross_structure == CrossStructure::kStacked)
      out = head_->forward(MlpForward(mlp_, x)).squeeze(1);
    else
      out = head_->forward(torch::cat({x, MlpForward(mlp_, x0)}, 1)).squeeze(1);
    return dense_linear_ ? out + LinearTerms(dense_linear_, c_.num_dense, dense, groups[1].values) : out;
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "dcn_v2"; }

 private:
  CtrModelConfig c_;
  std::vector<DenseLinear> u_, v_;
  torch::nn::Sequential mlp_{nullptr};
  DenseLinear head_{nullptr};
  DenseLinear dense_linear_{nullptr};  // first_order
};

class WideDeep final : public CtrModel {
 public:
  explicit WideDeep(const CtrModelConfig& c) : c_(c) {
    std::vector<int64_t> deep = c.top_mlp;
    deep.push_back(1);
    deep_ = register_module("deep", Mlp(int64_t{c.num_fields} * c.embedding_dim + c.num_dense, deep, false));
    dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    auto deep_in = c_.num_dense > 0 ? torch::cat({groups[0].values, dense}, 1) : groups[0].values;
    return LinearTerms(dense_linear_, c_.num_dense, dense, groups[1].values) + MlpForward(deep_, deep_in).squeeze(1);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "wide_deep"; }

 private:
  CtrModelConfig c_;
  torch::nn::Sequential deep_{nullptr};
  DenseLinear dense_linear_{nullptr};
};

class Fm final : public CtrModel {
 public:
  explicit Fm(const CtrModelConfig& c) : c_(c) {
    dense_linear_ = register_module("dense_linear", DenseLinear(std::max(1, c.num_dense), 1));
  }
  torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) override {
    const int64_t B = dense.size(0);
    auto e = groups[0].values.view({B, c_.num_fields, c_.embedding_dim});
    return LinearTerms(dense_linear_, c_.num_dense, dense, groups[1].values) + FmPairs(e);
  }
  std::vector<EmbeddingGroupSpec> embedding_groups() const override { return EmbeddingGroupsOf(c_); }
  std::string model_name() const override { return "fm"; }

 private:
  CtrModelConfig c_;
  DenseLinear dense_linear_{nullptr};
};

Status CheckWidths(const std::vector<int64_t>& widths, const char* key) {
  for (int64_t w : widths)
    if (w <= 0 || w > 65536)
      return Status::InvalidArgument(std::string(key) + ": layer widths must be in [1, 65536], got " +
                                     std::to_string(w));
  return Status::Ok();
}

}  // namespace

std::vector<EmbeddingGroupSpec> EmbeddingGroupsOf(const CtrModelConfig& c) {
  switch (c.kind) {
    case ModelKind::kLr:
      return {{"linear", 1, true}};
    case ModelKind::kDeepFm:
    case ModelKind::kWideDeep:
    case ModelKind::kFm:
      return {{"main", c.embedding_dim}, {"linear", 1, true}};
    default:
      if (c.first_order) return {{"main", c.embedding_dim}, {"linear", 1, true}};
      return {{"main", c.embedding_dim}};
  }
}

Result<std::shared_ptr<CtrModel>> MakeCtrModel(const CtrModelConfig& c) {
  if (c.num_fields < 1) return Status::InvalidArgument("model needs at least one categorical field");
  if (c.num_dense < 0) return Status::InvalidArgument("negative dense feature count");
  if (c.embedding_dim < 1) return Status::InvalidArgument("embedding.dim must be >= 1");
  EMBER_RETURN_IF_ERROR(CheckWidths(c.bottom_mlp, "model.bottom_mlp"));
  EMBER_RETURN_IF_ERROR(CheckWidths(c.top_mlp, "model.top_mlp"));
  try {
    if (c.kind == ModelKind::kDlrm) {
      return std::shared_ptr<CtrModel>(std::make_shared<Dlrm>(c));
    }
    if (c.kind == ModelKind::kDeepFm) return std::shared_ptr<CtrModel>(std::make_shared<DeepFm>(c));
    if (c.kind == ModelKind::kLr) return std::shared_ptr<CtrModel>(std::make_shared<LogisticRegression>(c));
    if (c.kind == ModelKind::kDcnV2) {
      if (c.cross_layers < 0 || c.cross_layers > 64)
        return Status::InvalidArgument("model.cross_layers must be in [0, 64], got " + std::to_string(c.cross_layers));
      if (c.cross_rank < 0) return Status::InvalidArgument("model.cross_rank must be >= 0");
      return std::shared_ptr<CtrModel>(std::make_shared<DcnV2>(c));
    }
    if (c.kind == ModelKind::kWideDeep) return std::shared_ptr<CtrModel>(std::make_shared<WideDeep>(c));
    if (c.kind == ModelKind::kFm) return std::shared_ptr<CtrModel>(std::make_shared<Fm>(c));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("building model: ") + e.what());
  }
  return Status::InvalidArgument(std::string("model.name: '") + ModelKindName(c.kind) +
                                 "' is not a CTR model (dlrm, deepfm, lr, dcn_v2, wide_deep or fm)");
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

torch::Tensor GatherSlots(const torch::Tensor& leaf, const torch::Tensor& index, const torch::Tensor& offsets,
                          const torch::Tensor& weights, int64_t n, int64_t width) {
  if (!offsets.defined()) return GatherRows(leaf, index).view({n, width});
  // Sum mode with per-entry weights; include_last_offset: offsets holds every slot's end too.
  auto pooled = std::get<0>(torch::embedding_bag(leaf, index, offsets, /*scale_grad_by_freq=*/false, /*mode=*/0,
                                                 /*sparse=*/false, weights, /*include_last_offset=*/true));
  return pooled.view({n, width});
}

torch::Tensor SumProbes(const torch::Tensor& values, int64_t probes, int64_t dim) {
  const int64_t n = values.size(0);
  return values.view({n, -1, probes, dim}).sum(2).view({n, -1});
}

}  // namespace ember::models
