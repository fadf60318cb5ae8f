//===- CudaShimCopyTest.cpp - cuda/Copy.cuh on the CPU shim ---------------===//
//
// runtime/kernels/cuda/Copy.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/Copy.h's host kernels bit for bit, on
// seeded data: every element type, rank 0 and rank 6, strided, offset and
// empty slices, in-place insert_slice, concat with an empty part, broadcast
// and unbroadcast over leading, middle and trailing dimensions (sums of
// hundreds of terms included), sizes past one block.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Copy.h"

#include "runtime/kernels/cuda/Copy.cuh"

using namespace kiln;
using namespace kiln::test;
using kernels::Dims;

namespace {

/// `n` seeded int32 values (any sign).
std::vector<int32_t> randomInts(uint64_t seed, int64_t n) {
  std::vector<int32_t> v = randomIds(seed, n, 2000000);
  for (int32_t &x : v)
    x -= 1000000;
  return v;
}

TEST(CudaShimCopy, FillMatchesTheHost) {
  const int64_t n = 1000;
  std::vector<float> f(n + 1, 3.0f), wantF(n + 1, 3.0f);
  cuda::fill(nullptr, f.data(), n, -0.25f);
  kernels::fill(wantF.data(), n, -0.25f);
  EXPECT_TRUE(sameBits(f, wantF));
  std::vector<int32_t> i(n + 1, 3), wantI(n + 1, 3);
  cuda::fill(nullptr, i.data(), n, INT32_MIN);
  kernels::fill(wantI.data(), n, INT32_MIN);
  EXPECT_EQ(i, wantI);
  std::vector<int64_t> l(n + 1, 3), wantL(n + 1, 3);
  cuda::fill(nullptr, l.data(), n, int64_t(1) << 40);
  kernels::fill(wantL.data(), n, int64_t(1) << 40);
  EXPECT_EQ(l, wantL);
  cuda::fill(nullptr, f.data(), 0, 1.0f);
  EXPECT_TRUE(sameBits(f, wantF));
}

TEST(CudaShimCopy, CopyMatchesTheHost) {
  const int64_t n = 777;
  const std::vector<float> f = randomFloats(1, n);
  std::vector<float> out(n + 1, 5.0f);
  cuda::copy(nullptr, out.data(), f.data(), n);
  EXPECT_TRUE(sameBits({out.begin(), out.begin() + n}, f));
  EXPECT_EQ(out[n], 5.0f);
  const std::vector<int32_t> i = randomInts(2, n);
  std::vector<int32_t> outI(n);
  cuda::copy(nullptr, outI.data(), i.data(), n);
  EXPECT_EQ(outI, i);
  // In place and empty: nothing.
  cuda::copy(nullptr, outI.data(), outI.data(), n);
  cuda::copy(nullptr, out.data(), nullptr, 0);
  EXPECT_EQ(outI, i);
}

struct SliceCase {
  Dims shape, offsets, sizes, strides;
};

// Rank 0, unit strides, strided, offset, rank 6, an empty slice, and one
// past a block of elements.
const SliceCase kSlices[] = {
    {{}, {}, {}, {}},
    {{7, 9}, {2, 3}, {4, 5}, {1, 1}},
    {{10, 11, 12}, {1, 0, 3}, {3, 6, 4}, {3, 2, 2}},
    {{2, 3, 2, 4, 3, 5}, {1, 0, 1, 1, 0, 2}, {1, 2, 1, 2, 3, 2}, {1, 2, 1, 2, 1, 2}},
    {{5, 6}, {1, 2}, {0, 3}, {1, 1}},
    {{40, 33}, {3, 1}, {30, 16}, {1, 2}},
};

TEST(CudaShimCopy, ExtractSliceMatchesTheHost) {
  for (const SliceCase &c : kSlices) {
    const int64_t full = c.shape.product(), n = c.sizes.product();
    const std::vector<float> source = randomFloats(3, full);
    std::vector<float> out(n + 1, 7.0f), want(n + 1, 7.0f);
    cuda::extractSlice(nullptr, out.data(), source.data(), c.shape, c.offsets, c.sizes,
                       c.strides);
    kernels::extractSlice(want.data(), source.data(), c.shape, c.offsets, c.sizes, c.strides);
    EXPECT_TRUE(sameBits(out, want)) << "rank " << c.shape.rank;
    const std::vector<int32_t> sourceI = randomInts(4, full);
    std::vector<int32_t> outI(n + 1, 7), wantI(n + 1, 7);
    cuda::extractSlice(nullptr, outI.data(), sourceI.data(), c.shape, c.offsets, c.sizes,
                       c.strides);
    kernels::extractSlice(wantI.data(), sourceI.data(), c.shape, c.offsets, c.sizes, c.strides);
    EXPECT_EQ(outI, wantI) << "rank " << c.shape.rank;
  }
}

TEST(CudaShimCopy, InsertSliceMatchesTheHost) {
  for (const SliceCase &c : kSlices) {
    const int64_t full = c.shape.product(), n = c.sizes.product();
    const std::vector<float> dest = randomFloats(5, full), source = randomFloats(6, n);
    std::vector<float> out(full), want(full);
    cuda::insertSlice(nullptr, out.data(), dest.data(), source.data(), c.shape, c.offsets,
                      c.sizes, c.strides);
    kernels::insertSlice(want.data(), dest.data(), source.data(), c.shape, c.offsets, c.sizes,
                         c.strides);
    EXPECT_TRUE(sameBits(out, want)) << "rank " << c.shape.rank;
    // In place: out is dest.
    std::vector<float> inPlace = dest;
    cuda::insertSlice(nullptr, inPlace.data(), inPlace.data(), source.data(), c.shape,
                      c.offsets, c.sizes, c.strides);
    EXPECT_TRUE(sameBits(inPlace, want)) << "rank " << c.shape.rank;
    const std::vector<int32_t> destI = randomInts(7, full), sourceI = randomInts(8, n);
    std::vector<int32_t> outI(full), wantI(full);
    cuda::insertSlice(nullptr, outI.data(), destI.data(), sourceI.data(), c.shape, c.offsets,
                      c.sizes, c.strides);
    kernels::insertSlice(wantI.data(), destI.data(), sourceI.data(), c.shape, c.offsets,
                         c.sizes, c.strides);
    EXPECT_EQ(outI, wantI) << "rank " << c.shape.rank;
  }
}

TEST(CudaShimCopy, ConcatMatchesTheHost) {
  const int64_t partDims[] = {3, 0, 5, 1}, count = 4, inner = 7, total = 9;
  for (int64_t outer : {int64_t(0), int64_t(1), int64_t(11)}) {
    std::vector<std::vector<float>> parts;
    std::vector<std::vector<int32_t>> partsI;
    std::vector<const float *> ptrs;
    std::vector<const int32_t *> ptrsI;
    for (int64_t p = 0; p < count; ++p) {
      parts.push_back(randomFloats(10 + p, outer * partDims[p] * inner));
      partsI.push_back(randomInts(20 + p, outer * partDims[p] * inner));
      ptrs.push_back(parts.back().data());
      ptrsI.push_back(partsI.back().data());
    }
    const int64_t n = outer * total * inner;
    std::vector<float> out(n + 1, 2.0f), want(n + 1, 2.0f);
    cuda::concat(nullptr, out.data(), ptrs.data(), partDims, count, outer, inner);
    kernels::concat(want.data(), ptrs.data(), partDims, count, outer, inner);
    EXPECT_TRUE(sameBits(out, want)) << "outer " << outer;
    std::vector<int32_t> outI(n + 1, 2), wantI(n + 1, 2);
    cuda::concat(nullptr, outI.data(), ptrsI.data(), partDims, count, outer, inner);
    kernels::concat(wantI.data(), ptrsI.data(), partDims, count, outer, inner);
    EXPECT_EQ(outI, wantI) << "outer " << outer;
  }
}

struct BroadcastCase {
  Dims small, large;
};

// Rank 0, leading / middle / trailing ones, all ones to a long row, no
// broadcast at all, and an empty dimension.
const BroadcastCase kBroadcasts[] = {
    {{}, {}},
    {{1, 5, 1}, {4, 5, 3}},
    {{4, 1, 3}, {4, 5, 3}},
    {{3, 1}, {3, 70}},
    {{1, 1}, {6, 300}},
    {{1, 33}, {40, 33}},
    {{2, 3}, {2, 3}},
    {{2, 1, 3}, {2, 0, 3}},
    {{1, 2, 1, 2, 1, 3}, {2, 2, 3, 2, 2, 3}},
};

TEST(CudaShimCopy, BroadcastMatchesTheHost) {
  for (const BroadcastCase &c : kBroadcasts) {
    const std::vector<float> x = randomFloats(30, c.small.product());
    const int64_t n = c.large.product();
    std::vector<float> out(n + 1, 4.0f), want(n + 1, 4.0f);
    cuda::broadcast(nullptr, out.data(), x.data(), c.small, c.large);
    kernels::broadcast(want.data(), x.data(), c.small, c.large);
    EXPECT_TRUE(sameBits(out, want)) << "rank " << c.large.rank << ", " << n << " elements";
  }
}

TEST(CudaShimCopy, UnbroadcastMatchesTheHost) {
  // The same pairs the other way round ({2, 0, 3} to {2, 1, 3}: sums of no
  // terms, zeros; {2, 3}: sums of one), plus a rank-1 sum past a block.
  std::vector<BroadcastCase> cases(std::begin(kBroadcasts), std::end(kBroadcasts));
  cases.push_back({{1}, {1000}});
  for (const BroadcastCase &c : cases) {
    const std::vector<float> x = randomFloats(31, c.large.product());
    const int64_t n = c.small.product();
    std::vector<float> out(n + 1, 4.0f), want(n + 1, 4.0f);
    cuda::unbroadcast(nullptr, out.data(), x.data(), c.large, c.small);
    kernels::unbroadcast(want.data(), x.data(), c.large, c.small);
    EXPECT_TRUE(sameBits(out, want)) << "rank " << c.large.rank << ", " << n << " elements";
  }
}

} // namespace
