// The export format: a compact, self-describing, versioned, memory-mappable model file with only
// the kept rows of every table, at fp32, fp16 or int8 (per-row scale and bias), the dense
// weights as named fp32 arrays, and a CRC-32 over everything. docs/formats.md describes the
// layout byte by byte; examples/read_export.py reads it without ember.
//
//   ExportWriter: collects tables (pieces of one table id from several shards merge) and dense
//   arrays, sorts rows by key, encodes, writes atomically (temp + fsync + rename).
//   ExportFile: maps a file read-only and validates it (magic, version, trailer, checksum, every
//   section inside the file and aligned, header JSON) before anything is read from it.
//   ExportedTable: row lookups over a mapped table; keys it does not hold read exactly as an
//   evaluation of the checkpoint reads them (their initial values, or zero for frozen tables).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/common/env.h"
#include "ember/common/key_index.h"
#include "ember/common/status.h"
#include "ember/embedding/method.h"
#include "ember/embedding/table.h"

namespace ember::embedding {

enum class ExportPrecision { kFp32, kFp16, kInt8 };
Result<ExportPrecision> ParseExportPrecision(const std::string& name);
const char* ExportPrecisionName(ExportPrecision p);

inline constexpr uint32_t kExportVersion = 1;
inline constexpr size_t kExportAlign = 64;

// MethodConfig <-> JSON (every field a method's key mapping depends on; optimizer excluded).
nlohmann::json MethodConfigToJson(const MethodConfig& c);
Result<MethodConfig> MethodConfigFromJson(const nlohmann::json& j);

struct ExportSummary {
  struct TableBytes {
    uint32_t id = 0;
    uint64_t rows = 0;
    uint64_t value_bytes = 0;  // weights at the export precision
    uint64_t other_bytes = 0;  // keys, int8 scales, sparse masks and offsets
  };
  std::vector<TableBytes> tables;
  uint64_t header_bytes = 0;
  uint64_t dense_bytes = 0;
  uint64_t padding_bytes = 0;  // alignment of sections, trailer
  uint64_t file_bytes = 0;
  uint64_t value_bytes() const;
  uint64_t other_bytes() const;
};

class ExportWriter {
 public:
  explicit ExportWriter(ExportPrecision precision) : precision_(precision) {}
  // Adds every row of `table` (a shard's piece: pieces with the same id merge). Rows of tables
  // whose absent keys read zero (frozen) are dropped when all their weights are zero.
  Status AddTable(const Table& table);
  // Adds a dense fp32 array (model weights, buffers) under a unique name.
  Status AddDense(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // Free-form description stored in the header under "model" (architecture, fields, groups).
  void SetModel(nlohmann::json model) { model_ = std::move(model); }
  // Writes the file atomically through `env` (a reader sees the old file or the new one).
  Result<ExportSummary> Write(const std::string& path, Env* env = PosixEnv()) const;

 private:
  struct TableOut {
    TableSpec spec;
    std::vector<uint64_t> keys;
    std::vector<float> values;     // dense: rows x dim; sparse: packed kept values
    std::vector<uint64_t> masks;   // sparse
    std::vector<uint64_t> starts;  // sparse: first value of each row in `values`
  };
  struct DenseOut {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data;
  };
  ExportPrecision precision_;
  std::vector<TableOut> tables_;
  std::vector<DenseOut> dense_;
  nlohmann::json model_ = nlohmann::json::object();
};

// A validated, read-only mapping of an export file.
class ExportFile {
 public:
  static Result<std::unique_ptr<ExportFile>> Open(const std::string& path);
  ~ExportFile();
  const std::string& path() const { return path_; }
  const nlohmann::json& header() const { return header_; }
  const nlohmann::json& model() const { return header_["model"]; }
  uint64_t size() const { return size_; }
  ExportPrecision precision() const { return precision_; }
  // The bytes of a section descriptor {"offset", "bytes"} (validated at Open).
  const uint8_t* Section(const nlohmann::json& section) const;
  // Dense arrays by name (fp32, row-major); null if absent. *shape receives the shape.
  const float* Dense(const std::string& name, std::vector<int64_t>* shape) const;

 private:
  ExportFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  nlohmann::json header_;
  ExportPrecision precision_ = ExportPrecision::kFp32;
};

class ExportedTable {
 public:
  // The table with id `id` of `file` (which must outlive it).
  static Result<std::unique_ptr<ExportedTable>> Open(const ExportFile& file, uint32_t id);
  const TableSpec& spec() const { return spec_; }
  uint64_t rows() const { return rows_; }
  // out[0..dim) = the row of key, dequantized; an absent key reads what a checkpoint's
  // evaluation reads (zero for frozen tables, else its initial value) and returns false.
  bool Lookup(uint64_t key, float* out) const;

 private:
  ExportedTable() = default;
  TableSpec spec_;
  ExportPrecision precision_ = ExportPrecision::kFp32;
  uint64_t rows_ = 0;
  KeyIndex index_;
  const uint64_t* keys_ = nullptr;
  const uint8_t* values_ = nullptr;
  const float* scales_ = nullptr;   // int8: (scale, bias) per row
  const uint8_t* masks_ = nullptr;  // sparse: mask_bytes_ per row
  size_t mask_bytes_ = 0;
  std::vector<uint64_t> starts_;  // sparse: first value of each row (computed at Open)
};

}  // namespace ember::embedding
