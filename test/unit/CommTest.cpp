//===- CommTest.cpp - LocalWorld and WorldOfOne: exact, strict, never hang -===//
//
// Every collective for 1-4 ranks and every type, checked bit for bit against
// the reduction in rank order; the failures LocalWorld must turn into
// messages (deadlocks, mismatches, timeouts) each finish in well under a
// second. Each world runs with a 10 s timeout so that a bug fails a test
// instead of hanging ctest.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/LocalWorld.h"
#include "runtime/comm/WorldOfOne.h"
#include "test/unit/CommSamples.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

using namespace kiln::comm;

using kiln::test::sample;

namespace {

void onRanks(int n, const std::function<void(Communicator &)> &body, double timeout = 10) {
  LocalWorld::run(n, [&](Communicator &world) {
    world.setTimeoutSeconds(timeout);
    body(world);
  });
}


/// The reference reduction, written without the library's Reduce.h.
template <typename T> T combine(T acc, T in, ReduceOp op) {
  if (op == ReduceOp::Sum) {
    if constexpr (std::is_integral_v<T>)
      return T(std::make_unsigned_t<T>(acc) + std::make_unsigned_t<T>(in));
    else
      return acc + in;
  }
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(acc) || std::isnan(in))
      return std::isnan(acc) ? acc : in;
  return in > acc ? in : acc;
}

template <typename T> T rankOrdered(int n, size_t i, ReduceOp op, int firstRank = 0) {
  T acc = sample<T>(firstRank, i);
  for (int r = firstRank + 1; r < firstRank + n; ++r)
    acc = combine(acc, sample<T>(r, i), op);
  return acc;
}

template <typename T> bool sameBits(const std::vector<T> &a, const std::vector<T> &b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <typename T> void checkAllReduce(int n, size_t count, ReduceOp op) {
  std::vector<std::vector<T>> results(static_cast<size_t>(n));
  onRanks(n, [&](Communicator &c) {
    std::vector<T> buf(count);
    for (size_t i = 0; i < count; ++i)
      buf[i] = sample<T>(c.rank(), i);
    ASSERT_TRUE(c.allReduce(buf.data(), count, dtypeOf<T>(), op)) << c.error();
    results[size_t(c.rank())] = buf;
  });
  std::vector<T> expected(count);
  for (size_t i = 0; i < count; ++i)
    expected[i] = rankOrdered<T>(n, i, op);
  for (int r = 0; r < n; ++r)
    EXPECT_TRUE(sameBits(results[size_t(r)], expected))
        << dtypeName(dtypeOf<T>()) << " " << reduceOpName(op) << " over " << n << " ranks, rank "
        << r;
}

/// Runs body on n ranks and returns each rank's error() ("" if none).
std::vector<std::string> errorsOf(int n, const std::function<bool(Communicator &)> &body,
                                  double timeout = 10) {
  std::vector<std::string> errors(static_cast<size_t>(n));
  onRanks(
      n,
      [&](Communicator &c) {
        if (!body(c))
          errors[size_t(c.rank())] = c.error();
      },
      timeout);
  for (int r = 0; r < n; ++r)
    std::printf("  rank %d: %s\n", r, errors[size_t(r)].c_str());
  return errors;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

} // namespace

TEST(LocalWorld, AllReduceIsTheRankOrderedReductionBitForBitOnEveryRank) {
  for (int n : {1, 2, 3, 4})
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max})
      for (size_t count : {size_t(0), size_t(1), size_t(37)}) {
        checkAllReduce<float>(n, count, op);
        checkAllReduce<double>(n, count, op);
        checkAllReduce<int32_t>(n, count, op);
        checkAllReduce<int64_t>(n, count, op);
      }
}

