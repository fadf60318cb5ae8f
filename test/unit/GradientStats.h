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

#include <nlohmann/json.hpp>

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

/// Compares a tensor's statistics with a golden's (a json object with shape,
/// sum, abs_sum, sq_sum, proj, first): sums and the projection relative to
/// the golden's abs_sum (so tiny or cancelling sums compare sensibly),
/// sq_sum relative to itself, first values relative to the mean |value|;
/// each kind into its own Worst (or the same one thrice).
inline void compareStats(const std::string &name, const Stats &got, const nlohmann::json &want,
                         Worst &sums, Worst &squares, Worst &firsts) {
  double n = 1;
  for (const nlohmann::json &d : want["shape"])
    n *= d.get<double>();
  const double absSum = want["abs_sum"].get<double>();
  if (absSum == 0) { // an all-zero golden: compare absolutely
    sums.check(got.absSum, 0, 1.0, name + " abs_sum");
    return;
  }
  sums.check(got.absSum, absSum, absSum, name + " abs_sum");
  sums.check(got.sum, want["sum"].get<double>(), absSum, name + " sum");
  sums.check(got.proj, want["proj"].get<double>(), absSum, name + " proj");
  squares.check(got.sqSum, want["sq_sum"].get<double>(), want["sq_sum"].get<double>(),
                name + " sq_sum");
  for (size_t i = 0; i < got.first.size() && i < want["first"].size(); ++i)
    firsts.check(got.first[i], want["first"][i].get<double>(), absSum / n,
                 name + " first[" + std::to_string(i) + "]");
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_GRADIENTSTATS_H
