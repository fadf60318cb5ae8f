//===- CudaShimExpertParallelTest.cpp - cuda/ExpertParallel.cuh on the shim ===//
//
// runtime/kernels/cuda/ExpertParallel.cuh's launchers run through
// Device.cuh's grid loop and match runtime/kernels/ExpertParallel.h's host
// kernels exactly (counts, offsets, rows, the zeroed tail), both directions
// of segment_transpose included; decreasing offsets, negative counts and
// counts past the buffer are device errors.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/ExpertParallel.h"

#include "runtime/kernels/cuda/ExpertParallel.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

TEST(CudaShimExpertParallel, ExpertCountsMatchTheHost) {
  const int64_t experts = 12, groups = 4;
  std::vector<int32_t> offsets(experts + 1, 0);
  const std::vector<int32_t> sizes = randomIds(1, experts, 9);
  for (int64_t e = 0; e < experts; ++e)
    offsets[e + 1] = offsets[e] + sizes[e];
  std::vector<int64_t> perExpert(experts), perRank(groups), wantExpert(experts), wantRank(groups);
  ASSERT_TRUE(cuda::expertCounts(nullptr, offsets.data(), experts, groups, perExpert.data(),
                                 perRank.data()));
  ASSERT_TRUE(
      kernels::expertCounts(offsets.data(), experts, groups, wantExpert.data(), wantRank.data()));
  EXPECT_EQ(perExpert, wantExpert);
  EXPECT_EQ(perRank, wantRank);
  EXPECT_EQ(cuda::takeDeviceError().code, 0);

  std::string error, wantError;
  EXPECT_FALSE(cuda::expertCounts(nullptr, offsets.data(), experts, 5, perExpert.data(),
                                  perRank.data(), &error));
  EXPECT_FALSE(kernels::expertCounts(offsets.data(), experts, 5, wantExpert.data(), wantRank.data(),
                                     &wantError));
  EXPECT_EQ(error, wantError);

  offsets[7] = offsets[6] - 1; // decreases at expert 6
  EXPECT_TRUE(cuda::expertCounts(nullptr, offsets.data(), experts, groups, perExpert.data(),
                                 perRank.data()));
  const cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadExpertOffsets);
  EXPECT_EQ(e.index, 6);
}

/// Both directions, with empty segments, over more than one block of rows
/// and with unused capacity (zeroed).
TEST(CudaShimExpertParallel, SegmentTransposeMatchesTheHost) {
  struct Shape {
    int64_t outer, inner, rowSize;
  };
  for (Shape s : {Shape{3, 4, 70}, Shape{1, 1, 5}, Shape{4, 2, 1}, Shape{2, 3, 300}})
    for (bool inverse : {false, true}) {
      const int64_t segments = s.outer * s.inner;
      std::vector<int64_t> counts(segments);
      const std::vector<int32_t> ids = randomIds(10 + segments, segments, 6);
      int64_t total = 0;
      for (int64_t i = 0; i < segments; ++i)
        total += counts[i] = i % 3 == 1 ? 0 : ids[i];
      const int64_t capacity = total + 5;
      const std::vector<float> x = randomFloats(11, capacity * s.rowSize);
      const int64_t n = (inverse ? s.outer : s.inner) + 1;
      std::vector<float> out(capacity * s.rowSize, 7.0f), want(capacity * s.rowSize, 7.0f);
      std::vector<int32_t> offsets(n), wantOffsets(n);
      ASSERT_TRUE(cuda::segmentTranspose(nullptr, x.data(), counts.data(), s.outer, s.inner,
                                         capacity, s.rowSize, inverse, out.data(), offsets.data()));
      ASSERT_TRUE(kernels::segmentTranspose(x.data(), counts.data(), s.outer, s.inner, capacity,
                                            s.rowSize, inverse, want.data(), wantOffsets.data()));
      EXPECT_TRUE(sameBits(out, want)) << s.outer << "x" << s.inner << " inverse " << inverse;
      EXPECT_EQ(offsets, wantOffsets) << s.outer << "x" << s.inner << " inverse " << inverse;
    }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimExpertParallel, BadSegmentCountsAreDeviceErrors) {
  const int64_t outer = 2, inner = 2, rowSize = 3, capacity = 6;
  const std::vector<float> x = randomFloats(20, capacity * rowSize);
  std::vector<float> out(capacity * rowSize, 7.0f);
  std::vector<int32_t> offsets(inner + 1, 9);
  std::vector<int64_t> counts = {1, -2, 3, 1};
  EXPECT_TRUE(cuda::segmentTranspose(nullptr, x.data(), counts.data(), outer, inner, capacity,
                                     rowSize, false, out.data(), offsets.data()));
  cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kNegativeSegmentCount);
  EXPECT_EQ(e.index, 1);
  EXPECT_TRUE(sameBits(out, std::vector<float>(capacity * rowSize, 0.0f)));
  EXPECT_EQ(offsets, std::vector<int32_t>(inner + 1, 0));
  counts = {1, 2, 3, 4}; // 10 rows in a buffer of 6
  EXPECT_TRUE(cuda::segmentTranspose(nullptr, x.data(), counts.data(), outer, inner, capacity,
                                     rowSize, true, out.data(), offsets.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kSegmentsOverflow);
  EXPECT_EQ(e.index, 10);
}

} // namespace
