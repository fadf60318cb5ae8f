//===- AsTyped.h - rounding a value to its declared element type ----------===//
//
// The evaluator's as-typed mode (../shared/DESIGN.md: "every result rounded
// to its declared element type exactly as hardware does"). Kiln's kernels
// compute in f32 and store the declared type, so a value is rounded twice:
// to f32 (for one correctly rounded f64 operation this equals the f32
// operation itself: 53 >= 2 x 24 + 2 bits, so f64-then-f32 never double-
// rounds), then to the element type with round-to-nearest-even.
//
// This is written with llvm::APFloat, independently of the kernels'
// bit-level code (runtime/kernels/PrecisionMath.h); PrecisionAsTypedTest
// holds the two to the same bits. One difference is Kiln's choice, not
// APFloat's: f8E4M3FN saturates (finite past 448 and +-inf become +-448)
// where APFloat's conversion overflows to NaN; PrecisionMath.h says why.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_ASTYPED_H
#define KILN_REFERENCE_ASTYPED_H

#include "mlir/IR/Types.h"

namespace kiln::reference {

/// True for the float element types the as-typed mode rounds to: f64, f32,
/// bf16, f16, f8E4M3FN, f8E5M2.
bool isAsTypedFloat(mlir::Type elementType);

/// `x` as a value of `elementType` (see the file comment); f64 and integer
/// types leave it unchanged.
double roundAsTyped(double x, mlir::Type elementType);

} // namespace kiln::reference

#endif // KILN_REFERENCE_ASTYPED_H
