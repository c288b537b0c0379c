// Table: the storage of one table (or of one table's shard) behind the PS.
//
// Two kinds implement it (TableSpec::kind): RowStore (dense rows) and SparseRowStore
// (element-masked rows of Dynamic Sparse Learning). Both create rows lazily with the
// deterministic initialiser of their spec, apply the sparse optimizer on Push, and move rows
// as opaque per-row records for checkpoints and resharding.
//
// Serialised section (checkpoint shards): "EMBR" magic, version 2, the spec, the row count, then
// per row (key u64, record length u32, record bytes). The record layout belongs to the kind.
//
// Thread-compatible: callers serialise access (ps::Shard holds a mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ember/common/status.h"
#include "ember/embedding/types.h"

namespace ember::embedding {

class Table {
 public:
  virtual ~Table() = default;
  static std::unique_ptr<Table> Make(const TableSpec& spec);

  const TableSpec& spec() const { return spec_; }
  int dim() const { return spec_.dim; }
  virtual size_t size() const = 0;
  // Weight values held (rows * dim for dense tables, the mask population for sparse ones).
  virtual uint64_t values() const = 0;
  // Bytes held by rows, optimizer state and the index.
  virtual size_t MemoryBytes() const = 0;

  // out[i*dim ..] = weights of keys[i]; missing rows are created (frozen tables: read zero).
  virtual void Pull(const uint64_t* keys, size_t n, float* out) = 0;
  // Missing rows read as their initial value (frozen: zero) and are not inserted.
  virtual void PullReadOnly(const uint64_t* keys, size_t n, float* out) const = 0;
  // Applies the optimizer with grads[i*dim ..] to keys[i] (keys unique within a call).
  virtual void Push(const uint64_t* keys, size_t n, const float* grads) = 0;

  // fn(key, weights[dim]) for every row, masked entries of sparse rows as zero.
  virtual void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const = 0;
  // fn(key, record) for every row; PutRecord inserts or overwrites a row from such a record,
  // refusing one that does not fit this table's spec.
  virtual void ForEachRecord(const std::function<void(uint64_t, std::string_view)>& fn) const = 0;
  virtual Status PutRecord(uint64_t key, std::string_view record) = 0;

  // Method state beyond the rows, kept with them in checkpoints and resharded by key: a flags
  // word and key-addressed entries (DSL: whether growth is being collected, and each row's
  // collected |gradient|). Dense tables have none.
  virtual uint32_t StateFlags() const { return 0; }
  virtual void ForEachStateEntry(const std::function<void(uint64_t, std::string_view)>& fn) const { (void)fn; }
  virtual Status PutStateFlags(uint32_t flags) {
    return flags == 0 ? Status::Ok() : Status::Corruption("state flags on a table without method state");
  }
  virtual Status PutStateEntry(uint64_t key, std::string_view entry) {
    (void)key;
    (void)entry;
    return Status::Corruption("state entry on a table without method state");
  }

  void AppendTo(std::string* out) const;
  // Parses one table section from `in`, advancing it; names `source` in errors.
  static Result<std::unique_ptr<Table>> ParseFrom(std::string_view* in, const std::string& source);
  // Parses one table section into tables the caller chooses (restores that place rows straight
  // into their destination tables): begin(spec) once before the rows, route(spec, key) for every
  // row and state entry (null: skipped), flags(spec, state flags) once after the rows.
  struct Sink {
    std::function<Status(const TableSpec&)> begin;
    std::function<Result<Table*>(const TableSpec&, uint64_t key)> route;
    std::function<Status(const TableSpec&, uint32_t flags)> flags;
  };
  static Status ParseInto(std::string_view* in, const std::string& source, const Sink& sink);

  // Initial weights of a key under spec (dim floats, before any sparse mask).
  static void InitRow(const TableSpec& spec, uint64_t key, float* weights);

 protected:
  explicit Table(const TableSpec& spec) : spec_(spec) {}
  TableSpec spec_;
};

}  // namespace ember::embedding
