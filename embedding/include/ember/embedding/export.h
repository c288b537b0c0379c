// The export format: a compact, self-describing, versioned, memory-mappable model file with only
// the kept rows of every table, at fp32, fp16 or int8 (per-row scale and bias), the dense
// weights as named fp32 arrays, and a CRC-32 over everything. docs/formats.md describes the
// layout byte by byte; examples/read_export.py reads it without ember.
//
// A delta export holds only the rows that differ from its parent export (a full export or another
// delta, in the same directory, named by file name and CRC), the keys the parent holds that it
// does not (evicted), and every dense array. A delta resolves, through its chain back to the full
// export it starts from, to exactly the bytes a full export of the same state would have.
//
//   ExportWriter: collects tables (pieces of one table id from several shards merge) and dense
//   arrays, sorts rows by key, encodes, writes atomically (temp + fsync + rename), in full or as a
//   delta against a parent.
//   ExportFile: maps a file read-only and validates it (magic, version, trailer, checksum, every
//   section inside the file and aligned, header JSON) before anything is read from it; a delta is
//   resolved through its chain (each link's checksum checked) into the full export it stands for.
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

namespace export_internal {
struct EncodedTable;
}

struct DenseArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct ExportSummary {
  struct TableBytes {
    uint32_t id = 0;
    uint64_t rows = 0;         // rows written (a delta's: rows that changed or are new)
    uint64_t evicted = 0;      // a delta's: keys its parent holds and it does not
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
  // Writes a delta against `parent`, an export (full or delta) in the same directory as `path`:
  // the rows whose encoded bytes differ from what parent resolves to, the keys parent holds that
  // this export does not, and every dense array. FailedPrecondition when the two differ in
  // precision or in their tables (set, width, kind, capacity, seed): write a full export then.
  Result<ExportSummary> WriteDelta(const std::string& path, const std::string& parent, Env* env = PosixEnv()) const;

 private:
  struct TableOut {
    TableSpec spec;
    std::vector<uint64_t> keys;
    std::vector<float> values;     // dense: rows x dim; sparse: packed kept values
    std::vector<uint64_t> masks;   // sparse
    std::vector<uint64_t> starts;  // sparse: first value of each row in `values`
  };
  // Every table's rows sorted and encoded, by table id.
  Result<std::vector<export_internal::EncodedTable>> Encode() const;
  ExportPrecision precision_;
  std::vector<TableOut> tables_;
  std::vector<DenseArray> dense_;
  nlohmann::json model_ = nlohmann::json::object();
};

// A validated, read-only mapping of an export file.
class ExportFile {
 public:
  // A delta is resolved: the result holds the full export its chain stands for (in memory).
  static Result<std::unique_ptr<ExportFile>> Open(const std::string& path);
  // The file as written, unresolved (a delta's own rows).
  static Result<std::unique_ptr<ExportFile>> OpenRaw(const std::string& path);
  ~ExportFile();
  const std::string& path() const { return path_; }
  // The files this export was resolved from, base first (one file for a full export).
  const std::vector<std::string>& chain() const { return chain_; }
  // The bytes of the (resolved) export: a full export's file bytes.
  const uint8_t* data() const { return data_; }
  // The CRC-32 in the trailer of the file at path() as written, and its "delta" link (null for a
  // full export): what a delta written against this file records.
  uint64_t file_crc32() const { return file_crc_; }
  const nlohmann::json& link() const { return link_; }
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
  // Validates data_[0, size_) (mapped or owned) and parses its header.
  Status Validate();
  std::string path_;
  std::vector<std::string> chain_;
  uint64_t file_crc_ = 0;
  nlohmann::json link_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;  // else data_ is an owned, 64-aligned buffer (a resolved delta)
  nlohmann::json header_;
  ExportPrecision precision_ = ExportPrecision::kFp32;
};

// The export a file stands for, as one full export's bytes (a delta resolved through its chain).
Result<std::string> FlattenExport(const std::string& path);
// The files `path` depends on, itself first, then its parent and so on back to its full export,
// as far as their headers can be read (a missing or unreadable link ends the list).
std::vector<std::string> ExportChainFiles(const std::string& path);

class ExportedTable {
 public:
  // The table with id `id` of `file` (which must outlive it).
  static Result<std::unique_ptr<ExportedTable>> Open(const ExportFile& file, uint32_t id);
  const TableSpec& spec() const { return spec_; }
  uint64_t rows() const { return rows_; }
  // The key of row i < rows() (ascending).
  uint64_t key(uint64_t i) const { return keys_[i]; }
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
