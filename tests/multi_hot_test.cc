// Users' own data end to end: a schema with multi-hot bags (ember datagen ctr --multi-hot)
// trained under every embedding method and model family, its exports and `ember serve` answering
// what the checkpoint evaluates, and the bags' planted effect learned.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "ember/common/file.h"
#include "ember/data/criteo.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/launcher/commands.h"
#include "ember/launcher/config.h"
#include "ember/serving/request_rows.h"
#include "ember/serving/server.h"
#include "http_client.h"
#include "test_util.h"

namespace ember::launcher {
namespace {

std::string Dir() { return testing_util::TempDir("multihot"); }

// 6 categorical fields, 3 dense, 2 multi-hot fields (mean-pooled bags of Poisson(4) ids).
struct Files {
  std::string train, test, schema, no_bags;
  double oracle = 0;
  Files() {
    data::SyntheticCtrOptions o;
    o.rows = 30000;
    o.num_sparse = 6;
    o.num_dense = 3;
    o.max_vocab = 2000;
    o.multi_hot = 2;
    o.multi_hot_vocab = 300;
    o.multi_hot_scale = 2.5;  // the bags carry much of the signal
    train = Dir() + "/mh_train.tsv";
    test = Dir() + "/mh_test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 5000;
    o.seed = 2;
    auto st = data::WriteSyntheticCtr(o, test);
    EMBER_CHECK(st.ok());
    oracle = st->auc;
    schema = train + ".schema.toml";
    // The same columns with the bags ignored.
    std::string text = *ReadFile(schema);
    for (size_t at; (at = text.find("role = \"multi_hot\"")) != std::string::npos;)
      text.replace(at, 18, "role = \"ignore\"");
    no_bags = Dir() + "/no_bags.schema.toml";
    EMBER_CHECK(WriteFileAtomic(no_bags, text).ok());
  }
  std::vector<std::string> Sets(const std::string& schema_file) const {
    return {"data.format=\"tsv\"",
            "data.schema=\"" + schema_file + "\"",
            "data.train=\"" + train + "\"",
            "data.test=\"" + test + "\"",
            "model.bottom_mlp=[32]",
            "model.top_mlp=[32]",
            "embedding.dim=8",
            "train.batch_size=256",
            "train.progress=\"off\""};
  }
};
const Files& F() {
  static Files f;
  return f;
}

Result<RunMetrics> Train(std::vector<std::string> sets, const std::string& root) {
  std::filesystem::remove_all(root);
  sets.push_back("checkpoint.dir=\"" + root + "\"");
  EMBER_ASSIGN_OR_RETURN(auto c, ParseConfig("", "t", sets));
  std::ostringstream out;
  return RunTrain(c, out);
}

TEST(MultiHot, TheSchemaGivesTheFieldsByName) {
  auto c = ParseConfig("", "t", F().Sets(F().schema));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_sparse, 8);
  EXPECT_EQ(c->trainer.model.num_dense, 3);
  auto t = MakeTrainerConfig(*c);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->fields[6].name, "M1");
  EXPECT_EQ(t->fields[7].name, "M2");
  // Per-field settings name schema fields; an unknown name lists them.
  auto sets = F().Sets(F().schema);
  sets.push_back("embedding.field_methods={M1=\"hash\", C9=\"hash\"}");
  auto bad = ParseConfig("", "t", sets);
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(MakeTrainerConfig(*bad).status().message().find("no field named 'C9' (fields are C1, C2"),
            std::string::npos);
  // Unknown roles and column keys name the column.
  const std::string schema = Dir() + "/bad.schema.toml";
  ASSERT_TRUE(WriteFileAtomic(schema, "[[columns]]\nname = \"y\"\nrole = \"target\"\n").ok());
  auto role = ParseConfig("", "t", F().Sets(schema));
  EXPECT_NE(role.status().message().find(schema + ":1: columns: [0] ('y'): unknown role 'target' (one of label"),
            std::string::npos)
      << role.status().message();
  ASSERT_TRUE(WriteFileAtomic(schema, "[[columns]]\nname = \"y\"\nrole = \"label\"\nsize = 3\n").ok());
  EXPECT_NE(ParseConfig("", "t", F().Sets(schema)).status().message().find("[0]: unknown column key 'size'"),
            std::string::npos);
  EXPECT_NE(ParseConfig("", "t", {"data.format=\"csv\"", "data.train=\"x\""})
                .status()
                .message()
                .find("data.format = \"csv\" needs data.columns"),
            std::string::npos);
}

