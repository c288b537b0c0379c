#include "fused_adam.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace ember::workers {

torch::Tensor FusedAdam::step(LossClosure closure) {
  for (const auto& group : param_groups())
    for (const auto& p : group.params())
      if (p.grad().defined() && (!p.device().is_cpu() || p.scalar_type() != torch::kFloat || !p.is_contiguous() ||
                                 !p.grad().is_contiguous() || p.grad().is_sparse() ||
                                 static_cast<const torch::optim::AdamOptions&>(group.options()).amsgrad()))
        return torch::optim::Adam::step(std::move(closure));
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
      // Loaded state (a checkpoint) as the loop reads it: contiguous fp32, the parameter's size.
      TORCH_CHECK(s.exp_avg().numel() == p.numel() && s.exp_avg_sq().numel() == p.numel(),
                  "FusedAdam: the optimizer state does not match its parameter's size");
      if (!s.exp_avg().is_contiguous() || s.exp_avg().scalar_type() != torch::kFloat)
        s.exp_avg(s.exp_avg().to(torch::kFloat).contiguous());
      if (!s.exp_avg_sq().is_contiguous() || s.exp_avg_sq().scalar_type() != torch::kFloat)
        s.exp_avg_sq(s.exp_avg_sq().to(torch::kFloat).contiguous());
      s.step(s.step() + 1);
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      const double bc1 = 1 - std::pow(beta1, static_cast<double>(s.step()));
      const double bc2 = 1 - std::pow(beta2, static_cast<double>(s.step()));
      // As Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
      const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
      const float a1 = static_cast<float>(1 - beta1), a2 = static_cast<float>(1 - beta2);
      const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2)), eps = static_cast<float>(o.eps());
      const float step_size = static_cast<float>(o.lr() / bc1), wd = static_cast<float>(o.weight_decay());
      float* w = p.data_ptr<float>();
      const float* g = p.grad().data_ptr<float>();
      float* m = s.exp_avg().data_ptr<float>();
      float* v = s.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float gi = wd != 0.0f ? g[i] + wd * w[i] : g[i];
          m[i] = b1 * m[i] + a1 * gi;
          v[i] = b2 * v[i] + a2 * gi * gi;
          w[i] -= step_size * (m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps));
        }
      });
    }
  }
  return loss;
}

}  // namespace ember::workers
