#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "ember/common/file.h"
#include "ember/ps/in_process.h"
#include "ember/ps/shard.h"

namespace ember::ps {
namespace {
using embedding::MakeKey;

std::vector<embedding::TableSpec> Specs() {
  std::vector<embedding::TableSpec> specs(2);
  specs[0].id = 0;
  specs[0].dim = 4;
  specs[1].id = 1;
  specs[1].dim = 8;
  specs[1].optimizer.kind = embedding::OptimizerKind::kAdagrad;
  return specs;
}

// Runs the same pulls and pushes against a client; returns the final rows of every key.
std::vector<float> Drive(PsClient* c, uint64_t seed) {
  EXPECT_TRUE(c->CreateTables(Specs()).ok());
  std::mt19937_64 rng(seed);
  std::vector<float> out;
  for (int step = 0; step < 10; ++step) {
    std::vector<uint64_t> k0, k1;
    for (uint64_t i = 0; i < 50; ++i) k0.push_back(MakeKey(0, (step * 13 + i * 7) % 300));
    for (uint64_t i = 0; i < 30; ++i) k1.push_back(MakeKey(1, (step * 5 + i * 11) % 200));
    std::vector<float> r0(k0.size() * 4), r1(k1.size() * 8);
    EXPECT_TRUE(c->Pull({{0, k0.data(), k0.size(), r0.data()}, {1, k1.data(), k1.size(), r1.data()}}).ok());
    std::vector<float> g0(r0.size()), g1(r1.size());
    for (size_t i = 0; i < g0.size(); ++i) g0[i] = r0[i] * 0.5f + 0.01f;
    for (size_t i = 0; i < g1.size(); ++i) g1[i] = r1[i] - 0.02f;
    EXPECT_TRUE(c->Push({{0, k0.data(), k0.size(), g0.data()}, {1, k1.data(), k1.size(), g1.data()}}).ok());
    out.insert(out.end(), r0.begin(), r0.end());
    out.insert(out.end(), r1.begin(), r1.end());
  }
  return out;
}

TEST(InProcessClient, ShardCountDoesNotChangeResults) {
  InProcessClient one(1), three(3);
  EXPECT_EQ(Drive(&one, 1), Drive(&three, 1));
  auto s1 = one.Stats(), s3 = three.Stats();
  ASSERT_TRUE(s1.ok() && s3.ok());
  ASSERT_EQ(s1->size(), 2u);
  EXPECT_EQ((*s1)[0].rows, (*s3)[0].rows);
  EXPECT_EQ((*s1)[1].rows, (*s3)[1].rows);
  // Rows are spread over all three shards.
  for (int s = 0; s < 3; ++s) EXPECT_GT(three.shard(s).table(0)->size(), 30u);
}

TEST(InProcessClient, ShardOfIsStable) {
  EXPECT_EQ(ShardOf(MakeKey(0, 1), 1), 0);
  int counts[4] = {0, 0, 0, 0};
  for (uint64_t k = 0; k < 4000; ++k) counts[ShardOf(MakeKey(2, k), 4)]++;
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
}

TEST(InProcessClient, UndeclaredTableIsAnError) {
  InProcessClient c(2);
  uint64_t k = 1;
  float out[4];
  Status st = c.Pull({{7, &k, 1, out}});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("table 7"), std::string::npos);
  embedding::TableSpec s;
  s.id = 0;
  ASSERT_TRUE(c.CreateTables({s}).ok());
  s.dim = 32;
  EXPECT_EQ(c.CreateTables({s}).code(), StatusCode::kFailedPrecondition);
}

std::string TempDir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("ember_ps_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

TEST(InProcessClient, SaveAndLoadAcrossShardCounts) {
  InProcessClient src(2);
  Drive(&src, 3);
  const std::string dir = TempDir("save");
  auto files = src.SaveShards(dir);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 2u);
  for (int m : {1, 3}) {
    InProcessClient dst(m);
    ASSERT_TRUE(dst.LoadShards(dir, *files).ok());
    auto a = src.Stats(), b = dst.Stats();
    for (uint32_t t = 0; t < 2; ++t) {
      EXPECT_EQ((*a)[t].rows, (*b)[t].rows);
      // Every row with its optimizer state, exactly.
      for (int s = 0; s < 2; ++s) {
        src.shard(s).table(t)->ForEachRecord([&](uint64_t key, std::string_view rec) {
          std::string got;
          dst.shard(ShardOf(key, m)).table(t)->ForEachRecord([&](uint64_t k, std::string_view r) {
            if (k == key) got = std::string(r);
          });
          ASSERT_EQ(got, std::string(rec));
        });
      }
    }
  }
}

// OptEmbed's server-side operations: count rows above an L1 threshold, copy them into a
// narrower frozen table, drop the source. Placement ignores the table id, so the copy stays local.
TEST(InProcessClient, CountCopyAndDropRowsAcrossShards) {
  InProcessClient c(3);
  embedding::TableSpec src;
  src.id = 5;
  src.dim = 4;
  src.init_scale = 1.0f;
  embedding::TableSpec dst = src;
  dst.id = 6;
  dst.dim = 2;
  dst.frozen = true;
  ASSERT_TRUE(c.CreateTables({src, dst}).ok());
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 300; ++i) keys.push_back(MakeKey(5, i));
  std::vector<float> rows(keys.size() * 4);
  ASSERT_TRUE(c.Pull({{5, keys.data(), keys.size(), rows.data()}}).ok());
  const double thr = 2.0;
  uint64_t want = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    double l1 = 0;
    for (int j = 0; j < 4; ++j) l1 += std::fabs(rows[i * 4 + j]);
    want += l1 > thr;
  }
  ASSERT_GT(want, 50u);
  ASSERT_LT(want, 250u);
  TableOp op;
  op.kind = TableOp::Kind::kCountAbove;
  op.table = 5;
  op.value = thr;
  EXPECT_EQ(c.Apply(op)->rows, want);
  op.kind = TableOp::Kind::kCopyRows;
  op.dst_table = 6;
  EXPECT_EQ(c.Apply(op)->rows, want);
  op.kind = TableOp::Kind::kDropTable;
  ASSERT_TRUE(c.Apply(op).ok());
  EXPECT_EQ(c.Pull({{5, keys.data(), 1, rows.data()}}).code(), StatusCode::kNotFound);
  // The copy: kept rows carry their two leading entries, pruned ones read zero; the frozen
  // table creates nothing, and strided pulls leave the padding alone.
  std::vector<uint64_t> dkeys;
  for (uint64_t i = 0; i < 300; ++i) dkeys.push_back(MakeKey(6, i));
  std::vector<float> got(dkeys.size() * 4, 9.0f);
  PullSlice s{6, dkeys.data(), dkeys.size(), got.data()};
  s.stride = 4;
  ASSERT_TRUE(c.Pull({s}).ok());
  uint64_t kept = 0;
  for (size_t i = 0; i < dkeys.size(); ++i) {
    double l1 = 0;
    for (int j = 0; j < 4; ++j) l1 += std::fabs(rows[i * 4 + j]);
    if (l1 > thr) {
      ++kept;
      EXPECT_EQ(got[i * 4], rows[i * 4]);
      EXPECT_EQ(got[i * 4 + 1], rows[i * 4 + 1]);
    } else {
      EXPECT_EQ(got[i * 4], 0.0f);
      EXPECT_EQ(got[i * 4 + 1], 0.0f);
    }
    EXPECT_EQ(got[i * 4 + 2], 9.0f);
  }
  EXPECT_EQ(kept, want);
  EXPECT_EQ((*c.Stats())[0].rows, want);
}

