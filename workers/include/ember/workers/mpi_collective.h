// Dense-gradient all-reduce over MPI (CPU workers) and NCCL (GPU workers), behind Collective.
//
// MpiCollective wraps a communicator of the worker ranks (the launcher splits the world into
// servers and workers). NcclCollective all-reduces on the GPU: host buffers are copied to the
// device, reduced with ncclAllReduce and copied back; its ncclUniqueId travels over MPI. It is
// built when CUDA and NCCL are found (EMBER_HAVE_NCCL; /usr/local/cuda on these machines).
#pragma once

#include <mpi.h>

#include <memory>

#include "ember/workers/collective.h"

namespace ember::workers {

class MpiCollective final : public Collective {
 public:
  // Borrows `comm` (must outlive this).
  explicit MpiCollective(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status AllReduceSum(float* data, size_t n) override;
  Status Barrier() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

// True when this build has the NCCL path.
bool HaveNccl();

// Creates the NCCL collective over the ranks of `comm` (one GPU per rank: device rank %
// device count). Errors when the build lacks NCCL or no GPU is visible.
Result<std::unique_ptr<Collective>> MakeNcclCollective(MPI_Comm comm);

}  // namespace ember::workers
