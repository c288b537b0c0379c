#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ember/common/file.h"
#include "ember/data/criteo.h"
#include "ember/data/field_stats.h"
#include "ember/data/prefetch.h"
#include "ember/data/sharded.h"
#include "ember/data/synthetic_ctr.h"
#include "ember/data/vocab.h"
#include "ember/serving/request_rows.h"

namespace ember::data {
namespace {

std::string TempFile(const std::string& name, const std::string& contents) {
  auto dir = std::filesystem::temp_directory_path() / ("ember_data_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// A line with 2 integer and 3 categorical fields.
CriteoOptions Small(const std::string& path, size_t batch = 10) {
  CriteoOptions o;
  o.path = path;
  o.batch_size = batch;
  o.num_dense = 2;
  o.num_sparse = 3;
  return o;
}

// Six rows for the vocabulary tests. C1: a x3, b x2, c x1; C2: always 7 (x6); C3: 1 x3,
// missing x2, f x1.
constexpr const char* kVocabRows =
    "1\t1\t1\ta\t7\t\n"
    "0\t1\t1\ta\t7\t\n"
    "0\t1\t1\ta\t7\tf\n"
    "1\t1\t1\tb\t7\t1\n"
    "0\t1\t1\tb\t7\t1\n"
    "0\t1\t1\tc\t7\t1\n";

// ember vocab: counts, the min-count and top-K cuts, the file round trip and the reader's OOV map.
TEST(Vocabulary, CutsWritesReadsAndMapsOutOfVocabularyValues) {
  const std::string path = TempFile("vocab.tsv", kVocabRows);
  auto r = CriteoReader::Open(Small(path, 4));
  ASSERT_TRUE(r.ok());
  auto v = CountVocabulary(r->get(), VocabCut{2, 0});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->rows, 6u);
  ASSERT_EQ(v->fields.size(), 3u);
  EXPECT_EQ(v->fields[0].values, (std::vector<uint64_t>{0xa, 0xb}));
  EXPECT_EQ(v->fields[0].counts, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(v->fields[0].distinct, 3u);
  EXPECT_EQ(v->fields[0].kept_occurrences, 5u);
  EXPECT_EQ(v->fields[2].values, (std::vector<uint64_t>{1, kMissingId}));  // 3 ones, 2 missing; f cut
  auto top = CriteoReader::Open(Small(path, 4));
  auto t = CountVocabulary(top->get(), VocabCut{1, 1});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->fields[0].values, (std::vector<uint64_t>{0xa}));

  const std::string file = TempFile("fields.vocab", "");
  ASSERT_TRUE(WriteVocabulary(file, *v).ok());
  auto back = ReadVocabulary(file, 3);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (int f = 0; f < 3; ++f) EXPECT_EQ(back->fields[f].values, v->fields[f].values) << f;
  // The reader with data.vocab: c (C1) and f (C3) read as the out-of-vocabulary id.
  CriteoOptions o = Small(path, 10);
  o.vocab = file;
  auto vr = CriteoReader::Open(o);
  ASSERT_TRUE(vr.ok()) << vr.status().ToString();
  Batch b;
  ASSERT_TRUE(*(*vr)->Next(&b));
  EXPECT_EQ(b.field(0)[5], kOovId);
  EXPECT_EQ(b.field(0)[3], 0xbu);
  EXPECT_EQ(b.field(2)[2], kOovId);
  EXPECT_EQ(b.field(2)[0], kMissingId);
  // Bad files name the file and line.
  const std::string bad = TempFile("bad.vocab", "# ember vocabulary v1 source=x\nC1\tzz\t3\n");
  auto e = ReadVocabulary(bad, 3);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find(bad + ":2: value 'zz' is not a hex id"), std::string::npos)
      << e.status().ToString();
  EXPECT_NE(ReadVocabulary(path, 3).status().message().find("not an ember vocabulary"), std::string::npos);
}

// A full table's budget: the n most frequent values over every field together, ties by field and
// then value, and a reader mapping the rest through the in-memory filter.
TEST(Vocabulary, TopValuesKeepsTheMostFrequentOverEveryField) {
  const std::string path = TempFile("top.tsv", kVocabRows);
  auto r = CriteoReader::Open(Small(path, 4));
  ASSERT_TRUE(r.ok());
  auto all = CountVocabulary(r->get(), VocabCut{});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  // Counts over the fields: 7:6, a:3, 1:3, b:2, missing:2, c:1, f:1.
  auto top4 = TopValues(*all, 4);  // 7, a, 1 and, of the two values seen twice, C1's b
  EXPECT_EQ(top4.fields[0].values, (std::vector<uint64_t>{0xa, 0xb}));
  EXPECT_EQ(top4.fields[1].values, (std::vector<uint64_t>{7}));
  EXPECT_EQ(top4.fields[2].values, (std::vector<uint64_t>{1}));
  EXPECT_EQ(top4.cut.min_count, 2u);
  EXPECT_EQ(top4.fields[0].distinct, 3u);
  EXPECT_EQ(top4.fields[0].kept_occurrences, 5u);
  EXPECT_EQ(top4.fields[2].occurrences, 6u);
  auto top5 = TopValues(*all, 5);
  EXPECT_EQ(top5.fields[2].values, (std::vector<uint64_t>{1, kMissingId}));
  auto top1 = TopValues(*all, 1);
  EXPECT_TRUE(top1.fields[0].values.empty());
  EXPECT_EQ(top1.fields[1].values, (std::vector<uint64_t>{7}));
  EXPECT_EQ(top1.cut.min_count, 6u);
  EXPECT_TRUE(TopValues(*all, 0).fields[1].values.empty());
  auto every = TopValues(*all, 100);
  for (int f = 0; f < 3; ++f) EXPECT_EQ(every.fields[f].values, all->fields[f].values) << f;
  EXPECT_EQ(every.cut.min_count, 1u);
  // Counted once, then read from the cache beside the data (which a changed file invalidates).
  std::filesystem::remove(path + ".top-4.json");
  for (int pass = 0; pass < 2; ++pass) {
    auto loaded = LoadOrCountTopValues(Small(path, 4), 4);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_TRUE(std::filesystem::exists(path + ".top-4.json"));
    for (int f = 0; f < 3; ++f) {
      EXPECT_EQ(loaded->fields[f].values, top4.fields[f].values) << pass << " " << f;
      EXPECT_EQ(loaded->fields[f].counts, top4.fields[f].counts) << pass << " " << f;
      EXPECT_EQ(loaded->fields[f].distinct, top4.fields[f].distinct) << pass << " " << f;
      EXPECT_EQ(loaded->fields[f].kept_occurrences, top4.fields[f].kept_occurrences) << pass << " " << f;
    }
    EXPECT_EQ(loaded->cut.min_count, 2u);
    EXPECT_EQ(loaded->rows, 6u);
  }

  CriteoOptions o = Small(path, 10);
  o.vocab_filter = std::make_shared<const VocabFilter>(top4);
  auto vr = CriteoReader::Open(o);
  ASSERT_TRUE(vr.ok()) << vr.status().ToString();
  Batch b;
  ASSERT_TRUE(*(*vr)->Next(&b));
  EXPECT_EQ(b.field(0)[3], 0xbu);
  EXPECT_EQ(b.field(0)[5], kOovId);
  EXPECT_EQ(b.field(2)[0], kOovId);  // the missing value was cut too
  EXPECT_EQ(b.field(2)[3], 1u);
}

TEST(CriteoReader, ParsesEveryFieldShape) {
  const std::string path = TempFile("shapes.tsv",
                                    "1\t5\t\tab12\t\tFFFFFFFF\n"
                                    "0\t-3\t0\t\t0\t00000001\r\n"
                                    "1\t\t99\t1\t2\t3");  // no trailing newline
  auto r = CriteoReader::Open(Small(path));
  ASSERT_TRUE(r.ok());
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_TRUE(got.ok() && *got) << got.status().ToString();
  ASSERT_EQ(b.size, 3u);
  EXPECT_EQ(b.labels[0], 1.0f);
  EXPECT_EQ(b.labels[1], 0.0f);
  EXPECT_FLOAT_EQ(b.dense[0], std::log1p(5.0f));
  EXPECT_EQ(b.dense[1], 0.0f);  // missing
  EXPECT_EQ(b.dense[2], 0.0f);  // negative clamps to 0
  EXPECT_EQ(b.dense[3], 0.0f);  // log1p(0)
  EXPECT_FLOAT_EQ(b.dense[5], std::log1p(99.0f));
  EXPECT_EQ(b.field(0)[0], 0xab12u);
  EXPECT_EQ(b.field(1)[0], kMissingId);
  EXPECT_EQ(b.field(2)[0], 0xFFFFFFFFu);
  EXPECT_EQ(b.field(0)[1], kMissingId);
  EXPECT_EQ(b.field(1)[1], 0u);
  EXPECT_EQ(b.field(2)[1], 1u);  // CR stripped
  EXPECT_EQ(b.field(2)[2], 3u);
  got = (*r)->Next(&b);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_DOUBLE_EQ((*r)->Progress(), 1.0);
}

TEST(CriteoReader, MalformedLineNamesFileAndLine) {
  const std::string path = TempFile("bad.tsv", "1\t1\t2\ta\tb\tc\n0\t1\t2\ta\tb\n1\t1\t2\ta\tb\tc\n");
  auto r = CriteoReader::Open(Small(path));
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find(path + ":2: expected 6 tab-separated fields, got 5"), std::string::npos)
      << got.status().ToString();
}

TEST(CriteoReader, BadValuesNameTheField) {
  struct Case {
    std::string line, expect;
  } cases[] = {
      {"2\t1\t2\ta\tb\tc", "field 1 (label)"},
      {"1\tx\t2\ta\tb\tc", "field 2 (I1): expected an integer, got 'x'"},
      {"1\t1\t2.5\ta\tb\tc", "field 3 (I2)"},
      {"1\t1\t2\ta\tzz\tc", "field 5 (C2): expected a hex id"},
      {"1\t1\t2\ta\t12345678901234567\tc", "field 5 (C2)"},
  };
  for (const auto& c : cases) {
    const std::string path = TempFile("v.tsv", c.line + "\n");
    auto r = CriteoReader::Open(Small(path));
    Batch b;
    auto got = (*r)->Next(&b);
    ASSERT_FALSE(got.ok()) << c.line;
    EXPECT_NE(got.status().message().find(path + ":1: " + c.expect), std::string::npos) << got.status().ToString();
  }
}

TEST(CriteoReader, SkipPolicyCountsBadLines) {
  const std::string path = TempFile("skip.tsv", "1\t1\t2\ta\tb\tc\ngarbage\n0\t1\t2\ta\tb\n\n1\t3\t4\td\te\tf\n");
  auto o = Small(path);
  o.on_bad_line = BadLinePolicy::kSkip;
  auto r = CriteoReader::Open(o);
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(b.size, 2u);
  EXPECT_EQ((*r)->bad_lines(), 2u);
  EXPECT_EQ(b.field(0)[1], 0xdu);
}

TEST(CriteoReader, BatchesAndLinesAcrossReadChunks) {
  // > 4 MiB so lines straddle the reader's chunk boundary.
  std::string text;
  const int rows = 200000;
  for (int i = 0; i < rows; ++i)
    text += std::to_string(i % 2) + "\t" + std::to_string(i) + "\t7\t" + std::to_string(i % 4096) + "\tbeef\tcafe\n";
  ASSERT_GT(text.size(), 4u << 20);
  const std::string path = TempFile("big.tsv", text);
  auto r = CriteoReader::Open(Small(path, 1000));
  Batch b;
  int seen = 0;
  for (;;) {
    auto got = (*r)->Next(&b);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (!*got) break;
    for (size_t i = 0; i < b.size; ++i, ++seen) {
      ASSERT_FLOAT_EQ(b.dense[i * 2], std::log1p(static_cast<float>(seen))) << seen;
      ASSERT_EQ(b.field(0)[i], static_cast<uint64_t>(std::stoull(std::to_string(seen % 4096), nullptr, 16)));
    }
  }
  EXPECT_EQ(seen, rows);
}

TEST(CriteoReader, MaxRowsAndMissingFile) {
  auto missing = CriteoReader::Open(Small("/nonexistent/x.tsv"));
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("/nonexistent/x.tsv"), std::string::npos);
  const std::string path = TempFile("cap.tsv", "1\t1\t2\ta\tb\tc\n0\t1\t2\ta\tb\tc\n1\t1\t2\ta\tb\tc\n");
  auto o = Small(path);
  o.max_rows = 2;
  auto r = CriteoReader::Open(o);
  Batch b;
  ASSERT_TRUE(*(*r)->Next(&b));
  EXPECT_EQ(b.size, 2u);
}

