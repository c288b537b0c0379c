// Each CTR model against a planted structure it is built for, next to a model that lacks the
// structure (same data, same training): DCN-v2 a multiplicative cross of two dense features, FM
// and Wide & Deep pairwise interactions of two fields, the FTRL first-order weights a rare-value
// effect; plus the models' shapes and their refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <tuple>

#include "../workers/fused_adam.h"
#include "ember/embedding/lookup.h"
#include "ember/embedding/method.h"
#include "ember/models/ctr_model.h"
#include "ember/models/dense_linear.h"
#include "ember/models/fused_ops.h"
#include "ember/ps/in_process.h"
#include "ember/workers/trainer.h"

namespace ember::workers {
namespace {

// In-memory batches (the planted data), read in order.
class VectorReader final : public data::BatchReader {
 public:
  explicit VectorReader(const std::vector<data::Batch>* batches) : batches_(batches) {}
  Result<bool> Next(data::Batch* b) override {
    if (i_ >= batches_->size()) {
      b->size = 0;
      return false;
    }
    *b = (*batches_)[i_++];
    return true;
  }
  double Progress() const override { return batches_->empty() ? 1.0 : double(i_) / batches_->size(); }
  uint64_t bad_lines() const override { return 0; }
  int num_dense() const override { return batches_->front().num_dense; }
  int num_sparse() const override { return batches_->front().num_sparse; }

