// OptEmbed's supernet mask (docs/compression.md, stage 1).
//
// Given a group's rows e [B, F, D] and per-field thresholds t [F]:
//   mr = STE(L1(e) - t[field])        row mask, B x F
//   train: k ~ U{0..D-1} per (sample, field); e2 = mr * prefix(k + 1) * e
//   eval:  e2 = mr * e
// STE's forward is the step 1[x > 0]; its backward is g * s(x), s = 2 - 4|x| for |x| <= 0.4,
// 0.4 for 0.4 < |x| <= 1, 0 beyond: the derivative of StepSurrogate below, which tests use to
// check the gradient by finite differences. The regulariser alpha * sum_f exp(-t_f) pushes
// thresholds up (more pruning).
#pragma once

#include <torch/torch.h>

namespace ember::models {

// 1[x > 0] forward, s(x) backward.
torch::Tensor StepSte(const torch::Tensor& x);
// The smooth function whose derivative is s(x): S(x) = integral of s from -inf to x.
torch::Tensor StepSurrogate(const torch::Tensor& x);

// values [B, F * D] -> masked values, same shape. thresholds [F]. `sample_dims` draws the
// per-(sample, field) prefix (training); otherwise only row masks apply.
torch::Tensor OptEmbedMask(const torch::Tensor& values, const torch::Tensor& thresholds, int dim, bool sample_dims);

// Row masks only, as the search and export see them: rows with L1 <= t read zero.
torch::Tensor OptEmbedRowMask(const torch::Tensor& values, const torch::Tensor& thresholds, int dim);

}  // namespace ember::models
