#include "ember/embedding/method.h"

#include <algorithm>

#include "ember/common/hash.h"
#include "ember/embedding/table.h"

namespace ember::embedding {
namespace {
TableSpec MakeSpec(uint32_t id, uint64_t rows, const MethodConfig& c) {
  TableSpec s;
  s.id = id;
  s.dim = c.dim;
  s.rows = rows;
  s.init_scale = c.init_scale;
  s.seed = PairSeed(c.seed, id);
  s.optimizer = c.optimizer;
  s.precision = c.precision;
  return s;
}
FieldLayout OneProbe(uint32_t table, int dim) {
  FieldLayout l;
  l.probe_tables = {table};
  l.probe_dims = {dim};
  l.output_dim = dim;
  return l;
}
}  // namespace

int EmbeddingMethod::max_probes() const {
  int p = 0;
  for (const auto& l : layouts_) p = std::max(p, static_cast<int>(l.probe_tables.size()));
  return p;
}

int EmbeddingMethod::slot_dim() const {
  int d = slot_dim_;
  for (const auto& t : tables_) d = std::max(d, t.dim);
  return d;
}

uint64_t EmbeddingMethod::FallbackKey(uint64_t key) const {
  const uint32_t fb = tables_[static_cast<size_t>(fallback_)].id;
  if (fallback_rows_ > 0) return MakeKey(fb, Mix64(key ^ fallback_salt_) % fallback_rows_);
  return MakeKey(fb, KeyTable(key) - tables_[0].id);  // one out-of-vocabulary row per table
}

Status EmbeddingMethod::AddLifecycle(const MethodConfig& config, const std::vector<FieldInfo>& fields) {
  const std::vector<size_t>& per_value = per_value_;
  const Lifecycle& life = config.lifecycle;
  // OptEmbed retraining with a hashed fallback: a pruned value (no row in its frozen table) reads
  // its row of a shared hashed table instead of zeros.
  bool frozen_fallback = false;
  if (config.fallback == Fallback::kHash && config.fallback_rows > 0)
    for (size_t i : per_value) frozen_fallback |= tables_[i].frozen;
  bool any = life.any() || frozen_fallback;
  for (uint32_t k : config.field_admit_after) any |= k > 1;
  if (!any) return Status::Ok();
  EMBER_RETURN_IF_ERROR(CheckLifecycle(life).WithContext("embedding"));
  if (!config.field_admit_after.empty() && config.field_admit_after.size() != fields.size())
    return Status::InvalidArgument("embedding.field_admit_after: " + std::to_string(config.field_admit_after.size()) +
                                   " entries for " + std::to_string(fields.size()) + " fields");
  bool admitting = false;
  int dim = 0;
  for (size_t i : per_value) {
    TableSpec& t = tables_[i];
    if (t.frozen) continue;  // OptEmbed retraining: a fixed set of rows
    t.lifecycle = life;
    const int f = table_field_[i];
    if (f >= 0 && static_cast<size_t>(f) < config.field_admit_after.size() && config.field_admit_after[f] > 0)
      t.lifecycle.admit_after = config.field_admit_after[f];
    if (!t.lifecycle.admits()) continue;
    if (dim != 0 && dim != t.dim)
      return Status::InvalidArgument("feature admission needs the admitting tables to share one width");
    dim = t.dim;
    admitting = true;
  }
  if (frozen_fallback) {
    if (admitting)
      return Status::InvalidArgument(
          "a hashed fallback for OptEmbed's pruned values and feature admission "
          "cannot be combined");
    dim = slot_dim_;  // a pruned value's fallback row fills its field's whole slot
    admitting = true;
  }
  bool asked = life.admits();
  for (uint32_t k : config.field_admit_after) asked |= k > 1;
  if (asked && !admitting && per_value.empty())
    return Status::InvalidArgument("embedding.admit_after: method '" + std::string(MethodName(config.method)) +
                                   "' has no per-value rows to admit (admission applies to full, dsl and optembed "
                                   "fields and to unified's collisionless fields)");
  if (!admitting) return Status::Ok();
  if (config.fallback == Fallback::kHash && config.fallback_rows == 0)
    return Status::InvalidArgument("embedding.fallback_rows must be > 0 with embedding.fallback = \"hash\"");
  const uint32_t id = tables_.back().id + 1;
  if (id >= kMaxTables) return Status::InvalidArgument("table ids exhausted (fallback table)");
  fallback_rows_ = config.fallback == Fallback::kHash ? config.fallback_rows : 0;
  fallback_salt_ = PairSeed(config.seed, 0xfa11bac);
  TableSpec fb = MakeSpec(id, fallback_rows_ ? fallback_rows_ : tables_.size(), config);
  fb.dim = dim;
  fallback_ = static_cast<int>(tables_.size());
  tables_.push_back(fb);
  hashed_tables_.resize(tables_.size(), false);
  hashed_tables_.back() = fallback_rows_ > 0;
  return Status::Ok();
}

Result<Method> ParseMethod(const std::string& name) {
  for (Method m : {Method::kFull, Method::kHash, Method::kUnified, Method::kDsl, Method::kOptEmbed})
    if (name == MethodName(m)) return m;
  return Status::InvalidArgument("embedding.method: unknown method '" + name +
                                 "' (expected full, hash, unified, dsl or optembed)");
}

const char* MethodName(Method method) {
  switch (method) {
    case Method::kFull:
      return "full";
    case Method::kHash:
      return "hash";
    case Method::kUnified:
      return "unified";
    case Method::kDsl:
      return "dsl";
    case Method::kOptEmbed:
      return "optembed";
  }
  return "?";
}

uint64_t UnifiedFrequentRows(const MethodConfig& config, size_t field) {
  return config.sum_probes ? 1 : static_cast<uint64_t>(UnifiedFieldProbes(config, field, /*own=*/false));
}

uint64_t UnifiedLocalId(uint64_t id) { return id <= kLocalMask / 64 ? id : Mix64(id) % (kLocalMask / 64); }

int UnifiedFieldProbes(const MethodConfig& config, size_t field, bool own) {
  if (own && config.sum_probes) return 1;
  return field < config.field_chunks.size() && config.field_chunks[field] > 0 ? config.field_chunks[field]
                                                                              : config.chunks;
}

int AutoChunks(int dim) {
  for (int c = std::min(dim, kMaxAutoChunks); c > 1; --c)
    if (dim % c == 0) return c;
  return 1;
}

Result<Fallback> ParseFallback(const std::string& name) {
  if (name == "oov") return Fallback::kOov;
  if (name == "hash") return Fallback::kHash;
  return Status::InvalidArgument("embedding.fallback: unknown fallback '" + name + "' (expected oov or hash)");
}

const char* FallbackName(Fallback fallback) { return fallback == Fallback::kHash ? "hash" : "oov"; }

Method FieldMethod(const MethodConfig& config, size_t field) {
  return field < config.field_methods.size() && config.field_methods[field] ? *config.field_methods[field]
                                                                            : config.method;
}

FullMethod::FullMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields)
    : name_(MethodName(config.method)) {
  slot_dim_ = config.dim;
  uint32_t next = config.first_table;
  std::vector<size_t> hash_fields, dsl_fields;
  for (size_t f = 0; f < fields.size(); ++f) {
    const Method m = FieldMethod(config, f);
    hashed_.push_back(m == Method::kHash);
    dsl_shared_.push_back(m == Method::kDsl && config.dsl_rows > 0);
    salts_.push_back(PairSeed(config.seed, f));
    if (hashed_.back() || dsl_shared_.back()) {
      (hashed_.back() ? hash_fields : dsl_fields).push_back(f);
      layouts_.emplace_back();
      continue;
    }
    const uint32_t id = next++;
    TableSpec spec = MakeSpec(id, fields[f].vocab, config);
    if (m == Method::kDsl) {
      spec.precision = Precision::kFp32;
      spec.kind = TableKind::kSparse;
      spec.density = config.density;
    }
    if (m == Method::kOptEmbed && !config.field_widths.empty()) {
      spec.dim = config.field_widths[f];
      spec.frozen = true;
    }
    per_value_.push_back(tables_.size());
    table_field_.resize(tables_.size() + 1, -1);
    table_field_.back() = static_cast<int>(f);
    tables_.push_back(spec);
    layouts_.push_back(OneProbe(id, spec.dim));
  }
  if (!hash_fields.empty()) {
    hash_rows_ = config.rows;
    const uint32_t id = next++;
    tables_.push_back(MakeSpec(id, hash_rows_, config));
    hashed_tables_.resize(tables_.size(), false);
    hashed_tables_.back() = true;
    for (size_t f : hash_fields) layouts_[f] = OneProbe(id, config.dim);
  }
  if (!dsl_fields.empty()) {
    dsl_rows_ = config.dsl_rows;
    const uint32_t id = next++;
    TableSpec spec = MakeSpec(id, dsl_rows_, config);
    spec.precision = Precision::kFp32;
    spec.kind = TableKind::kSparse;
    spec.density = config.density;
    tables_.push_back(spec);
    hashed_tables_.resize(tables_.size(), false);
    hashed_tables_.back() = true;
    for (size_t f : dsl_fields) layouts_[f] = OneProbe(id, config.dim);
  }
}

