// The schema-driven text reader (data/schema.h): every role, RFC 4180 quoting, headers, the
// Avazu preset, multi-hot bags, request rows, and bad schemas and rows by name.
#include "ember/data/schema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/data/cache.h"
#include "ember/data/criteo.h"
#include "ember/data/field_stats.h"
#include "ember/data/vocab.h"
#include "ember/serving/request_rows.h"

namespace ember::data {
namespace {

std::string TempFile(const std::string& name, const std::string& contents) {
  auto dir = std::filesystem::temp_directory_path() / ("ember_schema_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

ColumnSpec Col(const std::string& name, ColumnRole role) {
  ColumnSpec c;
  c.name = name;
  c.role = role;
  return c;
}

// label, price (dense log1p), score (dense standardize mean 10 std 2), site (string), cat (int),
// tags (multi-hot mean), hist (weighted sum), note (ignored).
Schema Shop() {
  Schema s;
  s.format = "csv";
  s.delimiter = ',';
  s.header = true;
  s.columns.push_back(Col("click", ColumnRole::kLabel));
  s.columns.push_back(Col("price", ColumnRole::kDense));
  ColumnSpec score = Col("score", ColumnRole::kDense);
  score.transform = DenseTransform::kStandardize;
  score.mean = 10;
  score.stddev = 2;
  s.columns.push_back(score);
  s.columns.push_back(Col("site", ColumnRole::kCategorical));
  ColumnSpec cat = Col("cat", ColumnRole::kCategorical);
  cat.encoding = IdEncoding::kInt;
  s.columns.push_back(cat);
  ColumnSpec tags = Col("tags", ColumnRole::kMultiHot);
  tags.pooling = BagPooling::kMean;
  s.columns.push_back(tags);
  ColumnSpec hist = Col("hist", ColumnRole::kMultiHot);
  hist.separator = ";";
  hist.weighted = true;
  hist.encoding = IdEncoding::kHex;
  s.columns.push_back(hist);
  s.columns.push_back(Col("note", ColumnRole::kIgnore));
  return s;
}

Result<std::unique_ptr<CriteoReader>> Open(const std::string& path, const Schema& s, size_t batch = 16) {
  CriteoOptions o;
  o.path = path;
  o.batch_size = batch;
  o.num_dense = s.num_dense();
  o.num_sparse = s.num_fields();
  o.schema = std::make_shared<Schema>(s);
  return CriteoReader::Open(o);
}

uint64_t StringId(const std::string& s) {
  uint64_t id = 0;
  EXPECT_TRUE(ParseId(s, IdEncoding::kString, &id));
  return id;
}

TEST(Schema, EveryRoleWithQuotingAndAHeader) {
  // The header is in another order than the schema and has a column the schema skips.
  const std::string path = TempFile("shop.csv",
                                    "note,extra,hist,tags,cat,site,score,price,click\n"
                                    "\"a, quoted\",x,1f:0.5;2:2,red|blue|red,7,\"sh\"\"op\",12,0,1\n"
                                    "\"two\nlines\",y,,,,,,,0\r\n"
                                    "n,z,ff:1,green,-3,site b,8,2.5,0\n");
  auto r = Open(path, Shop());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(b.size, 3u);
  EXPECT_EQ(b.labels[0], 1.0f);
  EXPECT_EQ(b.labels[1], 0.0f);
  // Dense: price log1p, score standardized; missing reads 0.
  EXPECT_FLOAT_EQ(b.dense[0], 0.0f);
  EXPECT_FLOAT_EQ(b.dense[1], 1.0f);  // (12 - 10) / 2
  EXPECT_FLOAT_EQ(b.dense[2], 0.0f);
  EXPECT_FLOAT_EQ(b.dense[3], 0.0f);
  EXPECT_FLOAT_EQ(b.dense[4], static_cast<float>(std::log1p(2.5)));
  EXPECT_FLOAT_EQ(b.dense[5], -1.0f);
  // Fields: site, cat, tags, hist.
  ASSERT_EQ(b.num_sparse, 4);
  EXPECT_EQ(b.field(0)[0], StringId("sh\"op"));
  EXPECT_EQ(b.field(0)[1], kMissingId);
  EXPECT_EQ(b.field(0)[2], StringId("site b"));
  EXPECT_EQ(b.field(1)[0], 7u);
  EXPECT_EQ(b.field(1)[2], static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(b.field(1)[1], kMissingId);
  ASSERT_TRUE(b.is_multi_hot(2));
  ASSERT_TRUE(b.is_multi_hot(3));
  EXPECT_FALSE(b.is_multi_hot(0));
  const Bags& tags = b.bags[2];
  EXPECT_EQ(tags.offsets, (std::vector<uint32_t>{0, 3, 3, 4}));
  EXPECT_EQ(tags.ids, (std::vector<uint64_t>{StringId("red"), StringId("blue"), StringId("red"), StringId("green")}));
  for (int k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(tags.weights[k], 1.0f / 3);  // mean pooling
  EXPECT_FLOAT_EQ(tags.weights[3], 1.0f);
  const Bags& hist = b.bags[3];
  EXPECT_EQ(hist.offsets, (std::vector<uint32_t>{0, 2, 2, 3}));
  EXPECT_EQ(hist.ids, (std::vector<uint64_t>{0x1f, 0x2, 0xff}));
  EXPECT_EQ(hist.weights, (std::vector<float>{0.5f, 2.0f, 1.0f}));  // weighted sum
  // Lines: the quoted newline made record 2 span lines 3-4, so record 3 is line 5.
  EXPECT_EQ((*r)->line_number(), 5u);
}

TEST(Schema, WithoutAHeaderColumnsArePositional) {
  Schema s;
  s.format = "tsv";
  s.delimiter = '\t';
  s.header = false;
  s.columns = {Col("y", ColumnRole::kLabel), Col("a", ColumnRole::kCategorical), Col("x", ColumnRole::kDense)};
  s.columns[2].transform = DenseTransform::kNone;
  const std::string path = TempFile("pos.tsv", "1\tfoo\t-2.5\n0\t\t\n");
  auto r = Open(path, s);
  ASSERT_TRUE(r.ok());
  Batch b;
  ASSERT_TRUE(*(*r)->Next(&b));
  ASSERT_EQ(b.size, 2u);
  EXPECT_EQ(b.field(0)[0], StringId("foo"));
  EXPECT_FLOAT_EQ(b.dense[0], -2.5f);
  EXPECT_EQ(b.field(0)[1], kMissingId);
}

struct BadRow {
  const char* name;
  std::string line;
  std::string error;  // a substring of the message
};

TEST(Schema, BadRowsAreNamedByFileLineAndColumn) {
  const std::string header = "note,extra,hist,tags,cat,site,score,price,click\n";
  const std::vector<BadRow> cases = {
      {"unparsable dense", "n,x,,,,,,cheap,0", ":2: column 'price': expected a number, got 'cheap'"},
      {"bad label", "n,x,,,,,,1,maybe", ":2: column 'click': expected a label 0 or 1, got 'maybe'"},
      {"bad weight", "n,x,1f:heavy,,,,,1,0", ":2: column 'hist': bad weight in '1f:heavy'"},
      {"weight missing", "n,x,1f,,,,,1,0", ":2: column 'hist': expected id:weight, got '1f'"},
      {"bad hex id", "n,x,zz:1,,,,,1,0", ":2: column 'hist': bad id 'zz'"},
      {"bad int id", "n,x,,,seven,,,1,0", ":2: column 'cat': expected an integer id, got 'seven'"},
      {"fields", "n,x,,,,,1,0", ":2: expected 9 fields (the header's), got 8"},
      {"open quote", "\"n,x,,,,,,1,0", ":2: a quoted field is not closed before the end of the file"},
      {"after quote", "\"n\"x,x,,,,,,1,0", ":2: field 1: characters after a closing quote"},
      {"infinite", "n,x,,,,,inf,1,0", ":2: column 'score': expected a number, got 'inf'"},
  };
  for (const auto& c : cases) {
    const std::string path = TempFile("bad.csv", header + c.line + "\n");
    auto r = Open(path, Shop());
    ASSERT_TRUE(r.ok()) << c.name;
    Batch b;
    auto got = (*r)->Next(&b);
    ASSERT_FALSE(got.ok()) << c.name;
    EXPECT_NE(got.status().message().find(path + c.error), std::string::npos)
        << c.name << ": " << got.status().message();
  }
}

TEST(Schema, EachFileOfSeveralHasItsHeaderAndErrorsNameTheFile) {
  const std::string header = "note,extra,hist,tags,cat,site,score,price,click\n";
  const std::string a = TempFile("part-a.csv", header + "n,x,,a,1,s,1,1,0\nn,x,,b,1,s,1,1,1\n");
  const std::string b =
      TempFile("part-b.csv", "click,price,score,site,cat,tags,hist,note\n1,1,1,s,1,c,,n\n0,bad,,,,,,\n");
  CriteoOptions o;
  o.paths = {a, b};
  o.batch_size = 16;
  o.num_dense = 2;
  o.num_sparse = 4;
  o.schema = std::make_shared<Schema>(Shop());
  auto r = CriteoReader::Open(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Batch batch;
  auto got = (*r)->Next(&batch);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find(b + ":3: column 'price': expected a number, got 'bad'"), std::string::npos)
      << got.status().message();
  o.max_rows = 3;  // the third row is the second file's first, read by its own header
  auto r3 = CriteoReader::Open(o);
  ASSERT_TRUE(*(*r3)->Next(&batch));
  ASSERT_EQ(batch.size, 3u);
  EXPECT_EQ(batch.bags[2].ids.back(), StringId("c"));
  EXPECT_EQ(batch.labels[2], 1.0f);
}

// A batch's labels, dense values and ids, to compare batches read two ways.
std::vector<float> Digest(const Batch& b) {
  std::vector<float> d(b.labels.begin(), b.labels.begin() + b.size);
  for (size_t i = 0; i < b.size * b.num_dense; ++i) d.push_back(b.dense[i]);
  for (int f = 0; f < b.num_sparse; ++f) {
    size_t n = 0;
    const uint64_t* ids = b.field_ids(f, &n);
    for (size_t i = 0; i < n; ++i) d.push_back(static_cast<float>(ids[i] % 1000003));
  }
  return d;
}

TEST(StreamCursor, AResumedReaderSeeksToTheCursorAndReadsWhatFollows) {
  // Two files with their own headers (columns in other orders), a quoted field holding a newline.
  std::string a = "note,extra,hist,tags,cat,site,score,price,click\n",
              b = "click,price,score,site,cat,tags,hist,note\n";
  for (int i = 0; i < 20; ++i) {
    a += "\"n\n" + std::to_string(i) + "\",x,a:1;b:2," + std::to_string(i % 3) + "," + std::to_string(i) + ",s" +
         std::to_string(i) + ",1," + std::to_string(i) + "," + std::to_string(i % 2) + "\n";
    b += std::to_string(i % 2) + "," + std::to_string(i) + ",2,t" + std::to_string(i) + ",5,x|y,,n\n";
  }
  CriteoOptions o;
  o.paths = {TempFile("cur-a.csv", a), TempFile("cur-b.csv", b)};
  o.batch_size = 3;
  o.num_dense = 2;
  o.num_sparse = 4;
  o.schema = std::make_shared<Schema>(Shop());
  auto all = CriteoReader::Open(o);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  std::vector<std::vector<float>> batches;
  std::vector<StreamCursor> ends;
  for (Batch batch; *(*all)->Next(&batch);) {
    batches.push_back(Digest(batch));
    ends.push_back(batch.end);
    ASSERT_TRUE(batch.end.valid);
  }
  ASSERT_EQ(batches.size(), 14u);  // 40 rows, batches of 3
  EXPECT_EQ(ends[0].file, o.paths[0]);
  EXPECT_EQ(ends[0].line, 7u);  // the header, then 3 records of 2 lines
  EXPECT_EQ(ends.back().file, o.paths[1]);
  for (size_t k = 0; k + 1 < batches.size(); ++k) {
    SCOPED_TRACE(k);
    CriteoOptions resumed = o;
    resumed.skip_examples = 3 * (k + 1);
    resumed.resume = ends[k];
    auto r = CriteoReader::Open(resumed);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Batch batch;
    for (size_t j = k + 1; j < batches.size(); ++j) {
      ASSERT_TRUE(*(*r)->Next(&batch));
      ASSERT_EQ(Digest(batch), batches[j]) << "batch " << j;
      EXPECT_EQ(batch.end.offset, ends[j].offset);
    }
    EXPECT_FALSE(*(*r)->Next(&batch));
  }
  // A cursor the data no longer matches is refused, naming it.
  CriteoOptions moved = o;
  moved.skip_examples = 3;
  moved.resume = ends[0];
  moved.resume.offset += 1;
  auto bad = CriteoReader::Open(moved);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no line ends there"), std::string::npos) << bad.status().ToString();
  moved.resume = ends[0];
  moved.resume.offset = 1u << 30;
  EXPECT_NE(CriteoReader::Open(moved).status().message().find("shorter"), std::string::npos);
  moved.paths = {o.paths[1]};
  moved.resume = ends[0];
  bad = CriteoReader::Open(moved);
  EXPECT_NE(bad.status().message().find(o.paths[0] + " byte " + std::to_string(ends[0].offset)), std::string::npos)
      << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("no longer lists that file"), std::string::npos);
}

TEST(DataFiles, FilesBeingWrittenAreNotPartOfTheStream) {
  const std::string dir = std::filesystem::path(TempFile("x", "")).parent_path().string() + "/files";
  std::filesystem::create_directories(dir);
  for (const char* name : {"a.tsv", "b.tsv", ".c.tsv", "d.tsv.tmp", "e.tsv.tmp.1234", "f.tmp.tsv", "g.tsv.tmp.x"})
    TempFile(std::string("files/") + name, "x");
  CriteoOptions o;
  o.path = dir;
  auto files = DataFiles(o);
  ASSERT_TRUE(files.ok());
  std::vector<std::string> names;
  for (const auto& f : *files) names.push_back(std::filesystem::path(f).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"a.tsv", "b.tsv", "f.tmp.tsv", "g.tsv.tmp.x"}));
  o.path = dir + "/*";  // a glob's matches too
  files = DataFiles(o);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 4u);
}

TEST(Schema, TooLongABagIsAnErrorAndSkippedRowsLeaveNoIds) {
  Schema s = Shop();
  s.max_bag_length = 2;
  const std::string path = TempFile("bags.csv",
                                    "note,extra,hist,tags,cat,site,score,price,click\n"
                                    "n,x,,a|b|c,,,,1,0\n"
                                    "n,x,1:1,d,,,,1,1\n");
  auto r = Open(path, s);
  ASSERT_TRUE(r.ok());
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find(":2: column 'tags': a bag of more than 2 ids (data.max_bag_length)"),
            std::string::npos)
      << got.status().message();
  // Skipped: the bad row's ids do not leak into the next row's bag.
  CriteoOptions o;
  o.path = path;
  o.batch_size = 16;
  o.num_dense = s.num_dense();
  o.num_sparse = s.num_fields();
  o.schema = std::make_shared<Schema>(s);
  o.on_bad_line = BadLinePolicy::kSkip;
  auto skip = CriteoReader::Open(o);
  ASSERT_TRUE(skip.ok());
  ASSERT_TRUE(*(*skip)->Next(&b));
  ASSERT_EQ(b.size, 1u);
  EXPECT_EQ((*skip)->bad_lines(), 1u);
  EXPECT_EQ(b.bags[2].ids, (std::vector<uint64_t>{StringId("d")}));
  EXPECT_EQ(b.bags[2].offsets, (std::vector<uint32_t>{0, 1}));
}

TEST(Schema, BadSchemasAreRefusedByName) {
  Schema s = Shop();
  s.columns.push_back(Col("click2", ColumnRole::kLabel));
  EXPECT_NE(ValidateSchema(s).message().find("exactly one column must have role = \"label\" (found 2)"),
            std::string::npos);
  s = Shop();
  s.columns.push_back(Col("site", ColumnRole::kDense));
  EXPECT_NE(ValidateSchema(s).message().find("column 'site' is named twice"), std::string::npos);
  s = Shop();
  s.columns[5].separator = ",";
  EXPECT_NE(ValidateSchema(s).message().find("('tags'): separator contains the delimiter"), std::string::npos);
  s = Shop();
  s.columns = {Col("click", ColumnRole::kLabel), Col("x", ColumnRole::kDense)};
  EXPECT_NE(ValidateSchema(s).message().find("no categorical or multi_hot column"), std::string::npos);
  // A header without a column the schema names.
  const std::string path = TempFile("missing.csv", "click,price,score,site,cat,tags,note\n1,1,1,a,1,b,c\n");
  auto r = Open(path, Shop());
  ASSERT_TRUE(r.ok());
  Batch b;
  auto got = (*r)->Next(&b);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find(path + ":1: column 'hist' is not in the header (it has: click, price"),
            std::string::npos)
      << got.status().message();
}