// data.train as a glob or an array of files: one stream, the same model as the single file; and
// read through the binary cache, the same model again.
TEST(MultiHot, SeveralFilesAreReadAsOneStream) {
  std::istringstream in(*ReadFile(F().train));
  std::string parts[3], line;
  for (size_t i = 0; std::getline(in, line); ++i) parts[i < 10000 ? 0 : i < 22000 ? 1 : 2] += line + "\n";
  const std::string dir = Dir() + "/parts";
  std::filesystem::create_directories(dir);
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(WriteFileAtomic(dir + "/day-" + std::to_string(p) + ".tsv", parts[p]).ok());
  auto one = Train(F().Sets(F().schema), Dir() + "/one");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  auto sets = F().Sets(F().schema);
  sets.push_back("data.train=\"" + dir + "/day-*.tsv\"");
  auto glob = Train(sets, Dir() + "/glob");
  ASSERT_TRUE(glob.ok()) << glob.status().ToString();
  EXPECT_EQ(glob->train_samples, one->train_samples);
  EXPECT_EQ(glob->auc, one->auc);
  sets.back() = "data.train=[\"" + dir + "/day-0.tsv\", \"" + dir + "/day-[12].tsv\"]";
  auto list = Train(sets, Dir() + "/list");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->auc, one->auc);
  // Through the binary cache (built on first use, then read): the same model.
  auto cached_sets = sets;
  cached_sets.push_back("data.cache=true");
  cached_sets.push_back("data.cache_dir=\"" + Dir() + "/caches\"");
  for (int run = 0; run < 2; ++run) {
    auto cached = Train(cached_sets, Dir() + "/cached");
    ASSERT_TRUE(cached.ok()) << cached.status().ToString();
    EXPECT_EQ(cached->auc, one->auc);
  }
  sets.back() = "data.train=\"" + dir + "/night-*.tsv\"";
  auto none = Train(sets, Dir() + "/none");
  EXPECT_NE(none.status().message().find("no data file matches '" + dir + "/night-*.tsv'"), std::string::npos)
      << none.status().message();
}

// The bags carry a planted effect: with them the model is far better than without, and close to
// the oracle for data this small.
TEST(MultiHot, PooledBagsLearnTheirPlantedEffect) {
  auto with = Train(F().Sets(F().schema), Dir() + "/with");
  ASSERT_TRUE(with.ok()) << with.status().ToString();
  auto without = Train(F().Sets(F().no_bags), Dir() + "/without");
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  std::printf("multi-hot: AUC %.4f with the bags, %.4f without, oracle %.4f\n", with->auc, without->auc, F().oracle);
  EXPECT_GT(with->auc, without->auc + 0.03);
  EXPECT_GT(with->auc, F().oracle - 0.05);
}