void FullMethod::MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const {
  const uint32_t table = layouts_[field].probe_tables[0];
  if (hashed_[field] || dsl_shared_[field]) {
    const uint64_t salt = salts_[field], rows = hashed_[field] ? hash_rows_ : dsl_rows_;
    for (size_t i = 0; i < n; ++i) keys[i] = MakeKey(table, HashId(ids[i], salt) % rows);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint64_t id = ids[i];
    keys[i] = MakeKey(table, id <= kLocalMask ? id : Mix64(id));
  }
}

HashMethod::HashMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields)
    : rows_(config.rows), table_(config.first_table) {
  tables_.push_back(MakeSpec(table_, rows_, config));
  hashed_tables_ = {true};
  for (size_t f = 0; f < fields.size(); ++f) {
    salts_.push_back(PairSeed(config.seed, f));
    layouts_.push_back(OneProbe(table_, config.dim));
  }
}

void HashMethod::MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const {
  const uint64_t salt = salts_[field];
  for (size_t i = 0; i < n; ++i) keys[i] = MakeKey(table_, HashId(ids[i], salt) % rows_);
}

UnifiedMethod::UnifiedMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields)
    : rows_(config.rows), chunks_(config.chunks), frequent_(config.frequent) {
  sum_probes_ = config.sum_probes;
  const int width = sum_probes_ ? config.dim : config.dim / config.chunks;
  for (int t = 0; t < config.tables; ++t) {
    TableSpec s = MakeSpec(config.first_table + static_cast<uint32_t>(t), rows_, config);
    s.dim = width;
    tables_.push_back(s);
    hashed_tables_.push_back(true);
  }
  int next = 0;  // round-robin runs across fields, not per field
  uint32_t next_own = config.first_table + static_cast<uint32_t>(config.tables);
  for (size_t f = 0; f < fields.size(); ++f) {
    const bool own = FieldMethod(config, f) == Method::kFull ||
                     (fields[f].vocab > 0 && fields[f].vocab <= config.collisionless_below);
    const int c = UnifiedFieldProbes(config, f, own);
    field_chunks_.push_back(c);
    own_table_.push_back(own);
    FieldLayout l;
    uint32_t own_id = 0;
    if (own) {
      own_id = next_own++;
      TableSpec s = MakeSpec(own_id, fields[f].vocab * static_cast<uint64_t>(c), config);
      s.dim = width;
      per_value_.push_back(tables_.size());
      table_field_.resize(tables_.size() + 1, -1);
      table_field_.back() = static_cast<int>(f);
      tables_.push_back(s);
    }
    for (int j = 0; j < c; ++j) {
      if (own) {
        l.probe_tables.push_back(own_id);
      } else {
        l.probe_tables.push_back(config.first_table + static_cast<uint32_t>(next));
        next = (next + 1) % config.tables;
      }
      l.probe_dims.push_back(width);
    }
    for (int j = 0; j < chunks_; ++j) salts_.push_back(PairSeed(PairSeed(config.seed, f), static_cast<uint64_t>(j)));
    l.output_dim = sum_probes_ ? width : width * c;
    layouts_.push_back(l);
  }
  // Frequent values' collisionless rows: a table per field that keeps any, after the others.
  frequent_tables_.assign(fields.size(), -1);
  for (size_t f = 0; f < fields.size() && f < config.frequent_counts.size(); ++f) {
    if (own_table_[f] || config.frequent_counts[f] == 0) continue;
    const uint32_t id = next_own++;
    TableSpec s = MakeSpec(id, config.frequent_counts[f] * UnifiedFrequentRows(config, f), config);
    s.dim = width;
    frequent_tables_[f] = id;
    tables_.push_back(s);
  }
}

