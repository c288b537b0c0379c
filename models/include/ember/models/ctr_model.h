// CTR models in LibTorch: DLRM, DeepFM and logistic regression.
//
// A model does not own embedding storage. It declares the embedding groups it needs
// (EmbeddingGroupSpec: a name and a row width, e.g. DLRM {"main", d}; DeepFM adds {"linear", 1};
// LR only {"linear", 1}); the worker builds one compression method per group and hands the
// model, per group, the looked-up rows of a batch as one tensor [B, sum of field widths] with
// fields (and, within a field, probes) concatenated in order.
//
// Thread-safety: a model is used by one training thread at a time. LibTorch exceptions never
// cross this module's factory: they come back as Status.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/models/model_kind.h"

namespace ember::models {

struct EmbeddingGroupSpec {
  std::string name;
  int dim = 16;
};

struct CtrModelConfig {
  ModelKind kind = ModelKind::kDlrm;  // kDlrm, kDeepFm or kLr
  int num_dense = 13;
  int num_fields = 26;
  int embedding_dim = 16;
  // DLRM: hidden widths of the bottom MLP; its output width is embedding_dim (appended).
  std::vector<int64_t> bottom_mlp = {512, 256, 64};
  // DLRM and DeepFM: hidden widths of the top / deep MLP; a final width-1 layer is appended.
  std::vector<int64_t> top_mlp = {512, 256};
};

// One group's rows for a batch: values [B, sum(widths)], widths per field.
struct GroupInput {
  torch::Tensor values;
  std::vector<int> widths;
};

class CtrModel : public torch::nn::Module {
 public:
  // Groups in the order of embedding_groups().
  virtual torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) = 0;
  virtual std::vector<EmbeddingGroupSpec> embedding_groups() const = 0;
  virtual std::string model_name() const = 0;
};

// Returns the model or InvalidArgument naming the bad setting.
Result<std::shared_ptr<CtrModel>> MakeCtrModel(const CtrModelConfig& config);

// Serialises parameters and buffers to bytes / restores them (same architecture required).
Result<std::string> SaveModule(torch::nn::Module& module);
Status LoadModule(torch::nn::Module& module, const std::string& bytes, const std::string& source);

}  // namespace ember::models
