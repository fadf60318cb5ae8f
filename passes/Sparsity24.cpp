//===- Sparsity24.cpp - kiln-sparsity-2-4 ---------------------------------===//
//
// 2:4 structured sparsity through training, on the step kiln-autodiff
// builds (Passes.td has the semantics). The mask is state of the step, like
// the AdamW moments, so a checkpoint resumes it and the kernels see nothing
// new: kiln.sparsity_mask_2_4 and elementwise multiplications.
//
// Magnitude pruning keeps pruned weights exactly zero through AdamW's mask
// (weight, gradient and moments multiplied by it in the update, in place):
// with p = m = v = g = 0, p' = p(1 - lr wd) - lr m'/(sqrt v' + eps) = 0.
// SR-STE keeps the dense weight and only the forward reads the masked one.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/Support/GlobPattern.h"

namespace kiln {
#define GEN_PASS_DEF_KILNSPARSITY24
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

constexpr llvm::StringLiteral kMaskRole = "sparsity_mask";

/// The default targets: every weight matrix (and stacked expert weights)
/// but the embedding and the output head.
bool isDefaultTarget(StringRef name, ShapedType type) {
  return type.getRank() >= 2 && name != "model.embed_tokens.weight" && name != "lm_head.weight";
}

/// The argument of `step` marked kiln.input = `role`, or null.
BlockArgument inputArgument(func::FuncOp step, StringRef role) {
  for (BlockArgument arg : step.getArguments()) {
    auto input = step.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "kiln.input");
    if (input && input.getValue() == role)
      return arg;
  }
  return {};
}

struct KilnSparsity24 : impl::KilnSparsity24Base<KilnSparsity24> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// The AdamW updates of the targeted parameters, with their names; fails
  /// with an error naming what does not fit.
  FailureOr<SmallVector<std::pair<AdamWOp, StringAttr>>> findTargets(func::FuncOp step);
  /// Rewrites `step` so that `update`'s parameter trains 2:4 sparse.
  void sparsify(func::FuncOp step, AdamWOp update, StringAttr name, Value stepValue);

  /// The last op of the masks made so far at the start of the step.
  Operation *prologueEnd = nullptr;
};

FailureOr<SmallVector<std::pair<AdamWOp, StringAttr>>>
KilnSparsity24::findTargets(func::FuncOp step) {
  SmallVector<llvm::GlobPattern> globs;
  for (const std::string &target : targets) {
    llvm::Expected<llvm::GlobPattern> glob = llvm::GlobPattern::create(target);
    if (!glob)
      return step.emitError() << "kiln-sparsity-2-4: target '" << target
                              << "' is not a glob: " << llvm::toString(glob.takeError()),
             failure();
    globs.push_back(std::move(*glob));
  }
  SmallVector<bool> globUsed(globs.size(), false);
  SmallVector<std::pair<AdamWOp, StringAttr>> found;
  std::string someName;
  for (AdamWOp update : step.getOps<AdamWOp>()) {
    auto param = dyn_cast<BlockArgument>(update.getParam());
    auto name = param && param.getOwner() == &step.front()
                    ? step.getArgAttrOfType<StringAttr>(param.getArgNumber(), "kiln.param")
                    : StringAttr();
    if (!name)
      return update.emitError() << "kiln-sparsity-2-4: this AdamW update's parameter is not an "
                                   "argument of @"
                                << step.getSymName()
                                << " (a ZeRO-1 shard?); the pass needs whole parameters",
             failure();
    if (someName.empty())
      someName = name.getValue().str();
    auto type = cast<ShapedType>(param.getType());
    bool match = globs.empty() && isDefaultTarget(name.getValue(), type);
    for (auto [glob, used] : llvm::zip(globs, globUsed))
      if (glob.match(name.getValue()))
        match = used = true;
    if (!match)
      continue;
    if (type.getRank() < 2 || type.getShape().back() % 4 != 0)
      return update.emitError() << "kiln-sparsity-2-4: " << name << " " << type
                                << " cannot be 2:4 sparse: it needs rank >= 2 and a last "
                                   "(input) dimension divisible by 4; leave it out of the "
                                   "targets",
             failure();
    found.push_back({update, name});
  }
  for (auto [target, used] : llvm::zip(targets, globUsed))
    if (!used)
      return step.emitError() << "kiln-sparsity-2-4: target '" << target
                              << "' matches no trainable parameter (they are named like '"
                              << someName << "')",
             failure();
  return found;
}