// Worker w of 3 takes batch w of each group of 3; the incomplete last group goes to nobody.
TEST(ShardedReader, EveryWorkerTakesItsShareOfEachGroup) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "1\t" + std::to_string(i) + "\t1\t1\t2\t3\n";
  const std::string path = TempFile("sharded.tsv", text);  // 1000 rows, batches of 100: 10 batches
  std::vector<std::vector<float>> first_dense(3);
  for (int w = 0; w < 3; ++w) {
    ShardedReader r(std::move(CriteoReader::Open(Small(path, 100))).value(), w, 3);
    Batch b;
    for (;;) {
      auto got = r.Next(&b);
      ASSERT_TRUE(got.ok());
      if (!*got) break;
      ASSERT_EQ(b.size, 100u);
      first_dense[w].push_back(b.dense[0]);
    }
  }
  // Batch g*3 + w starts at row 100 * (g*3 + w); its first dense value is log(row + 1) after
  // the reader's transform, so compare the batches' order instead: 3 per worker, interleaved.
  for (int w = 0; w < 3; ++w) ASSERT_EQ(first_dense[w].size(), 3u) << "worker " << w;
  for (int g = 0; g < 3; ++g) {
    EXPECT_LT(first_dense[0][g], first_dense[1][g]);
    EXPECT_LT(first_dense[1][g], first_dense[2][g]);
  }
}

