//===- AsTyped.cpp - rounding a value to its declared element type --------===//

#include "dialects/kiln/reference/AsTyped.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/APFloat.h"

#include <cmath>

using namespace mlir;

namespace kiln::reference {

bool isAsTypedFloat(Type t) {
  return isa<Float64Type, Float32Type, BFloat16Type, Float16Type, Float8E4M3FNType,
             Float8E5M2Type>(t);
}

double roundAsTyped(double x, Type t) {
  if (!isa<FloatType>(t) || isa<Float64Type>(t))
    return x;
  const float f32 = float(x); // the kernels' f32 result
  if (isa<Float32Type>(t))
    return f32;
  const llvm::fltSemantics &semantics = cast<FloatType>(t).getFloatSemantics();
  llvm::APFloat value(f32);
  bool losesInfo = false;
  const llvm::APFloat::opStatus status =
      value.convert(semantics, llvm::APFloat::rmNearestTiesToEven, &losesInfo);
  // f8E4M3FN has no infinity: APFloat overflows it to NaN; Kiln saturates.
  if (isa<Float8E4M3FNType>(t) && !std::isnan(f32) &&
      (std::isinf(f32) || (status & llvm::APFloat::opOverflow) || value.isNaN()))
    return std::signbit(f32) ? -448.0 : 448.0;
  bool ignored = false;
  value.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven, &ignored);
  return value.convertToDouble();
}

} // namespace kiln::reference
