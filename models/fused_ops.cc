#include "ember/models/fused_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace ember::models {
namespace {

// Hot loops compiled twice, for AVX-512 and for the baseline, chosen at load time (GCC's
// target_clones); the build itself targets the baseline x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EMBER_SIMD_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define EMBER_SIMD_CLONES
#endif
// Helpers of those loops, inlined into each clone (so compiled for its target).
#define EMBER_SIMD_INLINE __attribute__((always_inline)) inline

// Samples per parallel task: a task's share is a few hundred microseconds of work.
constexpr int64_t kGrain = 64;

// Blocks of kLanes floats as one vector (GCC's vector extension: a zmm register in the AVX-512
// clones, four SSE registers in the baseline ones). The loops below keep kRows such blocks of sums
// in registers: kRows independent FMA chains, which hide the FMA's latency.
constexpr int64_t kLanes = 16;
constexpr int kRows = 4;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));

// Sums of rows i0 .. i0+R-1 against the columns j0 .. j0+kLanes-1 of the transposed rows `vt`
// (d x np): acc[r][l] = <v_{i0+r}, v_{j0+l}>.
template <int R>
EMBER_SIMD_INLINE void PairBlock(const float* __restrict v, int64_t d, int64_t np, const float* __restrict vt,
                                 int64_t i0, int64_t j0, Lanes* acc) {
  Lanes s[R];
  for (int r = 0; r < R; ++r) s[r] = Lanes{};
  for (int64_t k = 0; k < d; ++k) {
    const Lanes col = *reinterpret_cast<const Lanes*>(vt + k * np + j0);
    for (int r = 0; r < R; ++r) s[r] += v[(i0 + r) * d + k] * col;
  }
  for (int r = 0; r < R; ++r) acc[r] = s[r];
}

// One sample's pairs, forward: out[(i, j)] = <v_i, v_j> for j < i, in row order (row i's pairs
// start at i(i-1)/2). The products are built kLanes columns j at a time, v_i's coordinates
// broadcast against the transposed rows `vt` (d x np, zero-padded to np columns), so the loops are
// FMAs with no horizontal sums.
EMBER_SIMD_CLONES void DotPairsForward(const float* __restrict v, int64_t n, int64_t d, int64_t np,
                                       float* __restrict vt, float* __restrict out) {
  for (int64_t k = 0; k < d; ++k)
    for (int64_t j = 0; j < np; ++j) vt[k * np + j] = j < n ? v[j * d + k] : 0.f;
  Lanes acc[kRows];
  for (int64_t j0 = 0; j0 + 1 < n; j0 += kLanes) {
    int64_t i = j0 + 1;  // the first row with a pair in this block of columns
    auto emit = [&](int64_t rows) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = i + r, m = std::min(kLanes, row - j0);
        float* o = out + row * (row - 1) / 2 + j0;
        if (m == kLanes)
          *reinterpret_cast<Lanes*>(o) = acc[r];
        else
          for (int64_t l = 0; l < m; ++l) o[l] = acc[r][l];
      }
    };
    for (; i + kRows <= n; i += kRows) {
      PairBlock<kRows>(v, d, np, vt, i, j0, acc);
      emit(kRows);
    }
    for (; i < n; ++i) {
      PairBlock<1>(v, d, np, vt, i, j0, acc);
      emit(1);
    }
  }
}

// w_{i0+r} = sum_j c_{i0+r, j} v_j for r < R, coordinates k0 .. k0+kLanes-1.
template <int R>
EMBER_SIMD_INLINE void GradBlock(const float* __restrict v, const float* __restrict c, int64_t n, int64_t d, int64_t i0,
                                 int64_t k0, float* __restrict w) {
  Lanes s[R];
  for (int r = 0; r < R; ++r) s[r] = Lanes{};
  for (int64_t j = 0; j < n; ++j) {
    const Lanes vj = *reinterpret_cast<const Lanes*>(v + j * d + k0);
    for (int r = 0; r < R; ++r) s[r] += c[(i0 + r) * n + j] * vj;
  }
  for (int r = 0; r < R; ++r) *reinterpret_cast<Lanes*>(w + (i0 + r) * d + k0) = s[r];
}

