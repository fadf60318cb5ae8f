//===- ActivationCheckpointing.cpp - kiln-activation-checkpointing --------===//
//
// kiln-autodiff gives each block function F a forward F_fwd that returns,
// after F's results, the values F_bwd needs, and a backward F_bwd that takes
// them as its last arguments (kiln.forward and kiln.saved on F_bwd say which
// and how many). Between the two calls those values are live across the rest
// of the forward and the backward of the later layers: that is the
// activation memory. Policy `full` keeps only each block's inputs: every
// F_bwd the step calls recomputes its saved values at its start, from a copy
// of F_fwd's body, and no longer takes them. A block nested in another (the
// MTP module's decoder layer) keeps its saved values: the outer block's
// recomputation produces them, so nothing is computed three times. Policy
// `selective` recomputes only the saved values cheap ops make from the
// block's inputs and the values it keeps (isCheapToRecompute has the rule),
// in every backward, and then drops what an outer block kept only for a
// nested one.
//
// Recomputation runs the same ops on the same inputs, so every policy gives
// the same bits as `none` (TrainExecutableCheckpointing checks it on
// r1-tiny and dense-tiny).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNACTIVATIONCHECKPOINTING
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// The number of saved values F_bwd takes last (0 for other functions).
int64_t savedCountOf(func::FuncOp f) {
  auto saved = f->getAttrOfType<IntegerAttr>(kSavedAttr);
  return saved ? saved.getInt() : 0;
}

/// The selective rule: ops cheap to recompute per byte they would keep.
/// Normalisation, activations, RoPE, broadcasts and scales, elementwise
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

/// Checks that `bwd` starts with `fwd`'s arguments and ends with its
/// `saved` values, as kiln-autodiff builds them.
LogicalResult checkPair(func::FuncOp bwd, func::FuncOp fwd, int64_t saved) {
  const unsigned fwdArgs = fwd.getNumArguments(), bwdArgs = bwd.getNumArguments();
  auto ret = cast<func::ReturnOp>(fwd.getBody().front().getTerminator());
  if (bwdArgs >= fwdArgs + saved && int64_t(ret.getNumOperands()) >= saved &&
      fwd.getArgumentTypes() == bwd.getArgumentTypes().take_front(fwdArgs))
    return success();
  return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                         << " does not start with @" << fwd.getSymName()
                         << "'s arguments and end with its " << saved
                         << " saved values; expected a backward built by kiln-autodiff";
}

/// Whether kiln-autodiff has built any block backward in `module`.
bool hasBlockBackward(ModuleOp module) {
  bool found = false;
  module.walk([&](func::FuncOp f) { found |= f->hasAttr(kForwardAttr); });
  return found;
}

struct KilnActivationCheckpointing
    : impl::KilnActivationCheckpointingBase<KilnActivationCheckpointing> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// Makes `bwd` recompute its saved values from `fwd` instead of taking
  /// them; returns the bytes per call it no longer keeps.
  FailureOr<int64_t> recompute(func::FuncOp bwd, func::FuncOp fwd, int64_t saved);
  /// Makes `bwd` recompute the saved values the selective rule allows from
  /// its inputs and the values it keeps; returns the saved-value indices it
  /// no longer takes (the caller drops those operands) and adds their bytes
  /// to `bytes`.
  FailureOr<llvm::BitVector> recomputeSelected(func::FuncOp bwd, func::FuncOp fwd, int64_t saved,
                                               int64_t &bytes);
  void runSelective(ModuleOp module, SymbolTable &symbols);
};

