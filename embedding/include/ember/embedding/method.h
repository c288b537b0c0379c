// EmbeddingMethod: how a compression method turns a feature's raw ids into row keys.
//
// A method owns no rows. It declares the tables it needs (TableSpec: id, width, size,
// optimizer) and, per field, a layout: the list of probes, each reading one row of one table.
// The field's embedding is the concatenation of its probes' rows, in probe order:
//   embed(f, v) = concat_{p < probes(f)} Row[key(f, p, v)]   (width = sum of probe dims)
// The full table has one probe into the field's own table; the hashing trick one probe into a
// shared table; Unified Embedding several salted probes into shared tables; OptEmbed one probe
// into a per-field-width table (row masks act in the model); DSL keeps element masks next to the
// rows on the server. Methods are immutable after construction and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/types.h"

namespace ember::embedding {

// A categorical input field: its name and, if known, its vocabulary size (0 = unknown).
struct FieldInfo {
  std::string name;
  uint64_t vocab = 0;
};

// Probe p of a field reads one row of width tables[probe_tables[p]].dim.
struct FieldLayout {
  std::vector<uint32_t> probe_tables;
  std::vector<int> probe_dims;
  int output_dim = 0;
};

// Method selection and sizes, as given by the `embedding.*` config keys.
struct MethodConfig {
  std::string method = "full";  // "full", "hash" or "unified"
  int dim = 16;                 // width of a field's embedding
  uint64_t rows = 1 << 20;      // hash: rows of the one shared table; unified: rows per table
  int tables = 2;               // unified: shared tables T
  int chunks = 2;               // unified: probes per value c (each dim / c wide)
  uint64_t seed = 0;            // salts and row initialisation
  uint32_t first_table = 0;     // table ids start here (several methods can share one PS)
  float init_scale = 0.01f;     // new rows uniform in [-init_scale, init_scale]
  OptimizerConfig optimizer;
};

class EmbeddingMethod {
 public:
  virtual ~EmbeddingMethod() = default;
  virtual std::string name() const = 0;
  const std::vector<TableSpec>& tables() const { return tables_; }
  int num_fields() const { return static_cast<int>(layouts_.size()); }
  const FieldLayout& layout(int field) const { return layouts_[field]; }
  int num_probes(int field) const { return static_cast<int>(layouts_[field].probe_tables.size()); }
  // Writes n * num_probes(field) keys, row-major: keys[i * probes + p] is id i's probe p.
  virtual void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const = 0;
  // Bytes of weights for `rows_per_table[t]` rows in table t (0 rows = spec.rows).
  uint64_t PlannedWeightBytes() const;

 protected:
  std::vector<TableSpec> tables_;
  std::vector<FieldLayout> layouts_;
};

// Full (collisionless) tables: field f has table f; key local = id (ids >= 2^54 are hashed into
// 54 bits, where collisions are negligible).
class FullMethod final : public EmbeddingMethod {
 public:
  FullMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  std::string name() const override { return "full"; }
  void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const override;
};

// Hashing trick: one shared table of `rows` rows; key local = H64(id; seed(field)) mod rows.
class HashMethod final : public EmbeddingMethod {
 public:
  HashMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  std::string name() const override { return "hash"; }
  void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const override;

 private:
  uint64_t rows_;
  uint32_t table_;
  std::vector<uint64_t> salts_;
};

// Unified Embedding (feature multiplexing, ALGORITHMS.md section 1): every field shares T tables
// of `rows` rows; value v of field f is looked up with c salted hashes, chunk j in table
// table[f][j] (assigned round-robin across fields in registration order), and the c rows of
// width dim / c are concatenated in chunk order:
//   key(f, j, v) = (table[f][j], XXH3(v; PairSeed(PairSeed(seed, f), j)) mod rows)
class UnifiedMethod final : public EmbeddingMethod {
 public:
  UnifiedMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  std::string name() const override { return "unified"; }
  void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const override;

 private:
  uint64_t rows_;
  int chunks_;
  std::vector<uint64_t> salts_;  // [field * chunks + j]
};

Result<std::unique_ptr<EmbeddingMethod>> MakeMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);

}  // namespace ember::embedding