// One sample's backward: w_i = sum_j c_ij v_j over the symmetric n x n matrix `c` of the pairs'
// gradients (zero diagonal).
EMBER_SIMD_CLONES void DotPairsBackward(const float* __restrict v, const float* __restrict g, int64_t n, int64_t d,
                                        float* __restrict c, float* __restrict w) {
  for (int64_t i = 0; i < n; ++i) {
    c[i * n + i] = 0.f;
    for (int64_t j = 0; j < i; ++j) c[i * n + j] = c[j * n + i] = *g++;
  }
  const int64_t whole = d / kLanes * kLanes;
  for (int64_t k0 = 0; k0 < whole; k0 += kLanes) {
    int64_t i = 0;
    for (; i + kRows <= n; i += kRows) GradBlock<kRows>(v, c, n, d, i, k0, w);
    for (; i < n; ++i) GradBlock<1>(v, c, n, d, i, k0, w);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = whole; k < d; ++k) {
      float acc = 0.f;
      for (int64_t j = 0; j < n; ++j) acc += c[i * n + j] * v[j * d + k];
      w[i * d + k] = acc;
    }
}

class DotInteractionFn : public torch::autograd::Function<DotInteractionFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& in) {
    auto t = in.contiguous();
    ctx->save_for_backward({t});
    const int64_t B = t.size(0), n = t.size(1), d = t.size(2), P = n * (n - 1) / 2;
    const int64_t np = (n + kLanes - 1) / kLanes * kLanes;
    auto out = torch::empty({B, P}, t.options());
    const float* tp = t.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      std::vector<float> vt(static_cast<size_t>(d * np));
      for (int64_t b = b0; b < b1; ++b) DotPairsForward(tp + b * n * d, n, d, np, vt.data(), op + b * P);
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto t = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    const int64_t B = t.size(0), n = t.size(1), d = t.size(2), P = n * (n - 1) / 2;
    auto gt = torch::empty_like(t);
    const float* tp = t.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gtp = gt.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      std::vector<float> c(static_cast<size_t>(n * n));
      for (int64_t b = b0; b < b1; ++b) DotPairsBackward(tp + b * n * d, gp + b * P, n, d, c.data(), gtp + b * n * d);
    });
    return {gt};
  }
};

// Sample b's n = F + 1 rows, x's then e's, into v (n x d).
inline void SampleRows(const float* x, const float* e, int64_t b, int64_t d, int64_t F, float* v) {
  std::memcpy(v, x + b * d, static_cast<size_t>(d) * sizeof(float));
  std::memcpy(v + d, e + b * F * d, static_cast<size_t>(F * d) * sizeof(float));
}

// DLRM's top-MLP input in one operation: [x, pairs of (x, e_1 .. e_F)] for x [B, d] and e holding
// B x F x d values. Forward writes x and the pairs into one buffer; backward splits the gradient
// into x's (its own part plus its row of the pairs') and e's, in e's shape. What it replaces (a
// cat of x with e, the interaction, a cat of x with the pairs) costs three copies forward and,
// backward, the slices of both cats made contiguous.
class DotInteractionWithDenseFn : public torch::autograd::Function<DotInteractionWithDenseFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& e_in, int64_t F) {
    auto x = x_in.contiguous();
    auto e = e_in.contiguous();
    ctx->save_for_backward({x, e});
    ctx->saved_data["fields"] = F;
    const int64_t B = x.size(0), d = x.size(1), n = F + 1, P = n * (n - 1) / 2;
    const int64_t np = (n + kLanes - 1) / kLanes * kLanes, W = d + P;
    auto out = torch::empty({B, W}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* ep = e.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      std::vector<float> v(static_cast<size_t>(n * d)), vt(static_cast<size_t>(d * np));
      for (int64_t b = b0; b < b1; ++b) {
        SampleRows(xp, ep, b, d, F, v.data());
        std::memcpy(op + b * W, xp + b * d, static_cast<size_t>(d) * sizeof(float));
        DotPairsForward(v.data(), n, d, np, vt.data(), op + b * W + d);
      }
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& e = saved[1];
    auto g = grads[0];
    if (g.stride(1) != 1) g = g.contiguous();
    const int64_t B = x.size(0), d = x.size(1), F = ctx->saved_data["fields"].toInt(), n = F + 1;
    const int64_t ld = g.stride(0);
    auto gx = torch::empty_like(x);
    auto ge = torch::empty_like(e);
    const float* xp = x.data_ptr<float>();
    const float* ep = e.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    float* gep = ge.data_ptr<float>();
    at::parallel_for(0, B, kGrain, [&](int64_t b0, int64_t b1) {
      std::vector<float> v(static_cast<size_t>(n * d)), c(static_cast<size_t>(n * n)), w(static_cast<size_t>(n * d));
      for (int64_t b = b0; b < b1; ++b) {
        SampleRows(xp, ep, b, d, F, v.data());
        const float* gb = gp + b * ld;
        DotPairsBackward(v.data(), gb + d, n, d, c.data(), w.data());
        for (int64_t k = 0; k < d; ++k) gxp[b * d + k] = gb[k] + w[k];
        std::memcpy(gep + b * F * d, w.data() + d, static_cast<size_t>(F * d) * sizeof(float));
      }
    });
    return {gx, ge, torch::Tensor()};
  }
};

