#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "ember/common/file.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/launcher/commands.h"
#include "ember/launcher/config.h"
#include "ember/monitoring/http_server.h"

namespace ember::launcher {
namespace {

TEST(Config, DefaultsAndOverrides) {
  auto c = ParseConfig("[data]\ntrain = \"a.tsv\"\n[train]\nepochs = 3\n", "run.toml",
                       {"train.lr=0.01", "model.name=deepfm", "model.top_mlp=[64, 32]", "embedding.method=\"hash\""});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->train, "a.tsv");
  EXPECT_EQ(c->epochs, 3);
  EXPECT_DOUBLE_EQ(c->lr, 0.01);
  EXPECT_EQ(c->model, "deepfm");
  EXPECT_EQ(c->top_mlp, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(c->method, "hash");
  EXPECT_EQ(c->batch_size, 1024u);  // default
  EXPECT_EQ(c->dim, 16);
  EXPECT_EQ(c->bottom_mlp, (std::vector<int64_t>{512, 256, 64}));
  // The effective text round-trips.
  auto again = ParseConfig(c->text, "effective");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->model, "deepfm");
  EXPECT_DOUBLE_EQ(again->lr, 0.01);
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

TEST(Commands, PlanShowsEveryFieldAndTheBudget) {
  auto sets = SmallFiles().Sets();
  sets.push_back("embedding.method=\"hash\"");
  sets.push_back("embedding.budget=\"1/10\"");
  sets.push_back("embedding.field_methods={C1 = \"full\", C2 = \"dsl\"}");
  auto c = ParseConfig("", "t", sets);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  ASSERT_TRUE(RunPlan(*c, out).ok());
  const std::string text = out.str();
  EXPECT_NE(text.find("within the budget"), std::string::npos) << text;
  EXPECT_NE(text.find("C26"), std::string::npos);
  EXPECT_NE(text.find("sparse"), std::string::npos);  // C2's DSL table
  // A budget the method cannot meet is a config error with the reason.
  sets.back() = "embedding.field_methods={C1 = \"full\"}";
  sets.push_back("embedding.method=\"full\"");
  auto full = ParseConfig("", "t", sets);
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
  std::filesystem::remove_all(root);
  auto sets = SmallFiles().Sets();
  for (const char* s : {"embedding.method=\"optembed\"", "embedding.budget=0.2", "optembed.rounds=2",
                        "optembed.population=6", "optembed.search_samples=2000"})
    sets.push_back(s);
  sets.push_back("checkpoint.dir=\"" + root + "\"");
  auto c = ParseConfig("", "t", sets);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::ostringstream out;
  auto m = RunTrain(*c, out);
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
}

TEST(Commands, DslUnderABudgetHoldsItsBytes) {
  auto sets = SmallFiles().Sets();
  sets.push_back("embedding.method=\"dsl\"");
  sets.push_back("embedding.budget=0.5");
  sets.push_back("dsl.interval=20");
  auto c = ParseConfig("", "t", sets);
  std::ostringstream out;
  auto m = RunTrain(*c, out);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // Rows are allotted floor/ceil of density * dim entries: the held bytes match the budget
  // to within a fraction of a percent.
  EXPECT_NEAR(static_cast<double>(m->param_bytes) / static_cast<double>(m->budget_bytes), 1.0, 0.01) << out.str();
  EXPECT_GT(m->auc, 0.6);
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

}  // namespace
}  // namespace ember::launcher
