#include "ember/embedding/kernels.h"

#include <cmath>
#include <cstring>

namespace ember::embedding {
namespace {
constexpr size_t kPrefetch = 8;

inline void Prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

void Sgd(float* __restrict w, const float* __restrict g, int dim, float lr) {
#pragma omp simd
  for (int j = 0; j < dim; ++j) w[j] -= lr * g[j];
}

void Adagrad(float* __restrict w, const float* __restrict g, int dim, float lr, float eps) {
  float* __restrict s = w + dim;
#pragma omp simd
  for (int j = 0; j < dim; ++j) {
    s[j] += g[j] * g[j];
    w[j] -= lr * g[j] / (std::sqrt(s[j]) + eps);
  }
}

void RowwiseAdagrad(float* __restrict w, const float* __restrict g, int dim, float lr, float eps) {
  float sq = 0;
#pragma omp simd reduction(+ : sq)
  for (int j = 0; j < dim; ++j) sq += g[j] * g[j];
  w[dim] += sq / static_cast<float>(dim);
  const float step = lr / (std::sqrt(w[dim]) + eps);
#pragma omp simd
  for (int j = 0; j < dim; ++j) w[j] -= step * g[j];
}

void Adam(float* __restrict w, const float* __restrict g, int dim, const OptimizerConfig& o) {
  float* __restrict m = w + dim;
  float* __restrict v = w + 2 * dim;
  const float t = (w[3 * dim] += 1.0f);
  const float bc1 = 1.0f - std::pow(o.beta1, t);
  const float bc2_sqrt = std::sqrt(1.0f - std::pow(o.beta2, t));
  const float step = o.lr / bc1;
  const float b1 = o.beta1, b2 = o.beta2, eps = o.eps;
#pragma omp simd
  for (int j = 0; j < dim; ++j) {
    m[j] = b1 * m[j] + (1 - b1) * g[j];
    v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
    w[j] -= step * m[j] / (std::sqrt(v[j]) / bc2_sqrt + eps);
  }
}
// One coordinate of FTRL-proximal; returns the new weight.
inline float FtrlWeight(float z, float n, const OptimizerConfig& o) {
  if (std::fabs(z) <= o.l1) return 0.0f;
  const float shrunk = z > 0 ? z - o.l1 : z + o.l1;
  return -shrunk / ((o.beta + std::sqrt(n)) / o.lr + o.l2);
}

void Ftrl(float* __restrict w, const float* __restrict g, int dim, const OptimizerConfig& o) {
  float* __restrict z = w + dim;
  float* __restrict n = w + 2 * dim;
  for (int j = 0; j < dim; ++j) {
    const float n_new = n[j] + g[j] * g[j];
    const float sigma = (std::sqrt(n_new) - std::sqrt(n[j])) / o.lr;
    z[j] += g[j] - sigma * w[j];
    n[j] = n_new;
    w[j] = FtrlWeight(z[j], n_new, o);
  }
}
}  // namespace

void GatherRows(const float* const* rows, size_t n, int dim, float* out) {
  const size_t bytes = static_cast<size_t>(dim) * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetch < n) Prefetch(rows[i + kPrefetch]);
    std::memcpy(out + i * dim, rows[i], bytes);
  }
}

void GatherRowsRef(const float* const* rows, size_t n, int dim, float* out) {
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) out[i * dim + j] = rows[i][j];
}

void ApplyUpdate(const OptimizerConfig& opt, float* const* rows, size_t n, int dim, const float* grads) {
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetch < n) Prefetch(rows[i + kPrefetch]);  // read: see PrefetchSpan
    float* w = rows[i];
    const float* g = grads + i * dim;
    switch (opt.kind) {
      case OptimizerKind::kSgd:
        Sgd(w, g, dim, opt.lr);
        break;
      case OptimizerKind::kAdagrad:
        Adagrad(w, g, dim, opt.lr, opt.eps);
        break;
      case OptimizerKind::kRowwiseAdagrad:
        RowwiseAdagrad(w, g, dim, opt.lr, opt.eps);
        break;
      case OptimizerKind::kAdam:
        Adam(w, g, dim, opt);
        break;
      case OptimizerKind::kFtrl:
        Ftrl(w, g, dim, opt);
        break;
    }
  }
}

