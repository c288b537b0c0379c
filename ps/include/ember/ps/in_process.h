// InProcessClient: PsClient over shards hosted in this process (the embedded default).
//
// With one shard, slices go straight to it; with several, keys are grouped by ShardOf and each
// shard is called once per slice. Thread-safe (shards lock).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "ember/common/env.h"
#include "ember/ps/client.h"
#include "ember/ps/shard.h"

namespace ember::ps {

class InProcessClient final : public PsClient {
 public:
  // Shard files are written and read through `env` (which must outlive the client).
  explicit InProcessClient(int num_shards, Env* env = PosixEnv());

  int num_shards() const override { return static_cast<int>(shards_.size()); }
  Status CreateTables(const std::vector<embedding::TableSpec>& specs) override;
  using PsClient::Pull;
  using PsClient::Push;
  Status Pull(const std::vector<PullSlice>& slices, const PullClock& clock) override;
  Status Push(const std::vector<PushSlice>& slices, const PushClock& clock) override;
  Result<std::vector<TableStats>> Stats() override;
  Result<TableOpResult> Apply(const TableOp& op) override;
  Result<std::vector<ShardFile>> SaveShards(const std::string& dir) override;
  Status LoadShards(const std::string& dir, const std::vector<ShardFile>& files) override;
  Status ExportTables(embedding::ExportWriter* writer) override;

  Shard& shard(int i) { return *shards_[i]; }

 private:
  // Groups keys by shard; for each shard with keys, fills keys_scratch_ with them, sizes
  // rows_scratch_ and calls fn(shard, positions in the slice, dim). Caller holds scratch_mu_.
  using ShardFn = std::function<Status(Shard&, const std::vector<size_t>&, size_t)>;
  // A push under a training clock: every shard gets its share (possibly none) through PushStep.
  Status PushClocked(const std::vector<PushSlice>& slices, const PushClock& clock);
  Status ForEachShard(uint32_t table, const uint64_t* keys, size_t n, const char* what, const ShardFn& fn);

  Env* env_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<uint32_t> table_dims_;  // by table id; 0 = undeclared
  std::mutex scratch_mu_;
  std::vector<std::vector<size_t>> order_;
  std::vector<uint64_t> keys_scratch_;
  std::vector<float> rows_scratch_;
  std::vector<uint8_t> own_scratch_;
};

// A checkpoint file's bytes, after checking its size and checksum against the manifest's entry
// (a Corruption error naming the file otherwise).
Result<std::string> ReadVerifiedFile(const std::string& dir, const ShardFile& f, Env* env = PosixEnv());
// One shard's tables by id.
using ShardTables = std::map<uint32_t, std::unique_ptr<embedding::Table>>;
// Restore: reads and verifies the shard files of a checkpoint and places every row (and state
// entry) straight into the tables of shard ShardOf(key, num_shards) — of every shard, or with
// only >= 0 of that shard alone (out then has one element). Nothing is installed: the caller swaps
// the tables in once every file has been read, so a bad file changes nothing.
Status BuildShardTables(const std::string& dir, const std::vector<ShardFile>& files, int num_shards, int only,
                        std::vector<ShardTables>* out, Env* env = PosixEnv());
// Reads the shard files of a checkpoint, appending every table section to *tables.
// Verifies each file's size and checksum before parsing.
Status ReadShardFiles(const std::string& dir, const std::vector<ShardFile>& files,
                      std::vector<std::unique_ptr<embedding::Table>>* tables, Env* env = PosixEnv());

}  // namespace ember::ps