// y = relu?(y + b) in place, rows [r0, r1) of a [B, O] product.
EMBER_SIMD_CLONES void BiasActivation(float* __restrict y, int64_t r0, int64_t r1, int64_t O, const float* __restrict b,
                                      bool relu) {
  for (int64_t r = r0; r < r1; ++r) {
    float* yr = y + r * O;
    if (relu)
      for (int64_t o = 0; o < O; ++o) yr[o] = std::max(yr[o] + b[o], 0.f);
    else
      for (int64_t o = 0; o < O; ++o) yr[o] += b[o];
  }
}

// Columns [o0, o1) of the backward's first pass: g = gy where the output was positive (every
// element without the activation), and the bias's gradient, gb[o] = sum over rows of g[., o]. gy
// has row stride `ld` (a slice of a wider gradient needs no copy).
EMBER_SIMD_CLONES void MaskAndBiasGrad(const float* __restrict gy, int64_t ld, const float* __restrict y, int64_t B,
                                       int64_t O, int64_t o0, int64_t o1, bool relu, float* __restrict g,
                                       float* __restrict gb) {
  for (int64_t o = o0; o < o1; ++o) gb[o] = 0.f;
  for (int64_t r = 0; r < B; ++r) {
    const float* gr = gy + r * ld;
    float* out = g + r * O;
    if (relu) {
      const float* yr = y + r * O;
      for (int64_t o = o0; o < o1; ++o) out[o] = yr[o] > 0.f ? gr[o] : 0.f;
    } else {
      for (int64_t o = o0; o < o1; ++o) out[o] = gr[o];
    }
    for (int64_t o = o0; o < o1; ++o) gb[o] += out[o];
  }
}

// Inputs at most this wide (a CTR model's dense features: 13 in Criteo) take the loops below
// instead of BLAS: a product with K = 13 runs at a fifth of the BLAS's speed on wide inputs, and
// pays its thread start-up.
constexpr int64_t kSmallK = 16;

// Rows [r0, r1) of relu?(x W^T + b) for x [B, K], K <= kSmallK, from wt = W^T [K, O]: 4 blocks of
// kLanes columns at a time (4 independent FMA chains), the bias as the sums' start.
EMBER_SIMD_CLONES void SmallKForward(const float* __restrict x, int64_t K, const float* __restrict wt,
                                     const float* __restrict b, int64_t O, int64_t r0, int64_t r1, bool relu,
                                     float* __restrict y) {
  constexpr int64_t kWide = 4 * kLanes;
  const int64_t wide = O / kWide * kWide, whole = O / kLanes * kLanes;
  const Lanes zero{};
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * O;
    for (int64_t o = 0; o < wide; o += kWide) {
      Lanes acc[4];
      for (int q = 0; q < 4; ++q) acc[q] = *reinterpret_cast<const Lanes*>(b + o + q * kLanes);
      for (int64_t k = 0; k < K; ++k)
        for (int q = 0; q < 4; ++q) acc[q] += xr[k] * *reinterpret_cast<const Lanes*>(wt + k * O + o + q * kLanes);
      for (int q = 0; q < 4; ++q)
        *reinterpret_cast<Lanes*>(yr + o + q * kLanes) = relu ? (acc[q] > zero ? acc[q] : zero) : acc[q];
    }
    for (int64_t o = wide; o < whole; o += kLanes) {
      Lanes acc = *reinterpret_cast<const Lanes*>(b + o);
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * *reinterpret_cast<const Lanes*>(wt + k * O + o);
      *reinterpret_cast<Lanes*>(yr + o) = relu ? (acc > zero ? acc : zero) : acc;
    }
    for (int64_t o = whole; o < O; ++o) {
      float acc = b[o];
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * wt[k * O + o];
      yr[o] = relu ? std::max(acc, 0.f) : acc;
    }
  }
}

