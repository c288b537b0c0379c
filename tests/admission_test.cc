// Feature admission and expiry: the sketch's bounds, exact admission, eviction, checkpoint round
// trips (also across shard counts) and concurrent pulls and pushes.
#include "ember/embedding/admission.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>
#include <unordered_map>

#include "ember/embedding/method.h"
#include "ember/embedding/row_store.h"
#include "ember/embedding/table.h"
#include "ember/ps/in_process.h"
#include "ember/ps/shard.h"

namespace ember::embedding {
namespace {

TEST(CountMinSketch, NeverUnderCountsAndOverCountsWithinItsBound) {
  // A Zipf-like stream of 200k sightings over 50k keys into a 4 x 4096 sketch.
  CountMinSketch sketch(4096, 4, 11);
  std::unordered_map<uint64_t, uint32_t> truth;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200000; ++i) {
    const uint64_t key = static_cast<uint64_t>(std::pow(50000.0, std::uniform_real_distribution<double>(0, 1)(rng)));
    ++truth[key];
    sketch.Add(key);
  }
  EXPECT_EQ(sketch.total(), 200000u);
  const double bound = sketch.ErrorBound();  // e * N / width
  EXPECT_NEAR(bound, std::exp(1.0) * 200000 / 4096, 1e-9);
  size_t over_bound = 0;
  for (const auto& [key, count] : truth) {
    const uint32_t est = sketch.Estimate(key);
    ASSERT_GE(est, count) << "key " << key;  // never under-counts
    if (est - count > bound) ++over_bound;
  }
  // The bound holds with probability 1 - e^-4 per key: allow that share (1.8%) to exceed it.
  EXPECT_LE(static_cast<double>(over_bound), 0.0183 * static_cast<double>(truth.size()));
}

TEST(CountMinSketch, MergedSketchesCountBothStreamsAndRoundTrip) {
  CountMinSketch a(1024, 3, 5), b(1024, 3, 5);
  for (int i = 0; i < 7; ++i) a.Add(42);
  for (int i = 0; i < 5; ++i) b.Add(42);
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_GE(a.Estimate(42), 12u);
  EXPECT_EQ(a.total(), 12u);
  std::string bytes;
  a.AppendTo(&bytes);
  auto back = CountMinSketch::Parse(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Estimate(42), a.Estimate(42));
  EXPECT_FALSE(CountMinSketch::Parse(bytes.substr(0, 30)).ok());
  CountMinSketch other(512, 3, 5);
  EXPECT_EQ(a.Merge(other).code(), StatusCode::kInvalidArgument);
}

TableSpec AdmitSpec(uint32_t k, uint64_t expire = 0, uint32_t width = 0) {
  TableSpec s;
  s.id = 1;
  s.dim = 4;
  s.seed = 9;
  s.lifecycle.admit_after = k;
  s.lifecycle.sketch_width = width;
  s.lifecycle.expire_after = expire;
  return s;
}

TEST(Admission, ValueIsAdmittedExactlyAtItsKthSighting) {
  auto t = Table::Make(AdmitSpec(3));
  const uint64_t keys[2] = {MakeKey(1, 10), MakeKey(1, 20)};
  float out[8];
  uint8_t own[2];
  for (int sighting = 1; sighting <= 3; ++sighting) {
    t->TrainPull(keys, 1, out, own, static_cast<uint64_t>(sighting));
    EXPECT_EQ(own[0], sighting >= 3 ? 1 : 0) << "sighting " << sighting;
    EXPECT_EQ(t->size(), sighting >= 3 ? 1u : 0u);
    if (sighting < 3) {
      EXPECT_EQ(out[0], 0.0f);
    }
  }
  EXPECT_EQ(t->Sightings(keys[0]), 3u);
  // An admitted row reads its initial value, like any new row.
  float init[4];
  Table::InitRow(t->spec(), keys[0], init);
  t->TrainPull(keys, 2, out, own, 4);
  EXPECT_EQ(own[0], 1);
  EXPECT_EQ(own[1], 0);
  EXPECT_EQ(out[0], init[0]);
  EXPECT_EQ(out[4], 0.0f);
  // Pushes never admit: the gradient of the value without a row is dropped.
  const float grads[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  t->TrainPush(keys, 2, grads, 4);
  EXPECT_EQ(t->size(), 1u);
  EXPECT_FALSE(t->Contains(keys[1]));
  const auto counts = t->lifecycle_counts();
  EXPECT_EQ(counts.admitted, 1u);
  EXPECT_EQ(counts.fallbacks, 3u);  // two sightings of 10, one of 20
  EXPECT_EQ(counts.dropped, 1u);
  // Evaluation neither counts nor creates.
  t->EvalPull(keys, 2, out, own);
  EXPECT_EQ(own[0], 1);
  EXPECT_EQ(own[1], 0);
  EXPECT_EQ(t->Sightings(keys[1]), 1u);
}

TEST(Admission, ProbabilisticAdmissionIsDeterministicAndNearP) {
  TableSpec s = AdmitSpec(0, 0, 1 << 16);
  s.lifecycle.admit_probability = 0.25f;
  auto a = Table::Make(s), b = Table::Make(s);
  std::vector<uint64_t> keys(4000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = MakeKey(1, i);
  std::vector<float> out(keys.size() * 4);
  std::vector<uint8_t> own_a(keys.size()), own_b(keys.size());
  a->TrainPull(keys.data(), keys.size(), out.data(), own_a.data(), 1);
  b->TrainPull(keys.data(), keys.size(), out.data(), own_b.data(), 1);
  EXPECT_EQ(own_a, own_b);
  EXPECT_NEAR(static_cast<double>(a->size()) / keys.size(), 0.25, 0.03);
}

TEST(Expiry, EvictsExactlyTheIdleRowsWithTheirState) {
  for (TableKind kind : {TableKind::kDense, TableKind::kSparse}) {
    TableSpec s = AdmitSpec(0, /*expire=*/5);
    s.kind = kind;
    s.density = 0.5f;
    auto t = Table::Make(s);
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; i < 100; ++i) keys.push_back(MakeKey(1, i));
    std::vector<float> out(400), grads(400, 0.5f);
    t->TrainPull(keys.data(), 100, out.data(), nullptr, 0);  // all touched at step 0
    // Rows 0..49 touched again at step 3 (a pull) and 50..59 at step 4 (a push).
    t->TrainPull(keys.data(), 50, out.data(), nullptr, 3);
    t->TrainPush(keys.data() + 50, 10, grads.data(), 4);
    // At clock 5 every row was touched within the last 5 steps [0, 5): none goes.
    EXPECT_EQ(t->Expire(5), 0u);
    // At 6, the window is [1, 6): the rows last touched at step 0 (60..99) go.
    EXPECT_EQ(t->Expire(6), 40u);
    EXPECT_EQ(t->size(), 60u);
    for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(t->Contains(keys[i]), i < 60) << i;
    uint64_t step = 0;
    ASSERT_TRUE(t->Touched(keys[55], &step));
    EXPECT_EQ(step, 4u);
    EXPECT_EQ(t->Expire(8), 0u);   // window [3, 8): everything left was touched at 3 or 4
    EXPECT_EQ(t->Expire(9), 50u);  // window [4, 9): rows 0..49 (touched at 3) go
    EXPECT_EQ(t->size(), 10u);
    EXPECT_TRUE(t->Contains(keys[59]));
    EXPECT_EQ(t->lifecycle_counts().evicted, 90u);
    // A re-created row starts afresh: initial weights, fresh optimizer state.
    float init[4];
    Table::InitRow(s, keys[70], init);
    t->TrainPull(&keys[70], 1, out.data(), nullptr, 10);
    EXPECT_EQ(t->size(), 11u);
    if (kind == TableKind::kDense) {
      EXPECT_EQ(out[0], init[0]);
    }
  }
}

}  // namespace
}  // namespace ember::embedding

