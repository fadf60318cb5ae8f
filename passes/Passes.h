//===- Passes.h - Kiln passes ---------------------------------------------===//

#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace kiln {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The bytes of a statically shaped tensor of `type` (sub-byte elements
/// round up to a byte), as the passes' reports and cost models count them.
inline int64_t bytesOf(mlir::Type type) {
  auto shaped = mlir::cast<mlir::ShapedType>(type);
  return shaped.getNumElements() * int64_t((shaped.getElementTypeBitWidth() + 7) / 8);
}

} // namespace kiln

#endif // KILN_PASSES_PASSES_H
