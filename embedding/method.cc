#include "ember/embedding/method.h"

#include "ember/common/hash.h"

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

uint64_t EmbeddingMethod::PlannedWeightBytes() const {
  uint64_t bytes = 0;
  for (const auto& t : tables_) bytes += t.rows * static_cast<uint64_t>(t.dim) * sizeof(float);
  return bytes;
}

FullMethod::FullMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields) {
  for (size_t f = 0; f < fields.size(); ++f) {
    const uint32_t id = config.first_table + static_cast<uint32_t>(f);
    tables_.push_back(MakeSpec(id, fields[f].vocab, config));
    layouts_.push_back(OneProbe(id, config.dim));
  }
}

void FullMethod::MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const {
  const uint32_t table = layouts_[field].probe_tables[0];
  for (size_t i = 0; i < n; ++i) {
    const uint64_t id = ids[i];
    keys[i] = MakeKey(table, id <= kLocalMask ? id : Mix64(id));
  }
}

HashMethod::HashMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields)
    : rows_(config.rows), table_(config.first_table) {
  tables_.push_back(MakeSpec(table_, rows_, config));
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
    : rows_(config.rows), chunks_(config.chunks) {
  const int width = config.dim / config.chunks;
  for (int t = 0; t < config.tables; ++t) {
    TableSpec s = MakeSpec(config.first_table + static_cast<uint32_t>(t), rows_, config);
    s.dim = width;
    tables_.push_back(s);
  }
  int next = 0;  // round-robin runs across fields, not per field
  for (size_t f = 0; f < fields.size(); ++f) {
    FieldLayout l;
    for (int j = 0; j < chunks_; ++j) {
      l.probe_tables.push_back(config.first_table + static_cast<uint32_t>(next));
      l.probe_dims.push_back(width);
      next = (next + 1) % config.tables;
      salts_.push_back(PairSeed(PairSeed(config.seed, f), static_cast<uint64_t>(j)));
    }
    l.output_dim = width * chunks_;
    layouts_.push_back(l);
  }
}

void UnifiedMethod::MapIds(int field, const uint64_t* ids, size_t n, uint64_t* keys) const {
  const size_t c = static_cast<size_t>(chunks_);
  const uint64_t* salts = salts_.data() + static_cast<size_t>(field) * c;
  const auto& tables = layouts_[field].probe_tables;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < c; ++j) keys[i * c + j] = MakeKey(tables[j], HashId(ids[i], salts[j]) % rows_);
}

Result<std::unique_ptr<EmbeddingMethod>> MakeMethod(const MethodConfig& config, const std::vector<FieldInfo>& fields) {
  if (config.dim <= 0 || config.dim > 4096)
    return Status::InvalidArgument("embedding.dim must be in [1, 4096], got " + std::to_string(config.dim));
  if (fields.empty()) return Status::InvalidArgument("no categorical fields");
  if (config.first_table >= kMaxTables) return Status::InvalidArgument("table ids exhausted");
  if (config.method == "full") {
    if (config.first_table + fields.size() >= kMaxTables)
      return Status::InvalidArgument("full tables: too many fields (" + std::to_string(fields.size()) + ")");
    return std::unique_ptr<EmbeddingMethod>(new FullMethod(config, fields));
  }
  if (config.method == "hash") {
    if (config.rows == 0) return Status::InvalidArgument("embedding.rows must be > 0 for hash");
    return std::unique_ptr<EmbeddingMethod>(new HashMethod(config, fields));
  }
  if (config.method == "unified") {
    if (config.rows == 0) return Status::InvalidArgument("embedding.rows must be > 0 for unified");
    if (config.tables < 1 || config.first_table + static_cast<uint64_t>(config.tables) >= kMaxTables)
      return Status::InvalidArgument("embedding.tables must be in [1, " + std::to_string(kMaxTables - 1) + "]");
    if (config.chunks < 1 || config.dim % config.chunks != 0)
      return Status::InvalidArgument("embedding.chunks (" + std::to_string(config.chunks) +
                                     ") must be >= 1 and divide the embedding width " + std::to_string(config.dim));
    return std::unique_ptr<EmbeddingMethod>(new UnifiedMethod(config, fields));
  }
  return Status::InvalidArgument("embedding.method: unknown method '" + config.method +
                                 "' (expected full, hash or unified)");
}

}  // namespace ember::embedding