TEST(Schema, JsonRoundTripAndFingerprint) {
  const Schema s = Shop();
  auto back = Schema::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), s.ToJson());
  EXPECT_EQ(back->field_names(), (std::vector<std::string>{"site", "cat", "tags", "hist"}));
  EXPECT_EQ(back->multi_hot_fields(), (std::vector<uint8_t>{0, 0, 1, 1}));
  Schema other = s;
  other.columns[5].pooling = BagPooling::kSum;
  EXPECT_NE(other.Fingerprint(), s.Fingerprint());
  Schema stats = s;
  stats.columns[2].mean = 3;  // dense statistics do not change what the categorical values read as
  EXPECT_EQ(stats.Fingerprint(), s.Fingerprint());
  EXPECT_FALSE(Schema::FromJson("{\"format\": \"csv\"}").ok());
}

TEST(Schema, AvazuHourBecomesHourOfDayAndWeekday) {
  const Schema s = AvazuSchema();
  EXPECT_EQ(s.num_fields(), 23);
  EXPECT_EQ(s.num_dense(), 0);
  EXPECT_EQ(s.field_names()[0], "hour_hour");
  EXPECT_EQ(s.field_names()[1], "hour_weekday");
  // 2014-10-21 was a Tuesday (weekday 1), 2014-10-26 a Sunday (6). No header: positional.
  const std::string path = TempFile("avazu.csv",
                                    "1,0,14102100,1005,0,a,b,c,d,e,f,g,h,i,1,0,15704,320,50,1722,0,35,100084,79\n"
                                    "2,1,14102623,1005,0,a,b,c,d,e,f,g,h,i,1,0,15704,320,50,1722,0,35,100084,79\n");
  auto r = Open(path, s);
  ASSERT_TRUE(r.ok());
  Batch b;
  ASSERT_TRUE(*(*r)->Next(&b));
  ASSERT_EQ(b.size, 2u);
  EXPECT_EQ(b.field(0)[0], 0u);
  EXPECT_EQ(b.field(1)[0], 1u);
  EXPECT_EQ(b.field(0)[1], 23u);
  EXPECT_EQ(b.field(1)[1], 6u);
  EXPECT_EQ(b.labels[1], 1.0f);
  EXPECT_EQ(b.field(2)[0], StringId("1005"));
  // A bad hour names it.
  const std::string bad = TempFile("avazu_bad.csv", "1,0,14132100,1005,0,a,b,c,d,e,f,g,h,i,1,0,1,2,3,4,5,6,7,8\n");
  auto rb = Open(bad, s);
  ASSERT_TRUE(rb.ok());
  auto got = (*rb)->Next(&b);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find(":1: column 'hour': expected an hour as YYMMDDHH, got '14132100'"),
            std::string::npos)
      << got.status().message();
}

