#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "ember/common/half.h"
#include "ember/embedding/dedup.h"
#include "ember/embedding/kernels.h"
#include "ember/embedding/method.h"
#include "ember/embedding/plan.h"
#include "ember/embedding/row_store.h"
#include "ember/embedding/sparse_store.h"

namespace ember::embedding {
namespace {

// Optimised kernels against their reference twins, for every optimizer and several widths.
class KernelTest : public ::testing::TestWithParam<std::tuple<OptimizerKind, int>> {};

TEST_P(KernelTest, UpdateMatchesReference) {
  const auto [kind, dim] = GetParam();
  OptimizerConfig opt;
  opt.kind = kind;
  opt.lr = 0.1f;
  opt.l1 = 0.05f;  // FTRL: some coordinates clipped to zero, others not
  opt.l2 = 0.3f;
  const int stride = dim + StateFloats(kind, dim);
  const size_t n = 37;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> a(n * stride), grads(n * dim);
  for (auto& v : a) v = nd(rng) * 0.1f;
  for (int j = dim; j < stride; ++j)
    for (size_t i = 0; i < n; ++i) a[i * stride + j] = std::abs(a[i * stride + j]);  // state >= 0
  if (kind == OptimizerKind::kAdam)
    for (size_t i = 0; i < n; ++i) a[i * stride + 3 * dim] = 2;  // step count
  std::vector<float> b = a;
  std::vector<float*> pa(n), pb(n);
  for (size_t i = 0; i < n; ++i) {
    pa[i] = a.data() + i * stride;
    pb[i] = b.data() + i * stride;
  }
  for (int step = 0; step < 5; ++step) {
    for (auto& g : grads) g = nd(rng);
    ApplyUpdate(opt, pa.data(), n, dim, grads.data());
    ApplyUpdateRef(opt, pb.data(), n, dim, grads.data());
  }
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 2e-5f * (1 + std::abs(b[i]))) << "at " << i;
  std::vector<float> ga(n * dim), gb(n * dim);
  GatherRows(pa.data(), n, dim, ga.data());
  GatherRowsRef(pa.data(), n, dim, gb.data());
  EXPECT_EQ(ga, gb);
}

INSTANTIATE_TEST_SUITE_P(AllOptimizers, KernelTest,
                         ::testing::Combine(::testing::Values(OptimizerKind::kSgd, OptimizerKind::kAdagrad,
                                                              OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam,
                                                              OptimizerKind::kFtrl),
                                            ::testing::Values(1, 8, 16, 33)));

TEST(Kernels, RowwiseAdagradByHand) {
  OptimizerConfig opt;
  opt.kind = OptimizerKind::kRowwiseAdagrad;
  opt.lr = 0.5f;
  opt.eps = 0;
  float row[3] = {1.0f, 2.0f, 0.0f};  // w = (1, 2), state 0
  float g[2] = {3.0f, 4.0f};          // mean(g^2) = 12.5
  float* p = row;
  ApplyUpdate(opt, &p, 1, 2, g);
  EXPECT_FLOAT_EQ(row[2], 12.5f);
  EXPECT_FLOAT_EQ(row[0], 1.0f - 0.5f * 3.0f / std::sqrt(12.5f));
  EXPECT_FLOAT_EQ(row[1], 2.0f - 0.5f * 4.0f / std::sqrt(12.5f));
}

// FTRL-proximal by hand: two steps of one coordinate, then L1 holding a weight at zero.
TEST(Kernels, FtrlByHand) {
  OptimizerConfig opt;
  opt.kind = OptimizerKind::kFtrl;
  opt.lr = 0.5f;  // alpha
  opt.beta = 1.0f;
  opt.l1 = 0.0f;
  opt.l2 = 2.0f;
  float row[3] = {0.2f, 0.0f, 0.0f};  // w, z, n
  float* p = row;
  float g = 3.0f;
  ApplyUpdate(opt, &p, 1, 1, &g);
  // sigma = (3 - 0) / 0.5 = 6; z = 3 - 6 * 0.2 = 1.8; n = 9; w = -1.8 / ((1 + 3) / 0.5 + 2) = -0.18
  EXPECT_FLOAT_EQ(row[1], 1.8f);
  EXPECT_FLOAT_EQ(row[2], 9.0f);
  EXPECT_FLOAT_EQ(row[0], -0.18f);
  g = -4.0f;
  ApplyUpdate(opt, &p, 1, 1, &g);
  // sigma = (5 - 3) / 0.5 = 4; z = 1.8 - 4 - 4 * (-0.18) = -1.48; n = 25; w = 1.48 / (12 + 2)
  EXPECT_FLOAT_EQ(row[1], -1.48f);
  EXPECT_FLOAT_EQ(row[2], 25.0f);
  EXPECT_FLOAT_EQ(row[0], 1.48f / 14.0f);
  opt.l1 = 1.5f;  // |z| below l1 after this step: the weight is exactly zero
  g = 0.0f;
  ApplyUpdate(opt, &p, 1, 1, &g);
  EXPECT_FLOAT_EQ(row[1], -1.48f);
  EXPECT_EQ(row[0], 0.0f);
}

TEST(Kernels, FreshStateOfEveryOptimizer) {
  OptimizerConfig opt;
  opt.initial_accumulator = 0.25f;
  std::vector<float> state(2 * 4 + 1, -1.0f);
  opt.kind = OptimizerKind::kFtrl;  // z zero, n at the initial accumulator
  InitState(opt, 4, state.data());
  EXPECT_EQ(std::vector<float>(state.begin(), state.begin() + 8),
            (std::vector<float>{0, 0, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f}));
  opt.kind = OptimizerKind::kAdam;  // m, v and the step count zero
  InitState(opt, 4, state.data());
  EXPECT_EQ(state, std::vector<float>(9, 0.0f));
  opt.kind = OptimizerKind::kAdagrad;
  InitState(opt, 4, state.data());
  EXPECT_EQ(std::vector<float>(state.begin(), state.begin() + 4), std::vector<float>(4, 0.25f));
  opt.kind = OptimizerKind::kRowwiseAdagrad;
  InitState(opt, 4, state.data());
  EXPECT_EQ(state[0], 0.25f);
}

TEST(Kernels, SgdByHand) {
  OptimizerConfig opt;
  opt.kind = OptimizerKind::kSgd;
  opt.lr = 0.25f;
  float row[2] = {1.0f, -1.0f};
  float g[2] = {2.0f, 4.0f};
  float* p = row;
  ApplyUpdate(opt, &p, 1, 2, g);
  EXPECT_FLOAT_EQ(row[0], 0.5f);
  EXPECT_FLOAT_EQ(row[1], -2.0f);
}

TableSpec Spec(OptimizerKind kind, int dim) {
  TableSpec s;
  s.id = 3;
  s.dim = dim;
  s.seed = 99;
  s.init_scale = 0.05f;
  s.optimizer.kind = kind;
  return s;
}

TEST(RowStore, InitIsDeterministicAndBounded) {
  RowStore a(Spec(OptimizerKind::kSgd, 8)), b(Spec(OptimizerKind::kSgd, 8));
  const uint64_t keys[3] = {MakeKey(3, 1), MakeKey(3, 77), MakeKey(3, 1ull << 40)};
  std::vector<float> ra(24), rb(24);
  a.Pull(keys, 3, ra.data());
  // Different creation order, same values.
  const uint64_t rev[3] = {keys[2], keys[1], keys[0]};
  b.Pull(rev, 3, rb.data());
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(ra[j], rb[16 + j]);
    EXPECT_EQ(ra[16 + j], rb[j]);
    EXPECT_LE(std::abs(ra[j]), 0.05f);
  }
  EXPECT_NE(ra[0], ra[8]);
  EXPECT_EQ(a.size(), 3u);
}

