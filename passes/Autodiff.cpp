//===- Autodiff.cpp - kiln-autodiff: forward -> training step -------------===//
//
// Reverse-mode differentiation over kiln IR. The per-op rules live with the
// ops (DifferentiableOpInterface); this file owns what is not local to one op:
// the order of the reverse sweep, gradient accumulation, block functions
// (a forward that saves, a backward that consumes), the expert-load and
// balance-loss outputs of routers, the loss, clipping, AdamW and the
// aux-loss-free bias update.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>

namespace kiln {
#define GEN_PASS_DEF_KILNAUTODIFF
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}

Value scalarConstant(OpBuilder &b, Location loc, Type type, double value) {
  auto t = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      b, loc, t, DenseElementsAttr::get(t, b.getFloatAttr(t.getElementType(), value)));
}

/// An output a differentiated block returns after its own results: the
/// expert load of a router (with the block argument that feeds its bias), a
/// balance loss (differentiable), or the load an expert_capacity kept.
struct AuxOutput {
  enum Kind { Load, Balance, Kept } kind;
  unsigned biasArg = 0;
};

/// The differentiated form of one block function F.
struct BlockGrad {
  func::FuncOp fwd, bwd;
  unsigned numResults = 0;          ///< F's results
  SmallVector<unsigned> floatResults; ///< those with incoming gradients
  SmallVector<AuxOutput> aux;       ///< then these
  unsigned numSaved = 0;            ///< then the saved values
  SmallVector<unsigned> floatArgs;  ///< F arguments F_bwd returns gradients for
};

/// One reverse sweep: accumulates gradients of forward values while it
/// emits backward ops with `b`.
class ReverseSweep {
public:
  ReverseSweep(OpBuilder &b, std::function<Value(Value)> forward,
               const llvm::StringMap<BlockGrad> &blocks)
      : b(b), forward(std::move(forward)), blocks(blocks) {}

  void addGrad(Value v, Value g) {
    if (!g || !isFloatTensor(v.getType()))
      return;
    auto it = grads.find(v);
    if (it == grads.end())
      grads[v] = g;
    else
      it->second = arith::AddFOp::create(b, g.getLoc(), it->second, g);
  }
  Value grad(Value v) const { return grads.lookup(v); }
  Value gradOrZeros(Value v) {
    Value g = grad(v);
    return g ? g : buildZeros(b, v.getLoc(), v.getType());
  }

  LogicalResult run(ArrayRef<Operation *> ops) {
    for (Operation *op : llvm::reverse(ops)) {
      // An op without results that has a rule (kiln.send) is a sink of the
      // forward: its operand's gradient comes from elsewhere (the peer).
      bool sink = op->getNumResults() == 0 && isa<DifferentiableOpInterface>(op);
      if (!sink && llvm::none_of(op->getResults(), [&](Value r) { return grads.count(r); }))
        continue;
      if (auto call = dyn_cast<func::CallOp>(op)) {
        if (failed(differentiateCall(call)))
          return failure();
        ++numDifferentiated;
        continue;
      }
      auto rule = dyn_cast<DifferentiableOpInterface>(op);
      if (!rule) {
        if (llvm::none_of(op->getOperandTypes(), isFloatTensor))
          continue; // integer-only inputs: nothing to differentiate
        return op->emitError() << "kiln-autodiff: no gradient rule for '" << op->getName()
                               << "'; implement DifferentiableOpInterface for it";
      }
      SmallVector<Value> resultGrads;
      for (Value r : op->getResults())
        resultGrads.push_back(grad(r));
      GradientContext ctx(op, resultGrads, forward);
      if (failed(rule.buildGradients(b, ctx)))
        return failure();
      for (auto [operand, g] : llvm::zip(op->getOperands(), ctx.getOperandGrads()))
        addGrad(operand, g);
      ++numDifferentiated;
    }
    return success();
  }

