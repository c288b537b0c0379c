#include "ember/models/dense_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <immintrin.h>

#include <algorithm>
#include <mutex>

namespace ember::models {
namespace {

// The quantised engine int8 layers run on: FBGEMM where this LibTorch has it, else oneDNN.
// LibTorch keeps the engine process-wide; both are x86 engines, so setting it once is enough.
Status UseX86QuantizedEngine() {
  static std::once_flag once;
  static Status status;
  std::call_once(once, [] {
    const auto& engines = at::globalContext().supportedQEngines();
    for (at::QEngine e : {at::QEngine::FBGEMM, at::QEngine::ONEDNN}) {
      if (std::find(engines.begin(), engines.end(), e) != engines.end()) {
        at::globalContext().setQEngine(e);
        return;
      }
    }
    status = Status::InvalidArgument(
        "int8 dense layers need LibTorch's FBGEMM or oneDNN quantised engine, "
        "which this LibTorch lacks");
  });
  return status;
}

c10::OperatorHandle Op(const char* name) { return c10::Dispatcher::singleton().findSchemaOrThrow(name, ""); }

// The small-batch fp32 product. The weights are packed once into tiles of kCols output columns,
// [tiles][K][kCols] (the last tile zero-padded), so that a pass streams them in order; R rows of
// a tile keep their R x kCols sums in registers (R = 4: 16 AVX-512 vectors). Each row's sums run
// in the same order whatever rows it shares the pass with, so a row's answer does not depend on
// its batch (below kSmallBatchRows). AVX-512 only (elsewhere small passes stay with BLAS).
constexpr int64_t kCols = 64;

torch::Tensor PackWeights(const torch::Tensor& weight) {
  const int64_t O = weight.size(0), K = weight.size(1), tiles = (O + kCols - 1) / kCols;
  auto w = torch::zeros({tiles * kCols, K}, torch::kFloat);
  w.narrow(0, 0, O).copy_(weight.detach());
  // [tiles, kCols, K] -> [tiles, K, kCols]
  return w.view({tiles, kCols, K}).transpose(1, 2).contiguous();
}

// R rows (R <= 4) of one tile: R x 4 AVX-512 vectors of sums, in registers.
template <int R>
__attribute__((target("avx512f,fma"), always_inline)) inline void LinearTileAvx512(const float* x, int64_t K,
                                                                                   const float* tile, const float* bias,
                                                                                   int64_t n, int64_t out_stride,
                                                                                   float* y) {
  __m512 acc[R][4];
  for (int j = 0; j < 4; ++j) {
    const __m512 b = bias ? _mm512_loadu_ps(bias + 16 * j) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) acc[r][j] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* w = tile + k * kCols;
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32),
                 w3 = _mm512_loadu_ps(w + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * K + k]);
      acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(xv, w2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(xv, w3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) {
      const int64_t left = n - 16 * j;
      if (left <= 0) break;
      const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
      _mm512_mask_storeu_ps(y + r * out_stride + 16 * j, mask, acc[r][j]);
    }
}

// y [B, O] = x [B, K] W^T + bias, W packed by PackWeights and the bias padded to whole tiles.
__attribute__((target("avx512f,fma"))) void SmallBatchLinear(const float* x, int64_t B, int64_t K, const float* packed,
                                                             const float* bias, int64_t O, float* y) {
  for (int64_t t = 0; t * kCols < O; ++t) {
    const int64_t o0 = t * kCols, n = std::min<int64_t>(kCols, O - o0);
    const float* tile = packed + t * K * kCols;
    const float* b = bias ? bias + o0 : nullptr;
    int64_t r = 0;
    for (; r + 4 <= B; r += 4) LinearTileAvx512<4>(x + r * K, K, tile, b, n, O, y + r * O + o0);
    switch (B - r) {
      case 3:
        LinearTileAvx512<3>(x + r * K, K, tile, b, n, O, y + r * O + o0);
        break;
      case 2:
        LinearTileAvx512<2>(x + r * K, K, tile, b, n, O, y + r * O + o0);
        break;
      case 1:
        LinearTileAvx512<1>(x + r * K, K, tile, b, n, O, y + r * O + o0);
        break;
      default:
        break;
    }
  }
}

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace

Result<DensePrecision> ParseDensePrecision(const std::string& name) {
  if (name == "fp32") return DensePrecision::kFp32;
  if (name == "bf16") return DensePrecision::kBf16;
  if (name == "int8") return DensePrecision::kInt8;
  return Status::InvalidArgument("dense precision '" + name + "' is not one of fp32, bf16, int8");
}

const char* DensePrecisionName(DensePrecision p) {
  switch (p) {
    case DensePrecision::kBf16:
      return "bf16";
    case DensePrecision::kInt8:
      return "int8";
    default:
      return "fp32";
  }
}

torch::Tensor DenseLinearImpl::forward(const torch::Tensor& input) {
  if (torch::GradMode::is_enabled()) return torch::nn::LinearImpl::forward(input);
  if (packed_fp32_.defined() && HasAvx512() && input.dim() == 2 && input.size(0) <= kSmallBatchRows &&
      input.scalar_type() == torch::kFloat && input.device().is_cpu()) {
    const auto x = input.contiguous();
    const int64_t B = x.size(0), K = x.size(1), O = weight.size(0);
    TORCH_CHECK(K == weight.size(1), "DenseLinear: input has ", K, " features, the layer ", weight.size(1));
    auto y = torch::empty({B, O}, torch::kFloat);
    SmallBatchLinear(x.data_ptr<float>(), B, K, packed_fp32_.data_ptr<float>(),
                     bias_padded_.defined() ? bias_padded_.data_ptr<float>() : nullptr, O, y.data_ptr<float>());
    return y;
  }
  if (precision_ == DensePrecision::kFp32) return torch::nn::LinearImpl::forward(input);
  if (precision_ == DensePrecision::kBf16)
    return torch::linear(input.to(torch::kBFloat16), weight_bf16_, bias_bf16_).to(torch::kFloat);
  torch::jit::Stack stack{input.contiguous(), packed_, false};
  static const c10::OperatorHandle linear_dynamic = Op("quantized::linear_dynamic");
  linear_dynamic.callBoxed(&stack);
  return stack[0].toTensor();
}

Status DenseLinearImpl::SetPrecision(DensePrecision p) {
  if (weight.device().type() != torch::kCPU && p != DensePrecision::kFp32)
    return Status::InvalidArgument(std::string("dense precision ") + DensePrecisionName(p) + " runs on the CPU only");
  if (p == DensePrecision::kInt8) EMBER_RETURN_IF_ERROR(UseX86QuantizedEngine());
  torch::NoGradGuard no_grad;
  weight_bf16_ = bias_bf16_ = packed_fp32_ = bias_padded_ = torch::Tensor();
  packed_ = c10::IValue();
  try {
    // Every precision answers small passes in fp32 on the packed weights: faster than its own
    // path there, and exact.
    if (weight.device().is_cpu() && weight.scalar_type() == torch::kFloat &&
        (!bias.defined() || bias.scalar_type() == torch::kFloat)) {
      packed_fp32_ = PackWeights(weight);
      if (bias.defined()) {
        bias_padded_ = torch::zeros({packed_fp32_.size(0) * kCols}, torch::kFloat);
        bias_padded_.narrow(0, 0, bias.size(0)).copy_(bias.detach());
      }
    }
    if (p == DensePrecision::kBf16) {
      weight_bf16_ = weight.detach().to(torch::kBFloat16);
      if (bias.defined()) bias_bf16_ = bias.detach().to(torch::kBFloat16);
    } else if (p == DensePrecision::kInt8) {
      auto w = weight.detach().contiguous();
      auto scales = (w.abs().amax(1).to(torch::kDouble) / 127.0).clamp_min(1e-12);
      auto zeros = torch::zeros({w.size(0)}, torch::kLong);
      auto q = torch::quantize_per_channel(w, scales, zeros, 0, torch::kQInt8);
      c10::optional<torch::Tensor> b;
      if (bias.defined()) b = bias.detach().contiguous();
      torch::jit::Stack stack{q, b};
      static const c10::OperatorHandle prepack = Op("quantized::linear_prepack");
      prepack.callBoxed(&stack);
      packed_ = std::move(stack[0]);
    }
  } catch (const std::exception& e) {
    weight_bf16_ = bias_bf16_ = packed_fp32_ = bias_padded_ = torch::Tensor();
    packed_ = c10::IValue();
    precision_ = DensePrecision::kFp32;
    return Status::InvalidArgument(std::string("dense precision ") + DensePrecisionName(p) + ": " + e.what());
  }
  precision_ = p;
  return Status::Ok();
}

Status SetDensePrecision(torch::nn::Module& module, DensePrecision p) {
  for (const auto& m : module.modules(/*include_self=*/true))
    if (auto* linear = dynamic_cast<DenseLinearImpl*>(m.get())) EMBER_RETURN_IF_ERROR(linear->SetPrecision(p));
  return Status::Ok();
}

}  // namespace ember::models