TEST(PrefetchingReader, YieldsSameBatchesInOrder) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "1\t" + std::to_string(i) + "\t1\t1\t2\t3\n";
  const std::string path = TempFile("pf.tsv", text);
  auto plain = CriteoReader::Open(Small(path, 64));
  PrefetchingReader pf(std::move(CriteoReader::Open(Small(path, 64))).value(), 3);
  Batch a, b;
  for (;;) {
    auto ga = (*plain)->Next(&a);
    auto gb = pf.Next(&b);
    ASSERT_EQ(*ga, *gb);
    if (!*ga) break;
    ASSERT_EQ(a.size, b.size);
    ASSERT_EQ(std::vector<float>(a.dense.begin(), a.dense.begin() + a.size * 2),
              std::vector<float>(b.dense.begin(), b.dense.begin() + b.size * 2));
  }
}

TEST(CriteoReader, RealCriteoSample) {
  const std::string path = std::string(EMBER_SHARED_DATA_DIR) + "/criteo/criteo_kaggle_train.tsv";
  if (!PathExists(path)) GTEST_SKIP() << "shared data sample absent: " << path;
  CriteoOptions o;
  o.path = path;
  o.batch_size = 4096;
  auto r = CriteoReader::Open(o);
  ASSERT_TRUE(r.ok());
  Batch b;
  size_t rows = 0;
  double clicks = 0;
  for (;;) {
    auto got = (*r)->Next(&b);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (!*got) break;
    rows += b.size;
    for (size_t i = 0; i < b.size; ++i) clicks += b.labels[i];
  }
  EXPECT_EQ(rows, 7200u);
  EXPECT_EQ(clicks, 1549);  // documented in shared/data/README.md
}