TEST(LocalWorld, TheTestDataTellsSummationOrdersApart) {
  // Evidence that the test above would notice an unordered sum.
  size_t differ = 0, count = 1000;
  for (size_t i = 0; i < count; ++i) {
    float forward = rankOrdered<float>(4, i, ReduceOp::Sum), backward = sample<float>(3, i);
    for (int r = 2; r >= 0; --r)
      backward += sample<float>(r, i);
    differ += std::memcmp(&forward, &backward, sizeof forward) != 0;
  }
  std::printf("  %zu of %zu f32 sums over 4 ranks differ between orders 0..3 and 3..0\n", differ,
              count);
  EXPECT_GT(differ, count / 10);
}

TEST(LocalWorld, MaxPropagatesNaN) {
  onRanks(3, [](Communicator &c) {
    float x[2] = {float(c.rank()), c.rank() == 1 ? NAN : 1.0f};
    ASSERT_TRUE(c.allReduce(x, 2, DType::F32, ReduceOp::Max)) << c.error();
    EXPECT_EQ(x[0], 2.0f);
    EXPECT_TRUE(std::isnan(x[1]));
  });
}

template <typename T> void checkGatherAndScatter(int n) {
  const size_t perRank = 5;
  onRanks(n, [&](Communicator &c) {
    size_t me = size_t(c.rank());
    std::vector<T> mine(perRank), gathered(perRank * size_t(n));
    for (size_t i = 0; i < perRank; ++i)
      mine[i] = sample<T>(c.rank(), i);
    ASSERT_TRUE(c.allGather(mine.data(), gathered.data(), perRank, dtypeOf<T>())) << c.error();
    for (int r = 0; r < n; ++r)
      for (size_t i = 0; i < perRank; ++i)
        ASSERT_EQ(gathered[size_t(r) * perRank + i], sample<T>(r, i));
    // reduce_scatter undoes all_gather: each rank gets back its own chunk
    // (Max of n equal copies is exact for every type).
    std::vector<T> back(perRank);
    ASSERT_TRUE(c.reduceScatter(gathered.data(), back.data(), perRank, dtypeOf<T>(), ReduceOp::Max))
        << c.error();
    EXPECT_TRUE(sameBits(back, mine));
    // A general reduce_scatter: rank r's chunk p holds sample(r, p * perRank + i).
    std::vector<T> send(perRank * size_t(n)), sums(perRank);
    for (size_t i = 0; i < send.size(); ++i)
      send[i] = sample<T>(c.rank(), i);
    ASSERT_TRUE(c.reduceScatter(send.data(), sums.data(), perRank, dtypeOf<T>(), ReduceOp::Sum))
        << c.error();
    for (size_t i = 0; i < perRank; ++i) {
      T expected = rankOrdered<T>(n, me * perRank + i, ReduceOp::Sum);
      EXPECT_EQ(std::memcmp(&sums[i], &expected, sizeof(T)), 0) << "element " << i;
    }
  });
}

TEST(LocalWorld, ReduceScatterIsTheInverseOfAllGather) {
  for (int n : {1, 2, 3, 4}) {
    checkGatherAndScatter<float>(n);
    checkGatherAndScatter<double>(n);
    checkGatherAndScatter<int32_t>(n);
    checkGatherAndScatter<int64_t>(n);
  }
}

TEST(LocalWorld, AllToAllVWithUnevenAndZeroCounts) {
  for (int n : {1, 2, 3, 4}) {
    // Rank r sends (r + 2p) % 3 elements to rank p, and nothing to the last
    // rank, which receives nothing at all.
    auto sends = [n](int from, int to) { return to == n - 1 && n > 1 ? 0 : (from + 2 * to) % 3; };
    auto value = [](int from, int to, int i) { return double(1000 * from + 100 * to + i); };
    onRanks(n, [&](Communicator &c) {
      std::vector<int64_t> sendCounts, recvCounts;
      std::vector<double> send, recv;
      for (int p = 0; p < n; ++p) {
        sendCounts.push_back(sends(c.rank(), p));
        recvCounts.push_back(sends(p, c.rank()));
        for (int i = 0; i < sends(c.rank(), p); ++i)
          send.push_back(value(c.rank(), p, i));
        for (int i = 0; i < sends(p, c.rank()); ++i)
          recv.push_back(-1);
      }
      ASSERT_TRUE(
          c.allToAllV(send.data(), sendCounts.data(), recv.data(), recvCounts.data(), DType::F64))
          << c.error();
      size_t at = 0;
      for (int p = 0; p < n; ++p)
        for (int i = 0; i < sends(p, c.rank()); ++i)
          EXPECT_EQ(recv[at++], value(p, c.rank(), i)) << "from rank " << p << " element " << i;
      if (c.rank() == n - 1 && n > 1) {
        EXPECT_TRUE(recv.empty());
      }
    });
  }
}

