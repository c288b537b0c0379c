#include "ember/models/session_model.h"

#include "ember/common/status.h"

namespace ember::models {

SessionModelImpl::SessionModelImpl(const SessionModelConfig& config) : config_(config) {
  const std::string pooling =
      config.pooling.empty() ? (config.kind == ModelKind::kSasRec ? "last" : "mean") : config.pooling;
  EMBER_CHECK(pooling == "mean" || pooling == "last") << "model.pooling must be \"mean\" or \"last\"";
  mean_pool_ = pooling == "mean";
  const int64_t d = config.item_dim;
  pos_ = register_parameter("pos", torch::randn({config.max_length, d}) * 0.02);
  input_norm_ = register_module("input_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  torch::nn::TransformerEncoderLayer layer(torch::nn::TransformerEncoderLayerOptions(d, config.heads)
                                               .dim_feedforward(config.ff_dim > 0 ? config.ff_dim : 2 * d)
                                               .dropout(config.dropout)
                                               .activation(torch::kGELU));
  encoder_ = register_module("encoder",
                             torch::nn::TransformerEncoder(torch::nn::TransformerEncoderOptions(layer, config.layers)));
  query_ = register_module("query", torch::nn::Linear(d, d));
  for (size_t c = 0; c < config.head_classes.size(); ++c)
    heads_.push_back(register_module("head" + std::to_string(c), torch::nn::Linear(d, config.head_classes[c])));
}

torch::Tensor SessionModelImpl::Encode(const torch::Tensor& items, const torch::Tensor& pad) {
  const int64_t L = items.size(1);
  EMBER_CHECK(L <= config_.max_length) << "prefix longer than model.max_length";
  // Positions counted from the end: the latest item always has the last position embedding.
  auto x = items + pos_.slice(0, config_.max_length - L, config_.max_length).unsqueeze(0);
  x = input_norm_(x);
  auto h = encoder_(x.transpose(0, 1), /*src_mask=*/torch::Tensor(), /*src_key_padding_mask=*/pad)
               .transpose(0, 1);  // [B, L, d]
  if (!mean_pool_) return h.select(1, L - 1);
  auto valid = (~pad).to(h.dtype()).unsqueeze(-1);
  return (h * valid).sum(1) / valid.sum(1).clamp_min(1);
}

torch::Tensor SessionModelImpl::Score(const torch::Tensor& z, const torch::Tensor& candidates) {
  return torch::matmul(query_(z), candidates.t());
}

torch::Tensor SessionModelImpl::Head(size_t c, const torch::Tensor& z) { return heads_.at(c)(z); }

torch::Tensor SessionLoss(const torch::Tensor& item_logits, const torch::Tensor& target,
                          const std::vector<torch::Tensor>& head_logits, const std::vector<torch::Tensor>& head_targets,
                          const std::vector<double>& weights) {
  auto loss = torch::nn::functional::cross_entropy(item_logits, target);
  for (size_t c = 0; c < head_logits.size(); ++c) {
    if (weights[c] == 0) continue;
    auto known = head_targets[c] > 0;
    if (!known.any().item<bool>()) continue;
    loss = loss + weights[c] * torch::nn::functional::cross_entropy(head_logits[c].index({known}),
                                                                    head_targets[c].index({known}));
  }
  return loss;
}

}  // namespace ember::models
