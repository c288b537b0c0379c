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
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/types.h"

namespace ember::embedding {

// A categorical input field: its name and, if known, its vocabulary size (0 = unknown).
struct FieldInfo {
  std::string name;
  uint64_t vocab = 0;
};

// Probe p of a field reads one row of width probe_dims[p] (= its table's dim). The field's
// embedding is the probes' rows, each zero-padded to the group's widest table, concatenated;
// output_dim is the field's useful width (the sum of its probe dims).
struct FieldLayout {
  std::vector<uint32_t> probe_tables;
  std::vector<int> probe_dims;
  int output_dim = 0;
};

// embedding.method (docs/compression.md).
enum class Method { kFull, kHash, kUnified, kDsl, kOptEmbed };
Result<Method> ParseMethod(const std::string& name);
// Unified Embedding's probes per value when embedding.chunks is 0 (the default): the most probes,
// at most kMaxAutoChunks, whose width divides dim (dim 16: 8 probes of width 2; dim 12: 6; 10: 5).
// More probes average out collisions: on long-tailed data at 1/10 to 1/1000 of the full table,
// 8 probes beat 2 by 0.004 to 0.02 test AUC (docs/compression.md).
constexpr int kMaxAutoChunks = 8;
// The most probes per value unified takes (embedding.chunks, embedding.first_order_chunks).
constexpr int kMaxChunks = 64;
int AutoChunks(int dim);
const char* MethodName(Method method);
// embedding.fallback: where a value without its own row reads.
enum class Fallback { kOov, kHash };
Result<Fallback> ParseFallback(const std::string& name);
const char* FallbackName(Fallback fallback);

// unified: the values that keep collisionless rows of their own, by field, each as its local id
// (UnifiedLocalId). docs/compression.md, *Frequent values*.
struct FrequentValues {
  std::vector<std::unordered_set<uint64_t>> fields;
};
// A value's id as a one-row-per-value unified table keys it: ids up to 2^48 as they are, larger
// ones hashed below that (collisions negligible), so that local * probes + j fits a local key.
uint64_t UnifiedLocalId(uint64_t id);
struct MethodConfig;
// unified: the rows a frequent value of field f holds: one per probe, or one where probes are
// summed (its probes all read it).
uint64_t UnifiedFrequentRows(const MethodConfig& config, size_t field);

// Method selection and sizes, as given by the `embedding.*` config keys.
struct MethodConfig {
  Method method = Method::kFull;
  int dim = 16;             // width of a field's embedding
  uint64_t rows = 1 << 20;  // hash: rows of the one shared table; unified: rows per table
  int tables = 2;           // unified: shared tables T
  int chunks = 2;           // unified: probes per value c (each dim / c wide)
  // unified: a value's c probes are each `dim` wide and summed instead of concatenated (the
  // 1-wide first-order weights, which cannot be split); a collisionless field reads one probe.
  bool sum_probes = false;
  // unified: probes of a 1-wide first-order group (summed where more than one).
  int first_order_chunks = 1;
  // unified: per-field chunk counts (0 = `chunks`); a field with fewer chunks is zero-padded.
  std::vector<int> field_chunks;
  // unified: fields whose vocabulary is at most this get their own collisionless rows.
  uint64_t collisionless_below = 0;
  // unified: per field, how many of its values keep collisionless rows of their own (a table of
  // frequent_counts[f] x probes rows; empty or 0 = none); the field's other values probe the
  // shared tables. `frequent` says which values (the same counts); without it (an export, which
  // reads no ids) every value probes the shared tables.
  std::vector<uint64_t> frequent_counts;
  std::shared_ptr<const FrequentValues> frequent;
  // Per-field method (none = `method`). With method full, hash or dsl, each field may be any of
  // the three (hash fields share one table of `rows` rows); with unified, a field may be full
  // (its own collisionless rows, like a small field).
  std::vector<std::optional<Method>> field_methods;
  float density = 1.0f;  // dsl: share of each row's entries kept
  // dsl: 0 = a row per value; > 0 = the dsl fields share this many rows, values hashed into them
  // (a budget whose per-value masks alone would not fit sets it: docs/compression.md).
  uint64_t dsl_rows = 0;
  // dsl under a budget: values keep their own rows while that leaves each row this share of its
  // entries; below it, they share hashed rows kept at this density.
  float dsl_min_density = 0.5f;
  // optembed: empty = the supernet (full-width tables); else the retraining stage, field f
  // keeping its first field_widths[f] entries in a frozen table of the unpruned rows. With
  // fallback = kHash and fallback_rows > 0, a pruned value reads its row of a shared hashed
  // table of fallback_rows full-width rows (else zeros).
  std::vector<int> field_widths;
  uint64_t seed = 0;                       // salts and row initialisation
  uint32_t first_table = 0;                // table ids start here (several methods can share one PS)
  float init_scale = 0.01f;                // new rows uniform in [-init_scale, init_scale]
  Precision precision = Precision::kFp32;  // dense tables' weight storage
  OptimizerConfig optimizer;
  // Feature admission and expiry (docs/admission.md) of the tables that hold one row per value:
  // full and dsl fields, the OptEmbed supernet, unified's collisionless fields. Hashed tables are
  // already bounded and are left alone. field_admit_after[f] > 0 overrides admit_after for field f.
  Lifecycle lifecycle;
  std::vector<uint32_t> field_admit_after;
  // Where a value without its own row reads: kOov (one shared row per field) or kHash (the
  // value's row in a shared hashed table of `fallback_rows` rows).
  Fallback fallback = Fallback::kOov;
  uint64_t fallback_rows = 0;
  // Trained on a vocabulary (data.vocab, or a full table's budget): the readers mapped every
  // value outside it to kOovId, so the one-row-per-value tables hold its values and each field's
  // out-of-vocabulary row. A value such a table has no row for reads that row (serving, where
  // requests are not mapped), as the readers would have mapped it.
  bool vocabulary = false;
};

// unified: probes of field f, whose rows are collisionless (`own`) or not: one for a collisionless
// field whose probes are summed (copies of one row), else embedding.field_chunks or chunks.
int UnifiedFieldProbes(const MethodConfig& config, size_t field, bool own);

class EmbeddingMethod {
 public:
  virtual ~EmbeddingMethod() = default;
  virtual std::string name() const = 0;
  const std::vector<TableSpec>& tables() const { return tables_; }
  int num_fields() const { return static_cast<int>(layouts_.size()); }
  const FieldLayout& layout(int field) const { return layouts_[field]; }
  int num_probes(int field) const { return static_cast<int>(layouts_[field].probe_tables.size()); }
  // Whether ids are hashed into tables()[i] (modulo its rows, so distinct ids may collide).
  bool hashed(size_t i) const { return i < hashed_tables_.size() && hashed_tables_[i]; }
  // Writes n * num_probes(field) keys, row-major: keys[i * probes + p] is id i's probe p.
  virtual void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const = 0;
  // Probes of the field with the most (every field is padded to this many slots).
  int max_probes() const;
  // Width of one probe's slot: the widest table, or the method's full width where its tables
  // are narrower (OptEmbed retraining zero-pads each field to it).
  int slot_dim() const;
  // Whether a field's embedding is its probes' rows summed (each slot_dim wide, the field's
  // width) rather than concatenated (max_probes x slot_dim).
  bool sums_probes() const { return sum_probes_; }
  // The field's width in the model: slot_dim() summed, else max_probes() x slot_dim().
  int field_dim() const { return sum_probes_ ? slot_dim() : max_probes() * slot_dim(); }
  // Feature admission: whether tables()[i] admits values, and the fallback table (its index in
  // tables(), -1 if none) whose row FallbackKey(key) a key of an admitting table reads while it
  // has no row of its own.
  // OptEmbed's frozen tables fall back too when the method has a fallback table (pruned values).
  bool admits(size_t i) const {
    return i < tables_.size() && (tables_[i].lifecycle.admits() || (tables_[i].frozen && fallback_ >= 0));
  }
  int fallback_table() const { return fallback_; }
  uint64_t FallbackKey(uint64_t key) const;
  // unified: the id of the table holding field f's frequent values' rows, or -1.
  int64_t frequent_table(int field) const {
    return static_cast<size_t>(field) < frequent_tables_.size() ? frequent_tables_[field] : -1;
  }