TEST(RowStore, OptimisedPathMatchesReferenceTwin) {
  for (auto kind : {OptimizerKind::kSgd, OptimizerKind::kAdagrad, OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam,
                    OptimizerKind::kFtrl}) {
    RowStore fast(Spec(kind, 16)), ref(Spec(kind, 16));
    std::mt19937_64 rng(5);
    std::normal_distribution<float> nd;
    for (int step = 0; step < 20; ++step) {
      std::set<uint64_t> uniq;
      while (uniq.size() < 200) uniq.insert(MakeKey(3, rng() % 5000));  // forces index growth
      std::vector<uint64_t> keys(uniq.begin(), uniq.end());
      std::vector<float> g(keys.size() * 16), out_fast(g.size()), out_ref(g.size());
      for (auto& v : g) v = nd(rng);
      fast.Pull(keys.data(), keys.size(), out_fast.data());
      ref.PullRef(keys.data(), keys.size(), out_ref.data());
      for (size_t i = 0; i < out_ref.size(); ++i)
        ASSERT_NEAR(out_fast[i], out_ref[i], 1e-4f * (1 + std::abs(out_ref[i]))) << OptimizerName(kind);
      fast.Push(keys.data(), keys.size(), g.data());
      ref.PushRef(keys.data(), keys.size(), g.data());
    }
    ASSERT_EQ(fast.size(), ref.size());
    ref.ForEach([&](uint64_t key, const float* slot) {
      const float* f = fast.Find(key);
      ASSERT_NE(f, nullptr);
      for (int j = 0; j < ref.stride(); ++j) ASSERT_NEAR(f[j], slot[j], 1e-4f * (1 + std::abs(slot[j])));
    });
  }
}

TEST(SlotIndex, EveryKeyIsFoundThroughGrowthAndCollidingTags) {
  // 200k keys through many 1.4x growths; with 8-bit tags most lookups see other keys' tags.
  RowStore s(Spec(OptimizerKind::kSgd, 2));
  std::vector<uint64_t> keys(200000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = MakeKey(1, i * 7919 + 3);
  std::vector<float> out(keys.size() * 2);
  for (size_t c = 0; c < keys.size(); c += 5000) s.Pull(keys.data() + c, 5000, out.data() + c * 2);
  ASSERT_EQ(s.size(), keys.size());
  // Found again, by batch (the pipelined path) and one by one, with the weights first pulled.
  std::vector<float> again(out.size());
  s.PullReadOnly(keys.data(), keys.size(), again.data());
  EXPECT_EQ(again, out);
  for (size_t i = 0; i < keys.size(); i += 997) ASSERT_EQ(s.Find(keys[i])[1], out[i * 2 + 1]) << i;
  EXPECT_EQ(s.Find(MakeKey(1, 2)), nullptr);
  EXPECT_EQ(s.size(), keys.size());
  // A batch with a key twice and a new key between: one row each.
  const uint64_t dup[3] = {MakeKey(1, 10), MakeKey(2, 10), MakeKey(1, 10)};
  std::vector<float> d(6);
  s.Pull(dup, 3, d.data());
  EXPECT_EQ(s.size(), keys.size() + 2);
  EXPECT_EQ(d[0], d[4]);
  EXPECT_EQ(d[1], d[5]);
}

TEST(SlotIndex, EvictionRebuildsTheIndexOverTheSurvivors) {
  TableSpec spec = Spec(OptimizerKind::kRowwiseAdagrad, 4);
  spec.id = 1;
  spec.lifecycle.expire_after = 2;
  auto t = Table::Make(spec);
  std::vector<uint64_t> old_keys(30000), new_keys(30000);
  for (size_t i = 0; i < old_keys.size(); ++i) {
    old_keys[i] = MakeKey(1, i);
    new_keys[i] = MakeKey(1, 1000000 + i);
  }
  std::vector<float> out(old_keys.size() * 4), again(out.size());
  t->TrainPull(old_keys.data(), old_keys.size(), out.data(), nullptr, 1);
  t->TrainPull(new_keys.data(), new_keys.size(), out.data(), nullptr, 5);
  const size_t before = t->MemoryBytes();
  EXPECT_EQ(t->Expire(6), old_keys.size());
  EXPECT_EQ(t->size(), new_keys.size());
  for (size_t i = 0; i < old_keys.size(); i += 7) ASSERT_FALSE(t->Contains(old_keys[i])) << i;
  // The survivors keep their rows, are found through the rebuilt index, and keep their touch step.
  t->EvalPull(new_keys.data(), new_keys.size(), again.data(), nullptr);
  EXPECT_EQ(again, out);
  uint64_t step = 0;
  ASSERT_TRUE(t->Touched(new_keys[123], &step));
  EXPECT_EQ(step, 5u);
  EXPECT_LT(t->MemoryBytes(), before);
  // An evicted value comes back as a fresh row.
  t->TrainPull(old_keys.data(), 1, out.data(), nullptr, 7);
  EXPECT_EQ(t->size(), new_keys.size() + 1);
}

TEST(RowStore, FullTablesTakeAtMostAQuarterMoreThanTheirParametersAndState) {
  // Weights + optimizer state, against everything the store holds (entries with their keys,
  // the index, the block table), at sizes across the index's growth steps.
  for (auto kind : {OptimizerKind::kSgd, OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam}) {
    const TableSpec spec = Spec(kind, 16);
    const double payload = 4.0 * (16 + StateFloats(kind, 16));
    for (uint64_t rows : {1000000ull, 1300000ull, 1700000ull, 2500000ull, 4000000ull}) {
      const double ratio = static_cast<double>(RowStore::EstimateBytes(spec, rows)) / (payload * rows);
      EXPECT_LE(ratio, 1.25) << OptimizerName(kind) << " " << rows;
    }
  }
  // The estimate is what a store built one batch at a time holds.
  RowStore s(Spec(OptimizerKind::kRowwiseAdagrad, 16));
  std::vector<uint64_t> keys(1 << 16);
  std::vector<float> out(keys.size() * 16);
  for (uint64_t b = 0; b < 16; ++b) {
    for (size_t i = 0; i < keys.size(); ++i) keys[i] = MakeKey(0, b * keys.size() + i);
    s.Pull(keys.data(), keys.size(), out.data());
  }
  EXPECT_NEAR(static_cast<double>(s.MemoryBytes()) / static_cast<double>(RowStore::EstimateBytes(s.spec(), s.size())),
              1.0, 1e-3);
  EXPECT_LE(static_cast<double>(s.MemoryBytes()) / (4.0 * 17 * s.size()), 1.25);
}

// A small table holds little more than its rows: the first block starts at 64 entries and
// doubles with the rows (moving them) until it is a whole block of 4096; what the plan estimates
// is what the store holds, and rows keep their values through every move.
TEST(RowStore, SmallTablesHoldLittleMoreThanTheirRows) {
  const TableSpec spec = Spec(OptimizerKind::kRowwiseAdagrad, 16);
  const size_t entry = (2 + 16 + 1) * sizeof(float);  // key, weights, Adagrad accumulator
  RowStore s(spec), ref(spec);
  std::vector<float> first(10 * 16), again(first.size()), grads(3000 * 16, 0.25f), sink(3000 * 16);
  std::vector<uint64_t> keys(3000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = MakeKey(0, i * 31 + 7);
  s.Pull(keys.data(), 10, first.data());
  // The estimate leaves out the block table (a pointer a block).
  EXPECT_EQ(s.MemoryBytes() - RowStore::EstimateBytes(spec, 10), sizeof(void*));
  EXPECT_LT(s.MemoryBytes(), 64 * entry + 8192);  // 64 entries and a small index
  s.Push(keys.data(), 10, grads.data());
  ref.PushRef(keys.data(), 10, grads.data());
  for (size_t n : {100, 1000, 3000}) {  // the first block grows to 128, 1024, 4096 entries
    s.Push(keys.data(), n, grads.data());
    ref.PushRef(keys.data(), n, grads.data());
    EXPECT_EQ(s.MemoryBytes() - RowStore::EstimateBytes(spec, n), sizeof(void*)) << n;
  }
  s.PullReadOnly(keys.data(), keys.size(), sink.data());
  std::vector<float> expect(sink.size());
  ref.PullRef(keys.data(), keys.size(), expect.data());
  for (size_t i = 0; i < sink.size(); ++i) ASSERT_NEAR(sink[i], expect[i], 1e-5f * (1 + std::abs(expect[i]))) << i;
}

TEST(RowStore, ReadOnlyPullDoesNotInsert) {
  RowStore s(Spec(OptimizerKind::kSgd, 4));
  const uint64_t k = MakeKey(3, 12);
  std::vector<float> a(4), b(4);
  s.PullReadOnly(&k, 1, a.data());
  EXPECT_EQ(s.size(), 0u);
  s.Pull(&k, 1, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(s.size(), 1u);
}

TEST(RowStore, SerialisationRoundTripAndCorruption) {
  RowStore s(Spec(OptimizerKind::kAdam, 8));
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 100; ++i) keys.push_back(MakeKey(3, i * 31));
  std::vector<float> g(keys.size() * 8, 0.5f);
  s.Push(keys.data(), keys.size(), g.data());
  std::string bytes;
  s.AppendTo(&bytes);
  std::string_view in = bytes;
  auto parsed = Table::ParseFrom(&in, "t.bin");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(in.empty());
  auto* back = dynamic_cast<RowStore*>(parsed->get());
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->size(), 100u);
  EXPECT_EQ(back->spec().optimizer.kind, OptimizerKind::kAdam);
  for (uint64_t k : keys)
    for (int j = 0; j < s.stride(); ++j) ASSERT_EQ(back->Find(k)[j], s.Find(k)[j]);
  std::string_view cut = std::string_view(bytes).substr(0, bytes.size() - 5);
  auto bad = Table::ParseFrom(&cut, "t.bin");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("t.bin: truncated"), std::string::npos) << bad.status().ToString();
  std::string wrong = bytes;
  wrong[0] = 'X';
  std::string_view w = wrong;
  EXPECT_EQ(Table::ParseFrom(&w, "t.bin").status().code(), StatusCode::kCorruption);
}