  int64_t numDifferentiated = 0;

private:
  LogicalResult differentiateCall(func::CallOp call) {
    auto it = blocks.find(call.getCallee());
    if (it == blocks.end())
      return call.emitError() << "kiln-autodiff: @" << call.getCallee()
                              << " was not differentiated";
    const BlockGrad &bg = it->second;
    SmallVector<Value> args;
    for (Value operand : call.getOperands())
      args.push_back(forward(operand));
    for (unsigned r : bg.floatResults)
      args.push_back(gradOrZeros(call.getResult(r)));
    for (auto [k, aux] : llvm::enumerate(bg.aux))
      if (aux.kind == AuxOutput::Balance)
        args.push_back(gradOrZeros(call.getResult(bg.numResults + k)));
    unsigned savedBegin = bg.numResults + bg.aux.size();
    for (unsigned s = 0; s < bg.numSaved; ++s)
      args.push_back(forward(call.getResult(savedBegin + s)));
    auto bwd = func::CallOp::create(b, call.getLoc(), bg.bwd, args);
    for (auto [i, arg] : llvm::enumerate(bg.floatArgs))
      addGrad(call.getOperand(arg), bwd.getResult(i));
    return success();
  }

  OpBuilder &b;
  std::function<Value(Value)> forward;
  const llvm::StringMap<BlockGrad> &blocks;
  DenseMap<Value, Value> grads;
};

struct AutodiffPass : impl::KilnAutodiffBase<AutodiffPass> {
  using KilnAutodiffBase::KilnAutodiffBase;

  void runOnOperation() override;

private:
  LogicalResult checkOptions();
  LogicalResult collectBlocks(func::FuncOp f, SmallVectorImpl<func::FuncOp> &postOrder,
                              llvm::StringSet<> &visiting, llvm::StringSet<> &done);
  /// Replaces calls among `ops` by calls to the callee's _fwd and records
  /// their aux outputs; adds expert loads (and balance losses) after routers.
  /// Aux outputs whose bias is not an argument of `entryBlock` are errors.
  LogicalResult instrument(Block *entryBlock, SmallVectorImpl<AuxOutput> &aux,
                           SmallVectorImpl<Value> &auxValues);
  LogicalResult differentiateBlock(func::FuncOp f);
  LogicalResult buildEntry(func::FuncOp entryFunc);

  OpBuilder builder(MLIRContext *ctx) { return OpBuilder(ctx); }

  llvm::StringMap<BlockGrad> blocks;
  int64_t numSequences = 1;
};

LogicalResult AutodiffPass::checkOptions() {
  ModuleOp module = getOperation();
  // An option with two accepted values, named in the error.
  auto checkChoice = [&](StringRef option, StringRef value, StringRef a, StringRef b) {
    if (value == a || value == b)
      return success();
    return LogicalResult(module.emitError() << "kiln-autodiff: " << option << " must be '" << a
                                            << "' or '" << b << "', got '" << value << "'");
  };
  if (failed(checkChoice("mode", mode, "train", "gradient")) ||
      failed(checkChoice("loss", lossKind, "main", "total")) ||
      failed(checkChoice("moment-type", momentType, "f32", "bf16")) ||
      failed(checkChoice("loss-scale", lossScale, "none", "dynamic")))
    return failure();
  if (mtpLossWeight < 0 || auxLossAlpha < 0 || biasUpdateSpeed < 0 || lr < 0 ||
      minLr < 0 || minLr > lr || warmupSteps < 0 || totalSteps < 0 || gradClip < 0 ||
      weightDecay < 0 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) ||
      !(eps > 0))
    return module.emitError()
           << "kiln-autodiff: invalid options: weights, speeds, lr, steps, grad-clip and "
              "weight-decay must be >= 0 (min-lr <= lr), betas in [0, 1), eps > 0";
  if (lossScale == "dynamic" && mode != "train")
    return module.emitError() << "kiln-autodiff: loss-scale=dynamic scales a training step; "
                                 "mode=gradient gives the unscaled gradients";
  if (lossScale == "dynamic" &&
      (!(lossScaleInit > 0) || !std::isfinite(lossScaleInit) || !(lossScaleGrowthFactor > 1) ||
       !std::isfinite(lossScaleGrowthFactor) ||
       !(lossScaleBackoffFactor > 0 && lossScaleBackoffFactor < 1) ||
       lossScaleGrowthInterval < 1))
    return module.emitError()
           << "kiln-autodiff: invalid loss scaling: loss-scale-init must be finite and > 0, "
              "loss-scale-growth-factor finite and > 1, loss-scale-backoff-factor in (0, 1) and "
              "loss-scale-growth-interval >= 1 (GradScaler's defaults: 65536, 2, 0.5, 2000)";
  return success();
}