void KilnSparsity24::sparsify(func::FuncOp step, AdamWOp update, StringAttr name,
                              Value stepValue) {
  Location loc = update.getLoc();
  Value weight = update.getParam();
  auto type = cast<RankedTensorType>(weight.getType());
  MLIRContext *ctx = &getContext();
  Builder attrs(ctx);
  auto stateOf = [&](StringRef key) {
    return attrs.getDictionaryAttr(
        {attrs.getNamedAttr(key, attrs.getStringAttr(kMaskRole)),
         attrs.getNamedAttr("kiln.param", name)});
  };

  // The mask state, its update and the weight every other op reads.
  const unsigned maskArg = step.getNumArguments();
  (void)step.insertArgument(maskArg, type, stateOf("kiln.state"), loc);
  // After the masks of the targets before it, in parameter order.
  OpBuilder b = OpBuilder::atBlockBegin(&step.front());
  if (prologueEnd)
    b.setInsertionPointAfter(prologueEnd);
  auto newMask = SparsityMask24Op::create(b, loc, type, weight, step.getArgument(maskArg),
                                          stepValue, b.getI64IntegerAttr(startStep),
                                          b.getI64IntegerAttr(maskEvery));
  auto effective = arith::MulFOp::create(b, loc, weight, newMask);
  prologueEnd = effective;
  const bool srSte = method == "sr-ste";
  weight.replaceUsesWithIf(effective, [&](OpOperand &use) {
    Operation *user = use.getOwner();
    return user != newMask && user != effective && !(user == update && use.getOperandNumber() == 0);
  });

  Value grad = update.getGrad();
  if (srSte) {
    // g + decay * (W - W * M'): the sparse-refined decay of the pruned weights.
    b.setInsertionPoint(update);
    auto pruned = arith::SubFOp::create(b, loc, weight, effective);
    auto rate = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, b.getF32FloatAttr(float(decay)).getValue()));
    auto refine = arith::MulFOp::create(b, loc, pruned, rate);
    auto refined = arith::AddFOp::create(b, loc, grad, refine);
    update.getGradMutable().assign(refined);
  } else {
    // The gradient of the sparse model, from where it is made (the global
    // norm reads it too), and the moments.
    b.setInsertionPointAfterValue(grad);
    if (isa<BlockArgument>(grad))
      b.setInsertionPointAfter(prologueEnd);
    auto masked = arith::MulFOp::create(b, loc, grad, newMask);
    grad.replaceAllUsesExcept(masked, masked);
    // AdamW masks the weight and the moments it updates in place.
    update.getMaskMutable().assign(newMask);
  }

  // The new mask is the step's result for the next step.
  auto ret = cast<func::ReturnOp>(step.front().getTerminator());
  const unsigned result = ret.getNumOperands();
  ret->insertOperands(result, ValueRange{newMask});
  (void)step.insertResult(result, type, stateOf("kiln.result"));
  if (report)
    emitRemark(loc) << "kiln-sparsity-2-4: " << name << " " << type << " trains 2:4 sparse ("
                    << method << ", from step " << int64_t(startStep)
                    << (maskEvery > 0 ? ", mask every " + std::to_string(int64_t(maskEvery)) + " steps"
                                      : std::string(", mask frozen"))
                    << ")";
}

void KilnSparsity24::runOnOperation() {
  ModuleOp module = getOperation();
  if (method != "magnitude" && method != "sr-ste")
    return module.emitError() << "kiln-sparsity-2-4: unknown method '" << method
                              << "'; expected magnitude or sr-ste",
           signalPassFailure();
  if (startStep < 1 || maskEvery < 0 || !(decay >= 0))
    return module.emitError() << "kiln-sparsity-2-4: expects start-step >= 1, mask-every >= 0 "
                                 "and decay >= 0, got "
                              << int64_t(startStep) << ", " << int64_t(maskEvery) << " and "
                              << double(decay),
           signalPassFailure();
  func::FuncOp step;
  WalkResult walk = module.walk([&](AdamWOp update) {
    auto owner = update->getParentOfType<func::FuncOp>();
    if (step && owner != step)
      return update.emitError() << "kiln-sparsity-2-4: AdamW updates in two functions, @"
                                << step.getSymName() << " and @" << owner.getSymName(),
             WalkResult::interrupt();
    step = owner;
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return signalPassFailure();
  if (!step)
    return module.emitError() << "kiln-sparsity-2-4: no AdamW update in the module; run "
                                 "kiln-autodiff (mode=train) first",
           signalPassFailure();
  BlockArgument stepValue = inputArgument(step, "step");
  if (!stepValue)
    return step.emitError() << "kiln-sparsity-2-4: @" << step.getSymName()
                            << " has no step input (kiln.input = \"step\")",
           signalPassFailure();
  FailureOr<SmallVector<std::pair<AdamWOp, StringAttr>>> found = findTargets(step);
  if (failed(found))
    return signalPassFailure();
  for (auto [update, name] : *found)
    sparsify(step, update, name, stepValue);
  if (report)
    emitRemark(step.getLoc()) << "kiln-sparsity-2-4: " << found->size()
                              << " weights train 2:4 sparse";
}

} // namespace
} // namespace kiln
