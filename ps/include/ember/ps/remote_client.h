// RemoteClient: PsClient over TCP to k server ranks (server.h), speaking wire.h.
//
// Key k goes to server ShardOf(k, k_servers), as in the in-process client, so the same rows live
// on the same shard index either way. One call sends one request per server that has keys (all
// requests are written before any reply is read, so the servers work in parallel), then reads
// the replies and scatters rows back. A server that disconnects, answers an error or does not
// answer within `timeout_s` fails the call with a Status naming the server; after a timeout or
// a broken stream every later call fails at once (the replies can no longer be matched).
// Connect() authenticates to every server (auth.h) and checks that each server holds the
// job's secret too. Thread-safe: calls are serialised.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/ps/auth.h"
#include "ember/ps/client.h"
#include "ember/ps/wire.h"

namespace ember::ps {

struct ClientOptions {
  std::vector<std::string> endpoints;  // endpoints[i] = "host:port" of server i
  std::string secret;                  // the job's (auth.h)
  uint32_t worker = kNoWorker;         // this client's worker id (clocked pushes name it)
  double connect_timeout_s = 30;       // connecting is retried this long
  double timeout_s = 300;              // ps.timeout_s: a reply, a handshake
  uint32_t max_payload = wire::kDefaultMaxPayload;
};

class RemoteClient final : public PsClient {
 public:
  static Result<std::unique_ptr<RemoteClient>> Connect(ClientOptions options);
  ~RemoteClient() override;

  int num_shards() const override { return static_cast<int>(endpoints_.size()); }
  Status CreateTables(const std::vector<embedding::TableSpec>& specs) override;
  using PsClient::Pull;
  using PsClient::Push;
  Status Pull(const std::vector<PullSlice>& slices, const PullClock& clock) override;
  Status Push(const std::vector<PushSlice>& slices, const PushClock& clock) override;
  Result<std::vector<TableStats>> Stats() override;
  Result<TableOpResult> Apply(const TableOp& op) override;
  Result<std::vector<ShardFile>> SaveShards(const std::string& dir) override;
  Status LoadShards(const std::string& dir, const std::vector<ShardFile>& files) override;
  // Not over the wire: ember export loads a checkpoint into in-process shards.
  Status ExportTables(embedding::ExportWriter* writer) override;
  // Asks every server to exit (their WaitForShutdown() returns).
  Status Shutdown();
  // Bytes written and read so far (frames included), for benchmarks and metrics.
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }

  struct Impl;

 private:
  RemoteClient() = default;
  // Sends payloads[i] (where set) to server i and reads every reply into replies[i]: all servers
  // at once, each reply read as it comes while other requests are still being written. A reply
  // keeps its header (Payload() in the .cc skips it). `ids`: each server's request id (0: none sent).
  Status RoundTrip(wire::Type type, const std::vector<std::optional<std::string_view>>& payloads,
                   std::vector<ByteBuffer>* replies, std::vector<uint64_t>* ids = nullptr);
  Status Broadcast(wire::Type type, const std::string& payload, std::vector<ByteBuffer>* replies);
  uint32_t Dim(uint32_t table) const;
  // Frees reused buffers that grew past a limit.
  void TrimBuffers();
  std::string Who(size_t server) const;
  // Marks the client unusable (a timeout or a broken stream) and returns `st`.
  Status Broken(Status st);

  ClientOptions options_;
  std::vector<std::string> endpoints_;
  std::unique_ptr<Impl> impl_;
  Status broken_;
  std::mutex mu_;
  std::vector<uint32_t> table_dims_;
  uint64_t next_id_ = 1;
  // Reused from call to call (calls are serialised): the keys' grouping by server, the request
  // payloads and the replies, so that a step allocates nothing once the buffers have grown.
  using Positions = std::vector<std::vector<std::vector<size_t>>>;  // [server][slice] -> indices
  Positions push_positions_;
  std::vector<ByteBuffer> payloads_, replies_;
  // The last two pulls (a training step pushes the keys it pulled; with rows a step old the next
  // step's pull comes first): their tables and keys, their grouping by server, which a push of
  // the same keys reuses instead of hashing every key again, and each server's request id (0:
  // none went there, or the pull failed), which such a push names instead of sending the keys
  // again (wire::UsePullKeys).
  struct PullMemory {
    std::vector<uint32_t> tables;
    std::vector<size_t> sizes;
    std::vector<uint64_t> keys;
    Positions positions;
    std::vector<uint64_t> ids;
  };
  PullMemory pulls_[2];
  int last_pull_ = 0;  // pulls_[last_pull_] is the latest
  // The remembered pull holding exactly these keys (the latest first), or null.
  const PullMemory* PullOf(const std::vector<PushSlice>& slices) const;
  uint64_t bytes_sent_ = 0, bytes_received_ = 0;
};

}  // namespace ember::ps
