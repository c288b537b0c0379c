#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "ember/common/file.h"
#include "ember/data/criteo.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ember/workers/trainer.h"
#include "test_util.h"

namespace ember::workers {
namespace {

std::string Dir() { return testing_util::TempDir("workers"); }

// A small synthetic train/test pair shared by the tests (one teacher).
struct SmallData {
  std::string train, test;
  double oracle_auc;
  SmallData() {
    data::SyntheticCtrOptions o;
    o.max_vocab = 2000;
    o.rows = 40000;
    o.seed = 1;
    train = Dir() + "/train.tsv";
    test = Dir() + "/test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 10000;
    o.seed = 2;
    auto s = data::WriteSyntheticCtr(o, test);
    EMBER_CHECK(s.ok());
    oracle_auc = s->auc;
  }
};
const SmallData& Data() {
  static SmallData d;
  return d;
}

using testing_util::Reader;

TrainerConfig SmallConfig(const std::string& model) {
  TrainerConfig c;
  c.model.name = model;
  c.model.bottom_mlp = {32};
  c.model.top_mlp = {32};
  c.embedding.dim = 8;
  c.dense_lr = 3e-3;
  for (int f = 0; f < 26; ++f) c.fields.push_back({"C" + std::to_string(f + 1), 0});
  return c;
}

TEST(Collective, InProcessGroupSumsInEveryRank) {
  InProcessGroup group(3);
  std::vector<std::vector<float>> bufs(3);
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      for (int round = 0; round < 50; ++round) {
        bufs[r] = {float(r), float(10 * r + round)};
        ASSERT_TRUE(group.Member(r)->AllReduceSum(bufs[r].data(), 2).ok());
        ASSERT_EQ(bufs[r][0], 3.0f);
        ASSERT_EQ(bufs[r][1], 30.0f + 3 * round);
      }
    });
  }
  for (auto& t : threads) t.join();
}

class TrainerModels : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainerModels, LearnsWellAboveChance) {
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto t = Trainer::Create(SmallConfig(GetParam()), &ps, &coll);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ProgressOptions quiet;
  quiet.enabled = false;
  for (int e = 0; e < 2; ++e) {
    auto r = Reader(Data().train, 256);
    auto stats = (*t)->TrainEpoch(r.get(), e, 2, quiet);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    EXPECT_EQ(stats->samples, 40000u);
  }
  auto r = Reader(Data().test, 4096);
  auto eval = (*t)->Evaluate(r.get());
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(eval->samples, 10000u);
  EXPECT_GT(eval->auc, 0.70) << GetParam() << " oracle " << Data().oracle_auc;
  EXPECT_LT(eval->auc, Data().oracle_auc + 0.01);
  EXPECT_LT(eval->logloss, 0.56);  // base rate entropy at CTR 0.25 is 0.562
}

INSTANTIATE_TEST_SUITE_P(Ctr, TrainerModels, ::testing::Values("dlrm", "deepfm", "lr"));

TEST(Trainer, HashMethodTrainsWithinBudget) {
  auto c = SmallConfig("dlrm");
  c.embedding.method = "hash";
  c.embedding.rows = 500;
  ps::InProcessClient ps(1);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  ASSERT_TRUE(t.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  auto r = Reader(Data().train, 256);
  ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, quiet).ok());
  auto fp = (*t)->TableFootprint();
  EXPECT_LE(fp->first, 500u);
  auto te = Reader(Data().test, 4096);
  EXPECT_GT((*t)->Evaluate(te.get())->auc, 0.6);
}

TEST(Trainer, UnifiedEmbeddingTrainsDlrm) {
  auto c = SmallConfig("dlrm");
  c.embedding.method = "unified";
  c.embedding.rows = 2000;
  c.embedding.tables = 2;
  c.embedding.chunks = 2;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ProgressOptions quiet;
  quiet.enabled = false;
  auto r = Reader(Data().train, 256);
  ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, quiet).ok());
  auto fp = (*t)->TableFootprint();
  EXPECT_LE(fp->first, 4000u);  // T x M rows at most
  auto te = Reader(Data().test, 4096);
  EXPECT_GT((*t)->Evaluate(te.get())->auc, 0.65);
  // LR's width-1 group cannot be split into 2 chunks: a clear error.
  c.model.name = "lr";
  ps::InProcessClient ps2(1);
  auto bad = Trainer::Create(c, &ps2, &coll);
  EXPECT_NE(bad.status().message().find("embedding.chunks"), std::string::npos) << bad.status().ToString();
}

