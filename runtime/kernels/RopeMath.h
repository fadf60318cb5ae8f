//===- RopeMath.h - RoPE / YaRN frequencies, shared by kernels and reference ===//
//
// The rotary frequencies and YaRN magnitude of kiln.rope (see #kiln.yarn in
// KilnAttrs.td), in f64. Header-only and dependency-free, so that the host
// kernels and the compiler's reference evaluator compute them with the very
// same code.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ROPEMATH_H
#define KILN_RUNTIME_ROPEMATH_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::kernels {

/// The parameters of #kiln.yarn (KilnAttrs.td).
struct YarnConfig {
  double factor, originalMaxPositions, betaFast, betaSlow, mscale, mscaleAllDim;
};

/// YaRN's m(scale, mscale) = 0.1 * mscale * ln(scale) + 1 (1 when scale <= 1).
inline double yarnMagnitude(double factor, double mscale) {
  return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

/// The magnitude that scales cos and sin: m(factor, mscale) /
/// m(factor, mscale_all_dim), or 1 without YaRN.
inline double ropeMagnitude(const YarnConfig *yarn) {
  return yarn ? yarnMagnitude(yarn->factor, yarn->mscale) /
                    yarnMagnitude(yarn->factor, yarn->mscaleAllDim)
              : 1.0;
}

/// inv_freq[i], i in [0, dim / 2): theta^(-2i / dim), blended toward
/// inv_freq / factor over YaRN's correction range when `yarn` is given.
inline std::vector<double> ropeInverseFrequencies(int64_t dim, double theta,
                                                  const YarnConfig *yarn) {
  int64_t half = dim / 2;
  std::vector<double> inv(half);
  for (int64_t i = 0; i < half; ++i)
    inv[i] = std::pow(theta, -2.0 * double(i) / double(dim));
  if (!yarn)
    return inv;
  auto correctionDim = [&](double rotations) {
    return dim * std::log(yarn->originalMaxPositions / (rotations * 2 * M_PI)) /
           (2 * std::log(theta));
  };
  double low = std::max(std::floor(correctionDim(yarn->betaFast)), 0.0);
  double high = std::min(std::ceil(correctionDim(yarn->betaSlow)), double(dim - 1));
  if (low == high)
    high += 0.001; // as DeepSeek's yarn_linear_ramp_mask: avoid 0/0
  for (int64_t i = 0; i < half; ++i) {
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolation = inv[i], interpolation = inv[i] / yarn->factor;
    inv[i] = interpolation * ramp + extrapolation * (1 - ramp);
  }
  return inv;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_ROPEMATH_H
