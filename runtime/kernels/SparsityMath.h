//===- SparsityMath.h - 2:4 structured sparsity: selection and metadata ---===//
//
// The per-group math of 2:4 sparsity (kiln-sparsity-2-4), shared by the
// host kernels, the reference evaluator and the CUDA kernels: in every group
// of 4 consecutive values along a weight's input dimension (the layout
// sparse tensor cores read), the 2 of largest magnitude are kept. NaN counts
// as the largest magnitude (a diverged weight stays visible instead of being
// pruned away), and ties go to the lower index, so the choice is a pure
// function of the 4 values.
//
// The compressed form (Sparsity24.h) stores, per group, the two kept values
// and a 4-bit metadata nibble as PTX's mma.sp reads it for 16-bit operands:
// the lower kept index in bits 0-1, the higher in bits 2-3. The six valid
// nibbles are 0x4 (0,1), 0x8 (0,2), 0xC (0,3), 0x9 (1,2), 0xD (1,3) and
// 0xE (2,3).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPARSITYMATH_H
#define KILN_RUNTIME_SPARSITYMATH_H

#include "runtime/kernels/KernelMath.h"

namespace kiln::kernels {

/// |v| with NaN as +infinity: the magnitude order of 2:4 selection.
KILN_HD float sparsityMagnitude(float v) {
  float m = fabsf(v);
  return m != m ? INFINITY : m;
}

/// The 2 of the 4 values `w[0..3]` 2:4 sparsity keeps, as a 4-bit mask
/// (bit j set: w[j] kept).
KILN_HD unsigned keep2of4(const float *w) {
  unsigned first = 0;
  for (unsigned j = 1; j < 4; ++j)
    if (sparsityMagnitude(w[j]) > sparsityMagnitude(w[first]))
      first = j;
  unsigned second = first == 0 ? 1 : 0;
  for (unsigned j = second + 1; j < 4; ++j)
    if (j != first && sparsityMagnitude(w[j]) > sparsityMagnitude(w[second]))
      second = j;
  return (1u << first) | (1u << second);
}

/// The mma.sp metadata nibble of a 2-bit mask of exactly two groups
/// positions: the lower index in bits 0-1, the higher in bits 2-3.
KILN_HD unsigned metadataNibble(unsigned keepMask) {
  unsigned low = 0;
  while (!(keepMask & (1u << low)))
    ++low;
  unsigned high = low + 1;
  while (!(keepMask & (1u << high)))
    ++high;
  return low | (high << 2);
}

/// Whether `nibble` is one of the six valid metadata nibbles.
KILN_HD bool isValidMetadataNibble(unsigned nibble) {
  unsigned low = nibble & 3u, high = nibble >> 2;
  return nibble < 16 && low < high;
}

/// What kiln.sparsity_mask_2_4 does at 1-based `step`.
enum class MaskStep { Dense, Select, Keep };
KILN_HD MaskStep maskStep(int64_t step, int64_t startStep, int64_t maskEvery) {
  if (step < startStep)
    return MaskStep::Dense;
  if (step == startStep || (maskEvery > 0 && (step - startStep) % maskEvery == 0))
    return MaskStep::Select;
  return MaskStep::Keep;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_SPARSITYMATH_H
