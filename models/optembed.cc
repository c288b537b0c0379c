#include "ember/models/optembed.h"

namespace ember::models {
namespace {
torch::Tensor SteSlope(const torch::Tensor& x) {
  auto a = x.abs();
  return torch::where(a <= 0.4, 2.0 - 4.0 * a, torch::where(a <= 1.0, torch::full_like(a, 0.4), torch::zeros_like(a)));
}

struct StepFunction : public torch::autograd::Function<StepFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return (x > 0).to(x.scalar_type());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto x = ctx->get_saved_variables()[0];
    return {grads[0] * SteSlope(x)};
  }
};
}  // namespace

torch::Tensor StepSte(const torch::Tensor& x) { return StepFunction::apply(x); }

torch::Tensor StepSurrogate(const torch::Tensor& x) {
  // Piecewise integral of the slope: 0 | 0.4 (x + 1) | 0.72 + 2x + 2x^2 | 0.72 + 2x - 2x^2 |
  // 1.2 + 0.4 (x - 0.4) | 1.44, with breaks at -1, -0.4, 0, 0.4, 1.
  auto lo = 0.4 * (x + 1.0);
  auto mid_neg = 0.72 + 2.0 * x + 2.0 * x * x;
  auto mid_pos = 0.72 + 2.0 * x - 2.0 * x * x;
  auto hi = 1.2 + 0.4 * (x - 0.4);
  auto y = torch::where(x <= -1.0, torch::zeros_like(x), lo);
  y = torch::where(x > -0.4, mid_neg, y);
  y = torch::where(x > 0.0, mid_pos, y);
  y = torch::where(x > 0.4, hi, y);
  return torch::where(x > 1.0, torch::full_like(x, 1.44), y);
}

torch::Tensor OptEmbedMask(const torch::Tensor& values, const torch::Tensor& thresholds, int dim, bool sample_dims) {
  const int64_t B = values.size(0), F = thresholds.size(0);
  auto e = values.view({B, F, dim});
  auto mr = StepSte(e.abs().sum(-1) - thresholds.unsqueeze(0)).unsqueeze(-1);  // B x F x 1
  if (!sample_dims) return (mr * e).view({B, F * dim});
  auto k = torch::randint(0, dim, {B, F, 1}, torch::kLong);
  auto prefix = (torch::arange(dim, torch::kLong).view({1, 1, dim}) <= k).to(values.scalar_type());
  return (mr * prefix * e).view({B, F * dim});
}

torch::Tensor OptEmbedRowMask(const torch::Tensor& values, const torch::Tensor& thresholds, int dim) {
  const int64_t B = values.size(0), F = thresholds.size(0);
  auto e = values.view({B, F, dim});
  auto keep = (e.abs().sum(-1) > thresholds.unsqueeze(0)).to(values.scalar_type()).unsqueeze(-1);
  return (keep * e).view({B, F * dim});
}

}  // namespace ember::models
