// The production loop in one process: a stop (SIGTERM's flag) after a step checkpoints there and
// --resume ends like the uninterrupted run; data.follow trains a directory as files arrive, each
// once; exports while training; ModelWatcher swaps newer exports in and refuses damaged ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "../launcher/step_hooks.h"
#include "ember/common/file.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/embedding/export.h"
#include "ember/launcher/commands.h"
#include "ember/launcher/config.h"
#include "ember/serving/model_dir.h"
#include "test_util.h"

namespace ember::launcher {
namespace {

std::string Dir() { return testing_util::TempDir("online"); }

struct Data {
  std::string train, test;
  std::vector<std::string> lines;  // the training file's
  Data() {
    data::SyntheticCtrOptions o;
    o.rows = 12000;
    o.max_vocab = 3000;
    train = Dir() + "/train.tsv";
    test = Dir() + "/test.tsv";
    EMBER_CHECK(data::WriteSyntheticCtr(o, train).ok());
    o.rows = 3000;
    o.seed = 2;
    EMBER_CHECK(data::WriteSyntheticCtr(o, test).ok());
    std::istringstream in(*ReadFile(train));
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  std::vector<std::string> Sets(const std::string& root) const {
    return {"data.train=\"" + train + "\"",
            "data.test=\"" + test + "\"",
            "model.bottom_mlp=[32]",
            "model.top_mlp=[32]",
            "embedding.dim=8",
            "train.batch_size=200",
            "train.progress=\"off\"",
            "checkpoint.dir=\"" + root + "\""};
  }
};
const Data& D() {
  static Data d;
  return d;
}

Result<RunMetrics> TrainJob(const std::vector<std::string>& sets, bool resume = false, std::string* log = nullptr) {
  EMBER_ASSIGN_OR_RETURN(auto c, ParseConfig("", "t", sets));
  c.resume = resume;
  std::ostringstream out;
  auto m = RunTrain(c, out);
  if (log) *log = out.str();
  return m;
}

TEST(Online, AStopCheckpointsAtItsStepAndResumeEndsLikeTheUninterruptedRun) {
  const std::string a = Dir() + "/stop-a", b = Dir() + "/stop-b";
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
  auto full = TrainJob(D().Sets(a));
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_FALSE(full->stopped);
  // As if SIGTERM came during step 23 of 60: that step finishes, then checkpoint and export.
  auto sets = D().Sets(b);
  sets.push_back("export.dir=\"" + b + "/exports\"");
  StopAtStepForTest(23);
  std::string log;
  auto stopped = TrainJob(sets, false, &log);
  StopAtStepForTest(0);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(stopped->train_samples, 23u * 200u);
  EXPECT_EQ(stopped->auc, -1);  // no test: the run did not finish
  EXPECT_EQ(stopped->checkpoint, b + "/ckpt-23");
  EXPECT_TRUE(PathExists(b + "/exports/model-000000000023.embx"));
  EXPECT_NE(log.find("stopped by a signal after step 23 (epoch 1, 4600 examples in)"), std::string::npos) << log;
  auto resumed = TrainJob(sets, /*resume=*/true, &log);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_NE(log.find("resumed from " + b + "/ckpt-23 at step 23 (epoch 1, 4600 examples in)"), std::string::npos)
      << log;
  EXPECT_EQ(resumed->train_samples, 12000u - 4600u);  // nothing trained twice, nothing skipped
  EXPECT_EQ(resumed->auc, full->auc);
  EXPECT_EQ(resumed->logloss, full->logloss);
  EXPECT_EQ(resumed->table_rows, full->table_rows);
}

// Lines [b, e) of the training file into `path`, written elsewhere and renamed in.
void Part(const std::string& path, size_t b, size_t e) {
  std::string text;
  for (size_t i = b; i < e; ++i) text += D().lines[i] + "\n";
  ASSERT_TRUE(WriteFileAtomic(path, text).ok());
}

// Waits (up to a minute) for `path` to exist.
bool WaitFor(const std::string& path) {
  for (int i = 0; i < 600 && !PathExists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return PathExists(path);
}

TEST(Online, FollowingADirectoryTrainsEachArrivingFileOnce) {
  const std::string root = Dir() + "/follow", stream = Dir() + "/stream";
  std::filesystem::remove_all(root);
  std::filesystem::remove_all(stream);
  std::filesystem::create_directories(stream);
  // 12000 lines in three files arriving one by one; 200 per step.
  Part(stream + "/part-0.tsv", 0, 4000);
  auto sets = D().Sets(root);
  sets.push_back("data.train=\"" + stream + "\"");
  sets.push_back("data.follow=true");
  sets.push_back("data.follow_poll_seconds=0.05");
  sets.push_back("export.dir=\"" + root + "/exports\"");
  sets.push_back("export.every_steps=5");
  sets.push_back("export.keep=0");
  // A batch trains as soon as it is read (it is not held back for the next one): the export of a
  // file's last step appears before the next file does.
  auto job = std::async(std::launch::async, [&] { return TrainJob(sets); });
  ASSERT_TRUE(WaitFor(root + "/exports/model-000000000020.embx"));
  Part(stream + "/part-1.tsv", 4000, 8000);
  ASSERT_TRUE(WaitFor(root + "/exports/model-000000000040.embx"));
  Part(stream + "/part-2.tsv", 8000, 12000);
  ASSERT_TRUE(WaitFor(root + "/exports/model-000000000060.embx"));
  RequestStopForTest(true);
  auto m = job.get();
  RequestStopForTest(false);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->stopped);
  EXPECT_EQ(m->train_samples, 12000u);
  // The same rows as one file, not followed: the same model.
  auto plain = TrainJob(D().Sets(Dir() + "/follow-plain"));
  ASSERT_TRUE(plain.ok());
  std::ostringstream out;
  auto e = RunEval(m->checkpoint, D().test, 0, out);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->auc, plain->auc);
  // Resuming follows on from the checkpoint's position: a new file, and only it, is trained; the
  // incomplete batch at its end (100 rows) is left for the next run. The checkpoint records where
  // the stream goes on (the end of part-2), so the files before it are not read again: removing
  // them (what a producer's clean-up does) changes nothing.
  auto manifest = nlohmann::json::parse(*ReadFile(m->checkpoint + "/manifest.json"));
  EXPECT_EQ(manifest["position"]["cursor"]["file"], stream + "/part-2.tsv");
  EXPECT_EQ(manifest["position"]["cursor"]["line"], 4000);
  EXPECT_EQ(manifest["position"]["cursor"]["offset"], std::filesystem::file_size(stream + "/part-2.tsv"));
  std::filesystem::remove(stream + "/part-0.tsv");
  std::filesystem::remove(stream + "/part-1.tsv");
  Part(stream + "/part-3.tsv", 0, 2100);
  auto again = std::async(std::launch::async, [&] { return TrainJob(sets, /*resume=*/true); });
  ASSERT_TRUE(WaitFor(root + "/exports/model-000000000070.embx"));
  RequestStopForTest(true);
  auto m2 = again.get();
  RequestStopForTest(false);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_EQ(m2->train_samples, 2000u);
}

TEST(Online, TheWatcherSwapsNewerExportsAndRefusesDamagedOnes) {
  const std::string root = Dir() + "/watch", models = Dir() + "/watch-models";
  std::filesystem::remove_all(root);
  std::filesystem::remove_all(models);
  auto sets = D().Sets(root);
  sets.push_back("export.dir=\"" + root + "/exports\"");
  sets.push_back("export.every_steps=20");
  auto m = TrainJob(sets);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::filesystem::create_directories(models);
  auto copy = [&](int step, const std::string& as) {
    char name[40];
    std::snprintf(name, sizeof(name), "/exports/model-%012d.embx", step);
    std::filesystem::copy_file(root + name, models + "/" + as, std::filesystem::copy_options::overwrite_existing);
  };
  copy(20, "model-20.embx");
  std::vector<std::string> log;
  serving::ModelWatcher watcher(models, "cpu", "fp32", 0.05, [&](const std::string& l) { log.push_back(l); });
  auto first = watcher.LoadFirst();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)->step(), 20);
  serving::ServeOptions o;
  o.port = 0;
  serving::PredictionServer server(*first, o);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_FALSE(watcher.PollOnce(&server));  // nothing newer
  // A damaged newer export (truncated): refused, the live model stays.
  std::string bytes = *ReadFile(root + "/exports/model-000000000040.embx");
  ASSERT_TRUE(WriteFileAtomic(models + "/model-40.embx", bytes.substr(0, bytes.size() / 2)).ok());
  EXPECT_FALSE(watcher.PollOnce(&server));
  EXPECT_EQ(server.live()->step(), 20);
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("refused " + models + "/model-40.embx (the live model stays)"), std::string::npos)
      << log.back();
  EXPECT_FALSE(watcher.PollOnce(&server));  // not retried while unchanged
  // A good newer one: swapped in.
  copy(60, "model-60.embx");
  EXPECT_TRUE(watcher.PollOnce(&server));
  EXPECT_EQ(server.live()->step(), 60);
  const std::string text = server.registry().Exposition();
  EXPECT_NE(text.find("ember_serving_swaps_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ember_serving_failed_loads_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("ember_serving_model_step 60\n"), std::string::npos);
}

std::string ModelFile(const std::string& dir, int step) {
  char name[40];
  std::snprintf(name, sizeof(name), "/model-%012d.embx", step);
  return dir + name;
}

// The full export `ember export` writes of a checkpoint, as bytes.
std::string FullExportOf(const std::string& checkpoint, const std::string& path) {
  std::ostringstream out;
  auto r = RunExport(checkpoint, path, "fp32", out);
  EMBER_CHECK(r.ok());
  return *ReadFile(path);
}

TEST(Online, DeltaExportsAcrossAReshardResolveToTheCheckpointsFullExport) {
  const std::string root = Dir() + "/delta", ex = root + "/exports";
  std::filesystem::remove_all(root);
  auto sets = D().Sets(root);
  for (const char* s :
       {"export.delta=true", "export.every_steps=10", "export.keep=0", "checkpoint.every_steps=10", "checkpoint.keep=0",
        "embedding.method=\"unified\"", "embedding.chunks=2", "embedding.rows=2000"})
    sets.push_back(s);
  sets.push_back("export.dir=\"" + ex + "\"");
  // Two shards up to a stop in step 25; resumed on three to the end (step 60).
  auto first = sets;
  first.push_back("ps.shards=2");
  StopAtStepForTest(25);
  auto m1 = TrainJob(first);
  StopAtStepForTest(0);
  ASSERT_TRUE(m1.ok()) << m1.status().ToString();
  ASSERT_TRUE(m1->stopped);
  auto second = sets;
  second.push_back("ps.shards=3");
  auto m2 = TrainJob(second, /*resume=*/true);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  // One chain: a full export at step 10, deltas from 20 on, across the reshard.
  auto head = embedding::ExportFile::OpenRaw(ModelFile(ex, 60));
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->get()->header()["delta"]["base"], "model-000000000010.embx");
  EXPECT_EQ(head->get()->header()["delta"]["sequence"], 6);  // 20, 25, 30, 40, 50, 60
  EXPECT_EQ(embedding::ExportChainFiles(ModelFile(ex, 60)).size(), 7u);
  // Each resolves to the bytes `ember export` writes of the checkpoint at its step.
  for (int step : {25, 30, 60}) {
    SCOPED_TRACE(step);
    auto flat = embedding::FlattenExport(ModelFile(ex, step));
    ASSERT_TRUE(flat.ok()) << flat.status().ToString();
    const std::string full = FullExportOf(root + "/ckpt-" + std::to_string(step), root + "/full.embx");
    EXPECT_EQ(flat->size(), full.size());
    EXPECT_TRUE(*flat == full);
    // A delta holds fewer bytes than the full export it stands for.
    EXPECT_LT(std::filesystem::file_size(ModelFile(ex, step)), full.size());
  }
  // And serves the same predictions as that export, through `ember eval --model`.
  std::ostringstream out;
  auto d = RunEval(ModelFile(ex, 60), D().test, 0, out);
  auto f = RunEval(root + "/full.embx", D().test, 0, out);
  ASSERT_TRUE(d.ok() && f.ok());
  EXPECT_EQ(d->auc, f->auc);
  EXPECT_EQ(d->logloss, f->logloss);
}

