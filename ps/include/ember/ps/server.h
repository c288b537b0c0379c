// PsServer: one server rank's shard behind the wire protocol (wire.h) over Boost.Asio TCP.
//
// Server i of k hosts shard i: the keys with ShardOf(key, k) == i. A connection first proves it
// belongs to the job (auth.h handshake); until then only a hello is read, at most 92 bytes. Each
// connection's frames are then read, decoded, applied to the shard and answered in order, by a
// transport-free state machine (ServerSession) that an Asio driver feeds, so that tests and the
// fuzzer drive the very same code over memory. A malformed or refused frame is answered with an
// error frame naming what was wrong and the connection is closed; the shard is never touched by
// it. Nothing a peer sends makes the server allocate more than twice what it has received
// (payload buffers grow with the bytes read, all connections together under
// `max_buffered_bytes`), and every read has a deadline. Binds to loopback unless told otherwise.
// Thread-safe: connections run on a pool of threads; the shard's own lock serialises rows.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ember/common/env.h"
#include "ember/common/status.h"
#include "ember/ps/auth.h"
#include "ember/ps/shard.h"
#include "ember/ps/wire.h"

namespace ember::ps {

struct ServerOptions {
  std::string bind = "127.0.0.1";
  int port = 0;  // 0: ephemeral (see port())
  int threads = 2;
  int shard_index = 0;
  int num_shards = 1;
  // The job's secret (auth.h); at least kMinSecretBytes. Start() refuses to serve without one.
  std::string secret;
  // The job's workers (ids 0 .. workers-1), fixed for the server's life; 0: learned from the
  // first clocked push (tests and tools). With a fixed world a push without a clock is refused.
  uint32_t workers = 0;
  // save/load read and write only inside this directory (and below); empty: refused.
  std::string checkpoint_root;
  Env* env = nullptr;  // shard files go through it (nullptr: PosixEnv()); must outlive the server
  uint32_t max_payload = wire::kDefaultMaxPayload;  // one frame's payload
  uint64_t max_buffered_bytes = uint64_t{2} << 30;  // request payloads held by all connections
  // A handshake and a frame must arrive whole within timeout_s of their first byte; an
  // authenticated connection may sit idle between frames for idle_timeout_s; a worker whose
  // connection closed before the job's shutdown fails WaitForShutdown after timeout_s.
  double timeout_s = 300;
  double idle_timeout_s = 3600;
  // Connections in their handshake at once; past it a new connection closes the oldest of
  // them, so that peers without the secret cannot hold the descriptors workers need (a worker's
  // handshake takes one round trip).
  size_t max_handshaking = 1024;
};

// Counters since the server started (metrics: ember_ps_*).
struct ServerCounters {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> auth_failures{0};    // handshakes refused (no hello, bad MAC, bad worker)
  std::atomic<uint64_t> refused_frames{0};   // malformed or refused requests of authenticated peers
  std::atomic<uint64_t> timeouts{0};         // connections closed by a read deadline
  std::atomic<uint64_t> internal_errors{0};  // requests that threw (answered with an error)
  // Connections closed before their handshake ended to make room for a new one (past
  // ServerOptions::max_handshaking at once).
  std::atomic<uint64_t> handshake_evictions{0};
  std::atomic<uint64_t> buffered_bytes{0};  // now
};

class PsServer {
 public:
  explicit PsServer(ServerOptions options);
  ~PsServer();
  Status Start();
  // Stops accepting and serving; idempotent.
  void Stop();
  // Blocks until a client sent kShutdown (OK) or Stop() was called (OK), or until a worker's
  // connection has been closed for timeout_s without a shutdown (Unavailable, naming it).
  Status WaitForShutdown();
  int port() const;
  Shard& shard() { return shard_; }
  const ServerOptions& options() const { return options_; }
  ServerCounters& counters() { return counters_; }
  // Answers one decoded request from `worker` (kNoWorker: not a worker): the reply payload, or
  // an error. Public for tests and the fuzzer; connections call it.
  Result<std::string> Handle(wire::Type type, std::string_view payload, uint32_t worker = kNoWorker);
  // A decoded pull's reply (its wait_for already met), into *out (replaced).
  Status Pull(const wire::PullRequest& req, ByteBuffer* out);
  // Applies a decoded push (its keys resolved) from the connection of `worker`.
  Status Push(const wire::PushRequest& req, uint32_t worker);
  // Buffer accounting of request payloads across connections.
  bool Reserve(uint64_t bytes);
  void Release(uint64_t bytes);
  // Worker connections coming and going (ServerSession).
  void WorkerJoined(uint32_t worker);
  void WorkerLeft(uint32_t worker);
  void RequestShutdown();

