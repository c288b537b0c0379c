// One rank of a cluster job (job.h) with ps.servers = k: ranks 0..k-1 serve shards (PsServer),
// ranks k..N-1 train (RemoteClient to every server, dense gradients all-reduced among the
// workers, each worker a 1/W share of the batches) through RunJob. Every step's pushes are
// applied before the step's all-reduce completes, so each step's pulls see every worker's
// previous updates (sync).
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <ostream>
#include <sstream>

#include "ember/common/sysinfo.h"
#include "ember/launcher/job.h"
#include "ember/monitoring/exporter.h"
#include "ember/ps/auth.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ember/workers/table_metrics.h"

namespace ember::launcher {
namespace {

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

std::string Endpoint(const RunConfig& c, int port) {
  std::string host = c.ps_bind;
  if (host == "0.0.0.0" || host == "::") {
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    host = name;
  }
  return host + ":" + std::to_string(port);
}

ps::ServerOptions ServerOptionsOf(const RunConfig& c, int shard, int servers, int workers, const std::string& secret) {
  ps::ServerOptions o;
  o.bind = c.ps_bind;
  o.shard_index = shard;
  o.num_shards = servers;
  o.secret = secret;
  o.workers = static_cast<uint32_t>(workers);
  o.checkpoint_root = c.checkpoint_dir;
  o.timeout_s = c.ps_timeout_s;
  o.idle_timeout_s = c.ps_idle_timeout_s;
  o.max_payload = static_cast<uint32_t>(c.ps_max_frame_bytes);
  o.max_buffered_bytes = static_cast<uint64_t>(c.ps_max_buffered_bytes);
  return o;
}

// A server's metrics: its shard's tables (rows, bytes), its connections and refusals.
void WatchServer(ps::PsServer* srv, int rank, monitoring::MetricsExporter* exporter) {
  auto last = std::make_shared<std::array<uint64_t, 5>>();  // counters at the previous scrape
  exporter->registry().AddCollector([srv, rank, last](monitoring::Recorder& r) {
    // One shard's view (skew needs every shard: the lead worker reports it).
    auto stats = srv->shard().Stats();
    uint64_t rows = 0;
    for (auto& t : stats) rows += t.rows;
    workers::RecordTableMetrics(stats, {}, &r);
    r.SetGauge("shard_rows", static_cast<double>(rows), {{"shard", std::to_string(rank)}});
    auto& k = srv->counters();
    const std::array<uint64_t, 5> now = {k.connections.load(), k.auth_failures.load(), k.refused_frames.load(),
                                         k.timeouts.load(), k.handshake_evictions.load()};
    const char* names[5] = {"ps_server_connections_total", "ps_server_auth_failures_total",
                            "ps_server_refused_frames_total", "ps_server_timeouts_total",
                            "ps_server_handshake_evictions_total"};
    for (size_t i = 0; i < 5; ++i) r.AddCounter(names[i], static_cast<double>(now[i] - (*last)[i]));
    *last = now;
    r.SetGauge("ps_server_buffered_bytes", static_cast<double>(k.buffered_bytes.load()));
  });
}

// A server rank: serves until the lead worker shuts the servers down.
Result<RunMetrics> Serve(const RunConfig& c, ps::PsServer* server, int rank, int workers, std::ostream& out) {
  if (rank == 0) {
    out << "cluster: " << c.ps_servers << " PS servers, " << workers << " workers, train.mode "
        << workers::TrainModeName(c.trainer.sync.mode);
    if (c.trainer.sync.mode == workers::TrainMode::kBounded) out << " (staleness " << c.trainer.sync.staleness << ")";
    out << std::endl;
  }
  EMBER_ASSIGN_OR_RETURN(auto exporter, StartMetrics(c, "ps-server", rank, out));
  if (exporter) WatchServer(server, rank, exporter.get());
  const Status served = server->WaitForShutdown();
  server->Stop();
  EMBER_RETURN_IF_ERROR(served);
  RunMetrics m;
  m.method = "ps-server";
  m.report = false;
  m.peak_rss_bytes = PeakRssBytes();
  const auto& k = server->counters();
  out << "ps server " << rank << ": " << k.connections.load() << " connections, " << k.auth_failures.load()
      << " refused handshakes, " << k.refused_frames.load() << " refused requests, " << k.timeouts.load()
      << " closed by deadlines, " << k.handshake_evictions.load()
      << " closed in their handshake for a new connection; peak memory " << m.peak_rss_bytes << " bytes" << std::endl;
  return m;
}

Result<RunMetrics> RunRank(const RunConfig& c, Rendezvous* world, std::ostream& out) {
  const int rank = world->rank(), size = world->size(), k = c.ps_servers;
  if (k < 1 || k >= size)
    return Status::InvalidArgument("ps.servers = " + std::to_string(k) + " leaves no worker among " +
                                   std::to_string(size) + " ranks (it must be 1 .. " + std::to_string(size - 1) + ")");
  const bool serving = rank < k;
  const int workers = size - k;

  // The job's PS secret: made by rank 0, handed to every rank by the rendezvous (never on a
  // command line, in the environment or in a file); every PS connection proves it holds it.
  std::string secret(32, '\0');
  if (rank == 0) {
    EMBER_ASSIGN_OR_RETURN(secret, ps::MakeSecret());
  }
  EMBER_RETURN_IF_ERROR(world->Broadcast(&secret, 0));

  // Servers start first; everyone learns every server's endpoint ("" from a server that failed
  // to start, so that the workers fail too instead of waiting for it).
  std::unique_ptr<ps::PsServer> server;
  Status started = Status::Ok();
  std::string mine;
  if (serving) {
    server = std::make_unique<ps::PsServer>(ServerOptionsOf(c, rank, k, workers, secret));
    started = server->Start();
    if (started.ok()) {
      mine = Endpoint(c, server->port());
      out << "ps server " << rank << " listening on " << c.ps_bind << ":" << server->port() << " for " << workers
          << " worker(s)" << std::endl;
    }
  }
  EMBER_ASSIGN_OR_RETURN(auto all, world->AllGather(mine));
  EMBER_RETURN_IF_ERROR(started);
  std::string collective_name;
  EMBER_ASSIGN_OR_RETURN(workers::Collective * collective, world->SplitWorkers(k, c.collective, &collective_name));
  if (serving) return Serve(c, server.get(), rank, workers, out);

  ps::ClientOptions connect;
  for (int i = 0; i < k; ++i) {
    if (all[static_cast<size_t>(i)].empty())
      return Status::Unavailable("ps server " + std::to_string(i) + " failed to start");
    connect.endpoints.push_back(all[static_cast<size_t>(i)]);
  }
  connect.secret = secret;
  connect.worker = static_cast<uint32_t>(collective->rank());
  connect.connect_timeout_s = 60;
  connect.timeout_s = c.ps_timeout_s;
  connect.max_payload = static_cast<uint32_t>(c.ps_max_frame_bytes);
  EMBER_ASSIGN_OR_RETURN(auto client, ps::RemoteClient::Connect(connect));
  const bool lead = collective->rank() == 0;
  if (lead && !IsSessionModel(c)) out << "dense all-reduce: " << collective_name << "\n";
  JobContext ctx;
  ctx.ps = client.get();
  ctx.collective = collective;
  ctx.rank = rank;
  ctx.out = &out;
  EMBER_ASSIGN_OR_RETURN(RunMetrics m, RunJob(c, ctx));
  if (lead) EMBER_RETURN_IF_ERROR(client->Shutdown());
  return m;
}

}  // namespace

bool UnderMpi() { return std::max(EnvInt("OMPI_COMM_WORLD_SIZE"), EnvInt("PMI_SIZE")) > 1; }

Result<RunMetrics> RunClusterRank(const RunConfig& c, Rendezvous* world, std::ostream& out) {
  const int rank = world->rank();
  const std::string role = rank < c.ps_servers ? "server" : "worker " + std::to_string(rank - c.ps_servers);
  auto m = RunRank(c, world, out);
  if (!m.ok()) return m.status().WithContext("rank " + std::to_string(rank) + " (" + role + ")");
  out.flush();
  EMBER_RETURN_IF_ERROR(world->Barrier().WithContext("rank " + std::to_string(rank) + " (" + role + ")"));
  world->Finish();
  return m;
}

}  // namespace ember::launcher
