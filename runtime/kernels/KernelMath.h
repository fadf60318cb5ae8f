//===- KernelMath.h - per-element math shared by host and CUDA kernels ----===//
//
// Each kernel's math lives once: scalar functions marked KILN_HD compile as
// plain C++ for the host target and as __host__ __device__ under nvcc, so
// the CPU tests cover what the GPU runs. Host loops (OpenMP) and CUDA kernels
// call these; GEMMs go to OpenBLAS / cuBLASLt instead.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELMATH_H
#define KILN_RUNTIME_KERNELMATH_H

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__ inline
#else
#define KILN_HD inline
#endif

namespace kiln::kernels {

/// e^x in f32, faithfully rounded (error below 1 ulp of the exact value over
/// every f32, subnormal results included; KernelMathTest sweeps them), NaN
/// for NaN, 0 below -103.97, +inf above 88.72. Written without branches or
/// calls so that host loops over it vectorize (glibc's expf, 0.502 ulp, is
/// a scalar call: the loops of swiglu, softmax and cross_entropy spent
/// most of their time in it). Cephes' expf: x = n ln2 + r with ln2 split
/// in two, a degree-7 polynomial for e^r on |r| <= ln2 / 2, then 2^n as two
/// factors so that results below FLT_MIN round once, as subnormals. On the
/// GPU, CUDA's expf (2 ulp): the device has its own fast exponential.
KILN_HD float expFaithful(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  const float hi = 88.72283935546875f, lo = -103.97208404541015625f;
  const float xc = x < lo ? lo : (x > hi ? hi : x);
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = int32_t(n);
  const int32_t shift = ni < -125 ? 64 : (ni > 126 ? -1 : 0);
  const uint32_t scaleBits = uint32_t(ni + shift + 127) << 23,
                 postBits = uint32_t(127 - shift) << 23; // 2^(n + shift), 2^-shift
  float scale, post;
  std::memcpy(&scale, &scaleBits, sizeof(float));
  std::memcpy(&post, &postBits, sizeof(float));
  float y = (p * scale) * post;
  y = x > hi ? HUGE_VALF : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
#endif
}

KILN_HD float sigmoidf(float x) { return 1.0f / (1.0f + expFaithful(-x)); }

/// The sum of f(i) over i in [0, n) in f32 in a fixed order that vectorizes:
/// eight running sums over i = 8q + l (the tail added to sum 0), added as a
/// fixed tree. A single running sum is a chain the compiler may not reorder.
template <class F> KILN_HD float laneSum(int64_t n, F f) {
  float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l)
      lane[l] += f(i + l);
  for (; i < n; ++i)
    lane[0] += f(i);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/// max over i in [0, n), n >= 1, of f(i), in eight lanes as laneSum (a
/// maximum does not depend on the order, except which NaN survives).
template <class F> KILN_HD float laneMax(int64_t n, F f) {
  float lane[8];
  for (int l = 0; l < 8; ++l)
    lane[l] = f(0);
  int64_t i = 1;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float v = f(i + l);
      lane[l] = v > lane[l] ? v : lane[l];
    }
  for (; i < n; ++i) {
    const float v = f(i);
    lane[0] = v > lane[0] ? v : lane[0];
  }
  float m = lane[0];
  for (int l = 1; l < 8; ++l)
    m = lane[l] > m ? lane[l] : m;
  return m;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_KERNELMATH_H