TEST(Schema, RealAvazuSample) {
  const std::string dir = std::string(EMBER_SHARED_DATA_DIR) + "/avazu";
  if (!PathExists(dir + "/avazu_train.csv")) GTEST_SKIP() << "shared data sample absent: " << dir;
  // The train file has a header line, dev and test none: the preset reads both.
  for (const auto& [file, rows] : std::vector<std::pair<std::string, size_t>>{
           {"avazu_train.csv", 8087}, {"avazu_dev.csv", 480}, {"avazu_test.csv", 432}}) {
    auto r = Open(dir + "/" + file, AvazuSchema(), 4096);
    ASSERT_TRUE(r.ok());
    size_t n = 0;
    Batch b;
    for (;;) {
      auto got = (*r)->Next(&b);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      if (!*got) break;
      n += b.size;
    }
    EXPECT_EQ(n, rows) << file;
  }
}

TEST(Schema, FieldCountsAndVocabularyCountEveryIdOfABag) {
  const std::string path = TempFile("count.csv",
                                    "note,extra,hist,tags,cat,site,score,price,click\n"
                                    "n,x,1:1;2:1,a|b,1,s,1,1,0\n"
                                    "n,x,2:1,b|c|a,1,s,1,1,1\n");
  CriteoOptions o;
  o.path = path;
  o.batch_size = 16;
  o.num_dense = 2;
  o.num_sparse = 4;
  o.schema = std::make_shared<Schema>(Shop());
  auto stats = LoadOrCountFields(o);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->rows, 2u);
  EXPECT_EQ(stats->distinct, (std::vector<uint64_t>{1, 1, 3, 2}));
  auto r = CriteoReader::Open(o);
  ASSERT_TRUE(r.ok());
  auto v = CountVocabulary(r->get(), VocabCut{2, 0});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->fields[2].occurrences, 5u);
  EXPECT_EQ(v->fields[2].values.size(), 2u);  // a and b, seen twice each
}

