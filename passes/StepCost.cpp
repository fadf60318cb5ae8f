//===- StepCost.cpp - what a training step computes and keeps, priced -----===//

#include "passes/StepCost.h"
#include "passes/Passes.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;

namespace kiln {
namespace {

int64_t elementsOf(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  return shaped && shaped.hasStaticShape() ? shaped.getNumElements() : 1;
}

int64_t dim(Value v, int64_t fromBack) {
  ArrayRef<int64_t> shape = cast<ShapedType>(v.getType()).getShape();
  return shape[shape.size() - fromBack];
}

/// 2 x result elements x K.
double gemmFlops(Operation *op, int64_t k) {
  return 2.0 * double(elementsOf(op->getResult(0).getType())) * double(k);
}

/// The functions that no function in `module` calls.
SmallVector<func::FuncOp> entries(ModuleOp module) {
  DenseSet<StringRef> called;
  module.walk([&](func::CallOp call) { called.insert(call.getCallee()); });
  SmallVector<func::FuncOp> result;
  for (func::FuncOp f : module.getOps<func::FuncOp>())
    if (!f.isExternal() && !called.contains(f.getSymName()))
      result.push_back(f);
  return result;
}

} // namespace

double opFlops(Operation *op, SymbolTableCollection &symbols) {
  if (auto call = dyn_cast<func::CallOp>(op)) {
    auto callee = symbols.lookupNearestSymbolFrom<func::FuncOp>(op, call.getCalleeAttr());
    return callee ? functionFlops(callee, symbols) : 0.0;
  }
  if (auto linear = dyn_cast<LinearOp>(op))
    return gemmFlops(op, dim(linear.getX(), 1));
  if (auto matmul = dyn_cast<MatmulOp>(op))
    return gemmFlops(op, dim(matmul.getLhs(), matmul.getTransposeLhs() ? 2 : 1));
  if (auto grouped = dyn_cast<GroupedMatmulOp>(op))
    return gemmFlops(op, dim(grouped.getX(), 1));
  if (auto scaled = dyn_cast<ScaledMatmulOp>(op))
    return gemmFlops(op, dim(scaled.getLhs(), scaled.getTransposeLhs() ? 2 : 1));
  if (auto scaled = dyn_cast<ScaledGroupedMatmulOp>(op))
    return gemmFlops(op, dim(scaled.getLhs(), 1));
  if (auto attention = dyn_cast<AttentionOp>(op)) {
    ArrayRef<int64_t> q = attention.getQ().getType().getShape();
    const double seq = double(q[1]), keys = attention.getCausal() ? (seq + 1) / 2 : seq;
    return 2.0 * double(q[0]) * double(q[2]) * seq * keys *
           double(q[3] + dim(attention.getV(), 1));
  }
  // Backward GEMMs: dx = dy W (K = dy's last dimension); dW = dy^T x, one
  // multiply-accumulate per element of dy per column of x.
  if (auto dgrad = dyn_cast<LinearDgradOp>(op))
    return gemmFlops(op, dim(dgrad.getDy(), 1));
  if (auto dgrad = dyn_cast<GroupedMatmulDgradOp>(op))
    return gemmFlops(op, dim(dgrad.getDy(), 1));
  if (auto wgrad = dyn_cast<LinearWgradOp>(op))
    return 2.0 * double(elementsOf(wgrad.getDy().getType())) * double(dim(wgrad.getX(), 1));
  if (auto wgrad = dyn_cast<GroupedMatmulWgradOp>(op))
    return 2.0 * double(elementsOf(wgrad.getDy().getType())) * double(dim(wgrad.getX(), 1));
  if (auto grad = dyn_cast<AttentionGradOp>(op)) {
    // About twice the forward (FlashAttention's backward recomputes the
    // scores and makes two more products).
    ArrayRef<int64_t> q = grad.getQ().getType().getShape();
    const double seq = double(q[1]), keys = grad.getCausal() ? (seq + 1) / 2 : seq;
    return 4.0 * double(q[0]) * double(q[2]) * seq * keys * double(q[3] + dim(grad.getV(), 1));
  }
  double flops = 0;
  for (Value result : op->getResults())
    flops += double(elementsOf(result.getType()));
  return flops;
}

double functionFlops(func::FuncOp f, SymbolTableCollection &symbols) {
  double flops = 0;
  f.walk([&](Operation *op) {
    if (!isa<func::FuncOp, func::ReturnOp>(op))
      flops += opFlops(op, symbols);
  });
  return flops;
}

double entryFlops(ModuleOp module) {
  SymbolTableCollection symbols;
  double flops = 0;
  for (func::FuncOp f : entries(module))
    flops += functionFlops(f, symbols);
  return flops;
}

std::vector<SavedBlock> savedValuesPerBlock(ModuleOp module) {
  SymbolTableCollection symbols;
  std::vector<SavedBlock> blocks;
  for (func::FuncOp entry : entries(module))
    entry.walk([&](func::CallOp call) {
      auto callee = symbols.lookupNearestSymbolFrom<func::FuncOp>(call, call.getCalleeAttr());
      if (!callee || !callee->hasAttr(kForwardAttr))
        return;
      auto saved = callee->getAttrOfType<IntegerAttr>(kSavedAttr);
      SavedBlock block;
      block.backward = callee.getSymName().str();
      block.savedValues = saved ? saved.getInt() : 0;
      for (Value v : call.getOperands().take_back(block.savedValues))
        block.savedBytes += bytesOf(v.getType());
      blocks.push_back(block);
    });
  std::reverse(blocks.begin(), blocks.end());
  return blocks;
}

} // namespace kiln
