#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "ember/common/file.h"
#include "ember/data/criteo.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/data/vocab.h"
#include "ember/embedding/plan.h"
#include "ember/embedding/table.h"
#include "ember/launcher/commands.h"
#include "ember/launcher/config.h"
#include "ember/monitoring/http_server.h"
#include "ember/serving/request_rows.h"
#include "ember/serving/server.h"
#include "ember/workers/trainer.h"
#include "http_client.h"

namespace ember::launcher {
namespace {

TEST(Config, DefaultsAndOverrides) {
  auto c = ParseConfig("[data]\ntrain = \"a.tsv\"\n[train]\nepochs = 3\n", "run.toml",
                       {"train.lr=0.01", "model.name=deepfm", "model.top_mlp=[64, 32]", "embedding.method=\"hash\""});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->train, "a.tsv");
  EXPECT_EQ(c->epochs, 3);
  EXPECT_DOUBLE_EQ(c->trainer.dense_lr, 0.01);
  EXPECT_EQ(c->model(), models::ModelKind::kDeepFm);
  EXPECT_EQ(c->trainer.model.top_mlp, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(c->method(), embedding::Method::kHash);
  EXPECT_EQ(c->batch_size, 1024u);  // default
  EXPECT_EQ(c->trainer.embedding.dim, 16);
  EXPECT_EQ(c->trainer.model.bottom_mlp, (std::vector<int64_t>{512, 256, 64}));
  // The effective text round-trips.
  auto again = ParseConfig(c->text, "effective");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->model(), models::ModelKind::kDeepFm);
  EXPECT_DOUBLE_EQ(again->trainer.dense_lr, 0.01);
}

TEST(Config, ErrorsNameFileLineAndKey) {
  auto unknown = ParseConfig("[train]\nepochs = 1\nepoch = 2\n", "run.toml");
  EXPECT_EQ(unknown.status().message(), "run.toml:3: unknown config key 'train.epoch'");
  auto type = ParseConfig("[train]\nbatch_size = \"big\"\n", "run.toml");
  EXPECT_EQ(type.status().message(), "run.toml:2: train.batch_size: expected an integer");
  auto range = ParseConfig("[embedding]\ndim = 0\n", "run.toml");
  EXPECT_NE(range.status().message().find("embedding.dim: must be in [1, 4096]"), std::string::npos);
  auto choice = ParseConfig("[model]\nname = \"bert\"\n", "run.toml");
  EXPECT_NE(choice.status().message().find("'bert' is not one of dlrm, deepfm, lr"), std::string::npos);
  auto syntax = ParseConfig("[train\n", "run.toml");
  EXPECT_NE(syntax.status().message().find("run.toml:1"), std::string::npos) << syntax.status().ToString();
  auto set = ParseConfig("", "run.toml", {"train.nope=1"});
  EXPECT_EQ(set.status().message(), "--set: unknown config key 'train.nope'");
  auto set2 = ParseConfig("", "run.toml", {"justakey"});
  EXPECT_NE(set2.status().message().find("expected key=value"), std::string::npos);
  EXPECT_EQ(LoadConfig("/no/such.toml").status().code(), StatusCode::kIoError);
}

// docs/config.md's key table is the declarations' (config_keys.cc): a key added, renamed or
// re-documented in the code and not in the docs (or the other way round) fails here.
TEST(Config, DocsTableIsTheDeclaredKeys) {
  auto doc = ReadFile(std::string(EMBER_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const std::string table = ConfigKeysMarkdown();
  if (doc->find(table) == std::string::npos) {
    const std::string out = std::filesystem::temp_directory_path() / "ember_config_keys.md";
    EMBER_CHECK(WriteFileAtomic(out, table).ok());
    ADD_FAILURE() << "docs/config.md does not hold the declared key table; the generated one is in " << out;
  }
}

// A key is one declaration: embedding.beta1 reaches the tables' optimizer without more code.
TEST(Config, DeclaredKeysReachTheirModules) {
  auto c = ParseConfig("[embedding]\noptimizer = \"adam\"\nbeta1 = 0.8\n", "run.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto tc = MakeTrainerConfig(*c);
  ASSERT_TRUE(tc.ok());
  EXPECT_FLOAT_EQ(tc->embedding.optimizer.beta1, 0.8f);
  EXPECT_FLOAT_EQ(tc->embedding.optimizer.beta2, 0.999f);
  EXPECT_EQ(tc->embedding.optimizer.kind, embedding::OptimizerKind::kAdam);
  EXPECT_EQ(ParseConfig("[embedding]\nbeta1 = 1\n", "run.toml").status().message(),
            "run.toml:2: embedding.beta1: must be in [0, 0.999999]");
}

// train.lr_decay and embedding.initial_accumulator left at auto: where rows carry over several
// epochs (every CTR model but lr, train.reset_rows = "never"), the dense layers train in the first
// epoch only and row-wise Adagrad starts at 40 / (global batch)^2; else 0.5 and 0, but deepfm and
// fm start their rows' Adagrad at 40 / (global batch)^2 whatever the epochs, and their rows restart
// each epoch (train.reset_rows auto). Values set stay.
TEST(Config, RowsCarriedOverEpochsTrainAgainstTheFirstEpochsDenseLayers) {
  struct Case {
    std::vector<std::string> sets;
    int workers;
    double decay;
    float accumulator;
  };
  const float per_1024 = static_cast<float>(40.0 / (1024.0 * 1024.0));
  for (const auto& k : std::vector<Case>{
           {{}, 1, 0.5, 0.0f},
           {{"train.epochs=3"}, 1, 0.0, per_1024},
           // deepfm and fm restart their rows each epoch (train.reset_rows auto), at 40 / batch^2.
           {{"train.epochs=3", "model.name=\"deepfm\""}, 1, 0.5, per_1024},
           {{"train.epochs=3", "model.name=\"deepfm\"", "train.reset_rows=\"never\""}, 1, 0.0, per_1024},
           {{"train.epochs=3", "model.name=\"dcn_v2\""}, 1, 0.0, per_1024},
           {{"model.name=\"deepfm\""}, 1, 0.5, per_1024},  // one epoch: the factorization machine's rows
           {{"model.name=\"fm\"", "train.reset_rows=\"each_epoch\"", "train.epochs=2"}, 1, 0.5, per_1024},
           {{"model.name=\"wide_deep\""}, 1, 0.5, 0.0f},
           {{"train.epochs=3", "model.name=\"lr\""}, 1, 0.5, 0.0f},
           {{"train.epochs=3", "train.reset_rows=\"each_epoch\""}, 1, 0.5, 0.0f},
           {{"train.epochs=3"}, 2, 0.0, per_1024 / 4},
           {{"train.epochs=3", "train.mode=\"async\""}, 2, 0.0, per_1024},
           {{"train.epochs=3", "train.batch_size=256"}, 1, 0.0, per_1024 * 16},
           {{"train.epochs=3", "train.lr_decay=0.8", "embedding.initial_accumulator=0.25"}, 1, 0.8, 0.25f},
       }) {
    std::string label;
    for (const auto& s : k.sets) label += s + " ";
    SCOPED_TRACE(label + "workers " + std::to_string(k.workers));
    auto c = ParseConfig("", "run.toml", k.sets);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto tc = MakeTrainerConfig(*c, k.workers);
    ASSERT_TRUE(tc.ok()) << tc.status().ToString();
    EXPECT_DOUBLE_EQ(tc->dense_lr_decay, k.decay);
    EXPECT_FLOAT_EQ(tc->embedding.optimizer.initial_accumulator, k.accumulator);
  }
}

// model.first_order, embedding.init_scale and embedding.lr left unset resolve by model: DLRM and
// DCN-v2 get first-order weights, rows starting at +-0.1 and Adagrad steps at 0.1, the others
// none of these; a value set stays.
TEST(Config, FirstOrderInitScaleAndRowStepsDefaultByModel) {
  struct Case {
    std::vector<std::string> sets;
    bool first_order;
    float init_scale;
    float lr;
  };
  for (const auto& k : std::vector<Case>{
           {{}, true, 0.1f, 0.1f},
           {{"model.name=\"dcn_v2\""}, true, 0.1f, 0.1f},
           {{"model.name=\"deepfm\""}, false, 0.01f, 0.05f},
           {{"model.name=\"wide_deep\""}, false, 0.01f, 0.05f},
           {{"model.name=\"fm\""}, false, 0.01f, 0.05f},
           {{"model.name=\"lr\""}, false, 0.01f, 0.05f},
           {{"model.first_order=false"}, false, 0.1f, 0.1f},
           {{"embedding.init_scale=0.02"}, true, 0.02f, 0.1f},
           {{"embedding.optimizer=\"adagrad\""}, true, 0.1f, 0.1f},
           {{"embedding.optimizer=\"adam\""}, true, 0.1f, 0.05f},
           {{"embedding.lr=0.3"}, true, 0.1f, 0.3f},
           {{"model.name=\"dcn_v2\"", "model.first_order=false", "embedding.init_scale=0"}, false, 0.0f, 0.1f},
       }) {
    std::string label;
    for (const auto& s : k.sets) label += s + " ";
    SCOPED_TRACE(label);
    auto c = ParseConfig("", "run.toml", k.sets);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto tc = MakeTrainerConfig(*c);
    ASSERT_TRUE(tc.ok()) << tc.status().ToString();
    EXPECT_EQ(tc->model.first_order, k.first_order);
    EXPECT_FLOAT_EQ(tc->embedding.init_scale, k.init_scale);
    EXPECT_FLOAT_EQ(tc->embedding.optimizer.lr, k.lr);
  }
  EXPECT_EQ(ShowConfigValue(RunConfig(), "model.first_order"), "auto");
  auto bad = ParseConfig("", "run.toml", {"model.first_order=\"yes\""});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.first_order"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("expected true or false"), std::string::npos) << bad.status().ToString();
}

// embedding.chunks left at 0 resolves to the most probes (at most 8) dividing embedding.dim; a
// value set stays.
TEST(Config, UnifiedChunksDefaultToTheMostProbesThatDivideTheWidth) {
  for (auto [sets, want] : std::vector<std::pair<std::vector<std::string>, int>>{
           {{}, 8}, {{"embedding.dim=12"}, 6}, {{"embedding.chunks=2"}, 2}, {{"embedding.dim=5"}, 5}}) {
    auto c = ParseConfig("", "run.toml", sets);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto tc = MakeTrainerConfig(*c);
    ASSERT_TRUE(tc.ok()) << tc.status().ToString();
    EXPECT_EQ(tc->embedding.chunks, want) << (sets.empty() ? "defaults" : sets[0]);
  }
}

// Every default docs/config.md states as a value is the default the code has: parsing the
// documented value gives the field a default RunConfig holds.
TEST(Config, DocumentedDefaultsAreTheDefaults) {
  const RunConfig defaults;
  int checked = 0;
  for (const auto& k : ConfigKeyDocs()) {
    const std::string& d = k.default_text;
    if (d.size() < 3 || d.front() != '`' || d.back() != '`' || d.find('`', 1) != d.size() - 1) continue;
    if (ShowConfigValue(defaults, k.name).empty()) continue;  // tables without a plain value
    auto c = ParseConfig("", "docs", {k.name + "=" + d.substr(1, d.size() - 2)});
    ASSERT_TRUE(c.ok()) << k.name << ": " << c.status().ToString();
    EXPECT_EQ(ShowConfigValue(*c, k.name), ShowConfigValue(defaults, k.name)) << k.name << " documented as " << d;
    ++checked;
  }
  EXPECT_GT(checked, 80);
}

std::string Dir() {
  auto d = std::filesystem::temp_directory_path() / ("ember_launcher_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

// Train on the real Criteo sample (format smoke test), checkpoint, evaluate the checkpoint.
TEST(Commands, TrainAndEvalOnRealCriteoSample) {
  const std::string shared = EMBER_SHARED_DATA_DIR;
  const std::string train = shared + "/criteo/criteo_kaggle_train.tsv";
  if (!PathExists(train)) GTEST_SKIP() << "shared data sample absent: " << train;
  const std::string root = Dir() + "/ckpt";
  std::filesystem::remove_all(root);
  auto c = ParseConfig("", "test",
                       {"data.train=\"" + train + "\"", "data.test=\"" + shared + "/criteo/criteo_kaggle_test.tsv\"",
                        "model.bottom_mlp=[64]", "model.top_mlp=[64]", "train.batch_size=128", "train.progress=\"off\"",
                        "train.epochs=2", "checkpoint.dir=\"" + root + "\""});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->train_samples, 14400u);
  EXPECT_EQ(m->eval_samples, 391u);
  EXPECT_GT(m->auc, 0.55);  // 7,200 rows: a smoke test of the real format, not a quality claim
  EXPECT_GT(m->peak_rss_bytes, 0u);
  EXPECT_NE(out.str().find("test: 391 samples, AUC"), std::string::npos) << out.str();

  std::ostringstream eval_out;
  auto e = RunEval(root, "", 0, eval_out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->auc, m->auc);
  EXPECT_DOUBLE_EQ(e->logloss, m->logloss);

  const std::string json = Dir() + "/metrics.json";
  ASSERT_TRUE(WriteMetricsJson(json, *m).ok());
  auto text = ReadFile(json);
  for (const char* key : {"\"auc\"", "\"logloss\"", "\"samples_per_sec\"", "\"peak_rss_bytes\""})
    EXPECT_NE(text->find(key), std::string::npos) << key;
}

TEST(Commands, TrainRefusesMissingData) {
  auto c = ParseConfig("", "t", {"data.train=\"/no/such/file.tsv\"", "train.progress=\"off\""});
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  EXPECT_EQ(m.status().code(), StatusCode::kIoError);
  EXPECT_NE(m.status().message().find("/no/such/file.tsv"), std::string::npos);
  auto none = ParseConfig("", "t");
  EXPECT_NE(RunTrain(*none, out).status().message().find("data.train"), std::string::npos);
}

// A small synthetic train/valid/test triple for the compression commands.
struct Small {
  std::string train, valid, test;
  Small() {
    data::SyntheticCtrOptions o;
    o.max_vocab = 3000;
    o.rows = 20000;
    train = Dir() + "/s_train.tsv";
    valid = Dir() + "/s_valid.tsv";
    test = Dir() + "/s_test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 4000;
    o.seed = 2;
    EMBER_CHECK(data::WriteSyntheticCtr(o, valid).ok());
    o.seed = 3;
    EMBER_CHECK(data::WriteSyntheticCtr(o, test).ok());
  }
  std::vector<std::string> Sets() const {
    return {"data.train=\"" + train + "\"", "data.valid=\"" + valid + "\"", "data.test=\"" + test + "\"",
            "model.bottom_mlp=[32]",        "model.top_mlp=[32]",           "embedding.dim=8",
            "train.batch_size=256",         "train.progress=\"off\""};
  }
};
const Small& SmallFiles() {
  static Small s;
  return s;
}

// A DLRM checkpoint without first-order weights (the default before model.first_order's auto)
// is scored and resumed as it was built when the configuration leaves model.first_order unset;
// set to true, --resume refuses it by name.
TEST(Commands, ACheckpointKeepsItsFirstOrderWeightsOrTheirAbsence) {
  const std::string root = Dir() + "/ckpt_no_first_order";
  std::filesystem::remove_all(root);
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), {"checkpoint.dir=\"" + root + "\"", "train.epochs=2"});
  auto without = sets;
  without.push_back("model.first_order=false");
  auto c = ParseConfig("", "t", without);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(out.str().find("model.first_order true"), std::string::npos) << out.str();
  std::ostringstream quiet;
  auto e = RunEval(m->checkpoint, SmallFiles().test, 0, quiet);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->auc, m->auc);

  auto more = sets;
  more.back() = "train.epochs=3";
  auto r = ParseConfig("", "t", more);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  r->resume = true;
  std::ostringstream log;
  auto resumed = RunTrain(*r, log);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_NE(log.str().find("model.first_order false (auto: as " + m->checkpoint + " was trained)"), std::string::npos)
      << log.str();
  EXPECT_EQ(resumed->table_rows, m->table_rows);

  more.push_back("model.first_order=true");
  auto forced = ParseConfig("", "t", more);
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();
  forced->resume = true;
  auto refused = RunTrain(*forced, log);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("holds a dlrm without first-order weights; model.first_order = true"),
            std::string::npos)
      << refused.status().ToString();
}

// Epochs chosen on data.valid: each scored, the best kept (written to checkpoint.dir/best and,
// where a later epoch was worse, restored), train.patience stopping the run.
TEST(Commands, EpochsAreChosenOnValidation) {
  const std::string root = Dir() + "/ckpt_valid";
  std::filesystem::remove_all(root);
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), {"train.epochs=4", "train.patience=1", "checkpoint.dir=\"" + root + "\""});
  auto c = ParseConfig("", "t", sets);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_GE(m->best_epoch, 1);
  EXPECT_LE(m->best_epoch, 4);
  EXPECT_GT(m->valid_auc, 0.6);
  EXPECT_NE(out.str().find("epoch 1: validation AUC"), std::string::npos) << out.str();
  // The model tested is the best epoch's: its checkpoint scores the test file the same.
  std::ostringstream quiet;
  auto best = RunEval(root + "/best", SmallFiles().test, 0, quiet);
  ASSERT_TRUE(best.ok()) << best.status().ToString();
  EXPECT_DOUBLE_EQ(best->auc, m->auc);
  std::printf("best epoch %d of 4 (patience 1): validation AUC %.5f, test AUC %.5f\n", m->best_epoch, m->valid_auc,
              m->auc);
}