TEST(Trainer, CheckpointRestoresExactPredictions) {
  ps::InProcessClient ps(3);
  LocalCollective coll;
  auto t = Trainer::Create(SmallConfig("deepfm"), &ps, &coll);
  ASSERT_TRUE(t.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  auto r = Reader(Data().train, 512);
  ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, quiet).ok());
  const std::string root = Dir() + "/ckpt";
  std::filesystem::remove_all(root);
  auto path = (*t)->SaveCheckpoint(root, "model.name = \"deepfm\"\n");
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(*path, root + "/ckpt-79");
  EXPECT_EQ(*ResolveCheckpoint(root), *path);
  EXPECT_EQ(*ReadCheckpointConfig(*path), "model.name = \"deepfm\"\n");

  ps::InProcessClient ps2(1);  // a different shard count
  auto t2 = Trainer::Create(SmallConfig("deepfm"), &ps2, &coll);
  ASSERT_TRUE((*t2)->RestoreCheckpoint(*path).ok());
  EXPECT_EQ((*t2)->step(), 79);
  std::vector<float> p1, p2, y;
  auto e1 = Reader(Data().test, 1000), e2 = Reader(Data().test, 1000);
  ASSERT_TRUE((*t)->Evaluate(e1.get(), &p1, &y).ok());
  ASSERT_TRUE((*t2)->Evaluate(e2.get(), &p2, &y).ok());
  EXPECT_EQ(p1, p2);

  // A corrupted dense file is refused by name; the checkpoint on disk is untouched.
  auto bytes = ReadFile(*path + "/dense.pt");
  std::string bad = *bytes;
  bad[bad.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(*path + "/dense.pt", bad).ok());
  Status st = (*t2)->RestoreCheckpoint(*path);
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("dense.pt"), std::string::npos) << st.ToString();
  EXPECT_EQ(ResolveCheckpoint(Dir() + "/nothing-here").status().code(), StatusCode::kNotFound);
}

TEST(Trainer, RejectsMismatchedBatch) {
  ps::InProcessClient ps(1);
  LocalCollective coll;
  auto t = Trainer::Create(SmallConfig("lr"), &ps, &coll);
  data::Batch b;
  b.Reset(13, 5, 4);
  b.size = 4;
  double loss;
  Status st = (*t)->TrainStep(b, &loss);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("5 categorical fields"), std::string::npos);
}

TEST(Trainer, UnknownDenseOptimizer) {
  auto c = SmallConfig("lr");
  c.dense_optimizer = "lamb";
  ps::InProcessClient ps(1);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  EXPECT_NE(t.status().message().find("train.optimizer"), std::string::npos);
}

// The same training over 2 PS servers (loopback TCP, servers on threads) and over 2 in-process
// shards: the same rows on the same shards, so bit-identical predictions.
TEST(Trainer, RemoteShardsTrainExactlyLikeInProcessShards) {
  std::vector<std::unique_ptr<ps::PsServer>> servers;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 2; ++i) {
    ps::ServerOptions o;
    o.shard_index = i;
    o.num_shards = 2;
    servers.push_back(std::make_unique<ps::PsServer>(o));
    ASSERT_TRUE(servers.back()->Start().ok());
    endpoints.push_back("127.0.0.1:" + std::to_string(servers.back()->port()));
  }
  auto remote = ps::RemoteClient::Connect(endpoints, 5);
  ASSERT_TRUE(remote.ok());
  ps::InProcessClient local(2);
  auto c = SmallConfig("dlrm");
  c.embedding.method = "unified";
  c.embedding.rows = 3000;
  LocalCollective coll;
  auto a = Trainer::Create(c, remote->get(), &coll);
  auto b = Trainer::Create(c, &local, &coll);
  ASSERT_TRUE(a.ok() && b.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  for (Trainer* t : {a->get(), b->get()}) {
    auto r = Reader(Data().test, 512);  // 10000 rows: 20 steps
    ASSERT_TRUE(t->TrainEpoch(r.get(), 0, 1, quiet).ok());
  }
  std::vector<float> pa, pb, y;
  auto ra = Reader(Data().test, 4096), rb = Reader(Data().test, 4096);
  ASSERT_TRUE((*a)->Evaluate(ra.get(), &pa, &y).ok());
  ASSERT_TRUE((*b)->Evaluate(rb.get(), &pb, &y).ok());
  EXPECT_EQ(pa, pb);
  EXPECT_GT((*remote)->bytes_sent(), 0u);
}

}  // namespace
}  // namespace ember::workers
