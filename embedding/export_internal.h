// Internal to embedding/: the export file's tables at the export precision, as export.cc writes
// them and export_chain.cc compares and merges them (deltas). A full export and a chain merged
// into one go through the same Serialize, so the two are equal byte for byte when they hold the
// same rows.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/embedding/export.h"

namespace ember::embedding::export_internal {

inline constexpr char kMagic[4] = {'E', 'M', 'B', 'X'};
inline constexpr char kEndMagic[8] = {'E', 'M', 'B', 'X', 'E', 'N', 'D', '\0'};
inline constexpr size_t kPrologue = 16;  // magic, version, header length
inline constexpr size_t kTrailer = 16;   // CRC-32 (as u64), end magic

// One table's rows, sorted by key, encoded at the file's precision.
struct EncodedTable {
  TableSpec spec;
  std::vector<uint64_t> keys;     // sorted, unique
  std::string values;             // every row's encoded values, row after row
  std::vector<uint64_t> starts;   // keys.size() + 1 byte offsets into values
  std::vector<float> scales;      // int8: (scale, bias) per row
  std::string masks;              // sparse: mask_bytes per row
  std::vector<uint64_t> evicted;  // a delta's: keys its parent holds and it does not (sorted)
  size_t mask_bytes = 0;

  size_t rows() const { return keys.size(); }
  // Appends row r of `from` (same spec and precision).
  void AppendRow(const EncodedTable& from, size_t r, bool int8);
  // Whether row a of this table and row b of `other` hold the same bytes.
  bool SameRow(size_t a, const EncodedTable& other, size_t b, bool int8) const;
};

// A delta's link to the export it applies to and to its chain's full export.
struct DeltaLink {
  std::string parent, base;  // file names in the delta's directory
  uint64_t parent_crc = 0, base_crc = 0;
  uint64_t sequence = 1;  // 1 for the first delta after a full export
};

// Bytes of one value at a precision; of one sparse row's mask (the smallest of 1, 2, 4, 8 holding
// dim bits).
size_t ValueBytes(ExportPrecision p);
size_t MaskBytes(int dim);
// A validated delta's bytes once resolved through its chain: the full export it stands for;
// *chain receives the chain's files, base first.
Result<std::string> ResolveDelta(const ExportFile& head, std::vector<std::string>* chain);
// The file's bytes: header, sections, trailer (`delta` null for a full export). Tables sorted by id.
std::string Serialize(ExportPrecision precision, const nlohmann::json& model, const std::vector<EncodedTable>& tables,
                      const std::vector<DenseArray>& dense, const DeltaLink* delta, ExportSummary* summary);
// Table `t` (a header entry) of a validated file, copied out.
EncodedTable ReadTable(const ExportFile& file, const nlohmann::json& t);
// The TableSpec a header entry describes.
TableSpec SpecOf(const nlohmann::json& t);
// The CRC-32 stored in a file's trailer.
uint64_t StoredCrc(const uint8_t* data, uint64_t size);

}  // namespace ember::embedding::export_internal
