// Operations of the CTR models written as one pass each on the CPU, with their own backward,
// where LibTorch's composition of general operations costs a large share of a training step.
//
// DotInteraction: DLRM's pairwise dot interaction as one fused operation: for t of shape [B, n, d], the dot
// products of every pair of its n vectors below the diagonal, [B, n(n-1)/2], in the order
// (1,0), (2,0), (2,1), (3,0), ... — what bmm(t, tᵀ) followed by a gather of the lower triangle
// gives, without materialising the n × n square or its gradient.
//
// On the CPU a hand-written forward and backward (one pass over each sample's vectors, which fit
// in L1; samples split across LibTorch's intra-op threads): at the reference DLRM shape and batch
// 2048 the bmm-and-gather form costs about 20 ms a step here, this one a few. Elsewhere (CUDA),
// and for tensors other than fp32, it is the bmm-and-gather form.
#pragma once

#include <torch/torch.h>

namespace ember::models {

// `tri` holds the flat indices i * n + j of the pairs (the gather the bmm form needs).
torch::Tensor DotInteraction(const torch::Tensor& t, const torch::Tensor& tri);

// DLRM's top-MLP input: cat(x, DotInteraction(cat(x as a row, e's F rows))) for x [B, d] and e
// [B, F x d] or [B, F, d], as one operation whose backward gives e's gradient
// in e's shape. `tri` is DotInteraction's, for n = F + 1.
torch::Tensor DotInteractionWithDense(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& tri);

// leaf.index_select(0, index) for a [U, d] leaf and n int64 indices: [n, d]. Its backward adds
// each row's gradient into its leaf row in one pass; LibTorch 1.13's index_select backward
// (index_add on the CPU) costs about 8 ms for the reference DLRM's 53k rows at batch 2048 here.
torch::Tensor GatherRows(const torch::Tensor& leaf, const torch::Tensor& index);

// relu(x W^T + b) (or without the ReLU) for x [B, K], w [O, K], b [O]: the product, then the bias
// and the activation in place in one pass; backward, the mask and the bias's gradient in one pass,
// then the two products. The training forward of the models' MLPs (MlpForward); elsewhere (CUDA,
// other types) torch::linear and torch::relu.
torch::Tensor LinearActivation(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool relu);

}  // namespace ember::models
