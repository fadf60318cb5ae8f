//===- Recompute.cpp - make a block backward recompute its saved values ---===//

#include "passes/Recompute.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;

namespace kiln {
namespace {

/// F_bwd and F_fwd as kiln-autodiff builds them: F_bwd starts with F_fwd's
/// arguments and ends with its `saved` values, F_fwd's last `saved` results.
struct BlockPair {
  Block &entry, &fwdEntry;
  func::ReturnOp ret;
  int64_t saved;
  unsigned fwdArgs, bwdArgs, firstSaved, firstResult;
};

/// The pair, or an error when `bwd` does not match `fwd` that way.
FailureOr<BlockPair> pairOf(func::FuncOp bwd, func::FuncOp fwd) {
  const int64_t saved = savedCountOf(bwd);
  Block &entry = bwd.getBody().front(), &fwdEntry = fwd.getBody().front();
  const unsigned fwdArgs = fwd.getNumArguments(), bwdArgs = bwd.getNumArguments();
  auto ret = cast<func::ReturnOp>(fwdEntry.getTerminator());
  if (bwdArgs >= fwdArgs + saved && int64_t(ret.getNumOperands()) >= saved &&
      fwd.getArgumentTypes() == bwd.getArgumentTypes().take_front(fwdArgs))
    return BlockPair{entry,   fwdEntry,        ret,
                     saved,   fwdArgs,         bwdArgs,
                     unsigned(bwdArgs - saved), unsigned(ret.getNumOperands() - saved)};
  return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                         << " does not start with @" << fwd.getSymName()
                         << "'s arguments and end with its " << saved
                         << " saved values; expected a backward built by kiln-autodiff";
}

} // namespace

int64_t savedCountOf(func::FuncOp f) {
  auto saved = f->getAttrOfType<IntegerAttr>(kSavedAttr);
  return saved ? saved.getInt() : 0;
}

/// The rule: normalisation, activations, RoPE, broadcasts and scales, elementwise
/// arithmetic and data movement (reshapes, slices, concatenations), and,
/// as DeepSeek-V3 does, MLA's up-projections (the linears of q_b_proj and
/// kv_b_proj, which expand small latents into wide heads). Attention
/// probabilities are never saved: attention_grad recomputes them itself.
bool isCheapToRecompute(Operation *op) {
  if (isa<RMSNormOp, SiluOp, SwigluOp, RopeOp, BroadcastOp, ScaleOp, arith::AddFOp,
          arith::SubFOp, arith::MulFOp, arith::NegFOp, arith::ConstantOp, arith::TruncFOp,
          arith::ExtFOp, tensor::ExpandShapeOp, tensor::CollapseShapeOp, tensor::ExtractSliceOp,
          tensor::ConcatOp>(op))
    return true;
  auto linear = dyn_cast<LinearOp>(op);
  if (!linear)
    return false;
  auto weight = dyn_cast<BlockArgument>(linear.getWeight());
  if (!weight)
    return false;
  auto fn = dyn_cast<func::FuncOp>(weight.getOwner()->getParentOp());
  auto name = fn ? fn.getArgAttrOfType<StringAttr>(weight.getArgNumber(), "kiln.param")
                 : StringAttr();
  return name && (name.getValue().ends_with("q_b_proj.weight") ||
                  name.getValue().ends_with("kv_b_proj.weight"));
}

FailureOr<llvm::BitVector> recomputeCheapSaved(func::FuncOp bwd, func::FuncOp fwd, int64_t &bytes) {
  FailureOr<BlockPair> pair = pairOf(bwd, fwd);
  if (failed(pair))
    return failure();
  auto &[entry, fwdEntry, ret, saved, fwdArgs, bwdArgs, firstSaved, firstResult] = *pair;
  // Saved value -> its index among the saved values.
  DenseMap<Value, unsigned> savedIndex;
  for (int64_t i = 0; i < saved; ++i)
    savedIndex.try_emplace(ret.getOperand(firstResult + i), i);
  // Decide in program order: a value is available in the backward when it is
  // a block argument, kept, or recomputable from available values through
  // cheap ops.
  DenseSet<Value> kept;
  DenseMap<Value, bool> recomputable;
  std::function<bool(Value)> available = [&](Value v) -> bool {
    if (isa<BlockArgument>(v) || kept.contains(v))
      return true;
    auto it = recomputable.find(v);
    if (it != recomputable.end())
      return it->second;
    Operation *op = v.getDefiningOp();
    // (A structured binding cannot be captured in C++17: fwd's block by name.)
    bool ok = op && op->getBlock() == &fwd.getBody().front() && isCheapToRecompute(op) &&
              llvm::all_of(op->getOperands(), available);
    recomputable[v] = ok;
    return ok;
  };
  llvm::BitVector drop(saved);
  for (Operation &op : fwdEntry.without_terminator())
    for (Value result : op.getResults()) {
      auto it = savedIndex.find(result);
      if (it == savedIndex.end())
        continue;
      recomputable.erase(result);
      if (isCheapToRecompute(&op) && llvm::all_of(op.getOperands(), available)) {
        recomputable[result] = true;
        drop.set(it->second);
      } else {
        kept.insert(result);
      }
    }
  if (drop.none())
    return drop;
  // Clone, in program order, the ops the dropped values need.
  llvm::SetVector<Operation *> needed;
  SmallVector<Value> work;
  for (unsigned i : drop.set_bits())
    work.push_back(ret.getOperand(firstResult + i));
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (isa<BlockArgument>(v) || kept.contains(v))
      continue;
    Operation *op = v.getDefiningOp();
    if (needed.insert(op))
      work.append(op->operand_begin(), op->operand_end());
  }
  IRMapping map;
  for (unsigned i = 0; i < fwdArgs; ++i)
    map.map(fwdEntry.getArgument(i), entry.getArgument(i));
  for (Value v : kept)
    map.map(v, entry.getArgument(firstSaved + savedIndex.lookup(v)));
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  for (Operation &op : fwdEntry.without_terminator())
    if (needed.contains(&op))
      b.clone(op, map);
  llvm::BitVector erase(bwdArgs);
  for (unsigned i : drop.set_bits()) {
    BlockArgument arg = entry.getArgument(firstSaved + i);
    arg.replaceAllUsesWith(map.lookup(ret.getOperand(firstResult + i)));
    bytes += bytesOf(arg.getType());
    erase.set(firstSaved + i);
  }
  if (failed(bwd.eraseArguments(erase)))
    return failure();
  bwd->setAttr(kSavedAttr, b.getI64IntegerAttr(saved - int64_t(drop.count())));
  return drop;
}