// Without checkpoint.dir a one-worker run keeps its best epoch in a scratch directory of its own
// (removed at the end): the model tested is the one a run of exactly that many epochs ends with.
TEST(Commands, TheBestEpochIsKeptWithoutACheckpointDir) {
  auto sets = SmallFiles().Sets();
  // The behaviour that lets later epochs overfit: no row reset, no dense decay, a fast rate.
  sets.insert(sets.end(), {"train.reset_rows=\"never\"", "train.lr_decay=1.0", "embedding.initial_accumulator=0.0",
                           "embedding.lr=0.5"});
  auto four = sets;
  four.push_back("train.epochs=4");
  auto c = ParseConfig("", "t", four);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_GE(m->best_epoch, 1);
  if (m->best_epoch < 4) {
    EXPECT_NE(out.str().find("kept epoch " + std::to_string(m->best_epoch)), std::string::npos) << out.str();
  }
  auto exact = sets;
  exact.push_back("train.epochs=" + std::to_string(m->best_epoch));
  auto c2 = ParseConfig("", "t", exact);
  ASSERT_TRUE(c2.ok());
  std::ostringstream out2;
  auto m2 = RunTrain(*c2, out2);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_DOUBLE_EQ(m->auc, m2->auc) << out.str();
  const std::string prefix = "ember-best-" + std::to_string(::getpid()) + "-";
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    EXPECT_NE(e.path().filename().string().rfind(prefix, 0), 0u) << e.path() << " left behind";
  std::printf("best epoch %d of 4 without checkpoint.dir: test AUC %.5f, %d epochs alone %.5f\n", m->best_epoch, m->auc,
              m->best_epoch, m2->auc);
}