// Every batch of a reader, as (labels, dense, ids, bags).
std::vector<Batch> AllBatches(BatchReader* r) {
  std::vector<Batch> out;
  for (;;) {
    Batch b;
    auto got = r->Next(&b);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok() || !*got) break;
    out.push_back(std::move(b));
  }
  return out;
}

void ExpectSameBatches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].size, b[k].size);
    const size_t n = a[k].size, D = static_cast<size_t>(a[k].num_dense);
    EXPECT_EQ(std::memcmp(a[k].labels.data(), b[k].labels.data(), n * 4), 0);
    EXPECT_EQ(std::memcmp(a[k].dense.data(), b[k].dense.data(), n * D * 4), 0);
    for (int f = 0; f < a[k].num_sparse; ++f) {
      if (a[k].is_multi_hot(f)) {
        EXPECT_EQ(a[k].bags[f].ids, b[k].bags[f].ids);
        EXPECT_EQ(a[k].bags[f].offsets, b[k].bags[f].offsets);
        EXPECT_EQ(
            std::memcmp(a[k].bags[f].weights.data(), b[k].bags[f].weights.data(), a[k].bags[f].weights.size() * 4), 0);
      } else {
        EXPECT_EQ(std::memcmp(a[k].field(f), b[k].field(f), n * 8), 0);
      }
    }
  }
}