TEST(Zipf, FrequenciesFollowPowerLaw) {
  ZipfSampler z(1000000, 1.1);
  std::vector<int> counts(11, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const uint64_t k = z.Sample(static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
    ASSERT_GE(k, 1u);
    ASSERT_LE(k, 1000000u);
    if (k <= 10) counts[k]++;
  }
  // P(1)/P(2) = 2^1.1 = 2.14.
  EXPECT_NEAR(static_cast<double>(counts[1]) / counts[2], std::pow(2.0, 1.1), 0.12);
  EXPECT_NEAR(static_cast<double>(counts[1]) / counts[10], std::pow(10.0, 1.1), 1.5);
}

SyntheticCtrOptions SmallGen(uint64_t seed) {
  SyntheticCtrOptions o;
  o.rows = 20000;
  o.seed = seed;
  o.max_vocab = 100000;
  return o;
}

TEST(SyntheticCtr, DeterministicForASeedAndCalibrated) {
  const std::string a = TempFile("g1.tsv", ""), b = TempFile("g2.tsv", ""), c = TempFile("g3.tsv", "");
  auto sa = WriteSyntheticCtr(SmallGen(5), a);
  auto sb = WriteSyntheticCtr(SmallGen(5), b);
  auto sc = WriteSyntheticCtr(SmallGen(6), c);
  ASSERT_TRUE(sa.ok() && sb.ok() && sc.ok()) << sa.status().ToString();
  EXPECT_EQ(*ReadFile(a), *ReadFile(b));
  EXPECT_NE(*ReadFile(a), *ReadFile(c));
  // Calibration: the mean true probability within 0.01 of the target; observed CTR within 4
  // standard errors of it.
  EXPECT_NEAR(sa->mean_probability, 0.25, 0.01);
  EXPECT_NEAR(sa->ctr, sa->mean_probability, 4 * std::sqrt(0.25 * 0.75 / 20000));
  EXPECT_GT(sa->auc, 0.75);
  EXPECT_LT(sa->auc, 0.95);
  auto oracle = ReadFile(a + ".oracle.json");
  ASSERT_TRUE(oracle.ok());
  EXPECT_NE(oracle->find("\"auc\""), std::string::npos);
  EXPECT_NE(oracle->find("\"logloss\""), std::string::npos);
  // The generated file is valid Criteo format with 13 + 26 fields.
  CriteoOptions o;
  o.path = a;
  o.batch_size = 100000;
  auto r = CriteoReader::Open(o);
  Batch batch;
  auto got = (*r)->Next(&batch);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(batch.size, 20000u);
}

TEST(SyntheticCtr, CalibratesOtherRates) {
  auto o = SmallGen(9);
  o.ctr = 0.05;
  const std::string p = TempFile("g5.tsv", "");
  auto s = WriteSyntheticCtr(o, p);
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(s->mean_probability, 0.05, 0.005);
  o.ctr = 1.5;
  EXPECT_EQ(WriteSyntheticCtr(o, p).status().code(), StatusCode::kInvalidArgument);
}

TEST(SyntheticCtr, TeacherSharedAcrossSamplingSeeds) {
  SyntheticCtrTeacher t1(SmallGen(1)), t2(SmallGen(2));
  EXPECT_EQ(t1.bias(), t2.bias());
  EXPECT_EQ(t1.IdOfRank(3, 17), t2.IdOfRank(3, 17));
  EXPECT_EQ(t1.vocab(0), 10u);
  EXPECT_EQ(t1.vocab(25), 100000u);
}

// The long-tail teacher: a field's rare values move the logit as much as its frequent ones; the
// default teacher shrinks them towards nothing.
TEST(SyntheticCtr, LongTailTeacherGivesRareValuesFullEffects) {
  auto spread = [](const SyntheticCtrOptions& o, uint64_t first_rank) {
    SyntheticCtrTeacher t(o);
    std::vector<int64_t> dense(static_cast<size_t>(o.num_dense), -1);
    std::vector<uint64_t> ranks(static_cast<size_t>(o.num_sparse), 1);
    double sum = 0, sq = 0;
    const int n = 400;
    for (int i = 0; i < n; ++i) {
      ranks[25] = first_rank + static_cast<uint64_t>(i);  // the largest field (100000 values)
      const double l = t.Logit(dense.data(), ranks.data());
      sum += l;
      sq += l * l;
    }
    return std::sqrt(sq / n - (sum / n) * (sum / n));
  };
  SyntheticCtrOptions o = SmallGen(1);
  const double head = spread(o, 1), tail = spread(o, 50000);
  EXPECT_LT(tail, 0.01 * head);  // default: s(50000) = (1 + 1000)^-2
  o.teacher = "longtail";
  const double lt_head = spread(o, 1), lt_tail = spread(o, 50000);
  EXPECT_GT(lt_tail, 0.7 * lt_head);
  EXPECT_LT(lt_tail, 1.4 * lt_head);
  std::printf("logit spread over 400 values of C26: default head %.3f tail %.5f; longtail head %.3f tail %.3f\n", head,
              tail, lt_head, lt_tail);
  // The oracle's terms: its AUC without the categorical pairs, and with the first-order terms
  // alone, below the whole logit's (what the pairs and the dense terms can add at most), and the
  // terms sum to the logit.
  o.teacher = "longtail";
  const std::string lt = TempFile("lt.tsv", "");
  auto stats = WriteSyntheticCtr(o, lt);
  ASSERT_TRUE(stats.ok());
  EXPECT_LT(stats->auc_first_order, stats->auc_without_pairs);
  EXPECT_LT(stats->auc_without_pairs, stats->auc);
  EXPECT_GT(stats->auc_first_order, 0.75);
  EXPECT_NE(ReadFile(lt + ".oracle.json")->find("\"auc_without_pairs\""), std::string::npos);
  SyntheticCtrTeacher t(o);
  std::vector<int64_t> dense(static_cast<size_t>(o.num_dense));
  std::vector<uint64_t> ranks(static_cast<size_t>(o.num_sparse));
  t.Sample(7, 3, dense.data(), ranks.data());
  const auto terms = t.Terms(dense.data(), ranks.data());
  EXPECT_NE(terms.pairs, 0);
  EXPECT_NE(terms.dense, 0);
  EXPECT_NEAR(t.bias() + terms.first_order + terms.pairs + terms.dense, t.Logit(dense.data(), ranks.data()), 1e-12);
  o.teacher = "flat";
  EXPECT_EQ(WriteSyntheticCtr(o, "/tmp/unused.tsv").status().message(),
            "--teacher 'flat' is not one of default, longtail");
}

TEST(RequestRows, ParsesAndNamesBadRows) {
  Batch b;
  std::vector<std::vector<std::string>> rows = {{"3", "", "a", "", "ff"}, {"0", "1", "b", "c", "d"}};
  ASSERT_TRUE(serving::RowsToBatch(rows, 2, 3, &b).ok());
  EXPECT_EQ(b.size, 2u);
  EXPECT_FLOAT_EQ(b.dense[0], std::log1p(3.0f));
  EXPECT_EQ(b.field(1)[0], kMissingId);
  EXPECT_EQ(b.field(2)[0], 0xffu);
  rows[1].pop_back();
  Status st = serving::RowsToBatch(rows, 2, 3, &b);
  EXPECT_EQ(st.message(), "row 1: expected 5 fields, got 4");
  rows[1] = {"x", "1", "b", "c", "d"};
  st = serving::RowsToBatch(rows, 2, 3, &b);
  EXPECT_NE(st.message().find("row 1: field 2 (I1)"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace ember::data
