// The compression methods through the trainer: OptEmbed's three stages, DSL's budget during
// training, Unified Embedding with padded fields, and every method's state across checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "ember/data/criteo.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/models/optembed.h"
#include "ember/monitoring/recorder.h"
#include "ember/ps/in_process.h"
#include "ember/workers/table_metrics.h"
#include "ember/workers/trainer.h"
#include "test_util.h"

namespace ember::workers {
namespace {

std::string Dir() { return testing_util::TempDir("compression"); }

struct Files {
  std::string train, valid, test;
  Files() {
    data::SyntheticCtrOptions o;
    o.max_vocab = 5000;
    o.rows = 30000;
    o.seed = 1;
    train = Dir() + "/train.tsv";
    valid = Dir() + "/valid.tsv";
    test = Dir() + "/test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 5000;
    o.seed = 2;
    EMBER_CHECK(data::WriteSyntheticCtr(o, valid).ok());
    o.seed = 3;
    EMBER_CHECK(data::WriteSyntheticCtr(o, test).ok());
  }
};
const Files& Data() {
  static Files f;
  return f;
}

using testing_util::Reader;

TrainerConfig Config(const std::string& method) {
  TrainerConfig c;
  c.model.kind = models::ModelKind::kDlrm;
  c.model.bottom_mlp = {32};
  c.model.top_mlp = {32};
  c.embedding.method = *embedding::ParseMethod(method);
  c.embedding.dim = 8;
  c.dense_lr = 3e-3;
  for (int f = 0; f < 26; ++f) c.fields.push_back({"C" + std::to_string(f + 1), 0});
  return c;
}

ProgressOptions Quiet() {
  ProgressOptions p;
  p.enabled = false;
  return p;
}

std::vector<float> Predictions(Trainer* t) {
  std::vector<float> p, y;
  auto r = Reader(Data().test, 1000);
  EXPECT_TRUE(t->Evaluate(r.get(), &p, &y).ok());
  return p;
}

uint64_t TotalValues(ps::PsClient& ps) {
  uint64_t v = 0;
  const auto stats = ps.Stats();  // kept: a range over *ps.Stats() would outlive the Result
  for (const auto& s : *stats) v += s.values;
  return v;
}

// Saves t's checkpoint as Dir()/name, restores it into a fresh trainer of `config` over
// `shards` shards, and checks it holds the same values and predicts exactly as t does.
// Returns the checkpoint path.
std::string ExpectRoundTrip(Trainer* t, ps::PsClient& t_ps, const TrainerConfig& config, int shards,
                            const std::string& name) {
  const std::string root = Dir() + "/" + name;
  std::filesystem::remove_all(root);
  auto path = t->SaveCheckpoint(root, "");
  EXPECT_TRUE(path.ok()) << path.status().ToString();
  if (!path.ok()) return "";
  ps::InProcessClient ps(shards);
  LocalCollective coll;
  auto back = Trainer::Create(config, &ps, &coll);
  EXPECT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE((*back)->RestoreCheckpoint(*path).ok());
  EXPECT_EQ(TotalValues(ps), TotalValues(t_ps));
  EXPECT_EQ(Predictions(back->get()), Predictions(t));
  return *path;
}

// STE: forward is the step, backward the slope s(x), which is exactly the derivative of the
// surrogate S: the threshold's gradient through the mask matches finite differences of S.
TEST(OptEmbed, ThresholdGradientMatchesFiniteDifferences) {
  torch::manual_seed(3);
  const int64_t B = 64, F = 5, D = 4;
  auto values = torch::randn({B, F * D}) * 0.3;
  auto weights = torch::randn({B, F});  // loss = sum w * mask(L1 - t)
  auto t = (torch::rand({F}) * 0.8).requires_grad_(true);
  auto l1 = values.view({B, F, D}).abs().sum(-1);
  auto loss = (weights * models::StepSte(l1 - t.unsqueeze(0))).sum();
  loss.backward();
  // Forward of STE is the step.
  EXPECT_TRUE(torch::equal(models::StepSte(torch::tensor({-0.5f, 0.0f, 0.1f})), torch::tensor({0.0f, 0.0f, 1.0f})));
  auto surrogate = [&](const torch::Tensor& th) {
    return (weights * models::StepSurrogate(l1 - th.unsqueeze(0))).sum().item<double>();
  };
  const double h = 1e-3;
  for (int64_t f = 0; f < F; ++f) {
    auto up = t.detach().clone(), down = t.detach().clone();
    up[f] += h;
    down[f] -= h;
    const double fd = (surrogate(up) - surrogate(down)) / (2 * h);
    EXPECT_NEAR(t.grad()[f].item<double>(), fd, 2e-2 * std::max(1.0, std::abs(fd))) << "field " << f;
  }
  // The slope by hand at a few points: 2 - 4|x| inside 0.4, 0.4 up to 1, 0 beyond.
  auto x = torch::tensor({0.1f, -0.3f, 0.7f, -1.5f}).requires_grad_(true);
  models::StepSte(x).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), torch::tensor({1.6f, 0.8f, 0.4f, 0.0f})));
}

