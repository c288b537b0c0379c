// Rendezvous: how the ranks of a cluster job find each other. The cluster job
// (RunClusterRank, job.h) needs exactly this from its world: its rank and size, the job's secret
// from rank 0, every server's endpoint, barriers, and the workers' dense all-reduce. Under
// mpirun it is MPI (MakeMpiRendezvous); in tests every rank is a thread of one process
// (ThreadWorld), with real PS servers on loopback, so the whole cluster path runs in one test.
//
// Every call is collective: every rank makes it, in the same order. A wait has a deadline, so a
// rank that failed does not hang the others forever (MPI's own waits end when mpirun kills the
// job after a rank exits non-zero).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/workers/collective.h"

namespace ember::launcher {

class Rendezvous {
 public:
  virtual ~Rendezvous() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank leaves with rank `root`'s bytes (*bytes must have the same size on every rank).
  virtual Status Broadcast(std::string* bytes, int root) = 0;
  // Every rank's string, in rank order.
  virtual Result<std::vector<std::string>> AllGather(const std::string& mine) = 0;
  virtual Status Barrier() = 0;
  // Splits the world into servers (ranks < first_worker) and workers. Workers get their
  // all-reduce (rank() = worker index), owned by the rendezvous; servers get null. `kind` is
  // train.collective ("auto", "mpi", "nccl"); *name says which was made ("MPI", "NCCL",
  // "threads").
  virtual Result<workers::Collective*> SplitWorkers(int first_worker, const std::string& kind, std::string* name) = 0;
  // Marks the job as finished cleanly (after the last barrier); MPI finalizes only then, so a
  // rank that failed exits without waiting for ranks that never come.
  virtual void Finish() {}
};

// Under mpirun: initialises MPI (once per process) over MPI_COMM_WORLD.
Result<std::unique_ptr<Rendezvous>> MakeMpiRendezvous();

// `size` ranks in one process; Member(r) is used by rank r's thread only. Every wait gives up
// after `timeout` with Unavailable, naming the call.
class ThreadWorld {
 public:
  explicit ThreadWorld(int size, std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~ThreadWorld();
  Rendezvous* Member(int rank);

 private:
  class Member_;
  friend class Member_;
  // Rank `rank` contributes `mine`; everyone leaves with all contributions, in rank order.
  Result<std::vector<std::string>> Exchange(int rank, const std::string& mine, const char* what);

  const int size_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0, departed_ = 0;
  uint64_t generation_ = 0;
  std::unique_ptr<workers::InProcessGroup> group_;
  std::vector<std::unique_ptr<Member_>> members_;
};

}  // namespace ember::launcher
