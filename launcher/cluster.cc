// `mpirun -np N ember train --config run.toml` with ps.servers = k: ranks 0..k-1 serve shards
// (PsServer), ranks k..N-1 train (RemoteClient to every server, dense gradients all-reduced over
// MPI among the workers, each worker a 1/W share of the batches). Endpoints are exchanged with
// MPI_Allgather. Every step's pushes are applied before the step's all-reduce completes, so each
// step's pulls see every worker's previous updates (sync). A rank that fails prints its rank and
// error and aborts the job (mpirun then exits non-zero naming it).
#include <mpi.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <ostream>
#include <sstream>

#include "ember/common/file.h"
#include "ember/common/sysinfo.h"
#include "ember/data/criteo.h"
#include "ember/data/prefetch.h"
#include "ember/data/sharded.h"
#include "ember/launcher/commands.h"
#include "ember/monitoring/exporter.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ember/workers/mpi_collective.h"
#include "ember/workers/table_metrics.h"

namespace ember::launcher {
namespace {

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

[[noreturn]] void Abort(int rank, const std::string& role, const Status& st) {
  std::cerr << "ember: rank " << rank << " (" << role << ") failed: " << st.ToString() << std::endl;
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
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
}  // namespace

bool UnderMpi() { return std::max(EnvInt("OMPI_COMM_WORLD_SIZE"), EnvInt("PMI_SIZE")) > 1; }

Result<RunMetrics> RunTrainCluster(const RunConfig& c, std::ostream& out) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int k = c.ps_servers;
  if (k < 1 || k >= size) {
    const Status st =
        Status::InvalidArgument("ps.servers = " + std::to_string(k) + " leaves no worker among " +
                                std::to_string(size) + " ranks (it must be 1 .. " + std::to_string(size - 1) + ")");
    MPI_Finalize();
    return st;
  }
  const bool server = rank < k;
  const std::string role = server ? "server" : "worker";
  const int workers = size - k;

  // The job's PS secret: made by rank 0, handed to every rank over MPI (never on a command line,
  // in the environment or in a file); every PS connection proves it holds it (ps/auth.h).
  std::string secret(32, '\0');
  if (rank == 0) {
    auto made = ps::MakeSecret();
    if (!made.ok()) Abort(rank, role, made.status());
    secret = *made;
  }
  MPI_Bcast(secret.data(), static_cast<int>(secret.size()), MPI_CHAR, 0, MPI_COMM_WORLD);

  // Servers start first; everyone learns every server's endpoint.
  std::unique_ptr<ps::PsServer> ps_server;
  char mine[256] = {};
  if (server) {
    ps::ServerOptions o;
    o.bind = c.ps_bind;
    o.shard_index = rank;
    o.num_shards = k;
    o.secret = secret;
    o.workers = static_cast<uint32_t>(workers);
    o.checkpoint_root = c.checkpoint_dir;
    o.timeout_s = c.ps_timeout_s;
    o.idle_timeout_s = c.ps_idle_timeout_s;
    o.max_payload = static_cast<uint32_t>(c.ps_max_frame_bytes);
    o.max_buffered_bytes = static_cast<uint64_t>(c.ps_max_buffered_bytes);
    ps_server = std::make_unique<ps::PsServer>(o);
    if (Status st = ps_server->Start(); !st.ok()) Abort(rank, role, st);
    std::snprintf(mine, sizeof(mine), "%s", Endpoint(c, ps_server->port()).c_str());
    out << "ps server " << rank << " listening on " << c.ps_bind << ":" << ps_server->port() << " for " << workers
        << " worker(s)" << std::endl;
  }
  std::vector<char> all(static_cast<size_t>(size) * sizeof(mine));
  MPI_Allgather(mine, sizeof(mine), MPI_CHAR, all.data(), sizeof(mine), MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> endpoints;
  for (int i = 0; i < k; ++i) endpoints.emplace_back(all.data() + static_cast<size_t>(i) * sizeof(mine));
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, server ? 0 : 1, rank, &group);

