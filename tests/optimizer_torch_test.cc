// The sparse optimizers against LibTorch's own, on rows touched every step (where sparse and
// dense updates coincide).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ember/embedding/row_store.h"

namespace ember::embedding {
namespace {

void CompareWithTorch(OptimizerKind kind,
                      const std::function<std::unique_ptr<torch::optim::Optimizer>(torch::Tensor)>& make,
                      const OptimizerConfig& opt) {
  const int n = 20, dim = 8;
  TableSpec spec;
  spec.dim = dim;
  spec.init_scale = 0.5f;
  spec.optimizer = opt;
  spec.optimizer.kind = kind;
  RowStore store(spec);
  std::vector<uint64_t> keys(n);
  for (int i = 0; i < n; ++i) keys[i] = MakeKey(0, static_cast<uint64_t>(i) * 1000 + 1);
  std::vector<float> init(n * dim);
  store.Pull(keys.data(), n, init.data());
  torch::Tensor w = torch::from_blob(init.data(), {n, dim}, torch::kFloat).clone().requires_grad_(true);
  auto optimizer = make(w);
  torch::manual_seed(0);
  for (int step = 0; step < 25; ++step) {
    torch::Tensor g = torch::randn({n, dim});
    w.mutable_grad() = g.clone();
    optimizer->step();
    store.Push(keys.data(), n, g.contiguous().data_ptr<float>());
  }
  std::vector<float> ours(n * dim);
  store.Pull(keys.data(), n, ours.data());
  auto theirs = w.detach().contiguous();
  for (int i = 0; i < n * dim; ++i)
    ASSERT_NEAR(ours[i], theirs.data_ptr<float>()[i], 1e-5f) << OptimizerName(kind) << " element " << i;
}

TEST(SparseOptimizersVsLibTorch, Sgd) {
  OptimizerConfig o;
  o.lr = 0.05f;
  CompareWithTorch(
      OptimizerKind::kSgd,
      [](torch::Tensor w) {
        return std::make_unique<torch::optim::SGD>(std::vector<torch::Tensor>{w}, torch::optim::SGDOptions(0.05));
      },
      o);
}

TEST(SparseOptimizersVsLibTorch, Adagrad) {
  OptimizerConfig o;
  o.lr = 0.1f;
  o.eps = 1e-10f;
  CompareWithTorch(
      OptimizerKind::kAdagrad,
      [](torch::Tensor w) {
        return std::make_unique<torch::optim::Adagrad>(std::vector<torch::Tensor>{w},
                                                       torch::optim::AdagradOptions(0.1).eps(1e-10));
      },
      o);
}

TEST(SparseOptimizersVsLibTorch, Adam) {
  OptimizerConfig o;
  o.lr = 0.01f;
  o.eps = 1e-8f;
  CompareWithTorch(
      OptimizerKind::kAdam,
      [](torch::Tensor w) {
        return std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{w},
                                                    torch::optim::AdamOptions(0.01).eps(1e-8));
      },
      o);
}

}  // namespace
}  // namespace ember::embedding
