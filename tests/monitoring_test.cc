#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "ember/monitoring/recorder.h"

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

}  // namespace
}  // namespace ember::monitoring
