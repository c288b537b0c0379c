#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "ember/common/byte_buffer.h"
#include "ember/common/env.h"
#include "ember/common/file.h"
#include "ember/common/half.h"
#include "ember/common/hash.h"
#include "ember/common/metrics.h"
#include "ember/common/progress.h"
#include "ember/common/status.h"
#include "ember/common/thread_pool.h"

namespace ember {
namespace {

std::string TempDir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("ember_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

TEST(Status, CarriesCodeAndContext) {
  Status s = Status::InvalidArgument("bad line").WithContext("a.tsv:3");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "InvalidArgument: a.tsv:3: bad line");
  EXPECT_EQ(Status::Ok().ToString(), "OK");
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}
Status UseHalf(int x, int* out) {
  EMBER_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(Status, ResultAndMacros) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status st = UseHalf(3, &v);
  EXPECT_EQ(st.message(), "odd");
}

TEST(ByteBuffer, GrowsKeepingItsBytesAndReusesItsCapacity) {
  ByteBuffer b;
  EXPECT_TRUE(b.empty());
  b.append("abc", 3);
  b.resize(5);  // two bytes past "abc", left as they are
  std::memcpy(b.data() + 3, "de", 2);
  b.append("f", 1);
  EXPECT_EQ(b.view(), "abcdef");
  const size_t cap = b.capacity();
  b.resize(100 * cap);  // a reallocation keeps what was there
  EXPECT_EQ(b.view().substr(0, 6), "abcdef");
  EXPECT_GE(b.capacity(), 100 * cap);
  const char* at = b.data();
  b.clear();
  b.resize(10);  // within capacity: the same memory
  EXPECT_EQ(b.data(), at);
  ByteBuffer moved(std::move(b));
  EXPECT_EQ(moved.size(), 10u);
  EXPECT_EQ(moved.data(), at);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  moved.Free();
  EXPECT_EQ(moved.capacity(), 0u);
  EXPECT_EQ(moved.data(), nullptr);
}

TEST(Hash, StableAcrossRuns) {
  // Fixed values: these keys are written into checkpoints and exports.
  EXPECT_EQ(Mix64(0), 0u);
  EXPECT_EQ(Mix64(1), 0x5692161d100b05e5ULL);
  EXPECT_EQ(HashId(42, 7), HashId(42, 7));
  EXPECT_NE(HashId(42, 7), HashId(42, 8));
  // XXH3-64 values pinned: a change of hash library or byte order must fail here.
  EXPECT_EQ(Hash64("ember", 0), 0x0f6a0098da564b33ULL);
  EXPECT_EQ(HashId(42, 7), 0xb117e48ca46dc725ULL);
  EXPECT_NE(PairSeed(1, 2), PairSeed(2, 1));
}

TEST(Hash, UnitFromHashInRange) {
  EXPECT_EQ(UnitFromHash(0), 0.0);
  EXPECT_LT(UnitFromHash(~0ULL), 1.0);
}

TEST(File, AtomicWriteReplacesWholeFile) {
  const std::string dir = TempDir("file");
  const std::string path = dir + "/x.bin";
  ASSERT_TRUE(WriteFileAtomic(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second version").ok());
  auto got = ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "second version");
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename(), "x.bin") << "temporary file left behind";
  auto missing = ReadFile(dir + "/nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  auto bad = WriteFileAtomic(dir + "/no/such/dir/f", "x");
  EXPECT_EQ(bad.code(), StatusCode::kIoError);
}

TEST(File, ChecksumDetectsChange) {
  EXPECT_EQ(Checksum("abc"), Checksum("abc"));
  EXPECT_NE(Checksum("abc"), Checksum("abd"));
}

double BruteAuc(const std::vector<float>& s, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] > 0.5f && y[j] < 0.5f) {
        den += 1;
        num += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      }
  return den > 0 ? num / den : 0.5;
}

TEST(Metrics, AucMatchesBruteForceWithTies) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> s(300), y(300);
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = static_cast<float>(rng() % 20) / 20.0f;  // many ties
      y[i] = (rng() % 3 == 0) ? 1.0f : 0.0f;
    }
    EXPECT_NEAR(ExactAuc(s, y), BruteAuc(s, y), 1e-12);
  }
}