 private:
  const std::vector<data::Batch>* batches_;
  size_t i_ = 0;
};

// `rows` examples in batches of 256: dense ~ N(0, 1) (2 columns), fields uniform over `vocab`
// ids; the label is Bernoulli(sigmoid(logit(dense, ids))).
template <typename Logit>
std::vector<data::Batch> Planted(int rows, int num_sparse, uint64_t vocab, uint64_t seed, Logit logit) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<double> unit;
  std::vector<data::Batch> out;
  for (int start = 0; start < rows; start += 256) {
    data::Batch b;
    const size_t n = static_cast<size_t>(std::min(256, rows - start));
    b.Reset(2, num_sparse, n);
    b.size = n;
    std::vector<uint64_t> ids(static_cast<size_t>(num_sparse));
    for (size_t i = 0; i < n; ++i) {
      const float d0 = nd(rng), d1 = nd(rng);
      b.dense[i * 2] = d0;
      b.dense[i * 2 + 1] = d1;
      for (int f = 0; f < num_sparse; ++f) {
        ids[static_cast<size_t>(f)] = rng() % vocab;
        b.sparse[static_cast<size_t>(f) * n + i] = ids[static_cast<size_t>(f)];
      }
      b.labels[i] = unit(rng) < 1.0 / (1.0 + std::exp(-logit(d0, d1, ids))) ? 1.0f : 0.0f;
    }
    out.push_back(std::move(b));
  }
  return out;
}

TrainerConfig Config(const std::string& model, int num_sparse) {
  TrainerConfig c;
  c.model.kind = *models::ParseModelKind(model);
  c.model.num_dense = 2;
  c.model.bottom_mlp = {16};
  c.model.top_mlp = {32};
  c.embedding.dim = 8;
  c.dense_lr = 3e-3;
  for (int f = 0; f < num_sparse; ++f) c.fields.push_back({"C" + std::to_string(f + 1), 0});
  return c;
}

double TrainAndScore(const TrainerConfig& c, const std::vector<data::Batch>& train,
                     const std::vector<data::Batch>& test, int epochs) {
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  EMBER_CHECK(t.ok()) << t.status().ToString();
  ProgressOptions quiet;
  quiet.enabled = false;
  for (int e = 0; e < epochs; ++e) {
    VectorReader r(&train);
    auto stats = (*t)->TrainEpoch(&r, e, epochs, quiet);
    EMBER_CHECK(stats.ok()) << stats.status().ToString();
  }
  VectorReader r(&test);
  auto eval = (*t)->Evaluate(&r);
  EMBER_CHECK(eval.ok()) << eval.status().ToString();
  return eval->auc;
}

TEST(CtrModels, DcnV2LearnsAMultiplicativeCrossThatLrCannot) {
  auto logit = [](float d0, float d1, const std::vector<uint64_t>&) { return 3.0 * d0 * d1; };
  const auto train = Planted(30000, 2, 10, 1, logit), test = Planted(8000, 2, 10, 2, logit);
  TrainerConfig dcn = Config("dcn_v2", 2);
  dcn.model.cross_layers = 1;
  dcn.model.top_mlp = {};  // the cross layer alone: x0 * (W x0 + b) + x0 holds d0 * d1
  const double dcn_auc = TrainAndScore(dcn, train, test, 3);
  const double lr_auc = TrainAndScore(Config("lr", 2), train, test, 3);
  std::printf("product of two dense features: dcn_v2 (1 cross layer, no MLP) AUC %.4f, lr %.4f\n", dcn_auc, lr_auc);
  EXPECT_GT(dcn_auc, 0.80);
  EXPECT_LT(lr_auc, 0.56);  // the product is uncorrelated with either feature
}

TEST(CtrModels, ParallelAndLowRankCrossesLearnTheCrossToo) {
  auto logit = [](float d0, float d1, const std::vector<uint64_t>&) { return 3.0 * d0 * d1; };
  const auto train = Planted(30000, 2, 10, 3, logit), test = Planted(8000, 2, 10, 4, logit);
  TrainerConfig par = Config("dcn_v2", 2);
  par.model.cross_structure = models::CrossStructure::kParallel;
  par.model.cross_rank = 4;
  const double auc = TrainAndScore(par, train, test, 3);
  std::printf("parallel, rank-4 dcn_v2 AUC %.4f\n", auc);
  EXPECT_GT(auc, 0.80);
}

// A pairwise interaction of two fields' values (an XOR of their parities): no first-order
// signal, so LR stays at chance while FM and Wide & Deep's deep part learn it.
TEST(CtrModels, FmAndWideDeepLearnAFieldInteractionThatLrCannot) {
  auto logit = [](float, float, const std::vector<uint64_t>& ids) {
    return ((ids[0] % 2) ^ (ids[1] % 2)) ? 2.0 : -2.0;
  };
  const auto train = Planted(40000, 3, 20, 5, logit), test = Planted(8000, 3, 20, 6, logit);
  const double fm = TrainAndScore(Config("fm", 3), train, test, 3);
  const double wd = TrainAndScore(Config("wide_deep", 3), train, test, 3);
  const double lr = TrainAndScore(Config("lr", 3), train, test, 3);
  std::printf("field interaction: fm AUC %.4f, wide_deep %.4f, lr %.4f\n", fm, wd, lr);
  EXPECT_GT(fm, 0.80);
  EXPECT_GT(wd, 0.80);
  EXPECT_LT(lr, 0.56);
}

// First-order effects of many values seen a few times each: the FTRL-trained weights of LR
// recover them over epochs (AUC grows and ends near the planted data's own limit).
TEST(CtrModels, FtrlFirstOrderWeightsLearnManyValuesEffects) {
  std::vector<double> effect(5000);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd;
  for (auto& e : effect) e = 1.5 * nd(rng);
  auto logit = [&](float, float, const std::vector<uint64_t>& ids) { return effect[ids[0]]; };
  const auto train = Planted(50000, 1, 5000, 7, logit), test = Planted(10000, 1, 5000, 8, logit);
  const double one = TrainAndScore(Config("lr", 1), train, test, 1);
  const double four = TrainAndScore(Config("lr", 1), train, test, 4);
  std::printf("5000 values seen 10 times each: lr 1 epoch AUC %.4f, 4 epochs %.4f\n", one, four);
  EXPECT_GT(one, 0.70);
  EXPECT_GT(four, one + 0.005);
}

// model.first_order: DLRM and DCN-v2 read a 1-wide first-order group beside their rows, and its
// values (with a dense linear term) add to the logit: the output moves by exactly their sum.
TEST(CtrModels, FirstOrderWeightsAddToDlrmAndDcnV2Logits) {
  for (const char* name : {"dlrm", "dcn_v2"}) {
    models::CtrModelConfig mc = Config(name, 3).model;
    mc.num_fields = 3;
    mc.embedding_dim = 8;
    mc.first_order = true;
    auto groups = models::EmbeddingGroupsOf(mc);
    ASSERT_EQ(groups.size(), 2u) << name;
    EXPECT_EQ(groups[1].dim, 1);
    EXPECT_TRUE(groups[1].first_order);
    auto model = models::MakeCtrModel(mc);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    const auto dense = torch::randn({4, 2}), rows = torch::randn({4, 3 * 8}), linear = torch::randn({4, 3});
    auto with = (*model)->Forward(dense, {{rows, {8, 8, 8}}, {linear, {1, 1, 1}}});
    auto without = (*model)->Forward(dense, {{rows, {8, 8, 8}}, {torch::zeros({4, 3}), {1, 1, 1}}});
    EXPECT_TRUE(torch::allclose(with - without, linear.sum(1), 1e-5, 1e-5)) << name;
    // Without the option the model reads one group.
    mc.first_order = false;
    EXPECT_EQ(models::EmbeddingGroupsOf(mc).size(), 1u);
  }
  // A trainer builds and describes the second group (exports and serving rebuild it).
  TrainerConfig c = Config("dlrm", 3);
  c.model.first_order = true;
  ps::InProcessClient ps(1);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const auto d = (*t)->Describe();
  ASSERT_EQ(d.groups.size(), 2u);
  EXPECT_TRUE(d.first_order);
  EXPECT_EQ(d.groups[1].dim, 1);
  auto back = embedding::ModelDescription::FromJson(d.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->first_order);
}

// train.reset_rows: the embedding group's rows restart at their initial values, the first-order
// weights (FTRL) and the dense model carry on.
TEST(CtrModels, ResetRowsRestartsTheEmbeddingsButNotTheFirstOrderWeights) {
  auto logit = [](float d0, float, const std::vector<uint64_t>& ids) { return d0 + (ids[0] % 2 ? 1.0 : -1.0); };
  const auto train = Planted(4000, 2, 50, 11, logit);
  ps::InProcessClient ps(2), fresh_ps(2);
  LocalCollective coll;
  const TrainerConfig c = Config("wide_deep", 2);
  auto t = Trainer::Create(c, &ps, &coll);
  ASSERT_TRUE(t.ok());
  ProgressOptions quiet;
  quiet.enabled = false;
  VectorReader r(&train);
  ASSERT_TRUE((*t)->TrainEpoch(&r, 0, 1, quiet).ok());
  // Table 0 (field C1 of the embedding group) and table 2 (C1's first-order weights).
  std::vector<uint64_t> main_keys, wide_keys;
  for (uint64_t id = 0; id < 50; ++id) {
    main_keys.push_back(embedding::MakeKey(0, id));
    wide_keys.push_back(embedding::MakeKey(2, id));
  }
  auto pull = [](ps::PsClient* client, uint32_t table, const std::vector<uint64_t>& keys, int dim) {
    std::vector<float> out(keys.size() * static_cast<size_t>(dim));
    ps::PullSlice s;
    s.table = table;
    s.keys = keys.data();
    s.n = keys.size();
    s.out = out.data();
    s.create_missing = false;
    EMBER_CHECK(client->Pull({s}, {}).ok());
    return out;
  };
  auto stats = ps.Stats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 4u);  // main C1, C2; linear C1, C2
  ASSERT_EQ((*stats)[2].dim, 1);
  const auto wide_before = pull(&ps, 2, wide_keys, 1);
  auto fresh = Trainer::Create(c, &fresh_ps, &coll);  // the same tables, untrained
  ASSERT_TRUE(fresh.ok());
  const auto initial = pull(&fresh_ps, 0, main_keys, 8);
  EXPECT_NE(pull(&ps, 0, main_keys, 8), initial);
  ASSERT_TRUE((*t)->ResetRows().ok());
  EXPECT_EQ(pull(&ps, 0, main_keys, 8), initial);
  EXPECT_EQ(pull(&ps, 2, wide_keys, 1), wide_before);
  EXPECT_STREQ(RowResetName(RowReset::kEachEpoch), "each_epoch");
}

