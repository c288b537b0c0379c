// Table: the storage of one table (or of one table's shard) behind the PS.
//
// Two kinds implement it (TableSpec::kind): RowStore (dense rows) and SparseRowStore
// (element-masked rows of Dynamic Sparse Learning). Both create rows lazily with the
// deterministic initialiser of their spec, apply the sparse optimizer on Push, and move rows
// as opaque per-row records for checkpoints and resharding.
//
// Serialised section (checkpoint shards): "EMBR" magic, version 4, the spec, the row count, then
// per row (key u64, record length u32, record bytes), the method state and the lifecycle state
// (docs/formats.md). The record layout belongs to the kind.
//
// Thread-compatible: callers serialise access (ps::Shard holds a mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/admission.h"
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
  // Every row back to its initial weights (InitRow of its key) and fresh optimizer state; keys,
  // sparse rows' masks, sighting counts and touch steps stay. Returns the rows reset.
  virtual uint64_t ResetRows() = 0;

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

  // Feature admission and expiry (spec().lifecycle; without one these are plain Pull/Push).
  // TrainPull: a training pull at step `now` of the shard's clock. Each key without a row is
  // counted; own[i] = 1 where keys[i] has (or is now given) its own row, whose weights go to
  // out; 0 where it is not admitted (out rows zero: the worker reads its fallback row instead).
  // A frozen table (OptEmbed retraining) admits nothing: own[i] = 0 for its pruned values.
  void TrainPull(const uint64_t* keys, size_t n, float* out, uint8_t* own, uint64_t now);
  // An evaluation pull: nothing is created or counted; own[i] = 0 where an admitting table has
  // no row for keys[i] (out rows zero), else the row or, without admission, its initial value.
  void EvalPull(const uint64_t* keys, size_t n, float* out, uint8_t* own) const;
  // A training push at step `now`. With admission, gradients of keys without a row are dropped
  // (a push never admits); without, missing rows are created as by Push.
  void TrainPush(const uint64_t* keys, size_t n, const float* grads, uint64_t now);
  // Evicts the rows (and their optimizer state) that no training pull or push touched at steps
  // >= now - expire_after; returns how many. A no-op without expiry.
  uint64_t Expire(uint64_t now);
  // Expire(now) when at least max(1, expire_after / 8) steps passed since the last scan (the
  // shards call this as their clock advances: eviction in batches, not per step).
  uint64_t MaybeExpire(uint64_t now);
  struct LifecycleCounts {
    uint64_t admitted = 0;   // values given their own row by admission
    uint64_t evicted = 0;    // rows expired
    uint64_t fallbacks = 0;  // training lookups answered "no row"
    uint64_t dropped = 0;    // pushed gradient rows dropped for want of a row
    size_t counter_bytes = 0;
  };
  LifecycleCounts lifecycle_counts() const;
  uint32_t Sightings(uint64_t key) const;
  // Step of the last training pull or push of key's row; false if the row is absent or untracked.
  virtual bool Touched(uint64_t key, uint64_t* step) const = 0;
  virtual bool Contains(uint64_t key) const = 0;
  // own[i] for a table without admission: 1, or for a frozen table whether keys[i] has a row.
  void MarkOwn(const uint64_t* keys, size_t n, uint8_t* own) const;
  // Restore of the lifecycle state: an exact sighting count; a sketch added to this table's.
  Status PutSightings(uint64_t key, uint32_t count);
  Status MergeSketch(std::string_view bytes);

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
    // The table's count-min sketch, once: every destination merges (adds) it, so counts never
    // drop below their total over the files (null: dropped).
    std::function<Status(const TableSpec&, std::string_view sketch)> sketch;
  };
  static Status ParseInto(std::string_view* in, const std::string& source, const Sink& sink);

  // Initial weights of a key under spec (dim floats, before any sparse mask).
  static void InitRow(const TableSpec& spec, uint64_t key, float* weights);

 protected:
  explicit Table(const TableSpec& spec);
  // Rows last touched before `before` are evicted (expiry tracking on); returns how many.
  virtual uint64_t EvictIdle(uint64_t before) = 0;
  virtual void ForEachTouched(const std::function<void(uint64_t key, uint64_t step)>& fn) const = 0;
  virtual Status PutTouched(uint64_t key, uint64_t step) = 0;

  TableSpec spec_;
  // Expiry: stores record now_ as the touch step of every row a Pull or Push finds or creates.
  bool track_ = false;
  uint64_t now_ = 0;

 private:
  bool Admit(uint64_t key);
  void WriteLifecycle(std::string* out) const;
  std::unique_ptr<SightingCounter> counter_;  // admitting tables
  uint64_t next_scan_ = 0;
  LifecycleCounts counts_;
  std::vector<uint32_t> picked_;
  std::vector<uint64_t> picked_keys_;
  std::vector<float> picked_rows_;
};

}  // namespace ember::embedding
