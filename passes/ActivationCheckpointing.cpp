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
// recomputation produces them, so nothing is computed three times.
//
// Recomputation runs the same ops on the same inputs, so every policy gives
// the same bits as `none` (TrainExecutableTest checks it on r1-tiny and
// dense-tiny).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

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

int64_t bytesOf(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped || !shaped.hasStaticShape())
    return 0;
  return shaped.getNumElements() * int64_t((shaped.getElementTypeBitWidth() + 7) / 8);
}

/// The number of saved values F_bwd takes last (0 for other functions).
int64_t savedCountOf(func::FuncOp f) {
  auto saved = f->getAttrOfType<IntegerAttr>(kSavedAttr);
  return saved ? saved.getInt() : 0;
}

struct KilnActivationCheckpointing
    : impl::KilnActivationCheckpointingBase<KilnActivationCheckpointing> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// Makes `bwd` recompute its saved values from `fwd` instead of taking
  /// them; returns the bytes per call it no longer keeps.
  FailureOr<int64_t> recompute(func::FuncOp bwd, func::FuncOp fwd, int64_t saved);
};

FailureOr<int64_t> KilnActivationCheckpointing::recompute(func::FuncOp bwd, func::FuncOp fwd,
                                                          int64_t saved) {
  Block &entry = bwd.getBody().front(), &fwdEntry = fwd.getBody().front();
  const unsigned fwdArgs = fwd.getNumArguments(), bwdArgs = bwd.getNumArguments();
  auto ret = cast<func::ReturnOp>(fwdEntry.getTerminator());
  if (bwdArgs < fwdArgs + saved || int64_t(ret.getNumOperands()) < saved ||
      fwd.getArgumentTypes() != bwd.getArgumentTypes().take_front(fwdArgs))
    return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                           << " does not start with @" << fwd.getSymName()
                           << "'s arguments and end with its " << saved
                           << " saved values; expected a backward built by kiln-autodiff";
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
  if (policy != "full")
    return module.emitError() << "kiln-activation-checkpointing: policy '" << policy
                              << "' is not built yet; use none or full",
           signalPassFailure();

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
  if (targets.empty())
    return module.emitError() << "kiln-activation-checkpointing: no block backward with saved "
                                 "values is called from the step; run kiln-autodiff first",
           signalPassFailure();
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