// The fused interaction against bmm and a gather of the lower triangle, forward and backward: the
// reference DLRM's shape, and shapes with partial blocks of 16 rows or coordinates.
TEST(DotInteraction, EqualsTheBmmFormAndItsGradient) {
  for (auto [B, n, d] :
       {std::tuple<int64_t, int64_t, int64_t>{300, 27, 16}, {70, 40, 20}, {9, 33, 32}, {7, 5, 3}, {1, 2, 1}}) {
    SCOPED_TRACE(n);
    torch::manual_seed(n);
    std::vector<int64_t> flat;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) flat.push_back(i * n + j);
    auto tri = torch::tensor(flat, torch::kLong);
    auto a = torch::randn({B, n, d}).requires_grad_(), b = a.detach().clone().requires_grad_();
    auto fused = models::DotInteraction(a, tri);
    auto ref = torch::bmm(b, b.transpose(1, 2)).view({B, n * n}).index_select(1, tri);
    ASSERT_EQ(fused.sizes(), ref.sizes());
    EXPECT_TRUE(torch::allclose(fused, ref, 1e-5, 1e-5));
    auto w = torch::randn_like(ref);
    (fused * w).sum().backward();
    (ref * w).sum().backward();
    EXPECT_TRUE(torch::allclose(a.grad(), b.grad(), 1e-4, 1e-5)) << (a.grad() - b.grad()).abs().max().item<float>();
  }
}

