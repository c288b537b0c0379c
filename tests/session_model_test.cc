// Session recommendation: ranking metrics against brute force, the multi-task loss weighting,
// models that train (M2TRec and the ID baseline beat random Recall@20 by a wide margin, M2TRec
// scores cold items), two workers in one process staying in step, and checkpoints.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "ember/data/sessions.h"
#include "ember/ps/in_process.h"
#include "ember/workers/session_trainer.h"
#include "test_util.h"

namespace ember::workers {
namespace {

TEST(SessionMetrics, RanksMatchBruteForceWithPessimisticTies) {
  torch::manual_seed(3);
  // Scores rounded to one decimal: many ties.
  auto scores = (torch::randn({16, 40}) * 3).round() / 10;
  std::mt19937 rng(1);
  std::vector<int64_t> targets(16);
  for (auto& t : targets) t = 1 + static_cast<int64_t>(rng() % 39);
  scores[0][5] = 100;  // padding column outscoring everything: never counted
  const auto ranks = TargetRanks(scores, targets);
  auto acc = scores.accessor<float, 2>();
  for (size_t b = 0; b < targets.size(); ++b) {
    uint64_t brute = 0;
    for (int64_t j = 1; j < 40; ++j) brute += acc[b][j] >= acc[b][targets[b]];
    EXPECT_EQ(ranks[b], brute) << "example " << b;
  }
  scores[3][0] = 1e9;
  EXPECT_EQ(TargetRanks(scores, targets)[3], ranks[3]);
  // Recall@20 and MRR@20 of ranks 1, 2, 25: 2/3 and (1 + 1/2 + 0) / 3.
  RankMetrics m;
  for (uint64_t r : {1, 2, 25}) AddRank(r, 20, &m);
  FinishRanks(&m);
  EXPECT_EQ(m.n, 3u);
  EXPECT_DOUBLE_EQ(m.recall, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.mrr, 0.5);
}

TEST(SessionMetrics, MultiTaskLossWeighsHeadsAndIgnoresUnknownCategories) {
  auto item = torch::tensor({{2.0f, 0.0f, -1.0f}, {0.5f, 0.5f, 3.0f}});
  auto target = torch::tensor({0, 2}, torch::kLong);
  auto head = torch::tensor({{1.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 4.0f}});
  auto head_target = torch::tensor({0, 1}, torch::kLong);  // row 0: unknown (0) -> ignored
  const double item_ce = torch::nn::functional::cross_entropy(item, target).item<double>();
  const double head_ce =
      torch::nn::functional::cross_entropy(head.slice(0, 1, 2), head_target.slice(0, 1, 2)).item<double>();
  EXPECT_NEAR(models::SessionLoss(item, target, {head}, {head_target}, {0.0}).item<double>(), item_ce, 1e-6);
  EXPECT_NEAR(models::SessionLoss(item, target, {head}, {head_target}, {0.5}).item<double>(), item_ce + 0.5 * head_ce,
              1e-6);
  EXPECT_NEAR(models::SessionLoss(item, target, {head}, {head_target}, {2.0}).item<double>(), item_ce + 2.0 * head_ce,
              1e-6);
  // By hand: head row 1 -> class 1 of logits (0, 0, 4): log(2 + e^4) - 0.
  EXPECT_NEAR(head_ce, std::log(2 + std::exp(4.0)), 1e-5);
}

data::SessionData SmallSessions(bool item_id_attribute = false) {
  const std::string dir = testing_util::TempDir("sessions_model");
  data::SyntheticSessionOptions o;
  o.sessions = 4000;
  o.items = 400;
  o.categories = 8;
  o.subcategories = 4;
  o.brands = 20;
  const std::string log = dir + "/sessions.tsv", items = dir + "/items.tsv";
  EXPECT_TRUE(data::WriteSyntheticSessions(o, log, items).ok());
  data::SessionProtocol p;
  p.format = "yoochoose";
  p.test_days = o.test_days;
  p.item_id_attribute = item_id_attribute;
  return std::move(data::LoadSessions(log, "", items, p)).value();
}

SessionTrainerConfig SmallConfig(const std::string& model) {
  SessionTrainerConfig c;
  c.model.kind = *models::ParseModelKind(model);
  c.model.layers = 1;
  c.model.heads = 2;
  c.model.max_length = 20;
  c.model.dropout = 0.1;
  c.embedding.method = embedding::Method::kFull;
  c.embedding.dim = model == "m2trec" ? 8 : 32;
  c.embedding.optimizer.kind = embedding::OptimizerKind::kAdagrad;
  c.embedding.optimizer.lr = 0.05f;
  if (model == "m2trec") c.heads = {"category"};
  c.batch_size = 64;
  c.dense_lr = 3e-3;
  return c;
}

TEST(SessionTrainer, ModelsTrainAndBeatRandomM2TRecScoresColdItems) {
  torch::set_num_threads(1);
  const auto d = SmallSessions();
  const double random_recall = 20.0 / d.num_items();
  ProgressOptions quiet;
  quiet.enabled = false;
  double cold[2] = {0, 0};
  int i = 0;
  for (const std::string model : {"m2trec", "sasrec"}) {
    ps::InProcessClient ps(2);
    LocalCollective collective;
    auto t = SessionTrainer::Create(SmallConfig(model), &d, &ps, &collective, nullptr);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const double before = *(*t)->BatchLoss({d.train.begin(), d.train.begin() + 64});
    for (int e = 0; e < 3; ++e) ASSERT_TRUE((*t)->TrainEpoch(d.train, e, 3, quiet).ok());
    const double after = *(*t)->BatchLoss({d.train.begin(), d.train.begin() + 64});
    EXPECT_LT(after, before - 0.5) << model;
    auto ev = (*t)->Evaluate(d.test_sessions, d.test);
    ASSERT_TRUE(ev.ok());
    EXPECT_EQ(ev->all.n, d.test.size());
    EXPECT_EQ(ev->cold.n, d.cold_examples);
    EXPECT_GT(ev->all.recall, 5 * random_recall) << model << " Recall@20 " << ev->all.recall;
    EXPECT_GT(ev->all.mrr, 0.0);
    cold[i++] = ev->cold.recall;
  }
  // Cold items: metadata gives M2TRec a representation; the ID baseline's rows never trained.
  EXPECT_GT(cold[0], 5 * random_recall);
  EXPECT_GT(cold[0], cold[1] + 0.1);
}

// The hybrid (the item id as one more attribute): a cold item's id row never learnt from a session
// (only pushed down as a negative), so it reads zeros and the item is scored from its metadata.
TEST(SessionTrainer, HybridLeavesColdItemsToTheirMetadata) {
  torch::set_num_threads(1);
  const auto d = SmallSessions(/*item_id_attribute=*/true);
  ASSERT_EQ(d.items.attribute_names.back(), "item_id");
  ps::InProcessClient ps(1);
  LocalCollective collective;
  auto t = SessionTrainer::Create(SmallConfig("m2trec"), &d, &ps, &collective, nullptr);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ProgressOptions quiet;
  quiet.enabled = false;
  for (int e = 0; e < 2; ++e) ASSERT_TRUE((*t)->TrainEpoch(d.train, e, 2, quiet).ok());
  auto ev = (*t)->Evaluate(d.test_sessions, d.test);
  ASSERT_TRUE(ev.ok());
  ASSERT_GT(ev->cold.n, 0u);
  EXPECT_GT(ev->cold.recall, 5 * 20.0 / d.num_items()) << ev->cold.recall;
}

// The sampled softmax (64 shared uniform candidates plus the batch's targets) trains too; the
// evaluation still ranks the whole catalogue.
TEST(SessionTrainer, SampledSoftmaxTrains) {
  torch::set_num_threads(1);
  const auto d = SmallSessions();
  ps::InProcessClient ps(1);
  LocalCollective collective;
  auto c = SmallConfig("m2trec");
  c.candidates = 64;
  auto t = SessionTrainer::Create(c, &d, &ps, &collective, nullptr);
  ASSERT_TRUE(t.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  for (int e = 0; e < 2; ++e) ASSERT_TRUE((*t)->TrainEpoch(d.train, e, 2, quiet).ok());
  auto ev = (*t)->Evaluate(d.test_sessions, d.test);
  ASSERT_TRUE(ev.ok());
  EXPECT_GT(ev->all.recall, 5 * 20.0 / d.num_items()) << ev->all.recall;
}

TEST(SessionTrainer, ConfigErrorsNameTheKey) {
  const auto d = SmallSessions();
  ps::InProcessClient ps(1);
  LocalCollective collective;
  auto c = SmallConfig("m2trec");
  c.heads = {"colour"};
  auto bad_head = SessionTrainer::Create(c, &d, &ps, &collective, nullptr);
  ASSERT_FALSE(bad_head.ok());
  EXPECT_NE(bad_head.status().message().find("model.heads: \"colour\" is not an item attribute"), std::string::npos);
  c = SmallConfig("m2trec");
  c.model.heads = 3;  // 4 attributes x 8 = 32 wide
  auto bad_heads = SessionTrainer::Create(c, &d, &ps, &collective, nullptr);
  ASSERT_FALSE(bad_heads.ok());
  EXPECT_NE(
      bad_heads.status().message().find("model.attention_heads: 3 attention heads do not divide the item width 32"),
      std::string::npos);
  c = SmallConfig("m2trec");
  c.embedding.method = embedding::Method::kOptEmbed;
  EXPECT_FALSE(SessionTrainer::Create(c, &d, &ps, &collective, nullptr).ok());
}

// Two workers in one process (threads, an in-process all-reduce, shared shards), sync mode:
// their dense models stay identical, and each trains on its half of the batches.
TEST(SessionTrainer, TwoWorkersStayInStep) {
  const auto d = SmallSessions();
  std::vector<data::SessionExample> train(d.train.begin(), d.train.begin() + 1000);
  ps::InProcessClient ps(2);
  InProcessGroup group(2);
  std::vector<std::unique_ptr<SessionTrainer>> trainers(2);
  for (int r = 0; r < 2; ++r) {
    auto t = SessionTrainer::Create(SmallConfig("m2trec"), &d, &ps, group.Member(r), nullptr);
    ASSERT_TRUE(t.ok());
    trainers[r] = std::move(t).value();
  }
  std::vector<EpochStats> stats(2);
  std::vector<std::thread> threads;
  ProgressOptions quiet;
  quiet.enabled = false;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      auto s = trainers[r]->TrainEpoch(train, 0, 1, quiet);
      ASSERT_TRUE(s.ok());
      stats[r] = *s;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(stats[0].samples + stats[1].samples, 1000u);
  EXPECT_EQ(stats[0].steps, stats[1].steps);
  auto p0 = trainers[0]->model()->parameters(), p1 = trainers[1]->model()->parameters();
  ASSERT_EQ(p0.size(), p1.size());
  for (size_t i = 0; i < p0.size(); ++i) EXPECT_TRUE(torch::equal(p0[i], p1[i])) << "parameter " << i;
}

// A checkpoint taken mid-epoch, restored into a fresh trainer on fresh shards, finishes the epoch
// exactly as the uninterrupted trainer did (step seeds, rows, dense model and optimizer restored);
// a checkpoint of another model or of another catalogue is refused, naming what differs.
TEST(SessionTrainer, CheckpointMidEpochResumesExactly) {
  torch::set_num_threads(1);
  const auto d = SmallSessions();
  std::vector<data::SessionExample> train(d.train.begin(), d.train.begin() + 1280);  // 20 steps of 64
  const std::string root = testing_util::TempDir("session_ckpt");
  ProgressOptions quiet;
  quiet.enabled = false;
  ps::InProcessClient ps(2);
  LocalCollective collective;
  auto a = std::move(SessionTrainer::Create(SmallConfig("m2trec"), &d, &ps, &collective, nullptr)).value();
  SessionRunState state;
  state.best_epoch = 1;
  state.best_valid = 0.25;
  state.best_test.all = {100, 0.5, 0.125};
  std::string path;
  auto at_8 = [&](uint64_t steps_done) -> Status {
    if (steps_done != 8) return Status::Ok();
    state.position = {0, steps_done * 64, {}};
    auto p = a->SaveCheckpoint(root, "# config", state);
    if (!p.ok()) return p.status();
    path = *p;
    return Status::Ok();
  };
  ASSERT_TRUE(a->TrainEpoch(train, 0, 1, quiet, 0, at_8).ok());
  EXPECT_EQ(path, root + "/ckpt-8");
  const auto full = *a->Evaluate(d.test_sessions, d.test);

  ps::InProcessClient ps2(3);  // another shard count: rows are re-placed
  auto b = std::move(SessionTrainer::Create(SmallConfig("m2trec"), &d, &ps2, &collective, nullptr)).value();
  auto restored = b->RestoreCheckpoint(path, true);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(b->step(), 8);
  EXPECT_EQ(restored->position.epoch, 0);
  EXPECT_EQ(restored->position.examples, 512u);
  EXPECT_EQ(restored->best_epoch, 1);
  EXPECT_DOUBLE_EQ(restored->best_valid, 0.25);
  EXPECT_EQ(restored->best_test.all.n, 100u);
  EXPECT_DOUBLE_EQ(restored->best_test.all.mrr, 0.125);
  EXPECT_EQ(restored->items, d.num_items());
  ASSERT_TRUE(b->TrainEpoch(train, 0, 1, quiet, restored->position.examples / 64).ok());
  EXPECT_EQ(b->step(), 20);
  const auto resumed = *b->Evaluate(d.test_sessions, d.test);
  EXPECT_EQ(resumed.all.recall, full.all.recall);
  EXPECT_EQ(resumed.all.mrr, full.all.mrr);
  EXPECT_EQ(resumed.cold.mrr, full.cold.mrr);

  ps::InProcessClient ps3(1);
  auto ids = std::move(SessionTrainer::Create(SmallConfig("sasrec"), &d, &ps3, &collective, nullptr)).value();
  auto other_model = ids->RestoreCheckpoint(path, true);
  ASSERT_FALSE(other_model.ok());
  EXPECT_NE(other_model.status().message().find("a checkpoint of model \"m2trec\", not \"sasrec\""), std::string::npos)
      << other_model.status().ToString();
  auto fewer = d;  // a catalogue whose brand attribute has one value less
  fewer.items.cardinality[2] -= 1;
  ps::InProcessClient ps4(1);
  auto c = std::move(SessionTrainer::Create(SmallConfig("m2trec"), &fewer, &ps4, &collective, nullptr)).value();
  auto other_catalogue = c->RestoreCheckpoint(path, true);
  ASSERT_FALSE(other_catalogue.ok());
  EXPECT_NE(other_catalogue.status().message().find("the data files or the data.* protocol keys changed"),
            std::string::npos)
      << other_catalogue.status().ToString();
}

}  // namespace
}  // namespace ember::workers
