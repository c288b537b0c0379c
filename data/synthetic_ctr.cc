#include "ember/data/synthetic_ctr.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/common/metrics.h"

namespace ember::data {
namespace {
constexpr double kPi = 3.14159265358979323846;

double Gaussian(uint64_t h) {
  const double u1 = std::max(UnitFromHash(Mix64(h)), 1e-300);
  const double u2 = UnitFromHash(Mix64(h ^ 0x6a09e667f3bcc909ULL));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
}
double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double Helper1(double x) { return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1 - x * (0.5 - x / 3); }
double Helper2(double x) { return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1 + x * (0.5 + x / 6); }
}  // namespace

ZipfSampler::ZipfSampler(uint64_t n, double s) : n_(n), s_(s) {
  h_x1_ = HIntegral(1.5) - 1.0;
  h_n_ = HIntegral(static_cast<double>(n) + 0.5);
  threshold_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
}
double ZipfSampler::H(double x) const { return std::exp(-s_ * std::log(x)); }
double ZipfSampler::HIntegral(double x) const {
  const double lx = std::log(x);
  return Helper2((1.0 - s_) * lx) * lx;
}
double ZipfSampler::HIntegralInverse(double x) const {
  double t = x * (1.0 - s_);
  if (t < -1.0) t = -1.0;
  return std::exp(Helper1(t) * x);
}
uint64_t ZipfSampler::Sample(uint64_t bits) const {
  for (int attempt = 0;; ++attempt) {
    bits = Mix64(bits + 0x9e3779b97f4a7c15ULL * (attempt + 1));
    const double u = h_n_ + UnitFromHash(bits) * (h_x1_ - h_n_);
    const double x = HIntegralInverse(u);
    double kd = std::floor(x + 0.5);
    if (kd < 1) kd = 1;
    if (kd > static_cast<double>(n_)) kd = static_cast<double>(n_);
    if (kd - x <= threshold_ || u >= HIntegral(kd + 0.5) - H(kd)) return static_cast<uint64_t>(kd);
  }
}

SyntheticCtrTeacher::SyntheticCtrTeacher(const SyntheticCtrOptions& o)
    : options_(o), long_tail_(o.teacher == "longtail") {
  const uint64_t ts = o.teacher_seed;
  const int S = o.num_sparse;
  for (int f = 0; f < S; ++f) {
    const double t = S > 1 ? static_cast<double>(f) / (S - 1) : 1.0;
    const double v = static_cast<double>(o.min_vocab) * std::pow(static_cast<double>(o.max_vocab) / o.min_vocab, t);
    vocab_.push_back(std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(v))));
    // Importance varies by field: some fields matter much more than others.
    field_scale_.push_back(o.first_order_scale * (0.3 + 1.4 * UnitFromHash(Mix64(PairSeed(ts, 100 + f)))));
  }
  // Each field interacts with two others (a ring plus a chord): 2S pairs.
  for (int f = 0; f < S && S > 1; ++f) {
    const int g1 = (f + 1) % S;
    const int g2 = (f + 1 + static_cast<int>(Mix64(PairSeed(ts, 200 + f)) % std::max(1, S - 1))) % S;
    pairs_.push_back({f, g1});
    if (g2 != f && g2 != g1) pairs_.push_back({f, g2});
  }
  for (size_t p = 0; p < pairs_.size(); ++p)
    pair_scale_.push_back(o.interaction_scale * Gaussian(PairSeed(ts, 300 + p)) /
                          std::sqrt(static_cast<double>(o.rank)));
  for (int j = 0; j < o.num_dense; ++j) {
    const uint64_t h = PairSeed(ts, 400 + j);
    dense_a_.push_back(o.dense_scale * Gaussian(h));
    dense_mu_.push_back(0.5 + 3.0 * UnitFromHash(Mix64(h + 1)));
    dense_sigma_.push_back(0.5 + 1.5 * UnitFromHash(Mix64(h + 2)));
    dense_m_.push_back(dense_mu_.back() * (0.6 + 0.8 * UnitFromHash(Mix64(h + 3))));
    dense_missing_.push_back(0.05 + 0.4 * UnitFromHash(Mix64(h + 4)));
  }
  // Calibrate the bias on a fixed pilot sample (depends on the teacher only).
  const int pilot = 20000;
  std::vector<double> logits(pilot);
  std::vector<int64_t> dense(o.num_dense);
  std::vector<uint64_t> ranks(S);
  std::vector<std::vector<uint64_t>> bags;
  for (int i = 0; i < pilot; ++i) {
    Sample(Mix64(ts ^ 0xca1b), static_cast<uint64_t>(i), dense.data(), ranks.data());
    logits[i] = LogitNoBias(dense.data(), ranks.data());
    if (o.multi_hot > 0) {
      SampleBags(Mix64(ts ^ 0xca1b), static_cast<uint64_t>(i), &bags);
      logits[i] += BagLogit(bags, ranks.data());
    }
  }
  double lo = -30, hi = 30;
  for (int it = 0; it < 100; ++it) {
    const double mid = 0.5 * (lo + hi);
    double mean = 0;
    for (double l : logits) mean += Sigmoid(l + mid);
    mean /= pilot;
    (mean < o.ctr ? lo : hi) = mid;
  }
  bias_ = 0.5 * (lo + hi);
}

