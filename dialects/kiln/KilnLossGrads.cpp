//===- KilnLossGrads.cpp - gradient rules of the losses ---------------------===//

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

LogicalResult GrpoLossOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  if (!ctx.resultGrad(0))
    return success();
  // Only the logits are trained through: the mask, advantages and the old
  // and reference log-probabilities are data.
  ctx.setOperandGrad(0, GrpoLossGradOp::create(
                            b, ctx.loc(), getLogits().getType(), ctx.operand(0), ctx.operand(1),
                            ctx.operand(2), ctx.operand(3), ctx.operand(4), ctx.operand(5),
                            ctx.resultGrad(0), getCount() ? ctx.forward(getCount()) : Value(),
                            getTemperatureAttr(), getClipLowAttr(), getClipHighAttr(),
                            getBetaAttr(), getAggregationAttr(), getMaxTokensAttr()));
  return success();
}

} // namespace kiln
