// Batched row kernels, each with a plain reference twin (`*Ref`) that tests compare against.
//
// Rows are addressed through pointer arrays (rows[i] -> weights[dim] followed by optimizer
// state), so kernels work over any storage layout.
//
// Semantics (pseudocode):
//   GatherRows:        for i < n: out[i*dim : (i+1)*dim] = rows[i][0:dim]
//   ApplyUpdate, with g = grads[i*dim : (i+1)*dim], w = rows[i][0:dim], s = rows[i][dim:]:
//     sgd:             w -= lr * g
//     adagrad:         s += g*g;                 w -= lr * g / (sqrt(s) + eps)   (s: dim floats)
//     rowwise_adagrad: s[0] += mean(g*g);        w -= lr * g / (sqrt(s[0]) + eps)
//     adam:            t = ++s[2*dim]; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
//                      w -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
//                      (m = s[0:dim], v = s[dim:2dim]; the step count is per row, so rows
//                       touched rarely get the bias correction of their own history)
//     ftrl:            per coordinate (z = s[0:dim], n = s[dim:2dim], FTRL-proximal):
//                      sigma = (sqrt(n + g*g) - sqrt(n)) / lr; z += g - sigma*w; n += g*g;
//                      w = |z| <= l1 ? 0 : -(z - sign(z)*l1) / ((beta + sqrt(n)) / lr + l2)
// A key must not appear twice in one call (callers de-duplicate and sum gradients first).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/embedding/types.h"

namespace ember::embedding {

// Prefetches every cache line of [p, p + floats) into all cache levels. A read prefetch even for
// rows about to be written: GCC drops __builtin_prefetch(p, 1) unless the target has PREFETCHW
// (-mprfchw), which the portable build does not assume, and a line no other core holds arrives
// exclusive, so the write that follows needs no second trip.
inline void PrefetchSpan(const float* p, int floats) {
  const char* first = reinterpret_cast<const char*>(p);
  const char* last = reinterpret_cast<const char*>(p + floats - 1);
  for (const char* line = first; reinterpret_cast<uintptr_t>(line) >> 6 < (reinterpret_cast<uintptr_t>(last) >> 6);
       line += 64)
    __builtin_prefetch(line, 0, 3);
  __builtin_prefetch(last, 0, 3);
}

void GatherRows(const float* const* rows, size_t n, int dim, float* out);
void GatherRowsRef(const float* const* rows, size_t n, int dim, float* out);

void ApplyUpdate(const OptimizerConfig& opt, float* const* rows, size_t n, int dim, const float* grads);
void ApplyUpdateRef(const OptimizerConfig& opt, float* const* rows, size_t n, int dim, const float* grads);
// Fresh optimizer state of a row of `dim` values: StateFloats(opt.kind, dim) floats at `state`
// (Adagrad accumulators and FTRL's n at opt.initial_accumulator, everything else zero).
void InitState(const OptimizerConfig& opt, int dim, float* state);
// The fresh value of the `part`-th per-value state array (Adagrad's accumulator: 0; FTRL's z: 0,
// its n: 1), for stores that lay state out per kept value.
float InitialStateValue(const OptimizerConfig& opt, int part);

}  // namespace ember::embedding
