// The export format without models: round trips of every table kind at every precision, absent
// keys, merging shard pieces, and refusal of damaged files.
#include "ember/embedding/export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "ember/common/file.h"
#include "ember/common/half.h"
#include "ember/embedding/model_description.h"
#include "ember/embedding/sparse_store.h"
#include "export_test_util.h"

namespace ember::embedding {
namespace {

std::string Dir() { return export_test::Dir("export"); }
using export_test::Spec;

// A table with `n` rows pulled into being and one SGD step on each (so values differ from init).
std::unique_ptr<Table> Filled(const TableSpec& spec, int n, uint64_t first = 0) {
  auto t = Table::Make(spec);
  std::vector<uint64_t> keys;
  for (int i = 0; i < n; ++i) keys.push_back(MakeKey(spec.id, first + static_cast<uint64_t>(i) * 7));
  std::vector<float> rows(keys.size() * spec.dim), grads(rows.size());
  t->Pull(keys.data(), keys.size(), rows.data());
  std::mt19937 rng(spec.id);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& g : grads) g = u(rng);
  t->Push(keys.data(), keys.size(), grads.data());
  return t;
}

// Every row of `t` as an export of precision p reads back; absent keys read as t reads them.
void ExpectRoundTrip(const Table& t, ExportPrecision p) {
  SCOPED_TRACE(std::string(ExportPrecisionName(p)) + " table " + std::to_string(t.spec().id));
  ExportWriter w(p);
  ASSERT_TRUE(w.AddTable(t).ok());
  const std::string path = Dir() + "/t" + std::to_string(t.spec().id) + ExportPrecisionName(p) + ".embx";
  auto summary = w.Write(path);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->file_bytes, std::filesystem::file_size(path));
  auto f = ExportFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto e = ExportedTable::Open(**f, t.spec().id);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const size_t dim = static_cast<size_t>(t.dim());
  std::vector<float> got(dim);
  uint64_t rows = 0;
  t.ForEachRow([&](uint64_t key, const float* w) {
    ++rows;
    (*e)->Lookup(key, got.data());
    float lo = *std::min_element(w, w + dim), hi = *std::max_element(w, w + dim);
    if (t.spec().kind == TableKind::kSparse) {  // int8 scales span the kept values only
      uint64_t mask = 0;
      dynamic_cast<const SparseRowStore&>(t).Mask(key, &mask);
      lo = INFINITY, hi = -INFINITY;
      for (size_t j = 0; j < dim; ++j) {
        if ((mask >> j) & 1) {
          lo = std::min(lo, w[j]);
          hi = std::max(hi, w[j]);
        } else {
          ASSERT_EQ(got[j], 0.0f);  // masked entries stay exactly zero
        }
      }
    }
    for (size_t j = 0; j < dim; ++j) {
      if (p == ExportPrecision::kFp32) {
        ASSERT_EQ(got[j], w[j]);
      } else if (p == ExportPrecision::kFp16) {
        ASSERT_EQ(got[j], HalfToFloat(FloatToHalf(w[j])));
      } else {
        ASSERT_LE(std::fabs(got[j] - w[j]), (hi - lo) / 255 / 2 * 1.0001 + 1e-7);
      }
    }
  });
  EXPECT_EQ((*e)->rows(), rows);
  // Keys never trained read what the table's own read-only pull gives: init, masked init, zero.
  for (uint64_t i = 0; i < 20; ++i) {
    const uint64_t key = MakeKey(t.spec().id, 1000000 + i);
    std::vector<float> want(dim);
    t.PullReadOnly(&key, 1, want.data());
    (*e)->Lookup(key, got.data());
    for (size_t j = 0; j < dim; ++j) ASSERT_EQ(got[j], want[j]) << "absent key " << i;
  }
}