// Exports `checkpoint` at every precision and scores each export on the test file: AUC within
// 1e-6 (fp32), 5e-4 (fp16), 2e-3 (int8) of the checkpoint's; the file as large as reported.
void ExpectExportParity(const std::string& checkpoint, const std::string& tag) {
  std::ostringstream out;
  auto ref = RunEval(checkpoint, SmallFiles().test, 0, out);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const std::pair<const char*, double> precisions[] = {{"fp32", 1e-6}, {"fp16", 5e-4}, {"int8", 2e-3}};
  uint64_t fp32_values = 0;
  for (const auto& [precision, tolerance] : precisions) {
    SCOPED_TRACE(tag + " " + precision);
    const std::string path = Dir() + "/" + tag + "-" + precision + ".embx";
    auto r = RunExport(checkpoint, path, precision, out);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->summary.file_bytes, std::filesystem::file_size(path));
    EXPECT_NE(out.str().find("file " + std::to_string(r->summary.file_bytes) + " bytes"), std::string::npos);
    const uint64_t values = r->summary.value_bytes();
    if (std::string(precision) == "fp32") fp32_values = values;
    const uint64_t bytes_per_value = std::string(precision) == "fp16" ? 2 : std::string(precision) == "int8" ? 1 : 4;
    EXPECT_EQ(values * 4, fp32_values * bytes_per_value);
    auto e = RunEval(path, SmallFiles().test, 0, out);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->eval_samples, ref->eval_samples);
    EXPECT_NEAR(e->auc, ref->auc, tolerance);
  }
}

// Trains the small files with `extra` settings and checkpoints into a fresh `root`.
Result<RunMetrics> TrainWithCheckpoint(const std::vector<std::string>& extra, const std::string& root,
                                       std::ostream& out) {
  std::filesystem::remove_all(root);
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), extra.begin(), extra.end());
  sets.push_back("checkpoint.dir=\"" + root + "\"");
  EMBER_ASSIGN_OR_RETURN(auto c, ParseConfig("", "t", sets));
  return RunTrain(c, out);
}

// Trains `extra` on the small files with a checkpoint and checks its exports (see above).
void TrainAndCheckExports(const std::vector<std::string>& extra, const std::string& tag) {
  const std::string root = Dir() + "/exp-" + tag;
  std::ostringstream out;
  auto m = TrainWithCheckpoint(extra, root, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ExpectExportParity(m->checkpoint, tag);
  // At fp32 the exported values are the held parameters (dense tables: nothing else is held).
  auto r = RunExport(m->checkpoint, root + "/again.embx", "fp32", out);
  ASSERT_TRUE(r.ok());
  // (fp16 rows are held at 2 bytes and exported at 4; DSL also holds masks.)
  const uint64_t held_values = tag == "fp16-rows" ? 2 * r->held_param_bytes : r->held_param_bytes;
  if (tag.find("dsl") == std::string::npos) {  // DSL also holds masks
    EXPECT_EQ(r->summary.value_bytes(), held_values) << out.str();
  }
  if (tag == "full" || tag == "hash") {
    EXPECT_LE(r->summary.value_bytes(), r->planned_param_bytes) << out.str();
  }
}

// Periodic checkpoints keep the newest checkpoint.keep; --resume from one of them continues at its
// step and data position and ends exactly where the uninterrupted run ended; a truncated shard file
// is refused by name and inspect reports what a checkpoint holds.
// Also Unified Embedding under a budget, whose frequent values the resumed job counts again and
// reads from their own rows, in both of Wide & Deep's groups.
TEST(Commands, ResumeFromAPeriodicCheckpointEndsLikeTheUninterruptedRun) {
  // 20000 rows / 256 = 79 steps per epoch, 2 epochs: checkpoints every 30 steps, the last 2 kept.
  const std::vector<std::string> periodic = {"train.epochs=2", "checkpoint.every_steps=30", "checkpoint.keep=2"};
  {
    SCOPED_TRACE("unified with frequent values");
    std::vector<std::string> unified = periodic;
    unified.insert(unified.end(),
                   {"model.name=\"wide_deep\"", "embedding.method=\"unified\"", "embedding.budget=\"1/10\""});
    const std::string root = Dir() + "/resume-u";
    std::ostringstream out;
    auto full = TrainWithCheckpoint(unified, root, out);
    ASSERT_TRUE(full.ok()) << full.status().ToString();
    ASSERT_NE(out.str().find("unified keeps collisionless rows for the"), std::string::npos) << out.str();
    auto sets = SmallFiles().Sets();
    sets.insert(sets.end(), unified.begin(), unified.end());
    sets.push_back("checkpoint.dir=\"" + root + "\"");
    std::filesystem::remove_all(root + "/ckpt-158");
    auto c = ParseConfig("", "t", sets);
    ASSERT_TRUE(c.ok());
    c->resume = true;
    std::ostringstream log;
    auto resumed = RunTrain(*c, log);
    ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
    EXPECT_NE(log.str().find("resumed from " + root + "/ckpt-150 at step 150"), std::string::npos) << log.str();
    EXPECT_EQ(resumed->auc, full->auc);
    EXPECT_EQ(resumed->table_rows, full->table_rows);
    // Resumed with other frequent values, ids would read other rows: refused.
    c->frequent_share = 0.25;
    std::filesystem::remove_all(root + "/ckpt-158");
    auto refused = RunTrain(*c, log);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("differ from the ones the checkpoint was trained with"),
              std::string::npos)
        << refused.status().ToString();
  }
  const std::string root = Dir() + "/resume-a";
  std::ostringstream out;
  auto full = TrainWithCheckpoint(periodic, root, out);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  std::vector<std::string> kept;
  for (const auto& e : std::filesystem::directory_iterator(root)) kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  // (and best/: the epoch data.valid chose)
  EXPECT_EQ(kept, (std::vector<std::string>{"best", "ckpt-150", "ckpt-158"}));
  // Resume from step 150 (epoch 2, 71 steps in) in a copy of that checkpoint alone.
  const std::string other = Dir() + "/resume-b";
  std::filesystem::remove_all(other);
  std::filesystem::create_directories(other);
  std::filesystem::copy(root + "/ckpt-150", other + "/ckpt-150", std::filesystem::copy_options::recursive);
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), periodic.begin(), periodic.end());
  sets.push_back("checkpoint.dir=\"" + other + "\"");
  auto c = ParseConfig("", "t", sets);
  ASSERT_TRUE(c.ok());
  c->resume = true;
  std::ostringstream log;
  auto resumed = RunTrain(*c, log);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_NE(log.str().find("resumed from " + other + "/ckpt-150 at step 150 (epoch 2, 18176 examples in)"),
            std::string::npos)
      << log.str();
  EXPECT_EQ(resumed->train_samples, 20000u - 18176u);
  EXPECT_EQ(resumed->auc, full->auc);
  EXPECT_EQ(resumed->logloss, full->logloss);
  EXPECT_EQ(resumed->table_rows, full->table_rows);
  EXPECT_EQ(resumed->checkpoint, other + "/ckpt-158");

  std::ostringstream info;
  ASSERT_TRUE(RunInspect(other, false, info).ok());
  EXPECT_NE(info.str().find("checkpoint " + other + "/ckpt-158\n  step 158; data position: 2 epoch(s) done"),
            std::string::npos)
      << info.str();
  // DLRM's rows and its first-order weights (model.first_order, auto): a table of each per field.
  EXPECT_NE(info.str().find("52 tables, " + std::to_string(full->table_rows) + " rows"), std::string::npos)
      << info.str();
  // A truncated shard file: inspect and resume refuse it by name; the files are left as they are.
  const std::string shard = other + "/ckpt-158/shard-0.bin";
  const auto size = std::filesystem::file_size(shard);
  std::filesystem::resize_file(shard, size - 100);
  std::ostringstream ignored;
  Status bad = RunInspect(other, false, ignored);
  EXPECT_EQ(bad.code(), StatusCode::kCorruption);
  EXPECT_NE(bad.message().find(shard), std::string::npos) << bad.ToString();
  auto again = RunTrain(*c, ignored);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find(shard), std::string::npos) << again.status().ToString();
  EXPECT_EQ(std::filesystem::file_size(shard), size - 100);
  c->checkpoint_dir = Dir() + "/no-such-dir";
  auto none = RunTrain(*c, ignored);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("--resume: checkpoint path " + c->checkpoint_dir + " does not exist"),
            std::string::npos)
      << none.status().ToString();
}

// `ember plan`'s text for the small files with `extra` settings ("" where it fails).
// The small files' configuration with `extra`, its trainer configuration and what
// ResolveEmbedding makes of them (or the error of whichever step failed).
struct Resolution {
  RunConfig config;
  workers::TrainerConfig trainer;
  Result<ResolvedEmbedding> resolved = Status::Internal("not resolved");
};
Resolution ResolveSmall(const std::vector<std::string>& extra) {
  Resolution r;
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), extra.begin(), extra.end());
  auto c = ParseConfig("", "t", sets);
  if (!c.ok()) {
    r.resolved = c.status();
    return r;
  }
  r.config = *c;
  auto tc = MakeTrainerConfig(r.config);
  if (!tc.ok()) {
    r.resolved = tc.status();
    return r;
  }
  r.trainer = *tc;
  r.resolved = ResolveEmbedding(r.config, &r.trainer);
  return r;
}

std::string PlanText(const std::vector<std::string>& extra) {
  auto sets = SmallFiles().Sets();
  sets.insert(sets.end(), extra.begin(), extra.end());
  auto c = ParseConfig("", "t", sets);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  if (!c.ok() || !RunPlan(*c, out).ok()) return "";
  return out.str();
}

