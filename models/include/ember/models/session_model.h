// Session recommenders over item representations pulled from the PS (docs/sessions.md).
//
// The model never holds an item table: the worker passes it the representation x_i of every item
// it needs (M2TRec: the concatenated metadata-attribute embeddings; the ID baseline: the item's
// ID-table row), and the model encodes sessions and scores candidates with them:
//   H = TransformerEncoder(x_s + pos)  over the left-padded, left-truncated prefix
//   z = mean of H over valid positions (M2TRec) or H at the last position (SASRec)
//   score(j) = <W z, x_j>           for every candidate item j (cold items too, ID-free)
//   head_c(z) = U_c z               one softmax head per category attribute (multi-task)
//   loss = CE(item) + sum_c lambda_c CE(category_c)
// Both models share the encoder; they differ in the item representation and the pooling.
//
// Thread-compatible.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "ember/models/model_kind.h"

namespace ember::models {

struct SessionModelConfig {
  ModelKind kind = ModelKind::kM2Trec;  // kM2Trec or kSasRec
  int64_t item_dim = 64;                // width of x_i (M2TRec: attributes x attribute dim)
  int64_t layers = 2;
  int64_t heads = 2;
  int64_t ff_dim = 0;  // feed-forward width (0 = 2 x item_dim)
  double dropout = 0.1;
  int64_t max_length = 50;
  std::string pooling = "";  // "mean" or "last" ("" = the model's: mean for m2trec, last for sasrec)
  // Category heads: classes of each, and the loss weights lambda_c.
  std::vector<int64_t> head_classes;
  std::vector<double> head_weights;
};

class SessionModelImpl : public torch::nn::Module {
 public:
  explicit SessionModelImpl(const SessionModelConfig& config);
  const SessionModelConfig& config() const { return config_; }

  // items: [B, L, item_dim] left-padded prefix representations; pad: [B, L] bool, true = padding
  // (the last position of every row is valid). Returns z: [B, item_dim].
  torch::Tensor Encode(const torch::Tensor& items, const torch::Tensor& pad);
  // Item scores [B, N] of z against candidates [N, item_dim].
  torch::Tensor Score(const torch::Tensor& z, const torch::Tensor& candidates);
  // Logits [B, classes] of category head c.
  torch::Tensor Head(size_t c, const torch::Tensor& z);

 private:
  SessionModelConfig config_;
  bool mean_pool_;
  torch::Tensor pos_;  // [max_length, item_dim]
  torch::nn::LayerNorm input_norm_{nullptr};
  torch::nn::TransformerEncoder encoder_{nullptr};
  torch::nn::Linear query_{nullptr};
  std::vector<torch::nn::Linear> heads_;
};
TORCH_MODULE(SessionModel);

// The multi-task loss: CE(item_logits, target) + sum_c weights[c] * CE(head_logits[c], head_targets[c]).
// Head targets of 0 (unknown attribute value) are ignored.
torch::Tensor SessionLoss(const torch::Tensor& item_logits, const torch::Tensor& target,
                          const std::vector<torch::Tensor>& head_logits, const std::vector<torch::Tensor>& head_targets,
                          const std::vector<double>& weights);

}  // namespace ember::models
