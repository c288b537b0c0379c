// Delta exports without models: a chain of deltas resolves to the bytes of a full export of the
// same tables at every precision and table kind (changed, new and evicted rows); unchanged rows
// are not written; a chain whose links are missing, damaged or replaced is refused by name.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "ember/common/file.h"
#include "ember/embedding/export.h"
#include "export_test_util.h"

namespace ember::embedding {
namespace {

std::string Dir() { return export_test::Dir("export_delta"); }
using export_test::Spec;

// Tables whose rows a test changes, adds and evicts between exports.
struct State {
  std::vector<std::unique_ptr<Table>> tables;
  std::mt19937 rng{5};
  State() {
    tables.push_back(Table::Make(Spec(0, 8)));
    tables.push_back(Table::Make(Spec(1, 12, TableKind::kSparse)));
    tables.push_back(Table::Make(Spec(2, 4, TableKind::kDense, /*frozen=*/true)));
  }
  // A unit-size SGD step on keys first, first + 7, ... (n of them; new keys are created).
  void Step(uint64_t first, int n) {
    std::uniform_real_distribution<float> u(0.5f, 1.0f);
    for (auto& t : tables) {
      std::vector<uint64_t> keys;
      for (int i = 0; i < n; ++i) keys.push_back(MakeKey(t->spec().id, first + 7 * static_cast<uint64_t>(i)));
      std::vector<float> rows(keys.size() * t->dim()), grads(rows.size());
      for (auto& g : grads) g = u(rng);
      if (t->spec().frozen) {  // frozen tables hold only what is put: put rows, then step them
        for (uint64_t k : keys) {
          std::vector<float> w(t->dim(), 0.25f);
          std::string rec(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(float));
          if (!t->Contains(k)) {
            EMBER_CHECK(t->PutRecord(k, rec).ok());
          }
        }
      }
      t->Pull(keys.data(), keys.size(), rows.data());
      t->Push(keys.data(), keys.size(), grads.data());
    }
  }
  // Drops keys first, first + 7, ... (n of them) from every table.
  void Evict(uint64_t first, int n) {
    for (auto& t : tables) {
      std::set<uint64_t> gone;
      for (int i = 0; i < n; ++i) gone.insert(MakeKey(t->spec().id, first + 7 * static_cast<uint64_t>(i)));
      auto kept = Table::Make(t->spec());
      t->ForEachRecord([&](uint64_t key, std::string_view rec) {
        if (!gone.count(key)) {
          EMBER_CHECK(kept->PutRecord(key, rec).ok());
        }
      });
      t = std::move(kept);
    }
  }
  ExportWriter Writer(ExportPrecision p, float dense_value) const {
    ExportWriter w(p);
    for (const auto& t : tables) EMBER_CHECK(w.AddTable(*t).ok());
    const float dense[4] = {dense_value, 2, 3, 4};
    EMBER_CHECK(w.AddDense("top.weight", {2, 2}, dense).ok());
    w.SetModel({{"kind", "test"}, {"step", static_cast<int>(dense_value)}});
    return w;
  }
};

TEST(ExportDelta, AChainResolvesToTheFullExportByteForByte) {
  for (auto p : {ExportPrecision::kFp32, ExportPrecision::kFp16, ExportPrecision::kInt8}) {
    SCOPED_TRACE(ExportPrecisionName(p));
    const std::string dir = Dir() + "/chain-" + ExportPrecisionName(p);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    State s;
    s.Step(0, 100);
    const std::string a = dir + "/model-1.embx", b = dir + "/model-2.embx", c = dir + "/model-3.embx";
    ASSERT_TRUE(s.Writer(p, 1).Write(a).ok());
    // Step 2: 10 rows stepped, 10 new, 5 evicted.
    s.Step(0, 10);
    s.Step(7 * 100, 10);
    s.Evict(7 * 50, 5);
    auto db = s.Writer(p, 2).WriteDelta(b, a);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(s.Writer(p, 2).Write(dir + "/full-2.embx").ok());
    ASSERT_EQ(db->tables.size(), 3u);
    for (const auto& t : db->tables) {
      EXPECT_EQ(t.evicted, 5u) << "table " << t.id;
      // Every stepped row changes at fp32; at fp16 and int8 a row may round to the same bytes.
      if (p == ExportPrecision::kFp32) {
        EXPECT_EQ(t.rows, 20u) << "table " << t.id;
      }
      EXPECT_LE(t.rows, 20u);
      EXPECT_GE(t.rows, 10u);  // the new rows
    }
    auto flat = FlattenExport(b);
    ASSERT_TRUE(flat.ok()) << flat.status().ToString();
    EXPECT_TRUE(*flat == *ReadFile(dir + "/full-2.embx"));
    // Step 3: a second delta, against the first.
    s.Step(7 * 30, 40);
    s.Evict(0, 3);
    ASSERT_TRUE(s.Writer(p, 3).WriteDelta(c, b).ok());
    ASSERT_TRUE(s.Writer(p, 3).Write(dir + "/full-3.embx").ok());
    flat = FlattenExport(c);
    ASSERT_TRUE(flat.ok()) << flat.status().ToString();
    EXPECT_TRUE(*flat == *ReadFile(dir + "/full-3.embx"));
    auto f = ExportFile::Open(c);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->get()->chain(), (std::vector<std::string>{a, b, c}));
    EXPECT_FALSE(f->get()->header().contains("delta"));  // resolved: a full export
    EXPECT_EQ(ExportChainFiles(c), (std::vector<std::string>{c, b, a}));
    auto raw = ExportFile::OpenRaw(c);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(raw->get()->header()["delta"]["sequence"], 2);
    EXPECT_EQ(raw->get()->header()["delta"]["base"], "model-1.embx");
    EXPECT_EQ(raw->get()->header()["delta"]["parent"], "model-2.embx");
    // Nothing changed: a delta of no rows, still the dense weights.
    auto same = s.Writer(p, 3).WriteDelta(dir + "/model-4.embx", c);
    ASSERT_TRUE(same.ok());
    for (const auto& t : same->tables) {
      EXPECT_EQ(t.rows, 0u);
      EXPECT_EQ(t.evicted, 0u);
    }
    EXPECT_EQ(same->dense_bytes, 16u);
    flat = FlattenExport(dir + "/model-4.embx");
    ASSERT_TRUE(flat.ok());
    EXPECT_TRUE(*flat == *ReadFile(dir + "/full-3.embx"));
  }
}

TEST(ExportDelta, BrokenChainsAreRefusedNamingTheLink) {
  const std::string dir = Dir() + "/broken";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  State s;
  s.Step(0, 50);
  const std::string a = dir + "/model-1.embx", b = dir + "/model-2.embx", c = dir + "/model-3.embx";
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 1).Write(a).ok());
  s.Step(0, 5);
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 2).WriteDelta(b, a).ok());
  s.Step(7, 5);
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 3).WriteDelta(c, b).ok());
  ASSERT_TRUE(ExportFile::Open(c).ok());
  const std::string good_b = *ReadFile(b);
  auto expect = [&](StatusCode code, const std::string& why) {
    Status st = ExportFile::Open(c).status();
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("model-3.embx"), std::string::npos) << st.ToString();
  };
  // A damaged parent.
  std::string flipped = good_b;
  flipped[flipped.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(b, flipped).ok());
  expect(StatusCode::kCorruption, "model-2.embx: not a valid ember export: checksum mismatch");
  // A parent replaced by another valid export (the same step written again, other rows).
  s.Step(21, 5);
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 2).WriteDelta(b, a).ok());
  expect(StatusCode::kCorruption, "is not the file it was written against");
  // A missing parent; a missing base.
  std::filesystem::remove(b);
  expect(StatusCode::kIoError, "its parent cannot be read");
  ASSERT_TRUE(WriteFileAtomic(b, good_b).ok());
  ASSERT_TRUE(ExportFile::Open(c).ok());
  std::filesystem::rename(a, dir + "/gone.embx");
  Status st = ExportFile::Open(b).status();
  EXPECT_NE(st.message().find("model-1.embx"), std::string::npos) << st.ToString();
  EXPECT_EQ(ExportChainFiles(c), (std::vector<std::string>{c, b}));  // as far as it can be read
  std::filesystem::rename(dir + "/gone.embx", a);
  // Writing: another precision, other tables, another directory.
  EXPECT_EQ(s.Writer(ExportPrecision::kFp16, 4).WriteDelta(dir + "/model-4.embx", c).status().code(),
            StatusCode::kFailedPrecondition);
  ExportWriter other(ExportPrecision::kFp32);
  ASSERT_TRUE(other.AddTable(*s.tables[0]).ok());
  EXPECT_EQ(other.WriteDelta(dir + "/model-4.embx", c).status().code(), StatusCode::kFailedPrecondition);
  std::filesystem::create_directories(dir + "/elsewhere");
  EXPECT_EQ(s.Writer(ExportPrecision::kFp32, 4).WriteDelta(dir + "/elsewhere/model-4.embx", c).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(dir + "/model-4.embx"));
}

