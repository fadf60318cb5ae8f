//===- RefTensor.h - a tensor value of the reference evaluator ------------===//
//
// The evaluator computes in f64 whatever the declared element type ("ideal"
// mode: the math's ground truth). Integer tensors (token ids, expert indices,
// offsets) are stored as exact doubles too; every integer Kiln handles fits
// in 53 bits.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_REFTENSOR_H
#define KILN_REFERENCE_REFTENSOR_H

#include "mlir/IR/Types.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <vector>

namespace kiln::reference {

struct RefTensor {
  mlir::Type elementType; ///< the declared element type (f32, i32, ...)
  llvm::SmallVector<int64_t, 4> shape;
  std::vector<double> data; ///< row-major

  RefTensor() = default;
  RefTensor(mlir::Type elementType, llvm::ArrayRef<int64_t> shape, double fill = 0.0)
      : elementType(elementType), shape(shape.begin(), shape.end()),
        data(numElementsOf(shape), fill) {}

  static int64_t numElementsOf(llvm::ArrayRef<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  int64_t numElements() const { return static_cast<int64_t>(data.size()); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  /// Product of all dimensions but the last: the number of rows when the
  /// tensor is seen as [rows, shape.back()].
  int64_t leadingElements() const {
    return shape.empty() ? 1 : numElements() / shape.back();
  }
  llvm::SmallVector<int64_t, 4> strides() const {
    llvm::SmallVector<int64_t, 4> s(shape.size(), 1);
    for (int64_t i = rank() - 2; i >= 0; --i)
      s[i] = s[i + 1] * shape[i + 1];
    return s;
  }
};

} // namespace kiln::reference

#endif // KILN_REFERENCE_REFTENSOR_H
