//===- GradientStats.h - The reference's tensor statistics, for goldens ---===//
//
// Goldens written by models/reference/training.py store a tensor as
// statistics rather than values: sum, abs_sum, sq_sum, a pseudo-random
// +-1 projection seeded by the tensor's name, and the first 8 values (see
// models/reference/README.md). This computes the same statistics on Kiln's
// side, and tracks the worst error of a comparison across tensors.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_GRADIENTSTATS_H
#define KILN_TEST_UNIT_GRADIENTSTATS_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::test {

/// FNV-1a, 32 bits, as models/reference/README.md defines it.
inline uint32_t fnv1a32(const std::string &s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s)
    h = (h ^ c) * 16777619u;
  return h;
}

struct Stats {
  double sum = 0, absSum = 0, sqSum = 0, proj = 0;
  std::vector<double> first;
};

inline Stats statsOf(const std::string &name, const double *data, int64_t n) {
  Stats s;
  uint32_t h = fnv1a32(name);
  for (int64_t i = 0; i < n; ++i) {
    double v = data[i];
    s.sum += v;
    s.absSum += std::fabs(v);
    s.sqSum += v * v;
    uint32_t r = uint32_t(uint64_t(i) * 2654435761ull + h);
    s.proj += (r >> 31) == 0 ? v : -v;
    if (i < 8)
      s.first.push_back(v);
  }
  return s;
}

/// The worst relative error of one kind of comparison across tensors; NaN
/// on either side counts as infinitely wrong.
struct Worst {
  double error = 0;
  std::string where;
  void check(double got, double want, double scale, const std::string &what) {
    double e = std::fabs(got - want) / std::max(scale, 1e-300);
    if (std::isnan(got) || std::isnan(want))
      e = INFINITY;
    if (where.empty() || e > error)
      error = e, where = what;
  }
};

} // namespace kiln::test

#endif // KILN_TEST_UNIT_GRADIENTSTATS_H
