// The MPI rendezvous of `mpirun -np N ember train`: the world communicator, split into servers
// and workers; the workers' all-reduce over MPI, or NCCL where the build has it and a GPU is
// visible ("auto") or where asked for ("nccl").
#include <mpi.h>

#include "ember/launcher/rendezvous.h"
#include "ember/workers/mpi_collective.h"

namespace ember::launcher {
namespace {

Status MpiError(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::Ok();
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return Status::Internal(std::string(what) + ": " + std::string(text, static_cast<size_t>(len)));
}

class MpiRendezvous final : public Rendezvous {
 public:
  MpiRendezvous() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiRendezvous() override {
    if (!finished_) return;  // a failed rank leaves without waiting; mpirun ends the job
    collective_.reset();
    mpi_.reset();
    if (group_ != MPI_COMM_NULL) MPI_Comm_free(&group_);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status Broadcast(std::string* bytes, int root) override {
    return MpiError(MPI_Bcast(bytes->data(), static_cast<int>(bytes->size()), MPI_CHAR, root, MPI_COMM_WORLD),
                    "MPI_Bcast");
  }
  Result<std::vector<std::string>> AllGather(const std::string& mine) override {
    int len = static_cast<int>(mine.size());
    std::vector<int> lens(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    EMBER_RETURN_IF_ERROR(
        MpiError(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather"));
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[static_cast<size_t>(r)] = total;
      total += lens[static_cast<size_t>(r)];
    }
    std::string all(static_cast<size_t>(total), '\0');
    EMBER_RETURN_IF_ERROR(MpiError(
        MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD),
        "MPI_Allgatherv"));
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r)
      out.push_back(all.substr(static_cast<size_t>(offsets[static_cast<size_t>(r)]),
                               static_cast<size_t>(lens[static_cast<size_t>(r)])));
    return out;
  }
  Status Barrier() override { return MpiError(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  Result<workers::Collective*> SplitWorkers(int first_worker, const std::string& kind, std::string* name) override {
    const bool worker = rank_ >= first_worker;
    EMBER_RETURN_IF_ERROR(MpiError(MPI_Comm_split(MPI_COMM_WORLD, worker ? 1 : 0, rank_, &group_), "MPI_Comm_split"));
    if (!worker) return static_cast<workers::Collective*>(nullptr);
    if (kind == "nccl" || (kind == "auto" && workers::HaveNccl())) {
      auto made = workers::MakeNcclCollective(group_);
      if (made.ok()) {
        collective_ = std::move(made).value();
        if (name) *name = "NCCL";
        return collective_.get();
      }
      if (kind == "nccl") return made.status().WithContext("train.collective = \"nccl\"");
    }
    mpi_ = std::make_unique<workers::MpiCollective>(group_);
    if (name) *name = "MPI";
    return static_cast<workers::Collective*>(mpi_.get());
  }
  void Finish() override { finished_ = true; }

 private:
  int rank_ = 0, size_ = 1;
  MPI_Comm group_ = MPI_COMM_NULL;
  std::unique_ptr<workers::Collective> collective_;
  std::unique_ptr<workers::MpiCollective> mpi_;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<Rendezvous>> MakeMpiRendezvous() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) EMBER_RETURN_IF_ERROR(MpiError(MPI_Init(nullptr, nullptr), "MPI_Init"));
  // Errors come back as codes (turned into a Status), not as MPI's default abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::unique_ptr<Rendezvous>(new MpiRendezvous());
}

}  // namespace ember::launcher