// DLRM's top-MLP input in one operation against its composition (cat of x with e's rows, the
// interaction, cat of x with the pairs), forward and both gradients, e given flat as the model's
// embedding group gives it; with an upstream gradient that is a slice of a wider one.
TEST(DotInteraction, WithDenseEqualsItsComposition) {
  for (auto [B, F, d] : {std::tuple<int64_t, int64_t, int64_t>{300, 26, 16}, {9, 33, 20}, {3, 1, 3}}) {
    SCOPED_TRACE(F);
    torch::manual_seed(F);
    const int64_t n = F + 1;
    std::vector<int64_t> flat;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) flat.push_back(i * n + j);
    auto tri = torch::tensor(flat, torch::kLong);
    auto x1 = torch::randn({B, d}).requires_grad_(), x2 = x1.detach().clone().requires_grad_();
    auto e1 = torch::randn({B, F * d}).requires_grad_(), e2 = e1.detach().clone().requires_grad_();
    auto fused = models::DotInteractionWithDense(x1, e1, tri);
    auto t = torch::cat({x2.unsqueeze(1), e2.view({B, F, d})}, 1);
    auto ref = torch::cat({x2, torch::bmm(t, t.transpose(1, 2)).view({B, n * n}).index_select(1, tri)}, 1);
    ASSERT_EQ(fused.sizes(), ref.sizes());
    ASSERT_EQ(fused.size(1), d + F * (F + 1) / 2);
    EXPECT_TRUE(torch::allclose(fused, ref, 1e-5, 1e-5));
    auto up = torch::randn({B, ref.size(1) + 5});
    auto w = up.narrow(1, 5, ref.size(1));  // non-contiguous
    torch::autograd::backward({fused}, {w});
    torch::autograd::backward({ref}, {w.contiguous()});
    ASSERT_EQ(e1.grad().sizes(), e1.sizes());
    EXPECT_TRUE(torch::allclose(x1.grad(), x2.grad(), 1e-4, 1e-5)) << (x1.grad() - x2.grad()).abs().max().item<float>();
    EXPECT_TRUE(torch::allclose(e1.grad(), e2.grad(), 1e-4, 1e-5)) << (e1.grad() - e2.grad()).abs().max().item<float>();
  }
  EXPECT_THROW(models::DotInteractionWithDense(torch::randn({4, 3}), torch::randn({4, 7}), torch::Tensor()),
               c10::Error);
  // An empty batch gives an empty [0, d + pairs] input, and e may come as [B, F, d].
  EXPECT_EQ(models::DotInteractionWithDense(torch::randn({0, 4}), torch::randn({0, 12}), torch::Tensor()).sizes(),
            (std::vector<int64_t>{0, 4 + 6}));
  auto x = torch::randn({2, 4}), e = torch::randn({2, 3, 4});
  EXPECT_TRUE(torch::equal(models::DotInteractionWithDense(x, e, torch::Tensor()),
                           models::DotInteractionWithDense(x, e.view({2, 12}), torch::Tensor())));
}