 protected:
  // Gives the per-value tables (indices into tables_) the config's lifecycle and, with
  // admission, appends the fallback table. Fails if admission is asked of a method without any.
  Status AddLifecycle(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  friend Result<std::unique_ptr<EmbeddingMethod>> MakeMethod(const MethodConfig&, const std::vector<FieldInfo>&);

  std::vector<TableSpec> tables_;
  std::vector<FieldLayout> layouts_;
  std::vector<bool> hashed_tables_;  // by index into tables_; missing = false
  int slot_dim_ = 0;
  bool sum_probes_ = false;
  std::vector<size_t> per_value_;  // indices of tables holding one row per value
  std::vector<int> table_field_;   // by table index: the field a per-value table serves
  int fallback_ = -1;
  uint64_t fallback_rows_ = 0;  // "hash" fallback: rows of the fallback table (0: one per table)
  uint64_t fallback_salt_ = 0;
  std::vector<int64_t> frequent_tables_;  // by field: its frequent values' table id, or -1
};

// Full (collisionless) tables: field f has its own table; key local = id (ids >= 2^54 are
// hashed into 54 bits, where collisions are negligible). The same layout serves Dynamic Sparse
// Learning ("dsl": the tables are element-masked sparse tables at `density`), OptEmbed
// ("optembed": full tables for the supernet; for retraining, frozen tables of field_widths[f]
// entries) and per-field mixes of full, dsl and hash fields (field_methods; the hash fields share
// one table, after the per-field ones; with dsl_rows the dsl fields share one sparse table of
// that many hashed rows, after those).
class FullMethod final : public EmbeddingMethod {
 public:
  FullMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  std::string name() const override { return name_; }
  void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const override;

