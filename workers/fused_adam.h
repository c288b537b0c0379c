// Internal to workers/: LibTorch's Adam with its step fused into one pass per parameter.
//
// torch::optim::Adam runs about ten tensor operations per parameter per step (allocating the
// denominator each time); for the reference DLRM's 14 parameter tensors that is 2.3 ms a step on
// this machine's 2 cores, a third of a step at batch 128. FusedAdam keeps Adam's state (the same
// AdamParamState per parameter, so checkpoints are the same) and its update rule, and computes
// it in one loop over each parameter's raw floats, split across LibTorch's intra-op threads.
// Parameters that are not contiguous fp32 CPU tensors (CUDA) take Adam's own step.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace ember::workers {

class FusedAdam final : public torch::optim::Adam {
 public:
  FusedAdam(const std::vector<torch::Tensor>& params, torch::optim::AdamOptions options)
      : torch::optim::Adam(params, std::move(options)) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace ember::workers
