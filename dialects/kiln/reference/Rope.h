//===- Rope.h - RoPE / YaRN frequency math of the reference evaluator -----===//
//
// Exposed so that tests (and later, generated kernels' host mirrors) can
// check the frequencies on their own.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_ROPE_H
#define KILN_REFERENCE_ROPE_H

#include "runtime/kernels/RopeMath.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace kiln {
class RopeOp;
} // namespace kiln

namespace kiln::reference {

// The frequency math is the runtime's (runtime/kernels/RopeMath.h), so the
// reference and the kernels cannot drift apart.
using YarnParams = kernels::YarnConfig;
using kernels::ropeInverseFrequencies;
using kernels::ropeMagnitude;
using kernels::yarnMagnitude;

std::optional<YarnParams> yarnParamsOf(RopeOp op);

} // namespace kiln::reference

#endif // KILN_REFERENCE_ROPE_H
