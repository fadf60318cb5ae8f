//===- KilnMoEGrads.cpp - gradient rules of routing and expert ops --------===//
//
// Gradients flow through the routing weights, never the indices; the
// balancing bias only selects experts and gets none.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"

using namespace mlir;

namespace kiln {

LogicalResult RouterOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  if (!ctx.resultGrad(1))
    return success();
  ctx.setOperandGrad(0, RouterGradOp::create(
                            b, ctx.loc(), getLogits().getType(), ctx.operand(0),
                            ctx.result(0), ctx.resultGrad(1), getScoringAttr(),
                            getNormTopkProbAttr(), getRoutedScalingFactorAttr()));
  return success();
}

LogicalResult DispatchOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  int64_t topK = cast<ShapedType>(getIndices().getType()).getShape()[1];
  ctx.setOperandGrad(0, DispatchGradOp::create(b, ctx.loc(), getX().getType(),
                                               ctx.resultGradOrZeros(b, 0), ctx.result(2),
                                               b.getI64IntegerAttr(topK)));
  return success();
}

LogicalResult GroupedMatmulOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  Value dy = ctx.resultGradOrZeros(b, 0);
  auto dgrad = GroupedMatmulDgradOp::create(b, ctx.loc(), getX().getType(), dy, ctx.operand(1),
                                            ctx.operand(2));
  auto wgrad = GroupedMatmulWgradOp::create(b, ctx.loc(), getWeight().getType(), dy,
                                            ctx.operand(0), ctx.operand(2));
  // kiln-mixed-precision's FP8 mark covers all three GEMMs (kiln-lower-fp8).
  if (Attribute fp8 = (*this)->getDiscardableAttr(kFp8Attr)) {
    dgrad->setDiscardableAttr(kFp8Attr, fp8);
    wgrad->setDiscardableAttr(kFp8Attr, fp8);
  }
  ctx.setOperandGrad(0, dgrad);
  ctx.setOperandGrad(1, wgrad);
  return success();
}

LogicalResult CombineOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  auto grad = CombineGradOp::create(b, ctx.loc(), getRows().getType(),
                                    getWeights().getType(), ctx.operand(0), ctx.operand(1),
                                    ctx.operand(2), ctx.resultGradOrZeros(b, 0));
  ctx.setOperandGrad(0, grad.getDrows());
  ctx.setOperandGrad(1, grad.getDweights());
  return success();
}

LogicalResult BalanceLossOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  if (!ctx.resultGrad(0))
    return success();
  ctx.setOperandGrad(0, BalanceLossGradOp::create(
                            b, ctx.loc(), getLogits().getType(), ctx.operand(0),
                            ctx.operand(1), ctx.resultGrad(0), getScoringAttr(),
                            getNumSequencesAttr(), getTotalSequencesAttr()));
  return success();
}

LogicalResult SegmentTransposeOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  // The inverse reorders the gradient back; its offsets count the other
  // dimension of `counts`.
  ArrayRef<int64_t> counts = cast<ShapedType>(getCounts().getType()).getShape();
  auto offsetsType = RankedTensorType::get({counts[getInverse() ? 1 : 0] + 1},
                                           cast<ShapedType>(getOffsets().getType()).getElementType());
  auto undo = SegmentTransposeOp::create(b, ctx.loc(), getX().getType(), offsetsType,
                                         ctx.resultGradOrZeros(b, 0), ctx.operand(1),
                                         b.getBoolAttr(!getInverse()));
  ctx.setOperandGrad(0, undo.getResult());
  return success();
}

} // namespace kiln