TEST(Commands, PlanShowsEveryFieldAndTheBudget) {
  auto sets = SmallFiles().Sets();
  sets.push_back("embedding.method=\"hash\"");
  sets.push_back("embedding.budget=\"1/10\"");
  sets.push_back("embedding.field_methods={C1 = \"full\", C2 = \"dsl\"}");
  std::ostringstream out;
  const std::string text = PlanText({"embedding.method=\"hash\"", "embedding.budget=\"1/10\"",
                                     "embedding.field_methods={C1 = \"full\", C2 = \"dsl\"}"});
  EXPECT_NE(text.find("within the budget"), std::string::npos) << text;
  EXPECT_NE(text.find("C26"), std::string::npos);
  EXPECT_NE(text.find("sparse"), std::string::npos);  // C2's DSL table
  // A budget the method cannot meet is a config error with the reason.
  sets.back() = "embedding.field_methods={C1 = \"full\"}";
  sets.push_back("embedding.method=\"full\"");
  sets[sets.size() - 3] = "embedding.budget=100";
  auto full = ParseConfig("", "t", sets);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  auto st = RunPlan(*full, out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("cannot be met by full"), std::string::npos) << st.ToString();
  auto bad = ParseConfig("", "t", {"embedding.field_methods={C99 = \"full\"}"});
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(MakeTrainerConfig(*bad).status().message().find("no field named 'C99'"), std::string::npos);
  EXPECT_NE(ParseConfig("", "t", {"embedding.field_methods={C1 = \"unified\"}"})
                .status()
                .message()
                .find("not one of full, hash, dsl"),
            std::string::npos);
}