TEST(RowStore, FtrlSettingsAndStateSurviveSerialisation) {
  TableSpec spec = Spec(OptimizerKind::kFtrl, 2);
  spec.optimizer.beta = 0.001f;
  spec.optimizer.l1 = 0.25f;
  spec.optimizer.l2 = 3.0f;
  RowStore s(spec);
  ASSERT_EQ(s.stride(), 6);  // w[2], z[2], n[2]
  const uint64_t k = MakeKey(3, 5);
  const float g[2] = {0.5f, -2.0f};
  s.Push(&k, 1, g);
  std::string bytes;
  s.AppendTo(&bytes);
  std::string_view in = bytes;
  auto parsed = Table::ParseFrom(&in, "t.bin");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto* back = dynamic_cast<RowStore*>(parsed->get());
  ASSERT_NE(back, nullptr);
  EXPECT_TRUE(SameSpec(back->spec(), spec));
  EXPECT_EQ(back->spec().optimizer.l2, 3.0f);
  for (int j = 0; j < 6; ++j) EXPECT_EQ(back->Find(k)[j], s.Find(k)[j]);
  EXPECT_EQ(s.Find(k)[4], 0.25f);  // n = g^2
  EXPECT_EQ(s.Find(k)[5], 4.0f);
}

TEST(RowStore, FrozenTableReadsZeroAndNeverCreates) {
  TableSpec spec = Spec(OptimizerKind::kSgd, 4);
  spec.frozen = true;
  RowStore s(spec);
  const float w[4] = {1, 2, 3, 4};
  s.Put(MakeKey(0, 7), w);
  const uint64_t keys[2] = {MakeKey(0, 7), MakeKey(0, 8)};
  std::vector<float> out(8, -1.0f), g(8, 1.0f);
  s.Pull(keys, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4, 0, 0, 0, 0}));
  s.Push(keys, 2, g.data());
  EXPECT_EQ(s.size(), 1u);
  s.Pull(keys, 2, out.data());
  EXPECT_FLOAT_EQ(out[0], 1.0f - spec.optimizer.lr);
  EXPECT_EQ(out[4], 0.0f);
}

// fp16 rows: every pull is the fp32 row rounded to half, every update is computed in fp32 from
// the widened row and rounded back; the weights take half the room.
TEST(RowStore, Fp16RowsRoundEveryWriteAndHalveTheWeights) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam}) {
    TableSpec spec = Spec(kind, 7);  // odd: the last half has a pad
    spec.init_scale = 0.3f;
    TableSpec half = spec;
    half.precision = Precision::kFp16;
    RowStore f32(spec), f16(half);
    EXPECT_EQ(f16.stride(), 4 + StateFloats(kind, 7));
    const uint64_t keys[3] = {MakeKey(0, 1), MakeKey(0, 99), MakeKey(0, 12345)};
    std::vector<float> a(21), b(21), g(21);
    for (int step = 0; step < 4; ++step) {
      f32.Pull(keys, 3, a.data());
      f16.Pull(keys, 3, b.data());
      if (step == 0) {
        for (int j = 0; j < 21; ++j) ASSERT_EQ(b[j], HalfToFloat(FloatToHalf(a[j])));
      }
      for (int j = 0; j < 21; ++j) {
        EXPECT_NEAR(b[j], a[j], 2e-3) << OptimizerName(kind);
        g[j] = 0.1f * static_cast<float>((j % 5) - 2);
      }
      // The fp16 store's update equals the fp32 kernel applied to its widened row, rounded.
      std::vector<float> row(7 + StateFloats(kind, 7));
      std::copy(b.begin(), b.begin() + 7, row.begin());
      const float* slot = f16.Find(keys[0]);
      std::copy(slot + 4, slot + f16.stride(), row.begin() + 7);
      float* rp = row.data();
      ApplyUpdateRef(spec.optimizer, &rp, 1, 7, g.data());
      f32.Push(keys, 3, g.data());
      f16.Push(keys, 3, g.data());
      std::vector<float> got(7);
      f16.PullReadOnly(keys, 1, got.data());
      for (int j = 0; j < 7; ++j) ASSERT_EQ(got[j], HalfToFloat(FloatToHalf(row[j]))) << OptimizerName(kind);
    }
    // Records round-trip in the fp16 layout.
    std::string bytes;
    f16.AppendTo(&bytes);
    std::string_view in = bytes;
    auto back = Table::ParseFrom(&in, "h.bin");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ((*back)->spec().precision, Precision::kFp16);
    std::vector<float> x(21), y(21);
    f16.PullReadOnly(keys, 3, x.data());
    (*back)->PullReadOnly(keys, 3, y.data());
    EXPECT_EQ(x, y);
  }
  TableSpec big = Spec(OptimizerKind::kSgd, 16);
  TableSpec big16 = big;
  big16.precision = Precision::kFp16;
  // fp16 saves 8 of the 16 weights' floats in each of the 2^20 entries; keys and index stay.
  EXPECT_EQ(RowStore::EstimateBytes(big, 1 << 20) - RowStore::EstimateBytes(big16, 1 << 20), (1u << 20) * 8 * 4);
}