  struct Impl;  // opaque (Asio stays out of this header)

 private:
  Env* env() const { return options_.env ? options_.env : PosixEnv(); }
  // `dir` resolved inside checkpoint_root, or an error naming it.
  Result<std::string> ConfinedDir(const std::string& dir) const;

  ServerOptions options_;
  Shard shard_;
  ServerCounters counters_;
  std::unique_ptr<Impl> impl_;
  std::mutex presence_mu_;
  std::map<uint32_t, int> live_;                                    // worker -> open connections
  std::map<uint32_t, std::chrono::steady_clock::time_point> left_;  // workers with none, since
};

// One connection's protocol state, without a transport: the driver reads into next() what it
// asks for, calls Received(), and writes what comes back; every call on one strand. An Output
// with `park` is a pull waiting for the shard's clock to reach `wait_for`: the driver registers
// with Shard::WhenClock and calls Unpark() (on its strand) when it fires.
class ServerSession {
 public:
  enum class Phase { kHandshake, kIdle, kFrame, kParked, kClosed };
  struct Output {
    std::string head;       // a frame's header (and small payloads)
    std::string body;       // a reply's payload, written after head (not copied behind it)
    std::string_view bulk;  // or a pull's rows: the session's buffer, valid until its next call
    bool close = false;     // close after writing
    bool park = false;
    uint64_t wait_for = 0;
  };
  explicit ServerSession(PsServer* server);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // The challenge, to write before anything is read.
  Output Start();
  // Where the next bytes go and how many are wanted (0 while parked, closed or writing).
  char* next();
  size_t want() const;
  // n bytes landed at next().
  Output Received(size_t n);
  // The parked pull's reply (after wake).
  Output Unpark();
  // The last Output was written (its bulk is no longer read): an outsized reply buffer is freed.
  void Sent();
  // The transport closed: nothing more is read or sent, and a worker's departure is noted
  // (idempotent; the destructor calls it).
  void Closed();
  Phase phase() const { return phase_; }
  uint32_t worker() const { return worker_; }
  bool authenticated() const { return authenticated_; }

 private:
  Output OnFrame();
  Output Refuse(const Status& st, bool auth_failure);
  Output Reply(wire::Type type, Result<std::string> reply);
  Output ReplyToPull();
  void Grow();
  void ReleaseBuffer();

  PsServer* server_;
  Phase phase_ = Phase::kHandshake;
  bool authenticated_ = false;
  bool left_ = false;
  uint32_t worker_ = kNoWorker;
  Nonce nonce_{};
  uint8_t header_[wire::kHeaderBytes];
  size_t header_have_ = 0;
  wire::Header current_;
  ByteBuffer payload_;
  size_t payload_have_ = 0;
  ByteBuffer reply_;  // a pull's reply
  uint64_t reserved_ = 0;
  wire::PullRequest pull_;
  uint64_t pull_id_ = 0;         // pull_'s request id once decoded (a push may name its keys), else 0
  wire::PullRequest prev_pull_;  // the pull before (with rows a step old, a step's push follows the next pull)
  uint64_t prev_pull_id_ = 0;
};

}  // namespace ember::ps