TEST(Metrics, KnownValues) {
  EXPECT_DOUBLE_EQ(ExactAuc({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(ExactAuc({0.5f, 0.5f}, {0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(ExactAuc({0.2f, 0.3f}, {1, 1}), 0.5);  // one class only
  EXPECT_NEAR(LogLoss({0.5f}, {1}), std::log(2.0), 1e-9);
  EXPECT_NEAR(LogLoss({0.9f, 0.2f}, {1, 0}), -(std::log(0.9) + std::log(0.8)) / 2, 1e-6);
}

TEST(ThreadPool, ParallelForCoversRangeOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.ParallelFor(hits.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(ProgressReporter::FormatDuration(5), "5s");
  EXPECT_EQ(ProgressReporter::FormatDuration(185), "3m05s");
  EXPECT_EQ(ProgressReporter::FormatDuration(3720), "1h02m");
}

TEST(Progress, LogLineHasRateAndEta) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  ProgressReporter::Options o;
  o.label = "train";
  o.total = 100;
  o.out = f;
  o.log_interval_s = 0;
  ProgressReporter r(o);
  r.Update(50, -1, "loss 0.5");
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  EXPECT_NE(out.find("train: 50 rows"), std::string::npos) << out;
  EXPECT_NE(out.find("rows/s"), std::string::npos) << out;
  EXPECT_NE(out.find("50.0%"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
  EXPECT_NE(out.find("loss 0.5"), std::string::npos) << out;
}

TEST(Half, EveryHalfRoundTripsAndRoundingIsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << h;
  }
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(70000.0f), 0x7c00);            // overflow -> inf
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // halfway, even stays
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3c02);  // halfway, odd rounds up
  EXPECT_EQ(FloatToHalf(5.9604645e-8f), 0x0001);       // smallest subnormal
  EXPECT_EQ(FloatToHalf(2.0e-8f), 0x0000);             // below half of it
  EXPECT_FLOAT_EQ(HalfToFloat(FloatToHalf(0.1f)), 0.0999755859375f);
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {
// The in-memory file system behaves as the checkpoint code expects of the real one, and the
// fault-injecting wrapper breaks exactly the call it was armed for.
TEST(Env, MemEnvAndFaultInjection) {
  auto mem = NewMemEnv();
  ASSERT_TRUE(mem->MakeDirs("/r/a").ok());
  ASSERT_TRUE(mem->WriteFileAtomic("/r/a/x", "one").ok());
  EXPECT_EQ(mem->WriteFileAtomic("/r/none/x", "z").code(), StatusCode::kIoError);  // no such directory
  EXPECT_EQ(*mem->ReadFile("/r/a/x"), "one");
  EXPECT_EQ(*mem->Children("/r"), std::vector<std::string>{"a"});
  ASSERT_TRUE(mem->Rename("/r/a", "/r/b").ok());
  EXPECT_FALSE(mem->Exists("/r/a/x"));
  EXPECT_EQ(*mem->ReadFile("/r/b/x"), "one");
  EXPECT_FALSE(mem->Rename("/r/b", "/r/b").ok());  // the target exists
  ASSERT_TRUE(mem->RemoveAll("/r/b").ok());
  EXPECT_FALSE(mem->Exists("/r/b"));
  EXPECT_TRUE(mem->Exists("/r"));

  FaultyEnv f(mem.get());
  f.Arm(2, FaultyEnv::Fault::kFail);
  EXPECT_TRUE(f.MakeDirs("/s").ok());
  Status st = f.WriteFileAtomic("/s/y", "two");
  EXPECT_NE(st.message().find("injected fault at call 2: write /s/y"), std::string::npos) << st.ToString();
  EXPECT_FALSE(mem->Exists("/s/y"));
  EXPECT_TRUE(f.WriteFileAtomic("/s/y", "two").ok());  // only that call
  f.Arm(1, FaultyEnv::Fault::kShortWrite);
  EXPECT_FALSE(f.WriteFileAtomic("/s/y", "three!").ok());
  EXPECT_EQ(*mem->ReadFile("/s/y"), "two");  // the target is untouched
  EXPECT_EQ(*mem->ReadFile("/s/y.tmp.torn"), "thr");
  f.Arm(1, FaultyEnv::Fault::kCrash);
  EXPECT_FALSE(f.SyncDir("/s").ok());
  EXPECT_TRUE(f.crashed());
  EXPECT_FALSE(f.ReadFile("/s/y").ok());  // nothing runs after a crash
  EXPECT_FALSE(f.Exists("/s/y"));
  EXPECT_EQ(f.calls(), 1);
  f.Arm(0, FaultyEnv::Fault::kFail);
  EXPECT_EQ(*f.ReadFile("/s/y"), "two");
}
}  // namespace
}  // namespace ember