TEST(OptEmbed, EvalMaskZeroesRowsAtOrBelowTheirThreshold) {
  auto values = torch::tensor({{0.1f, 0.1f, 0.5f, 0.5f}, {0.3f, -0.3f, 0.0f, 0.1f}});  // B=2, F=2, D=2
  auto t = torch::tensor({0.5f, 0.5f});
  auto out = models::OptEmbedRowMask(values, t, 2);
  EXPECT_TRUE(torch::equal(out, torch::tensor({{0.0f, 0.0f, 0.5f, 0.5f}, {0.3f, -0.3f, 0.0f, 0.0f}})));
}

// A supernet of config `c` trained one epoch on the small training file.
std::unique_ptr<Trainer> TrainedSupernet(const TrainerConfig& c, ps::PsClient* ps, Collective* coll) {
  auto sup = Trainer::Create(c, ps, coll);
  EMBER_CHECK(sup.ok()) << sup.status().ToString();
  auto r = Reader(Data().train, 256);
  EMBER_CHECK((*sup)->TrainEpoch(r.get(), 0, 1, Quiet()).ok());
  return std::move(sup).value();
}

// OptEmbed with a one-round search of 3 candidates on 500 examples.
TrainerConfig QuickSearchConfig() {
  auto c = Config("optembed");
  c.optembed.rounds = 1;
  c.optembed.population = 3;
  c.optembed.search_samples = 500;
  return c;
}

// A model with first-order weights: after retraining adopts the kept rows, the shards hold only
// the retraining trainer's tables (the supernet's first-order table is dropped with its rows).
TEST(OptEmbed, RetrainingDropsEverySupernetTable) {
  auto c = QuickSearchConfig();
  c.model.kind = models::ModelKind::kDeepFm;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto sup = TrainedSupernet(c, &ps, &coll);
  ASSERT_EQ(ps.Stats()->size(), 52u);  // 26 embedding + 26 first-order tables
  auto v = Reader(Data().valid, 1000);
  auto arch = sup->SearchOptEmbed(v.get(), 0);
  ASSERT_TRUE(arch.ok()) << arch.status().ToString();
  auto rc = c;
  rc.embedding.field_widths = arch->widths;
  rc.embedding.first_table = 52;
  auto re = Trainer::Create(rc, &ps, &coll);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  ASSERT_TRUE((*re)->AdoptOptEmbedRows(*sup, arch->thresholds, /*reinit=*/true).ok());
  auto stats = ps.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->size(), 52u);
  for (const auto& s : *stats) EXPECT_GE(s.table, 52u) << "supernet table " << s.table << " left on the shards";
}