// Every method (unified probes every id of a bag) and a model of each family: the fp32 export
// evaluates to the checkpoint's AUC.
TEST(MultiHot, EveryMethodAndModelExportsWhatItEvaluates) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"full", {"embedding.method=\"full\""}},
      {"hash", {"embedding.method=\"hash\"", "embedding.rows=500"}},
      {"unified", {"embedding.method=\"unified\"", "embedding.rows=400", "embedding.chunks=2"}},
      {"dsl", {"embedding.method=\"dsl\"", "embedding.density=0.5", "dsl.interval=20"}},
      {"admission", {"embedding.method=\"full\"", "embedding.admit_after=3"}},
      {"wide_deep", {"model.name=\"wide_deep\"", "embedding.method=\"hash\"", "embedding.rows=500"}},
      {"dcn_v2", {"model.name=\"dcn_v2\"", "model.cross_layers=1"}},
      {"deepfm", {"model.name=\"deepfm\""}},
      // Bags of first-order weights read through summed probes (each id's 2 rows, every id pooled).
      {"lr_summed",
       {"model.name=\"lr\"", "embedding.method=\"unified\"", "embedding.rows=400", "embedding.first_order_chunks=2"}},
  };
  for (const auto& [tag, extra] : cases) {
    SCOPED_TRACE(tag);
    auto sets = F().Sets(F().schema);
    sets.insert(sets.end(), extra.begin(), extra.end());
    auto m = Train(sets, Dir() + "/m-" + tag);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_GT(m->auc, 0.6);
    std::ostringstream out;
    const std::string path = Dir() + "/m-" + tag + ".embx";
    ASSERT_TRUE(RunExport(m->checkpoint, path, "fp32", out).ok());
    auto e = RunEval(path, F().test, 0, out);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->eval_samples, 5000u);
    EXPECT_NEAR(e->auc, m->auc, 1e-6);
  }
}

