//===- CudaShimNcclReduceTest.cpp - the NCCL backend's reduction on the shim ===//
//
// runtime/cuda/NcclCommunicator.cuh reduces the chunks NCCL moved with its
// own kernel (orderedReduce), never with NCCL's reductions, so that its
// all_reduce and reduce_scatter give the host backends' bits. Here that
// kernel runs through Device.cuh's grid loop and matches
// comm::reduction::inRankOrder (what MpiCommunicator and LocalWorld call)
// bit for bit: every dtype, Sum and Max, 1, 2 and 5 ranks, counts that
// leave a partial block, NaNs (with distinct payloads: the first one wins)
// for Max, integer sums that wrap around. The communicator class itself
// needs nvcc and NCCL (test/cuda/nccl_check.cu runs it on GPUs).
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/comm/Reduce.h"

#include "runtime/cuda/NcclCommunicator.cuh"

#include <limits>
#include <type_traits>

using namespace kiln;
using namespace kiln::test;
using comm::DType;
using comm::dtypeOf;
using comm::ReduceOp;

namespace {

/// `n` seeded values: normals for floats (doubles with bits below f32's),
/// any bit pattern for integers, so that sums wrap around often.
template <typename T> std::vector<T> randomValues(uint64_t seed, int64_t n) {
  init::SeededRng rng(seed, "cuda-shim-nccl");
  std::vector<T> v(static_cast<size_t>(n));
  for (T &x : v) {
    if constexpr (std::is_floating_point_v<T>)
      x = T(rng.normal() * (1 + 1e-3 * rng.uniform()));
    else
      x = T(rng.next());
  }
  return v;
}

/// A NaN with `payload` in its mantissa, so that which one wins shows.
template <typename T> T nanWithPayload(uint64_t payload) {
  if constexpr (std::is_same_v<T, float>) {
    const uint32_t bits = 0x7fc00000u | uint32_t(payload & 0x3fffff);
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
  } else {
    const uint64_t bits = 0x7ff8000000000000ull | (payload & 0x7ffffffffffffull);
    double x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
  }
}

/// Every element equal bit for bit, naming the first that is not.
template <typename T>
::testing::AssertionResult sameElements(const std::vector<T> &got, const std::vector<T> &want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " elements, expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << ": " << +got[i] << ", inRankOrder " << +want[i];
  return ::testing::AssertionSuccess();
}

/// n chunks of `count` elements, `stride` apart (the gaps hold values the
/// kernel must not use), reduced by orderedReduce into a separate buffer
/// and in place into chunk 0, both against inRankOrder.
template <typename T>
void expectMatchesInRankOrder(const std::vector<T> &in, int64_t count, int64_t stride, int n,
                              ReduceOp op) {
  std::vector<const void *> chunks(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    chunks[size_t(r)] = in.data() + int64_t(r) * stride;
  std::vector<T> want(static_cast<size_t>(count));
  comm::reduction::inRankOrder(want.data(), chunks.data(), size_t(n), size_t(count), dtypeOf<T>(),
                               op);

  std::vector<T> out(static_cast<size_t>(count));
  cuda::orderedReduce(nullptr, out.data(), in.data(), count, stride, n, dtypeOf<T>(), op);
  EXPECT_TRUE(sameElements(out, want)) << n << " ranks, " << count << " elements";

  std::vector<T> inPlace = in;
  cuda::orderedReduce(nullptr, inPlace.data(), inPlace.data(), count, stride, n, dtypeOf<T>(), op);
  EXPECT_TRUE(sameElements(std::vector<T>(inPlace.begin(), inPlace.begin() + count), want))
      << "in place, " << n << " ranks, " << count << " elements";
}

// 1 element, a partial block, just over one block, several blocks.
constexpr int64_t kCounts[] = {1, 200, 257, 1000};
constexpr int kRanks[] = {1, 2, 5};

template <typename T> void checkEveryShape(ReduceOp op, uint64_t seed) {
  for (int64_t count : kCounts)
    for (int n : kRanks)
      for (int64_t gap : {int64_t(0), int64_t(3)}) {
        const int64_t stride = count + gap;
        expectMatchesInRankOrder(randomValues<T>(seed++, stride * n), count, stride, n, op);
      }
}

TEST(CudaShimNcclReduce, SumMatchesInRankOrderForEveryDtype) {
  checkEveryShape<float>(ReduceOp::Sum, 100);
  checkEveryShape<double>(ReduceOp::Sum, 200);
  checkEveryShape<int32_t>(ReduceOp::Sum, 300);
  checkEveryShape<int64_t>(ReduceOp::Sum, 400);
  checkEveryShape<int8_t>(ReduceOp::Sum, 500);
}

TEST(CudaShimNcclReduce, MaxMatchesInRankOrderForEveryDtype) {
  checkEveryShape<float>(ReduceOp::Max, 600);
  checkEveryShape<double>(ReduceOp::Max, 700);
  checkEveryShape<int32_t>(ReduceOp::Max, 800);
  checkEveryShape<int64_t>(ReduceOp::Max, 900);
  checkEveryShape<int8_t>(ReduceOp::Max, 1000);
}

// The summation order shows in f32: rank order, not a tree. (x0 + x1) + x2
// with x0 = 1, x1 = 2^-24, x2 = 2^-24 is 1, while x0 + (x1 + x2) is 1 + 2^-23.
TEST(CudaShimNcclReduce, FloatSumIsInRankOrder) {
  const std::vector<float> in = {1.0f, 0x1.0p-24f, 0x1.0p-24f};
  std::vector<float> out(1);
  cuda::orderedReduce(nullptr, out.data(), in.data(), 1, 1, 3, DType::F32, ReduceOp::Sum);
  EXPECT_EQ(out[0], 1.0f);
  expectMatchesInRankOrder(in, 1, 1, 3, ReduceOp::Sum);
}

template <typename T> void checkNaNsWin(uint64_t seed) {
  const int n = 5;
  const int64_t count = 300;
  std::vector<T> in = randomValues<T>(seed, count * n);
  auto at = [&](int r, int64_t i) -> T & { return in[size_t(int64_t(r) * count + i)]; };
  at(0, 0) = nanWithPayload<T>(1);                                   // in rank 0
  at(2, 1) = nanWithPayload<T>(2);                                   // in a middle rank
  at(4, 2) = nanWithPayload<T>(3);                                   // in the last rank
  at(1, 3) = nanWithPayload<T>(4), at(3, 3) = nanWithPayload<T>(5);  // two: rank 1's wins
  at(0, 4) = std::numeric_limits<T>::infinity(), at(1, 4) = nanWithPayload<T>(6);
  for (int r = 0; r < n; ++r)
    at(r, 299) = nanWithPayload<T>(uint64_t(10 + r)); // NaN everywhere: rank 0's
  at(0, 5) = T(-0.0), at(1, 5) = T(0.0); // a tie keeps the earlier rank's zero
  expectMatchesInRankOrder(in, count, count, n, ReduceOp::Max);

  std::vector<T> out(static_cast<size_t>(count));
  cuda::orderedReduce(nullptr, out.data(), in.data(), count, count, n, dtypeOf<T>(),
                      ReduceOp::Max);
  for (int64_t i : {0, 1, 2, 3, 4, 299})
    EXPECT_TRUE(std::isnan(out[size_t(i)])) << "element " << i;
  EXPECT_TRUE(sameElements(std::vector<T>{out[3]}, std::vector<T>{nanWithPayload<T>(4)}));
  EXPECT_TRUE(sameElements(std::vector<T>{out[299]}, std::vector<T>{nanWithPayload<T>(10)}));
}

TEST(CudaShimNcclReduce, MaxPropagatesTheFirstNaN) {
  checkNaNsWin<float>(1100);
  checkNaNsWin<double>(1200);
}

template <typename T> void checkSumWraps() {
  constexpr T kMax = std::numeric_limits<T>::max(), kMin = std::numeric_limits<T>::min();
  // Per element, the chunks of 2 ranks: max + 1, min + -1, max + max.
  const std::vector<T> in = {kMax, kMin, kMax, T(1), T(-1), kMax};
  std::vector<T> out(3);
  cuda::orderedReduce(nullptr, out.data(), in.data(), 3, 3, 2, dtypeOf<T>(), ReduceOp::Sum);
  EXPECT_TRUE(sameElements(out, std::vector<T>{kMin, kMax, T(-2)}));
  expectMatchesInRankOrder(in, 3, 3, 2, ReduceOp::Sum);
}

TEST(CudaShimNcclReduce, IntegerSumWrapsAround) {
  checkSumWraps<int8_t>();
  checkSumWraps<int32_t>();
  checkSumWraps<int64_t>();
}

TEST(CudaShimNcclReduce, NothingToReduceWritesNothing) {
  std::vector<float> in = {1.0f, 2.0f}, out = {7.0f};
  cuda::orderedReduce(nullptr, out.data(), in.data(), 0, 1, 2, DType::F32, ReduceOp::Sum);
  cuda::orderedReduce(nullptr, out.data(), in.data(), 1, 1, 0, DType::F32, ReduceOp::Sum);
  EXPECT_EQ(out[0], 7.0f);
}

TEST(CudaShimNcclReduceDeathTest, OverlappingChunksAreRefused) {
  std::vector<float> in(10), out(6);
  EXPECT_DEATH(cuda::orderedReduce(nullptr, out.data(), in.data(), 6, 4, 2, DType::F32,
                                   ReduceOp::Sum),
               "chunks of 6 elements overlap at stride 4");
}

} // namespace
