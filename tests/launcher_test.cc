#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "ember/common/file.h"
#include "ember/launcher/commands.h"
#include "ember/launcher/config.h"

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

}  // namespace
}  // namespace ember::launcher
