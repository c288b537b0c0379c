// Run under mpirun (CTest: `mpirun -np 3`): the MPI and NCCL all-reduce of dense gradients.
#include "ember/workers/mpi_collective.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

namespace ember::workers {
namespace {

TEST(MpiCollective, SumsEveryRanksBuffer) {
  MpiCollective c(MPI_COMM_WORLD);
  ASSERT_GE(c.size(), 2) << "run under mpirun -np 2 or more";
  const int n = c.size();
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((c.rank() + 1) * (i % 7));
  ASSERT_TRUE(c.AllReduceSum(v.data(), v.size()).ok());
  const float ranks = static_cast<float>(n * (n + 1) / 2);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], ranks * static_cast<float>(i % 7)) << i;
  EXPECT_TRUE(c.Barrier().ok());
}

TEST(MpiCollective, NcclSumsOnTheGpuWhereOneIsLent) {
  auto nccl = MakeNcclCollective(MPI_COMM_WORLD);
  if (!HaveNccl()) GTEST_SKIP() << "built without NCCL: " << nccl.status().ToString();
  if (!nccl.ok()) GTEST_SKIP() << "NCCL built, but: " << nccl.status().ToString();
  const int n = (*nccl)->size();
  std::vector<float> v(1 << 20, static_cast<float>((*nccl)->rank() + 1));
  ASSERT_TRUE((*nccl)->AllReduceSum(v.data(), v.size()).ok());
  EXPECT_EQ(v.front(), static_cast<float>(n * (n + 1) / 2));
  EXPECT_EQ(v.back(), static_cast<float>(n * (n + 1) / 2));
}

}  // namespace
}  // namespace ember::workers

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // Only rank 0 prints; every rank runs every test (the collectives need them all).
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
