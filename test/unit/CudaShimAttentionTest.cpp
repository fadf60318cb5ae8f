//===- CudaShimAttentionTest.cpp - cuda/Attention.cuh on the CPU shim -----===//
//
// runtime/kernels/cuda/Attention.cuh's launchers run through Device.cuh's
// grid loop against runtime/kernels/Attention.h's host kernels: the rope bit
// for bit; attention within float rounding, since the host's products are
// OpenBLAS sgemms (their summation order is OpenBLAS's), on shapes with
// GQA, dqk != dv, causal and not, more than one of the host's 64-row blocks
// and a partial 256-thread block. The fused GPU kernels (shared memory,
// barriers, shuffles) cannot run on the shim; they are for a GPU check.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Attention.h"

#include "runtime/kernels/cuda/Attention.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

/// max |got - want| / max |want| of the attention kernels (f32 sums of a
/// few hundred terms in two orders).
constexpr double kAttentionBound = 2e-6;

struct AttentionShape {
  int64_t batch, seq, heads, kvHeads, dqk, dv;
  bool causal;
};

// GQA groups of 2 with dqk != dv (MLA-like); MQA with seq past the host's
// 64-row causal blocks; plain MHA, non-causal, one key per query.
const AttentionShape kShapes[] = {
    {2, 37, 4, 2, 12, 7, true},
    {1, 70, 3, 1, 9, 16, true},
    {2, 23, 2, 2, 5, 5, false},
    {3, 1, 2, 1, 4, 3, true},
};

TEST(CudaShimAttention, RopeMatchesTheHost) {
  const int64_t batch = 2, seq = 37, heads = 3, dim = 10;
  const kernels::YarnConfig yarn{4.0, 16.0, 32.0, 1.0, 1.0, 0.5};
  const std::vector<float> x = randomFloats(1, batch * seq * heads * dim);
  for (bool interleaved : {false, true})
    for (const kernels::YarnConfig *config : {(const kernels::YarnConfig *)nullptr, &yarn})
      for (bool transpose : {false, true}) {
        std::vector<float> y(x.size()), want(x.size());
        cuda::ropeForward(nullptr, y.data(), x.data(), batch, seq, heads, dim, 10000.0, interleaved,
                          config, transpose);
        kernels::ropeForward(want.data(), x.data(), batch, seq, heads, dim, 10000.0, interleaved,
                             config, transpose);
        EXPECT_TRUE(sameBits(y, want))
            << interleaved << " " << (config != nullptr) << " " << transpose;
        std::vector<float> inPlace = x; // y may alias x
        cuda::ropeForward(nullptr, inPlace.data(), inPlace.data(), batch, seq, heads, dim, 10000.0,
                          interleaved, config, transpose);
        EXPECT_TRUE(sameBits(inPlace, want));
      }
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimAttention, RopeAtPositionsMatchesTheHost) {
  const int64_t batch = 3, seq = 5, heads = 2, dim = 8;
  const std::vector<float> x = randomFloats(2, batch * seq * heads * dim);
  const std::vector<int32_t> start = {0, 17, 40000}; // large positions: f64 angles
  std::vector<float> y(x.size()), want(x.size());
  cuda::detail::ropeAtPositions(nullptr, y.data(), x.data(), start.data(), batch, seq, heads, dim,
                                500000.0, true, nullptr, false);
  kernels::detail::ropeAtPositions(want.data(), x.data(), start.data(), batch, seq, heads, dim,
                                   500000.0, true, nullptr, false);
  EXPECT_TRUE(sameBits(y, want));
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimAttention, RopeRecordsANegativeStart) {
  const int64_t batch = 3, seq = 4, heads = 2, dim = 6, row = seq * heads * dim;
  const std::vector<float> x = randomFloats(3, batch * row);
  std::vector<int32_t> start = {2, -5, 9};
  std::vector<float> y(x.size(), -7.0f), want(x.size());
  cuda::detail::ropeAtPositions(nullptr, y.data(), x.data(), start.data(), batch, seq, heads, dim,
                                10000.0, false, nullptr, false);
  const cuda::DeviceErrorRecord error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kNegativeStart);
  EXPECT_EQ(error.index, 1);
  start[1] = 0; // the other rows as the host computes them; row 1 untouched
  kernels::detail::ropeAtPositions(want.data(), x.data(), start.data(), batch, seq, heads, dim,
                                   10000.0, false, nullptr, false);
  for (int64_t e = 0; e < batch * row; ++e) {
    if (e / row == 1)
      ASSERT_EQ(y[e], -7.0f) << e;
    else
      ASSERT_EQ(y[e], want[e]) << e;
  }
}

