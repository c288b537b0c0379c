#include "ember/models/dense_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

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
  if (precision_ == DensePrecision::kFp32 || torch::GradMode::is_enabled())
    return torch::nn::LinearImpl::forward(input);
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
  weight_bf16_ = bias_bf16_ = torch::Tensor();
  packed_ = c10::IValue();
  try {
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
    weight_bf16_ = bias_bf16_ = torch::Tensor();
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