TableSpec SparseSpec(OptimizerKind kind, int dim, float density) {
  TableSpec s = Spec(kind, dim);
  s.kind = TableKind::kSparse;
  s.density = density;
  s.init_scale = 0.5f;
  return s;
}

uint64_t ValuesByMask(const SparseRowStore& s, const std::vector<uint64_t>& keys) {
  uint64_t total = 0, mask = 0;
  for (uint64_t k : keys) {
    EXPECT_TRUE(s.Mask(k, &mask));
    total += static_cast<uint64_t>(__builtin_popcountll(mask));
  }
  return total;
}

TEST(SparseRowStore, NewRowsKeepTheirAllotmentAndPullsExpandWithZeros) {
  SparseRowStore s(SparseSpec(OptimizerKind::kRowwiseAdagrad, 16, 0.3f));
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 1000; ++i) keys.push_back(MakeKey(2, i));
  std::vector<float> out(keys.size() * 16), ro(out.size());
  s.PullReadOnly(keys.data(), keys.size(), ro.data());
  EXPECT_EQ(s.size(), 0u);
  s.Pull(keys.data(), keys.size(), out.data());
  EXPECT_EQ(out, ro);  // a read-only pull shows the row the first pull creates
  uint64_t allot = 0;
  for (uint64_t k : keys) allot += static_cast<uint64_t>(SparseRowStore::Allotment(s.spec(), k));
  EXPECT_EQ(s.values(), allot);
  EXPECT_EQ(ValuesByMask(s, keys), allot);
  // floor(0.3 * 16) = 4 entries, a fifth with probability 0.8: 4.8 per row on average.
  EXPECT_NEAR(static_cast<double>(allot) / keys.size(), 4.8, 0.08);
  size_t nonzero = 0;
  for (float v : out) nonzero += v != 0.0f;
  EXPECT_EQ(nonzero, allot);
}

TEST(SparseRowStore, PushUpdatesOnlyKeptEntries) {
  SparseRowStore s(SparseSpec(OptimizerKind::kSgd, 8, 0.5f));
  const uint64_t key = MakeKey(0, 42);
  std::vector<float> before(8), after(8), g(8, 1.0f);
  s.Pull(&key, 1, before.data());
  s.Push(&key, 1, g.data());
  s.Pull(&key, 1, after.data());
  uint64_t mask = 0;
  ASSERT_TRUE(s.Mask(key, &mask));
  for (int j = 0; j < 8; ++j) {
    if ((mask >> j) & 1)
      EXPECT_FLOAT_EQ(after[j], before[j] - s.spec().optimizer.lr);
    else
      EXPECT_EQ(after[j], 0.0f);
  }
}

// train.reset_rows: every row back to InitRow of its key with fresh state, fp32 and fp16 alike;
// sparse rows keep their masks.
TEST(RowStore, ResetRowsRestoresInitialValuesAndFreshState) {
  for (Precision precision : {Precision::kFp32, Precision::kFp16}) {
    TableSpec spec = Spec(OptimizerKind::kAdam, 5);
    spec.precision = precision;
    RowStore s(spec), fresh(spec);
    std::vector<uint64_t> keys = {MakeKey(3, 1), MakeKey(3, 77), MakeKey(3, 1000)};
    std::vector<float> g(keys.size() * 5, 0.3f);
    s.Push(keys.data(), keys.size(), g.data());
    s.Push(keys.data(), keys.size(), g.data());
    std::vector<float> before(g.size()), after(g.size()), initial(g.size());
    s.Pull(keys.data(), keys.size(), before.data());
    fresh.Pull(keys.data(), keys.size(), initial.data());
    ASSERT_NE(before, initial);
    EXPECT_EQ(s.ResetRows(), 3u);
    s.Pull(keys.data(), keys.size(), after.data());
    EXPECT_EQ(after, initial);
    for (uint64_t k : keys)
      for (int j = 0; j < s.stride(); ++j) ASSERT_EQ(s.Find(k)[j], fresh.Find(k)[j]) << "slot float " << j;
  }
  SparseRowStore sparse(SparseSpec(OptimizerKind::kRowwiseAdagrad, 16, 0.25f));
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 50; ++i) keys.push_back(MakeKey(1, i));
  std::vector<float> rows(keys.size() * 16), g(rows.size(), 1.0f), again(rows.size());
  sparse.Pull(keys.data(), keys.size(), rows.data());
  sparse.Push(keys.data(), keys.size(), g.data());
  sparse.PruneGrow(0.5, 3);  // masks move away from the initial ones
  std::vector<uint64_t> masks(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_TRUE(sparse.Mask(keys[i], &masks[i]));
  EXPECT_EQ(sparse.ResetRows(), 50u);
  sparse.Pull(keys.data(), keys.size(), again.data());
  float init[16];
  for (size_t i = 0; i < keys.size(); ++i) {
    uint64_t mask = 0;
    ASSERT_TRUE(sparse.Mask(keys[i], &mask));
    EXPECT_EQ(mask, masks[i]);
    Table::InitRow(sparse.spec(), keys[i], init);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(again[i * 16 + j], (mask >> j & 1) ? init[j] : 0.0f);
  }
}

// DSL's invariant: every prune/grow round keeps exactly the budgeted number of entries, prunes the
// smallest magnitudes and grows where the gradient was largest.
TEST(SparseRowStore, PruneGrowKeepsTheBudgetExactly) {
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kRowwiseAdagrad, OptimizerKind::kAdam, OptimizerKind::kFtrl}) {
    SparseRowStore s(SparseSpec(kind, 16, 0.25f));
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; i < 500; ++i) keys.push_back(MakeKey(1, i * 3));
    std::vector<float> rows(keys.size() * 16), g(rows.size());
    s.Pull(keys.data(), keys.size(), rows.data());
    const uint64_t budget = s.values();
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (int round = 0; round < 6; ++round) {
      s.SetCollectGrowth(true);
      for (auto& v : g) v = nd(rng);
      // One entry gets a gradient far above the rest: it must be grown if masked.
      g[5 * 16 + 3] = 100.0f;
      uint64_t mask5 = 0;
      ASSERT_TRUE(s.Mask(keys[5], &mask5));
      s.Push(keys.data(), keys.size(), g.data());
      auto res = s.PruneGrow(0.2, 99 + round);
      EXPECT_EQ(res.pruned, static_cast<uint64_t>(std::ceil(0.2 * budget)));
      EXPECT_EQ(res.grown, res.pruned);
      EXPECT_EQ(res.values, budget);
      EXPECT_EQ(s.values(), budget);
      EXPECT_EQ(ValuesByMask(s, keys), budget);
      ASSERT_TRUE(s.Mask(keys[5], &mask5));
      EXPECT_TRUE((mask5 >> 3) & 1) << OptimizerName(kind) << " round " << round;
    }
  }
}

