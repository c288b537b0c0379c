#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "ember/common/file.h"
#include "ember/ps/in_process.h"

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
        src.shard(s).table(t)->ForEach([&](uint64_t key, const float* slot) {
          const float* got = dst.shard(ShardOf(key, m)).table(t)->Find(key);
          ASSERT_NE(got, nullptr);
          for (int j = 0; j < src.shard(s).table(t)->stride(); ++j) ASSERT_EQ(got[j], slot[j]);
        });
      }
    }
  }
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

}  // namespace
}  // namespace ember::ps