FailureOr<int64_t> recomputeAllSaved(func::FuncOp bwd, func::FuncOp fwd) {
  FailureOr<BlockPair> pair = pairOf(bwd, fwd);
  if (failed(pair))
    return failure();
  auto &[entry, fwdEntry, ret, saved, fwdArgs, bwdArgs, firstSaved, firstResult] = *pair;
  // The forward's body, on the backward's copies of its arguments.
  IRMapping map;
  for (unsigned i = 0; i < fwdArgs; ++i)
    map.map(fwdEntry.getArgument(i), entry.getArgument(i));
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  SmallVector<Operation *> cloned;
  for (Operation &op : fwdEntry.without_terminator())
    cloned.push_back(b.clone(op, map));
  int64_t bytes = 0;
  llvm::BitVector erase(bwdArgs);
  for (int64_t s = 0; s < saved; ++s) {
    BlockArgument arg = entry.getArgument(firstSaved + s);
    Value value = map.lookup(ret.getOperand(firstResult + s));
    if (value.getType() != arg.getType())
      return bwd.emitError() << "kiln-activation-checkpointing: saved value #" << s << " of @"
                             << bwd.getSymName() << " is " << arg.getType() << " but @"
                             << fwd.getSymName() << " returns " << value.getType();
    bytes += bytesOf(arg.getType());
    arg.replaceAllUsesWith(value);
    erase.set(firstSaved + s);
  }
  if (failed(bwd.eraseArguments(erase)))
    return failure();
  // What only the forward's results needed is not recomputed.
  for (Operation *op : llvm::reverse(cloned))
    if (isOpTriviallyDead(op))
      op->erase();
  bwd->setAttr(kSavedAttr, b.getI64IntegerAttr(0));
  return bytes;
}

} // namespace kiln
