//===- DenseMath.h - row math shared by forward and backward rules --------===//
//
// sigmoid, a max-shifted softmax and the RMS statistic, written once so that
// a backward rule recomputes exactly the numbers its forward rule produced
// (silu/swiglu and their grads, the router's scores, attention probabilities,
// cross_entropy's softmax, rms_norm's 1/rms).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_DENSEMATH_H
#define KILN_REFERENCE_DENSEMATH_H

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kiln::reference {

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// Replaces x[0..n), n >= 1, by softmax(x): exp(x - max) / sum, so large
/// values do not overflow.
inline void softmaxInPlace(double *x, int64_t n) {
  double m = *std::max_element(x, x + n), sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += (x[i] = std::exp(x[i] - m));
  for (int64_t i = 0; i < n; ++i)
    x[i] /= sum;
}

/// 1 / sqrt(mean(x[0..h)^2) + epsilon): rms_norm's per-row factor.
inline double rmsInverse(const double *x, int64_t h, double epsilon) {
  double ss = 0;
  for (int64_t j = 0; j < h; ++j)
    ss += x[j] * x[j];
  return 1.0 / std::sqrt(ss / h + epsilon);
}

} // namespace kiln::reference

#endif // KILN_REFERENCE_DENSEMATH_H
