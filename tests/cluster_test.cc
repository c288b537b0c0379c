// The cluster job in one process: every rank a thread (ThreadWorld), real PS servers on
// loopback, workers all-reducing through an in-process group. The same RunClusterRank that
// runs under mpirun.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "ember/data/sessions.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/launcher/config.h"
#include "ember/launcher/job.h"
#include "ember/ps/in_process.h"

namespace ember::launcher {
namespace {

constexpr uint64_t kBatch = 64;
constexpr uint64_t kRows = kBatch * 12 * 4;  // whole batch groups for 1..4 workers

struct Files {
  std::string dir, train, test;
  Files() {
    dir = (std::filesystem::temp_directory_path() / ("ember_cluster_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
    data::SyntheticCtrOptions o;
    o.max_vocab = 2000;
    o.rows = kRows;
    train = dir + "/train.tsv";
    test = dir + "/test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 2000;
    o.seed = 3;
    EMBER_CHECK(data::WriteSyntheticCtr(o, test).ok());
  }
};
const Files& Data() {
  static Files f;
  return f;
}

RunConfig Config(std::vector<std::string> sets) {
  std::vector<std::string> all = {"data.train=\"" + Data().train + "\"",
                                  "data.test=\"" + Data().test + "\"",
                                  "model.bottom_mlp=[32]",
                                  "model.top_mlp=[32]",
                                  "embedding.dim=8",
                                  "embedding.method=\"unified\"",
                                  "embedding.rows=3000",
                                  "train.progress=\"off\""};
  all.insert(all.end(), sets.begin(), sets.end());
  auto c = ParseConfig("", "cluster_test", all);
  EMBER_CHECK(c.ok()) << c.status().ToString();
  return *c;
}

struct RankResult {
  Result<RunMetrics> metrics = Status::Internal("not run");
  std::string out;
};

// Runs every rank of a `servers` + `workers` job on its own thread.
std::vector<RankResult> RunCluster(const RunConfig& c, int ranks) {
  ThreadWorld world(ranks, std::chrono::seconds(120));
  std::vector<RankResult> results(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      std::ostringstream out;
      results[static_cast<size_t>(r)].metrics = RunClusterRank(c, world.Member(r), out);
      results[static_cast<size_t>(r)].out = out.str();
    });
  for (auto& t : threads) t.join();
  return results;
}

class ClusterGrid : public ::testing::TestWithParam<std::tuple<int, int>> {};

// Sync training on S servers and W workers (batch B each) takes the steps of one process on
// batches of W·B over S in-process shards: the same rows on the same shards, the same dense
// updates, up to the order in which gradients are summed. Their test scores agree to rounding.
TEST_P(ClusterGrid, SyncEqualsOneProcess) {
  const auto [servers, workers] = GetParam();
  const RunConfig cluster =
      Config({"ps.servers=" + std::to_string(servers), "train.batch_size=" + std::to_string(kBatch)});
  auto ranks = RunCluster(cluster, servers + workers);
  for (int r = 0; r < servers + workers; ++r)
    ASSERT_TRUE(ranks[static_cast<size_t>(r)].metrics.ok())
        << "rank " << r << ": " << ranks[static_cast<size_t>(r)].metrics.status().ToString();
  const RunMetrics& lead = *ranks[static_cast<size_t>(servers)].metrics;
  EXPECT_TRUE(lead.report);
  for (int r = 0; r < servers + workers; ++r) {
    if (r != servers) {
      EXPECT_FALSE(ranks[static_cast<size_t>(r)].metrics->report) << "rank " << r;
    }
  }
  EXPECT_EQ(lead.train_samples, kRows);
  EXPECT_EQ(lead.eval_samples, 2000u);
  EXPECT_NE(ranks[static_cast<size_t>(servers)].out.find("dense all-reduce: threads"), std::string::npos);
  EXPECT_NE(ranks[0].out.find("cluster: " + std::to_string(servers) + " PS servers, " + std::to_string(workers) +
                              " workers, train.mode sync"),
            std::string::npos)
      << ranks[0].out;

  const RunConfig one = Config({"ps.shards=" + std::to_string(servers),
                                "train.batch_size=" + std::to_string(kBatch * static_cast<uint64_t>(workers))});
  ps::InProcessClient ps(servers);
  workers::LocalCollective local;
  std::ostringstream out;
  JobContext ctx;
  ctx.ps = &ps;
  ctx.collective = &local;
  ctx.out = &out;
  auto alone = RunJob(one, ctx);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_EQ(alone->train_samples, kRows);
  EXPECT_EQ(alone->table_rows, lead.table_rows);
  EXPECT_NEAR(alone->auc, lead.auc, 2e-5) << out.str() << ranks[static_cast<size_t>(servers)].out;
  EXPECT_NEAR(alone->logloss, lead.logloss, 2e-5);
  std::printf("%d servers x %d workers: AUC %.6f (one process %.6f), logloss %.6f (%.6f)\n", servers, workers, lead.auc,
              alone->auc, lead.logloss, alone->logloss);
}

INSTANTIATE_TEST_SUITE_P(ServersByWorkers, ClusterGrid,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(1, 2, 3, 4)),
                         [](const auto& info) {
                           return std::to_string(std::get<0>(info.param)) + "x" +
                                  std::to_string(std::get<1>(info.param));
                         });

// A job that cannot start: every rank returns the error, naming itself; none hangs.
TEST(Cluster, EveryRankReturnsTheErrorNamingItself) {
  auto ranks = RunCluster(Config({"ps.servers=3"}), 3);
  for (int r = 0; r < 3; ++r) {
    ASSERT_FALSE(ranks[static_cast<size_t>(r)].metrics.ok());
    EXPECT_EQ(
        ranks[static_cast<size_t>(r)].metrics.status().message(),
        "rank " + std::to_string(r) + " (server): ps.servers = 3 leaves no worker among 3 ranks (it must be 1 .. 2)");
  }
  // Training data that cannot be read: the workers fail, the servers see them vanish.
  auto missing = RunCluster(Config({"ps.servers=2", "ps.timeout_s=1", "data.train=\"/no/such/train.tsv\""}), 4);
  for (int r = 0; r < 4; ++r) EXPECT_FALSE(missing[static_cast<size_t>(r)].metrics.ok()) << "rank " << r;
  EXPECT_NE(missing[2].metrics.status().message().find("rank 2 (worker 0): "), std::string::npos)
      << missing[2].metrics.status().ToString();
  EXPECT_NE(missing[2].metrics.status().message().find("/no/such/train.tsv"), std::string::npos);
  EXPECT_NE(missing[0].metrics.status().message().find("rank 0 (server): "), std::string::npos)
      << missing[0].metrics.status().ToString();
}

// Session models on the in-process cluster: 1 server, 2 workers, M2TRec on synthetic sessions.
// Each worker's dropout is drawn from its step's seed while it holds LibTorch's generator, so
// two runs of the same job agree exactly even though the workers are threads of one process.
TEST(Cluster, SessionModelsTrainDeterministicallyOnThreads) {
  const std::string dir = Data().dir;
  data::SyntheticSessionOptions o;
  o.sessions = 1500;
  o.items = 300;
  const std::string sessions = dir + "/sessions.tsv", items = dir + "/items.tsv";
  ASSERT_TRUE(data::WriteSyntheticSessions(o, sessions, items).ok());
  auto c = ParseConfig("", "cluster_test",
                       {"data.format=\"yoochoose\"", "data.train=\"" + sessions + "\"", "data.items=\"" + items + "\"",
                        "model.name=\"m2trec\"", "model.layers=1", "embedding.dim=8", "train.batch_size=64",
                        "train.progress=\"off\"", "ps.servers=1"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<double> recall;
  for (int run = 0; run < 2; ++run) {
    auto ranks = RunCluster(*c, 3);
    for (int r = 0; r < 3; ++r)
      ASSERT_TRUE(ranks[static_cast<size_t>(r)].metrics.ok())
          << "rank " << r << ": " << ranks[static_cast<size_t>(r)].metrics.status().ToString();
    const RunMetrics& lead = *ranks[1].metrics;
    EXPECT_TRUE(lead.session);
    EXPECT_GT(lead.test_examples, 0u);
    EXPECT_GT(lead.recall_at_20, 0.0);
    recall.push_back(lead.recall_at_20);
    EXPECT_NE(ranks[1].out.find("trained "), std::string::npos) << ranks[1].out;
  }
  EXPECT_EQ(recall[0], recall[1]);
  std::printf("m2trec, 1 server x 2 workers: Recall@20 %.4f in both runs\n", recall[0]);
}

}  // namespace
}  // namespace ember::launcher