// With a hashed fallback (optembed.fallback_share under a budget), a pruned value reads its row of
// the shared fallback table: retraining trains that table (its rows appear and move) while the
// frozen tables keep exactly the kept rows; a value with a kept row reads its own row; the
// fallback's size survives a checkpoint, whose restore predicts exactly as the trainer did.
TEST(OptEmbed, PrunedValuesReadTheHashedFallback) {
  auto c = QuickSearchConfig();
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto sup = TrainedSupernet(c, &ps, &coll);
  const uint64_t all_rows = sup->TableFootprint()->first;
  auto v = Reader(Data().valid, 1000);
  auto arch = sup->SearchOptEmbed(v.get(), all_rows * 8 * 4 / 20);  // a twentieth of the table
  ASSERT_TRUE(arch.ok()) << arch.status().ToString();
  uint64_t kept = 0;
  for (uint64_t k : arch->kept_rows) kept += k;
  ASSERT_LT(kept, all_rows);
  auto rc = c;
  rc.embedding.field_widths = arch->widths;
  rc.embedding.first_table = 26;
  rc.embedding.fallback = embedding::Fallback::kHash;
  rc.embedding.fallback_rows = 64;
  auto re = Trainer::Create(rc, &ps, &coll);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  const auto& tables = (*re)->method(0).tables();
  ASSERT_EQ(tables.size(), 27u);  // 26 frozen tables and the fallback
  const auto& fb = tables.back();
  EXPECT_EQ(fb.id, 52u);
  EXPECT_EQ(fb.dim, 8);  // full width: a pruned value's row fills its field's slot
  EXPECT_EQ(fb.rows, 64u);
  EXPECT_FALSE(fb.frozen);
  EXPECT_TRUE((*re)->method(0).admits(0));  // frozen tables fall back
  ASSERT_TRUE((*re)->AdoptOptEmbedRows(*sup, arch->thresholds, /*reinit=*/true).ok());
  (*re)->set_step(sup->step());
  auto r = Reader(Data().train, 256);
  ASSERT_TRUE((*re)->TrainEpoch(r.get(), 0, 1, Quiet()).ok());
  uint64_t frozen_rows = 0, fallback_rows = 0;
  const auto stats = ps.Stats();
  ASSERT_TRUE(stats.ok());
  for (const auto& s : *stats) (s.table == 52 ? fallback_rows : frozen_rows) += s.rows;
  EXPECT_EQ(frozen_rows, kept);   // frozen: no row created
  EXPECT_GT(fallback_rows, 32u);  // pruned values trained the shared rows
  EXPECT_LE(fallback_rows, 64u);
  const std::string path = ExpectRoundTrip(re->get(), ps, rc, 3, "oe-fallback");
  TrainerConfig applied = c;
  ASSERT_TRUE(ApplyCheckpointEmbedding(path, &applied).ok());
  EXPECT_EQ(applied.embedding.fallback, embedding::Fallback::kHash);
  EXPECT_EQ(applied.embedding.fallback_rows, 64u);
}