TEST(InProcessClient, PruneGrowKeepsTheTotalAcrossShards) {
  InProcessClient c(2);
  embedding::TableSpec spec;
  spec.id = 1;
  spec.dim = 16;
  spec.kind = embedding::TableKind::kSparse;
  spec.density = 0.5f;
  ASSERT_TRUE(c.CreateTables({spec}).ok());
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 400; ++i) keys.push_back(MakeKey(1, i));
  std::vector<float> rows(keys.size() * 16);
  ASSERT_TRUE(c.Pull({{1, keys.data(), keys.size(), rows.data()}}).ok());
  const uint64_t total = (*c.Stats())[0].values;
  EXPECT_EQ(total, 400u * 8u);
  TableOp op;
  op.table = 1;
  op.kind = TableOp::Kind::kCollectGrowth;
  op.value = 1;
  ASSERT_TRUE(c.Apply(op).ok());
  for (auto& g : rows) g = 0.1f;
  ASSERT_TRUE(c.Push({{1, keys.data(), keys.size(), rows.data()}}).ok());
  op.kind = TableOp::Kind::kPruneGrow;
  op.value = 0.5;
  auto r = c.Apply(op);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->pruned, 1500u);
  EXPECT_EQ(r->grown, r->pruned);
  EXPECT_EQ(r->values, total);
  op.table = 0;
  EXPECT_EQ(c.Apply(op).status().code(), StatusCode::kNotFound);
}

