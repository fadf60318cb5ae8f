//===- StepCommTest.cpp - the collectives a generated step calls ----------===//
//
// runtime/driver/StepComm.h on LocalWorld ranks: each collective along a
// middle dimension (outer > 1) against the definition written out per
// element, local_shard against reduce_scatter's piece, and a step without a
// grid failing with a message instead of crashing.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/LocalWorld.h"
#include "runtime/driver/Ranks.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

using namespace kiln;

namespace {

/// Rank r's value at flat index i: distinct per rank and index.
float value(int rank, int64_t i) { return float(rank * 1000 + i) * 0.5f; }

constexpr int kRanks = 3;
constexpr int64_t kOuter = 2, kInner = 4; // a [2, 3*4] tensor split at dim 1

TEST(StepComm, AllGatherInterleavesRanksAtTheDimension) {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    std::vector<float> piece(kOuter * kInner), full(kOuter * kRanks * kInner);
    for (int64_t i = 0; i < kOuter * kInner; ++i)
      piece[i] = value(world.rank(), i);
    std::string error;
    ASSERT_TRUE(driver::allGather(dp.get(), "dp", piece.data(), full.data(), kOuter, kInner, &error))
        << error;
    for (int64_t o = 0; o < kOuter; ++o)
      for (int r = 0; r < kRanks; ++r)
        for (int64_t j = 0; j < kInner; ++j)
          EXPECT_EQ(full[(o * kRanks + r) * kInner + j], value(r, o * kInner + j));
  });
}

TEST(StepComm, ReduceScatterAndLocalShardAgreeOnPieces) {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    const int64_t n = kOuter * kRanks * kInner;
    std::vector<float> full(n), mine(kOuter * kInner), shard(kOuter * kInner);
    for (int64_t i = 0; i < n; ++i)
      full[i] = value(world.rank(), i);
    std::string error;
    ASSERT_TRUE(
        driver::reduceScatter(dp.get(), "dp", full.data(), mine.data(), kOuter, kInner, &error))
        << error;
    ASSERT_TRUE(driver::localShard(dp.get(), "dp", full.data(), shard.data(), kOuter, kInner, &error));
    for (int64_t o = 0; o < kOuter; ++o)
      for (int64_t j = 0; j < kInner; ++j) {
        int64_t at = (o * kRanks + world.rank()) * kInner + j;
        float sum = 0.0f; // rank order, as the communicator sums
        for (int r = 0; r < kRanks; ++r)
          sum += value(r, at);
        EXPECT_EQ(mine[o * kInner + j], sum);
        EXPECT_EQ(shard[o * kInner + j], full[at]);
      }
  });
}

TEST(StepComm, AllReduceSumAndMax) {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    std::vector<float> in = {value(world.rank(), 0), -value(world.rank(), 1)}, sum(2), max(2);
    std::string error;
    ASSERT_TRUE(driver::allReduce(dp.get(), "dp", in.data(), sum.data(), 2, false, &error)) << error;
    ASSERT_TRUE(driver::allReduce(dp.get(), "dp", in.data(), max.data(), 2, true, &error)) << error;
    EXPECT_EQ(sum[0], value(0, 0) + value(1, 0) + value(2, 0));
    EXPECT_EQ(max[0], value(2, 0));
    EXPECT_EQ(max[1], -value(0, 1));
  });
}