uint64_t SyntheticCtrTeacher::IdOfRank(int field, uint64_t rank) const {
  return Mix64(PairSeed(options_.teacher_seed, 500 + field) ^ rank) & 0xffffffffULL;
}

void SyntheticCtrTeacher::Sample(uint64_t seed, uint64_t row, int64_t* raw_dense, uint64_t* ranks) const {
  const uint64_t base = Mix64(PairSeed(seed, row));
  for (int j = 0; j < options_.num_dense; ++j) {
    const uint64_t h = Mix64(base + 0x1000 + j);
    if (UnitFromHash(h) < dense_missing_[j]) {
      raw_dense[j] = -1;
      continue;
    }
    const double x = std::exp(dense_mu_[j] + dense_sigma_[j] * Gaussian(h ^ 0xd1b54a32d192ed03ULL));
    raw_dense[j] = static_cast<int64_t>(std::min(x, 1e12));
  }
  for (int f = 0; f < options_.num_sparse; ++f) {
    // Samplers are cheap to build; keeping them per call avoids shared mutable state.
    const ZipfSampler zipf(vocab_[f], options_.zipf);
    ranks[f] = zipf.Sample(Mix64(base + 0x2000 + f));
  }
}

double SyntheticCtrTeacher::LogitNoBias(const int64_t* raw_dense, const uint64_t* ranks) const {
  const LogitTerms t = Terms(raw_dense, ranks);
  return t.first_order + t.pairs + t.dense;
}

SyntheticCtrTeacher::LogitTerms SyntheticCtrTeacher::Terms(const int64_t* raw_dense, const uint64_t* ranks) const {
  const uint64_t ts = options_.teacher_seed;
  LogitTerms terms;
  double& logit = terms.first_order;
  const int S = options_.num_sparse, k = options_.rank;
  double u[64][16];
  for (int f = 0; f < S; ++f) {
    const uint64_t h = HashId(ranks[f], PairSeed(ts, 600 + f));
    const double shrink =
        long_tail_ ? 1.0 : std::pow(1.0 + static_cast<double>(ranks[f]) / options_.tail_rank, -options_.tail_power);
    logit += shrink * field_scale_[f] * Gaussian(h);
    if (f < 64)
      for (int r = 0; r < k && r < 16; ++r) u[f][r] = shrink * Gaussian(Mix64(h + 0x3000 + r));
  }
  for (size_t p = 0; p < pairs_.size(); ++p) {
    const auto [f, g] = pairs_[p];
    if (f >= 64 || g >= 64) continue;
    double dot = 0;
    for (int r = 0; r < k && r < 16; ++r) dot += u[f][r] * u[g][r];
    terms.pairs += pair_scale_[p] * dot;
  }
  double z0 = 0, z1 = 0;
  for (int j = 0; j < options_.num_dense; ++j) {
    const double z = raw_dense[j] > 0 ? std::log1p(static_cast<double>(raw_dense[j])) : 0.0;
    terms.dense += dense_a_[j] * std::tanh(z - dense_m_[j]);
    if (j == 0) z0 = z;
    if (j == 1) z1 = z;
  }
  if (options_.num_dense > 1)
    terms.dense += options_.dense_scale * 0.15 * std::tanh(z0 - dense_m_[0]) * std::tanh(z1 - dense_m_[1]);
  return terms;
}

