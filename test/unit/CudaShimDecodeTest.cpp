//===- CudaShimDecodeTest.cpp - cuda/Decode.cuh on the CPU shim -----------===//
//
// runtime/kernels/cuda/Decode.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/Decode.h's host kernels bit for bit (the
// reference-order cached attention included; the GPU's block-per-query
// kernel, with shared memory and shuffles, is for a GPU check), and each
// bad start is recorded as a device error, its row skipped.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Decode.h"

#include "runtime/kernels/cuda/Decode.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

// A cache of 40 positions, three rows at different starts, a chunk of 3.
constexpr int64_t kBatch = 3, kMaxLen = 40, kChunk = 3;
const std::vector<int32_t> kStarts = {0, 11, 37};

TEST(CudaShimDecode, RopeForwardAtMatchesTheHost) {
  const int64_t heads = 2, dim = 12;
  const std::vector<float> x = randomFloats(1, kBatch * kChunk * heads * dim);
  const kernels::YarnConfig yarn{40.0, 4096.0, 32.0, 1.0, 0.707, 0.707};
  for (bool transpose : {false, true}) {
    std::vector<float> y(x.size()), want(x.size());
    cuda::ropeForwardAt(nullptr, y.data(), x.data(), kStarts.data(), kBatch, kChunk, heads, dim,
                        10000.0, false, &yarn, transpose);
    kernels::ropeForwardAt(want.data(), x.data(), kStarts.data(), kBatch, kChunk, heads, dim,
                           10000.0, false, &yarn, transpose);
    EXPECT_TRUE(sameBits(y, want)) << transpose;
  }
  std::vector<float> y(x.size(), 5.0f);
  const std::vector<int32_t> bad = {3, 4, -1};
  cuda::ropeForwardAt(nullptr, y.data(), x.data(), bad.data(), kBatch, kChunk, heads, dim, 10000.0,
                      true, nullptr);
  const cuda::DeviceErrorRecord error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kNegativeStart);
  EXPECT_EQ(error.index, 2);
  for (int64_t e = 2 * kChunk * heads * dim; e < int64_t(y.size()); ++e)
    ASSERT_EQ(y[e], 5.0f) << e;
}

TEST(CudaShimDecode, CacheWriteMatchesTheHost) {
  const int64_t width = 70; // rows of 70: elements cross thread blocks
  const std::vector<float> cache = randomFloats(2, kBatch * kMaxLen * width),
                           rows = randomFloats(3, kBatch * kChunk * width);
  std::vector<float> out(cache.size(), NAN), want(cache.size());
  cuda::cacheWrite(nullptr, out.data(), cache.data(), rows.data(), kStarts.data(), kBatch, kMaxLen,
                   kChunk, width);
  kernels::cacheWrite(want.data(), cache.data(), rows.data(), kStarts.data(), kBatch, kMaxLen,
                      kChunk, width);
  EXPECT_TRUE(sameBits(out, want));
  std::vector<float> inPlace = cache; // out == cache: the decode program's update
  cuda::cacheWrite(nullptr, inPlace.data(), inPlace.data(), rows.data(), kStarts.data(), kBatch,
                   kMaxLen, kChunk, width);
  EXPECT_TRUE(sameBits(inPlace, want));
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimDecode, CacheWriteRecordsABadStart) {
  const int64_t width = 5, row = kMaxLen * width;
  const std::vector<float> cache = randomFloats(4, kBatch * row),
                           rows = randomFloats(5, kBatch * kChunk * width);
  const std::vector<int32_t> bad = {0, 38, 2}; // 38 + 3 > 40
  for (bool inPlaceUpdate : {false, true}) {
    std::vector<float> out = inPlaceUpdate ? cache : std::vector<float>(cache.size(), NAN);
    cuda::cacheWrite(nullptr, out.data(), inPlaceUpdate ? out.data() : cache.data(), rows.data(),
                     bad.data(), kBatch, kMaxLen, kChunk, width);
    const cuda::DeviceErrorRecord error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kBadCacheStart);
    EXPECT_EQ(error.index, 1);
    for (int64_t e = row; e < 2 * row; ++e) // row 1 keeps the cache
      ASSERT_EQ(out[e], cache[e]) << e;
    EXPECT_EQ(out[2 * row + 2 * width], rows[2 * kChunk * width]); // row 2 written
  }
}

