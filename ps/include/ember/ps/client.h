// PsClient: the worker's view of the parameter servers.
//
// Rows live in shards; key k lives on shard ShardOf(k, num_shards()). A client moves batches:
// one Pull or Push call carries every table's keys for a step, and an implementation sends at
// most one request per shard per call. Keys within one slice must be unique (workers
// de-duplicate and sum gradients first). The in-process client (in_process.h) hosts shards in
// this process; the remote client (issue: distributed training) speaks the RPC protocol to
// server ranks hosting the very same Shard class.
//
// Thread-safety: implementations are thread-safe; concurrent Pull/Push on the same rows are
// serialised per shard.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/hash.h"
#include "ember/common/status.h"
#include "ember/embedding/export.h"
#include "ember/embedding/types.h"

namespace ember::ps {

// Pull rows of one table: out[i * stride ..] receives keys[i]'s dim weights.
struct PullSlice {
  uint32_t table = 0;
  const uint64_t* keys = nullptr;
  size_t n = 0;
  float* out = nullptr;
  size_t stride = 0;  // floats between rows in out; 0 = the table's dim
  // false: missing rows read as their initial value and are not created (evaluation).
  bool create_missing = true;
  // If given: own[i] = 1 where keys[i] has its own row, 0 where a table with feature admission
  // has none for it (not admitted yet; its out row is zero and the worker reads its fallback).
  uint8_t* own = nullptr;
};

// Push gradients of one table: grads[i * stride ..] is keys[i]'s gradient (dim floats).
struct PushSlice {
  uint32_t table = 0;
  const uint64_t* keys = nullptr;
  size_t n = 0;
  const float* grads = nullptr;
  size_t stride = 0;  // floats between rows in grads; 0 = the table's dim
};

// Training clocks (train.mode, docs/distributed.md "Training modes"). Worker w of W numbers its pushes by
// training step. A shard's clock is the step below which every worker's pushes are applied:
// with `aggregate` (sync), a step's pushes from all W workers are summed on the shard (in worker
// order, so the sum is deterministic), scaled by 1/W (each worker's gradient is of its own
// batch mean) and applied as one update once the last arrives; without it (async, bounded),
// each push is applied on arrival and the clock is the slowest worker's. With workers > 0 a push
// reaches every shard, even one without keys, so that every shard counts the step.
struct PushClock {
  uint32_t worker = 0;
  uint32_t workers = 0;  // 0: untracked (applied on arrival, no clock)
  uint64_t step = 0;
  bool aggregate = false;
};

// A pull is answered once the shard's clock has reached `wait_for` (0: at once). `clock`, if
// given, receives the lowest clock of the shards that answered (for the staleness gauge).
struct PullClock {
  uint64_t wait_for = 0;
  uint64_t* clock = nullptr;
};

struct TableStats {
  uint32_t table = 0;
  uint64_t rows = 0;
  uint64_t values = 0;  // weight values held (sparse tables: kept entries)
  uint64_t bytes = 0;   // memory held: rows, optimizer state, index
  int dim = 0;
  embedding::TableKind kind = embedding::TableKind::kDense;
  embedding::Precision precision = embedding::Precision::kFp32;
  std::vector<uint64_t> shard_rows;  // rows on each shard, by shard index (for skew)
  // Feature admission and expiry, totals since the shards started: values admitted, rows
  // evicted, training lookups answered "no row" (Table::LifecycleCounts).
  uint64_t admitted = 0;
  uint64_t evicted = 0;
  uint64_t fallbacks = 0;
  // Parameter bytes held: each stored weight at its precision, plus sparse rows' masks.
  uint64_t param_bytes() const {
    return values * static_cast<uint64_t>(embedding::BytesPerValue(precision)) +
           (kind == embedding::TableKind::kSparse ? rows * static_cast<uint64_t>((dim + 7) / 8) : 0);
  }
};

// Server-side maintenance that compression methods run on whole tables (each shard applies it
// to its own rows; results are summed over shards).
struct TableOp {
  enum class Kind {
    kCountAbove,     // rows of `table` whose L1 norm exceeds `value`
    kCopyRows,       // rows of `table` with L1 > value -> `dst_table` (its leading dst.dim entries,
                     // or fresh initial values if `reinit`), with fresh optimizer state
    kDropTable,      // frees `table`
    kCollectGrowth,  // sparse `table`: pushes accumulate |gradient| (value != 0) or stop (0)
    kPruneGrow,      // sparse `table`: prune/grow round with fraction `value`
    kResetRows,      // every row of `table` back to its initial value and fresh optimizer state
  };
  Kind kind = Kind::kCountAbove;
  uint32_t table = 0;
  uint32_t dst_table = 0;
  double value = 0;
  bool reinit = false;
  uint64_t seed = 0;
};

struct TableOpResult {
  uint64_t rows = 0;
  uint64_t values = 0;
  uint64_t pruned = 0;
  uint64_t grown = 0;
};

// One file a shard wrote into a checkpoint directory.
struct ShardFile {
  std::string name;  // relative to the checkpoint directory
  uint64_t bytes = 0;
  uint64_t checksum = 0;
};

// Stable placement of a key on one of n shards (documented in docs/formats.md). Only the local
// part counts, so a row and its counterpart in a derived table (same local key) share a shard.
inline int ShardOf(uint64_t key, int num_shards) {
  return static_cast<int>(Mix64(embedding::KeyLocal(key) ^ 0x2545f4914f6cdd1dULL) % static_cast<uint64_t>(num_shards));
}

// Adds shard `shard`'s per-table stats (of num_shards) into *total: sums, and rows per shard.
void MergeShardStats(int shard, int num_shards, const std::vector<TableStats>& part, std::vector<TableStats>* total);

class PsClient {
 public:
  virtual ~PsClient() = default;
  virtual int num_shards() const = 0;
  // Declares tables; repeating an identical spec is a no-op, a conflicting one an error.
  virtual Status CreateTables(const std::vector<embedding::TableSpec>& specs) = 0;
  Status Pull(const std::vector<PullSlice>& slices) { return Pull(slices, PullClock{}); }
  Status Push(const std::vector<PushSlice>& slices) { return Push(slices, PushClock{}); }
  virtual Status Pull(const std::vector<PullSlice>& slices, const PullClock& clock) = 0;
  virtual Status Push(const std::vector<PushSlice>& slices, const PushClock& clock) = 0;
  virtual Result<std::vector<TableStats>> Stats() = 0;
  virtual Result<TableOpResult> Apply(const TableOp& op) = 0;
  // Each shard writes its rows and state into `dir` (temp + fsync + rename per file).
  virtual Result<std::vector<ShardFile>> SaveShards(const std::string& dir) = 0;
  // Replaces all rows with those in the shard files (written by any number of shards: rows
  // are re-placed by ShardOf, so N -> M works).
  virtual Status LoadShards(const std::string& dir, const std::vector<ShardFile>& files) = 0;
  // Adds every table's rows, on every shard, to an export (ember export; embedding/export.h).
  virtual Status ExportTables(embedding::ExportWriter* writer) = 0;
};

}  // namespace ember::ps