// The three stages: the supernet raises thresholds, the search meets the budget, retraining
// holds only the kept rows at the searched widths, and the result survives a checkpoint.
TEST(OptEmbed, ThreeStagesUnderABudget) {
  auto c = Config("optembed");
  c.embedding.init_scale = 0.05f;
  c.optembed.alpha = 1e-2;
  c.optembed.threshold_lr = 5.0;
  c.optembed.rounds = 3;
  c.optembed.population = 6;
  c.optembed.mutants = 4;
  c.optembed.children = 4;
  c.optembed.keep = 4;
  c.optembed.search_samples = 2000;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto sup = TrainedSupernet(c, &ps, &coll);
  const auto t = sup->thresholds();
  ASSERT_EQ(t.size(), 26u);
  for (float x : t) EXPECT_GT(x, 0.0f);  // the exp(-t) regulariser pushes every threshold up
  auto fp = sup->TableFootprint();
  const uint64_t all_rows = fp->first;
  // A tiny budget is met by shifting thresholds up until (nearly) every row is pruned.
  auto v0 = Reader(Data().valid, 1000);
  auto tight = sup->SearchOptEmbed(v0.get(), 4);
  ASSERT_TRUE(tight.ok()) << tight.status().ToString();
  EXPECT_LE(tight->bytes, 4u);
  EXPECT_GT(tight->shift, 0.0);
  auto v = Reader(Data().valid, 1000);
  const uint64_t budget = all_rows * 8 * 4 / 4;  // a quarter of the full table
  auto arch = sup->SearchOptEmbed(v.get(), budget);
  ASSERT_TRUE(arch.ok()) << arch.status().ToString();
  EXPECT_LE(arch->bytes, budget);
  EXPECT_GT(arch->val_auc, 0.6);
  ASSERT_EQ(arch->widths.size(), 26u);
  uint64_t kept = 0, bytes = 0;
  for (size_t f = 0; f < 26; ++f) {
    EXPECT_GE(arch->widths[f], 1);
    EXPECT_LE(arch->widths[f], 8);
    kept += arch->kept_rows[f];
    bytes += arch->kept_rows[f] * arch->widths[f] * 4;
  }
  EXPECT_EQ(bytes, arch->bytes);
  EXPECT_LT(kept, all_rows);  // some rows were pruned

  auto rc = c;
  rc.embedding.field_widths = arch->widths;
  rc.embedding.first_table = 26;
  auto re = Trainer::Create(rc, &ps, &coll);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  EXPECT_EQ(arch->thresholds.size(), 26u);
  EXPECT_FLOAT_EQ(arch->thresholds[3], t[3] + static_cast<float>(arch->shift));
  ASSERT_TRUE((*re)->AdoptOptEmbedRows(*sup, arch->thresholds, /*reinit=*/true).ok());
  (*re)->set_step(sup->step());  // the same shards: steps continue
  auto held = (*re)->TableFootprint();
  EXPECT_EQ(held->first, kept);  // the supernet's tables are gone; only kept rows remain
  auto r2 = Reader(Data().train, 256);
  ASSERT_TRUE((*re)->TrainEpoch(r2.get(), 0, 1, Quiet()).ok());
  EXPECT_EQ((*re)->TableFootprint()->first, kept);  // frozen: training creates no rows
  auto stats = ps.Stats();
  uint64_t values = 0;
  for (const auto& s : *stats) values += s.values;
  EXPECT_EQ(values * 4, arch->bytes);
  auto te = Reader(Data().test, 4096);
  EXPECT_GT((*re)->Evaluate(te.get())->auc, 0.65);

  const std::string path = ExpectRoundTrip(re->get(), ps, rc, 3, "oe");
  TrainerConfig applied = c;
  ASSERT_TRUE(ApplyCheckpointEmbedding(path, &applied).ok());
  EXPECT_EQ(applied.embedding.field_widths, arch->widths);
  EXPECT_EQ(applied.embedding.first_table, 26u);
  // The supernet's thresholds round-trip as well.
  auto sp = sup->SaveCheckpoint(Dir() + "/oe", "", "supernet");
  ASSERT_TRUE(sp.ok());
  ps::InProcessClient ps3(1);
  auto sup2 = Trainer::Create(c, &ps3, &coll);
  ASSERT_TRUE((*sup2)->RestoreCheckpoint(*sp).ok());
  EXPECT_EQ((*sup2)->thresholds(), t);
}

// DSL during training: the kept entries stay exactly at each row's allotment summed over rows
// (prune/grow moves entries, never adds), and masks and values survive a checkpoint exactly.
TEST(Dsl, TrainingKeepsTheBudgetAndCheckpointsMasks) {
  auto c = Config("dsl");
  c.embedding.density = 0.5f;
  c.dsl.interval = 20;
  c.dsl.grow_window = 5;
  c.dsl.total_steps = 118;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  monitoring::MemoryRecorder rec;
  auto t = Trainer::Create(c, &ps, &coll, &rec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = Reader(Data().train, 256);
  std::vector<uint64_t> values_after_rounds;
  auto check = [&](int64_t step) {
    auto stats = ps.Stats();
    uint64_t rows = 0, values = 0;
    for (const auto& s : *stats) {
      rows += s.rows;
      values += s.values;
    }
    EXPECT_EQ(values, rows * 4) << "step " << step;  // density 0.5 of 8: exactly 4 per row
    if (step % 20 == 0) values_after_rounds.push_back(values);
    return Status::Ok();
  };
  ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, Quiet(), check).ok());
  EXPECT_EQ(values_after_rounds.size(), 5u);
  // Each round prunes and regrows the same number of values (the budget holds), per table.
  double pruned = 0, regrown = 0, rounds = 0;
  for (uint32_t table = 0; table < 26; ++table) {
    const monitoring::Labels l = {{"table", std::to_string(table)}};
    pruned += rec.Counter("dsl_pruned_values_total", l);
    regrown += rec.Counter("dsl_regrown_values_total", l);
    rounds += rec.Counter("dsl_rounds_total", l);
  }
  EXPECT_EQ(rounds, 5 * 26);
  EXPECT_GT(pruned, 0);
  EXPECT_EQ(pruned, regrown);
  auto te = Reader(Data().test, 4096);
  EXPECT_GT((*t)->Evaluate(te.get())->auc, 0.65);
  ExpectRoundTrip(t->get(), ps, c, 3, "dsl");
}

