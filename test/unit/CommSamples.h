//===- CommSamples.h - the data the communicator tests reduce ----*- C++ -*-===//
//
// Shared by CommTest (LocalWorld) and comm_mpi_check (under mpirun), so that
// both reduce the same values and their bits can be compared.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_COMMSAMPLES_H
#define KILN_TEST_UNIT_COMMSAMPLES_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace kiln::test {

/// Rank r's element i. Floats span 2^-20..2^20 with both signs, so that the
/// summation order changes the rounded sum; integers use all bits, so sums
/// overflow and wrap.
template <typename T> T sample(int rank, size_t i) {
  uint64_t h = uint64_t(rank + 1) * 0x9E3779B97F4A7C15ull ^ uint64_t(i) * 0xBF58476D1CE4E5B9ull;
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 29;
  if constexpr (std::is_floating_point_v<T>) {
    double mantissa = 1.0 + double(h % 1000003) / 1000003.0;
    return T((h >> 40 & 1 ? -1.0 : 1.0) * std::ldexp(mantissa, int(h >> 20 & 63) % 41 - 20));
  } else {
    return T(h);
  }
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_COMMSAMPLES_H
