//===- OneDnnMatmul.h - bf16 GEMMs through oneDNN on the host -------------===//
//
// The host's bf16 GEMMs (NarrowGemm.h) through oneDNN's matmul primitive,
// when Kiln is built with it (Debian's libdnnl-dev; KILN_HAVE_DNNL): oneDNN
// runs bf16 x bf16 products on the CPU's AMX or AVX512-BF16 units where
// there are, with f32 accumulation, and stores each result rounded to bf16
// once (to nearest even, as narrowTo<Bf16>). Only the summation order
// differs from the widen-to-f32 path, as it does between any two GEMMs.
//
// One primitive per exact shape and operand layouts (oneDNN's AMX kernels
// need static sizes); the grouped expert GEMMs, whose rows per expert change
// every step, split the rows so that few shapes recur (OneDnnMatmul.cpp).
// Primitives are created under a lock and cached for the process; oneDNN
// runs them on the program's OpenMP threads.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ONEDNNMATMUL_H
#define KILN_RUNTIME_ONEDNNMATMUL_H

#include "runtime/kernels/PrecisionMath.h"

#include <cstdint>

namespace kiln::kernels::onednn {

/// Whether this build has oneDNN (else the callers widen to f32).
bool available();

/// c [m, n] = a [m, k] x b [k, n], every operand bf16 and addressed by
/// strides (row, column) in elements, so transposes are views. `depthVaries`
/// says that k changes from call to call (an expert's rows, in its weight
/// gradient): one primitive then takes every k.
void matmulBf16(Bf16 *c, const Bf16 *a, const Bf16 *b, int64_t m, int64_t k, int64_t n,
                int64_t aRowStride, int64_t aColStride, int64_t bRowStride, int64_t bColStride,
                bool depthVaries = false);

} // namespace kiln::kernels::onednn

#endif // KILN_RUNTIME_ONEDNNMATMUL_H