// kLanes columns from o of a narrow layer's backward, over all B rows: the masked gradient g (where
// the output was positive; stored only where `g` is not null, for the input's gradient), the bias's
// gradient, and the weight's gw [O, K] = g^T x with its KK sums in registers. g never goes through
// memory when the input needs no gradient (a model's dense features).
template <int KK>
EMBER_SIMD_INLINE void SmallKGradBlock(const float* __restrict gy, int64_t ld, const float* __restrict y,
                                       const float* __restrict x, int64_t B, int64_t O, int64_t o, bool relu,
                                       float* __restrict g, float* __restrict gb, float* __restrict gw) {
  Lanes acc[KK], bias{};
  for (int k = 0; k < KK; ++k) acc[k] = Lanes{};
  const Lanes zero{};
  for (int64_t r = 0; r < B; ++r) {
    Lanes gv = *reinterpret_cast<const Lanes*>(gy + r * ld + o);
    if (relu) gv = *reinterpret_cast<const Lanes*>(y + r * O + o) > zero ? gv : zero;
    if (g) *reinterpret_cast<Lanes*>(g + r * O + o) = gv;
    bias += gv;
    const float* xr = x + r * KK;
    for (int k = 0; k < KK; ++k) acc[k] += xr[k] * gv;
  }
  *reinterpret_cast<Lanes*>(gb + o) = bias;
  for (int k = 0; k < KK; ++k)
    for (int64_t l = 0; l < kLanes; ++l) gw[(o + l) * KK + k] = acc[k][l];
}

template <int KK>
EMBER_SIMD_INLINE void SmallKGradColumns(const float* __restrict gy, int64_t ld, const float* __restrict y,
                                         const float* __restrict x, int64_t B, int64_t O, int64_t o0, int64_t o1,
                                         bool relu, float* __restrict g, float* __restrict gb, float* __restrict gw) {
  int64_t o = o0;
  for (; o + kLanes <= o1; o += kLanes) SmallKGradBlock<KK>(gy, ld, y, x, B, O, o, relu, g, gb, gw);
  for (; o < o1; ++o) {
    float sums[KK] = {}, bias = 0.f;
    for (int64_t r = 0; r < B; ++r) {
      const float v = relu && !(y[r * O + o] > 0.f) ? 0.f : gy[r * ld + o];
      if (g) g[r * O + o] = v;
      bias += v;
      for (int k = 0; k < KK; ++k) sums[k] += x[r * KK + k] * v;
    }
    gb[o] = bias;
    for (int k = 0; k < KK; ++k) gw[o * KK + k] = sums[k];
  }
}

// Columns [o0, o1) of a layer's backward with an input of K <= kSmallK features (above).
EMBER_SIMD_CLONES void SmallKGrads(const float* __restrict gy, int64_t ld, const float* __restrict y,
                                   const float* __restrict x, int64_t K, int64_t B, int64_t O, int64_t o0, int64_t o1,
                                   bool relu, float* __restrict g, float* __restrict gb, float* __restrict gw) {
  switch (K) {
#define EMBER_SMALL_K(n) \
  case n:                \
    return SmallKGradColumns<n>(gy, ld, y, x, B, O, o0, o1, relu, g, gb, gw);
    EMBER_SMALL_K(1)
    EMBER_SMALL_K(2)
    EMBER_SMALL_K(3)
    EMBER_SMALL_K(4)
    EMBER_SMALL_K(5)
    EMBER_SMALL_K(6)
    EMBER_SMALL_K(7)
    EMBER_SMALL_K(8)
    EMBER_SMALL_K(9)
    EMBER_SMALL_K(10)
    EMBER_SMALL_K(11)
    EMBER_SMALL_K(12)
    EMBER_SMALL_K(13)
    EMBER_SMALL_K(14)
    EMBER_SMALL_K(15)
    EMBER_SMALL_K(16)
#undef EMBER_SMALL_K
  }
}
static_assert(kSmallK == 16, "SmallKGrads has a case per width up to kSmallK");