namespace ember::ps {
namespace {
using embedding::MakeKey;

std::string TempDir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("ember-admission-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// A step of one worker: pull keys (counting them), push a unit gradient for those with rows.
void Step(PsClient* c, const std::vector<uint64_t>& keys, uint64_t step, std::vector<uint8_t>* own = nullptr) {
  std::vector<float> rows(keys.size() * 4), grads(keys.size() * 4, 0.1f);
  std::vector<uint8_t> mine(keys.size());
  PullSlice p{1, keys.data(), keys.size(), rows.data()};
  p.own = mine.data();
  ASSERT_TRUE(c->Pull({p}).ok());
  PushClock clock{0, 1, step, true};
  ASSERT_TRUE(c->Push({PushSlice{1, keys.data(), keys.size(), grads.data()}}, clock).ok());
  if (own) *own = mine;
}

TEST(AdmissionShards, CheckpointKeepsCountsAdmissionsAndAgesAcrossShardCounts) {
  for (uint32_t width : {0u, 1u << 12}) {
    embedding::TableSpec spec;
    spec.id = 1;
    spec.dim = 4;
    spec.lifecycle.admit_after = 3;
    spec.lifecycle.sketch_width = width;
    spec.lifecycle.expire_after = 1000;
    InProcessClient src(2);
    ASSERT_TRUE(src.CreateTables({spec}).ok());
    // Key i is seen i % 5 times (over steps 0..3): keys seen 3 or 4 times are admitted.
    for (uint64_t step = 0; step < 4; ++step) {
      std::vector<uint64_t> keys;
      for (uint64_t i = 0; i < 200; ++i)
        if (step < i % 5) keys.push_back(MakeKey(1, i));
      Step(&src, keys, step);
    }
    const std::string dir = TempDir("ckpt" + std::to_string(width));
    auto files = src.SaveShards(dir);
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    InProcessClient dst(3);
    ASSERT_TRUE(dst.LoadShards(dir, *files).ok());
    auto a = src.Stats(), b = dst.Stats();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)[0].rows, 80u);  // i % 5 in {3, 4}
    EXPECT_EQ((*b)[0].rows, 80u);
    for (uint64_t i = 0; i < 200; ++i) {
      const uint64_t key = MakeKey(1, i);
      const embedding::Table* before = src.shard(ShardOf(key, 2)).table(1);
      const embedding::Table* after = dst.shard(ShardOf(key, 3)).table(1);
      ASSERT_EQ(after->Contains(key), i % 5 >= 3) << i;
      // Exact counts move with their keys; merged sketches never count less than before.
      if (width == 0)
        EXPECT_EQ(after->Sightings(key), before->Sightings(key)) << i;
      else
        EXPECT_GE(after->Sightings(key), before->Sightings(key)) << i;
      uint64_t s0 = 0, s1 = 0;
      if (before->Touched(key, &s0)) {
        ASSERT_TRUE(after->Touched(key, &s1));
        EXPECT_EQ(s0, s1);
        EXPECT_EQ(s0, i % 5 - 1);  // the last step that pulled it
      }
    }
    // A value seen twice before the checkpoint is admitted at its third sighting after it.
    std::vector<uint8_t> own;
    Step(&dst, {MakeKey(1, 2)}, 4, &own);
    EXPECT_EQ(own[0], 1);
    Step(&dst, {MakeKey(1, 1)}, 5, &own);
    EXPECT_EQ(own[0], 0);
    std::filesystem::remove_all(dir);
  }
}

TEST(AdmissionShards, ShardClockExpiresIdleRowsInBatches) {
  embedding::TableSpec spec;
  spec.id = 1;
  spec.dim = 4;
  spec.lifecycle.expire_after = 8;  // scans every 8 / 8 = 1 step
  InProcessClient c(2);
  ASSERT_TRUE(c.CreateTables({spec}).ok());
  std::vector<uint64_t> hot, cold;
  for (uint64_t i = 0; i < 50; ++i) hot.push_back(MakeKey(1, i));
  for (uint64_t i = 50; i < 120; ++i) cold.push_back(MakeKey(1, i));
  Step(&c, cold, 0);
  for (uint64_t step = 1; step < 12; ++step) Step(&c, hot, step);
  auto st = c.Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)[0].rows, 50u);
  EXPECT_EQ((*st)[0].evicted, 70u);
}