TEST(Export, EveryTableKindAtEveryPrecision) {
  std::vector<std::unique_ptr<Table>> tables;
  tables.push_back(Filled(Spec(0, 16), 300));
  tables.push_back(Filled(Spec(1, 5, TableKind::kSparse), 300));
  TableSpec half = Spec(2, 8);
  half.precision = Precision::kFp16;
  tables.push_back(Filled(half, 200));
  // Frozen: rows exist only where put; absent keys read zero.
  auto frozen = Table::Make(Spec(3, 4, TableKind::kDense, /*frozen=*/true));
  std::string rec;
  Filled(Spec(3, 4), 50)->ForEachRecord([&](uint64_t key, std::string_view r) {
    ASSERT_TRUE(frozen->PutRecord(key, r).ok());
  });
  EXPECT_EQ(frozen->size(), 50u);
  tables.push_back(std::move(frozen));
  for (const auto& t : tables)
    for (auto p : {ExportPrecision::kFp32, ExportPrecision::kFp16, ExportPrecision::kInt8}) ExpectRoundTrip(*t, p);
}

TEST(Export, ShardPiecesMergeAndDenseArraysKeepTheirShape) {
  auto a = Filled(Spec(4, 8), 100, 0), b = Filled(Spec(4, 8), 100, 5000);
  ExportWriter w(ExportPrecision::kFp32);
  ASSERT_TRUE(w.AddTable(*a).ok());
  ASSERT_TRUE(w.AddTable(*b).ok());
  const float dense[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(w.AddDense("top.weight", {2, 3}, dense).ok());
  EXPECT_FALSE(w.AddDense("top.weight", {6}, dense).ok());
  w.SetModel({{"kind", "test"}, {"note", "caf\xc3\xa9"}});
  const std::string path = Dir() + "/merged.embx";
  auto s = w.Write(path);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->tables.size(), 1u);
  EXPECT_EQ(s->tables[0].rows, 200u);
  EXPECT_EQ(s->tables[0].value_bytes, 200u * 8 * 4);
  EXPECT_EQ(s->tables[0].other_bytes, 200u * 8);  // keys
  EXPECT_EQ(s->dense_bytes, 24u);
  EXPECT_EQ(s->file_bytes, s->header_bytes + s->value_bytes() + s->other_bytes() + s->dense_bytes + s->padding_bytes);
  auto f = ExportFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->model()["note"], "caf\xc3\xa9");
  std::vector<int64_t> shape;
  const float* d = (*f)->Dense("top.weight", &shape);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(d[5], 6.0f);
  EXPECT_EQ((*f)->Dense("nope", &shape), nullptr);
  // Rows from both pieces, and sections 64-byte aligned.
  auto e = ExportedTable::Open(**f, 4);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->rows(), 200u);
  for (const auto& t : (*f)->header()["tables"]) EXPECT_EQ(t["values"]["offset"].get<uint64_t>() % 64, 0u);
  EXPECT_FALSE(ExportedTable::Open(**f, 9).ok());
}

TEST(Export, DamagedFilesAreRefusedWithTheReason) {
  auto t = Filled(Spec(0, 8), 100);
  ExportWriter w(ExportPrecision::kInt8);
  ASSERT_TRUE(w.AddTable(*t).ok());
  const std::string path = Dir() + "/good.embx";
  ASSERT_TRUE(w.Write(path).ok());
  const std::string good = *ReadFile(path);
  auto open_bytes = [&](const std::string& bytes) {
    const std::string p = Dir() + "/bad.embx";
    EMBER_CHECK(WriteFileAtomic(p, bytes).ok());
    return ExportFile::Open(p).status();
  };
  auto expect = [&](const std::string& bytes, const std::string& why) {
    Status st = open_bytes(bytes);
    EXPECT_EQ(st.code(), StatusCode::kCorruption) << why;
    EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("bad.embx"), std::string::npos) << st.ToString();
  };
  EXPECT_TRUE(open_bytes(good).ok());
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x01;
  expect(flipped, "checksum mismatch");
  expect(good.substr(0, good.size() - 100), "no end marker");
  expect(good.substr(0, 20), "too short");
  expect("", "too short");
  std::string magic = good;
  magic[0] = 'X';
  expect(magic, "wrong magic");
  std::string version = good;
  version[4] = 9;
  expect(version, "format version 9");
  EXPECT_EQ(ExportFile::Open(Dir() + "/missing.embx").status().code(), StatusCode::kIoError);
  EXPECT_FALSE(ParseExportPrecision("int4").ok());
}

