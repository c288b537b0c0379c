#include "ember/models/fused_ops.h"

#include <ATen/Parallel.h>

#include <cstring>

namespace ember::models {
namespace {

// Samples per parallel task: a task's share is a few hundred microseconds of work.
constexpr int64_t kGrain = 64;

class DotInteractionFn : public torch::autograd::Function<DotInteractionFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& in) {
    auto t = in.contiguous();
    ctx->save_for_backward({t});
    const int64_t B = t.size(0), n = t.size(1), d = t.size(2), P = n * (n - 1) / 2;
    auto out = torch::empty({B, P}, t.options());
    const float* tp = t.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const float* v = tp + b * n * d;
        float* o = op + b * P;
        for (int64_t i = 1; i < n; ++i) {
          const float* vi = v + i * d;
          for (int64_t j = 0; j < i; ++j) {
            const float* vj = v + j * d;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < d; ++k) s += vi[k] * vj[k];
            *o++ = s;
          }
        }
      }
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto t = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    const int64_t B = t.size(0), n = t.size(1), d = t.size(2), P = n * (n - 1) / 2;
    auto gt = torch::zeros_like(t);
    const float* tp = t.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gtp = gt.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const float* v = tp + b * n * d;
        const float* gb = gp + b * P;
        float* w = gtp + b * n * d;
        for (int64_t i = 1; i < n; ++i) {
          const float* vi = v + i * d;
          float* wi = w + i * d;
          for (int64_t j = 0; j < i; ++j) {
            const float c = *gb++;
            const float* vj = v + j * d;
            float* wj = w + j * d;
#pragma omp simd
            for (int64_t k = 0; k < d; ++k) {
              wi[k] += c * vj[k];
              wj[k] += c * vi[k];
            }
          }
        }
      }
    });
    return {gt};
  }
};

class GatherRowsFn : public torch::autograd::Function<GatherRowsFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& leaf_in,
                               const torch::Tensor& index_in) {
    auto leaf = leaf_in.contiguous();
    auto index = index_in.contiguous();
    ctx->save_for_backward({index});
    ctx->saved_data["rows"] = leaf.size(0);
    const int64_t n = index.size(0), d = leaf.size(1), U = leaf.size(0);
    auto out = torch::empty({n, d}, leaf.options());
    const float* src = leaf.data_ptr<float>();
    const int64_t* idx = index.data_ptr<int64_t>();
    float* dst = out.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i)
      TORCH_CHECK(idx[i] >= 0 && idx[i] < U, "GatherRows: index ", idx[i], " out of range for ", U, " rows");
    at::parallel_for(0, n, 1 << 12, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        std::memcpy(dst + i * d, src + idx[i] * d, static_cast<size_t>(d) * sizeof(float));
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto index = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    const int64_t n = index.size(0), d = g.size(1), U = ctx->saved_data["rows"].toInt();
    auto gl = torch::zeros({U, d}, g.options());
    const float* gp = g.data_ptr<float>();
    const int64_t* idx = index.data_ptr<int64_t>();
    float* out = gl.data_ptr<float>();
    // Serial: rows repeat (the same id in many samples), and this is memory-bound anyway.
    for (int64_t i = 0; i < n; ++i) {
      float* w = out + idx[i] * d;
      const float* s = gp + i * d;
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) w[k] += s[k];
    }
    return {gl, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor GatherRows(const torch::Tensor& leaf, const torch::Tensor& index) {
  if (leaf.device().is_cpu() && leaf.scalar_type() == torch::kFloat && leaf.dim() == 2 &&
      index.scalar_type() == torch::kLong && index.dim() == 1)
    return GatherRowsFn::apply(leaf, index);
  return leaf.index_select(0, index);
}

torch::Tensor DotInteraction(const torch::Tensor& t, const torch::Tensor& tri) {
  if (t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.dim() == 3) return DotInteractionFn::apply(t);
  const int64_t B = t.size(0), n = t.size(1);
  return torch::bmm(t, t.transpose(1, 2)).view({B, n * n}).index_select(1, tri);
}

}  // namespace ember::models