// Prune and grow move rows between populations every round; the pools stay dense (a freed slot
// takes its pool's last row), so the memory is what the plan estimates, every surviving entry
// keeps its value wherever its row moved, and expiry leaves the survivors intact too. (Not
// every entry may be 0: an entry that survives with 0 is one pruned and regrown.)
TEST(SparseRowStore, PoolsStayDenseThroughPruneGrowAndExpiry) {
  TableSpec spec = SparseSpec(OptimizerKind::kRowwiseAdagrad, 16, 0.5f);
  spec.lifecycle.expire_after = 3;
  SparseRowStore s(spec);
  const size_t n = 40000;
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < n; ++i) keys.push_back(MakeKey(1, i));
  std::vector<float> rows(n * 16), before(n * 16), g(n * 16);
  std::vector<uint8_t> own(n);
  s.TrainPull(keys.data(), n, rows.data(), own.data(), 1);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (int round = 0; round < 8; ++round) {
    s.SetCollectGrowth(true);
    for (auto& v : g) v = nd(rng);
    s.TrainPush(keys.data(), n, g.data(), 1);
    s.Pull(keys.data(), n, before.data());
    std::vector<uint64_t> old_masks(n);
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(s.Mask(keys[i], &old_masks[i]));
    s.PruneGrow(0.3, 7 + round);
    s.Pull(keys.data(), n, rows.data());
    for (size_t i = 0; i < n; ++i) {
      uint64_t mask = 0;
      ASSERT_TRUE(s.Mask(keys[i], &mask));
      // An entry kept before and after holds its value, or 0 where it was pruned and regrown in
      // the same round; new and masked entries read 0.
      for (int j = 0; j < 16; ++j) {
        const float got = rows[i * 16 + j];
        if ((mask & old_masks[i]) >> j & 1) {
          if (got != 0.0f) {
            ASSERT_EQ(got, before[i * 16 + j]) << "row " << i << " entry " << j << " round " << round;
          }
        } else {
          ASSERT_EQ(got, 0.0f) << "row " << i << " entry " << j << " round " << round;
        }
      }
    }
  }
  // Populations now spread over many pools; the memory is still the estimate's (within the
  // index's and vectors' own rounding).
  const double estimate = static_cast<double>(SparseRowStore::EstimateBytes(spec, n));
  EXPECT_LE(static_cast<double>(s.MemoryBytes()), 1.02 * estimate);
  EXPECT_GE(static_cast<double>(s.MemoryBytes()), 0.9 * estimate);
  // Expiry: the even rows are touched at step 10, the odd ones expire at 12; the survivors read
  // what they held.
  std::vector<uint64_t> even;
  for (size_t i = 0; i < n; i += 2) even.push_back(keys[i]);
  std::vector<float> kept(even.size() * 16), after(even.size() * 16);
  s.TrainPull(even.data(), even.size(), kept.data(), own.data(), 10);
  EXPECT_EQ(s.Expire(12), n / 2);
  s.Pull(even.data(), even.size(), after.data());
  EXPECT_EQ(after, kept);
  EXPECT_LE(static_cast<double>(s.MemoryBytes()), 1.02 * estimate);
}

TEST(SparseRowStore, PruneRemovesTheSmallestMagnitudes) {
  TableSpec spec = SparseSpec(OptimizerKind::kSgd, 4, 1.0f);
  SparseRowStore s(spec);
  // Two full rows with known values: prune 25% = 2 of 8 entries, the two smallest |w|.
  const uint64_t a = MakeKey(0, 1), b = MakeKey(0, 2);
  const float wa[4] = {0.5f, -0.01f, 0.3f, 0.2f}, wb[4] = {-0.4f, 0.6f, 0.02f, -0.7f};
  for (auto [key, w] : {std::pair{a, wa}, std::pair{b, wb}}) {
    std::string rec(8, '\0');
    const uint64_t full = 0xF;
    std::memcpy(rec.data(), &full, 8);
    rec.append(reinterpret_cast<const char*>(w), 16);
    ASSERT_TRUE(s.PutRecord(key, rec).ok());
  }
  auto res = s.PruneGrow(0.25, 1);  // no gradients collected: regrowth is random
  EXPECT_EQ(res.pruned, 2u);
  EXPECT_EQ(res.grown, 2u);
  EXPECT_EQ(s.values(), 8u);  // both rows are full again, the two entries regrown at zero
  std::vector<float> out(8);
  const uint64_t keys[2] = {a, b};
  s.Pull(keys, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 0.0f, 0.3f, 0.2f, -0.4f, 0.6f, 0.0f, -0.7f}));
}

TEST(SparseRowStore, SerialisationRoundTripAndBadRecords) {
  SparseRowStore s(SparseSpec(OptimizerKind::kAdam, 16, 0.4f));
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 200; ++i) keys.push_back(MakeKey(4, i * 7));
  std::vector<float> g(keys.size() * 16, 0.25f);
  s.SetCollectGrowth(true);
  s.Push(keys.data(), keys.size(), g.data());
  s.PruneGrow(0.3, 5);
  std::string bytes;
  s.AppendTo(&bytes);
  std::string_view in = bytes;
  auto back = Table::ParseFrom(&in, "dsl.bin");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ((*back)->spec().kind, TableKind::kSparse);
  EXPECT_EQ((*back)->values(), s.values());
  std::string again;
  (*back)->AppendTo(&again);
  EXPECT_EQ(again, bytes);
  std::string bad(8, '\0');
  const uint64_t wide = uint64_t{1} << 20;  // beyond dim 16
  std::memcpy(bad.data(), &wide, 8);
  bad.append(4 * 4, '\0');
  EXPECT_EQ(s.PutRecord(MakeKey(4, 1), bad).code(), StatusCode::kCorruption);
}

TEST(Dedup, MatchesReference) {
  KeyDeduper d;
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<uint64_t> keys(1000 + trial * 500);
    for (auto& k : keys) k = rng() % 700;
    std::vector<int64_t> inv(keys.size()), inv_ref(keys.size());
    std::vector<uint64_t> uniq_ref;
    d.Dedup(keys.data(), keys.size(), inv.data());
    DedupRef(keys.data(), keys.size(), &uniq_ref, inv_ref.data());
    EXPECT_EQ(d.unique(), uniq_ref);
    EXPECT_EQ(inv, inv_ref);
    for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(d.unique()[inv[i]], keys[i]);
  }
}

