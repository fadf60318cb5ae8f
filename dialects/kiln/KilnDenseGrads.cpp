//===- KilnDenseGrads.cpp - gradient rules of embedding, linear, norms ----===//

#include "dialects/kiln/KilnDialect.h"

using namespace mlir;

namespace kiln {

LogicalResult EmbeddingOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, EmbeddingGradOp::create(b, ctx.loc(), getTable().getType(),
                                                ctx.resultGradOrZeros(b, 0), ctx.operand(1)));
  return success();
}

LogicalResult LinearOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  Value dy = ctx.resultGradOrZeros(b, 0);
  auto dgrad = LinearDgradOp::create(b, ctx.loc(), getX().getType(), dy, ctx.operand(1));
  auto wgrad = LinearWgradOp::create(b, ctx.loc(), getWeight().getType(), dy, ctx.operand(0));
  // A linear that kiln-mixed-precision marked for FP8 runs its Dgrad and
  // Wgrad in FP8 too; kiln-lower-fp8 lowers all three.
  if (Attribute fp8 = (*this)->getDiscardableAttr(kFp8Attr)) {
    dgrad->setDiscardableAttr(kFp8Attr, fp8);
    wgrad->setDiscardableAttr(kFp8Attr, fp8);
  }
  ctx.setOperandGrad(0, dgrad);
  ctx.setOperandGrad(1, wgrad);
  return success();
}

LogicalResult MatmulOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  auto grad = MatmulGradOp::create(b, ctx.loc(), getLhs().getType(), getRhs().getType(),
                                   ctx.operand(0), ctx.operand(1), ctx.resultGradOrZeros(b, 0),
                                   getTransposeLhsAttr(), getTransposeRhsAttr());
  ctx.setOperandGrad(0, grad.getDlhs());
  ctx.setOperandGrad(1, grad.getDrhs());
  return success();
}

LogicalResult RMSNormOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  auto grad = RMSNormGradOp::create(b, ctx.loc(), getX().getType(), getGamma().getType(),
                                    ctx.resultGradOrZeros(b, 0), ctx.operand(0),
                                    ctx.operand(1), getEpsilonAttr());
  ctx.setOperandGrad(0, grad.getDx());
  ctx.setOperandGrad(1, grad.getDgamma());
  return success();
}

LogicalResult SiluOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, SiluGradOp::create(b, ctx.loc(), getX().getType(),
                                           ctx.resultGradOrZeros(b, 0), ctx.operand(0)));
  return success();
}

LogicalResult SwigluOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  auto grad = SwigluGradOp::create(b, ctx.loc(), getGate().getType(), getUp().getType(),
                                   ctx.resultGradOrZeros(b, 0), ctx.operand(0), ctx.operand(1));
  ctx.setOperandGrad(0, grad.getDgate());
  ctx.setOperandGrad(1, grad.getDup());
  return success();
}

LogicalResult ScaleOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, ScaleOp::create(b, ctx.loc(), getX().getType(),
                                        ctx.resultGradOrZeros(b, 0), getFactorAttr()));
  return success();
}

LogicalResult BroadcastOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, UnbroadcastOp::create(b, ctx.loc(), getX().getType(),
                                              ctx.resultGradOrZeros(b, 0)));
  return success();
}

} // namespace kiln