// The fused Linear (+ ReLU) against torch::linear and torch::relu, forward and the gradients of its
// input, weight and bias, with an upstream gradient that is a slice of a wider one (as a cat's
// backward gives), widths not a multiple of the 64-column blocks, inputs narrow enough for the
// small-input loops (K <= 16) and wider ones (BLAS), and an input without gradient.
TEST(LinearActivation, EqualsLinearAndReluAndTheirGradients) {
  for (auto [B, K, O] :
       {std::tuple<int64_t, int64_t, int64_t>{300, 13, 130}, {7, 64, 1}, {1, 5, 64}, {50, 16, 17}, {9, 17, 70}}) {
    for (bool relu : {true, false}) {
      SCOPED_TRACE(std::to_string(O) + (relu ? " relu" : ""));
      torch::manual_seed(O);
      auto x1 = torch::randn({B, K}).requires_grad_(), x2 = x1.detach().clone().requires_grad_();
      auto w1 = torch::randn({O, K}).requires_grad_(), w2 = w1.detach().clone().requires_grad_();
      auto b1 = torch::randn({O}).requires_grad_(), b2 = b1.detach().clone().requires_grad_();
      auto fused = models::LinearActivation(x1, w1, b1, relu);
      auto ref = torch::linear(x2, w2, b2);
      if (relu) ref = torch::relu(ref);
      ASSERT_EQ(fused.sizes(), ref.sizes());
      EXPECT_TRUE(torch::allclose(fused, ref, 1e-5, 1e-5));
      if (relu) {
        EXPECT_GT((fused == 0).sum().item<int64_t>(), 0);
      }
      auto up = torch::randn({B, O + 3});
      auto w = up.narrow(1, 2, O);  // non-contiguous
      torch::autograd::backward({fused}, {w});
      torch::autograd::backward({ref}, {w.contiguous()});
      EXPECT_TRUE(torch::allclose(x1.grad(), x2.grad(), 1e-4, 1e-5));
      EXPECT_TRUE(torch::allclose(w1.grad(), w2.grad(), 1e-4, 1e-5));
      EXPECT_TRUE(torch::allclose(b1.grad(), b2.grad(), 1e-4, 1e-5));
    }
  }
  // An input that needs no gradient gets none, and the parameters still do.
  auto x = torch::randn({4, 3});
  auto wt = torch::randn({2, 3}).requires_grad_();
  auto bt = torch::zeros({2}).requires_grad_();
  models::LinearActivation(x, wt, bt, true).sum().backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(wt.grad().defined());
  EXPECT_TRUE(bt.grad().defined());
}

// The fused gather against index_select, with repeated rows, forward and backward.
TEST(GatherRows, EqualsIndexSelectAndItsGradient) {
  torch::manual_seed(3);
  auto a = torch::randn({50, 16}).requires_grad_(), b = a.detach().clone().requires_grad_();
  auto index = torch::randint(0, 50, {5000}, torch::kLong);
  auto fused = models::GatherRows(a, index), ref = b.index_select(0, index);
  EXPECT_TRUE(torch::equal(fused, ref));
  auto w = torch::randn_like(ref);
  (fused * w).sum().backward();
  (ref * w).sum().backward();
  EXPECT_TRUE(torch::allclose(a.grad(), b.grad(), 1e-4, 1e-5)) << (a.grad() - b.grad()).abs().max().item<float>();
  EXPECT_THROW(models::GatherRows(a, torch::tensor({0, 50}, torch::kLong)), c10::Error);
}

// FusedAdam's steps equal LibTorch's Adam's (with and without weight decay), and its state is
// Adam's: one saved by either loads into the other.
TEST(FusedAdam, StepsLikeAdam) {
  for (double wd : {0.0, 0.01}) {
    torch::manual_seed(1);
    auto p1 = torch::randn({300, 7}).requires_grad_(), q1 = torch::randn({70000}).requires_grad_();
    auto p2 = p1.detach().clone().requires_grad_(), q2 = q1.detach().clone().requires_grad_();
    torch::optim::Adam adam({p1, q1}, torch::optim::AdamOptions(0.01).weight_decay(wd));
    workers::FusedAdam fused({p2, q2}, torch::optim::AdamOptions(0.01).weight_decay(wd));
    for (int s = 0; s < 20; ++s) {
      auto g = torch::randn({300, 7}), h = torch::randn({70000});
      p1.mutable_grad() = g.clone();
      q1.mutable_grad() = h.clone();
      p2.mutable_grad() = g.clone();
      q2.mutable_grad() = h.clone();
      adam.step();
      fused.step();
    }
    EXPECT_TRUE(torch::allclose(p1, p2, 1e-5, 1e-6)) << (p1 - p2).abs().max().item<float>();
    EXPECT_TRUE(torch::allclose(q1, q2, 1e-5, 1e-6));
    std::ostringstream os;
    torch::serialize::OutputArchive out;
    fused.save(out);
    out.save_to(os);
    torch::serialize::InputArchive in;
    std::istringstream is(os.str());
    in.load_from(is);
    adam.load(in);
    auto g = torch::randn({300, 7});
    p1.mutable_grad() = g.clone();
    p2.mutable_grad() = g.clone();
    q1.mutable_grad() = torch::zeros({70000});
    q2.mutable_grad() = torch::zeros({70000});
    p1.data().copy_(p2.data());
    q1.data().copy_(q2.data());
    adam.step();
    fused.step();
    EXPECT_TRUE(torch::allclose(p1, p2, 1e-6, 1e-7));
  }
}

