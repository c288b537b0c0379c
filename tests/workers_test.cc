#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "ember/common/env.h"
#include "ember/common/file.h"
#include "ember/data/criteo.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/monitoring/recorder.h"
#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ember/workers/trainer.h"
#include "ps_test_util.h"
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
  c.model.kind = *models::ParseModelKind(model);
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

INSTANTIATE_TEST_SUITE_P(Ctr, TrainerModels, ::testing::Values("dlrm", "deepfm", "lr", "dcn_v2", "wide_deep", "fm"));

TEST(Trainer, HashMethodTrainsWithinBudget) {
  auto c = SmallConfig("dlrm");
  c.embedding.method = embedding::Method::kHash;
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
  c.embedding.method = embedding::Method::kUnified;
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
  // LR's width-1 group is probed at one chunk whatever embedding.chunks says.
  c.model.kind = models::ModelKind::kLr;
  ps::InProcessClient ps2(1);
  auto lr = Trainer::Create(c, &ps2, &coll);
  ASSERT_TRUE(lr.ok()) << lr.status().ToString();
  auto tr = Reader(Data().train, 256);
  ASSERT_TRUE((*lr)->TrainEpoch(tr.get(), 0, 1, quiet).ok());
  auto lt = Reader(Data().test, 4096);
  EXPECT_GT((*lr)->Evaluate(lt.get())->auc, 0.6);
  // A main group whose width the chunks do not divide: a clear error.
  c.model.kind = models::ModelKind::kDlrm;
  c.embedding.chunks = 3;
  ps::InProcessClient ps3(1);
  auto bad = Trainer::Create(c, &ps3, &coll);
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

// Checkpoint fault injection: a checkpoint write whose I/O fails at each of its calls in turn
// (an error, a torn write, a crash there) leaves the previous checkpoint complete, resolvable and
// restoring exactly; where the fault comes after the rename, the new one is complete instead.
TEST(Trainer, ACheckpointWriteFailingAtAnyCallLeavesThePreviousOneResumable) {
  std::vector<data::Batch> batches;
  {
    auto r = Reader(Data().test, 500);
    data::Batch b;
    while (batches.size() < 6 && *r->Next(&b)) batches.push_back(b);
  }
  const auto config = SmallConfig("dlrm");
  const std::string root = "/ckpt";
  auto predictions = [&](Trainer* t) {
    std::vector<float> p;
    EMBER_CHECK(t->Predict(batches[0], &p).ok());
    return p;
  };
  struct Run {
    std::unique_ptr<Env> mem = NewMemEnv();
    std::unique_ptr<FaultyEnv> faulty;
    std::unique_ptr<ps::InProcessClient> ps;
    LocalCollective coll;
    std::unique_ptr<Trainer> trainer;
    std::vector<float> at_a, at_b;
  };
  // Trains 3 steps, checkpoints (A), trains 3 more; `fault` then breaks the second write (B).
  auto run = [&](int nth, FaultyEnv::Fault fault, Status* write_b) {
    auto r = std::make_unique<Run>();
    r->faulty = std::make_unique<FaultyEnv>(r->mem.get());
    r->ps = std::make_unique<ps::InProcessClient>(2, r->faulty.get());
    r->trainer = std::move(Trainer::Create(config, r->ps.get(), &r->coll)).value();
    double loss;
    for (int i = 0; i < 3; ++i) EMBER_CHECK(r->trainer->TrainStep(batches[i], &loss).ok());
    EMBER_CHECK(r->trainer->SaveCheckpoint(root, "", "", r->faulty.get()).ok());
    r->at_a = predictions(r->trainer.get());
    for (int i = 3; i < 6; ++i) EMBER_CHECK(r->trainer->TrainStep(batches[i], &loss).ok());
    r->at_b = predictions(r->trainer.get());
    r->faulty->Arm(nth, fault);
    *write_b = r->trainer->SaveCheckpoint(root, "", "", r->faulty.get()).status();
    return r;
  };
  Status ok;
  const int calls = run(0, FaultyEnv::Fault::kFail, &ok)->faulty->calls();
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  ASSERT_GE(calls, 8);  // mkdir, shard files, dense files, manifest, rename, sync ...
  int kept_a = 0, got_b = 0;
  for (auto fault : {FaultyEnv::Fault::kFail, FaultyEnv::Fault::kShortWrite, FaultyEnv::Fault::kCrash}) {
    for (int nth = 1; nth <= calls; ++nth) {
      Status write_b;
      auto r = run(nth, fault, &write_b);
      // After the fault (a restart, for a crash): the newest complete checkpoint, restored.
      auto path = ResolveCheckpoint(root, r->mem.get());
      ASSERT_TRUE(path.ok()) << "call " << nth << ": " << path.status().ToString();
      ps::InProcessClient fresh(2, r->mem.get());
      LocalCollective coll;
      auto t = std::move(Trainer::Create(config, &fresh, &coll)).value();
      Status restored = t->RestoreCheckpoint(*path, true, r->mem.get());
      ASSERT_TRUE(restored.ok()) << "call " << nth << ": " << restored.ToString();
      if (*path == root + "/ckpt-3") {
        EXPECT_FALSE(write_b.ok()) << "call " << nth;
        EXPECT_EQ(t->step(), 3);
        EXPECT_EQ(predictions(t.get()), r->at_a) << "call " << nth;
        ++kept_a;
      } else {
        EXPECT_EQ(*path, root + "/ckpt-6");
        EXPECT_EQ(predictions(t.get()), r->at_b) << "call " << nth;
        ++got_b;
      }
    }
  }
  EXPECT_GE(kept_a, 3 * (calls - 1));  // every fault before the rename keeps A
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
  EXPECT_EQ(ParseDenseOptimizer("lamb").status().message(),
            "train.optimizer: unknown dense optimizer 'lamb' (expected adam, adagrad or sgd)");
}

// The first `count` batches of `path`.
std::vector<data::Batch> ReadBatches(const std::string& path, size_t batch, size_t count) {
  auto r = Reader(path, batch);
  std::vector<data::Batch> out(count);
  for (auto& b : out) EMBER_CHECK(*r->Next(&b));
  return out;
}

// Rows [begin, end) of a batch.
data::Batch Part(const data::Batch& b, size_t begin, size_t end) {
  data::Batch p;
  const size_t n = end - begin;
  p.Reset(b.num_dense, b.num_sparse, n);
  p.size = n;
  std::copy(b.labels.begin() + begin, b.labels.begin() + end, p.labels.begin());
  std::copy(b.dense.begin() + begin * b.num_dense, b.dense.begin() + end * b.num_dense, p.dense.begin());
  for (int f = 0; f < b.num_sparse; ++f) std::copy(b.field(f) + begin, b.field(f) + end, p.sparse.begin() + f * n);
  return p;
}

// Worker w (a thread, rank w of an in-process group) trains on work[w] through clients[w];
// trainers are created one after another (same initial weights). Returns the trainers.
std::vector<std::unique_ptr<Trainer>> TrainWorkers(const TrainerConfig& c, const std::vector<ps::PsClient*>& clients,
                                                   const std::vector<std::vector<data::Batch>>& work,
                                                   InProcessGroup* group, monitoring::Recorder* recorder = nullptr) {
  std::vector<std::unique_ptr<Trainer>> trainers;
  for (size_t w = 0; w < clients.size(); ++w) {
    auto t = Trainer::Create(c, clients[w], group->Member(static_cast<int>(w)), w == 0 ? recorder : nullptr);
    EMBER_CHECK(t.ok()) << t.status().ToString();
    trainers.push_back(std::move(t).value());
  }
  std::vector<std::thread> threads;
  for (size_t w = 0; w < clients.size(); ++w)
    threads.emplace_back([&, w] {
      const auto& batches = work[w];
      for (size_t i = 0; i < batches.size(); ++i) {
        double loss = 0;
        const Status st = trainers[w]->TrainStep(batches[i], i + 1 < batches.size() ? &batches[i + 1] : nullptr, &loss);
        EMBER_CHECK(st.ok()) << st.ToString();
      }
    });
  for (auto& t : threads) t.join();
  return trainers;
}

std::vector<float> Predictions(Trainer* t) {
  std::vector<float> p, y;
  auto r = Reader(Data().test, 4096);
  EMBER_CHECK(t->Evaluate(r.get(), &p, &y).ok());
  return p;
}

struct TwoServers {
  std::vector<std::unique_ptr<ps::PsServer>> servers;
  std::vector<std::string> endpoints;
  TwoServers() {
    for (int i = 0; i < 2; ++i) {
      ps::ServerOptions o = ps::testing::TestServerOptions(i, 2);
      servers.push_back(std::make_unique<ps::PsServer>(o));
      EMBER_CHECK(servers.back()->Start().ok());
      endpoints.push_back("127.0.0.1:" + std::to_string(servers.back()->port()));
    }
  }
  // Worker `worker`'s connections (clocked pushes must come from their own worker's connection).
  std::unique_ptr<ps::RemoteClient> Client(uint32_t worker = 0) {
    return std::move(ps::testing::ConnectTest(endpoints, worker)).value();
  }
};

TrainerConfig ModeConfig(const std::string& mode, int64_t staleness = 0) {
  auto c = SmallConfig("dlrm");
  c.embedding.method = embedding::Method::kUnified;
  c.embedding.rows = 3000;
  c.sync.mode = *ParseTrainMode(mode);
  c.sync.staleness = staleness;
  return c;
}

// The device pipeline with the CPU standing in for the GPU: rows copied into a separate leaf,
// the model reading the copy, gradients copied back for the push. The same steps bit for bit as
// reading the PS's buffer directly (what a GPU run must match up to its arithmetic).
TEST(Trainer, StagedRowsTrainExactlyLikeDirectRows) {
  auto c = ModeConfig("sync");
  ps::InProcessClient direct_ps(2), staged_ps(2);
  LocalCollective coll;
  auto direct = Trainer::Create(c, &direct_ps, &coll);
  c.stage_rows = true;
  auto staged = Trainer::Create(c, &staged_ps, &coll);
  ASSERT_TRUE(direct.ok() && staged.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  for (Trainer* t : {direct->get(), staged->get()}) {
    auto r = Reader(Data().test, 512);
    ASSERT_TRUE(t->TrainEpoch(r.get(), 0, 1, quiet).ok());
  }
  EXPECT_EQ(Predictions(direct->get()), Predictions(staged->get()));
}

// train.device: "auto" is the CPU without CUDA; "cuda" there is an error that says why.
TEST(Trainer, DeviceResolvesOrSaysWhyNot) {
  EXPECT_EQ(ResolveDevice(DeviceKind::kCpu)->type(), torch::kCPU);
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible: the CPU-build errors do not apply";
  EXPECT_EQ(ResolveDevice(DeviceKind::kAuto)->type(), torch::kCPU);
  auto cuda = ResolveDevice(DeviceKind::kCuda);
  ASSERT_FALSE(cuda.ok());
  EXPECT_NE(cuda.status().message().find("train.device = \"cuda\": no CUDA device here"), std::string::npos);
  auto c = SmallConfig("dlrm");
  c.device = DeviceKind::kCuda;
  ps::InProcessClient ps(1);
  LocalCollective coll;
  EXPECT_EQ(Trainer::Create(c, &ps, &coll).status().message(), cuda.status().message());
}

// On a GPU (a CUDA LibTorch and a visible device; skipped elsewhere): the dense model on CUDA,
// rows staged through pinned buffers, trains what the CPU trains up to float arithmetic.
TEST(Trainer, CudaTrainsLikeTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto c = ModeConfig("sync");
  ps::InProcessClient cpu_ps(2), gpu_ps(2);
  LocalCollective coll;
  auto cpu = Trainer::Create(c, &cpu_ps, &coll);
  c.device = DeviceKind::kCuda;
  auto gpu = Trainer::Create(c, &gpu_ps, &coll);
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status().ToString();
  ProgressOptions quiet;
  quiet.enabled = false;
  for (Trainer* t : {cpu->get(), gpu->get()}) {
    auto r = Reader(Data().test, 512);
    ASSERT_TRUE(t->TrainEpoch(r.get(), 0, 1, quiet).ok());
  }
  const auto a = Predictions(cpu->get()), b = Predictions(gpu->get());
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::fabs(double{a[i]} - b[i]));
  EXPECT_LT(max_diff, 1e-3);
  std::printf("max |p_cpu - p_cuda| after 20 steps: %.3g\n", max_diff);
  // A checkpoint written on the GPU resumes on the CPU and predicts the same.
  const std::string root = testing_util::TempDir("cuda_ckpt");
  auto path = (*gpu)->SaveCheckpoint(root, "");
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  c.device = DeviceKind::kCpu;
  ps::InProcessClient back_ps(2);
  auto back = Trainer::Create(c, &back_ps, &coll);
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE((*back)->RestoreCheckpoint(*path).ok());
  const auto p = Predictions(back->get());
  double resumed = 0;
  for (size_t i = 0; i < p.size(); ++i) resumed = std::max(resumed, std::fabs(double{p[i]} - b[i]));
  EXPECT_LT(resumed, 1e-5);
}

// The same training over 2 PS servers (loopback TCP, servers on threads) and over 2 in-process
// shards: the same rows on the same shards, so bit-identical predictions.
// The same training over 2 PS servers (loopback TCP, servers on threads) and over 2 in-process
// shards: the same rows on the same shards, so bit-identical predictions.
TEST(Trainer, RemoteShardsTrainExactlyLikeInProcessShards) {
  TwoServers servers;
  auto remote = servers.Client();
  ps::InProcessClient local(2);
  const auto c = ModeConfig("sync");
  LocalCollective coll;
  auto a = Trainer::Create(c, remote.get(), &coll);
  auto b = Trainer::Create(c, &local, &coll);
  ASSERT_TRUE(a.ok() && b.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  for (Trainer* t : {a->get(), b->get()}) {
    auto r = Reader(Data().test, 512);  // 10000 rows: 20 steps
    ASSERT_TRUE(t->TrainEpoch(r.get(), 0, 1, quiet).ok());
  }
  EXPECT_EQ(Predictions(a->get()), Predictions(b->get()));
  EXPECT_GT(remote->bytes_sent(), 0u);
}

// Sync mode sums a step's pushes from all workers and applies one update scaled by 1/W, and
// the dense all-reduce does the same: two workers on identical batches take exactly the steps
// of one worker on those batches ((g + g) / 2 == g in floating point), through remote servers
// and through shared in-process shards alike. Async applies each push: two updates per step.
TEST(Trainer, SyncWorkersApplyOneAveragedUpdatePerStep) {
  const auto batches = ReadBatches(Data().train, 256, 12);
  ps::InProcessClient alone(2);
  LocalCollective one;
  auto ref = Trainer::Create(ModeConfig("sync"), &alone, &one);
  ASSERT_TRUE(ref.ok());
  for (size_t i = 0; i < batches.size(); ++i) {
    double loss;
    ASSERT_TRUE((*ref)->TrainStep(batches[i], i + 1 < batches.size() ? &batches[i + 1] : nullptr, &loss).ok());
  }
  const auto expected = Predictions(ref->get());

  TwoServers remote;
  auto c0 = remote.Client(0), c1 = remote.Client(1);
  InProcessGroup g1(2);
  auto sync_remote = TrainWorkers(ModeConfig("sync"), {c0.get(), c1.get()}, {batches, batches}, &g1);
  EXPECT_EQ(Predictions(sync_remote[0].get()), expected);
  EXPECT_EQ(Predictions(sync_remote[1].get()), expected);

  ps::InProcessClient shared(2);
  InProcessGroup g2(2);
  auto sync_local = TrainWorkers(ModeConfig("sync"), {&shared, &shared}, {batches, batches}, &g2);
  EXPECT_EQ(Predictions(sync_local[1].get()), expected);

  ps::InProcessClient shared_async(2);
  InProcessGroup g3(2);
  auto async = TrainWorkers(ModeConfig("async"), {&shared_async, &shared_async}, {batches, batches}, &g3);
  EXPECT_NE(Predictions(async[0].get()), expected);
}

// Two workers on the halves of each batch against one worker on whole batches: the same
// updates up to the order in which per-key gradients are summed (worker partial sums, then
// across workers), so predictions agree to float rounding, not bit for bit.
TEST(Trainer, SyncWorkersOnHalvesMatchOneWorkerOnWholeBatches) {
  const auto whole = ReadBatches(Data().train, 512, 10);
  std::vector<std::vector<data::Batch>> halves(2);
  for (const auto& b : whole) {
    halves[0].push_back(Part(b, 0, 256));
    halves[1].push_back(Part(b, 256, 512));
  }
  ps::InProcessClient alone(2);
  InProcessGroup solo(1);
  auto ref = TrainWorkers(ModeConfig("sync"), {&alone}, {whole}, &solo);
  TwoServers remote;
  auto c0 = remote.Client(0), c1 = remote.Client(1);
  InProcessGroup pair(2);
  auto two = TrainWorkers(ModeConfig("sync"), {c0.get(), c1.get()}, halves, &pair);
  const auto a = Predictions(ref[0].get()), b = Predictions(two[0].get());
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::fabs(double{a[i]} - b[i]));
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_EQ(two[0]->step(), 10);
  std::printf("max |p_one - p_two| after 10 steps: %.3g\n", max_diff);
}

// The staleness a worker reads at (steps of the slowest worker's pushes its rows lack) and the
// bound, per mode: sync reads exactly the previous step; bounded (s = 1) and async prefetch the
// next batch's rows during the step, a step before its own push.
TEST(Trainer, StalenessGaugesFollowTheMode) {
  const auto batches = ReadBatches(Data().train, 256, 6);
  struct Case {
    std::string mode;
    int64_t staleness;
    double seen, bound;
  };
  for (const Case& k : {Case{"sync", 0, 0, 0}, Case{"bounded", 1, 1, 1}, Case{"async", 0, 1, HUGE_VAL}}) {
    TwoServers remote;
    auto c0 = remote.Client(0), c1 = remote.Client(1);
    InProcessGroup group(2);
    monitoring::MemoryRecorder rec;
    auto t = TrainWorkers(ModeConfig(k.mode, k.staleness), {c0.get(), c1.get()}, {batches, batches}, &group, &rec);
    EXPECT_EQ(rec.Gauge("train_staleness_steps"), k.seen) << k.mode;
    EXPECT_EQ(rec.Gauge("train_staleness_bound"), k.bound) << k.mode;
    EXPECT_EQ(rec.ObservationCount("ps_pull_seconds", {{"phase", "train"}}), 6u) << k.mode;
  }
  auto bad = ModeConfig("sync", 2);
  ps::InProcessClient ps(1);
  LocalCollective coll;
  auto t = Trainer::Create(bad, &ps, &coll);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("train.staleness = 2 needs train.mode = \"bounded\""), std::string::npos)
      << t.status().ToString();
  EXPECT_EQ(ParseTrainMode("eventual").status().message(),
            "train.mode: unknown mode 'eventual' (expected sync, bounded or async)");
}