  RunMetrics m;
  if (server) {
    if (rank == 0) {
      out << "cluster: " << k << " PS servers, " << size - k << " workers, train.mode " << c.mode;
      if (c.mode == "bounded") out << " (staleness " << c.staleness << ")";
      out << std::endl;
    }
    // Every rank serves its metrics: a server its shard's tables (rows, bytes) and process.
    auto exporter = StartMetrics(c, "ps-server", rank, out);
    if (!exporter.ok()) Abort(rank, role, exporter.status());
    if (*exporter) {
      ps::PsServer* srv = ps_server.get();
      auto last = std::make_shared<std::array<uint64_t, 4>>();  // counters at the previous scrape
      (*exporter)->registry().AddCollector([srv, rank, last](monitoring::Recorder& r) {
        // One shard's view: its tables and rows (skew needs every shard: worker 0 reports it).
        auto stats = srv->shard().Stats();
        uint64_t rows = 0;
        for (auto& t : stats) rows += t.rows;
        workers::RecordTableMetrics(stats, {}, &r);
        r.SetGauge("shard_rows", static_cast<double>(rows), {{"shard", std::to_string(rank)}});
        auto& k = srv->counters();
        const std::array<uint64_t, 4> now = {k.connections.load(), k.auth_failures.load(), k.refused_frames.load(),
                                             k.timeouts.load()};
        const char* names[4] = {"ps_server_connections_total", "ps_server_auth_failures_total",
                                "ps_server_refused_frames_total", "ps_server_timeouts_total"};
        for (size_t i = 0; i < 4; ++i) r.AddCounter(names[i], static_cast<double>(now[i] - (*last)[i]));
        *last = now;
        r.SetGauge("ps_server_buffered_bytes", static_cast<double>(k.buffered_bytes.load()));
      });
    }
    const Status served = ps_server->WaitForShutdown();
    ps_server->Stop();
    if (!served.ok()) Abort(rank, role, served);
    m.method = "ps-server";
    m.report = false;
    m.peak_rss_bytes = PeakRssBytes();
    const auto& k = ps_server->counters();
    out << "ps server " << rank << ": " << k.connections.load() << " connections, " << k.auth_failures.load()
        << " refused handshakes, " << k.refused_frames.load() << " refused requests, " << k.timeouts.load()
        << " closed by deadlines; peak memory " << m.peak_rss_bytes << " bytes" << std::endl;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Comm_free(&group);
    MPI_Finalize();
    return m;
  }