FailureOr<llvm::BitVector>
KilnActivationCheckpointing::recomputeSelected(func::FuncOp bwd, func::FuncOp fwd, int64_t saved,
                                               int64_t &bytes) {
  Block &entry = bwd.getBody().front(), &fwdEntry = fwd.getBody().front();
  const unsigned fwdArgs = fwd.getNumArguments(), bwdArgs = bwd.getNumArguments();
  auto ret = cast<func::ReturnOp>(fwdEntry.getTerminator());
  if (failed(checkPair(bwd, fwd, saved)))
    return failure();
  const unsigned firstSaved = bwdArgs - saved, firstResult = ret.getNumOperands() - saved;
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
    bool ok = op && op->getBlock() == &fwdEntry && isCheapToRecompute(op) &&
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

void KilnActivationCheckpointing::runSelective(ModuleOp module, SymbolTable &symbols) {
  SmallVector<func::CallOp> calls;
  module.walk([&](func::CallOp call) { calls.push_back(call); });
  int64_t bytesPerStep = 0, blocks = 0;
  for (func::FuncOp bwd : llvm::to_vector(module.getOps<func::FuncOp>())) {
    const int64_t saved = savedCountOf(bwd);
    auto forward = bwd->getAttrOfType<FlatSymbolRefAttr>(kForwardAttr);
    if (saved == 0 || !forward)
      continue;
    auto fwd = symbols.lookup<func::FuncOp>(forward.getValue());
    if (!fwd)
      return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                             << " names a forward that does not exist",
             signalPassFailure();
    const unsigned firstSaved = bwd.getNumArguments() - saved;
    int64_t bytes = 0;
    FailureOr<llvm::BitVector> drop = recomputeSelected(bwd, fwd, saved, bytes);
    if (failed(drop))
      return signalPassFailure();
    if (drop->none())
      continue;
    int64_t callCount = 0;
    for (func::CallOp call : calls) {
      if (call.getCallee() != bwd.getSymName())
        continue;
      llvm::BitVector erase(call.getNumOperands());
      for (unsigned i : drop->set_bits())
        erase.set(firstSaved + i);
      call->eraseOperands(erase);
      ++callCount;
    }
    ++blocks;
    bytesPerStep += bytes * callCount;
    if (report)
      bwd.emitRemark() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                       << " recomputes " << drop->count() << " of its " << saved << " saved values ("
                       << bytes << " bytes per call, " << callCount << " calls)";
  }
  // A saved value an outer block kept only to hand to a nested block that now
  // recomputes it is no longer used: stop keeping it too, until none is left.
  for (bool changed = true; changed;) {
    changed = false;
    for (func::FuncOp bwd : module.getOps<func::FuncOp>()) {
      const int64_t saved = savedCountOf(bwd);
      const unsigned firstSaved = bwd.getNumArguments() - saved;
      llvm::BitVector erase(bwd.getNumArguments());
      for (int64_t i = 0; i < saved; ++i)
        if (bwd.getArgument(firstSaved + i).use_empty())
          erase.set(firstSaved + i);
      if (erase.none())
        continue;
      int64_t unused = erase.count(), callCount = 0;
      for (func::CallOp call : calls)
        if (call.getCallee() == bwd.getSymName()) {
          call->eraseOperands(erase);
          ++callCount;
        }
      for (unsigned i : erase.set_bits())
        bytesPerStep += bytesOf(bwd.getArgument(i).getType()) * callCount;
      if (failed(bwd.eraseArguments(erase)))
        return signalPassFailure();
      bwd->setAttr(kSavedAttr, IntegerAttr::get(IntegerType::get(&getContext(), 64),
                                                saved - unused));
      if (report)
        bwd.emitRemark() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                         << " no longer takes " << unused
                         << " saved values that only a nested block's backward needed";
      changed = true;
    }
  }
  if (report)
    emitRemark(module.getLoc()) << "kiln-activation-checkpointing: policy selective: " << blocks
                                << " block backwards recompute, " << bytesPerStep
                                << " bytes of saved values no longer kept per step";
}

FailureOr<int64_t> KilnActivationCheckpointing::recompute(func::FuncOp bwd, func::FuncOp fwd,
                                                          int64_t saved) {
  Block &entry = bwd.getBody().front(), &fwdEntry = fwd.getBody().front();
  const unsigned fwdArgs = fwd.getNumArguments(), bwdArgs = bwd.getNumArguments();
  auto ret = cast<func::ReturnOp>(fwdEntry.getTerminator());
  if (failed(checkPair(bwd, fwd, saved)))
    return failure();
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
  const unsigned firstSaved = bwdArgs - saved, firstResult = ret.getNumOperands() - saved;
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

void KilnActivationCheckpointing::runOnOperation() {
  ModuleOp module = getOperation();
  if (policy == "none")
    return;
  if (policy != "full" && policy != "selective")
    return module.emitError() << "kiln-activation-checkpointing: policy '" << policy
                              << "' is not built yet; use none, full or selective",
           signalPassFailure();
  if (policy == "selective") {
    if (!hasBlockBackward(module))
      return module.emitError() << "kiln-activation-checkpointing: no block backward "
                                   "(kiln.forward) in the module; run kiln-autodiff first",
             signalPassFailure();
    SymbolTable symbols(module);
    return runSelective(module, symbols);
  }

  // Targets: backwards with saved values that a non-backward function (the
  // step) calls. Their calls from inside another target keep the saved
  // values, through a copy of the original.
  SymbolTable symbols(module);
  llvm::SetVector<func::FuncOp> targets;
  SmallVector<func::CallOp> calls;
  module.walk([&](func::CallOp call) {
    calls.push_back(call);
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    auto caller = call->getParentOfType<func::FuncOp>();
    if (callee && savedCountOf(callee) > 0 && !caller->hasAttr(kForwardAttr))
      targets.insert(callee);
  });
  if (targets.empty()) {
    // Nothing left to recompute (a step whose blocks save nothing, or one
    // this pass already rewrote) is fine; a module autodiff never saw is not.
    if (hasBlockBackward(module))
      return;
    return module.emitError() << "kiln-activation-checkpointing: no block backward "
                                 "(kiln.forward) in the module; run kiln-autodiff first",
           signalPassFailure();
  }
  DenseMap<func::FuncOp, func::FuncOp> keepsSaved;
  for (func::CallOp call : calls) {
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    auto caller = call->getParentOfType<func::FuncOp>();
    if (!callee || !targets.contains(callee) || !targets.contains(caller))
      continue;
    func::FuncOp &copy = keepsSaved[callee];
    if (!copy) {
      copy = callee.clone();
      copy.setSymName((callee.getSymName() + "_saved").str());
      OpBuilder(callee).insert(copy);
      symbols.insert(copy);
    }
    call.setCallee(copy.getSymName());
  }

  int64_t bytesPerStep = 0;
  for (func::FuncOp bwd : targets) {
    const int64_t saved = savedCountOf(bwd);
    auto fwd = symbols.lookup<func::FuncOp>(
        bwd->getAttrOfType<FlatSymbolRefAttr>(kForwardAttr).getValue());
    if (!fwd)
      return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                             << " names a forward that does not exist",
             signalPassFailure();
    // Every call drops the saved operands.
    int64_t callCount = 0;
    for (func::CallOp call : calls) {
      if (call.getCallee() != bwd.getSymName())
        continue;
      SmallVector<Value> operands(call.getOperands().drop_back(saved));
      call->setOperands(operands);
      ++callCount;
    }
    FailureOr<int64_t> bytes = recompute(bwd, fwd, saved);
    if (failed(bytes))
      return signalPassFailure();
    bytesPerStep += *bytes * callCount;
    if (report)
      bwd.emitRemark() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                       << " recomputes " << saved << " saved values (" << *bytes
                       << " bytes per call, " << callCount << " calls)";
  }
  if (report)
    emitRemark(module.getLoc()) << "kiln-activation-checkpointing: policy full: "
                                << targets.size() << " block backwards recompute, "
                                << bytesPerStep << " bytes of saved values no longer kept "
                                << "per step";
}

} // namespace
} // namespace kiln