// A schema-described file of n rows with bags of varying length (empty ones too).
std::string ShopFile(const std::string& name, int n) {
  std::string text = "note,extra,hist,tags,cat,site,score,price,click\n";
  for (int i = 0; i < n; ++i) {
    std::string tags, hist;
    for (int k = 0; k < i % 5; ++k) tags += (k ? "|t" : "t") + std::to_string((i * 7 + k) % 50);
    for (int k = 0; k < i % 3; ++k) hist += (k ? ";" : "") + std::to_string(k + 1) + ":" + std::to_string(i % 7);
    text += "n,x," + hist + "," + tags + "," + std::to_string(i % 11) + ",s" + std::to_string(i % 13) + "," +
            std::to_string(i % 17) + "," + std::to_string(i % 19) + "," + std::to_string(i % 2) + "\n";
  }
  return TempFile(name, text);
}

TEST(DataCache, BatchesEqualTheTextReadersBitForBit) {
  const std::string path = ShopFile("cached.csv", 70000);  // two row groups
  CriteoOptions o;
  o.path = path;
  o.num_dense = 2;
  o.num_sparse = 4;
  o.schema = std::make_shared<Schema>(Shop());
  const std::string dir = std::filesystem::path(path).parent_path().string() + "/caches";
  std::filesystem::remove_all(dir);
  for (const auto& [batch, skip, max] : std::vector<std::tuple<size_t, uint64_t, uint64_t>>{
           {1000, 0, 0}, {4096, 0, 0}, {777, 65000, 0}, {512, 10, 66000}, {65536, 0, 0}}) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " skip " + std::to_string(skip));
    o.batch_size = batch;
    o.skip_examples = skip;
    o.max_rows = max;
    auto text = CriteoReader::Open(o);
    ASSERT_TRUE(text.ok());
    auto cached = OpenDataReader(o, /*cache=*/true, dir);
    ASSERT_TRUE(cached.ok()) << cached.status().ToString();
    ExpectSameBatches(AllBatches(text->get()), AllBatches(cached->get()));
    EXPECT_DOUBLE_EQ((*cached)->Progress(), 1.0);
  }
  // Criteo's layout too.
  const std::string criteo = TempFile("cached.tsv", "1\t5\t\ta1\tb2\n0\t\t3\t\tff\n");
  CriteoOptions c;
  c.path = criteo;
  c.num_dense = 2;
  c.num_sparse = 2;
  c.batch_size = 1;
  auto text = CriteoReader::Open(c);
  auto cached = OpenDataReader(c, true, dir);
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  ExpectSameBatches(AllBatches(text->get()), AllBatches(cached->get()));
}

