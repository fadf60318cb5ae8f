//===- KilnAttentionGrads.cpp - gradient rules of rope and attention ------===//

#include "dialects/kiln/KilnDialect.h"

using namespace mlir;

namespace kiln {

LogicalResult RopeOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  // A rope is an orthogonal map (times the YaRN magnitude): its transpose,
  // the rotation by -angle, carries the gradient back.
  ctx.setOperandGrad(0, RopeOp::create(b, ctx.loc(), getX().getType(),
                                       ctx.resultGradOrZeros(b, 0), getStart(), getThetaAttr(),
                                       getInterleavedAttr(), getYarnAttr(),
                                       b.getBoolAttr(!getTranspose())));
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  auto grad = AttentionGradOp::create(
      b, ctx.loc(), getQ().getType(), getK().getType(), getV().getType(), ctx.operand(0),
      ctx.operand(1), ctx.operand(2), ctx.resultGradOrZeros(b, 0), getScaleAttr(),
      getCausalAttr());
  ctx.setOperandGrad(0, grad.getDq());
  ctx.setOperandGrad(1, grad.getDk());
  ctx.setOperandGrad(2, grad.getDv());
  return success();
}

} // namespace kiln