TEST(CtrModels, ShapesAndRefusals) {
  models::CtrModelConfig c;
  c.num_dense = 2;
  c.num_fields = 3;
  c.embedding_dim = 4;
  c.top_mlp = {8};
  for (auto [kind, groups] : std::vector<std::pair<models::ModelKind, size_t>>{
           {models::ModelKind::kDcnV2, 1}, {models::ModelKind::kWideDeep, 2}, {models::ModelKind::kFm, 2}}) {
    c.kind = kind;
    auto m = models::MakeCtrModel(c);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    const auto specs = (*m)->embedding_groups();
    ASSERT_EQ(specs.size(), groups);
    std::vector<models::GroupInput> in;
    for (const auto& s : specs) in.push_back({torch::randn({5, 3 * s.dim}), std::vector<int>(3, s.dim)});
    EXPECT_EQ(specs.back().first_order, groups == 2);
    EXPECT_EQ((*m)->Forward(torch::randn({5, 2}), in).sizes(), (std::vector<int64_t>{5}));
    EXPECT_EQ((*m)->model_name(), models::ModelKindName(kind));
  }
  c.kind = models::ModelKind::kDcnV2;
  c.cross_layers = 65;
  EXPECT_NE(models::MakeCtrModel(c).status().message().find("model.cross_layers"), std::string::npos);
  c.cross_layers = 2;
  c.cross_rank = 3;  // low rank: U (in x 3) and V (3 x in) per layer
  auto m = models::MakeCtrModel(c);
  ASSERT_TRUE(m.ok());
  int64_t cross = 0;
  for (const auto& p : (*m)->named_parameters())
    if (p.key().rfind("cross", 0) == 0) cross += p.value().numel();
  const int64_t in = 2 + 3 * 4;
  EXPECT_EQ(cross, 2 * (in * 3 + 3 * in + in));
  EXPECT_FALSE(models::ParseModelKind("dcn").ok());
  EXPECT_EQ(*models::ParseModelKind("wide_deep"), models::ModelKind::kWideDeep);
}

