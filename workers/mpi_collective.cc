#include "ember/workers/mpi_collective.h"

#include <climits>
#include <string>

namespace ember::workers {
namespace {
Status MpiError(const char* what, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return Status::Unavailable(std::string(what) + ": " + std::string(text, static_cast<size_t>(len)));
}
}  // namespace

MpiCollective::MpiCollective(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Status MpiCollective::AllReduceSum(float* data, size_t n) {
  // MPI counts are ints: reduce in chunks.
  for (size_t off = 0; off < n;) {
    const int count = static_cast<int>(std::min<size_t>(n - off, INT_MAX / 2));
    const int rc = MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_FLOAT, MPI_SUM, comm_);
    if (rc != MPI_SUCCESS) return MpiError("MPI_Allreduce", rc);
    off += static_cast<size_t>(count);
  }
  return Status::Ok();
}

Status MpiCollective::Barrier() {
  const int rc = MPI_Barrier(comm_);
  return rc == MPI_SUCCESS ? Status::Ok() : MpiError("MPI_Barrier", rc);
}

}  // namespace ember::workers
