//===- GradientContext.h - what a gradient rule reads and writes ----------===//

#ifndef KILN_GRADIENTCONTEXT_H
#define KILN_GRADIENTCONTEXT_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"

#include <functional>

namespace kiln {

/// The interface between kiln-autodiff and one op's gradient rule.
class GradientContext {
public:
  GradientContext(mlir::Operation *op, llvm::ArrayRef<mlir::Value> resultGrads,
                  std::function<mlir::Value(mlir::Value)> forward)
      : op(op), resultGrads(resultGrads.begin(), resultGrads.end()),
        operandGrads(op->getNumOperands()), forwardValue(std::move(forward)) {}

  /// The forward value `v` (an operand or result of the op, or any value
  /// it depends on) as seen where the backward is being built.
  mlir::Value forward(mlir::Value v) { return forwardValue(v); }
  mlir::Value operand(unsigned i) { return forward(op->getOperand(i)); }
  mlir::Value result(unsigned i) { return forward(op->getResult(i)); }

  /// The gradient of result `i`; null when nothing depends on it.
  mlir::Value resultGrad(unsigned i) const { return resultGrads[i]; }
  /// The gradient of result `i`, zeros when nothing depends on it.
  mlir::Value resultGradOrZeros(mlir::OpBuilder &b, unsigned i);

  void setOperandGrad(unsigned i, mlir::Value grad) { operandGrads[i] = grad; }
  llvm::ArrayRef<mlir::Value> getOperandGrads() const { return operandGrads; }

  mlir::Location loc() const { return op->getLoc(); }

private:
  mlir::Operation *op;
  llvm::SmallVector<mlir::Value> resultGrads;
  llvm::SmallVector<mlir::Value> operandGrads;
  std::function<mlir::Value(mlir::Value)> forwardValue;
};

/// A zero tensor of `type` (an arith.constant splat).
mlir::Value buildZeros(mlir::OpBuilder &b, mlir::Location loc, mlir::Type type);

} // namespace kiln

#endif // KILN_GRADIENTCONTEXT_H
