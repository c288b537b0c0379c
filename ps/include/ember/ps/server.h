// PsServer: one server rank's shard behind the wire protocol (wire.h) over Boost.Asio TCP.
//
// Server i of k hosts shard i: the keys with ShardOf(key, k) == i. Each connection's requests are
// read, decoded, applied to the shard and answered in order; connections are served by a pool of
// threads (the shard's own lock serialises row access). A malformed frame is answered with an
// error frame naming what was wrong, and the connection is closed (its stream can no longer be
// trusted); the shard is never touched by it. Binds to loopback unless told otherwise.
#pragma once

#include <memory>
#include <string>

#include "ember/common/status.h"
#include "ember/ps/shard.h"
#include "ember/ps/wire.h"

namespace ember::ps {

struct ServerOptions {
  std::string bind = "127.0.0.1";
  int port = 0;  // 0: ephemeral (see port())
  int threads = 2;
  int shard_index = 0;
  int num_shards = 1;
  uint32_t max_payload = wire::kDefaultMaxPayload;
};

class PsServer {
 public:
  explicit PsServer(ServerOptions options);
  ~PsServer();
  Status Start();
  // Stops accepting and serving; idempotent.
  void Stop();
  // Blocks until a client sent kShutdown or Stop() was called.
  void WaitForShutdown();
  int port() const;
  Shard& shard() { return shard_; }
  // Answers one decoded request (the server's dispatch, public for tests): the reply payload, or
  // an error.
  Result<std::string> Handle(wire::Type type, std::string_view payload);
  // A decoded pull's reply (its wait_for already met).
  Result<std::string> Pull(const wire::PullRequest& req);

  struct Impl;  // opaque (Asio stays out of this header)

 private:
  ServerOptions options_;
  Shard shard_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::ps