void SyntheticCtrTeacher::SampleBags(uint64_t seed, uint64_t row, std::vector<std::vector<uint64_t>>* bags) const {
  const SyntheticCtrOptions& o = options_;
  bags->resize(static_cast<size_t>(o.multi_hot));
  const uint64_t base = Mix64(PairSeed(seed, row) ^ 0xba95);
  const ZipfSampler zipf(o.multi_hot_vocab, o.zipf);
  for (int m = 0; m < o.multi_hot; ++m) {
    auto& bag = (*bags)[static_cast<size_t>(m)];
    bag.clear();
    // Poisson(bag_mean) by multiplying uniforms (Knuth), capped.
    const double limit = std::exp(-o.bag_mean);
    double prod = 1;
    int n = -1;
    uint64_t h = Mix64(base + 0x4000 + static_cast<uint64_t>(m));
    do {
      ++n;
      h = Mix64(h + 0x9e3779b97f4a7c15ULL);
      prod *= UnitFromHash(h);
    } while (prod > limit && n < o.bag_max);
    for (int k = 0; k < n; ++k) bag.push_back(zipf.Sample(Mix64(h + 0x5000 + static_cast<uint64_t>(k))));
  }
}

double SyntheticCtrTeacher::BagLogit(const std::vector<std::vector<uint64_t>>& bags, const uint64_t* ranks) const {
  const SyntheticCtrOptions& o = options_;
  const uint64_t ts = o.teacher_seed;
  const int S = o.num_sparse, k = std::min(o.rank, 16);
  double logit = 0;
  for (size_t m = 0; m < bags.size(); ++m) {
    const auto& bag = bags[m];
    if (bag.empty()) continue;
    const int f = S + static_cast<int>(m);
    double w = 0, v[16] = {0};
    for (uint64_t r : bag) {
      const uint64_t h = HashId(r, PairSeed(ts, 600 + f));
      const double shrink = long_tail_ ? 1.0 : std::pow(1.0 + static_cast<double>(r) / o.tail_rank, -o.tail_power);
      w += shrink * Gaussian(h);
      for (int j = 0; j < k; ++j) v[j] += shrink * Gaussian(Mix64(h + 0x3000 + j));
    }
    const double n = static_cast<double>(bag.size());
    const int g = static_cast<int>(m) % S;
    const uint64_t hg = HashId(ranks[g], PairSeed(ts, 600 + g));
    const double shrink_g =
        long_tail_ ? 1.0 : std::pow(1.0 + static_cast<double>(ranks[g]) / o.tail_rank, -o.tail_power);
    double dot = 0;
    for (int j = 0; j < k; ++j) dot += v[j] / n * shrink_g * Gaussian(Mix64(hg + 0x3000 + j));
    logit += o.multi_hot_scale * (w / n + 0.5 * dot / std::sqrt(static_cast<double>(k)));
  }
  return logit;
}

double SyntheticCtrTeacher::Logit(const int64_t* raw_dense, const uint64_t* ranks) const {
  return bias_ + LogitNoBias(raw_dense, ranks);
}

