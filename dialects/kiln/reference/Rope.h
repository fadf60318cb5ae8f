//===- Rope.h - RoPE / YaRN frequency math of the reference evaluator -----===//
//
// Exposed so that tests (and later, generated kernels' host mirrors) can
// check the frequencies on their own.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_ROPE_H
#define KILN_REFERENCE_ROPE_H

#include <cstdint>
#include <optional>
#include <vector>

namespace kiln {
class RopeOp;
} // namespace kiln

namespace kiln::reference {

struct YarnParams {
  double factor, originalMaxPositions, betaFast, betaSlow, mscale, mscaleAllDim;
};

/// inv_freq[i], i in [0, dim/2), as #kiln.yarn's description defines it.
std::vector<double> ropeInverseFrequencies(int64_t dim, double theta,
                                           const std::optional<YarnParams> &yarn);

/// YaRN's m(scale, mscale) = 0.1 * mscale * ln(scale) + 1 (1 when scale <= 1).
double yarnMagnitude(double factor, double mscale);

std::optional<YarnParams> yarnParamsOf(RopeOp op);

} // namespace kiln::reference

#endif // KILN_REFERENCE_ROPE_H