TEST(Method, FullTablesAreCollisionless) {
  MethodConfig c;
  c.method = embedding::Method::kFull;
  c.first_table = 2;
  auto m = MakeMethod(c, {{"a", 10}, {"b", 0}});
  ASSERT_TRUE(m.ok());
  ASSERT_EQ((*m)->tables().size(), 2u);
  EXPECT_EQ((*m)->tables()[1].id, 3u);
  EXPECT_EQ((*m)->layout(1).output_dim, 16);
  const uint64_t ids[3] = {5, 6, ~0ull};
  uint64_t keys[3];
  (*m)->MapIds(1, ids, 3, keys);
  EXPECT_EQ(keys[0], MakeKey(3, 5));
  EXPECT_EQ(keys[1], MakeKey(3, 6));
  EXPECT_EQ(KeyTable(keys[2]), 3u);
  uint64_t other[3];
  (*m)->MapIds(0, ids, 3, other);
  EXPECT_NE(other[0], keys[0]);  // same id, different field, different row
}

TEST(Method, HashStaysInRowsAndSeparatesFields) {
  MethodConfig c;
  c.method = embedding::Method::kHash;
  c.rows = 1000;
  auto m = MakeMethod(c, {{"a", 0}, {"b", 0}});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->tables()[0].rows, 1000u);
  EXPECT_EQ(PlanMemory(**m, c, {{"a", 0}, {"b", 0}}).param_bytes, 1000u * 16 * 4);
  std::vector<uint64_t> ids(5000), ka(5000), kb(5000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i * 7919;
  (*m)->MapIds(0, ids.data(), ids.size(), ka.data());
  (*m)->MapIds(1, ids.data(), ids.size(), kb.data());
  std::set<uint64_t> rows;
  int same = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_LT(KeyLocal(ka[i]), 1000u);
    rows.insert(ka[i]);
    same += ka[i] == kb[i];
  }
  EXPECT_GT(rows.size(), 990u);  // 5000 ids fill nearly all 1000 buckets
  EXPECT_LT(same, 30);           // ~5 expected by chance
}

TEST(Method, UnifiedRoundRobinSaltedConcatenatedProbes) {
  MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.dim = 16;
  c.rows = 4096;
  c.tables = 3;
  c.chunks = 2;
  c.first_table = 5;
  auto m = MakeMethod(c, {{"a", 0}, {"b", 0}, {"c", 0}});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ((*m)->tables().size(), 3u);
  EXPECT_EQ((*m)->tables()[0].dim, 8);
  EXPECT_EQ((*m)->tables()[2].id, 7u);
  EXPECT_EQ(PlanMemory(**m, c, {{"a", 0}, {"b", 0}, {"c", 0}}).param_bytes, 3u * 4096 * 8 * 4);
  // Round-robin runs across fields: a -> (5, 6), b -> (7, 5), c -> (6, 7).
  EXPECT_EQ((*m)->layout(0).probe_tables, (std::vector<uint32_t>{5, 6}));
  EXPECT_EQ((*m)->layout(1).probe_tables, (std::vector<uint32_t>{7, 5}));
  EXPECT_EQ((*m)->layout(2).probe_tables, (std::vector<uint32_t>{6, 7}));
  EXPECT_EQ((*m)->layout(1).output_dim, 16);
  std::vector<uint64_t> ids(2000), ka(4000), kb(4000), again(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i * 104729 + 7;
  (*m)->MapIds(0, ids.data(), ids.size(), ka.data());
  (*m)->MapIds(1, ids.data(), ids.size(), kb.data());
  (*m)->MapIds(0, ids.data(), ids.size(), again.data());
  EXPECT_EQ(ka, again);  // deterministic
  int same_bucket = 0, cross = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(KeyTable(ka[2 * i]), 5u);
    EXPECT_EQ(KeyTable(ka[2 * i + 1]), 6u);
    EXPECT_LT(KeyLocal(ka[2 * i]), 4096u);
    same_bucket += KeyLocal(ka[2 * i]) == KeyLocal(ka[2 * i + 1]);  // salts differ per chunk
    cross += ka[2 * i] == kb[2 * i + 1];                            // a's chunk 0 and b's chunk 1 share table 5
  }
  EXPECT_LT(same_bucket, 10);
  EXPECT_LT(cross, 10);
  c.chunks = 3;
  EXPECT_NE(MakeMethod(c, {{"a", 0}}).status().message().find("embedding.chunks"), std::string::npos);
}