void UnifiedMethod::MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const {
  const size_t c = static_cast<size_t>(field_chunks_[field]);
  const uint64_t* salts = salts_.data() + static_cast<size_t>(field) * chunks_;
  const auto& tables = layouts_[field].probe_tables;
  if (own_table_[field]) {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t id = UnifiedLocalId(ids[i]);
      for (size_t j = 0; j < c; ++j) keys[i * c + j] = MakeKey(tables[j], id * c + j);
    }
    return;
  }
  const int64_t frequent_table = frequent_tables_[field];
  const std::unordered_set<uint64_t>* frequent = nullptr;  // the field's frequent values, if any
  if (frequent_table >= 0 && frequent_ && static_cast<size_t>(field) < frequent_->fields.size() &&
      !frequent_->fields[field].empty())
    frequent = &frequent_->fields[field];
  for (size_t i = 0; i < n; ++i) {
    if (frequent) {
      const uint64_t id = UnifiedLocalId(ids[i]);
      if (frequent->count(id)) {
        // Summed probes read the value's one row c times (c times its weight), as budgeted.
        for (size_t j = 0; j < c; ++j)
          keys[i * c + j] = MakeKey(static_cast<uint32_t>(frequent_table), sum_probes_ ? id : id * c + j);
        continue;
      }
    }
    for (size_t j = 0; j < c; ++j) keys[i * c + j] = MakeKey(tables[j], HashId(ids[i], salts[j]) % rows_);
  }
}