TEST(CudaShimAttention, ForwardMatchesTheHost) {
  for (const AttentionShape &a : kShapes) {
    const float scale = 1.0f / std::sqrt(float(a.dqk));
    const std::vector<float> q = randomFloats(4, a.batch * a.seq * a.heads * a.dqk),
                             k = randomFloats(5, a.batch * a.seq * a.kvHeads * a.dqk),
                             v = randomFloats(6, a.batch * a.seq * a.kvHeads * a.dv);
    std::vector<float> out(a.batch * a.seq * a.heads * a.dv, NAN), want(out.size());
    cuda::attentionForward(nullptr, out.data(), q.data(), k.data(), v.data(), a.batch, a.seq,
                           a.heads, a.kvHeads, a.dqk, a.dv, scale, a.causal);
    kernels::attentionForward(want.data(), q.data(), k.data(), v.data(), a.batch, a.seq, a.heads,
                              a.kvHeads, a.dqk, a.dv, scale, a.causal);
    EXPECT_TRUE(within(out, want, kAttentionBound)) << "seq " << a.seq << " dqk " << a.dqk;
  }
}

TEST(CudaShimAttention, BackwardMatchesTheHost) {
  for (const AttentionShape &a : kShapes) {
    const float scale = 1.0f / std::sqrt(float(a.dqk));
    const int64_t nq = a.batch * a.seq * a.heads * a.dqk, nk = a.batch * a.seq * a.kvHeads * a.dqk,
                  nv = a.batch * a.seq * a.kvHeads * a.dv, no = a.batch * a.seq * a.heads * a.dv;
    const std::vector<float> q = randomFloats(7, nq), k = randomFloats(8, nk),
                             v = randomFloats(9, nv), dout = randomFloats(10, no);
    // NaN-filled outputs: every element must be written.
    std::vector<float> dq(nq, NAN), dk(nk, NAN), dv(nv, NAN), wantDq(nq), wantDk(nk), wantDv(nv);
    cuda::attentionBackward(nullptr, dq.data(), dk.data(), dv.data(), q.data(), k.data(), v.data(),
                            dout.data(), a.batch, a.seq, a.heads, a.kvHeads, a.dqk, a.dv, scale,
                            a.causal);
    kernels::attentionBackward(wantDq.data(), wantDk.data(), wantDv.data(), q.data(), k.data(),
                               v.data(), dout.data(), a.batch, a.seq, a.heads, a.kvHeads, a.dqk,
                               a.dv, scale, a.causal);
    EXPECT_TRUE(within(dq, wantDq, kAttentionBound)) << "dq, seq " << a.seq;
    EXPECT_TRUE(within(dk, wantDk, kAttentionBound)) << "dk, seq " << a.seq;
    EXPECT_TRUE(within(dv, wantDv, kAttentionBound)) << "dv, seq " << a.seq;
  }
}

TEST(CudaShimAttention, EmptyShapesWriteNothing) {
  std::vector<float> out(4, 3.0f), dq(4, 3.0f), dk(4, 3.0f), dv(4, 3.0f);
  const std::vector<float> in(4, 1.0f);
  cuda::attentionForward(nullptr, out.data(), in.data(), in.data(), in.data(), 0, 5, 2, 1, 2, 2,
                         1.0f, true);
  cuda::attentionBackward(nullptr, dq.data(), dk.data(), dv.data(), in.data(), in.data(), in.data(),
                          in.data(), 2, 0, 2, 1, 2, 2, 1.0f, false);
  cuda::ropeForward(nullptr, out.data(), in.data(), 2, 0, 1, 2, 10000.0, false, nullptr);
  for (const std::vector<float> *buffer : {&out, &dq, &dk, &dv})
    EXPECT_EQ(*buffer, std::vector<float>(4, 3.0f));
}

} // namespace
