//===- StepCommTest.cpp - the collectives a generated step calls ----------===//
//
// runtime/driver/StepComm.h on LocalWorld ranks: each collective along a
// middle dimension (outer > 1) against the definition written out per
// element, local_shard against reduce_scatter's piece, and a step without a
// grid failing with a message instead of crashing.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/LocalWorld.h"
#include "runtime/driver/StepComm.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

using namespace kiln;

namespace {

/// Every group is the whole world (a dp-only grid).
class WorldStepComm : public driver::StepComm {
public:
  explicit WorldStepComm(comm::Communicator &world) : world(world) {}
  comm::Communicator *group(const char *axes) override {
    return std::string(axes) == "dp" ? &world : nullptr;
  }
  comm::Communicator &world;
};

/// Rank r's value at flat index i: distinct per rank and index.
float value(int rank, int64_t i) { return float(rank * 1000 + i) * 0.5f; }

constexpr int kRanks = 3;
constexpr int64_t kOuter = 2, kInner = 4; // a [2, 3*4] tensor split at dim 1

TEST(StepComm, AllGatherInterleavesRanksAtTheDimension) {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    WorldStepComm sc(world);
    std::vector<float> piece(kOuter * kInner), full(kOuter * kRanks * kInner);
    for (int64_t i = 0; i < kOuter * kInner; ++i)
      piece[i] = value(world.rank(), i);
    std::string error;
    ASSERT_TRUE(driver::allGather(&sc, "dp", piece.data(), full.data(), kOuter, kInner, &error))
        << error;
    for (int64_t o = 0; o < kOuter; ++o)
      for (int r = 0; r < kRanks; ++r)
        for (int64_t j = 0; j < kInner; ++j)
          EXPECT_EQ(full[(o * kRanks + r) * kInner + j], value(r, o * kInner + j));
  });
}

TEST(StepComm, ReduceScatterAndLocalShardAgreeOnPieces) {
  comm::LocalWorld::run(kRanks, [](comm::Communicator &world) {
    WorldStepComm sc(world);
    const int64_t n = kOuter * kRanks * kInner;
    std::vector<float> full(n), mine(kOuter * kInner), shard(kOuter * kInner);
    for (int64_t i = 0; i < n; ++i)
      full[i] = value(world.rank(), i);
    std::string error;
    ASSERT_TRUE(
        driver::reduceScatter(&sc, "dp", full.data(), mine.data(), kOuter, kInner, &error))
        << error;
    ASSERT_TRUE(driver::localShard(&sc, "dp", full.data(), shard.data(), kOuter, kInner, &error));
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
    WorldStepComm sc(world);
    std::vector<float> in = {value(world.rank(), 0), -value(world.rank(), 1)}, sum(2), max(2);
    std::string error;
    ASSERT_TRUE(driver::allReduce(&sc, "dp", in.data(), sum.data(), 2, false, &error)) << error;
    ASSERT_TRUE(driver::allReduce(&sc, "dp", in.data(), max.data(), 2, true, &error)) << error;
    EXPECT_EQ(sum[0], value(0, 0) + value(1, 0) + value(2, 0));
    EXPECT_EQ(max[0], value(2, 0));
    EXPECT_EQ(max[1], -value(0, 1));
  });
}

TEST(StepComm, UnknownGroupIsAnError) {
  std::string error;
  float x = 1, y = 0;
  EXPECT_FALSE(driver::allReduce(nullptr, "dp", &x, &y, 1, false, &error));
  EXPECT_NE(error.find("all_reduce over dp: this program has no such group"), std::string::npos)
      << error;
}

} // namespace
