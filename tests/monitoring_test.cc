#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "ember/monitoring/recorder.h"
#include "ember/monitoring/registry.h"

namespace ember::monitoring {
namespace {

TEST(Recorder, NullRecorderAcceptsEverything) {
  Recorder* r = NullRecorder();
  ASSERT_NE(r, nullptr);
  r->AddCounter("x", 1);
  r->SetGauge("y", 2, {{"table", "0"}});
  r->Observe("z", 3);
  EXPECT_EQ(NullRecorder(), r);
}

TEST(Recorder, MemoryRecorderKeepsValuesPerLabelSet) {
  MemoryRecorder m;
  m.AddCounter("pulls_total", 2, {{"shard", "0"}});
  m.AddCounter("pulls_total", 3, {{"shard", "0"}});
  m.AddCounter("pulls_total", 7, {{"shard", "1"}});
  m.SetGauge("loss", 0.5);
  m.SetGauge("loss", 0.4);
  m.Observe("latency_seconds", 0.25);
  m.Observe("latency_seconds", 0.75);
  EXPECT_EQ(m.Counter("pulls_total", {{"shard", "0"}}), 5);
  EXPECT_EQ(m.Counter("pulls_total", {{"shard", "1"}}), 7);
  EXPECT_EQ(m.Counter("pulls_total"), 0);
  EXPECT_EQ(m.Gauge("loss"), 0.4);
  EXPECT_EQ(m.ObservationCount("latency_seconds"), 2u);
  EXPECT_EQ(m.ObservationSum("latency_seconds"), 1.0);
}

TEST(Recorder, MemoryRecorderIsThreadSafe) {
  MemoryRecorder m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.AddCounter("n", 1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(m.Counter("n"), 40000);
}

// The text exposition format 0.0.4: HELP/TYPE once per family, one line per label set, label
// values escaped, histograms as cumulative buckets ending in +Inf, then _sum and _count.
TEST(Registry, ExpositionFollowsTheTextFormat) {
  Registry r;
  r.Describe("pull_seconds", MetricType::kHistogram, "Pull latency.\nPer call, in seconds \\ wall", {0.1, 1, 0.5});
  r.Observe("pull_seconds", 0.05, {{"table", "3"}});
  r.Observe("pull_seconds", 0.5, {{"table", "3"}});  // on a bound: counts in that bucket ("le")
  r.Observe("pull_seconds", 7, {{"table", "3"}});
  r.AddCounter("train_samples_total", 1024);
  r.AddCounter("train_samples_total", 1024);
  r.AddCounter("train_samples_total", -5);  // counters never go down
  r.SetGauge("table_rows", 12, {{"table", "b"}, {"role", "server"}});
  r.SetGauge("table_rows", 7, {{"role", "server"}, {"table", "a \"quoted\"\\path\nline"}});
  const std::string want =
      "# HELP ember_pull_seconds Pull latency.\\nPer call, in seconds \\\\ wall\n"
      "# TYPE ember_pull_seconds histogram\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"0.1\"} 1\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"0.5\"} 2\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"1\"} 2\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"+Inf\"} 3\n"
      "ember_pull_seconds_sum{table=\"3\"} 7.55\n"
      "ember_pull_seconds_count{table=\"3\"} 3\n"
      "# TYPE ember_table_rows gauge\n"
      "ember_table_rows{role=\"server\",table=\"a \\\"quoted\\\"\\\\path\\nline\"} 7\n"
      "ember_table_rows{role=\"server\",table=\"b\"} 12\n"
      "# TYPE ember_train_samples_total counter\n"
      "ember_train_samples_total 2048\n";
  EXPECT_EQ(r.Exposition(), want);
}

TEST(Registry, NamesValuesAndTypeConflicts) {
  EXPECT_EQ(Registry::SanitizeName("9lives-per.sec"), "_lives_per_sec");
  EXPECT_EQ(Registry::FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(Registry::FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(Registry::FormatValue(0.25), "0.25");
  EXPECT_EQ(Registry::FormatValue(0.1 + 0.2), "0.30000000000000004");  // shortest exact text
  EXPECT_EQ(Registry::FormatValue(1024), "1024");
  EXPECT_EQ(Registry::FormatValue(3e20), "3e+20");
  Registry r;
  r.Observe("latency", 0.003);  // undescribed: default buckets
  r.SetGauge("latency", 1);     // conflicting type: ignored and counted
  const std::string text = r.Exposition();
  EXPECT_NE(text.find("ember_latency_bucket{le=\"0.005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ember_latency_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ember_metrics_type_conflicts_total 1\n"), std::string::npos);
  // Label order does not make a new series; label names are sanitised.
  r.AddCounter("hits_total", 1, {{"a", "1"}, {"b-c", "2"}});
  r.AddCounter("hits_total", 2, {{"b-c", "2"}, {"a", "1"}});
  EXPECT_NE(r.Exposition().find("ember_hits_total{a=\"1\",b_c=\"2\"} 3\n"), std::string::npos) << r.Exposition();
}

TEST(Registry, ConcurrentRecordingLosesNothing) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        r.AddCounter("steps_total", 1);
        r.Observe("step_seconds", 0.01);
      }
    });
  for (auto& t : threads) t.join();
  const std::string text = r.Exposition();
  EXPECT_NE(text.find("ember_steps_total 40000\n"), std::string::npos);
  EXPECT_NE(text.find("ember_step_seconds_count 40000\n"), std::string::npos);
}

}  // namespace
}  // namespace ember::monitoring