void ApplyUpdateRef(const OptimizerConfig& opt, float* const* rows, size_t n, int dim, const float* grads) {
  for (size_t i = 0; i < n; ++i) {
    float* w = rows[i];
    const float* g = grads + i * dim;
    if (opt.kind == OptimizerKind::kSgd) {
      for (int j = 0; j < dim; ++j) w[j] = w[j] - opt.lr * g[j];
    } else if (opt.kind == OptimizerKind::kAdagrad) {
      for (int j = 0; j < dim; ++j) {
        w[dim + j] = w[dim + j] + g[j] * g[j];
        w[j] = w[j] - opt.lr * g[j] / (std::sqrt(w[dim + j]) + opt.eps);
      }
    } else if (opt.kind == OptimizerKind::kRowwiseAdagrad) {
      double sq = 0;
      for (int j = 0; j < dim; ++j) sq += static_cast<double>(g[j]) * g[j];
      w[dim] = static_cast<float>(w[dim] + sq / dim);
      for (int j = 0; j < dim; ++j) w[j] = w[j] - opt.lr * g[j] / (std::sqrt(w[dim]) + opt.eps);
    } else if (opt.kind == OptimizerKind::kFtrl) {
      for (int j = 0; j < dim; ++j) {
        const double n_old = w[2 * dim + j], n_new = n_old + static_cast<double>(g[j]) * g[j];
        const double z = w[dim + j] + g[j] - (std::sqrt(n_new) - std::sqrt(n_old)) / opt.lr * w[j];
        w[dim + j] = static_cast<float>(z);
        w[2 * dim + j] = static_cast<float>(n_new);
        w[j] = std::fabs(z) <= opt.l1 ? 0.0f
                                      : static_cast<float>(-(z - (z > 0 ? opt.l1 : -opt.l1)) /
                                                           ((opt.beta + std::sqrt(n_new)) / opt.lr + opt.l2));
      }
    } else {
      const double t = w[3 * dim] + 1.0;
      w[3 * dim] = static_cast<float>(t);
      const double bc1 = 1.0 - std::pow(static_cast<double>(opt.beta1), t);
      const double bc2 = 1.0 - std::pow(static_cast<double>(opt.beta2), t);
      for (int j = 0; j < dim; ++j) {
        double m = opt.beta1 * static_cast<double>(w[dim + j]) + (1.0 - opt.beta1) * g[j];
        double v =
            opt.beta2 * static_cast<double>(w[2 * dim + j]) + (1.0 - opt.beta2) * static_cast<double>(g[j]) * g[j];
        w[dim + j] = static_cast<float>(m);
        w[2 * dim + j] = static_cast<float>(v);
        w[j] = static_cast<float>(w[j] - (opt.lr / bc1) * m / (std::sqrt(v / bc2) + opt.eps));
      }
    }
  }
}

void InitState(const OptimizerConfig& opt, int dim, float* state) {
  const int n = StateFloats(opt.kind, dim);
  if (opt.kind == OptimizerKind::kRowwiseAdagrad) {
    state[0] = opt.initial_accumulator;
    return;
  }
  // Per-value arrays of `dim` floats each (Adam's trailing step count starts at zero too).
  for (int j = 0; j < n; ++j) {
    const int part = dim > 0 ? j / dim : 2;
    state[j] = part < 2 ? InitialStateValue(opt, part) : 0.0f;
  }
}

float InitialStateValue(const OptimizerConfig& opt, int part) {
  const bool accumulator = (opt.kind == OptimizerKind::kAdagrad && part == 0) ||
                           (opt.kind == OptimizerKind::kRowwiseAdagrad && part == 0) ||
                           (opt.kind == OptimizerKind::kFtrl && part == 1);
  return accumulator ? opt.initial_accumulator : 0.0f;
}

const char* OptimizerName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdagrad:
      return "adagrad";
    case OptimizerKind::kRowwiseAdagrad:
      return "rowwise_adagrad";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kFtrl:
      return "ftrl";
  }
  return "?";
}

bool ParseOptimizerKind(const std::string& name, OptimizerKind* kind) {
  for (auto k : {OptimizerKind::kSgd, OptimizerKind::kAdagrad, OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam,
                 OptimizerKind::kFtrl}) {
    if (name == OptimizerName(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

int StateFloats(OptimizerKind kind, int dim) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return 0;
    case OptimizerKind::kAdagrad:
      return dim;
    case OptimizerKind::kRowwiseAdagrad:
      return 1;
    case OptimizerKind::kAdam:
      return 2 * dim + 1;
    case OptimizerKind::kFtrl:
      return 2 * dim;
  }
  return 0;
}

}  // namespace ember::embedding
