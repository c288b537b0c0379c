// The NCCL path of mpi_collective.h; without NCCL, the stubs at the end.
#include <string>

#include "ember/workers/mpi_collective.h"

#ifdef EMBER_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace ember::workers {

#ifdef EMBER_HAVE_NCCL
namespace {
Status CudaError(const char* what, cudaError_t e) {
  return Status::Unavailable(std::string(what) + ": " + cudaGetErrorString(e));
}
Status NcclError(const char* what, ncclResult_t r) {
  return Status::Unavailable(std::string(what) + ": " + ncclGetErrorString(r));
}

class NcclCollective final : public Collective {
 public:
  NcclCollective(ncclComm_t comm, cudaStream_t stream, int rank, int size)
      : comm_(comm), stream_(stream), rank_(rank), size_(size) {}
  ~NcclCollective() override {
    if (buffer_) cudaFree(buffer_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status AllReduceSum(float* data, size_t n) override {
    if (n == 0) return Status::Ok();
    if (n > capacity_) {
      if (buffer_) cudaFree(buffer_);
      buffer_ = nullptr;
      if (auto e = cudaMalloc(&buffer_, n * sizeof(float)); e != cudaSuccess) return CudaError("cudaMalloc", e);
      capacity_ = n;
    }
    if (auto e = cudaMemcpyAsync(buffer_, data, n * sizeof(float), cudaMemcpyHostToDevice, stream_); e != cudaSuccess)
      return CudaError("cudaMemcpy to device", e);
    if (auto r = ncclAllReduce(buffer_, buffer_, n, ncclFloat, ncclSum, comm_, stream_); r != ncclSuccess)
      return NcclError("ncclAllReduce", r);
    if (auto e = cudaMemcpyAsync(data, buffer_, n * sizeof(float), cudaMemcpyDeviceToHost, stream_); e != cudaSuccess)
      return CudaError("cudaMemcpy to host", e);
    if (auto e = cudaStreamSynchronize(stream_); e != cudaSuccess) return CudaError("cudaStreamSynchronize", e);
    return Status::Ok();
  }

  Status Barrier() override {
    float x = 0;
    return AllReduceSum(&x, 1);
  }

 private:
  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_, size_;
  float* buffer_ = nullptr;
  size_t capacity_ = 0;
};
}  // namespace

bool HaveNccl() { return true; }

Result<std::unique_ptr<Collective>> MakeNcclCollective(MPI_Comm comm) {
  int rank = 0, size = 1, devices = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (auto e = cudaGetDeviceCount(&devices); e != cudaSuccess || devices == 0)
    return Status::FailedPrecondition("NCCL all-reduce needs a GPU; none is visible");
  if (auto e = cudaSetDevice(rank % devices); e != cudaSuccess) return CudaError("cudaSetDevice", e);
  ncclUniqueId id;
  if (rank == 0)
    if (auto r = ncclGetUniqueId(&id); r != ncclSuccess) return NcclError("ncclGetUniqueId", r);
  MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm);
  ncclComm_t nccl;
  if (auto r = ncclCommInitRank(&nccl, size, id, rank); r != ncclSuccess) return NcclError("ncclCommInitRank", r);
  cudaStream_t stream;
  if (auto e = cudaStreamCreate(&stream); e != cudaSuccess) {
    ncclCommDestroy(nccl);
    return CudaError("cudaStreamCreate", e);
  }
  return std::unique_ptr<Collective>(new NcclCollective(nccl, stream, rank, size));
}

#else

bool HaveNccl() { return false; }

Result<std::unique_ptr<Collective>> MakeNcclCollective(MPI_Comm) {
  return Status::FailedPrecondition("this build has no NCCL (CUDA and NCCL were not found at configure time)");
}

#endif

}  // namespace ember::workers