// OptEmbed's three stages from one config: stage checkpoints, the search file, and an exported
// retraining checkpoint that `ember eval` rebuilds from its manifest.
TEST(Commands, OptEmbedRunsItsStagesAndEvalRebuildsTheRetrainedTables) {
  const std::string root = Dir() + "/oe";
  std::ostringstream out;
  auto m = TrainWithCheckpoint({"embedding.method=\"optembed\"", "embedding.budget=0.2", "optembed.rounds=2",
                                "optembed.population=6", "optembed.search_samples=2000"},
                               root, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_LE(m->param_bytes, m->budget_bytes) << out.str();
  EXPECT_EQ(m->widths.size(), 26u);
  EXPECT_GT(m->auc, 0.6);
  EXPECT_TRUE(PathExists(root + "/supernet/manifest.json"));
  EXPECT_TRUE(PathExists(root + "/optembed-search.json"));
  std::ostringstream eval_out;
  auto e = RunEval(m->checkpoint, "", 0, eval_out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->auc, m->auc);
  // The retrained checkpoint exports (kept rows at their widths); the supernet is refused.
  ExpectExportParity(m->checkpoint, "optembed");
  auto sup = RunExport(root + "/supernet", Dir() + "/supernet.embx", "fp32", eval_out);
  EXPECT_EQ(sup.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(sup.status().message().find("supernet"), std::string::npos);
}

TEST(Commands, DslUnderABudgetHoldsItsBytes) {
  auto sets = SmallFiles().Sets();
  sets.push_back("embedding.method=\"dsl\"");
  sets.push_back("embedding.budget=0.6");  // a row per value at density (0.6 * 64 - 2) / 64 >= dsl.min_density
  sets.push_back("dsl.interval=20");
  // DSL's group alone: a hashed first-order group beside it holds only the rows its values reach.
  sets.push_back("model.first_order=false");
  auto c = ParseConfig("", "t", sets);
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // Rows are allotted floor/ceil of density * dim entries: the held bytes match the budget
  // to within a fraction of a percent.
  EXPECT_NEAR(static_cast<double>(m->param_bytes) / static_cast<double>(m->budget_bytes), 1.0, 0.01) << out.str();
  EXPECT_GT(m->auc, 0.6);
}

// Every value of data.train counted, with no cut.
Result<data::Vocabulary> CountEveryValue(const RunConfig& c) {
  auto reader = data::CriteoReader::Open(MakeReaderOptions(c, c.train, true));
  if (!reader.ok()) return reader.status();
  return data::CountVocabulary(reader->get(), data::VocabCut{});
}

// A budget covers the first-order weights beside the main group (DeepFM, Wide & Deep, FM): each
// group gets bytes in proportion to its width, so the model's held parameters stay within it
// whatever the main method; under DSL and OptEmbed (whose masks and widths need width) the
// first-order weights are hashed into their share. Checkpoints rebuild the hashed group.
// A full table under a budget keeps the most frequent values of data.train that fit (a row per
// value in every group), the others read their field's out-of-vocabulary row; the checkpoint and
// its exports (served from raw values, without the vocabulary) predict as the training job did.
TEST(Commands, AFullTableUnderABudgetKeepsTheMostFrequentValues) {
  const std::vector<std::string> extra = {"model.name=\"deepfm\"", "embedding.method=\"full\"",
                                          "embedding.budget=\"1/10\""};
  auto res = ResolveSmall(extra);
  const auto& resolved = res.resolved;
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  const RunConfig* c = &res.config;
  const workers::TrainerConfig* tc = &res.trainer;
  // Every value of data.train, in both groups (8 + 1 wide), is the full table.
  auto counted = CountEveryValue(*c);
  ASSERT_TRUE(counted.ok()) << counted.status().ToString();
  uint64_t distinct = 0;
  for (const auto& f : counted->fields) distinct += f.distinct;
  const uint64_t full = distinct * 9 * 4, budget = full / 10, fields = tc->fields.size();
  EXPECT_EQ(resolved->full_bytes, full);
  EXPECT_EQ(resolved->budget_bytes, budget);
  // Each field's out-of-vocabulary row, then as many values as fit.
  const uint64_t kept = (budget - fields * 9 * 4) / (9 * 4);
  const data::Vocabulary top = data::TopValues(*counted, kept);
  uint64_t rows = 0, top_rows = 0;
  for (size_t f = 0; f < fields; ++f) {
    rows += tc->fields[f].vocab;
    top_rows += top.fields[f].values.size() + (top.fields[f].values.size() < top.fields[f].distinct ? 1 : 0);
  }
  EXPECT_EQ(rows, top_rows);
  EXPECT_LE(rows * 9 * 4, budget);
  EXPECT_TRUE(tc->embedding.vocabulary);
  ASSERT_NE(resolved->vocab, nullptr);
  EXPECT_NE(resolved->note.find("full keeps the " + std::to_string(kept) + " most frequent of " +
                                std::to_string(distinct) + " values of data.train"),
            std::string::npos)
      << resolved->note;
  const std::string plan = PlanText(extra);
  EXPECT_NE(plan.find("full keeps the " + std::to_string(kept) + " most frequent"), std::string::npos) << plan;
  EXPECT_NE(plan.find("of the full table), within the budget"), std::string::npos) << plan;

  std::ostringstream out;
  const std::string root = Dir() + "/full-budget";
  auto m = TrainWithCheckpoint(extra, root, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->full_bytes, full);
  EXPECT_LE(m->param_bytes, m->budget_bytes) << out.str();
  EXPECT_GT(m->param_bytes, m->budget_bytes * 9 / 10) << out.str();
  EXPECT_GT(m->auc, 0.6);
  std::ostringstream eval_out;
  auto e = RunEval(m->checkpoint, "", 0, eval_out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->auc, m->auc);
  ExpectExportParity(m->checkpoint, "full-budget");
  // A budget below the fields' out-of-vocabulary rows cannot be met.
  const auto refused =
      ResolveSmall({"model.name=\"deepfm\"", "embedding.method=\"full\"", "embedding.budget=100"}).resolved;
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("cannot be met by full: the fields' out-of-vocabulary rows alone take"),
            std::string::npos)
      << refused.status().ToString();
}

// Unified under a budget: embedding.frequent_share (by default half) of the budget buys collisionless
// rows in both groups for the most frequent values of data.train, the shared tables get the rest;
// the checkpoint evaluates as the job did (counting the values again) and its exports, served
// from the values their tables hold, predict as the checkpoint does.
TEST(Commands, UnifiedFrequentValuesGetRowsOfTheirOwnFromTheBudget) {
  const std::vector<std::string> extra = {"model.name=\"deepfm\"", "embedding.method=\"unified\"",
                                          "embedding.budget=\"1/10\""};
  auto res = ResolveSmall(extra);
  const auto& resolved = res.resolved;
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  const RunConfig* c = &res.config;
  const workers::TrainerConfig* tc = &res.trainer;
  auto counted = CountEveryValue(*c);
  ASSERT_TRUE(counted.ok()) << counted.status().ToString();
  uint64_t distinct = 0;
  for (const auto& f : counted->fields) distinct += f.distinct;
  const uint64_t budget = distinct * 9 * 4 / 10, kept = budget / 2 / (9 * 4);
  EXPECT_EQ(resolved->budget_bytes, budget);
  const data::Vocabulary top = data::TopValues(*counted, kept);
  ASSERT_NE(tc->embedding.frequent, nullptr);
  ASSERT_EQ(tc->embedding.frequent_counts.size(), tc->fields.size());
  uint64_t total = 0;
  for (size_t f = 0; f < tc->fields.size(); ++f) {
    EXPECT_EQ(tc->embedding.frequent_counts[f], top.fields[f].values.size()) << f;
    for (uint64_t v : top.fields[f].values) EXPECT_EQ(tc->embedding.frequent->fields[f].count(v), 1u) << f;
    total += tc->embedding.frequent_counts[f];
  }
  EXPECT_EQ(total, kept);
  ASSERT_TRUE(tc->first_order_embedding.has_value());
  EXPECT_EQ(tc->first_order_embedding->frequent_counts, tc->embedding.frequent_counts);
  // The shared tables: the main group's share less its frequent rows (8 floats per value).
  EXPECT_EQ(tc->embedding.rows, (resolved->main_budget_bytes - kept * 8 * 4) / (2 * (8 / tc->embedding.chunks) * 4));
  EXPECT_NE(resolved->note.find("unified keeps collisionless rows for the " + std::to_string(kept) +
                                " most frequent of " + std::to_string(distinct) + " values of data.train"),
            std::string::npos)
      << resolved->note;
  const std::string plan = PlanText(extra);
  EXPECT_NE(plan.find("of the full table), within the budget"), std::string::npos) << plan;
  EXPECT_NE(plan.find("0,1 +"), std::string::npos) << plan;  // a field's shared tables and its frequent values'

  std::ostringstream out;
  const std::string root = Dir() + "/unified-frequent";
  auto m = TrainWithCheckpoint(extra, root, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_LE(m->param_bytes, m->budget_bytes) << out.str();
  EXPECT_GT(m->param_bytes, m->budget_bytes * 9 / 10) << out.str();
  EXPECT_GT(m->auc, 0.6);
  std::ostringstream eval_out;
  auto e = RunEval(m->checkpoint, "", 0, eval_out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->auc, m->auc);
  ExpectExportParity(m->checkpoint, "unified-frequent");
  // Without a budget there is nothing to take a share of, and a share of 0 keeps none.
  auto plain = ResolveSmall({"model.name=\"deepfm\"", "embedding.method=\"unified\""});
  ASSERT_TRUE(plain.resolved.ok()) << plain.resolved.status().ToString();
  EXPECT_TRUE(plain.trainer.embedding.frequent_counts.empty());
  auto none = ResolveSmall({"model.name=\"deepfm\"", "embedding.method=\"unified\"", "embedding.budget=\"1/10\"",
                            "embedding.frequent_share=0"});
  ASSERT_TRUE(none.resolved.ok()) << none.resolved.status().ToString();
  EXPECT_TRUE(none.trainer.embedding.frequent_counts.empty());
  EXPECT_EQ(none.trainer.embedding.rows,
            none.resolved->main_budget_bytes / (2 * (8 / none.trainer.embedding.chunks) * 4));
}

TEST(Commands, ABudgetCoversTheFirstOrderWeights) {
  const std::vector<std::string> wide = {"model.name=\"wide_deep\"", "embedding.method=\"hash\"",
                                         "embedding.budget=\"1/10\""};
  const std::string plan = PlanText(wide);
  // Both groups' tables, together 1/10 of both groups' full tables (8 + 1 wide: embedding.dim 8).
  EXPECT_NE(plan.find("(0.1000 of the full table), within the budget"), std::string::npos) << plan;
  EXPECT_NE(plan.find("the 1-wide group 'linear', hash, in its share of the budget"), std::string::npos) << plan;
  auto res = ResolveSmall(wide);
  const auto& resolved = res.resolved;
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  const workers::TrainerConfig* tc = &res.trainer;
  uint64_t vocab = 0;
  for (const auto& f : tc->fields) vocab += f.vocab;
  EXPECT_EQ(resolved->budget_bytes, vocab * 9 * 4 / 10);
  EXPECT_EQ(resolved->main_budget_bytes, resolved->budget_bytes * 8 / 9);
  ASSERT_TRUE(tc->first_order_embedding.has_value());
  EXPECT_EQ(tc->embedding.rows, resolved->main_budget_bytes / (8 * 4));
  EXPECT_EQ(tc->first_order_embedding->rows, (resolved->budget_bytes - resolved->main_budget_bytes) / 4);

  // LR's only group is its 1-wide first-order weights: under unified they are probed at one
  // chunk whatever embedding.chunks says (8 by default), and the budget is theirs alone.
  auto lr_sets = SmallFiles().Sets();
  lr_sets.insert(lr_sets.end(), {"model.name=\"lr\"", "embedding.method=\"unified\"", "embedding.budget=\"1/10\""});
  auto lr = ParseConfig("", "t", lr_sets);
  ASSERT_TRUE(lr.ok());
  const std::string lr_plan =
      PlanText({"model.name=\"lr\"", "embedding.method=\"unified\"", "embedding.budget=\"1/10\""});
  EXPECT_NE(lr_plan.find("of the full table), within the budget"), std::string::npos) << lr_plan;
  // With embedding.first_order_chunks, each value reads that many 1-wide rows, summed.
  const std::string summed_plan = PlanText({"model.name=\"lr\"", "embedding.method=\"unified\"",
                                            "embedding.budget=\"1/10\"", "embedding.first_order_chunks=2"});
  EXPECT_NE(summed_plan.find("2 x 1, summed"), std::string::npos) << summed_plan;
  const std::string deepfm_plan = PlanText({"model.name=\"deepfm\"", "embedding.method=\"unified\"",
                                            "embedding.budget=\"1/10\"", "embedding.first_order_chunks=3"});
  EXPECT_NE(deepfm_plan.find("'linear', unified, 3 probes summed, in its share of the budget"), std::string::npos)
      << deepfm_plan;
  std::ostringstream lr_out;
  auto lr_run = RunTrain(*lr, lr_out);
  ASSERT_TRUE(lr_run.ok()) << lr_run.status().ToString();
  EXPECT_LE(lr_run->param_bytes, lr_run->budget_bytes);
  EXPECT_EQ(lr_run->budget_bytes, vocab * 4 / 10);

  // Under DSL, LR's 1-wide rows have no entries to choose between: the budget holds hashed rows
  // (a mask byte beside each 4-byte weight would buy nothing), the run says so, and its
  // checkpoint evaluates as it trained.
  {
    auto dsl = ResolveSmall({"model.name=\"lr\"", "embedding.method=\"dsl\"", "embedding.budget=\"1/10\""});
    const auto& dres = dsl.resolved;
    ASSERT_TRUE(dres.ok()) << dres.status().ToString();
    const workers::TrainerConfig* dtc = &dsl.trainer;
    EXPECT_EQ(dtc->embedding.method, embedding::Method::kHash);
    EXPECT_EQ(dtc->embedding.rows, vocab * 4 / 10 / 4);
    EXPECT_EQ(dtc->embedding.dsl_rows, 0u);
    EXPECT_NE(dres->note.find("DSL cannot sparsify within a row: its budget holds hashed rows"), std::string::npos)
        << dres->note;
    std::ostringstream out;
    auto m = TrainWithCheckpoint({"model.name=\"lr\"", "embedding.method=\"dsl\"", "embedding.budget=\"1/10\""},
                                 Dir() + "/lr-dsl-budget", out);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_LE(m->param_bytes, m->budget_bytes) << out.str();
    EXPECT_GT(m->param_bytes, m->budget_bytes / 2) << out.str();
    EXPECT_NE(out.str().find("its budget holds hashed rows"), std::string::npos) << out.str();
    std::ostringstream eval_out;
    auto e = RunEval(m->checkpoint, "", 0, eval_out);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_DOUBLE_EQ(e->auc, m->auc);
  }

  for (const char* method : {"dsl", "optembed"}) {
    std::vector<std::string> extra = {"model.name=\"wide_deep\"",    std::string("embedding.method=\"") + method + "\"",
                                      "embedding.budget=0.3",        "dsl.interval=20",
                                      "optembed.rounds=2",           "optembed.population=6",
                                      "optembed.search_samples=2000"};
    std::ostringstream out;
    auto m = TrainWithCheckpoint(extra, Dir() + "/fo-budget-" + method, out);
    ASSERT_TRUE(m.ok()) << method << ": " << m.status().ToString();
    EXPECT_LE(m->param_bytes, m->budget_bytes) << method << "\n" << out.str();
    EXPECT_GT(m->param_bytes, m->budget_bytes / 2) << method << "\n" << out.str();
    EXPECT_GT(m->auc, 0.6) << method;
    // The checkpoint rebuilds the hashed first-order table: evaluation predicts as training did.
    std::ostringstream eval_out;
    auto e = RunEval(m->checkpoint, "", 0, eval_out);
    ASSERT_TRUE(e.ok()) << method << ": " << e.status().ToString();
    EXPECT_DOUBLE_EQ(e->auc, m->auc) << method;
  }
}

TEST(Commands, MonitoringPortErrorsNameTheKey) {
  auto bad = ParseConfig("[monitoring]\nport = 70000\n", "run.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("monitoring.port"), std::string::npos) << bad.status().ToString();
  // A port already taken: the run stops before training, naming the key and the address.
  monitoring::HttpServer taken(monitoring::HttpServerOptions{});
  ASSERT_TRUE(taken.Start().ok());
  auto sets = SmallFiles().Sets();
  sets.push_back("monitoring.port=" + std::to_string(taken.port()));
  auto c = ParseConfig("", "t", sets);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("monitoring.port: http server: cannot listen on 127.0.0.1:" +
                                      std::to_string(taken.port())),
            std::string::npos)
      << m.status().ToString();
}

TEST(Export, EveryMethodServesWhatItsCheckpointEvaluates) {
  TrainAndCheckExports({"embedding.method=\"full\""}, "full");
  TrainAndCheckExports({"embedding.method=\"hash\"", "embedding.rows=3000"}, "hash");
  std::string chunks = "embedding.field_chunks=[1";  // narrower fields are zero-padded
  for (int f = 1; f < 26; ++f) chunks += f % 3 ? ",2" : ",1";
  TrainAndCheckExports({"embedding.method=\"unified\"", "embedding.chunks=2", "embedding.rows=2000",
                        "embedding.collisionless_below=50", chunks + "]"},
                       "unified");
  TrainAndCheckExports({"embedding.method=\"dsl\"", "embedding.density=0.5", "dsl.interval=20"}, "dsl");
  // A budget below a row per value's masks: the values share hashed sparse rows.
  TrainAndCheckExports({"embedding.method=\"dsl\"", "embedding.budget=0.01", "dsl.interval=20"}, "dsl-shared");
  TrainAndCheckExports({"embedding.method=\"full\"", "embedding.precision=\"fp16\""}, "fp16-rows");
  // Feature admission: the export serves never-admitted values from the fallback rows.
  TrainAndCheckExports({"embedding.method=\"full\"", "embedding.admit_after=3"}, "admission");
  TrainAndCheckExports(
      {"embedding.method=\"dsl\"", "embedding.density=0.5", "embedding.admit_after=2", "embedding.fallback=\"hash\"",
       "embedding.fallback_rows=500", "embedding.expire_after_steps=30"},
      "dsl-admission");
  TrainAndCheckExports({"model.name=\"deepfm\"", "embedding.method=\"hash\"", "embedding.rows=3000"}, "deepfm");
  // First-order weights under unified with summed probes (3 salted 1-wide probes per value; the
  // collisionless small fields read one), beside DeepFM's 8-wide rows and as LR's only group.
  TrainAndCheckExports({"model.name=\"deepfm\"", "embedding.method=\"unified\"", "embedding.rows=2000",
                        "embedding.first_order_chunks=3", "embedding.collisionless_below=50"},
                       "deepfm-summed-probes");
  TrainAndCheckExports(
      {"model.name=\"lr\"", "embedding.method=\"unified\"", "embedding.budget=0.2", "embedding.first_order_chunks=2"},
      "lr-summed-probes");
  // DLRM with first-order weights (a second, FTRL-trained group) under a budget: both groups hashed.
  TrainAndCheckExports({"model.first_order=true", "embedding.method=\"hash\"", "embedding.budget=0.2"},
                       "dlrm-first-order");
}

// DCN-v2 (both structures, full and low rank), Wide & Deep and FM under every embedding method:
// each export serves what its checkpoint evaluates (their first-order groups train with FTRL).
TEST(Export, EveryNewModelUnderEveryMethodServesWhatItsCheckpointEvaluates) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> methods = {
      {"full", {"embedding.method=\"full\""}},
      {"hash", {"embedding.method=\"hash\"", "embedding.rows=3000"}},
      {"unified", {"embedding.method=\"unified\"", "embedding.rows=2000", "embedding.chunks=1"}},
      {"dsl", {"embedding.method=\"dsl\"", "embedding.density=0.5", "dsl.interval=20"}}};
  const std::vector<std::pair<std::string, std::vector<std::string>>> models = {
      {"dcn", {"model.name=\"dcn_v2\"", "model.cross_layers=2", "model.top_mlp=[32]"}},
      {"dcn-parallel-rank4",
       {"model.name=\"dcn_v2\"", "model.cross_structure=\"parallel\"", "model.cross_rank=4", "model.top_mlp=[32]"}},
      {"wide_deep", {"model.name=\"wide_deep\"", "model.top_mlp=[32]"}},
      {"fm", {"model.name=\"fm\""}}};
  for (const auto& [model, model_sets] : models)
    for (const auto& [method, method_sets] : methods) {
      if (model == "dcn-parallel-rank4" && method != "hash") continue;
      std::vector<std::string> sets = model_sets;
      sets.insert(sets.end(), method_sets.begin(), method_sets.end());
      TrainAndCheckExports(sets, model + "-" + method);
    }
}

// A small hashed model, exported once for the server tests.
const std::string& ServedModel() {
  static const std::string path = [] {
    const std::string root = Dir() + "/serve";
    std::ostringstream out;
    auto m = TrainWithCheckpoint({"embedding.method=\"hash\"", "embedding.rows=3000"}, root, out);
    EMBER_CHECK(m.ok());
    EMBER_CHECK(RunExport(m->checkpoint, root + "/model.embx", "fp32", out).ok());
    return root + "/model.embx";
  }();
  return path;
}

// The first n rows of the test file as request rows (label dropped) and as JSON.
std::vector<std::vector<std::string>> TestRows(size_t n) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(*ReadFile(SmallFiles().test));
  std::string line;
  while (rows.size() < n && std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream ls(line);
    std::string f;
    while (std::getline(ls, f, '\t')) fields.push_back(f);
    if (line.back() == '\t') fields.push_back("");
    fields.erase(fields.begin());
    rows.push_back(fields);
  }
  return rows;
}