TEST(DataCache, StaleAndDamagedCachesAreDetected) {
  const std::string path = ShopFile("stale.csv", 300);
  CriteoOptions o;
  o.path = path;
  o.batch_size = 100;
  o.num_dense = 2;
  o.num_sparse = 4;
  o.schema = std::make_shared<Schema>(Shop());
  const std::string dir = std::filesystem::path(path).parent_path().string() + "/stale-caches";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string cache = CachePath(o, dir);
  EXPECT_EQ(CacheStaleness(o, cache), "no cache yet");
  ASSERT_TRUE(BuildCache(o, cache).ok());
  EXPECT_EQ(CacheStaleness(o, cache), "");
  // Other columns: another cache file (and this one would be stale for them).
  Schema sum = Shop();
  sum.columns[5].pooling = BagPooling::kSum;
  CriteoOptions other = o;
  other.schema = std::make_shared<Schema>(sum);
  EXPECT_NE(CachePath(other, dir), cache);
  EXPECT_EQ(CacheStaleness(other, cache), "the columns changed");
  // The source changed: refused by OpenCache, rebuilt by OpenDataReader.
  ShopFile("stale.csv", 301);
  EXPECT_EQ(CacheStaleness(o, cache), "the data files changed");
  auto refused = OpenCache(o, cache);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("stale data cache (the data files changed): run ember prepare"),
            std::string::npos);
  auto rebuilt = OpenDataReader(o, true, dir);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  size_t rows = 0;
  for (const auto& b : AllBatches(rebuilt->get())) rows += b.size;
  EXPECT_EQ(rows, 301u);
  // A flipped byte in the body, and a truncated file: refused, naming the file.
  std::string bytes = *ReadFile(cache);
  std::string flipped = bytes;
  flipped[100] ^= 0x5a;
  ASSERT_TRUE(WriteFileAtomic(cache, flipped).ok());
  auto damaged = OpenCache(o, cache);
  EXPECT_EQ(damaged.status().code(), StatusCode::kCorruption);
  EXPECT_NE(damaged.status().message().find(cache + ": not a valid ember data cache: checksum mismatch"),
            std::string::npos)
      << damaged.status().message();
  ASSERT_TRUE(WriteFileAtomic(cache, bytes.substr(0, bytes.size() - 9)).ok());
  EXPECT_EQ(CacheStaleness(o, cache), "no valid trailer");
  ASSERT_TRUE(OpenDataReader(o, true, dir).ok());  // rebuilt again
}