TEST(AdmissionShards, ConcurrentPullsPushesAndEvictionsStayConsistent) {
  embedding::TableSpec spec;
  spec.id = 1;
  spec.dim = 4;
  spec.lifecycle.admit_after = 2;
  spec.lifecycle.sketch_width = 1 << 14;
  spec.lifecycle.expire_after = 2;
  InProcessClient c(3);
  ASSERT_TRUE(c.CreateTables({spec}).ok());
  // Four async workers hammer overlapping keys; every pulled row is either a real row (finite,
  // near its init scale) or an all-zero fallback, and the books balance at the end.
  std::atomic<bool> bad{false};
  std::vector<std::thread> workers;
  for (uint32_t w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      for (uint64_t step = 0; step < 200; ++step) {
        std::vector<uint64_t> keys;
        std::unordered_map<uint64_t, bool> seen;
        for (int i = 0; i < 64; ++i) {
          const uint64_t k = MakeKey(1, rng() % 500);
          if (seen.emplace(k, true).second) keys.push_back(k);
        }
        std::vector<float> rows(keys.size() * 4), grads(keys.size() * 4, 0.01f);
        std::vector<uint8_t> own(keys.size());
        PullSlice p{1, keys.data(), keys.size(), rows.data()};
        p.own = own.data();
        if (!c.Pull({p}).ok()) bad = true;
        for (size_t i = 0; i < keys.size(); ++i)
          for (int j = 0; j < 4; ++j) {
            const float v = rows[i * 4 + j];
            if (!std::isfinite(v) || std::fabs(v) > 10 || (!own[i] && v != 0.0f)) bad = true;
          }
        if (!c.Push({PushSlice{1, keys.data(), keys.size(), grads.data()}}, PushClock{w, 4, step, false}).ok())
          bad = true;
      }
    });
  for (auto& t : workers) t.join();
  EXPECT_FALSE(bad);
  auto st = c.Stats();
  ASSERT_TRUE(st.ok());
  const auto& s = (*st)[0];
  EXPECT_GT(s.admitted, 0u);
  EXPECT_GT(s.evicted, 0u);
  EXPECT_EQ(s.rows, s.admitted - s.evicted);  // every row was admitted, and left only by eviction
}

}  // namespace
}  // namespace ember::ps