TEST(LocalWorld, SplitIntoTwoGroupsOfTwo) {
  onRanks(4, [](Communicator &world) {
    // dp = {0, 2} and {1, 3}; key = -rank reverses the order in each group.
    std::unique_ptr<Communicator> dp = world.split(world.rank() % 2, -world.rank(), "dp");
    ASSERT_TRUE(dp) << world.error();
    EXPECT_EQ(dp->size(), 2);
    EXPECT_EQ(dp->rank(), world.rank() < 2 ? 1 : 0);
    EXPECT_EQ(dp->worldRank(), world.rank());
    EXPECT_EQ(dp->name(), "dp");
    double x = double(world.rank());
    ASSERT_TRUE(dp->allReduce(&x, 1, DType::F64, ReduceOp::Sum)) << dp->error();
    EXPECT_EQ(x, world.rank() % 2 == 0 ? 2.0 : 4.0);
    // Groups run their collectives independently of the world's.
    int32_t members[2];
    int32_t mine = world.rank();
    ASSERT_TRUE(dp->allGather(&mine, members, 1, DType::I32)) << dp->error();
    EXPECT_EQ(members[0], world.rank() % 2 + 2);
    EXPECT_EQ(members[1], world.rank() % 2);
    ASSERT_TRUE(world.barrier()) << world.error();
  });
}

TEST(LocalWorld, SendRecvRing) {
  for (int n : {2, 3, 4}) {
    onRanks(n, [n](Communicator &c) {
      // Rank 0 starts the token; every other rank receives before it sends,
      // since sends wait for their receiver.
      int next = (c.rank() + 1) % n, previous = (c.rank() + n - 1) % n;
      int64_t token[3] = {c.rank(), 7, -7}, got[3] = {0, 0, 0};
      if (c.rank() == 0) {
        ASSERT_TRUE(c.send(token, 3, DType::I64, next)) << c.error();
      }
      ASSERT_TRUE(c.recv(got, 3, DType::I64, previous)) << c.error();
      if (c.rank() != 0) {
        ASSERT_TRUE(c.send(token, 3, DType::I64, next)) << c.error();
      }
      EXPECT_EQ(got[0], previous);
      EXPECT_EQ(got[2], -7);
    });
  }
}

TEST(LocalWorldDeadlock, AllReduceAgainstRecvFailsBothRanksAtOnce) {
  auto start = std::chrono::steady_clock::now();
  auto errors = errorsOf(2, [](Communicator &c) {
    c.setStep(12);
    float x[4] = {};
    return c.rank() == 0 ? c.allReduce(x, 4, DType::F32, ReduceOp::Sum)
                         : c.recv(x, 4, DType::F32, 0);
  });
  EXPECT_LT(secondsSince(start), 2.0); // found, not timed out (10 s)
  for (const std::string &e : errors) {
    EXPECT_CONTAINS(e, "deadlock");
    EXPECT_CONTAINS(e, "rank 0 in all_reduce sum over world (4 x f32), waiting for rank 1");
    EXPECT_CONTAINS(e, "rank 1 in recv from rank 0 over world (4 x f32), waiting for rank 0");
  }
  EXPECT_CONTAINS(errors[0], "rank 0: all_reduce sum over world (step 12, 4 x f32): deadlock");
  EXPECT_CONTAINS(errors[1], "rank 1: recv from rank 0 over world (step 12, 4 x f32): deadlock");
}