  const int worker = rank - k;
  ps::ClientOptions connect;
  connect.endpoints = endpoints;
  connect.secret = secret;
  connect.worker = static_cast<uint32_t>(worker);
  connect.connect_timeout_s = 60;
  connect.timeout_s = c.ps_timeout_s;
  connect.max_payload = static_cast<uint32_t>(c.ps_max_frame_bytes);
  m.report = worker == 0;
  std::ostringstream quiet;
  std::ostream& log = worker == 0 ? out : quiet;
  auto run_sessions = [&]() -> Status {
    EMBER_ASSIGN_OR_RETURN(auto d, LoadSessionData(c, log));
    EMBER_ASSIGN_OR_RETURN(auto client, ps::RemoteClient::Connect(connect));
    workers::MpiCollective collective(group);
    EMBER_ASSIGN_OR_RETURN(auto exporter, StartMetrics(c, "train", rank, log));
    EMBER_RETURN_IF_ERROR(
        RunSessionWorker(c, d, client.get(), &collective, exporter ? &exporter->registry() : nullptr, log, &m));
    double samples = static_cast<double>(m.train_samples);
    MPI_Allreduce(MPI_IN_PLACE, &samples, 1, MPI_DOUBLE, MPI_SUM, group);
    m.train_samples = static_cast<uint64_t>(samples);
    m.samples_per_sec = m.train_seconds > 0 ? samples / m.train_seconds : 0;
    log << "trained " << m.train_samples << " examples on " << workers << " workers\n";
    EMBER_RETURN_IF_ERROR(collective.Barrier());
    if (worker == 0) EMBER_RETURN_IF_ERROR(client->Shutdown());
    return Status::Ok();
  };
  auto run = [&]() -> Status {
    if (IsSessionModel(c)) return run_sessions();
    EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
    // The first worker counts field vocabularies (where needed) into the cache; the others then
    // read it instead of counting the file again. A failure aborts the job, releasing the barrier.
    if (worker != 0) MPI_Barrier(group);
    auto resolved = ResolveEmbedding(c, &tc, c.monitoring_port > 0);
    if (worker == 0) MPI_Barrier(group);
    if (!resolved.ok()) return resolved.status();
    if (!resolved->note.empty()) log << resolved->note << "\n";
    EMBER_ASSIGN_OR_RETURN(const std::string resume_from, PrepareResume(c, &tc));
    if (tc.embedding.method == "optembed" && c.valid.empty())
      return Status::InvalidArgument(
          "embedding.method = \"optembed\" needs data.valid (its search scores widths on it)");
    EMBER_ASSIGN_OR_RETURN(auto client, ps::RemoteClient::Connect(connect));
    workers::MpiCollective mpi(group);
    // NCCL where the build has it and a GPU is visible ("auto"), or where asked for ("nccl").
    std::unique_ptr<workers::Collective> nccl;
    if (c.collective == "nccl" || (c.collective == "auto" && workers::HaveNccl())) {
      auto made = workers::MakeNcclCollective(group);
      if (made.ok())
        nccl = std::move(made).value();
      else if (c.collective == "nccl")
        return made.status().WithContext("train.collective = \"nccl\"");
    }
    workers::Collective& collective = nccl ? *nccl : static_cast<workers::Collective&>(mpi);
    log << "dense all-reduce: " << (nccl ? "NCCL" : "MPI") << "\n";
    EMBER_ASSIGN_OR_RETURN(auto exporter, StartMetrics(c, "train", rank, log));
    monitoring::Recorder* recorder = exporter ? &exporter->registry() : nullptr;
    EMBER_ASSIGN_OR_RETURN(auto trainer, workers::Trainer::Create(tc, client.get(), &collective, recorder));
    if (exporter && worker == 0) {  // the whole cluster's tables, shard rows and skew
      ps::PsClient* ps = client.get();
      exporter->registry().AddCollector([ps, infos = trainer->TableInfos()](monitoring::Recorder& r) {
        auto stats = ps->Stats();
        if (stats.ok()) workers::RecordTableMetrics(*stats, infos, &r);
      });
    }
    workers::ProgressOptions progress;
    progress.enabled = worker == 0 && c.progress != "off";
    progress.log_interval_s = c.log_interval_s;
    if (!resume_from.empty()) {
      // The first worker loads the rows onto the servers (any number of them: rows are re-placed);
      // every worker restores the dense model, its optimizer, the step and the data position.
      EMBER_RETURN_IF_ERROR(Resume(trainer.get(), resume_from, /*load_shards=*/worker == 0, log));
      EMBER_RETURN_IF_ERROR(collective.Barrier());
    }
    auto train = [&](int epochs, workers::DataPosition from) -> Status {
      for (int e = static_cast<int>(from.epoch); e < epochs; ++e) {
        auto opts = MakeReaderOptions(c, c.train, true);
        opts.skip_examples = e == from.epoch ? from.examples : 0;  // before the split among workers
        EMBER_ASSIGN_OR_RETURN(auto inner, data::CriteoReader::Open(opts));
        data::ShardedReader reader(std::make_unique<data::PrefetchingReader>(std::move(inner)), worker, workers);
        EMBER_ASSIGN_OR_RETURN(auto stats,
                               trainer->TrainEpoch(&reader, e, epochs, progress,
                                                   CheckpointEvery(trainer.get(), c, e, opts.skip_examples, workers,
                                                                   /*writer=*/worker == 0)));
        m.train_samples += stats.samples;
        m.train_seconds += stats.seconds;
      }
      trainer->set_position({epochs, 0});
      return Status::Ok();
    };
    EMBER_RETURN_IF_ERROR(train(c.epochs, trainer->position()));
    if (tc.embedding.method == "optembed") {
      // The supernet's thresholds are the same on every worker (all-reduced with the model). The
      // first worker searches (stage 2) while the others wait for its widths and thresholds;
      // every worker builds the retraining trainer, the first moves the kept rows on the servers
      // (stage 3), and all retrain.
      const uint32_t next = NextTableId(client->Stats());
      workers::OptEmbedArch arch;
      if (worker == 0) {
        EMBER_ASSIGN_OR_RETURN(arch, SearchOptEmbedStage(trainer.get(), c, resolved->budget_bytes, &m, log));
      }
      const int F = static_cast<int>(tc.fields.size());
      arch.widths.resize(static_cast<size_t>(F));
      arch.thresholds.resize(static_cast<size_t>(F));
      MPI_Bcast(arch.widths.data(), F, MPI_INT, 0, group);
      MPI_Bcast(arch.thresholds.data(), F, MPI_FLOAT, 0, group);
      EMBER_ASSIGN_OR_RETURN(auto retrainer, MakeOptEmbedRetrainer(tc, arch, next, client.get(), &collective, recorder,
                                                                   worker == 0 ? trainer.get() : nullptr,
                                                                   c.retrain_init == "fresh", trainer->step()));
      EMBER_RETURN_IF_ERROR(collective.Barrier());
      trainer = std::move(retrainer);
      m.train_samples = 0;
      m.train_seconds = 0;
      EMBER_RETURN_IF_ERROR(train(c.retrain_epochs > 0 ? c.retrain_epochs : c.epochs, {}));
    }
    double samples = static_cast<double>(m.train_samples);
    MPI_Allreduce(MPI_IN_PLACE, &samples, 1, MPI_DOUBLE, MPI_SUM, group);
    m.train_samples = static_cast<uint64_t>(samples);  // every worker's
    m.samples_per_sec = m.train_seconds > 0 ? samples / m.train_seconds : 0;
    log << "trained " << static_cast<uint64_t>(samples) << " samples on " << workers << " workers in "
        << m.train_seconds << " s (" << static_cast<uint64_t>(m.samples_per_sec) << " samples/s)\n";
    if (worker == 0) {
      m.method = tc.embedding.method;
      m.budget_bytes = resolved->budget_bytes;
      EMBER_RETURN_IF_ERROR(RecordTables(client.get(), &m));
      log << "tables hold " << m.table_rows << " rows, " << m.param_bytes << " parameter bytes\n";
    }
    // The checkpoint first: a failing evaluation must not cost the trained model.
    if (worker == 0 && !c.checkpoint_dir.empty()) {
      EMBER_ASSIGN_OR_RETURN(m.checkpoint, WriteCheckpoint(trainer.get(), c));
      log << "checkpoint written to " << m.checkpoint << "\n";
    }
    if (worker == 0 && !c.test.empty()) EMBER_RETURN_IF_ERROR(EvaluateTest(trainer.get(), c, &m, log));
    EMBER_RETURN_IF_ERROR(collective.Barrier());
    if (worker == 0) EMBER_RETURN_IF_ERROR(client->Shutdown());
    return Status::Ok();
  };
  if (Status st = run(); !st.ok()) Abort(rank, role, st);
  m.peak_rss_bytes = PeakRssBytes();
  log.flush();
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm_free(&group);
  MPI_Finalize();
  return m;
}

}  // namespace ember::launcher