TEST(Online, ExportKeepHoldsEveryLinkOfTheNewestChains) {
  const std::string root = Dir() + "/delta-keep", ex = root + "/exports";
  std::filesystem::remove_all(root);
  auto sets = D().Sets(root);
  for (const char* s : {"export.delta=true", "export.every_steps=10", "export.keep=1", "export.full_every=2"})
    sets.push_back(s);
  sets.push_back("export.dir=\"" + ex + "\"");
  auto m = TrainJob(sets);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // 10 full, 20 and 30 deltas, 40 full, 50 and 60 deltas: the newest (60) needs 40 and 50.
  std::vector<std::string> left;
  for (const auto& [step, path] : serving::ListModels(ex)) left.push_back(path);
  EXPECT_EQ(left, (std::vector<std::string>{ModelFile(ex, 60), ModelFile(ex, 50), ModelFile(ex, 40)}));
  auto flat = embedding::FlattenExport(ModelFile(ex, 60));
  ASSERT_TRUE(flat.ok());
  EXPECT_TRUE(*flat == FullExportOf(m->checkpoint, root + "/full.embx"));
}

TEST(Online, TheWatcherServesDeltasThroughTheirChainAndRefusesABrokenOne) {
  const std::string root = Dir() + "/delta-watch", ex = root + "/exports", models = Dir() + "/delta-watch-models";
  std::filesystem::remove_all(root);
  std::filesystem::remove_all(models);
  auto sets = D().Sets(root);
  for (const char* s : {"export.delta=true", "export.every_steps=20", "export.keep=0"}) sets.push_back(s);
  sets.push_back("export.dir=\"" + ex + "\"");
  ASSERT_TRUE(TrainJob(sets).ok());  // 20 full, 40 and 60 deltas
  std::filesystem::create_directories(models);
  auto copy = [&](int step, int as) {
    std::filesystem::copy_file(ModelFile(ex, step), ModelFile(models, as),
                               std::filesystem::copy_options::overwrite_existing);
  };
  copy(20, 20);
  copy(40, 40);
  std::vector<std::string> log;
  serving::ModelWatcher watcher(models, "cpu", "fp32", 0.05, [&](const std::string& l) { log.push_back(l); });
  auto first = watcher.LoadFirst();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)->step(), 40);  // the delta, resolved through model-20
  serving::ServeOptions o;
  o.port = 0;
  serving::PredictionServer server(*first, o);
  ASSERT_TRUE(server.Start().ok());
  copy(60, 60);
  EXPECT_TRUE(watcher.PollOnce(&server));
  EXPECT_EQ(server.live()->step(), 60);
  // A delta whose parent is gone: refused, the live model stays.
  std::filesystem::remove(ModelFile(models, 40));
  copy(60, 80);
  EXPECT_FALSE(watcher.PollOnce(&server));
  EXPECT_EQ(server.live()->step(), 60);
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("its parent cannot be read"), std::string::npos) << log.back();
}

}  // namespace
}  // namespace ember::launcher
