//===- UpstreamGrads.cpp - gradient rules of the upstream ops Kiln IR uses ===//

#include "dialects/kiln/UpstreamGrads.h"
#include "dialects/kiln/KilnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace kiln {
namespace {

template <typename ConcreteModel, typename OpTy>
struct GradModel : public DifferentiableOpInterface::ExternalModel<ConcreteModel, OpTy> {};

struct AddFGrad : GradModel<AddFGrad, arith::AddFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    Value dy = ctx.resultGradOrZeros(b, 0);
    ctx.setOperandGrad(0, dy);
    ctx.setOperandGrad(1, dy);
    return success();
  }
};

struct SubFGrad : GradModel<SubFGrad, arith::SubFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    Value dy = ctx.resultGradOrZeros(b, 0);
    ctx.setOperandGrad(0, dy);
    ctx.setOperandGrad(1, arith::NegFOp::create(b, ctx.loc(), dy));
    return success();
  }
};

struct NegFGrad : GradModel<NegFGrad, arith::NegFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    ctx.setOperandGrad(0, arith::NegFOp::create(b, ctx.loc(), ctx.resultGradOrZeros(b, 0)));
    return success();
  }
};

// Precision conversions: the gradient goes back to the operand's type, as
// the backward of a PyTorch autocast cast does (a bf16 weight copy's
// gradient reaches the f32 master weight widened, exactly).
struct TruncFGrad : GradModel<TruncFGrad, arith::TruncFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    ctx.setOperandGrad(0, arith::ExtFOp::create(b, ctx.loc(), op->getOperand(0).getType(),
                                                ctx.resultGradOrZeros(b, 0)));
    return success();
  }
};

struct ExtFGrad : GradModel<ExtFGrad, arith::ExtFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    ctx.setOperandGrad(0, arith::TruncFOp::create(b, ctx.loc(), op->getOperand(0).getType(),
                                                  ctx.resultGradOrZeros(b, 0)));
    return success();
  }
};

struct MulFGrad : GradModel<MulFGrad, arith::MulFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    Value dy = ctx.resultGradOrZeros(b, 0);
    ctx.setOperandGrad(0, arith::MulFOp::create(b, ctx.loc(), dy, ctx.operand(1)));
    ctx.setOperandGrad(1, arith::MulFOp::create(b, ctx.loc(), dy, ctx.operand(0)));
    return success();
  }
};

struct DivFGrad : GradModel<DivFGrad, arith::DivFOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    // d(a / b) = da / b - a db / b^2 = (dy / b, -(dy * y) / b) with y = a / b.
    Value dy = ctx.resultGradOrZeros(b, 0);
    Value da = arith::DivFOp::create(b, ctx.loc(), dy, ctx.operand(1));
    Value dyy = arith::MulFOp::create(b, ctx.loc(), dy, ctx.result(0));
    Value db = arith::NegFOp::create(b, ctx.loc(),
                                     arith::DivFOp::create(b, ctx.loc(), dyy, ctx.operand(1)));
    ctx.setOperandGrad(0, da);
    ctx.setOperandGrad(1, db);
    return success();
  }
};

struct ExtractSliceGrad : GradModel<ExtractSliceGrad, tensor::ExtractSliceOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    auto slice = cast<tensor::ExtractSliceOp>(op);
    Value zeros = buildZeros(b, ctx.loc(), slice.getSource().getType());
    ctx.setOperandGrad(0, tensor::InsertSliceOp::create(
                              b, ctx.loc(), ctx.resultGradOrZeros(b, 0), zeros,
                              slice.getMixedOffsets(), slice.getMixedSizes(),
                              slice.getMixedStrides()));
    return success();
  }
};

struct InsertSliceGrad : GradModel<InsertSliceGrad, tensor::InsertSliceOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    auto insert = cast<tensor::InsertSliceOp>(op);
    Value dy = ctx.resultGradOrZeros(b, 0);
    ctx.setOperandGrad(0, tensor::ExtractSliceOp::create(
                              b, ctx.loc(), insert.getSourceType(), dy,
                              insert.getMixedOffsets(), insert.getMixedSizes(),
                              insert.getMixedStrides()));
    Value zeros = buildZeros(b, ctx.loc(), insert.getSourceType());
    ctx.setOperandGrad(1, tensor::InsertSliceOp::create(
                              b, ctx.loc(), zeros, dy, insert.getMixedOffsets(),
                              insert.getMixedSizes(), insert.getMixedStrides()));
    return success();
  }
};

struct ConcatGrad : GradModel<ConcatGrad, tensor::ConcatOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    auto concat = cast<tensor::ConcatOp>(op);
    Value dy = ctx.resultGradOrZeros(b, 0);
    ArrayRef<int64_t> shape = concat.getResultType().getShape();
    int64_t dim = concat.getDim(), offset = 0;
    for (auto [i, input] : llvm::enumerate(concat.getInputs())) {
      auto type = cast<RankedTensorType>(input.getType());
      SmallVector<OpFoldResult> offsets, sizes, strides;
      for (int64_t d = 0; d < (int64_t)shape.size(); ++d) {
        offsets.push_back(b.getIndexAttr(d == dim ? offset : 0));
        sizes.push_back(b.getIndexAttr(type.getShape()[d]));
        strides.push_back(b.getIndexAttr(1));
      }
      ctx.setOperandGrad(i, tensor::ExtractSliceOp::create(b, ctx.loc(), type, dy, offsets,
                                                           sizes, strides));
      offset += type.getShape()[dim];
    }
    return success();
  }
};

struct ExpandShapeGrad : GradModel<ExpandShapeGrad, tensor::ExpandShapeOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    auto expand = cast<tensor::ExpandShapeOp>(op);
    ctx.setOperandGrad(0, tensor::CollapseShapeOp::create(
                              b, ctx.loc(), expand.getSrcType(), ctx.resultGradOrZeros(b, 0),
                              expand.getReassociationIndices()));
    return success();
  }
};

struct CollapseShapeGrad : GradModel<CollapseShapeGrad, tensor::CollapseShapeOp> {
  LogicalResult buildGradients(Operation *op, OpBuilder &b, GradientContext &ctx) const {
    auto collapse = cast<tensor::CollapseShapeOp>(op);
    ctx.setOperandGrad(0, tensor::ExpandShapeOp::create(
                              b, ctx.loc(), collapse.getSrcType(),
                              ctx.resultGradOrZeros(b, 0),
                              collapse.getReassociationIndices()));
    return success();
  }
};

} // namespace

void registerUpstreamGradientModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, arith::ArithDialect *) {
    arith::AddFOp::attachInterface<AddFGrad>(*ctx);
    arith::SubFOp::attachInterface<SubFGrad>(*ctx);
    arith::NegFOp::attachInterface<NegFGrad>(*ctx);
    arith::MulFOp::attachInterface<MulFGrad>(*ctx);
    arith::DivFOp::attachInterface<DivFGrad>(*ctx);
    arith::TruncFOp::attachInterface<TruncFGrad>(*ctx);
    arith::ExtFOp::attachInterface<ExtFGrad>(*ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, tensor::TensorDialect *) {
    tensor::ExtractSliceOp::attachInterface<ExtractSliceGrad>(*ctx);
    tensor::InsertSliceOp::attachInterface<InsertSliceGrad>(*ctx);
    tensor::ConcatOp::attachInterface<ConcatGrad>(*ctx);
    tensor::ExpandShapeOp::attachInterface<ExpandShapeGrad>(*ctx);
    tensor::CollapseShapeOp::attachInterface<CollapseShapeGrad>(*ctx);
  });
}

} // namespace kiln
