#include "ember/workers/step_sync.h"

#include <cmath>
#include <cstring>

#include "fused_adam.h"

namespace ember::workers {

Result<TrainMode> ParseTrainMode(const std::string& name) {
  if (name == "sync") return TrainMode::kSync;
  if (name == "bounded") return TrainMode::kBounded;
  if (name == "async") return TrainMode::kAsync;
  return Status::InvalidArgument("train.mode: unknown mode '" + name + "' (expected sync, bounded or async)");
}

const char* TrainModeName(TrainMode mode) {
  switch (mode) {
    case TrainMode::kSync:
      return "sync";
    case TrainMode::kBounded:
      return "bounded";
    case TrainMode::kAsync:
      return "async";
  }
  return "?";
}

Result<StepSync> StepSync::Create(const SyncConfig& config, Collective* collective) {
  if (config.staleness < 0)
    return Status::InvalidArgument("train.staleness: must be >= 0, got " + std::to_string(config.staleness));
  if (config.staleness > 0 && config.mode != TrainMode::kBounded)
    return Status::InvalidArgument("train.staleness = " + std::to_string(config.staleness) +
                                   " needs train.mode = \"bounded\" (the mode is \"" + TrainModeName(config.mode) +
                                   "\")");
  StepSync s;
  s.config_ = config;
  s.collective_ = collective;
  return s;
}

uint64_t StepSync::PullWait(int64_t step) const {
  if (!pushed_ || config_.mode == TrainMode::kAsync) return 0;
  const int64_t s = config_.mode == TrainMode::kSync ? 0 : config_.staleness;
  return step > s ? static_cast<uint64_t>(step - s) : 0;
}

ps::PushClock StepSync::PushClock(int64_t step) const {
  ps::PushClock clock;
  clock.worker = static_cast<uint32_t>(collective_->rank());
  clock.workers = static_cast<uint32_t>(collective_->size());
  clock.step = static_cast<uint64_t>(step);
  clock.aggregate = config_.mode == TrainMode::kSync;
  return clock;
}

double StepSync::bound() const {
  switch (config_.mode) {
    case TrainMode::kSync:
      return 0;
    case TrainMode::kBounded:
      return static_cast<double>(config_.staleness);
    case TrainMode::kAsync:
      return HUGE_VAL;
  }
  return 0;
}

Status StepSync::AllReduceMeanGrads(const std::vector<torch::Tensor>& params) {
  return workers::AllReduceMeanGrads(params, collective_, &flat_);
}

Status AllReduceMeanGrads(const std::vector<torch::Tensor>& params, Collective* collective, std::vector<float>* flat) {
  if (collective->size() <= 1) return Status::Ok();
  size_t total = 0;
  for (auto& p : params) total += static_cast<size_t>(p.numel());
  flat->assign(total, 0.0f);
  size_t off = 0;
  for (auto& p : params) {
    const size_t n = static_cast<size_t>(p.numel());
    if (p.grad().defined()) {
      auto g = p.grad().to(torch::kCPU).contiguous();  // the collectives take host buffers
      std::memcpy(flat->data() + off, g.data_ptr<float>(), n * sizeof(float));
    }
    off += n;
  }
  EMBER_RETURN_IF_ERROR(collective->AllReduceSum(flat->data(), total));
  const float scale = 1.0f / static_cast<float>(collective->size());
  off = 0;
  for (const auto& p : params) {
    const size_t n = static_cast<size_t>(p.numel());
    auto& grad = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(p);
    grad.copy_(torch::from_blob(flat->data() + off, p.sizes(), torch::kFloat).to(p.device()) * scale);
    off += n;
  }
  return Status::Ok();
}

Result<DenseOptimizer> ParseDenseOptimizer(const std::string& name) {
  for (DenseOptimizer k : {DenseOptimizer::kAdam, DenseOptimizer::kAdagrad, DenseOptimizer::kSgd})
    if (name == DenseOptimizerName(k)) return k;
  return Status::InvalidArgument("train.optimizer: unknown dense optimizer '" + name +
                                 "' (expected adam, adagrad or sgd)");
}

const char* DenseOptimizerName(DenseOptimizer kind) {
  switch (kind) {
    case DenseOptimizer::kAdam:
      return "adam";
    case DenseOptimizer::kAdagrad:
      return "adagrad";
    case DenseOptimizer::kSgd:
      return "sgd";
  }
  return "?";
}

std::unique_ptr<torch::optim::Optimizer> MakeDenseOptimizer(DenseOptimizer kind,
                                                            const std::vector<torch::Tensor>& params, double lr) {
  switch (kind) {
    case DenseOptimizer::kAdagrad:
      return std::make_unique<torch::optim::Adagrad>(params, torch::optim::AdagradOptions(lr));
    case DenseOptimizer::kSgd:
      return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(lr));
    case DenseOptimizer::kAdam:
      break;
  }
  return std::make_unique<FusedAdam>(params, torch::optim::AdamOptions(lr));
}

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return "cuda";
    case DeviceKind::kAuto:
      return "auto";
  }
  return "?";
}

Result<torch::Device> ResolveDevice(DeviceKind kind) {
  const bool cuda = torch::cuda::is_available();
  if (kind == DeviceKind::kCuda && !cuda)
    return Status::InvalidArgument(
        "train.device = \"cuda\": no CUDA device here (this build's LibTorch has no CUDA, or no GPU is visible; "
        "build against a CUDA LibTorch with -DEMBER_TORCH_DIR=..., or use \"cpu\" or \"auto\")");
  if (kind == DeviceKind::kCuda || (kind == DeviceKind::kAuto && cuda)) return torch::Device(torch::kCUDA, 0);
  return torch::Device(torch::kCPU);
}

std::unique_lock<std::mutex> SeededInit(uint64_t seed) {
  static std::mutex mu;
  std::unique_lock<std::mutex> lock(mu);
  torch::manual_seed(seed);
  return lock;
}

}  // namespace ember::workers
