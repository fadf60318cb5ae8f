//===- GrpoAdvantages.h - GRPO's group-relative advantages from rewards ---===//
//
// One advantage per sampled completion, from its reward and the rewards of
// the other completions of the same prompt (DeepSeekMath sec. 4.1.2;
// train.grpo.advantage):
//
//   "group-norm"  A_i = (r_i - mean_g) / (std_g + eps)
//   "group-mean"  A_i =  r_i - mean_g                     (Dr. GRPO)
//
// std_g is the unbiased (Bessel, n - 1) standard deviation, as torch's
// default `Tensor.std()` that TRL's GRPOTrainer uses. A group of equal
// rewards gets advantages 0 (also with eps = 0, where the formula is 0/0).
// Rows are group-major: prompt p's G samples are rows p*G .. p*G+G-1.
// models/reference/grpo.py (group_advantages) is the
// independent reference; test/unit/GrpoGoldenTest.cpp compares the two.
//
// Header-only, plain C++17 (no LLVM), so the driver, the generated
// executables and the tests can all include it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_GRPOADVANTAGES_H
#define KILN_RUNTIME_DRIVER_GRPOADVANTAGES_H

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver {

/// Fills `out` (resized to rewards.size()) with the group advantages of
/// `rewards`, groups of `groupSize` consecutive rows. `normalizeStd` selects
/// "group-norm" (true) or "group-mean" (false); `eps` is added to the std.
/// Returns false, with `error` saying what is wrong and `out` untouched, when
/// the rewards do not split into whole groups, a group-norm group has fewer
/// than 2 samples (its unbiased std is undefined), eps is negative or not
/// finite, or a reward is not finite.
inline bool groupAdvantages(const std::vector<double> &rewards, int64_t groupSize,
                            bool normalizeStd, double eps, std::vector<double> &out,
                            std::string &error) {
  const int64_t n = int64_t(rewards.size());
  if (groupSize < (normalizeStd ? 2 : 1)) {
    error = "group size " + std::to_string(groupSize) + " is too small; expected at least " +
            (normalizeStd ? "2 for group-norm advantages (unbiased std)" : "1");
    return false;
  }
  if (n % groupSize != 0) {
    error = std::to_string(n) + " rewards do not split into groups of " +
            std::to_string(groupSize) + "; expected a multiple of the group size";
    return false;
  }
  if (!(eps >= 0) || !std::isfinite(eps)) {
    error = "advantage eps " + std::to_string(eps) + " is invalid; expected a finite eps >= 0";
    return false;
  }
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(rewards[i])) {
      error = "reward of row " + std::to_string(i) + " is not finite";
      return false;
    }
  std::vector<double> result(rewards.size());
  for (int64_t g = 0; g < n; g += groupSize) {
    double sum = 0;
    for (int64_t i = g; i < g + groupSize; ++i)
      sum += rewards[i];
    const double mean = sum / double(groupSize);
    double denominator = 1;
    if (normalizeStd) {
      double squares = 0;
      for (int64_t i = g; i < g + groupSize; ++i)
        squares += (rewards[i] - mean) * (rewards[i] - mean);
      denominator = std::sqrt(squares / double(groupSize - 1)) + eps;
    }
    for (int64_t i = g; i < g + groupSize; ++i)
      result[i] = denominator == 0 ? 0.0 : (rewards[i] - mean) / denominator;
  }
  out = std::move(result);
  return true;
}

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_GRPOADVANTAGES_H