// relu?(x W^T + b) with the activation applied in place on the product, and a backward that masks
// the gradient and sums the bias's gradient in one pass. LibTorch's Linear followed by ReLU makes
// a copy of the bias into the output, the product, a separate ReLU output and, backward, a
// separate mask pass and a sum.
class LinearActivationFn : public torch::autograd::Function<LinearActivationFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& w,
                               const torch::Tensor& b, bool relu) {
    auto x = x_in.contiguous();
    const int64_t B = x.size(0), K = x.size(1), O = w.size(0);
    const float* bp = b.data_ptr<float>();
    torch::Tensor y;
    if (K <= kSmallK) {
      y = torch::empty({B, O}, x.options());
      const auto wt = w.t().contiguous();
      const float* xp = x.data_ptr<float>();
      const float* wtp = wt.data_ptr<float>();
      float* yp = y.data_ptr<float>();
      at::parallel_for(0, B, std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(O, 1)),
                       [&](int64_t r0, int64_t r1) { SmallKForward(xp, K, wtp, bp, O, r0, r1, relu, yp); });
    } else {
      y = torch::mm(x, w.t());
      float* yp = y.data_ptr<float>();
      at::parallel_for(0, B, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(O, 1)),
                       [&](int64_t r0, int64_t r1) { BiasActivation(yp, r0, r1, O, bp, relu); });
    }
    ctx->saved_data["relu"] = relu;
    // The output is saved only where the mask needs it.
    ctx->save_for_backward({x, w, relu ? y : torch::Tensor()});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const bool relu = ctx->saved_data["relu"].toBool();
    auto gy = grads[0];
    if (gy.dim() != 2 || gy.stride(1) != 1) gy = gy.contiguous();
    const int64_t B = x.size(0), K = x.size(1), O = w.size(0);
    // A narrow input's weight gradient is summed in the same pass as the mask, and the masked
    // gradient is kept only for the input's gradient.
    const bool small = K <= kSmallK, keep_g = !small || ctx->needs_input_grad(0);
    torch::Tensor g = keep_g ? torch::empty({B, O}, x.options()) : torch::Tensor();
    auto gb = torch::empty({O}, x.options());
    torch::Tensor gw = small ? torch::empty({O, K}, x.options()) : torch::Tensor();
    const float* xp = x.data_ptr<float>();
    const float* gyp = gy.data_ptr<float>();
    const float* yp = relu ? saved[2].data_ptr<float>() : nullptr;
    float* gp = keep_g ? g.data_ptr<float>() : nullptr;
    float* gbp = gb.data_ptr<float>();
    float* gwp = small ? gw.data_ptr<float>() : nullptr;
    const int64_t ld = gy.stride(0);
    // Blocks of 64 columns: each task owns its columns' bias (and narrow weight) sums.
    constexpr int64_t kBlock = 64;
    const int64_t blocks = (O + kBlock - 1) / kBlock;
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      const int64_t o0 = k0 * kBlock, o1 = std::min(O, k1 * kBlock);
      if (small)
        SmallKGrads(gyp, ld, yp, xp, K, B, O, o0, o1, relu, gp, gbp, gwp);
      else
        MaskAndBiasGrad(gyp, ld, yp, B, O, o0, o1, relu, gp, gbp);
    });
    torch::Tensor gx;
    if (ctx->needs_input_grad(0)) gx = torch::mm(g, w);
    if (!small && ctx->needs_input_grad(1)) gw = torch::mm(g.t(), x);
    return {gx, gw, ctx->needs_input_grad(2) ? gb : torch::Tensor(), torch::Tensor()};
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

torch::Tensor LinearActivation(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool relu) {
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 2 && w.scalar_type() == torch::kFloat &&
      b.defined() && b.scalar_type() == torch::kFloat && w.is_contiguous() && b.is_contiguous())
    return LinearActivationFn::apply(x, w, b, relu);
  auto y = torch::linear(x, w, b);
  return relu ? torch::relu(y) : y;
}

torch::Tensor DotInteractionWithDense(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& tri) {
  TORCH_CHECK(x.dim() == 2 && (e.dim() == 2 || e.dim() == 3) && e.size(0) == x.size(0) && x.size(1) > 0 &&
                  (e.dim() == 3 ? e.size(2) == x.size(1) : e.size(1) % x.size(1) == 0),
              "DotInteractionWithDense: x [B, d] and e [B, F x d] or [B, F, d] expected");
  const int64_t B = x.size(0), d = x.size(1), F = e.dim() == 3 ? e.size(1) : e.size(1) / d;
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat && e.scalar_type() == torch::kFloat)
    return DotInteractionWithDenseFn::apply(x, e, F);
  auto t = torch::cat({x.unsqueeze(1), e.reshape({B, F, d})}, 1);
  return torch::cat({x, DotInteraction(t, tri)}, 1);
}

torch::Tensor DotInteraction(const torch::Tensor& t, const torch::Tensor& tri) {
  if (t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.dim() == 3) return DotInteractionFn::apply(t);
  const int64_t B = t.size(0), n = t.size(1);
  return torch::bmm(t, t.transpose(1, 2)).view({B, n * n}).index_select(1, tri);
}

}  // namespace ember::models
