// Synthetic CTR data with a planted ground truth, in the Criteo text format.
//
// Categorical field f draws a Zipf(s)-distributed rank r in [1, V_f] (V_f spread geometrically
// from min_vocab to max_vocab over the fields); the written id is a teacher-seeded hash of
// (f, r). Integer features are log-normal counts with per-feature missing rates. The click
// probability comes from a hidden teacher:
//   logit = b + sum_f s(r_f) w_f(r_f) + sum_{(f,g) in P} c_fg s(r_f) s(r_g) <u_f(r_f), u_g(r_g)>
//           + sum_j a_j tanh(z_j - m_j) + a_x tanh(z_0 - m_0) tanh(z_1 - m_1)
//   z_j = log1p(x_j) (0 when missing),  s(r) = (1 + r / tail_rank)^(-tail_power)
// Every per-value parameter is derived from a hash of (teacher_seed, f, r), so no table is held;
// s(r) shrinks the effects of rare values (as partial pooling would), so the head of each
// field carries most of the signal while the long tail still costs memory. b is calibrated by
// bisection on a fixed pilot sample to the requested CTR.
// The teacher depends only on (teacher_seed, shape options); `seed` only drives sampling, so a
// train and a test file share one teacher when they share teacher_seed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/common/status.h"

namespace ember::data {

struct SyntheticCtrOptions {
  uint64_t rows = 100000;
  uint64_t seed = 1;           // sampling
  uint64_t teacher_seed = 42;  // the hidden model
  int num_dense = 13;
  int num_sparse = 26;
  uint64_t min_vocab = 10;
  uint64_t max_vocab = 2000000;
  double zipf = 1.1;  // Zipf exponent of every field
  double ctr = 0.25;  // target mean click probability
  int rank = 4;       // rank of the pairwise interaction factors
  double first_order_scale = 0.5;
  double interaction_scale = 0.12;
  double dense_scale = 0.3;
  double tail_rank = 50;  // rank scale of the shrinkage s(r)
  double tail_power = 2.0;
  // The teacher: "default" shrinks rare values' effects, s(r) = (1 + r / tail_rank)^-tail_power;
  // "longtail" gives every value, however rare, an effect of the same strength (s = 1), as real
  // CTR data's rare values carry signal (the tail_* options are then unused).
  std::string teacher = "default";
  // Multi-hot fields (bags of ids, written after the categorical fields as '|'-separated hex ids;
  // <out>.schema.toml gives the columns). Field m's bag holds Poisson(bag_mean) ids (capped at
  // bag_max; 0 = an empty bag) of Zipf ranks over multi_hot_vocab values; its effect on the logit:
  //   multi_hot_scale * (mean_k w_m(id_k) + 0.5 <mean_k v_m(id_k), u_g(r_g)> / sqrt(rank))
  // (the mean over the bag; g = m mod num_sparse; an empty bag adds 0), so a model that mean-pools
  // the bag can learn it exactly.
  int multi_hot = 0;
  double bag_mean = 4;
  int bag_max = 32;
  uint64_t multi_hot_vocab = 100000;
  double multi_hot_scale = 1.0;
};

class SyntheticCtrTeacher {
 public:
  explicit SyntheticCtrTeacher(const SyntheticCtrOptions& options);
  const SyntheticCtrOptions& options() const { return options_; }
  uint64_t vocab(int field) const { return vocab_[field]; }
  double bias() const { return bias_; }
  // The id written for rank r (1-based) of field f.
  uint64_t IdOfRank(int field, uint64_t rank) const;
  // Logit of an example: raw integer values (negative = missing) and value ranks per field.
  double Logit(const int64_t* raw_dense, const uint64_t* ranks) const;
  // The same logit by its terms (Logit = bias + first_order + pairs + dense).
  struct LogitTerms {
    double first_order = 0, pairs = 0, dense = 0;
  };
  LogitTerms Terms(const int64_t* raw_dense, const uint64_t* ranks) const;

  // Draws example `row` of the stream seeded by `seed`: raw dense values (-1 = missing) and the
  // rank of each field's value (its id is IdOfRank).
  void Sample(uint64_t seed, uint64_t row, int64_t* raw_dense, uint64_t* ranks) const;
  // The example's bags (multi_hot of them): ranks of their ids (id of rank r of bag m: IdOfRank(
  // num_sparse + m, r)), and their share of the logit given the categorical ranks.
  void SampleBags(uint64_t seed, uint64_t row, std::vector<std::vector<uint64_t>>* bags) const;
  double BagLogit(const std::vector<std::vector<uint64_t>>& bags, const uint64_t* ranks) const;

 private:
  double LogitNoBias(const int64_t* raw_dense, const uint64_t* ranks) const;
  SyntheticCtrOptions options_;
  bool long_tail_ = false;
  std::vector<uint64_t> vocab_;
  std::vector<double> field_scale_;
  std::vector<std::pair<int, int>> pairs_;
  std::vector<double> pair_scale_;
  std::vector<double> dense_a_, dense_m_, dense_mu_, dense_sigma_, dense_missing_;
  double bias_ = 0;
};

// Zipf sampler over {1..n} with exponent s > 0 (rejection-inversion, Hoermann & Derflinger
// 1996): O(1) expected per draw, no tables.
class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double s);
  // Draws a rank from 64 random bits (re-mixed on each rejection).
  uint64_t Sample(uint64_t random_bits) const;

 private:
  double H(double x) const;
  double HIntegral(double x) const;
  double HIntegralInverse(double x) const;
  uint64_t n_;
  double s_;
  double h_x1_, h_n_, threshold_;
};

struct OracleStats {
  uint64_t rows = 0;
  double auc = 0;
  // The AUC of the oracle's logit without its categorical pairs (first-order and dense terms
  // and bags only), and of its first-order terms alone: what learning every pairwise
  // interaction, or every interaction and dense term, can add at most.
  double auc_without_pairs = 0;
  double auc_first_order = 0;
  double logloss = 0;
  double ctr = 0;  // observed click rate
  double mean_probability = 0;
};

// Writes `options.rows` examples to `out_path` (atomically) and `<out_path>.oracle.json`.
// `progress(rows_done)` is called periodically if set.
Result<OracleStats> WriteSyntheticCtr(const SyntheticCtrOptions& options, const std::string& out_path,
                                      const std::function<void(uint64_t)>& progress = {});

}  // namespace ember::data
