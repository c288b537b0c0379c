// The training job of `ember train`, written once (docs/architecture.md "One job"): RunJob trains
// over a context — the PS client, the workers' all-reduce, the process's rank — and one process
// and a cluster differ only in how that context is built. One process: in-process shards and a
// local collective (RunTrain). A cluster: RunClusterRank over a Rendezvous (MPI under mpirun,
// threads in tests): server ranks host a PsServer, worker ranks connect a RemoteClient to every
// server and call RunJob. Every error is a Status naming the rank; `main` prints it and exits 1.
#pragma once

#include <iosfwd>

#include "ember/launcher/commands.h"
#include "ember/launcher/rendezvous.h"

namespace ember::launcher {

struct JobContext {
  ps::PsClient* ps = nullptr;
  // The workers' dense all-reduce; its rank is the worker's index (worker 0 leads: it counts
  // vocabularies, searches OptEmbed's widths, evaluates, writes checkpoints and reports).
  workers::Collective* collective = nullptr;
  int rank = 0;                 // the process's rank: its metrics port is monitoring.port + rank
  std::ostream* out = nullptr;  // where the lead writes (the other workers are quiet)
};

// The job: CTR (resolve the tables, resume, epochs, OptEmbed's three stages, checkpoint, test) or
// session models (epochs chosen on validation). Returns the lead's metrics (report = true there).
Result<RunMetrics> RunJob(const RunConfig& config, const JobContext& context);

// One rank of a cluster job: ranks < ps.servers serve, the others train.
Result<RunMetrics> RunClusterRank(const RunConfig& config, Rendezvous* world, std::ostream& out);

}  // namespace ember::launcher