TEST(Method, UnifiedPerFieldChunksAndCollisionlessSmallFields) {
  MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.dim = 16;
  c.rows = 1000;
  c.tables = 2;
  c.chunks = 4;                // d = 4
  c.field_chunks = {0, 2, 1};  // a: 4 chunks, b: 2, c: 1
  c.collisionless_below = 50;  // c (vocab 20) gets its own rows
  auto m = MakeMethod(c, {{"a", 100000}, {"b", 100000}, {"c", 20}});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ((*m)->tables().size(), 3u);  // two shared + c's own
  EXPECT_EQ((*m)->tables()[2].rows, 20u);
  EXPECT_EQ((*m)->tables()[2].dim, 4);
  EXPECT_EQ((*m)->max_probes(), 4);
  EXPECT_EQ((*m)->slot_dim(), 4);
  // Round-robin continues across fields with different chunk counts; c is not in it.
  EXPECT_EQ((*m)->layout(0).probe_tables, (std::vector<uint32_t>{0, 1, 0, 1}));
  EXPECT_EQ((*m)->layout(1).probe_tables, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ((*m)->layout(2).probe_tables, (std::vector<uint32_t>{2}));
  EXPECT_EQ((*m)->layout(1).output_dim, 8);
  // Collisionless: every value of c has its own row.
  std::vector<uint64_t> ids(20), keys(20);
  for (uint64_t i = 0; i < 20; ++i) ids[i] = i;
  (*m)->MapIds(2, ids.data(), 20, keys.data());
  EXPECT_EQ(std::set<uint64_t>(keys.begin(), keys.end()).size(), 20u);
  c.field_chunks = {0, 5, 1};
  EXPECT_NE(MakeMethod(c, {{"a", 1}, {"b", 1}, {"c", 1}}).status().message().find("field_chunks"), std::string::npos);
}

// 1-wide rows cannot be split into chunks: with sum_probes each of a value's probes is a full
// (1-wide) row, summed; collisionless fields read one probe; a budget buys rows of dim bytes.
TEST(Method, UnifiedSummedProbesOfOneWideRows) {
  MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.dim = 1;
  c.rows = 1000;
  c.tables = 2;
  c.chunks = 3;
  c.sum_probes = true;
  c.collisionless_below = 50;
  const std::vector<FieldInfo> fields = {{"a", 100000}, {"b", 20}};
  auto m = MakeMethod(c, fields);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ((*m)->tables().size(), 3u);
  for (const auto& t : (*m)->tables()) EXPECT_EQ(t.dim, 1);
  EXPECT_EQ((*m)->tables()[2].rows, 20u);  // b's own rows: one per value
  EXPECT_TRUE((*m)->sums_probes());
  EXPECT_EQ((*m)->max_probes(), 3);
  EXPECT_EQ((*m)->slot_dim(), 1);
  EXPECT_EQ((*m)->field_dim(), 1);
  EXPECT_EQ((*m)->layout(0).probe_tables, (std::vector<uint32_t>{0, 1, 0}));
  EXPECT_EQ((*m)->layout(0).output_dim, 1);
  EXPECT_EQ((*m)->layout(1).probe_tables, (std::vector<uint32_t>{2}));
  // The probes of a value are distinct rows (salted per probe).
  uint64_t id = 4242, keys[3];
  (*m)->MapIds(0, &id, 1, keys);
  EXPECT_EQ(std::set<uint64_t>(keys, keys + 3).size(), 3u);
  // A budget: b's 20 values x 4 bytes fixed, the rest rows of 4 bytes per shared table.
  Budget b;
  b.bytes = 80 + 2 * 4 * 500;
  uint64_t bytes = 0;
  ASSERT_TRUE(ApplyBudget(b, fields, &c, &bytes).ok());
  EXPECT_EQ(c.rows, 500u);
  // A description naming more probes than any configuration allows is refused, not allocated.
  c.chunks = 1 << 30;
  EXPECT_NE(MakeMethod(c, fields).status().message().find("must be in [1, 64]"), std::string::npos);
  c.chunks = 3;
  // Without sum_probes, 3 chunks cannot divide a 1-wide row.
  c.sum_probes = false;
  EXPECT_NE(MakeMethod(c, fields).status().message().find("embedding.chunks"), std::string::npos);
}

// Unified's frequent values read collisionless rows of their own (value v's probe j at row
// v * c + j of its field's frequent table, after the shared tables); the field's other values
// probe the shared tables. The budget pays for the frequent rows first; a list that does not
// match the counts is refused.
TEST(Method, UnifiedFrequentValuesReadRowsOfTheirOwn) {
  MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.dim = 8;
  c.rows = 1000;
  c.tables = 2;
  c.chunks = 4;  // d = 2
  const std::vector<FieldInfo> fields = {{"a", 100000}, {"b", 100000}};
  auto frequent = std::make_shared<FrequentValues>();
  frequent->fields = {{7, 11, 13}, {}};
  c.frequent_counts = {3, 0};
  c.frequent = frequent;
  auto m = MakeMethod(c, fields);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ((*m)->tables().size(), 3u);  // two shared, a's frequent values
  EXPECT_EQ((*m)->tables()[2].rows, 12u);
  EXPECT_EQ((*m)->tables()[2].dim, 2);
  EXPECT_EQ((*m)->frequent_table(0), 2);
  EXPECT_EQ((*m)->frequent_table(1), -1);
  EXPECT_EQ((*m)->layout(0).probe_tables, (std::vector<uint32_t>{0, 1, 0, 1}));
  const uint64_t ids[2] = {11, 12};
  uint64_t keys[8];
  (*m)->MapIds(0, ids, 2, keys);
  for (uint64_t j = 0; j < 4; ++j) EXPECT_EQ(keys[j], MakeKey(2, 11 * 4 + j));
  for (uint64_t j = 0; j < 4; ++j) EXPECT_EQ(KeyTable(keys[4 + j]), j % 2);  // 12 is not frequent
  // Field b keeps none: 11 probes the shared tables there, as without frequent values.
  MethodConfig plain = c;
  plain.frequent_counts.clear();
  plain.frequent.reset();
  auto p = MakeMethod(plain, fields);
  ASSERT_TRUE(p.ok());
  uint64_t with[4], without[4];
  (*m)->MapIds(1, ids, 1, with);
  (*p)->MapIds(1, ids, 1, without);
  EXPECT_TRUE(std::equal(with, with + 4, without));
  // Without the list (an export, which maps no ids) the tables are the same and every value
  // probes the shared tables.
  MethodConfig counted = c;
  counted.frequent.reset();
  auto e = MakeMethod(counted, fields);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->tables().size(), 3u);
  (*e)->MapIds(0, ids, 1, with);
  (*p)->MapIds(0, ids, 1, without);
  EXPECT_TRUE(std::equal(with, with + 4, without));
  // The budget: 3 frequent values x 4 probes x 2 floats first, then rows of 8 bytes per table.
  Budget b;
  b.bytes = 3 * 4 * 2 * 4 + 2 * 8 * 100;
  uint64_t bytes = 0;
  ASSERT_TRUE(ApplyBudget(b, fields, &c, &bytes).ok());
  EXPECT_EQ(c.rows, 100u);
  // Summed probes (1-wide first-order weights): a frequent value holds one row, which its probes
  // all read.
  MethodConfig summed = c;
  summed.dim = 1;
  summed.chunks = 3;
  summed.sum_probes = true;
  auto sm = MakeMethod(summed, fields);
  ASSERT_TRUE(sm.ok()) << sm.status().ToString();
  EXPECT_EQ((*sm)->tables()[2].rows, 3u);
  uint64_t summed_keys[3];
  (*sm)->MapIds(0, ids, 1, summed_keys);
  for (uint64_t key : summed_keys) EXPECT_EQ(key, MakeKey(2, 11));
  c.frequent_counts = {4, 0};
  EXPECT_NE(MakeMethod(c, fields).status().message().find("keeps 4 frequent values, its list holds 3"),
            std::string::npos);
  c.frequent_counts = {3};
  EXPECT_NE(MakeMethod(c, fields).status().message().find("frequent values counted for 1 fields"), std::string::npos);
}

TEST(Method, PerFieldMethodsMixFullHashAndDsl) {
  MethodConfig c;
  c.method = embedding::Method::kHash;
  c.dim = 8;
  c.rows = 500;
  c.field_methods = {Method::kFull, std::nullopt, Method::kDsl, std::nullopt};
  c.density = 0.5f;
  const std::vector<FieldInfo> fields = {{"a", 100}, {"b", 1000}, {"c", 2000}, {"d", 3000}};
  auto m = MakeMethod(c, fields);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ((*m)->tables().size(), 3u);  // a's, c's, then the shared hash table
  EXPECT_EQ((*m)->tables()[0].kind, TableKind::kDense);
  EXPECT_EQ((*m)->tables()[1].kind, TableKind::kSparse);
  EXPECT_EQ((*m)->tables()[2].rows, 500u);
  EXPECT_EQ((*m)->layout(1).probe_tables, (*m)->layout(3).probe_tables);
  uint64_t ids[2] = {7, 123456}, keys[2];
  (*m)->MapIds(0, ids, 2, keys);
  EXPECT_EQ(KeyLocal(keys[1]), 123456u);  // collisionless
  (*m)->MapIds(3, ids, 2, keys);
  EXPECT_LT(KeyLocal(keys[1]), 500u);  // hashed
  // The budget: a's rows are fixed (100 x 32 bytes), the rest splits between hash (b, d: 4000
  // values) and dsl (c: 2000) in proportion.
  Budget b;
  b.bytes = 3200 + 60000;
  uint64_t bytes = 0;
  c.dsl_min_density = 0.25f;  // c keeps a row per value (density 0.28)
  ASSERT_TRUE(ApplyBudget(b, fields, &c, &bytes).ok());
  EXPECT_EQ(c.rows, 40000u / 32);
  EXPECT_NEAR(c.density, (20000.0 - 2000) / (2000.0 * 32), 1e-6);
  EXPECT_EQ(c.dsl_rows, 0u);
  c.field_methods = {Method::kUnified, std::nullopt, std::nullopt, std::nullopt};
  EXPECT_NE(MakeMethod(c, fields).status().message().find("cannot use 'unified'"), std::string::npos);
  // Under unified, a field may be full: its own collisionless rows.
  MethodConfig u;
  u.method = embedding::Method::kUnified;
  u.dim = 8;
  u.rows = 100;
  u.field_methods = {std::nullopt, Method::kFull, std::nullopt, std::nullopt};
  auto um = MakeMethod(u, fields);
  ASSERT_TRUE(um.ok()) << um.status().ToString();
  EXPECT_EQ((*um)->tables().size(), 3u);
  EXPECT_EQ((*um)->tables()[2].rows, 2000u);  // b: 1000 values x 2 chunks
}

