//===- KilnLossGrads.cpp - gradient rule of cross_entropy -----------------===//

#include "dialects/kiln/KilnDialect.h"

using namespace mlir;

namespace kiln {

LogicalResult CrossEntropyOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  if (!ctx.resultGrad(0))
    return success();
  // The mask weights positions; it is data, not something to train.
  ctx.setOperandGrad(0, CrossEntropyGradOp::create(
                            b, ctx.loc(), getLogits().getType(), ctx.operand(0),
                            ctx.operand(1), ctx.operand(2), ctx.resultGrad(0),
                            getCount() ? ctx.forward(getCount()) : Value(),
                            getLabelSmoothingAttr()));
  return success();
}

} // namespace kiln