TEST(RequestRows, SchemaRowsAsArraysOrObjects) {
  const Schema s = Shop();
  // Input columns: price, score, site, cat, tags, hist (label and ignored columns omitted).
  auto rows = nlohmann::json::parse(R"([
    ["0", "12", "shop", "7", ["red", "blue"], "1f:0.5;2:2"],
    {"site": "shop", "tags": "red|blue", "price": 0, "score": 12, "cat": "7", "hist": ["1f:0.5", "2:2"]},
    {}
  ])");
  Batch b;
  Status st = serving::JsonRowsToBatch(rows, s, &b);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(b.size, 3u);
  for (int f = 0; f < 2; ++f) EXPECT_EQ(b.field(f)[0], b.field(f)[1]);
  EXPECT_EQ(b.field(0)[2], kMissingId);
  EXPECT_FLOAT_EQ(b.dense[1], 1.0f);
  EXPECT_FLOAT_EQ(b.dense[3], 1.0f);
  EXPECT_EQ(b.bags[2].offsets, (std::vector<uint32_t>{0, 2, 4, 4}));
  EXPECT_EQ(b.bags[3].ids, (std::vector<uint64_t>{0x1f, 2, 0x1f, 2}));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"([["0"]])", "row 0: expected 6 fields, got 1"},
      {R"([{"nope": "1"}])", "row 0: no input column named 'nope'"},
      {R"([{"tags": ["a|b"]}])", "row 0: column 'tags': id 'a|b' holds the separator"},
      {R"([{"site": ["a"]}])", "row 0: column 'site': expected a string"},
      {R"([{"price": "x"}])", "row 0: column 'price': expected a number, got 'x'"},
      {R"([7])", "row 0: a row is an array of fields or an object of columns"},
  };
  for (const auto& [body, error] : bad) {
    Status e = serving::JsonRowsToBatch(nlohmann::json::parse(body), s, &b);
    EXPECT_NE(e.message().find(error), std::string::npos) << body << ": " << e.message();
  }
}

