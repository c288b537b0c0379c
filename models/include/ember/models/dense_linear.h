// DenseLinear: torch::nn::Linear (the same parameters, names, initialisation and training
// forward) whose inference forward can also run in bf16 or with int8 weights.
//
//   fp32  y = x W^T + b (torch::nn::Linear)
//   bf16  y = float(bf16(x) bf16(W)^T + bf16(b)): oneDNN's bf16 products (fast where the CPU has
//         AVX512-BF16, emulated and slow elsewhere)
//   int8  y = dynamic quantisation: W per output channel to int8 (scale max|W_row| / 127), x per
//         call to uint8 with its own range, products in int32, y in fp32 (LibTorch's
//         quantized::linear_dynamic on FBGEMM or oneDNN, whichever this LibTorch has). The
//         input range is the whole call's, so a row's output depends on the rows beside it.
//
// Whatever the precision, a prepared layer (SetPrecision) answers passes of at most
// kSmallBatchRows rows in fp32 with ember's own AVX-512 product on weights packed for it: BLAS
// repacks the weights at every call, which costs small passes more than their products, and the
// bf16 and int8 paths are slower than fp32 there. A row's answer from such a pass does not depend
// on the rows beside it. Without AVX-512, small passes take the precision's own path.
//
// SetDensePrecision() prepares every DenseLinear of a module for serving: the lower-precision
// forward is used only without gradients (NoGradGuard), so a model being trained keeps fp32
// whatever it was set to. The prepared weights are copies: set the precision again after the
// parameters change. CPU only.
//
// Thread-safety: forward() is const in effect (it reads the prepared weights); SetDensePrecision
// must not run concurrently with forward().
#pragma once

#include <torch/torch.h>

#include <string>

#include "ember/common/status.h"

namespace ember::models {

enum class DensePrecision { kFp32, kBf16, kInt8 };
// "fp32", "bf16" or "int8"; anything else is InvalidArgument naming the choices.
Result<DensePrecision> ParseDensePrecision(const std::string& name);
const char* DensePrecisionName(DensePrecision p);

class DenseLinearImpl : public torch::nn::LinearImpl {
 public:
  static constexpr int64_t kSmallBatchRows = 16;
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& input);
  DensePrecision precision() const { return precision_; }
  // Prepares the weights for p and for small passes (the previous precision's copies are dropped).
  Status SetPrecision(DensePrecision p);

 private:
  DensePrecision precision_ = DensePrecision::kFp32;
  torch::Tensor weight_bf16_, bias_bf16_;
  c10::IValue packed_;         // quantized::linear_prepack's packed int8 weights and fp32 bias
  torch::Tensor packed_fp32_;  // fp32 weights in the small-pass layout (PackWeights in the .cc)
  torch::Tensor bias_padded_;  // the bias padded to the layout's whole tiles
};
TORCH_MODULE(DenseLinear);

// Sets every DenseLinear in `module` (itself included) to p. InvalidArgument when p needs what
// this LibTorch lacks (int8: a quantised engine) or a parameter is not on the CPU.
Status SetDensePrecision(torch::nn::Module& module, DensePrecision p);

}  // namespace ember::models