TEST(Export, MethodConfigsRoundTripThroughJson) {
  MethodConfig c;
  c.method = embedding::Method::kUnified;
  c.rows = 12345;
  c.tables = 3;
  c.chunks = 4;
  c.field_chunks = {0, 2, 4};
  c.field_methods = {std::nullopt, Method::kFull, std::nullopt};
  c.field_widths = {3, 7};
  c.seed = ~uint64_t{0} - 5;  // past 2^53: must stay exact
  c.first_table = 9;
  c.init_scale = 0.03f;
  c.density = 0.25f;
  c.precision = Precision::kFp16;
  c.lifecycle.admit_after = 4;
  c.lifecycle.admit_probability = 0.5f;
  c.lifecycle.sketch_width = 1024;
  c.lifecycle.expire_after = 77;
  c.field_admit_after = {0, 9, 0};
  c.fallback = Fallback::kHash;
  c.fallback_rows = 321;
  auto back = MethodConfigFromJson(nlohmann::json::parse(MethodConfigToJson(c).dump()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(MethodConfigToJson(*back), MethodConfigToJson(c));
  EXPECT_EQ(back->seed, c.seed);
  EXPECT_FALSE(MethodConfigFromJson(nlohmann::json{{"method", "hash"}}).ok());
}

// The description checkpoints and exports carry: it round-trips, and a bad key is named.
TEST(Export, ModelDescriptionsRoundTripAndNameBadKeys) {
  ModelDescription d;
  d.model = "deepfm";
  d.num_dense = 13;
  d.embedding_dim = 8;
  d.bottom_mlp = {64, 32};
  d.top_mlp = {16};
  d.fields = {{"C1", 10}, {"C2", 0}};
  MethodConfig m;
  m.method = Method::kHash;
  m.rows = 99;
  d.groups = {{"embedding", 8, m}, {"linear", 1, m}};
  d.step = 42;
  auto back = ModelDescription::FromJson(nlohmann::json::parse(d.ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), d.ToJson());
  EXPECT_EQ(back->groups[1].method.rows, 99u);
  auto j = d.ToJson();
  j["num_fields"] = 3;
  EXPECT_EQ(ModelDescription::FromJson(j).status().message(),
            "model description: num_fields does not match its fields");
  j = d.ToJson();
  j["top_mlp"] = "wide";
  auto bad = ModelDescription::FromJson(j);
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("bad 'top_mlp'"), std::string::npos) << bad.status().ToString();
}

// An export is written through the Env: a write that fails, tears or "crashes" leaves the
// previous export whole.
TEST(Export, AFailedWriteLeavesThePreviousExport) {
  auto mem = NewMemEnv();
  ASSERT_TRUE(mem->MakeDirs("/x").ok());
  auto first = Filled(Spec(4, 8), 50, 0), second = Filled(Spec(4, 8), 80, 7000);
  ExportWriter a(ExportPrecision::kFp32), b(ExportPrecision::kFp32);
  ASSERT_TRUE(a.AddTable(*first).ok());
  ASSERT_TRUE(b.AddTable(*second).ok());
  a.SetModel({{"kind", "test"}});
  b.SetModel({{"kind", "test"}});
  ASSERT_TRUE(a.Write("/x/model.embx", mem.get()).ok());
  const std::string before = *mem->ReadFile("/x/model.embx");
  for (auto fault : {FaultyEnv::Fault::kFail, FaultyEnv::Fault::kShortWrite, FaultyEnv::Fault::kCrash}) {
    FaultyEnv faulty(mem.get());
    faulty.Arm(1, fault);
    EXPECT_FALSE(b.Write("/x/model.embx", &faulty).ok());
    EXPECT_EQ(*mem->ReadFile("/x/model.embx"), before);
  }
  ASSERT_TRUE(b.Write("/x/model.embx", mem.get()).ok());
  EXPECT_NE(*mem->ReadFile("/x/model.embx"), before);
}

}  // namespace
}  // namespace ember::embedding