/// Rank r sends (r + p) % 3 rows to rank p (rank 0 sends none to itself);
/// rows of 2 values of T encode (source, destination, index).
template <typename T> void checkAllToAllRows() {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    const int r = world.rank();
    std::vector<int64_t> sendCounts(kRanks), recvCounts(kRanks, -1);
    std::vector<T> rows;
    for (int p = 0; p < kRanks; ++p) {
      sendCounts[p] = (r + p) % 3;
      for (int64_t j = 0; j < sendCounts[p]; ++j)
        rows.insert(rows.end(), {T(r * 10 + p), T(j)});
    }
    const int64_t capacity = 8;
    rows.resize(capacity * 2, T(-1));
    std::vector<T> out(capacity * 2, T(-1));
    std::string error;
    ASSERT_TRUE(driver::allToAll(dp.get(), "dp", rows.data(), sendCounts.data(), out.data(),
                                 recvCounts.data(), capacity, capacity, 2, &error))
        << error;
    int64_t at = 0;
    for (int p = 0; p < kRanks; ++p) {
      EXPECT_EQ(recvCounts[p], (p + r) % 3);
      for (int64_t j = 0; j < recvCounts[p]; ++j, ++at) {
        EXPECT_EQ(out[at * 2], T(p * 10 + r));
        EXPECT_EQ(out[at * 2 + 1], T(j));
      }
    }
    for (; at < capacity; ++at)
      EXPECT_EQ(out[at * 2], T(0)); // zeros after the last row
  });
}

TEST(StepComm, AllToAllMovesVariableRowCounts) { checkAllToAllRows<float>(); }

// Expert parallelism exchanges its per-expert row counts as rows of int64.
TEST(StepComm, AllToAllMovesInt64Rows) { checkAllToAllRows<int64_t>(); }

TEST(StepComm, AllToAllOverCapacityNamesTheRanks) {
  comm::LocalWorld::run(2, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    std::vector<int64_t> sendCounts = {2, 2}, recvCounts(2);
    std::vector<float> rows(4, 1.0f), out(3, 0.0f);
    std::string error;
    EXPECT_FALSE(driver::allToAll(dp.get(), "dp", rows.data(), sendCounts.data(), out.data(),
                                  recvCounts.data(), 4, 3, 1, &error));
    EXPECT_NE(error.find("receives 4 rows"), std::string::npos) << error;
    EXPECT_NE(error.find("capacity 3"), std::string::npos) << error;
  });
}

TEST(StepComm, SendRecvAlongTheAxis) {
  comm::LocalWorld::run(2, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    std::vector<float> data = {1.5f, -2.0f, 3.0f};
    std::string error;
    if (world.rank() == 0) {
      ASSERT_TRUE(driver::send(dp.get(), "dp", 1, data.data(), 3, &error)) << error;
    } else {
      std::vector<float> got(3);
      ASSERT_TRUE(driver::recv(dp.get(), "dp", 0, got.data(), 3, &error)) << error;
      EXPECT_EQ(got, data);
    }
    EXPECT_FALSE(driver::send(dp.get(), "pp", 0, data.data(), 3, &error));
    EXPECT_NE(error.find("send on pp: no rank at coordinate 0"), std::string::npos) << error;
  });
}

// Posted transfers need a communicator that has them (MPI: comm_mpi_check
// and the pipeline executables run them); a wait names what is missing.
TEST(StepComm, PostedTransfersAreCheckedAtTheirWait) {
  comm::LocalWorld::run(2, [](comm::Communicator &world) {
    std::unique_ptr<driver::StepComm> dp = driver::dataParallelComm(world);
    float x = 1;
    std::string error;
    EXPECT_FALSE(driver::p2pWait(dp.get(), 7, &x, &error));
    EXPECT_NE(error.find("p2p_wait: no transfer of this buffer was posted under ticket 7"),
              std::string::npos)
        << error;
    EXPECT_FALSE(driver::sendStart(dp.get(), "dp", 1 - world.rank(), &x, 1, 0, &error));
    EXPECT_NE(error.find("posted transfers are not built for this communicator"),
              std::string::npos)
        << error;
  });
  std::string error;
  EXPECT_FALSE(driver::p2pWait(nullptr, 0, nullptr, &error));
  EXPECT_NE(error.find("(a single-rank step has none)"), std::string::npos) << error;
}

TEST(StepComm, UnknownGroupIsAnError) {
  std::string error;
  float x = 1, y = 0;
  EXPECT_FALSE(driver::allReduce(nullptr, "dp", &x, &y, 1, false, &error));
  EXPECT_NE(error.find("all_reduce over dp: this program has no such group"), std::string::npos)
      << error;
}

} // namespace