// Unified Embedding with per-field chunk counts and a collisionless small field: narrower fields
// are zero-padded to the model's width and still learn.
TEST(Unified, PaddedFieldsTrainAndRoundTrip) {
  auto c = Config("unified");
  c.embedding.rows = 3000;
  c.embedding.tables = 3;
  c.embedding.chunks = 4;  // 2 wide
  c.embedding.field_chunks.assign(26, 0);
  for (int f = 0; f < 13; ++f) c.embedding.field_chunks[f] = 1 + f % 3;
  c.fields[0].vocab = 10;
  c.embedding.collisionless_below = 10;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  auto t = Trainer::Create(c, &ps, &coll);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = Reader(Data().train, 256);
  ASSERT_TRUE((*t)->TrainEpoch(r.get(), 0, 1, Quiet()).ok());
  auto te = Reader(Data().test, 4096);
  EXPECT_GT((*t)->Evaluate(te.get())->auc, 0.65);
  auto stats = ps.Stats();
  ASSERT_EQ(stats->size(), 4u);  // 3 shared + field C1's own
  EXPECT_LE((*stats)[3].rows, 10u);
  const std::string path = ExpectRoundTrip(t->get(), ps, c, 1, "ue");
  // A checkpoint keeps the probes it was trained with, whatever the configuration says now (a
  // configuration that left embedding.chunks to an older default).
  TrainerConfig later = c;
  later.embedding.chunks = 8;
  ASSERT_TRUE(ApplyCheckpointEmbedding(path, &later).ok());
  EXPECT_EQ(later.embedding.chunks, 4);
}

// embedding.chunks = 0: the most probes, at most 8, whose width divides the row width.
TEST(Unified, AutoChunksTakesTheMostProbesThatDivideTheWidth) {
  const std::vector<std::pair<int, int>> want = {{16, 8}, {12, 6}, {10, 5}, {9, 3}, {7, 7},
                                                 {64, 8}, {2, 2},  {1, 1},  {13, 1}};
  for (auto [dim, chunks] : want) EXPECT_EQ(embedding::AutoChunks(dim), chunks) << "dim " << dim;
}

TEST(TableMetrics, CollisionRateFromVocabulariesOrOccupancy) {
  // 1000 ids into 1000 rows: an id collides unless the other 999 miss its row.
  const double expected = 1 - std::pow(1 - 1e-3, 999);
  EXPECT_NEAR(EstimatedCollisionRate(0, 1000, 1000), expected, 1e-12);
  // Linear counting: 1000 ids occupy 1000 (1 - (1 - 1/1000)^1000) rows in expectation.
  const auto occupied = static_cast<uint64_t>(std::llround(1000 * (1 - std::pow(1 - 1e-3, 1000))));
  EXPECT_EQ(occupied, 632u);
  EXPECT_NEAR(EstimatedCollisionRate(occupied, 1000), expected, 2e-3);
  EXPECT_EQ(EstimatedCollisionRate(0, 1000), 0.0);
  EXPECT_EQ(EstimatedCollisionRate(1, 1000), 0.0);     // one id collides with nothing
  EXPECT_EQ(EstimatedCollisionRate(1000, 1000), 1.0);  // saturated
  EXPECT_EQ(EstimatedCollisionRate(0, 1 << 20, 1), 0.0);
}