// DSL's collected growth gradient is method state: it is checkpointed with the rows (a restored
// copy's prune/grow round regrows exactly the same entries) and resharded with them by key.
TEST(InProcessClient, CollectedGrowthSurvivesCheckpointAndResharding) {
  embedding::TableSpec spec;
  spec.id = 1;
  spec.dim = 16;
  spec.kind = embedding::TableKind::kSparse;
  spec.density = 0.5f;
  InProcessClient a(2);
  ASSERT_TRUE(a.CreateTables({spec}).ok());
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 300; ++i) keys.push_back(MakeKey(1, i));
  std::vector<float> rows(keys.size() * 16), grads(keys.size() * 16);
  ASSERT_TRUE(a.Pull({{1, keys.data(), keys.size(), rows.data()}}).ok());
  TableOp op;
  op.table = 1;
  op.kind = TableOp::Kind::kCollectGrowth;
  op.value = 1;
  ASSERT_TRUE(a.Apply(op).ok());
  std::mt19937 rng(5);
  for (auto& g : grads) g = std::uniform_real_distribution<float>(-1, 1)(rng);  // every entry has a gradient
  ASSERT_TRUE(a.Push({{1, keys.data(), keys.size(), grads.data()}}).ok());
  const std::string dir = testing::TempDir() + "/growth_ckpt";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto files = a.SaveShards(dir);
  ASSERT_TRUE(files.ok());
  InProcessClient three(3);
  ASSERT_TRUE(three.LoadShards(dir, *files).ok());
  uint64_t entries = 0;
  for (int i = 0; i < 3; ++i) {
    const embedding::Table* t = three.shard(i).table(1);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->StateFlags(), 1u);  // still collecting
    t->ForEachStateEntry([&](uint64_t key, std::string_view e) {
      EXPECT_EQ(ShardOf(key, 3), i);
      EXPECT_EQ(e.size(), 16 * sizeof(float));
      ++entries;
    });
  }
  EXPECT_EQ(entries, 300u);
  InProcessClient b(2);
  ASSERT_TRUE(b.LoadShards(dir, *files).ok());
  // A round small enough that every regrown entry comes from the collected gradient: the restored
  // copy regrows exactly what the original does.
  op.kind = TableOp::Kind::kPruneGrow;
  op.value = 0.05;
  auto ra = a.Apply(op), rb = b.Apply(op);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->grown, rb->grown);
  EXPECT_GT(ra->grown, 0u);
  std::vector<float> after_a(rows.size()), after_b(rows.size());
  ASSERT_TRUE(a.Pull({{1, keys.data(), keys.size(), after_a.data()}}).ok());
  ASSERT_TRUE(b.Pull({{1, keys.data(), keys.size(), after_b.data()}}).ok());
  EXPECT_EQ(after_a, after_b);
}

TEST(InProcessClient, CorruptShardFileIsRefusedByName) {
  InProcessClient src(1);
  Drive(&src, 4);
  const std::string dir = TempDir("corrupt");
  auto files = src.SaveShards(dir);
  ASSERT_TRUE(files.ok());
  auto bytes = ReadFile(dir + "/shard-0.bin");
  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomic(dir + "/shard-0.bin", flipped).ok());
  InProcessClient dst(1);
  Status st = dst.LoadShards(dir, *files);
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("shard-0.bin"), std::string::npos) << st.ToString();
  ASSERT_TRUE(WriteFileAtomic(dir + "/shard-0.bin", bytes->substr(0, 100)).ok());
  st = dst.LoadShards(dir, *files);
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("size"), std::string::npos) << st.ToString();
}