std::string RowsJson(const std::vector<std::vector<std::string>>& rows) {
  return nlohmann::json{{"rows", rows}}.dump();
}

// ember serve --device: cuda where the build and the machine have it, else an error saying so.
TEST(Serve, DeviceIsCheckedWhenTheModelLoads) {
  EXPECT_EQ(serving::ServingModel::Load(ServedModel(), "tpu").status().message(),
            "--device 'tpu' is not one of cpu, cuda");
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible";
  auto cuda = serving::ServingModel::Load(ServedModel(), "cuda");
  ASSERT_FALSE(cuda.ok());
  EXPECT_NE(cuda.status().message().find("--device cuda: no CUDA device here"), std::string::npos);
}

// --dense-precision: a trained and exported model scores the test file at bf16 and int8 within
// 0.002 AUC of fp32 (ember eval --model, as ember serve loads it); an unknown precision, or one
// with --device cuda, is refused when the model loads; a checkpoint evaluates at fp32 only.
TEST(Serve, DensePrecisionsScoreLikeFp32) {
  std::ostringstream out;
  auto fp32 = RunEval(ServedModel(), SmallFiles().test, 0, out);
  ASSERT_TRUE(fp32.ok()) << fp32.status().ToString();
  for (const char* p : {"bf16", "int8"}) {
    auto low = RunEval(ServedModel(), SmallFiles().test, 0, out, p);
    ASSERT_TRUE(low.ok()) << p << ": " << low.status().ToString();
    EXPECT_NEAR(low->auc, fp32->auc, 0.002) << p;
    EXPECT_EQ(low->eval_samples, fp32->eval_samples);
  }
  EXPECT_NE(out.str().find("int8 dense layers"), std::string::npos) << out.str();
  EXPECT_EQ(serving::ServingModel::Load(ServedModel(), "cpu", "fp16").status().message(),
            "dense precision 'fp16' is not one of fp32, bf16, int8");
  EXPECT_EQ(serving::ServingModel::Load(ServedModel(), "cuda", "int8").status().message(),
            "dense precision int8 runs on the CPU only, not --device cuda");
  auto m = serving::ServingModel::Load(ServedModel(), "cpu", "int8");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->dense_precision(), "int8");
  const std::string ckpt = Dir() + "/serve";
  EXPECT_NE(RunEval(ckpt, SmallFiles().test, 0, out, "int8").status().message().find("a checkpoint evaluates at fp32"),
            std::string::npos);
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = serving::ServingModel::Load(ServedModel());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    serving::ServeOptions o;
    o.port = 0;
    o.max_body_bytes = 64 << 10;
    o.max_rows_per_request = 100;
    o.batch_wait_ms = 2;
    server_ = std::make_unique<serving::PredictionServer>(model_.get(), o);
    ASSERT_TRUE(server_->Start().ok());
  }
  // What the model itself predicts for rows.
  std::vector<float> Direct(const std::vector<std::vector<std::string>>& rows) {
    data::Batch b;
    EMBER_CHECK(serving::RowsToBatch(rows, model_->num_dense(), model_->num_sparse(), &b).ok());
    std::vector<float> p;
    EMBER_CHECK(model_->Predict(b, &p).ok());
    return p;
  }
  int port() { return server_->port(); }
  // 8 clients x 8 single-row requests: each answer is its row's, and requests were merged.
  void ExpectConcurrentAnswers();
  std::unique_ptr<serving::ServingModel> model_;
  std::unique_ptr<serving::PredictionServer> server_;
};

TEST_F(ServeTest, PredictsWhatTheModelPredicts) {
  const auto rows = TestRows(5);
  auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", RowsJson(rows)));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  const auto got = nlohmann::json::parse(res.body())["probabilities"].get<std::vector<float>>();
  EXPECT_EQ(got, Direct(rows));
  res = testing_util::Exchange(port(), testing_util::Get("/healthz"));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(nlohmann::json::parse(res.body())["rows"].get<uint64_t>(), model_->rows());
  res = testing_util::Exchange(port(), testing_util::Get("/metrics"));
  EXPECT_NE(res.body().find("ember_serve_predictions_total 5\n"), std::string::npos) << res.body();
  EXPECT_NE(res.body().find("ember_http_request_seconds_count{path=\"/v1/predict\"} 1\n"), std::string::npos);
}

// A tab-separated body: the same rows as lines, the same answers as JSON; bad bodies name the row.
TEST_F(ServeTest, TabSeparatedBodiesPredictWhatJsonBodiesDo) {
  const auto rows = TestRows(7);
  std::string tsv;
  for (const auto& r : rows) {
    for (size_t f = 0; f < r.size(); ++f) tsv += (f ? "\t" : "") + r[f];
    tsv += "\n";
  }
  const std::string type = "text/tab-separated-values";
  auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", tsv, type));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(nlohmann::json::parse(res.body())["probabilities"].get<std::vector<float>>(), Direct(rows));
  tsv.pop_back();  // the last line without its newline, CRLF line ends: the same rows
  std::string crlf;
  for (char c : tsv) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", crlf, type));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(nlohmann::json::parse(res.body())["probabilities"].get<std::vector<float>>(), Direct(rows));
  auto expect = [&](const std::string& body, int code, const std::string& why) {
    auto r = testing_util::Exchange(port(), testing_util::Post("/v1/predict", body, type));
    EXPECT_EQ(r.result_int(), code) << r.body();
    EXPECT_NE(r.body().find(why), std::string::npos) << r.body();
  };
  expect("", 400, "no rows");
  expect(tsv.substr(0, tsv.rfind('\t')), 400, "row 6: expected 39 fields, got 38");
  expect(tsv + "\n\n", 400, "row 7 is an empty line");
  expect(std::string(rows[0][0] == "x" ? "" : "x") + tsv, 400, "row 0");
  std::string many;
  for (int i = 0; i < 101; ++i) many += tsv.substr(0, tsv.find('\n') + 1);
  expect(many, 413, "too many rows: more than 100");
}