namespace {
Result<std::unique_ptr<EmbeddingMethod>> MakeMethodTables(const MethodConfig& config,
                                                          const std::vector<FieldInfo>& fields);
}  // namespace

Result<std::unique_ptr<EmbeddingMethod>> MakeMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddingMethod> m, MakeMethodTables(config, fields));
  EMBER_RETURN_IF_ERROR(m->AddLifecycle(config, fields));
  return m;
}

namespace {
Result<std::unique_ptr<EmbeddingMethod>> MakeMethodTables(const MethodConfig& config,
                                                          const std::vector<FieldInfo>& fields) {
  if (config.dim <= 0 || config.dim > 4096)
    return Status::InvalidArgument("embedding.dim must be in [1, 4096], got " + std::to_string(config.dim));
  if (fields.empty()) return Status::InvalidArgument("no categorical fields");
  if (config.first_table >= kMaxTables) return Status::InvalidArgument("table ids exhausted");
  if (!config.field_methods.empty() && config.field_methods.size() != fields.size())
    return Status::InvalidArgument("embedding.field_methods: " + std::to_string(config.field_methods.size()) +
                                   " entries for " + std::to_string(fields.size()) + " fields");
  bool mixed = false;
  for (size_t f = 0; f < fields.size(); ++f) {
    const Method m = FieldMethod(config, f);
    if (m == config.method) continue;
    mixed = true;
    const bool ok =
        config.method == Method::kUnified
            ? m == Method::kFull
            : (config.method == Method::kFull || config.method == Method::kHash || config.method == Method::kDsl) &&
                  (m == Method::kFull || m == Method::kHash || m == Method::kDsl);
    if (!ok)
      return Status::InvalidArgument("embedding.field_methods: field " + fields[f].name + " cannot use '" +
                                     MethodName(m) + "' under embedding.method = '" + MethodName(config.method) +
                                     "' (full, hash and dsl mix; unified fields may be full; optembed takes all)");
  }
  if (mixed && config.method != Method::kUnified) {
    for (size_t f = 0; f < fields.size(); ++f)
      if (FieldMethod(config, f) == Method::kHash && config.rows == 0)
        return Status::InvalidArgument("embedding.rows must be > 0 for hash fields");
    if (config.dim > 64)
      for (size_t f = 0; f < fields.size(); ++f)
        if (FieldMethod(config, f) == Method::kDsl)
          return Status::InvalidArgument("embedding.dim must be <= 64 for dsl");
    return std::unique_ptr<EmbeddingMethod>(new FullMethod(config, fields));
  }
  if (config.method == Method::kFull || config.method == Method::kDsl || config.method == Method::kOptEmbed) {
    if (config.first_table + fields.size() >= kMaxTables)
      return Status::InvalidArgument(std::string(MethodName(config.method)) + " tables: too many fields (" +
                                     std::to_string(fields.size()) + ")");
    if (config.method == Method::kDsl) {
      if (config.precision != Precision::kFp32)
        return Status::InvalidArgument("embedding.precision = \"fp16\" applies to dense tables, not dsl");
      if (config.dim > 64)
        return Status::InvalidArgument("embedding.dim must be <= 64 for dsl (one 64-bit mask per row), got " +
                                       std::to_string(config.dim));
      if (!(config.density > 0.0f && config.density <= 1.0f))
        return Status::InvalidArgument("embedding.density must be in (0, 1], got " + std::to_string(config.density));
    }
    if (!config.field_widths.empty()) {
      if (config.field_widths.size() != fields.size())
        return Status::InvalidArgument("optembed: " + std::to_string(config.field_widths.size()) +
                                       " field widths for " + std::to_string(fields.size()) + " fields");
      for (int w : config.field_widths)
        if (w < 1 || w > config.dim)
          return Status::InvalidArgument("optembed: field width " + std::to_string(w) + " outside [1, " +
                                         std::to_string(config.dim) + "]");
    }
    return std::unique_ptr<EmbeddingMethod>(new FullMethod(config, fields));
  }
  if (config.method == Method::kHash) {
    if (config.rows == 0) return Status::InvalidArgument("embedding.rows must be > 0 for hash");
    return std::unique_ptr<EmbeddingMethod>(new HashMethod(config, fields));
  }
  if (config.method == Method::kUnified) {
    if (config.rows == 0) return Status::InvalidArgument("embedding.rows must be > 0 for unified");
    if (config.tables < 1 || config.first_table + static_cast<uint64_t>(config.tables) >= kMaxTables)
      return Status::InvalidArgument("embedding.tables must be in [1, " + std::to_string(kMaxTables - 1) + "]");
    if (config.chunks < 1 || config.chunks > kMaxChunks || (!config.sum_probes && config.dim % config.chunks != 0))
      return Status::InvalidArgument("embedding.chunks (" + std::to_string(config.chunks) + ") must be in [1, " +
                                     std::to_string(kMaxChunks) + "] and divide the embedding width " +
                                     std::to_string(config.dim) +
                                     (config.sum_probes ? " unless probes are summed" : ""));
    for (size_t f = 0; f < config.field_chunks.size(); ++f)
      if (config.field_chunks[f] < 0 || config.field_chunks[f] > config.chunks)
        return Status::InvalidArgument("embedding.field_chunks: field " + std::to_string(f) + " has " +
                                       std::to_string(config.field_chunks[f]) + " chunks, allowed 1.." +
                                       std::to_string(config.chunks) + " (embedding.chunks)");
    if (config.first_table + static_cast<uint64_t>(config.tables) + 2 * fields.size() >= kMaxTables)
      return Status::InvalidArgument("unified: too many tables");
    if (!config.frequent_counts.empty() && config.frequent_counts.size() != fields.size())
      return Status::InvalidArgument("unified: frequent values counted for " +
                                     std::to_string(config.frequent_counts.size()) + " fields, the model has " +
                                     std::to_string(fields.size()));
    for (size_t f = 0; f < config.frequent_counts.size(); ++f) {
      if (config.frequent_counts[f] > (kLocalMask >> 8))
        return Status::InvalidArgument("unified: field " + fields[f].name + " keeps too many frequent values (" +
                                       std::to_string(config.frequent_counts[f]) + ")");
      const size_t held = config.frequent && f < config.frequent->fields.size() ? config.frequent->fields[f].size() : 0;
      if (config.frequent && held != config.frequent_counts[f])
        return Status::InvalidArgument("unified: field " + fields[f].name + " keeps " +
                                       std::to_string(config.frequent_counts[f]) + " frequent values, its list holds " +
                                       std::to_string(held));
    }
    return std::unique_ptr<EmbeddingMethod>(new UnifiedMethod(config, fields));
  }
  return Status::InvalidArgument(std::string("embedding.method: no tables for method ") + MethodName(config.method));
}
}  // namespace

}  // namespace ember::embedding