LogicalResult AutodiffPass::collectBlocks(func::FuncOp f,
                                          SmallVectorImpl<func::FuncOp> &postOrder,
                                          llvm::StringSet<> &visiting,
                                          llvm::StringSet<> &done) {
  visiting.insert(f.getSymName());
  WalkResult walk = f.walk([&](func::CallOp call) {
    auto callee = getOperation().lookupSymbol<func::FuncOp>(call.getCallee());
    if (!callee || callee.isExternal()) {
      call.emitError() << "kiln-autodiff: cannot differentiate a call to @"
                       << call.getCallee() << ", which has no body";
      return WalkResult::interrupt();
    }
    if (visiting.contains(callee.getSymName()) && !done.contains(callee.getSymName())) {
      call.emitError() << "kiln-autodiff: recursive call to @" << call.getCallee();
      return WalkResult::interrupt();
    }
    if (done.contains(callee.getSymName()))
      return WalkResult::advance();
    if (failed(collectBlocks(callee, postOrder, visiting, done)))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  done.insert(f.getSymName());
  postOrder.push_back(f);
  return success();
}

LogicalResult AutodiffPass::instrument(Block *entryBlock, SmallVectorImpl<AuxOutput> &aux,
                                       SmallVectorImpl<Value> &auxValues) {
  OpBuilder b(&getContext());
  auto biasArgOf = [&](Value bias, Operation *at) -> FailureOr<unsigned> {
    auto arg = dyn_cast<BlockArgument>(bias);
    if (!arg || arg.getOwner() != entryBlock)
      return at->emitError() << "kiln-autodiff: the router bias must be a function "
                                "argument (a parameter), so that its update can be returned",
             failure();
    return arg.getArgNumber();
  };
  for (Operation &op : llvm::make_early_inc_range(*entryBlock)) {
    if (auto call = dyn_cast<func::CallOp>(op)) {
      const BlockGrad &bg = blocks.find(call.getCallee())->second;
      b.setInsertionPoint(call);
      auto fwd = func::CallOp::create(b, call.getLoc(), bg.fwd, call.getOperands());
      for (unsigned r = 0; r < bg.numResults; ++r)
        call.getResult(r).replaceAllUsesWith(fwd.getResult(r));
      for (auto [k, a] : llvm::enumerate(bg.aux)) {
        AuxOutput mapped = a;
        if (a.kind == AuxOutput::Load) {
          FailureOr<unsigned> arg = biasArgOf(call.getOperand(a.biasArg), call);
          if (failed(arg))
            return failure();
          mapped.biasArg = *arg;
        }
        aux.push_back(mapped);
        auxValues.push_back(fwd.getResult(bg.numResults + k));
      }
      call.erase();
    } else if (auto router = dyn_cast<RouterOp>(op)) {
      FailureOr<unsigned> arg = biasArgOf(router.getBias(), router);
      if (failed(arg))
        return failure();
      b.setInsertionPointAfter(router);
      int64_t experts = cast<ShapedType>(router.getBias().getType()).getShape()[0];
      auto loadType = RankedTensorType::get({experts}, b.getF32Type());
      Value load = ExpertLoadOp::create(b, router.getLoc(), loadType, router.getIndices(),
                                        b.getI64IntegerAttr(experts));
      aux.push_back({AuxOutput::Load, *arg});
      auxValues.push_back(load);
      if (auxLossAlpha > 0) {
        auto scalar = RankedTensorType::get({}, b.getF32Type());
        Value balance = BalanceLossOp::create(b, router.getLoc(), scalar, router.getLogits(),
                                              router.getIndices(), router.getScoringAttr(),
                                              b.getI64IntegerAttr(numSequences),
                                              IntegerAttr());
        aux.push_back({AuxOutput::Balance, 0});
        auxValues.push_back(balance);
      }
    } else if (auto capacity = dyn_cast<ExpertCapacityOp>(op)) {
      // What the experts kept: the driver reports routed minus kept as drops.
      b.setInsertionPointAfter(capacity);
      auto loadType = RankedTensorType::get({int64_t(capacity.getNumExperts())}, b.getF32Type());
      aux.push_back({AuxOutput::Kept, 0});
      auxValues.push_back(ExpertLoadOp::create(b, capacity.getLoc(), loadType,
                                               capacity.getKept(), capacity.getNumExpertsAttr()));
    }
  }
  return success();
}

LogicalResult AutodiffPass::differentiateBlock(func::FuncOp f) {
  OpBuilder b(&getContext());
  b.setInsertionPointAfter(f);
  BlockGrad bg;
  bg.numResults = f.getNumResults();
  for (auto [i, t] : llvm::enumerate(f.getResultTypes()))
    if (isFloatTensor(t))
      bg.floatResults.push_back(i);
  for (auto [i, t] : llvm::enumerate(f.getArgumentTypes()))
    if (isFloatTensor(t))
      bg.floatArgs.push_back(i);

  // F_fwd: F with its calls and routers instrumented; saved values appended below.
  auto fwd = cast<func::FuncOp>(b.clone(*f));
  fwd.setSymName((f.getSymName() + "_fwd").str());
  fwd.setPrivate();
  bg.fwd = fwd;
  Block *fwdEntry = &fwd.getBody().front();
  SmallVector<Value> auxValues;
  if (failed(instrument(fwdEntry, bg.aux, auxValues)))
    return failure();

  // F_bwd(F's arguments, result gradients, balance-loss gradients, saved...).
  SmallVector<Type> bwdArgs(f.getArgumentTypes());
  for (unsigned r : bg.floatResults)
    bwdArgs.push_back(f.getResultTypes()[r]);
  for (auto [a, v] : llvm::zip(bg.aux, auxValues))
    if (a.kind == AuxOutput::Balance)
      bwdArgs.push_back(v.getType());
  auto bwd = func::FuncOp::create(b, f.getLoc(), (f.getSymName() + "_bwd").str(),
                                  b.getFunctionType(bwdArgs, {}));
  bwd.setPrivate();
  bg.bwd = bwd;
  Block *bwdEntry = bwd.addEntryBlock();

  SmallVector<Value> saved;
  DenseMap<Value, Value> inBwd;
  OpBuilder constants = OpBuilder::atBlockBegin(bwdEntry);
  auto forwardValue = [&](Value v) -> Value {
    if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == fwdEntry)
      return bwdEntry->getArgument(arg.getArgNumber());
    if (Value mapped = inBwd.lookup(v))
      return mapped;
    Value mapped;
    if (auto cst = v.getDefiningOp<arith::ConstantOp>()) {
      mapped = constants.clone(*cst)->getResult(0); // cheaper to rebuild than to save
    } else {
      mapped = bwdEntry->addArgument(v.getType(), v.getLoc());
      saved.push_back(v);
    }
    inBwd[v] = mapped;
    return mapped;
  };

  OpBuilder bwdBuilder = OpBuilder::atBlockEnd(bwdEntry);
  ReverseSweep sweep(bwdBuilder, forwardValue, blocks);
  auto ret = cast<func::ReturnOp>(fwdEntry->getTerminator());
  unsigned next = f.getNumArguments();
  for (unsigned r : bg.floatResults)
    sweep.addGrad(ret.getOperand(r), bwdEntry->getArgument(next++));
  for (auto [a, v] : llvm::zip(bg.aux, auxValues))
    if (a.kind == AuxOutput::Balance)
      sweep.addGrad(v, bwdEntry->getArgument(next++));
  SmallVector<Operation *> ops;
  for (Operation &op : fwdEntry->without_terminator())
    ops.push_back(&op);
  if (failed(sweep.run(ops)))
    return failure();
  SmallVector<Value> argGrads;
  for (unsigned a : bg.floatArgs)
    argGrads.push_back(sweep.gradOrZeros(fwdEntry->getArgument(a)));
  func::ReturnOp::create(bwdBuilder, f.getLoc(), argGrads);
  bwd.setFunctionType(b.getFunctionType(bwdEntry->getArgumentTypes(),
                                        ValueRange(argGrads).getTypes()));
  // Saved values were added as arguments on demand: name the parameters now.
  for (unsigned i = 0; i < f.getNumArguments(); ++i)
    if (auto name = f.getArgAttr(i, "kiln.param"))
      bwd.setArgAttr(i, "kiln.param", name);

  // F_fwd returns F's results, the aux outputs, then the saved values.
  SmallVector<Value> results(ret.getOperands());
  results.append(auxValues.begin(), auxValues.end());
  results.append(saved.begin(), saved.end());
  bg.numSaved = saved.size();
  OpBuilder retBuilder(ret);
  func::ReturnOp::create(retBuilder, ret.getLoc(), results);
  ret.erase();
  fwd.setFunctionType(b.getFunctionType(fwd.getArgumentTypes(),
                                        ValueRange(results).getTypes()));
  bwd->setAttr(kForwardAttr, FlatSymbolRefAttr::get(fwd.getSymNameAttr()));
  bwd->setAttr(kSavedAttr, b.getI64IntegerAttr(bg.numSaved));

  if (report) {
    int64_t bytes = 0;
    for (Value v : saved)
      bytes += bytesOf(v.getType());
    fwd.emitRemark() << "kiln-autodiff: @" << f.getSymName() << ": "
                     << sweep.numDifferentiated << " ops differentiated, " << saved.size()
                     << " values saved for backward (" << bytes << " bytes per call)";
  }
  // Found by F's name when instrumenting callers, and by F_fwd's name by the
  // reverse sweep over instrumented calls.
  blocks[fwd.getSymName()] = bg;
  blocks[f.getSymName()] = std::move(bg);
  return success();
}

LogicalResult AutodiffPass::buildEntry(func::FuncOp entryFunc) {
  OpBuilder b(&getContext());
  Location loc = entryFunc.getLoc();
  unsigned numArgs = entryFunc.getNumArguments();

  // What the entry's arguments and results are.
  SmallVector<unsigned> params, inputs, trainable;
  for (unsigned i = 0; i < numArgs; ++i) {
    if (entryFunc.getArgAttr(i, "kiln.param")) {
      params.push_back(i);
      auto flag = entryFunc.getArgAttrOfType<BoolAttr>(i, "kiln.trainable");
      if (isFloatTensor(entryFunc.getArgumentTypes()[i]) && (!flag || flag.getValue()))
        trainable.push_back(i);
    } else {
      inputs.push_back(i);
    }
  }
  bool annotated = !params.empty();
  if (!annotated) {
    for (unsigned i = 0; i < numArgs; ++i)
      if (isFloatTensor(entryFunc.getArgumentTypes()[i]))
        trainable.push_back(i);
  }
  std::optional<unsigned> lossIndex;
  SmallVector<unsigned> mtpIndices;
  for (unsigned r = 0; r < entryFunc.getNumResults(); ++r) {
    auto role = entryFunc.getResultAttrOfType<StringAttr>(r, "kiln.result");
    if (role && role.getValue() == "loss")
      lossIndex = r;
    else if (role && role.getValue().starts_with("mtp_loss_"))
      mtpIndices.push_back(r);
  }
  auto isScalar = [](Type t) {
    auto r = dyn_cast<RankedTensorType>(t);
    return r && r.getRank() == 0 && isa<FloatType>(r.getElementType());
  };
  if (!lossIndex && !annotated && entryFunc.getNumResults() == 1)
    lossIndex = 0;
  if (!lossIndex || !isScalar(entryFunc.getResultTypes()[*lossIndex]))
    return entryFunc.emitError()
           << "kiln-autodiff: @" << entryFunc.getSymName()
           << " has no scalar loss: it needs a 0-d float result marked kiln.result = "
              "\"loss\" (or, without kiln.param arguments, a single 0-d float result)";
  if (mode == "train" && !annotated)
    return entryFunc.emitError() << "kiln-autodiff: mode=train needs parameters: mark "
                                    "the arguments to train with kiln.param";
  bool total = mode == "train" || lossKind == "total";

  // The new function's arguments.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  SmallVector<unsigned> entryArgPos(numArgs);
  auto addArg = [&](Type t, DictionaryAttr attrs) {
    argTypes.push_back(t);
    argAttrs.push_back(attrs ? attrs : b.getDictionaryAttr({}));
    return argTypes.size() - 1;
  };
  unsigned firstM = 0, firstV = 0, stepArg = 0, scaleArg = 0;
  const bool scaled = mode == "train" && lossScale == "dynamic";
  if (mode == "train") {
    for (unsigned p : params)
      entryArgPos[p] = addArg(entryFunc.getArgumentTypes()[p], entryFunc.getArgAttrDict(p));
    auto stateAttrs = [&](unsigned p, StringRef kind) {
      return b.getDictionaryAttr({b.getNamedAttr("kiln.state", b.getStringAttr(kind)),
                                  b.getNamedAttr("kiln.param",
                                                 entryFunc.getArgAttr(p, "kiln.param"))});
    };
    // The moments have the parameter's shape, in moment-type.
    auto momentTypeOf = [&](unsigned p) -> Type {
      auto type = cast<RankedTensorType>(entryFunc.getArgumentTypes()[p]);
      return momentType == "bf16" ? type.clone(b.getBF16Type()) : type;
    };
    firstM = argTypes.size();
    for (unsigned p : trainable)
      addArg(momentTypeOf(p), stateAttrs(p, "exp_avg"));
    firstV = argTypes.size();
    for (unsigned p : trainable)
      addArg(momentTypeOf(p), stateAttrs(p, "exp_avg_sq"));
    stepArg = addArg(RankedTensorType::get({}, b.getI64Type()),
                     b.getDictionaryAttr({b.getNamedAttr("kiln.input", b.getStringAttr("step"))}));
    if (scaled) {
      // GradScaler's state: the scale (with its initial value for the
      // driver), the finite steps since it last changed, and the AdamW
      // updates applied.
      auto state = [&](StringRef role) { return b.getNamedAttr("kiln.state", b.getStringAttr(role)); };
      scaleArg = addArg(RankedTensorType::get({}, b.getF32Type()),
                        b.getDictionaryAttr({state(kLossScalerStateRoles[0]),
                                             b.getNamedAttr("kiln.initial",
                                                            b.getF64FloatAttr(lossScaleInit))}));
      for (StringRef counter : ArrayRef(kLossScalerStateRoles).drop_front())
        addArg(RankedTensorType::get({}, b.getI64Type()), b.getDictionaryAttr({state(counter)}));
    }
    for (unsigned i : inputs)
      entryArgPos[i] = addArg(entryFunc.getArgumentTypes()[i], entryFunc.getArgAttrDict(i));
  } else {
    for (unsigned i = 0; i < numArgs; ++i)
      entryArgPos[i] = addArg(entryFunc.getArgumentTypes()[i], entryFunc.getArgAttrDict(i));
  }

  b.setInsertionPointAfter(entryFunc);
  std::string name = mode == "train" ? "train_step" : (entryFunc.getSymName() + "_grad").str();
  auto step = func::FuncOp::create(b, loc, name, b.getFunctionType(argTypes, {}));
  for (auto [i, attrs] : llvm::enumerate(argAttrs))
    step.setArgAttrs(i, attrs);
  for (StringRef attr : {"kiln.model_type", "kiln.vocab_size"})
    if (Attribute a = entryFunc->getAttr(attr))
      step->setAttr(attr, a);
  Block *entry = step.addEntryBlock();

  // Forward: a copy of the entry's body with instrumented calls.
  IRMapping mapping;
  for (unsigned i = 0; i < numArgs; ++i)
    mapping.map(entryFunc.getArgument(i), entry->getArgument(entryArgPos[i]));
  b.setInsertionPointToStart(entry);
  for (Operation &op : entryFunc.getBody().front().without_terminator())
    b.clone(op, mapping);
  auto ret = cast<func::ReturnOp>(entryFunc.getBody().front().getTerminator());
  SmallVector<AuxOutput> aux;
  SmallVector<Value> auxValues;
  if (failed(instrument(entry, aux, auxValues)))
    return failure();
  SmallVector<Operation *> forwardOps;
  for (Operation &op : *entry)
    forwardOps.push_back(&op);

  // The loss and the gradients it seeds.
  b.setInsertionPointToEnd(entry);
  Value mainLoss = mapping.lookup(ret.getOperand(*lossIndex));
  Type scalar = mainLoss.getType();
  Value totalLoss = mainLoss;
  OpBuilder sweepBuilder = OpBuilder::atBlockEnd(entry);
  ReverseSweep sweep(sweepBuilder, [](Value v) { return v; }, blocks);
  // The seed: 1, or the loss scale (every gradient then comes out scaled).
  if (scaled && scalar != entry->getArgument(scaleArg).getType())
    return entryFunc.emitError() << "kiln-autodiff: loss-scale=dynamic needs an f32 loss, got "
                                 << scalar;
  Value one = scaled ? Value(entry->getArgument(scaleArg)) : scalarConstant(b, loc, scalar, 1.0);
  sweep.addGrad(mainLoss, one);
  if (total) {
    double mtpWeight = mtpIndices.empty() ? 0.0 : mtpLossWeight / mtpIndices.size();
    // Weights go through kiln.scale (an f64 attribute) so that 0.3 stays 0.3.
    auto addWeighted = [&](Value term, double weight) {
      auto scaled = [&](Value v) {
        return ScaleOp::create(b, loc, scalar, v, b.getF64FloatAttr(weight));
      };
      totalLoss = arith::AddFOp::create(b, loc, totalLoss, scaled(term));
      sweep.addGrad(term, scaled(one));
    };
    for (unsigned r : mtpIndices)
      addWeighted(mapping.lookup(ret.getOperand(r)), mtpWeight);
    for (auto [a, v] : llvm::zip(aux, auxValues))
      if (a.kind == AuxOutput::Balance)
        addWeighted(v, auxLossAlpha);
  }
  if (failed(sweep.run(forwardOps)))
    return failure();
  b.setInsertionPointToEnd(entry);

  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  auto addResult = [&](Value v, StringRef role, Attribute param = {}) {
    results.push_back(v);
    SmallVector<NamedAttribute> attrs{b.getNamedAttr("kiln.result", b.getStringAttr(role))};
    if (param)
      attrs.push_back(b.getNamedAttr("kiln.param", param));
    resultAttrs.push_back(b.getDictionaryAttr(attrs));
  };

  if (mode == "gradient") {
    addResult(total ? totalLoss : mainLoss, "loss");
    for (unsigned p : trainable) {
      Value arg = entry->getArgument(entryArgPos[p]);
      addResult(sweep.gradOrZeros(arg), "grad", entryFunc.getArgAttr(p, "kiln.param"));
    }
  } else {
    // Clipping, schedule, AdamW; then the bias update from the step's loads.
    SmallVector<Value> grads;
    for (unsigned p : trainable)
      grads.push_back(sweep.gradOrZeros(entry->getArgument(entryArgPos[p])));
    Value norm = GlobalNormOp::create(b, loc, scalar, grads);
    Value stepValue = entry->getArgument(stepArg);
    // Dynamic loss scaling: unscale the norm and the clipping coefficient,
    // skip the updates on overflow, count AdamW's own steps.
    Value skip, invScale, adamStep = stepValue;
    SmallVector<Value> scalerState;
    if (scaled) {
      auto zeroD = [](Type t) { return RankedTensorType::get({}, t); };
      auto scaler = GradScalerOp::create(
          b, loc,
          TypeRange{zeroD(b.getI1Type()), zeroD(b.getF32Type()), zeroD(b.getF32Type()),
                    zeroD(b.getI64Type()), zeroD(b.getI64Type())},
          norm, entry->getArgument(scaleArg), entry->getArgument(scaleArg + 1),
          entry->getArgument(scaleArg + 2), b.getF64FloatAttr(lossScaleGrowthFactor),
          b.getF64FloatAttr(lossScaleBackoffFactor),
          b.getI64IntegerAttr(lossScaleGrowthInterval));
      skip = scaler.getSkip();
      invScale = scaler.getInvScale();
      norm = arith::MulFOp::create(b, loc, norm, invScale);
      adamStep = scaler.getNewUpdates();
      scalerState = {scaler.getNewScale(), scaler.getNewGrowthTracker(), scaler.getNewUpdates()};
    }
    Value scale = ClipScaleOp::create(b, loc, scalar, norm, b.getF64FloatAttr(gradClip));
    if (scaled)
      scale = arith::MulFOp::create(b, loc, scale, invScale);
    Value lrValue = LrScheduleOp::create(b, loc, scalar, stepValue, b.getF64FloatAttr(lr),
                                         b.getF64FloatAttr(minLr),
                                         b.getI64IntegerAttr(warmupSteps),
                                         b.getI64IntegerAttr(totalSteps));
    DenseMap<unsigned, Value> newParams;
    SmallVector<Value> newM, newV;
    for (auto [k, p] : llvm::enumerate(trainable)) {
      Value param = entry->getArgument(entryArgPos[p]);
      bool decay = cast<RankedTensorType>(param.getType()).getRank() > 1;
      auto update = AdamWOp::create(
          b, entryFunc.getArgument(p).getLoc(), param.getType(),
          entry->getArgument(firstM + k).getType(), entry->getArgument(firstV + k).getType(),
          param, grads[k], entry->getArgument(firstM + k),
          entry->getArgument(firstV + k), lrValue, adamStep, scale, skip, /*mask=*/Value(),
          b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2), b.getF64FloatAttr(eps),
          b.getF64FloatAttr(decay ? weightDecay.getValue() : 0.0));
      newParams[p] = update.getNewParam();
      newM.push_back(update.getNewM());
      newV.push_back(update.getNewV());
    }
    SmallVector<Value> loads, kept;
    for (auto [a, v] : llvm::zip(aux, auxValues)) {
      if (a.kind == AuxOutput::Kept)
        kept.push_back(v);
      if (a.kind != AuxOutput::Load)
        continue;
      loads.push_back(v);
      unsigned p = llvm::find(entryArgPos, a.biasArg) - entryArgPos.begin();
      if (p >= numArgs || newParams.count(p))
        return entryFunc.emitError() << "kiln-autodiff: a router bias is shared or "
                                        "trainable; each MoE layer needs its own "
                                        "kiln.trainable = false bias";
      newParams[p] = BiasUpdateOp::create(b, loc, v.getType(), entry->getArgument(a.biasArg),
                                          v, skip, b.getF64FloatAttr(biasUpdateSpeed));
    }
    for (unsigned p : params) {
      Value updated = newParams.lookup(p);
      addResult(updated ? updated : entry->getArgument(entryArgPos[p]), "param",
                entryFunc.getArgAttr(p, "kiln.param"));
    }
    for (auto [k, p] : llvm::enumerate(trainable))
      addResult(newM[k], "exp_avg", entryFunc.getArgAttr(p, "kiln.param"));
    for (auto [k, p] : llvm::enumerate(trainable))
      addResult(newV[k], "exp_avg_sq", entryFunc.getArgAttr(p, "kiln.param"));
    addResult(totalLoss, "loss");
    addResult(mainLoss, "main_loss");
    addResult(norm, "grad_norm");
    addResult(lrValue, "lr");
    for (auto [value, role] : llvm::zip(scalerState, kLossScalerStateRoles))
      addResult(value, role);
    for (Value load : loads)
      addResult(load, "expert_load");
    for (Value load : kept)
      addResult(load, "expert_kept");
  }
  func::ReturnOp::create(b, loc, results);
  step.setFunctionType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  for (auto [i, attrs] : llvm::enumerate(resultAttrs))
    step.setResultAttrs(i, attrs);

  if (report)
    step.emitRemark() << "kiln-autodiff: @" << name << ": " << sweep.numDifferentiated
                      << " ops differentiated, " << trainable.size()
                      << " trainable parameters, " << aux.size() << " router outputs";
  return success();
}

void AutodiffPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(checkOptions()))
    return signalPassFailure();
  auto entryFunc = module.lookupSymbol<func::FuncOp>(entry);
  if (!entryFunc || entryFunc.isExternal()) {
    module.emitError() << "kiln-autodiff: no function @" << entry << " with a body";
    return signalPassFailure();
  }
  // Sequences in a batch, for the sequence-wise balance loss.
  for (unsigned i = 0; i < entryFunc.getNumArguments(); ++i)
    if (auto role = entryFunc.getArgAttrOfType<StringAttr>(i, "kiln.input"))
      if (role.getValue() == "tokens")
        numSequences = cast<ShapedType>(entryFunc.getArgumentTypes()[i]).getShape()[0];

  SmallVector<func::FuncOp> postOrder;
  llvm::StringSet<> visiting, done;
  if (failed(collectBlocks(entryFunc, postOrder, visiting, done)))
    return signalPassFailure();
  postOrder.pop_back(); // the entry itself
  for (func::FuncOp f : postOrder)
    if (failed(differentiateBlock(f)))
      return signalPassFailure();
  if (failed(buildEntry(entryFunc)))
    return signalPassFailure();
}

} // namespace
} // namespace kiln
