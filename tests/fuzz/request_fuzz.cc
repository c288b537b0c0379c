// libFuzzer target: `ember serve`'s prediction request bodies into batches, as POST /v1/predict
// parses them (serving/request_rows.cc over the training readers' parsers): JSON {"rows": [...]}
// and tab-separated lines, against the Criteo preset and a CSV schema with every column role
// (dense log1p and standardized, string, hex and int ids, multi-hot bags weighted and not, an
// hour). The first byte picks the schema and the body's form. Any body must be parsed or refused
// with a Status: no crash, no sanitizer report, no uncaught exception (scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "ember/data/batch.h"
#include "ember/data/schema.h"
#include "ember/serving/request_rows.h"

namespace {
using ember::data::ColumnRole;
using ember::data::ColumnSpec;
using ember::data::Schema;

Schema EveryRole() {
  Schema s;
  s.format = "csv";
  s.delimiter = ',';
  auto col = [&](const char* name, ColumnRole role) -> ColumnSpec& {
    ColumnSpec c;
    c.name = name;
    c.role = role;
    s.columns.push_back(c);
    return s.columns.back();
  };
  col("label", ColumnRole::kLabel);
  col("price", ColumnRole::kDense);
  auto& age = col("age", ColumnRole::kDense);
  age.transform = ember::data::DenseTransform::kStandardize;
  age.mean = 30;
  age.stddev = 12;
  col("user", ColumnRole::kCategorical);
  col("site", ColumnRole::kCategorical).encoding = ember::data::IdEncoding::kHex;
  col("slot", ColumnRole::kCategorical).encoding = ember::data::IdEncoding::kInt;
  auto& tags = col("tags", ColumnRole::kMultiHot);
  tags.pooling = ember::data::BagPooling::kMean;
  auto& clicks = col("clicks", ColumnRole::kMultiHot);
  clicks.separator = ";";
  clicks.weighted = true;
  col("hour", ColumnRole::kYymmddhh);
  col("note", ColumnRole::kIgnore);
  s.max_bag_length = 16;
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Schema criteo = ember::data::CriteoSchema(), every = EveryRole();
  if (size == 0) return 0;
  const Schema& schema = data[0] & 1 ? every : criteo;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  ember::data::Batch batch;
  if (data[0] & 2) {  // text/tab-separated-values
    (void)ember::serving::TsvRowsToBatch(body, schema, 64, &batch);
    return 0;
  }
  // What ParsePredict checks before the rows are read.
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("rows")) return 0;
  const auto& rows = json["rows"];
  if (!rows.is_array() || rows.empty() || rows.size() > 64) return 0;
  (void)ember::serving::JsonRowsToBatch(rows, schema, &batch);
  return 0;
}
