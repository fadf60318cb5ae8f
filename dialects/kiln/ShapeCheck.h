//===- ShapeCheck.h - shared pieces of kiln op verifiers ------------------===//
//
// Verifier messages name the operand and give expected vs actual shapes
// ("expects gamma of shape [64], got [32]"); these helpers keep that wording
// identical across op families.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_SHAPECHECK_H
#define KILN_SHAPECHECK_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"
#include "llvm/ADT/ArrayRef.h"

#include <string>

namespace kiln {

/// "[4, 32, 64]".
std::string formatShape(llvm::ArrayRef<int64_t> shape);

inline llvm::ArrayRef<int64_t> shapeOf(mlir::Value v) {
  return llvm::cast<mlir::ShapedType>(v.getType()).getShape();
}

/// Fails with "expects <name> of shape <expected>, got <actual>" unless equal.
mlir::LogicalResult expectShape(mlir::Operation *op, llvm::StringRef name,
                                llvm::ArrayRef<int64_t> actual,
                                llvm::ArrayRef<int64_t> expected);

/// Fails with "expects <name> of rank <rank>, got <actual rank> (shape ...)".
mlir::LogicalResult expectRank(mlir::Operation *op, llvm::StringRef name,
                               llvm::ArrayRef<int64_t> shape, int64_t rank);

/// Fails unless `a` and `b` have the same element type.
mlir::LogicalResult expectSameElementType(mlir::Operation *op,
                                          llvm::StringRef aName, mlir::Value a,
                                          llvm::StringRef bName, mlir::Value b);

} // namespace kiln

#endif // KILN_SHAPECHECK_H