TEST(Budget, ParsesFractionsAndBytes) {
  EXPECT_DOUBLE_EQ(ParseBudget("0.1")->fraction, 0.1);
  EXPECT_DOUBLE_EQ(ParseBudget("1/100")->fraction, 0.01);
  EXPECT_EQ(ParseBudget("64MiB")->bytes, 64u << 20);
  EXPECT_EQ(ParseBudget("2.5 GB")->bytes, 2500000000u);
  EXPECT_EQ(ParseBudget("123456")->bytes, 123456u);
  EXPECT_EQ(ParseBudget("1")->fraction, 1.0);
  for (const char* bad : {"0", "-1", "2/1", "12 parsecs", "lots"}) {
    auto b = ParseBudget(bad);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("embedding.budget"), std::string::npos);
  }
}

TEST(Budget, EachMethodTurnsTheBudgetIntoItsSizes) {
  const std::vector<FieldInfo> fields = {{"a", 60000}, {"b", 30000}, {"c", 10000}};  // 100k rows
  const uint64_t full = 100000ull * 16 * 4;
  EXPECT_EQ(FullTableBytes(16, fields), full);
  Budget tenth;
  tenth.fraction = 0.1;
  uint64_t bytes = 0;
  MethodConfig c;
  c.dim = 16;
  c.method = embedding::Method::kHash;
  ASSERT_TRUE(ApplyBudget(tenth, fields, &c, &bytes).ok());
  EXPECT_EQ(bytes, full / 10);
  EXPECT_EQ(c.rows, 10000u);
  c.method = embedding::Method::kUnified;
  c.tables = 2;
  c.chunks = 2;
  ASSERT_TRUE(ApplyBudget(tenth, fields, &c, &bytes).ok());
  EXPECT_EQ(c.rows, 10000u);  // 2 tables x 10000 rows x 8 floats
  auto m = MakeMethod(c, fields);
  EXPECT_EQ(PlanMemory(**m, c, fields).param_bytes, full / 10);
  c.method = embedding::Method::kDsl;
  c.dsl_min_density = 0.05f;  // a row per value while it keeps 5% of its entries
  ASSERT_TRUE(ApplyBudget(tenth, fields, &c, &bytes).ok());
  // (640000 - 100000 * 2 mask bytes) / (100000 * 64) = 0.06875
  EXPECT_NEAR(c.density, 0.06875, 1e-6);
  EXPECT_EQ(c.dsl_rows, 0u);
  m = MakeMethod(c, fields);
  const auto plan = PlanMemory(**m, c, fields);
  EXPECT_NEAR(static_cast<double>(plan.param_bytes), static_cast<double>(full / 10), 10.0);
  EXPECT_EQ(plan.tables[0].spec.kind, TableKind::kSparse);
  // At the default 0.5 (and at budgets whose masks alone would not fit a row per value), the
  // values share hashed rows kept at that density: 2 mask bytes + 8 of 16 floats per row.
  Budget hundredth;
  hundredth.fraction = 0.01;
  for (const Budget& b : {tenth, hundredth}) {
    c.dsl_min_density = 0.5f;
    ASSERT_TRUE(ApplyBudget(b, fields, &c, &bytes).ok());
    EXPECT_EQ(c.density, 0.5f);
    EXPECT_EQ(c.dsl_rows, bytes / 34);
    m = MakeMethod(c, fields);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_EQ((*m)->tables().size(), 1u);  // both fields in one shared sparse table
    EXPECT_EQ((*m)->tables()[0].kind, TableKind::kSparse);
    const auto p = PlanMemory(**m, c, fields);
    EXPECT_LE(p.param_bytes, bytes);
    EXPECT_GT(static_cast<double>(p.param_bytes), 0.99 * static_cast<double>(bytes));
    std::vector<uint64_t> ids = {0, 1, 99999, 12345}, keys(4);
    (*m)->MapIds(1, ids.data(), ids.size(), keys.data());
    for (uint64_t k : keys) EXPECT_LT(KeyLocal(k), c.dsl_rows);
  }
  // Budgets that cannot be met say so, with the method and the reason.
  Budget tiny;
  tiny.bytes = 20;  // not one shared row of 34 bytes
  auto st = ApplyBudget(tiny, fields, &c, &bytes);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("cannot be met by dsl: not even one shared sparse row"), std::string::npos)
      << st.ToString();
  c.method = embedding::Method::kFull;
  st = ApplyBudget(tenth, fields, &c, &bytes);
  EXPECT_NE(st.message().find("cannot be met by full"), std::string::npos) << st.ToString();
  c.method = embedding::Method::kUnified;
  c.collisionless_below = 20000;  // c's own rows: 10000 x 2 chunks x 8 floats = 640000 bytes > budget
  st = ApplyBudget(tenth, fields, &c, &bytes);
  EXPECT_NE(st.message().find("collisionless tables alone"), std::string::npos) << st.ToString();
  // fp16 rows cost 2 bytes: the full table fits half of the fp32 full table, hashing gets
  // twice the rows.
  Budget half;
  half.fraction = 0.5;
  c.method = embedding::Method::kFull;
  c.precision = Precision::kFp16;
  EXPECT_TRUE(ApplyBudget(half, fields, &c, &bytes).ok());
  c.method = embedding::Method::kHash;
  ASSERT_TRUE(ApplyBudget(tenth, fields, &c, &bytes).ok());
  EXPECT_EQ(c.rows, 20000u);
  c.precision = Precision::kFp32;
  st = ApplyBudget(tenth, {{"a", 0}}, &c, &bytes);
  EXPECT_NE(st.message().find("no known vocabulary"), std::string::npos) << st.ToString();
}

TEST(Budget, PlannedResidentBytesMatchTheStores) {
  for (TableKind kind : {TableKind::kDense, TableKind::kSparse}) {
    TableSpec spec = Spec(OptimizerKind::kRowwiseAdagrad, 16);
    spec.kind = kind;
    spec.density = 0.5f;
    auto t = Table::Make(spec);
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; i < 50000; ++i) keys.push_back(MakeKey(0, i));
    std::vector<float> out(keys.size() * 16);
    t->Pull(keys.data(), keys.size(), out.data());
    const double est = static_cast<double>(kind == TableKind::kSparse ? SparseRowStore::EstimateBytes(spec, 50000)
                                                                      : RowStore::EstimateBytes(spec, 50000));
    EXPECT_NEAR(static_cast<double>(t->MemoryBytes()) / est, 1.0, 0.1) << static_cast<int>(kind);
  }
}

TEST(Method, BadConfigNamesTheKey) {
  MethodConfig c;
  auto m = ParseMethod("bloom");
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            "embedding.method: unknown method 'bloom' (expected full, hash, unified, dsl or optembed)");
  c.method = embedding::Method::kHash;
  c.rows = 0;
  EXPECT_NE(MakeMethod(c, {{"a", 0}}).status().message().find("embedding.rows"), std::string::npos);
}

}  // namespace
}  // namespace ember::embedding