TEST(CudaShimDecode, CachedAttentionMatchesTheHost) {
  // GQA (4 heads on 2 kv heads) with dqk 19 (two 8-lane steps and a tail)
  // != dv 6; 288 queries (more than one 256-thread block); MQA, chunk 1.
  struct Shape {
    int64_t heads, kvHeads, dqk, dv, chunk;
  };
  for (const Shape &s :
       {Shape{4, 2, 19, 6, kChunk}, Shape{32, 8, 8, 5, kChunk}, Shape{2, 1, 3, 4, 1}}) {
    const float scale = 0.37f;
    const std::vector<float> q = randomFloats(6, kBatch * s.chunk * s.heads * s.dqk),
                             k = randomFloats(7, kBatch * kMaxLen * s.kvHeads * s.dqk),
                             v = randomFloats(8, kBatch * kMaxLen * s.kvHeads * s.dv);
    std::vector<float> out(kBatch * s.chunk * s.heads * s.dv, NAN), want(out.size());
    cuda::cachedAttention(nullptr, out.data(), q.data(), k.data(), v.data(), kStarts.data(), kBatch,
                          s.chunk, kMaxLen, s.heads, s.kvHeads, s.dqk, s.dv, scale);
    kernels::cachedAttention(want.data(), q.data(), k.data(), v.data(), kStarts.data(), kBatch,
                             s.chunk, kMaxLen, s.heads, s.kvHeads, s.dqk, s.dv, scale);
    EXPECT_TRUE(sameBits(out, want)) << "heads " << s.heads << " dqk " << s.dqk;
  }
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimDecode, CachedAttentionRecordsABadStart) {
  const int64_t heads = 2, dqk = 4, dv = 3;
  const std::vector<float> q = randomFloats(9, kBatch * kChunk * heads * dqk),
                           k = randomFloats(10, kBatch * kMaxLen * heads * dqk),
                           v = randomFloats(11, kBatch * kMaxLen * heads * dv);
  std::vector<int32_t> start = {5, -2, 7};
  std::vector<float> out(kBatch * kChunk * heads * dv, 9.0f), want(out.size());
  cuda::cachedAttention(nullptr, out.data(), q.data(), k.data(), v.data(), start.data(), kBatch,
                        kChunk, kMaxLen, heads, heads, dqk, dv, 1.0f);
  cuda::DeviceErrorRecord error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kBadCacheStart);
  EXPECT_EQ(error.index, 1);
  start[1] = 0;
  kernels::cachedAttention(want.data(), q.data(), k.data(), v.data(), start.data(), kBatch, kChunk,
                           kMaxLen, heads, heads, dqk, dv, 1.0f);
  const int64_t row = kChunk * heads * dv;
  for (int64_t e = 0; e < kBatch * row; ++e)
    ASSERT_EQ(out[e], e / row == 1 ? 9.0f : want[e]) << e;
  // An empty chunk runs no query, but its starts are checked as the host's.
  const std::vector<int32_t> past = {0, 41, 3};
  cuda::cachedAttention(nullptr, out.data(), q.data(), k.data(), v.data(), past.data(), kBatch, 0,
                        kMaxLen, heads, heads, dqk, dv, 1.0f);
  error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kBadCacheStart);
  EXPECT_EQ(error.index, 1);
}

TEST(CudaShimDecode, HeadMatmulMatchesTheHost) {
  const int64_t batch = 2, seq = 7, heads = 3, k = 21, n = 13; // 546 outputs, 3 blocks
  const std::vector<float> x = randomFloats(12, batch * seq * heads * k),
                           weight = randomFloats(13, heads * n * k);
  for (bool transposeWeight : {false, true}) {
    std::vector<float> out(batch * seq * heads * n, NAN), want(out.size());
    cuda::headMatmul(nullptr, out.data(), x.data(), weight.data(), batch, seq, heads, k, n,
                     transposeWeight);
    kernels::headMatmul(want.data(), x.data(), weight.data(), batch, seq, heads, k, n,
                        transposeWeight);
    EXPECT_TRUE(sameBits(out, want)) << transposeWeight;
  }
}

} // namespace