TEST_F(ServeTest, BadRequestsGet4xxAndTheServerKeepsServing) {
  auto rows = TestRows(2);
  auto expect = [&](const std::string& raw, int code, const std::string& why) {
    auto res = testing_util::Exchange(port(), raw);
    EXPECT_EQ(res.result_int(), code) << res.body();
    EXPECT_NE(res.body().find(why), std::string::npos) << res.body();
    EXPECT_EQ(res[boost::beast::http::field::content_type], "application/json");
  };
  expect(testing_util::Post("/v1/predict", "{\"rows\": [[\"1\""), 400, "not valid JSON");
  expect(testing_util::Post("/v1/predict", "[1, 2]"), 400, "JSON object");
  expect(testing_util::Post("/v1/predict", "{\"row\": []}"), 400, "body must have");
  expect(testing_util::Post("/v1/predict", "{\"rows\": []}"), 400, "empty");
  auto short_row = rows;
  short_row[1].pop_back();
  expect(testing_util::Post("/v1/predict", RowsJson(short_row)), 400, "row 1: expected 39 fields, got 38");
  nlohmann::json numbers = {{"rows", {{1, 2, 3}}}};
  expect(testing_util::Post("/v1/predict", numbers.dump()), 400, "row 0, field 0: expected a string");
  auto bad_id = rows;
  bad_id[0][20] = "not-hex";
  expect(testing_util::Post("/v1/predict", RowsJson(bad_id)), 400, "row 0");
  expect(testing_util::Post("/v1/predict", RowsJson(TestRows(101))), 413, "too many rows: 101");
  // A body over max_body_bytes (64 KiB) is refused from its Content-Length, before it is sent.
  expect("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 71680\r\n\r\n", 413, "over the limit");
  expect(testing_util::Get("/v1/predict"), 405, "not allowed");
  expect(testing_util::Get("/v2/predict"), 404, "no such path");
  expect(testing_util::Post("/v1/recommend", "{\"items\": [\"a\"], \"k\": 20}"), 400, "session");
  expect(testing_util::Post("/v1/recommend", "{\"items\": [], \"k\": 0}"), 400, "must be an integer in [1, 1000]");
  auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", RowsJson(rows)));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(nlohmann::json::parse(res.body())["probabilities"].get<std::vector<float>>(), Direct(rows));
}

TEST_F(ServeTest, ABatchWaitsOnlyForRequestsBeingParsed) {
  // With the longest wait allowed, a lone request (and one after refused ones, which must not
  // count as still arriving) is answered at once: nothing else is being parsed to wait for.
  server_.reset();
  serving::ServeOptions o;
  o.port = 0;
  o.batch_wait_ms = 1000;
  server_ = std::make_unique<serving::PredictionServer>(model_.get(), o);
  ASSERT_TRUE(server_->Start().ok());
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(testing_util::Exchange(port(), testing_util::Post("/v1/predict", "{\"rows\": []}")).result_int(), 400);
  const auto rows = TestRows(1);
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", RowsJson(rows)));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_LT(ms, 900) << "the batch waited out batch_wait_ms with nothing arriving";
  }
}

TEST_F(ServeTest, ConcurrentRequestsAreBatchedAndEachGetsItsOwnAnswer) {
  for (int workers : {1, 3}) {
    SCOPED_TRACE(workers);
    if (workers > 1) {  // forward passes side by side: every request still gets its own answer
      server_.reset();
      serving::ServeOptions o;
      o.port = 0;
      o.batch_wait_ms = 2;
      o.forward_workers = workers;
      server_ = std::make_unique<serving::PredictionServer>(model_.get(), o);
      ASSERT_TRUE(server_->Start().ok());
    }
    ExpectConcurrentAnswers();
  }
}

void ServeTest::ExpectConcurrentAnswers() {
  const auto rows = TestRows(64);
  const auto want = Direct(rows);
  std::vector<std::thread> clients;
  std::atomic<int> wrong{0};
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; i < 8; ++i) {
        const size_t r = static_cast<size_t>(c * 8 + i);
        auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", RowsJson({rows[r]})));
        const auto got = nlohmann::json::parse(res.body())["probabilities"].get<std::vector<float>>();
        // Batches of other sizes may round differently in the last bits (other BLAS blocking).
        if (res.result_int() != 200 || got.size() != 1 || std::fabs(got[0] - want[r]) > 1e-6) ++wrong;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);
  const std::string text = server_->registry().Exposition();
  EXPECT_NE(text.find("ember_serve_predictions_total 64\n"), std::string::npos) << text;
  // Requests were merged: fewer forward passes than requests (8 clients, a 2 ms batching window).
  const std::string passes = "ember_serve_batches_total ";
  const auto at = text.find("\n" + passes);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_LT(std::stod(text.substr(at + 1 + passes.size())), 64.0) << text;
}

// examples/read_export.py, written from docs/formats.md alone, reads what ember wrote: the same
// rows for the same keys (dense and sparse tables, every precision) and the same dense weights.
TEST(Export, ThePythonReaderReadsWhatEmberWrote) {
  if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "needs /usr/bin/python3 with numpy (Debian's python3-numpy)";
  std::ostringstream out;
  auto m = TrainWithCheckpoint(
      {"embedding.method=\"dsl\"", "embedding.density=0.5", "embedding.field_methods={C1=\"hash\"}"}, Dir() + "/reader",
      out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  for (const char* precision : {"fp32", "fp16", "int8"}) {
    SCOPED_TRACE(precision);
    const std::string path = Dir() + "/reader-" + precision + ".embx", json = path + ".json";
    ASSERT_TRUE(RunExport(m->checkpoint, path, precision, out).ok());
    const std::string cmd = "/usr/bin/python3 " EMBER_SOURCE_DIR "/examples/read_export.py " + path + " --json " +
                            json + " --rows 20 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto got = nlohmann::json::parse(*ReadFile(json));
    auto file = embedding::ExportFile::Open(path);
    ASSERT_TRUE(file.ok());
    ASSERT_EQ(got["tables"].size(), (*file)->header()["tables"].size());
    int sparse_tables = 0;
    for (const auto& [id, t] : got["tables"].items()) {
      auto table = embedding::ExportedTable::Open(**file, static_cast<uint32_t>(std::stoul(id)));
      ASSERT_TRUE(table.ok());
      sparse_tables += (*table)->spec().kind == embedding::TableKind::kSparse;
      EXPECT_EQ(t["rows"].get<uint64_t>(), (*table)->rows());
      std::vector<float> row((*table)->spec().dim);
      for (size_t r = 0; r < t["keys"].size(); ++r) {
        (*table)->Lookup(t["keys"][r].get<uint64_t>(), row.data());
        const auto py = t["values"][r].get<std::vector<float>>();
        ASSERT_EQ(py.size(), row.size());
        for (size_t j = 0; j < row.size(); ++j) ASSERT_NEAR(py[j], row[j], 1e-6) << "table " << id << " row " << r;
      }
    }
    EXPECT_EQ(sparse_tables, 25);  // 25 DSL fields, one hashed
    for (const auto& [name, d] : got["dense"].items()) {
      std::vector<int64_t> shape;
      const float* data = (*file)->Dense(name, &shape);
      ASSERT_NE(data, nullptr) << name;
      EXPECT_EQ(d["shape"].get<std::vector<int64_t>>(), shape);
      int64_t n = 1;
      for (int64_t x : shape) n *= x;
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += data[i];
      EXPECT_NEAR(d["sum"].get<double>(), sum, 1e-9 * (1 + std::fabs(sum))) << name;
    }
  }
}

// The smaller defects of the PS-port probe (issue: the PS port, authenticated and bounded).
TEST_F(ServeTest, InvalidUtf8IsA400NamingIt) {
  auto res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", "{\"rows\": [[\"\xff\xfe\"]]}"));
  EXPECT_EQ(res.result_int(), 400) << res.body();
  EXPECT_NE(res.body().find("not valid JSON in UTF-8"), std::string::npos) << res.body();
  res = testing_util::Exchange(port(), testing_util::Post("/v1/predict", RowsJson(TestRows(1))));
  EXPECT_EQ(res.result_int(), 200);
}

TEST(Serve, EveryOptionIsBounded) {
  EXPECT_TRUE(serving::ValidateServeOptions({}).ok());
  auto refused = [](serving::ServeOptions o, const std::string& flag) {
    Status st = serving::ValidateServeOptions(o);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << flag;
    EXPECT_NE(st.message().find(flag), std::string::npos) << st.ToString();
  };
  serving::ServeOptions o;
  o.batch_wait_ms = 1e9;
  refused(o, "--batch-wait-ms");
  o.batch_wait_ms = -1;
  refused(o, "--batch-wait-ms");
  o.batch_wait_ms = std::nan("");
  refused(o, "--batch-wait-ms");
  o = {};
  o.max_batch = 0;
  refused(o, "--max-batch");
  o = {};
  o.threads = 0;
  refused(o, "--threads");
  o = {};
  o.max_body_bytes = 10;
  refused(o, "--max-body-bytes");
  o = {};
  o.max_rows_per_request = 0;
  refused(o, "--max-rows");
  o = {};
  o.max_connections = (1 << 20) + 1;
  refused(o, "--max-connections");
  std::ostringstream out;
  serving::ServeOptions bad;
  bad.max_batch = 0;
  Status st = RunServe("/no/such/model.embx", bad, out, [](int) {});
  EXPECT_NE(st.message().find("--max-batch"), std::string::npos) << st.ToString();  // before the model is read
}