// Serving's dense precisions (models/dense_linear.h), on untrained models at the reference DLRM
// shape: bf16 and int8 forwards stay within their rounding of fp32 (measured on the output's
// spread) and differ from it; with gradients on (training) a model set to either computes exactly
// fp32; fp32 again drops the prepared weights; the layers keep torch::nn::Linear's parameter names.
TEST(DenseLinear, Bf16AndInt8ForwardsStayWithinTheirRoundingOfFp32) {
  models::CtrModelConfig c;  // the reference DLRM shape: 13-512-256-64-16, top 367-512-256-1
  for (auto kind : {models::ModelKind::kDlrm, models::ModelKind::kDcnV2, models::ModelKind::kWideDeep}) {
    c.kind = kind;
    auto m = models::MakeCtrModel(c);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    torch::manual_seed(5);
    const int64_t B = 256;
    const auto dense = torch::randn({B, 13}).abs().log1p();
    std::vector<models::GroupInput> in;
    for (const auto& s : (*m)->embedding_groups())
      in.push_back({0.3 * torch::randn({B, 26 * s.dim}), std::vector<int>(26, s.dim)});
    torch::Tensor fp32;
    {
      torch::NoGradGuard no_grad;
      fp32 = (*m)->Forward(dense, in);
    }
    const double spread = fp32.std().item<double>();
    ASSERT_GT(spread, 0.0);
    for (auto [p, tolerance] :
         {std::pair{models::DensePrecision::kBf16, 0.05}, {models::DensePrecision::kInt8, 0.15}}) {
      ASSERT_TRUE(models::SetDensePrecision(**m, p).ok()) << models::DensePrecisionName(p);
      torch::Tensor low;
      {
        torch::NoGradGuard no_grad;
        low = (*m)->Forward(dense, in);
      }
      const double worst = (low - fp32).abs().max().item<double>() / spread;
      const double mean = (low - fp32).abs().mean().item<double>() / spread;
      EXPECT_LT(worst, tolerance) << models::ModelKindName(kind) << " " << models::DensePrecisionName(p);
      EXPECT_LT(mean, tolerance / 4) << models::ModelKindName(kind) << " " << models::DensePrecisionName(p);
      EXPECT_GT(worst, 0.0) << models::ModelKindName(kind) << " " << models::DensePrecisionName(p);
      // Training (gradients on) never runs the low-precision forward: its fp32 products (fused with
      // the activations) agree with the inference forward's to rounding, far below bf16's.
      const double train_gap = ((*m)->Forward(dense, in).detach() - fp32).abs().max().item<double>() / spread;
      EXPECT_LT(train_gap, 1e-5) << models::DensePrecisionName(p);
    }
    ASSERT_TRUE(models::SetDensePrecision(**m, models::DensePrecision::kFp32).ok());
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal((*m)->Forward(dense, in), fp32));
  }
  // Names and refusals.
  c.kind = models::ModelKind::kDlrm;
  EXPECT_EQ(*models::ParseDensePrecision("int8"), models::DensePrecision::kInt8);
  EXPECT_EQ(models::ParseDensePrecision("fp16").status().message(),
            "dense precision 'fp16' is not one of fp32, bf16, int8");
  auto m = models::MakeCtrModel(c);
  ASSERT_TRUE(m.ok());
  bool names_kept = false;
  for (const auto& p : (*m)->named_parameters()) names_kept |= p.key() == "top.0.weight";
  EXPECT_TRUE(names_kept);
}

// A prepared fp32 model runs passes of at most kSmallBatchRows rows through ember's own product:
// within fp32 rounding of torch::nn::Linear, every row's answer the same alone as beside others
// (bitwise), and a pass past the limit on BLAS again. Widths that leave partial tiles (O = 1, 16,
// 100) and every row count up to the limit (whole groups of 4 and the rest).
TEST(DenseLinear, SmallFp32PassesMatchBlasAndDoNotDependOnTheirBatch) {
  constexpr int64_t kMax = models::DenseLinearImpl::kSmallBatchRows;
  torch::manual_seed(3);
  for (auto [in, out] : {std::pair<int64_t, int64_t>{367, 512}, {13, 100}, {64, 16}, {256, 1}}) {
    models::DenseLinear layer(in, out);
    const auto x = torch::randn({kMax + 1, in});
    torch::NoGradGuard no_grad;
    const auto reference = layer->forward(x);  // not prepared: BLAS
    ASSERT_TRUE(layer->SetPrecision(models::DensePrecision::kFp32).ok());
    const auto alone = layer->forward(x.narrow(0, 0, 1));
    for (int64_t b = 1; b <= kMax; ++b) {
      const auto y = layer->forward(x.narrow(0, 0, b));
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{b, out}));
      const double err = (y - reference.narrow(0, 0, b)).abs().max().item<double>();
      EXPECT_LT(err, 1e-4) << in << "x" << out << " rows " << b;
      EXPECT_TRUE(torch::equal(y.narrow(0, 0, 1), alone)) << in << "x" << out << " rows " << b;
    }
    EXPECT_TRUE(torch::allclose(layer->forward(x), reference, 1e-5, 1e-5));
  }
}

// The summed form of a group's values: [n, F x probes x dim] -> [n, F x dim], gradients to every probe.
TEST(GatherSlots, SumProbesAddsEachFieldsProbes) {
  auto v = torch::arange(12, torch::kFloat).view({2, 6}).requires_grad_(true);  // 2 fields x 3 probes x 1
  auto s = models::SumProbes(v, 3, 1);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(s[0][0].item<float>(), 0 + 1 + 2);
  EXPECT_FLOAT_EQ(s[1][1].item<float>(), 9 + 10 + 11);
  s.sum().backward();
  EXPECT_TRUE(torch::equal(v.grad(), torch::ones({2, 6})));
}

