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
#include "ember/embedding/types.h"

namespace ember::ps {

// Pull rows of one table: out[i * dim ..] receives keys[i]'s weights.
struct PullSlice {
  uint32_t table = 0;
  const uint64_t* keys = nullptr;
  size_t n = 0;
  float* out = nullptr;
  // false: missing rows read as their initial value and are not created (evaluation).
  bool create_missing = true;
};

// Push gradients of one table: grads[i * dim ..] is keys[i]'s gradient.
struct PushSlice {
  uint32_t table = 0;
  const uint64_t* keys = nullptr;
  size_t n = 0;
  const float* grads = nullptr;
};

struct TableStats {
  uint32_t table = 0;
  uint64_t rows = 0;
  uint64_t bytes = 0;
};

// One file a shard wrote into a checkpoint directory.
struct ShardFile {
  std::string name;  // relative to the checkpoint directory
  uint64_t bytes = 0;
  uint64_t checksum = 0;
};

// Stable placement of a key on one of n shards (documented in docs/formats.md).
inline int ShardOf(uint64_t key, int num_shards) {
  return static_cast<int>(Mix64(key ^ 0x2545f4914f6cdd1dULL) % static_cast<uint64_t>(num_shards));
}

class PsClient {
 public:
  virtual ~PsClient() = default;
  virtual int num_shards() const = 0;
  // Declares tables; repeating an identical spec is a no-op, a conflicting one an error.
  virtual Status CreateTables(const std::vector<embedding::TableSpec>& specs) = 0;
  virtual Status Pull(const std::vector<PullSlice>& slices) = 0;
  virtual Status Push(const std::vector<PushSlice>& slices) = 0;
  virtual Result<std::vector<TableStats>> Stats() = 0;
  // Each shard writes its rows and state into `dir` (temp + fsync + rename per file).
  virtual Result<std::vector<ShardFile>> SaveShards(const std::string& dir) = 0;
  // Replaces all rows with those in the shard files (written by any number of shards: rows
  // are re-placed by ShardOf, so N -> M works).
  virtual Status LoadShards(const std::string& dir, const std::vector<ShardFile>& files) = 0;
};

}  // namespace ember::ps