// ember serve: rows with bags (arrays or the delimited string, rows as arrays or objects), one at
// a time and merged into one forward pass, answer what the model predicts for the file's rows.
TEST(MultiHot, ServeAnswersBagsAsTheModelPredicts) {
  auto m = Train(F().Sets(F().schema), Dir() + "/serve");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::ostringstream out;
  const std::string path = Dir() + "/serve.embx";
  ASSERT_TRUE(RunExport(m->checkpoint, path, "fp32", out).ok());
  auto model = serving::ServingModel::Load(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // The test file's first rows, as request rows: dense, categorical, then bags as arrays.
  std::istringstream in(*ReadFile(F().test));
  std::vector<nlohmann::json> rows;
  std::string line;
  while (rows.size() < 40 && std::getline(in, line)) {
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      const size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string::npos ? tab : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    nlohmann::json row = nlohmann::json::array();
    for (size_t k = 1; k < fields.size(); ++k) {
      if (k < 10) {
        row.push_back(fields[k]);
        continue;
      }
      nlohmann::json bag = nlohmann::json::array();
      std::istringstream ids(fields[k]);
      for (std::string id; std::getline(ids, id, '|');) bag.push_back(id);
      if (rows.size() % 2) {
        row.push_back(fields[k]);  // the delimited string
      } else {
        row.push_back(bag);
      }
    }
    rows.push_back(row);
  }
  data::Batch all;
  ASSERT_TRUE(serving::JsonRowsToBatch(nlohmann::json(rows), (*model)->schema(), &all).ok());
  std::vector<float> direct;
  ASSERT_TRUE((*model)->Predict(all, &direct).ok());
  serving::ServeOptions o;
  o.port = 0;
  o.batch_wait_ms = 5;
  serving::PredictionServer server(model->get(), o);
  ASSERT_TRUE(server.Start().ok());
  std::vector<float> got(rows.size(), -1);
  std::vector<std::thread> clients;
  for (size_t r = 0; r < rows.size(); ++r)
    clients.emplace_back([&, r] {
      const auto res = testing_util::Exchange(
          server.port(), testing_util::Post("/v1/predict", nlohmann::json{{"rows", {rows[r]}}}.dump()));
      if (res.result_int() == 200) got[r] = nlohmann::json::parse(res.body())["probabilities"][0].get<float>();
    });
  for (auto& t : clients) t.join();
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_NEAR(got[r], direct[r], 1e-6) << "row " << r;
  // An object row by column name predicts the same as its array.
  nlohmann::json object;
  const std::vector<std::string> names = {"I1", "I2", "I3", "C1", "C2", "C3", "C4", "C5", "C6", "M1", "M2"};
  for (size_t k = 0; k < names.size(); ++k) object[names[k]] = rows[0][k];
  const auto res = testing_util::Exchange(server.port(),
                                          testing_util::Post("/v1/predict", nlohmann::json{{"rows", {object}}}.dump()));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_NEAR(nlohmann::json::parse(res.body())["probabilities"][0].get<float>(), direct[0], 1e-6);
  // Through the text reader, the same rows score the same.
  auto e = RunEval(path, F().test, 0, out);
  ASSERT_TRUE(e.ok());
  EXPECT_NEAR(e->auc, m->auc, 1e-6);
}

// The real Avazu sample (data.format = "avazu"): trains, validates, tests, exports, and the export
// serves a request row by column name as it evaluates the file.
TEST(Avazu, TheRealSampleTrainsEvaluatesAndServes) {
  const std::string dir = std::string(EMBER_SHARED_DATA_DIR) + "/avazu";
  if (!PathExists(dir + "/avazu_train.csv")) GTEST_SKIP() << "shared data sample absent: " << dir;
  auto m = Train(
      {"data.format=\"avazu\"", "data.train=\"" + dir + "/avazu_train.csv\"",
       "data.valid=\"" + dir + "/avazu_dev.csv\"", "data.test=\"" + dir + "/avazu_test.csv\"", "model.bottom_mlp=[32]",
       "model.top_mlp=[32]", "embedding.dim=8", "train.batch_size=256", "train.progress=\"off\""},
      Dir() + "/avazu");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->train_samples, 8087u);
  EXPECT_EQ(m->eval_samples, 432u);
  EXPECT_GT(m->auc, 0.55);  // 8,087 rows: a smoke test of the format, not a quality claim
  std::printf("avazu sample: 8087 training rows, test AUC %.4f on 432 rows\n", m->auc);
  std::ostringstream out;
  const std::string path = Dir() + "/avazu.embx";
  ASSERT_TRUE(RunExport(m->checkpoint, path, "fp32", out).ok());
  auto e = RunEval(path, dir + "/avazu_test.csv", 0, out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_NEAR(e->auc, m->auc, 1e-6);
  auto model = serving::ServingModel::Load(path);
  ASSERT_TRUE(model.ok());
  // The test file's first row, as an object keyed by Avazu's column names (id and click omitted).
  const std::string first = ReadFile(dir + "/avazu_test.csv")->substr(0, ReadFile(dir + "/avazu_test.csv")->find('\n'));
  const std::vector<std::string> names = {"id",         "click",        "hour",         "C1",
                                          "banner_pos", "site_id",      "site_domain",  "site_category",
                                          "app_id",     "app_domain",   "app_category", "device_id",
                                          "device_ip",  "device_model", "device_type",  "device_conn_type",
                                          "C14",        "C15",          "C16",          "C17",
                                          "C18",        "C19",          "C20",          "C21"};
  nlohmann::json row;
  std::istringstream in(first);
  std::string value;
  for (size_t k = 0; std::getline(in, value, ','); ++k)
    if (k >= 2) row[names[k]] = value;
  data::Batch batch;
  ASSERT_TRUE(serving::JsonRowsToBatch(nlohmann::json::array({row}), (*model)->schema(), &batch).ok());
  std::vector<float> direct;
  ASSERT_TRUE((*model)->Predict(batch, &direct).ok());
  serving::ServeOptions o;
  o.port = 0;
  serving::PredictionServer server(model->get(), o);
  ASSERT_TRUE(server.Start().ok());
  const auto res =
      testing_util::Exchange(server.port(), testing_util::Post("/v1/predict", nlohmann::json{{"rows", {row}}}.dump()));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_NEAR(nlohmann::json::parse(res.body())["probabilities"][0].get<float>(), direct[0], 1e-6);
  // The text reader's score of that row is the served one.
  data::CriteoOptions ro;
  ro.path = dir + "/avazu_test.csv";
  ro.batch_size = 1;
  ro.num_dense = 0;
  ro.num_sparse = 23;
  ro.schema = std::make_shared<data::Schema>((*model)->schema());
  auto reader = data::CriteoReader::Open(ro);
  ASSERT_TRUE(reader.ok());
  data::Batch from_file;
  ASSERT_TRUE(*(*reader)->Next(&from_file));
  std::vector<float> file_p;
  ASSERT_TRUE((*model)->Predict(from_file, &file_p).ok());
  EXPECT_EQ(file_p[0], direct[0]);
}

}  // namespace
}  // namespace ember::launcher