// Multi-hot bags through the lookup: each slot reads the weighted sum of its bag's rows (unified:
// every probe of every id), an empty bag reads zeros, and each id's row gets its weight times the
// slot's gradient.
TEST(BagLookup, PoolsByWeightAndSendsEachIdItsGradient) {
  embedding::MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.dim = 4;
  c.chunks = 2;
  c.tables = 1;
  c.rows = 1000;
  auto method = embedding::MakeMethod(c, {{"one", 0}, {"bag", 0}});
  ASSERT_TRUE(method.ok()) << method.status().ToString();
  embedding::BatchLookup lookup(method->get());
  // Two examples: field 0 one-hot (ids 7, 8); field 1 bags {5 (w 0.5), 6 (w 2)} and {}.
  const uint64_t one_hot[] = {7, 8}, bag_ids[] = {5, 6};
  const uint32_t offsets[] = {0, 2, 2};
  const float weights[] = {0.5f, 2.0f};
  std::vector<embedding::FieldIds> fields(2);
  fields[0].ids = one_hot;
  fields[0].count = 2;
  fields[1].ids = bag_ids;
  fields[1].offsets = offsets;
  fields[1].weights = weights;
  fields[1].count = 2;
  lookup.Prepare(fields, 2);
  ASSERT_TRUE(lookup.bagged());
  EXPECT_EQ(lookup.unique(), 8u);  // 4 ids x 2 probes
  // Leaf row k holds the value k + 1 everywhere, so a slot's value names the rows it summed.
  const int64_t rows = static_cast<int64_t>(lookup.leaf_rows());
  auto leaf = (torch::arange(rows, torch::kFloat) + 1).unsqueeze(1).repeat({1, lookup.slot_dim()}).requires_grad_(true);
  auto& slots = lookup.slots();
  auto& offs = lookup.bag_offsets();
  auto& w = lookup.bag_weights();
  EXPECT_EQ(offs.size(), 2u * 2u * 2u + 1u);  // examples x fields x probes, + 1
  auto values = models::GatherSlots(
      leaf, torch::from_blob(slots.data(), {static_cast<int64_t>(slots.size())}, torch::kLong),
      torch::from_blob(offs.data(), {static_cast<int64_t>(offs.size())}, torch::kLong),
      torch::from_blob(w.data(), {static_cast<int64_t>(w.size())}, torch::kFloat), 2, 2 * 2 * lookup.slot_dim());
  // Expected: per example, field, probe: sum of weight * (row + 1).
  const auto& keys = lookup.sorted_keys();
  auto row_of = [&](uint64_t key) {
    return static_cast<float>(std::find(keys.begin(), keys.end(), key) - keys.begin());
  };
  auto probe_keys = [&](int field, uint64_t id) {
    std::vector<uint64_t> k(2);
    (*method)->MapIds(field, &id, 1, k.data());
    return k;
  };
  const int D = lookup.slot_dim();
  auto at = [&](int i, int f, int p) { return values[i][(f * 2 + p) * D].item<float>(); };
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < 2; ++p) EXPECT_FLOAT_EQ(at(i, 0, p), row_of(probe_keys(0, one_hot[i])[p]) + 1);
  for (int p = 0; p < 2; ++p) {
    EXPECT_FLOAT_EQ(at(0, 1, p), 0.5f * (row_of(probe_keys(1, 5)[p]) + 1) + 2.0f * (row_of(probe_keys(1, 6)[p]) + 1));
    EXPECT_FLOAT_EQ(at(1, 1, p), 0.0f);  // the empty bag
  }
  // Gradient of the sum of every value: each row gets (its weight) per entry it appears in.
  values.sum().backward();
  auto grad = leaf.grad();
  for (int p = 0; p < 2; ++p) {
    EXPECT_FLOAT_EQ(grad[static_cast<int64_t>(row_of(probe_keys(1, 5)[p]))][0].item<float>(), 0.5f);
    EXPECT_FLOAT_EQ(grad[static_cast<int64_t>(row_of(probe_keys(1, 6)[p]))][0].item<float>(), 2.0f);
    EXPECT_FLOAT_EQ(grad[static_cast<int64_t>(row_of(probe_keys(0, 7)[p]))][0].item<float>(), 1.0f);
  }
}

}  // namespace
}  // namespace ember::workers