TEST(RequestRows, SchemaRowsAsTabSeparatedLines) {
  const Schema s = Shop();
  Batch tsv, json;
  Status st = serving::TsvRowsToBatch("0\t12\tshop\t7\tred|blue\t1f:0.5;2:2\r\n\t\t\t\t\t", s, 10, &tsv);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(serving::JsonRowsToBatch(nlohmann::json::parse(R"([["0", "12", "shop", "7", "red|blue", "1f:0.5;2:2"],
                                                                  ["", "", "", "", "", ""]])"),
                                       s, &json)
                  .ok());
  ASSERT_EQ(tsv.size, 2u);
  EXPECT_EQ(tsv.dense, json.dense);
  EXPECT_EQ(tsv.sparse, json.sparse);
  for (int f : {2, 3}) {
    EXPECT_EQ(tsv.bags[f].ids, json.bags[f].ids);
    EXPECT_EQ(tsv.bags[f].weights, json.bags[f].weights);
    EXPECT_EQ(tsv.bags[f].offsets, json.bags[f].offsets);
  }
  EXPECT_EQ(serving::TsvRowsToBatch("0\t1", s, 10, &tsv).message(), "row 0: expected 6 tab-separated fields, got 2");
  EXPECT_NE(serving::TsvRowsToBatch("x\t\t\t\t\t", s, 10, &tsv).message().find("row 0: column 'price'"),
            std::string::npos);
  EXPECT_EQ(serving::TsvRowsToBatch("\t\t\t\t\t\n\t\t\t\t\t\n", s, 1, &tsv).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ember::data
