//===- CudaShimTesting.h - the CUDA kernels on the CPU shim, vs the host ---===//
//
// The CudaShim*Test files run runtime/kernels/cuda/*.cuh's launchers on the
// CPU through Device.cuh's grid-loop shim (compiled as plain C++, so every
// pointer is a host pointer) and compare each with the host kernel of the
// same name on the same seeded inputs. Kernels in the reference order must
// match bit for bit (expectSameBits); the include order matters: the .cuh
// files come after this header (the shim defines CUDA's qualifiers away).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_CUDASHIMTESTING_H
#define KILN_TEST_UNIT_CUDASHIMTESTING_H

#include "runtime/init/SeededRng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace kiln::test {

/// `n` normal values times `scale`, seeded.
inline std::vector<float> randomFloats(uint64_t seed, int64_t n, double scale = 1.0) {
  init::SeededRng rng(seed, "cuda-shim");
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = float(scale * rng.normal());
  return v;
}

/// `n` ids in [0, range), seeded.
inline std::vector<int32_t> randomIds(uint64_t seed, int64_t n, int64_t range) {
  init::SeededRng rng(seed, "cuda-shim");
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t &x : v)
    x = int32_t(rng.uniform() * double(range)) % int32_t(range);
  return v;
}

/// Every element equal bit for bit (NaNs included), naming the first that
/// is not.
inline ::testing::AssertionResult sameBits(const std::vector<float> &got,
                                           const std::vector<float> &want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << got.size() << " elements, expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << ": " << got[i] << ", host kernel " << want[i];
  return ::testing::AssertionSuccess();
}

/// max |got - want| / max(max |want|, tiny) <= bound, for kernels whose
/// order of operations differs from the host's.
inline ::testing::AssertionResult within(const std::vector<float> &got,
                                         const std::vector<float> &want, double bound) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << got.size() << " elements, expected " << want.size();
  double err = 0, scale = 1e-30;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (!(e <= err)) {
      err = e;
      worst = i;
    }
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  if (err / scale <= bound)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max error " << err << " / max " << scale << " > "
                                       << bound << " at element " << worst << " ("
                                       << got[worst] << " vs " << want[worst] << ")";
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_CUDASHIMTESTING_H