TEST(TableMetrics, GaugesPerTableTotalsAndSkew) {
  ps::TableStats hashed;
  hashed.table = 0;
  hashed.rows = 40;
  hashed.values = 40 * 8;
  hashed.bytes = 5000;
  hashed.dim = 8;
  hashed.shard_rows = {30, 10};
  ps::TableStats full = hashed;
  full.table = 1;
  full.rows = full.values = 0;
  full.shard_rows = {0, 0};
  std::vector<TableInfo> infos = {{0, "hash", true, 100, 0, 12800}, {1, "full", false, 0, 0, 0}};
  monitoring::MemoryRecorder rec;
  RecordTableMetrics({hashed, full}, infos, &rec);
  const monitoring::Labels t0 = {{"table", "0"}, {"method", "hash"}};
  EXPECT_EQ(rec.Gauge("table_rows", t0), 40);
  EXPECT_EQ(rec.Gauge("table_param_bytes", t0), 40 * 8 * 4);
  EXPECT_EQ(rec.Gauge("table_compression_ratio", t0), 10);  // 12800 / 1280
  EXPECT_EQ(rec.Gauge("table_capacity_rows", t0), 100);
  EXPECT_NEAR(rec.Gauge("table_collision_rate", t0), EstimatedCollisionRate(40, 100), 1e-12);
  EXPECT_EQ(rec.Gauge("embedding_rows"), 40);
  EXPECT_EQ(rec.Gauge("embedding_bytes"), 10000);
  EXPECT_EQ(rec.Gauge("embedding_compression_ratio"), 10);
  EXPECT_EQ(rec.Gauge("shard_rows", {{"shard", "0"}}), 30);
  EXPECT_EQ(rec.Gauge("shard_skew"), 1.5);  // 30 against a mean of 20
}

// A training run records throughput, lookups, PS traffic and tables through the recorder.
TEST(TableMetrics, TrainerRecordsStepsLookupsAndTables) {
  auto c = Config("unified");
  c.embedding.rows = 1000;
  c.embedding.tables = 2;
  c.embedding.chunks = 2;
  for (auto& f : c.fields) f.vocab = 100;
  ps::InProcessClient ps(2);
  LocalCollective coll;
  monitoring::MemoryRecorder rec;
  auto t = Trainer::Create(c, &ps, &coll, &rec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = Reader(Data().valid, 500);  // 5000 examples: 10 steps
  auto stats = (*t)->TrainEpoch(r.get(), 0, 1, Quiet());
  ASSERT_TRUE(stats.ok());
  const monitoring::Labels train = {{"phase", "train"}};
  EXPECT_EQ(rec.Counter("train_samples_total"), 5000);
  EXPECT_EQ(rec.Counter("train_steps_total"), 10);
  EXPECT_EQ(rec.ObservationCount("train_step_seconds"), 10u);
  EXPECT_EQ(rec.Counter("lookup_keys_total", train), 5000.0 * 26 * 2);  // two probes per id
  EXPECT_EQ(rec.Counter("ps_pull_rows_total", train), rec.Counter("lookup_unique_keys_total", train));
  EXPECT_EQ(rec.Counter("ps_pull_bytes_total", train), rec.Counter("ps_pull_rows_total", train) * (8 + 4 * 4));
  EXPECT_EQ(rec.ObservationCount("ps_pull_seconds", train), 10u);
  EXPECT_EQ(rec.ObservationCount("ps_push_seconds"), 10u);
  EXPECT_EQ(rec.Gauge("lookup_keys_per_batch"), 500.0 * 26 * 2);
  EXPECT_GT(rec.Gauge("lookup_unique_ratio"), 0);
  EXPECT_LT(rec.Gauge("lookup_unique_ratio"), 1);
  EXPECT_GT(rec.Gauge("train_samples_per_second"), 0);
  EXPECT_NEAR(rec.Gauge("train_epoch_loss"), stats->mean_loss, 1e-12);
  // Round-robin chunks: every field has one 4-wide probe in each shared table.
  const auto infos = (*t)->TableInfos();
  ASSERT_EQ(infos.size(), 2u);
  for (const auto& i : infos) {
    EXPECT_EQ(i.method, "unified");
    EXPECT_TRUE(i.hashed);
    EXPECT_EQ(i.capacity, 1000u);
    EXPECT_EQ(i.ids, 26u * 100);
    EXPECT_EQ(i.full_bytes, 26u * 100 * 8 * 4 / 2);
  }
  auto st = ps.Stats();
  ASSERT_TRUE(st.ok());
  RecordTableMetrics(*st, infos, &rec);
  EXPECT_NEAR(rec.Gauge("table_collision_rate", {{"table", "0"}, {"method", "unified"}}), 1 - std::pow(1 - 1e-3, 2599),
              1e-12);
  EXPECT_GT(rec.Gauge("embedding_compression_ratio"), 2.5);  // 1000 rows of 4 per table vs 2600
  EXPECT_GE(rec.Gauge("shard_skew"), 1);
  EXPECT_LT(rec.Gauge("shard_skew"), 1.1);
}

}  // namespace
}  // namespace ember::workers
