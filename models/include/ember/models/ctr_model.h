// CTR models in LibTorch: DLRM, DeepFM, logistic regression, DCN-v2, Wide & Deep and FM.
//
//   dlrm       bottom MLP on the dense features, pairwise dot products of all field vectors and
//              the bottom output, top MLP (Naumov et al. 2019)
//   deepfm     first-order weights + FM pairwise term + an MLP on the concatenated vectors
//   lr         first-order weights + a linear term of the dense features
//   dcn_v2     cross layers x_{l+1} = x0 * (W_l x_l + b_l) + x_l over x0 = [dense, field vectors]
//              (W_l full, or U_l V_l^T of rank model.cross_rank), stacked under the top MLP or
//              parallel to it (Wang et al. 2021)
//   wide_deep  the wide part (first-order weights + dense linear term) plus an MLP on
//              [field vectors, dense] (Cheng et al. 2016)
//   fm         first-order weights + FM pairwise term + dense linear term (Rendle 2010)
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
  // First-order weights (one per value, summed into the logit): trained with linear.*.
  bool first_order = false;
};

struct CtrModelConfig {
  ModelKind kind = ModelKind::kDlrm;  // kDlrm, kDeepFm or kLr
  int num_dense = 13;
  int num_fields = 26;
  int embedding_dim = 16;
  // DLRM: hidden widths of the bottom MLP; its output width is embedding_dim (appended).
  std::vector<int64_t> bottom_mlp = {512, 256, 64};
  // DLRM, DeepFM, DCN-v2 and Wide & Deep: hidden widths of the top / deep MLP; a final width-1
  // layer is appended (DCN-v2 parallel: the final layer reads the MLP and the cross output).
  std::vector<int64_t> top_mlp = {512, 256};
  // DCN-v2.
  int cross_layers = 3;
  CrossStructure cross_structure = CrossStructure::kStacked;
  int cross_rank = 0;  // 0: full-rank cross matrices
  // DLRM and DCN-v2: add first-order weights (a 1-wide group, trained with linear.*) and a dense
  // linear term to the logit, like Wide & Deep's wide part beside the interactions.
  bool first_order = false;
};

// One group's rows for a batch: values [B, sum(widths)], widths per field.
struct GroupInput {
  torch::Tensor values;
  std::vector<int> widths;
};

// A group's values [n, width] from its leaf rows: leaf[index] per slot (offsets undefined), or,
// where some field is multi-hot, each slot the weighted sum of its bag's rows (index: every
// entry's leaf row; offsets: [slots + 1]; weights per entry). Differentiable in `leaf`.
torch::Tensor GatherSlots(const torch::Tensor& leaf, const torch::Tensor& index, const torch::Tensor& offsets,
                          const torch::Tensor& weights, int64_t n, int64_t width);
// Values [n, F x probes x dim] of a group whose probes are summed -> [n, F x dim].
torch::Tensor SumProbes(const torch::Tensor& values, int64_t probes, int64_t dim);

class CtrModel : public torch::nn::Module {
 public:
  // Groups in the order of embedding_groups().
  virtual torch::Tensor Forward(const torch::Tensor& dense, const std::vector<GroupInput>& groups) = 0;
  virtual std::vector<EmbeddingGroupSpec> embedding_groups() const = 0;
  virtual std::string model_name() const = 0;
};

// The embedding groups a model of this configuration reads, in order (CtrModel::embedding_groups
// of the built model): DLRM and DCN-v2 {"main", d}; DeepFM, Wide & Deep and FM (and DLRM and
// DCN-v2 with first_order) add {"linear", 1} (first order); LR only {"linear", 1}.
std::vector<EmbeddingGroupSpec> EmbeddingGroupsOf(const CtrModelConfig& config);

// Returns the model or InvalidArgument naming the bad setting.
Result<std::shared_ptr<CtrModel>> MakeCtrModel(const CtrModelConfig& config);

// Serialises parameters and buffers to bytes / restores them (same architecture required).
Result<std::string> SaveModule(torch::nn::Module& module);
Status LoadModule(torch::nn::Module& module, const std::string& bytes, const std::string& source);

}  // namespace ember::models
