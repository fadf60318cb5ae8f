//===- KilnCollectiveGrads.cpp - gradient rules of the collectives --------===//
//
// In an SPMD program the loss is the sum of every rank's loss, so the
// adjoint of each collective is the collective that moves gradients back
// along the same edges: all_gather <-> reduce_scatter, all_reduce sum is
// self-adjoint, all_to_all's adjoint is the reverse exchange, send <-> recv.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"

using namespace mlir;

namespace kiln {

LogicalResult AllReduceOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  Location loc = ctx.loc();
  Value dy = ctx.resultGradOrZeros(b, 0);
  auto sumAttr = b.getStringAttr("sum");
  Value summed = AllReduceOp::create(b, loc, dy.getType(), dy, sumAttr, getAxesAttr());
  if (getKind() == "sum") {
    ctx.setOperandGrad(0, summed);
    return success();
  }
  // max: the ranks holding the maximum share the summed gradient equally.
  Value x = ctx.operand(0), y = ctx.result(0);
  auto holds = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, y);
  Value indicator = arith::UIToFPOp::create(b, loc, x.getType(), holds);
  Value holders = AllReduceOp::create(b, loc, x.getType(), indicator, sumAttr, getAxesAttr());
  Value share = arith::DivFOp::create(b, loc, indicator, holders);
  ctx.setOperandGrad(0, arith::MulFOp::create(b, loc, summed, share));
  return success();
}

LogicalResult AllGatherOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, ReduceScatterOp::create(b, ctx.loc(), getX().getType(),
                                                ctx.resultGradOrZeros(b, 0),
                                                b.getStringAttr("sum"), getAxesAttr(),
                                                getDimAttr()));
  return success();
}

LogicalResult ReduceScatterOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, AllGatherOp::create(b, ctx.loc(), getX().getType(),
                                            ctx.resultGradOrZeros(b, 0), getAxesAttr(),
                                            getDimAttr()));
  return success();
}

LogicalResult AllToAllOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  // Rows came from peer p in recv_counts[p]; their gradients go back there,
  // landing where the forward's send buffer held them.
  auto back = AllToAllOp::create(b, ctx.loc(), getX().getType(), getSendCounts().getType(),
                                 ctx.resultGradOrZeros(b, 0), ctx.result(1), getAxesAttr());
  ctx.setOperandGrad(0, back.getResult());
  return success();
}

LogicalResult SendOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  ctx.setOperandGrad(0, RecvOp::create(b, ctx.loc(), getX().getType(), getAxisAttr(),
                                       getPeerAttr()));
  return success();
}

LogicalResult RecvOp::buildGradients(OpBuilder &b, GradientContext &ctx) {
  SendOp::create(b, ctx.loc(), ctx.resultGradOrZeros(b, 0), getAxisAttr(), getPeerAttr());
  return success();
}

} // namespace kiln