 private:
  std::string name_;
  uint64_t hash_rows_ = 0;
  uint64_t dsl_rows_ = 0;
  std::vector<bool> hashed_;      // field f hashes into hash_rows_ (hash fields)
  std::vector<bool> dsl_shared_;  // field f hashes into dsl_rows_ (dsl fields with dsl_rows)
  std::vector<uint64_t> salts_;
};

// The method field f uses under config (field_methods[f], or config.method).
Method FieldMethod(const MethodConfig& config, size_t field);

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

// Unified Embedding (feature multiplexing, docs/compression.md): every field shares T tables
// of `rows` rows; value v of field f is looked up with c_f salted hashes, chunk j in table
// table[f][j] (assigned round-robin across fields in registration order), and the c_f rows of
// width d = dim / chunks are concatenated in chunk order (c_f <= chunks; narrower fields are
// zero-padded to dim):
//   key(f, j, v) = (table[f][j], XXH3(v; PairSeed(PairSeed(seed, f), j)) mod rows)
// A field with vocab <= collisionless_below instead gets its own table of vocab * c_f rows of
// width d, value v's chunk j at row v * c_f + j: no collisions, same width. So do a field's
// frequent values (MethodConfig::frequent), in a table of their own after the shared ones.
class UnifiedMethod final : public EmbeddingMethod {
 public:
  UnifiedMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);
  std::string name() const override { return "unified"; }
  void MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const override;

 private:
  uint64_t rows_;
  int chunks_;
  std::vector<int> field_chunks_;
  std::vector<bool> own_table_;
  std::vector<uint64_t> salts_;  // [field * chunks + j]
  std::shared_ptr<const FrequentValues> frequent_;
};

Result<std::unique_ptr<EmbeddingMethod>> MakeMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields);

}  // namespace ember::embedding