TEST(Config, SetErrorsNameTheSetTheyCameFrom) {
  auto c = ParseConfig("[train]\nepochs = 2\n", "run.toml", {"train.epochs=abc"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--set 'train.epochs=abc': train.epochs: expected an integer"), std::string::npos)
      << c.status().ToString();
  auto file = ParseConfig("[train]\nepochs = \"x\"\n", "run.toml");
  EXPECT_NE(file.status().message().find("run.toml"), std::string::npos) << file.status().ToString();
}

TEST(Config, BudgetsAtOrAboveTheFullTableAreTheFullTable) {
  auto huge = embedding::ParseBudget("1e30");
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(huge->bytes, UINT64_MAX);
  EXPECT_EQ(embedding::ParseBudget("1e30GB")->bytes, UINT64_MAX);
  EXPECT_EQ(embedding::ParseBudget("1e18")->bytes, uint64_t{1000000000000000000});
  for (const char* bad : {"inf", "nan", "-inf"}) EXPECT_FALSE(embedding::ParseBudget(bad).ok()) << bad;
  EXPECT_NE(embedding::ParseBudget("inf").status().message().find("not a finite number"), std::string::npos);
  for (const std::string& b :
       {std::string("1e30"), std::string("1e19"), std::string("1e18"), std::string("\"1e30GB\"")}) {
    auto c = ParseConfig(
        "", "t", {"data.train=\"" + SmallFiles().train + "\"", "embedding.method=\"hash\"", "embedding.budget=" + b});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::ostringstream out;
    ASSERT_TRUE(RunPlan(*c, out).ok()) << b;
    EXPECT_NE(out.str().find("is at least the full table"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("(1.0000 of the full table), within the budget"), std::string::npos) << out.str();
  }
  auto bad = ParseConfig("", "t", {"embedding.budget=\"inf\""});
  EXPECT_NE(bad.status().message().find("embedding.budget: 'inf' is not a finite number"), std::string::npos)
      << bad.status().ToString();
}

// Every input is read before training; the final checkpoint is written before the test set is
// scored, so a bad data.test costs the evaluation only.
TEST(Commands, InputsAreCheckedFirstAndTheCheckpointComesBeforeEvaluation) {
  const std::string root = Dir() + "/inputs";
  std::filesystem::remove_all(root);
  std::ostringstream out;
  auto missing = ParseConfig(
      "", "t",
      {"data.train=\"" + SmallFiles().train + "\"", "data.test=\"/no/such/test.tsv\"",
       "checkpoint.dir=\"" + root + "\"", "train.progress=\"off\"", "model.bottom_mlp=[8]", "model.top_mlp=[8]"});
  ASSERT_TRUE(missing.ok());
  auto m = RunTrain(*missing, out);
  EXPECT_NE(m.status().message().find("data.test"), std::string::npos) << m.status().ToString();
  EXPECT_EQ(out.str().find("trained"), std::string::npos) << out.str();  // refused before training
  // A test file whose first lines parse and a later one does not.
  std::string text = *ReadFile(SmallFiles().test);
  const std::string late_bad = root + "-test.tsv";
  ASSERT_TRUE(WriteFileAtomic(late_bad, text.substr(0, text.find('\n', 20000) + 1) + "1\t2\n").ok());
  auto c = ParseConfig(
      "", "t",
      {"data.train=\"" + SmallFiles().train + "\"", "data.test=\"" + late_bad + "\"", "checkpoint.dir=\"" + root + "\"",
       "train.progress=\"off\"", "model.bottom_mlp=[8]", "model.top_mlp=[8]"});
  m = RunTrain(*c, out);
  EXPECT_NE(m.status().message().find("expected 40 tab-separated fields, got 2"), std::string::npos)
      << m.status().ToString();
  EXPECT_TRUE(workers::ResolveCheckpoint(root).ok());  // the trained model was kept
}

TEST(Commands, ANonFiniteLossStopsTrainingNamingTheStep) {
  auto c = ParseConfig("", "t",
                       {"data.train=\"" + SmallFiles().train + "\"", "train.progress=\"off\"", "train.lr=100",
                        "embedding.lr=100", "embedding.optimizer=\"sgd\"", "train.optimizer=\"sgd\""});
  ASSERT_TRUE(c.ok());
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition) << m.status().ToString();
  EXPECT_NE(m.status().message().find("training step "), std::string::npos);
  EXPECT_NE(m.status().message().find(": the loss is nan; stopped before pushing it"), std::string::npos)
      << m.status().ToString();
}

TEST(Data, ALineLongerThanTheCapIsAnErrorNamingIt) {
  const std::string path = Dir() + "/long_line.tsv";
  std::string text = *ReadFile(SmallFiles().test);
  text = text.substr(0, text.find('\n') + 1) + std::string(300000, 'x') + "\n";
  ASSERT_TRUE(WriteFileAtomic(path, text).ok());
  data::CriteoOptions o;
  o.path = path;
  o.max_line_bytes = 100000;
  auto r = data::CriteoReader::Open(o);
  ASSERT_TRUE(r.ok());
  data::Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("long_line.tsv:2: line longer than 100000 bytes (data.max_line_bytes)"),
            std::string::npos)
      << got.status().ToString();
}

// The manifest carries its own checksum and is cross-checked against the shard files: a flipped
// width, missing or repeated shard entries and a negative step are refused by inspect, eval and
// export alike, never exported or evaluated as something else.
TEST(Checkpoint, TheManifestIsChecksummedAndCrossChecked) {
  const std::string root = Dir() + "/manifest";
  std::filesystem::remove_all(root);
  auto c = ParseConfig("", "t",
                       {"data.train=\"" + SmallFiles().train + "\"", "checkpoint.dir=\"" + root + "\"",
                        "train.progress=\"off\"", "model.bottom_mlp=[8]", "model.top_mlp=[8]", "embedding.dim=8"});
  ASSERT_TRUE(c.ok());
  std::ostringstream out;
  ASSERT_TRUE(RunTrain(*c, out).ok()) << out.str();
  const std::string dir = *workers::ResolveCheckpoint(root);
  const std::string file = dir + "/manifest.json";
  const std::string original = *ReadFile(file);
  ASSERT_TRUE(RunInspect(dir, false, out).ok());
  auto expect_refused = [&](const std::string& text, const std::string& why) {
    ASSERT_TRUE(WriteFileAtomic(file, text).ok());
    Status st = RunInspect(dir, false, out);
    EXPECT_EQ(st.code(), StatusCode::kCorruption) << why;
    EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
    auto e = RunEval(dir, SmallFiles().test, 1, out);
    EXPECT_FALSE(e.ok()) << why;
    EXPECT_FALSE(RunExport(dir, root + "/m.embx", "fp32", out).ok()) << why;
  };
  // A one-bit flip (dim 8 -> 9) without a new checksum.
  std::string flipped = original;
  const size_t at = flipped.find("\"dim\": 8");
  ASSERT_NE(at, std::string::npos);
  flipped[at + 7] = '9';
  expect_refused(flipped, "checksum mismatch");
  // Edits with a recomputed checksum: structure and the shard files still decide.
  auto resealed = [](nlohmann::json m) {
    m.erase("checksum");
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Checksum(m.dump())));
    m["checksum"] = hex;
    return m.dump(2);
  };
  const auto m = nlohmann::json::parse(original);
  auto no_shards = m;
  no_shards["files"] = nlohmann::json::array();
  for (const auto& f : m["files"])
    if (f["kind"] != "shard") no_shards["files"].push_back(f);
  expect_refused(resealed(no_shards), "0 shard files for num_shards 1");
  auto negative = m;
  negative["step"] = -5;
  expect_refused(resealed(negative), "step must be an integer >= 0");
  auto zero = m;
  zero["num_shards"] = 0;
  expect_refused(resealed(zero), "num_shards must be an integer in [1, 65536]");
  auto twice = m;
  twice["files"].push_back(m["files"][0]);
  expect_refused(resealed(twice), "is listed twice");
  auto wider = m;
  wider["tables"][0]["dim"] = 9;
  expect_refused(resealed(wider), "wide with");
  ASSERT_TRUE(WriteFileAtomic(file, original).ok());
  EXPECT_TRUE(RunEval(dir, SmallFiles().test, 1, out).ok());
}

TEST(Checkpoint, NonFiniteRowsAreRefusedOnLoad) {
  for (auto precision : {embedding::Precision::kFp32, embedding::Precision::kFp16}) {
    embedding::TableSpec spec;
    spec.id = 0;
    spec.dim = 4;
    spec.precision = precision;
    auto t = embedding::Table::Make(spec);
    const uint64_t k = embedding::MakeKey(0, 0x5eed1234abcdULL);  // bytes found nowhere else
    std::vector<float> row(4);
    t->TrainPull(&k, 1, row.data(), nullptr, 0);
    std::string bytes;
    t->AppendTo(&bytes);
    // The row's first weight: a NaN, written where the table stored it.
    std::string_view good(bytes);
    ASSERT_TRUE(embedding::Table::ParseFrom(&good, "ok").ok());
    std::string bad = bytes;
    const size_t rec = bad.find(std::string(reinterpret_cast<const char*>(&k), 8));
    ASSERT_NE(rec, std::string::npos);
    const size_t w = rec + 8 + 4;  // key, record length, then the weights
    if (precision == embedding::Precision::kFp32) {
      const float nan = std::nanf("");
      std::memcpy(&bad[w], &nan, 4);
    } else {
      const uint16_t nan = 0x7e00;
      std::memcpy(&bad[w], &nan, 2);
    }
    std::string_view in(bad);
    auto r = embedding::Table::ParseFrom(&in, "shard-0.bin");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("not finite"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace ember::launcher