// Feature admission end to end: rare values train a shared per-field row until admitted, the
// tables hold only admitted values, and a never-admitted value reads exactly that shared row.
TEST(TrainerAdmission, RareValuesShareTheirFieldsFallbackRow) {
  uint64_t rows[2] = {0, 0};
  for (uint32_t k : {1u, 5u}) {
    ps::InProcessClient ps(2);
    LocalCollective coll;
    monitoring::MemoryRecorder rec;
    TrainerConfig c = SmallConfig("dlrm");
    c.embedding.lifecycle.admit_after = k;
    auto t = Trainer::Create(c, &ps, &coll, &rec);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ProgressOptions quiet;
    quiet.enabled = false;
    auto r = Reader(Data().train, 256);
    ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, quiet).ok());
    auto stats = ps.Stats();
    ASSERT_TRUE(stats.ok());
    uint64_t admitted = 0, fallback_rows = 0;
    for (const auto& s : *stats) {
      if (s.table < 26) rows[k == 5] += s.rows;
      if (s.table == 26) fallback_rows = s.rows;
      admitted += s.admitted;
    }
    auto test = Reader(Data().test, 4096);
    auto eval = (*t)->Evaluate(test.get());
    ASSERT_TRUE(eval.ok());
    EXPECT_GT(eval->auc, 0.70) << "k " << k;
    if (k == 1) {
      EXPECT_EQ(stats->size(), 26u);  // no fallback table without admission
      continue;
    }
    EXPECT_EQ(stats->size(), 27u);
    EXPECT_EQ(fallback_rows, 26u);  // one out-of-vocabulary row per field, each trained
    EXPECT_EQ(admitted, rows[1]);
    EXPECT_GT(rec.Counter("embedding_fallback_lookups_total", {{"phase", "train"}}), 0.0);
    EXPECT_GT(rec.Gauge("embedding_fallback_ratio"), 0.0);
    // Two different never-seen values with the same dense features score the same: both read
    // their field's fallback row.
    data::Batch b;
    b.Reset(13, 26, 2);
    b.size = 2;
    b.labels.assign(2, 0.0f);
    b.dense.assign(26, 0.5f);
    b.sparse.resize(52);
    for (int f = 0; f < 26; ++f) {
      b.sparse[f * 2] = 0xabc000000ull + f;
      b.sparse[f * 2 + 1] = 0xdef000000ull + f;
    }
    std::vector<float> p;
    ASSERT_TRUE((*t)->Predict(b, &p).ok());
    EXPECT_EQ(p[0], p[1]);
  }
  // A sighting is a training batch carrying the value: exactly the values in >= 5 batches got rows.
  std::map<std::pair<int, uint64_t>, int> batches;
  auto r = Reader(Data().train, 256);
  data::Batch b;
  while (*r->Next(&b)) {
    std::set<std::pair<int, uint64_t>> in;
    for (int f = 0; f < 26; ++f)
      for (size_t i = 0; i < b.size; ++i) in.emplace(f, b.field(f)[i]);
    for (const auto& fv : in) ++batches[fv];
  }
  uint64_t expected = 0, all = 0;
  for (const auto& [fv, n] : batches) {
    expected += n >= 5;
    ++all;
  }
  EXPECT_EQ(rows[0], all);
  EXPECT_EQ(rows[1], expected);
  EXPECT_LT(rows[1], rows[0]);
}

}  // namespace
}  // namespace ember::workers