// Recomputes a file's CRC trailer after an edit (as a hostile writer would).
void Recrc(std::string* file) {
  const uint64_t crc = crc32(0L, reinterpret_cast<const Bytef*>(file->data()), static_cast<uInt>(file->size() - 16));
  std::memcpy(file->data() + file->size() - 16, &crc, 8);
}

TEST(ExportDelta, AHostileLinkIsRefused) {
  const std::string dir = Dir() + "/hostile";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  State s;
  s.Step(0, 20);
  const std::string a = dir + "/model-1.embx", b = dir + "/model-2.embx";
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 1).Write(a).ok());
  ASSERT_TRUE(s.Writer(ExportPrecision::kFp32, 2).WriteDelta(b, a).ok());
  const std::string text = *ReadFile(b);
  const std::string field = "\"parent\":\"model-1.embx\"";
  ASSERT_NE(text.find(field), std::string::npos);
  // The same length keeps every offset; the CRC is made to match.
  for (const auto& [parent, why] : std::vector<std::pair<std::string, std::string>>{
           {"../aa/b.embx", "needs parent and base file names"},
           {"model-9.embx", "is not the file it was written against"},  // itself
           {"model-7.embx", "its parent cannot be read"}}) {
    std::string t = text;
    t.replace(t.find(field), field.size(), "\"parent\":\"" + parent + "\"");
    Recrc(&t);
    ASSERT_TRUE(WriteFileAtomic(dir + "/model-9.embx", t).ok());
    Status st = ExportFile::Open(dir + "/model-9.embx").status();
    EXPECT_FALSE(st.ok()) << parent;
    EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
  }
}

}  // namespace
}  // namespace ember::embedding