// Training clocks on a shard: sync sums a step's pushes in worker order and applies one update
// scaled by 1/W when the last worker arrives; async applies each push and the clock is the
// slowest worker's; misuse is refused without touching rows.
TEST(Shard, ClocksAggregateSyncStepsAndTrackTheSlowestWorker) {
  embedding::TableSpec spec;
  spec.id = 0;
  spec.dim = 2;
  spec.optimizer.kind = embedding::OptimizerKind::kSgd;
  spec.optimizer.lr = 1.0f;
  Shard shard;
  ASSERT_TRUE(shard.CreateTables({spec}).ok());
  const uint64_t a = MakeKey(0, 1), b = MakeKey(0, 2);
  float before[4];
  const uint64_t ab[2] = {a, b};
  ASSERT_TRUE(shard.Pull(0, ab, 2, before).ok());
  auto rows = [&] {
    std::vector<float> r(4);
    EMBER_CHECK(shard.Pull(0, ab, 2, r.data()).ok());
    return r;
  };
  // Sync, 2 workers, step 7: worker 1 pushes key a; worker 0 pushes a and b.
  const float g1[2] = {4, 8};
  const float g0[4] = {2, 2, 6, 10};
  ASSERT_TRUE(shard.PushStep({1, 2, 7, true}, {{0, &a, 1, g1}}).ok());
  EXPECT_EQ(shard.clock(), 0u);
  EXPECT_EQ(rows(), std::vector<float>(before, before + 4));  // buffered, not applied
  bool woke = false;
  shard.WhenClock(8, [&] { woke = true; });
  Status twice = shard.PushStep({1, 2, 7, true}, {{0, &a, 1, g1}});
  EXPECT_EQ(twice.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(twice.message().find("worker 1 pushed step 7 twice"), std::string::npos) << twice.ToString();
  Status other = shard.PushStep({0, 2, 8, true}, {});
  EXPECT_NE(other.message().find("push for step 8 from worker 0 while step 7 waits for 1 worker(s)"), std::string::npos)
      << other.ToString();
  EXPECT_FALSE(woke);
  ASSERT_TRUE(shard.PushStep({0, 2, 7, true}, {{0, ab, 2, g0}}).ok());
  EXPECT_TRUE(woke);
  EXPECT_EQ(shard.clock(), 8u);
  // One SGD step with the mean gradient: a gets (2 + 4) / 2, (2 + 8) / 2; b gets 6 / 2, 10 / 2.
  EXPECT_EQ(rows(), (std::vector<float>{before[0] - 3, before[1] - 5, before[2] - 3, before[3] - 5}));

  // Async: applied on arrival; the clock is the slowest worker's.
  Shard async;
  ASSERT_TRUE(async.CreateTables({spec}).ok());
  float x[2];
  ASSERT_TRUE(async.Pull(0, &a, 1, x).ok());
  for (uint64_t step = 0; step < 3; ++step) ASSERT_TRUE(async.PushStep({0, 2, step, false}, {{0, &a, 1, g1}}).ok());
  EXPECT_EQ(async.clock(), 0u);  // worker 1 has pushed nothing
  float y[2];
  ASSERT_TRUE(async.Pull(0, &a, 1, y).ok());
  EXPECT_EQ(y[0], x[0] - 12);  // three updates already in
  ASSERT_TRUE(async.PushStep({1, 2, 0, false}, {}).ok());
  EXPECT_EQ(async.clock(), 1u);
  ASSERT_TRUE(async.PushStep({1, 2, 1, false}, {}).ok());
  EXPECT_EQ(async.clock(), 2u);
  EXPECT_EQ(async.PushStep({2, 2, 0, false}, {}).code(), StatusCode::kInvalidArgument);
}

// In-process workers sharing a client: a pull that waits for a step blocks until the other
// worker's push completes it, and clocked pushes reach every shard (even without keys).
TEST(InProcessClient, PullsWaitForTheirStep) {
  InProcessClient c(3);
  ASSERT_TRUE(c.CreateTables(Specs()).ok());
  const uint64_t k = MakeKey(0, 5);
  std::vector<float> row(4), g(4, 1.0f);
  ASSERT_TRUE(c.Push({{0, &k, 1, g.data()}}, PushClock{0, 2, 0, true}).ok());
  for (int s = 0; s < 3; ++s) EXPECT_EQ(c.shard(s).clock(), 0u);
  std::atomic<bool> done{false};
  uint64_t seen = 0;
  std::thread waiter([&] {
    EMBER_CHECK(c.Pull({{0, &k, 1, row.data()}}, PullClock{1, &seen}).ok());
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(done.load());
  ASSERT_TRUE(c.Push({}, PushClock{1, 2, 0, true}).ok());  // worker 1: no keys, still counts
  waiter.join();
  EXPECT_EQ(seen, 1u);
  for (int s = 0; s < 3; ++s) EXPECT_EQ(c.shard(s).clock(), 1u);
}

}  // namespace
}  // namespace ember::ps
