// Schema: how the columns of a delimited text file (CSV, TSV) become one CTR example — the label,
// dense features, categorical fields and multi-hot fields (bags of ids, pooled) — for the text
// reader (criteo.h), `ember serve`'s requests and every tool that reads training data.
//
//   [data]
//   format = "csv"            # or "tsv"; "criteo" and "avazu" are presets of the same reader
//   delimiter = ","           # default: "," for csv, TAB for tsv
//   header = true             # the first line names the columns (matched by name, else by position)
//   [[data.columns]]
//   name = "click"
//   role = "label"            # label | dense | categorical | multi_hot | yymmddhh | ignore
//
// Roles (docs/formats.md):
//   label:       0 or 1 (also "0.0"/"1.0", "true"/"false").
//   dense:       a decimal number, empty = missing = 0; transform log1p (of max(x, 0); default),
//                none, or standardize ((x - mean) / std, mean and std of the training data).
//   categorical: any string (encoding "string": hashed with XXH3-64), a hex id ("hex", Criteo's),
//                or a decimal integer ("int"); empty = missing (kMissingId).
//   multi_hot:   ids split by `separator` (default "|"), each encoded as above; weighted = true
//                reads "id:weight". Pooling "sum" (Σ w·e) or "mean" (Σ w·e / length). An empty bag
//                reads zeros; a bag longer than data.max_bag_length is an error naming the line.
//   yymmddhh:    Avazu's hour (YYMMDDHH): two categorical fields, <name>_hour (hour of day) and
//                <name>_weekday (0 = Monday).
//   ignore:      read and dropped.
// Fields are in column order, yymmddhh contributing its two.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/batch.h"

namespace ember::data {

enum class ColumnRole { kLabel, kDense, kCategorical, kMultiHot, kYymmddhh, kIgnore };
enum class DenseTransform { kLog1p, kNone, kStandardize };
enum class IdEncoding { kString, kHex, kInt };
enum class BagPooling { kSum, kMean };

const char* ColumnRoleName(ColumnRole r);
const char* DenseTransformName(DenseTransform t);
const char* IdEncodingName(IdEncoding e);
const char* BagPoolingName(BagPooling p);

struct ColumnSpec {
  std::string name;
  ColumnRole role = ColumnRole::kCategorical;
  DenseTransform transform = DenseTransform::kLog1p;  // dense
  double mean = 0, stddev = 1;                        // dense, standardize (from the training data)
  IdEncoding encoding = IdEncoding::kString;          // categorical, multi_hot
  std::string separator = "|";                        // multi_hot
  BagPooling pooling = BagPooling::kSum;              // multi_hot
  bool weighted = false;                              // multi_hot: "id:weight"
};

struct Schema {
  std::string format = "criteo";  // criteo | avazu | csv | tsv
  char delimiter = '\t';
  bool header = false;
  // A first line that names every column is a header, any other a record (Avazu: its train
  // file has a header line, the dev and test files of the same data often none).
  bool detect_header = false;
  std::vector<ColumnSpec> columns;
  uint32_t max_bag_length = 1024;

  // What the columns make.
  int num_dense() const;
  int num_fields() const;
  std::vector<std::string> field_names() const;
  // Per field: 1 where it is multi-hot.
  std::vector<uint8_t> multi_hot_fields() const;
  bool has_multi_hot() const;
  bool needs_dense_stats() const;  // some dense column standardizes
  // Criteo's fast parser applies (the preset as is).
  bool criteo() const { return format == "criteo"; }

  // JSON for exports and caches (docs/formats.md), and back; errors are Corruption naming the key.
  std::string ToJson() const;
  static Result<Schema> FromJson(std::string_view json);
  // A short fingerprint of everything that changes what a line reads as (caches key on it).
  uint64_t Fingerprint() const;
};

// The presets: Criteo Kaggle (label, I1..I{dense} integers, C1..C{sparse} hex ids, TAB, no header)
// and Avazu (id, click, hour, C1, banner_pos, site_*, app_*, device_*, C14..C21; comma, header).
Schema CriteoSchema(int num_dense = 13, int num_sparse = 26);
Schema AvazuSchema();
// Checks names (unique, non-empty), exactly one label, at least one field, separators, limits.
Status ValidateSchema(const Schema& schema);

// Parses one record of a schema-described file into example `row` of *batch (which Reset with
// the schema's shape and multi-hot fields). `positions[c]` is the record field of column c (the
// header's order; identity without a header). A record is split by the delimiter with RFC 4180
// quoting (a quoted field may hold delimiters, "" and newlines). Errors name the column.
class SchemaParser {
 public:
  explicit SchemaParser(const Schema& schema);
  // Matches a header record to the columns; errors name the missing column (and leave the
  // positions as they were).
  Status SetHeader(std::string_view record);
  // One record (without its newline) into row `row`; on error *batch's row is left unset (the
  // bags as before the call).
  Status Parse(std::string_view record, Batch* batch, size_t row);
  // Fields of a record already split (serving: the request's strings, label and ignored
  // columns absent); `values[k]` is the k-th column that is neither label nor ignore.
  Status ParseValues(const std::vector<std::string_view>& values, Batch* batch, size_t row);
  // Columns a request row gives (neither label nor ignored), in order.
  std::vector<std::string> input_columns() const;
  const Schema& schema() const { return schema_; }
  // Whether a record's quotes are unbalanced (it continues on the next line).
  static bool OpenQuote(std::string_view record);

 private:
  Status ParseColumn(size_t c, std::string_view value, Batch* batch, size_t row);
  Status Split(std::string_view record);

  Schema schema_;
  std::vector<int> field_of_, dense_of_;  // per column: first field / dense index (-1: none)
  std::vector<size_t> positions_;         // per column: its record field
  size_t record_fields_ = 0;
  std::vector<std::string_view> fields_;
  std::string scratch_;  // quoted fields without their quotes and "" escapes
};

// Parses an id string encoded as `encoding` into *id (kMissingId for ""); false = bad.
bool ParseId(std::string_view s, IdEncoding encoding, uint64_t* id);
// A hex id of 1 to 16 digits (Criteo's); false = bad.
bool ParseHexId(std::string_view s, uint64_t* out);

}  // namespace ember::data