TEST(LocalWorldDeadlock, BothRanksReceiveFirst) {
  auto errors = errorsOf(2, [](Communicator &c) {
    int32_t x = 0;
    return c.recv(&x, 1, DType::I32, 1 - c.rank()) && c.send(&x, 1, DType::I32, 1 - c.rank());
  });
  for (const std::string &e : errors)
    EXPECT_CONTAINS(e, "deadlock");
}

TEST(LocalWorldDeadlock, BothRanksSendFirstAsMpiRendezvousWould) {
  auto errors = errorsOf(2, [](Communicator &c) {
    int32_t x = 0;
    return c.send(&x, 1, DType::I32, 1 - c.rank()) && c.recv(&x, 1, DType::I32, 1 - c.rank());
  });
  for (const std::string &e : errors)
    EXPECT_CONTAINS(e, "rank 0 in send to rank 1 over world (1 x i32)");
}

TEST(LocalWorldDeadlock, RecvFromARankThatFinished) {
  auto errors = errorsOf(2, [](Communicator &c) {
    double x;
    return c.rank() == 0 || c.recv(&x, 1, DType::F64, 0);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_CONTAINS(errors[1], "rank 1 in recv from rank 0 over world (1 x f64), waiting for rank 0");
  EXPECT_CONTAINS(errors[1], "finished (all communicators destroyed): rank 0");
}

TEST(LocalWorldDeadlock, CollectivesOfDifferentGroups) {
  std::vector<std::string> errors(4);
  onRanks(4, [&](Communicator &world) {
    auto dp = world.split(world.rank() / 2, 0, "dp"); // {0, 1}, {2, 3}
    ASSERT_TRUE(dp) << world.error();
    float x = 1;
    // Ranks 0 and 2 reduce over their dp groups; 1 and 3 wait in the world.
    if (world.rank() % 2 == 0)
      EXPECT_FALSE(dp->allReduce(&x, 1, DType::F32, ReduceOp::Sum));
    else
      EXPECT_FALSE(world.barrier());
    errors[size_t(world.rank())] = world.rank() % 2 == 0 ? dp->error() : world.error();
  });
  for (const std::string &e : errors) {
    std::printf("  %s\n", e.c_str());
    EXPECT_CONTAINS(e, "rank 0 in all_reduce sum over dp (1 x f32), waiting for rank 1;");
    EXPECT_CONTAINS(e,
                    "rank 2 in all_reduce sum over dp (1 x f32), waiting for rank 3 (dp rank 1)");
    EXPECT_CONTAINS(e, "rank 1 in barrier over world, waiting for rank 0, rank 2");
  }
  EXPECT_CONTAINS(errors[2], "rank 2 (dp rank 0): all_reduce sum over dp (1 x f32): deadlock");
}

TEST(LocalWorldMismatch, DifferentCollectivesNameBothRanksAndCalls) {
  auto errors = errorsOf(3, [](Communicator &c) {
    float x[6] = {};
    return c.rank() == 1 ? c.allGather(x, x + 2, 2, DType::F32)
                         : c.allReduce(x, 2, DType::F32, ReduceOp::Sum);
  });
  // Whichever rank arrived first, rank 1 and an all_reduce rank name each other.
  EXPECT_CONTAINS(errors[1], "rank 1: all_gather over world (2 x f32 per rank): mismatch: rank ");
  EXPECT_CONTAINS(errors[1],
                  "called all_reduce sum over world (2 x f32) as collective #0 of world");
  EXPECT_CONTAINS(errors[0] + errors[2],
                  "mismatch: rank 1 called all_gather over world (2 x f32 per rank) as collective "
                  "#0 of world");
}

TEST(LocalWorldMismatch, CountAndTypeAndPointToPoint) {
  auto counts = errorsOf(2, [](Communicator &c) {
    double x[8] = {};
    return c.allReduce(x, c.rank() == 0 ? 4 : 8, DType::F64, ReduceOp::Sum);
  });
  EXPECT_CONTAINS(counts[0] + counts[1], "all_reduce sum over world (8 x f64)");
  EXPECT_CONTAINS(counts[0] + counts[1], "all_reduce sum over world (4 x f64) as collective #0");
  auto types = errorsOf(2, [](Communicator &c) {
    double x[2] = {};
    return c.allReduce(x, 2, c.rank() == 0 ? DType::F64 : DType::I64, ReduceOp::Sum);
  });
  for (const std::string &e : types)
    EXPECT_CONTAINS(e, "mismatch");
  auto transfer = errorsOf(2, [](Communicator &c) {
    float x[8] = {};
    return c.rank() == 0 ? c.send(x, 8, DType::F32, 1) : c.recv(x, 4, DType::F32, 0);
  });
  EXPECT_CONTAINS(transfer[0] + transfer[1], "called recv from rank 0 over world (4 x f32)");
  EXPECT_CONTAINS(transfer[0] + transfer[1], "called send to rank 1 over world (8 x f32)");
}

TEST(LocalWorldMismatch, AllToAllVCountsMustMatchThePeersRecvCounts) {
  auto errors = errorsOf(2, [](Communicator &c) {
    float send[3] = {}, recv[3] = {};
    int64_t sendCounts[2] = {1, c.rank() == 0 ? 2 : 1}, recvCounts[2] = {1, 1};
    return c.allToAllV(send, sendCounts, recv, recvCounts, DType::F32);
  });
  for (const std::string &e : errors)
    EXPECT_CONTAINS(e, "count mismatch: rank 0 sends 2 x f32 to rank 1, which expects 1 from it");
}

TEST(LocalWorld, TimeoutNamesTheLateRankAndStopsTheWorld) {
  auto start = std::chrono::steady_clock::now();
  auto errors = errorsOf(
      2,
      [](Communicator &c) {
        if (c.rank() == 1)
          std::this_thread::sleep_for(std::chrono::milliseconds(600));
        float x = 1;
        return c.allReduce(&x, 1, DType::F32, ReduceOp::Sum);
      },
      0.2);
  EXPECT_LT(secondsSince(start), 2.0);
  EXPECT_EQ(errors[0], "rank 0: all_reduce sum over world (1 x f32): rank 1 did not arrive "
                       "within 0.2 s");
  EXPECT_CONTAINS(errors[1], "stopped because another rank failed first: rank 0: all_reduce");
}

TEST(LocalWorld, RecvTimeout) {
  auto errors = errorsOf(
      2,
      [](Communicator &c) {
        if (c.rank() == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(400));
          return true;
        }
        int32_t x;
        return c.recv(&x, 1, DType::I32, 1);
      },
      0.1);
  EXPECT_CONTAINS(errors[0], "recv from rank 1 over world (1 x i32): rank 1 did not send within "
                             "0.1 s");
}

TEST(LocalWorld, AFailureIsFinalAndAbortStopsThePeers) {
  auto errors = errorsOf(2, [](Communicator &c) {
    if (c.rank() == 0) {
      float *null = nullptr;
      EXPECT_FALSE(c.allReduce(null, 3, DType::F32, ReduceOp::Sum));
      EXPECT_CONTAINS(c.error(), "buf is null but holds 3 elements");
      EXPECT_FALSE(c.barrier());
      EXPECT_CONTAINS(c.error(), "barrier over world: not attempted: an earlier operation failed");
      c.abortJob(3);
      return false;
    }
    return c.barrier();
  });
  EXPECT_CONTAINS(errors[1], "stopped because another rank failed first: rank 0: all_reduce");
}

TEST(LocalWorld, AnExceptionEndsItsRankAndIsRethrown) {
  std::string peerError;
  EXPECT_THROW(onRanks(2,
                       [&](Communicator &c) {
                         if (c.rank() == 1)
                           throw std::runtime_error("rank 1 gave up");
                         if (!c.barrier())
                           peerError = c.error();
                       }),
               std::runtime_error);
  EXPECT_CONTAINS(peerError, "finished (all communicators destroyed): rank 1");
}

TEST(LocalWorld, ArgumentsAreChecked) {
  onRanks(2, [](Communicator &c) {
    if (c.rank() == 1)
      return;
    float x[4] = {};
    EXPECT_FALSE(c.send(x, 1, DType::F32, 2));
    EXPECT_CONTAINS(c.error(), "rank 0: send to peer 2 over world (1 x f32): peer 2 is not a "
                               "rank of world (size 2)");
  });
  onRanks(2, [](Communicator &c) {
    float x[4] = {};
    EXPECT_FALSE(c.allGather(x + 1, x, 1, DType::F32)); // recv x[0..2) holds send
    EXPECT_CONTAINS(c.error(), "send and recv overlap");
  });
}

TEST(LocalWorld, StatsCountCallsAndBytes) {
  onRanks(2, [](Communicator &c) {
    double x[8] = {}, y[16] = {};
    int64_t counts[2] = {3, 3};
    ASSERT_TRUE(c.allReduce(x, 8, DType::F64, ReduceOp::Sum));
    ASSERT_TRUE(c.allGather(x, y, 8, DType::F64));
    ASSERT_TRUE(c.reduceScatter(y, x, 8, DType::F64, ReduceOp::Sum));
    ASSERT_TRUE(c.allToAllV(x, counts, y, counts, DType::F64));
    ASSERT_TRUE(c.rank() == 0 ? c.send(x, 2, DType::F64, 1) : c.recv(x, 2, DType::F64, 0));
    const CommStats &s = c.stats();
    EXPECT_EQ(s.calls, 5u);
    uint64_t p2pIn = c.rank() == 0 ? 16 : 0, p2pOut = c.rank() == 0 ? 0 : 16;
    EXPECT_EQ(s.inputBytes, 64u + 64 + 128 + 48 + p2pIn);
    EXPECT_EQ(s.outputBytes, 64u + 128 + 64 + 48 + p2pOut);
    EXPECT_GE(s.seconds, 0.0);
    c.resetStats();
    EXPECT_EQ(c.stats().calls, 0u);
  });
}

TEST(WorldOfOne, CollectivesAreCopiesAndThereIsNoPeer) {
  std::unique_ptr<Communicator> c = WorldOfOne::create();
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->rank(), 0);
  float x[3] = {1, 2, 3}, y[3] = {};
  ASSERT_TRUE(c->allReduce(x, 3, DType::F32, ReduceOp::Sum));
  EXPECT_EQ(x[2], 3.0f);
  ASSERT_TRUE(c->allGather(x, y, 3, DType::F32));
  EXPECT_EQ(y[1], 2.0f);
  int64_t counts[1] = {2};
  float z[2] = {};
  ASSERT_TRUE(c->allToAllV(x, counts, z, counts, DType::F32));
  EXPECT_EQ(z[1], 2.0f);
  std::unique_ptr<Communicator> dp = c->split(0, 0, "dp");
  ASSERT_TRUE(dp);
  ASSERT_TRUE(dp->reduceScatter(x, y, 3, DType::F32, ReduceOp::Max));
  c->setStep(4);
  EXPECT_FALSE(c->send(x, 1, DType::F32, 0));
  EXPECT_EQ(c->error(), "rank 0: send to rank 0 over world (step 4, 1 x f32): the peer is this "
                        "rank itself");
  EXPECT_FALSE(dp->barrier()); // a failure is final for every group of the rank
  EXPECT_CONTAINS(dp->error(), "not attempted");
}