Result<OracleStats> WriteSyntheticCtr(const SyntheticCtrOptions& o, const std::string& out_path,
                                      const std::function<void(uint64_t)>& progress) {
  if (o.num_sparse < 1 || o.num_sparse > 64) return Status::InvalidArgument("--fields must be in [1, 64]");
  if (o.num_dense < 0 || o.num_dense > 64) return Status::InvalidArgument("--dense must be in [0, 64]");
  if (o.min_vocab < 1 || o.max_vocab < o.min_vocab) return Status::InvalidArgument("need 1 <= min_vocab <= max_vocab");
  if (!(o.ctr > 0 && o.ctr < 1)) return Status::InvalidArgument("--ctr must be in (0, 1)");
  if (!(o.zipf > 0)) return Status::InvalidArgument("--zipf must be > 0");
  if (o.teacher != "default" && o.teacher != "longtail")
    return Status::InvalidArgument("--teacher '" + o.teacher + "' is not one of default, longtail");
  if (o.rank < 1 || o.rank > 16) return Status::InvalidArgument("rank must be in [1, 16]");
  if (o.multi_hot < 0 || o.multi_hot > 16) return Status::InvalidArgument("--multi-hot must be in [0, 16]");
  if (o.multi_hot > 0 && (!(o.bag_mean > 0) || o.bag_max < 1 || o.multi_hot_vocab < 1))
    return Status::InvalidArgument("--bag-mean must be > 0, --bag-max >= 1 and --multi-hot-vocab >= 1");
  const SyntheticCtrTeacher teacher(o);
  const std::string tmp = out_path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::IoError("cannot create " + tmp + ": " + std::strerror(errno));
  std::vector<float> probs(o.rows), labels(o.rows), without_pairs(o.rows), first_order(o.rows);
  std::vector<int64_t> dense(o.num_dense);
  std::vector<uint64_t> ranks(o.num_sparse);
  std::vector<std::vector<uint64_t>> bags;
  std::string buf;
  buf.reserve(1 << 22);
  char tmpbuf[32];
  double psum = 0, ysum = 0;
  for (uint64_t row = 0; row < o.rows; ++row) {
    teacher.Sample(o.seed, row, dense.data(), ranks.data());
    const auto terms = teacher.Terms(dense.data(), ranks.data());
    double logit = teacher.bias() + terms.first_order + terms.pairs + terms.dense;
    double bag = 0;
    if (o.multi_hot > 0) {
      teacher.SampleBags(o.seed, row, &bags);
      bag = teacher.BagLogit(bags, ranks.data());
      logit += bag;
    }
    without_pairs[row] = static_cast<float>(terms.first_order + terms.dense + bag);
    first_order[row] = static_cast<float>(terms.first_order);
    const double p = Sigmoid(logit);
    const bool y = UnitFromHash(Mix64(PairSeed(o.seed ^ 0x1abe1, row))) < p;
    probs[row] = static_cast<float>(p);
    labels[row] = y ? 1.0f : 0.0f;
    psum += p;
    ysum += y;
    buf += y ? '1' : '0';
    for (int j = 0; j < o.num_dense; ++j) {
      buf += '\t';
      if (dense[j] >= 0) {
        int n = std::snprintf(tmpbuf, sizeof(tmpbuf), "%" PRId64, dense[j]);
        buf.append(tmpbuf, n);
      }
    }
    for (int s = 0; s < o.num_sparse; ++s) {
      int n = std::snprintf(tmpbuf, sizeof(tmpbuf), "\t%08" PRIx64, teacher.IdOfRank(s, ranks[s]));
      buf.append(tmpbuf, n);
    }
    for (int m = 0; m < o.multi_hot; ++m) {
      buf += '\t';
      for (size_t k = 0; k < bags[static_cast<size_t>(m)].size(); ++k) {
        int n = std::snprintf(tmpbuf, sizeof(tmpbuf), k ? "|%08" PRIx64 : "%08" PRIx64,
                              teacher.IdOfRank(o.num_sparse + m, bags[static_cast<size_t>(m)][k]));
        buf.append(tmpbuf, n);
      }
    }
    buf += '\n';
    if (buf.size() > (1 << 22) - 4096) {
      if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) {
        std::fclose(f);
        return Status::IoError("write failed: " + tmp);
      }
      buf.clear();
      if (progress) progress(row + 1);
    }
  }
  if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size() || std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {
    std::fclose(f);
    return Status::IoError("write failed: " + tmp);
  }
  std::fclose(f);
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0)
    return Status::IoError("cannot rename " + tmp + " to " + out_path);
  OracleStats stats;
  stats.rows = o.rows;
  stats.auc = ExactAuc(probs, labels);
  stats.logloss = LogLoss(probs, labels);
  stats.auc_without_pairs = ExactAuc(without_pairs, labels);
  stats.auc_first_order = ExactAuc(first_order, labels);
  stats.ctr = o.rows ? ysum / o.rows : 0;
  stats.mean_probability = o.rows ? psum / o.rows : 0;
  nlohmann::json j = {
      {"auc", stats.auc},
      {"logloss", stats.logloss},
      {"auc_without_pairs", stats.auc_without_pairs},
      {"auc_first_order", stats.auc_first_order},
      {"rows", stats.rows},
      {"ctr", stats.ctr},
      {"mean_probability", stats.mean_probability},
      {"seed", o.seed},
      {"teacher_seed", o.teacher_seed},
      {"num_dense", o.num_dense},
      {"num_sparse", o.num_sparse},
      {"min_vocab", o.min_vocab},
      {"max_vocab", o.max_vocab},
      {"zipf", o.zipf},
      {"target_ctr", o.ctr},
      {"teacher_bias", teacher.bias()},
      {"teacher", o.teacher},
      {"tail_rank", o.tail_rank},
      {"tail_power", o.tail_power},
      {"first_order_scale", o.first_order_scale},
      {"interaction_scale", o.interaction_scale},
      {"dense_scale", o.dense_scale},
      {"hash", kHashName},
      {"multi_hot", o.multi_hot},
      {"bag_mean", o.bag_mean},
      {"bag_max", o.bag_max},
      {"multi_hot_vocab", o.multi_hot_vocab},
      {"multi_hot_scale", o.multi_hot_scale},
  };
  nlohmann::json vocabs = nlohmann::json::array();
  for (int s = 0; s < o.num_sparse; ++s) vocabs.push_back(teacher.vocab(s));
  j["vocab"] = vocabs;
  EMBER_RETURN_IF_ERROR(WriteFileAtomic(out_path + ".oracle.json", j.dump(2) + "\n"));
  if (o.multi_hot > 0) {  // the columns, for data.format = "tsv" with data.schema
    std::string schema = "# The columns of " + out_path +
                         " (ember datagen ctr --multi-hot): data.format = \"tsv\", data.schema = this file.\n"
                         "delimiter = \"\\t\"\nheader = false\n";
    auto column = [&](const std::string& name, const std::string& rest) {
      schema += "\n[[columns]]\nname = \"" + name + "\"\n" + rest;
    };
    column("label", "role = \"label\"\n");
    for (int d = 0; d < o.num_dense; ++d) column("I" + std::to_string(d + 1), "role = \"dense\"\n");
    for (int c = 0; c < o.num_sparse; ++c)
      column("C" + std::to_string(c + 1), "role = \"categorical\"\nencoding = \"hex\"\n");
    for (int m = 0; m < o.multi_hot; ++m)
      column("M" + std::to_string(m + 1),
             "role = \"multi_hot\"\nencoding = \"hex\"\nseparator = \"|\"\npooling = \"mean\"\n");
    EMBER_RETURN_IF_ERROR(WriteFileAtomic(out_path + ".schema.toml", schema));
  }
  return stats;
}

}  // namespace ember::data
