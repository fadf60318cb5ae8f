//===- DataParallel.cpp - kiln-data-parallel: batch over dp, ZeRO-1, GA ---===//
//
// The step kiln-autodiff builds has two parts: the batch part (forward,
// losses, backward: everything that reads the batch) and the optimizer part
// (global_norm, clip_scale, lr_schedule, adamw, bias_update). The batch part
// is outlined into `@<entry>_micro` and called once per micro-batch; what
// crosses from it into the optimizer is a sum over rows (gradients, expert
// loads, loss shares), so summing it over micro-batches and then over ranks
// gives the single-device step's value on the global batch. The only
// non-additive pieces are the loss normalisers, which become global: the
// token count of each cross-entropy mask and the sequence count of each
// balance loss. Passes.td has the full contract.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNDATAPARALLEL
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

bool isOptimizerOp(Operation *op) {
  return isa<GlobalNormOp, ClipScaleOp, LrScheduleOp, GradScalerOp, AdamWOp, BiasUpdateOp>(op);
}

StringRef inputRole(func::FuncOp f, unsigned i) {
  auto role = f.getArgAttrOfType<StringAttr>(i, "kiln.input");
  return role ? role.getValue() : StringRef();
}

/// Arguments that hold rows of the batch (every kiln.input but the step).
bool isBatchInput(func::FuncOp f, unsigned i) {
  StringRef role = inputRole(f, i);
  return !role.empty() && role != "step";
}

int64_t numElements(Type t) { return cast<ShapedType>(t).getNumElements(); }

class DataParallelRewrite {
public:
  /// `dpAxes` are the grid axes the batch is split over (all of them).
  DataParallelRewrite(ModuleOp module, func::FuncOp step, int64_t dp, int64_t zero,
                      int64_t microbatches, ArrayAttr dpAxes)
      : module(module), step(step), dp(dp), zero(zero), microbatches(microbatches),
        dpAxes(dpAxes) {}

  LogicalResult run();

  // What the report says.
  int64_t numAllReduced = 0, allReducedBytes = 0;
  int64_t numScattered = 0, scatteredBytes = 0, gatheredBytes = 0;
  int64_t batchRows = 0;

private:
  LogicalResult classifyOps();
  LogicalResult splitReplicatedWork();
  LogicalResult checkBoundary();
  LogicalResult findSplitGradients();
  func::FuncOp outlineMicroStep();
  LogicalResult wireLossCounts(func::FuncOp micro);
  void setBalanceNormalisers(func::FuncOp micro);
  LogicalResult buildStep(func::FuncOp micro);

  // Pieces of the new step.
  Value sumOverRanks(OpBuilder &b, Value v, ArrayAttr axes);
  /// This rank's shard of the sum over ranks of `grad` (the new step's
  /// value of `oldGrad`).
  Value gradientShard(OpBuilder &b, Value oldGrad, Value grad);
  Value flatPadded(OpBuilder &b, Location loc, Value v, int64_t ranks);
  Value unflatten(OpBuilder &b, Location loc, Value flat, Type type);
  Value splitGlobalNorm(OpBuilder &b, GlobalNormOp norm, IRMapping &map);
  /// The axes a gradient is summed over: all of them, but for a parameter
  /// split over some axes (kiln.split: expert parallelism), the others.
  ArrayAttr reduceAxes(Value grad) const {
    ArrayAttr split = splitAxesOf.lookup(grad);
    if (!split)
      return dpAxes;
    SmallVector<Attribute> rest;
    for (Attribute axis : dpAxes)
      if (!llvm::is_contained(split, axis))
        rest.push_back(axis);
    return ArrayAttr::get(dpAxes.getContext(), rest);
  }
  int64_t ranksOf(ArrayAttr axes) const { return GridAttr::lookup(module).groupSize(axes); }
  int64_t shardSize(Type t, ArrayAttr axes) const {
    const int64_t ranks = dp == 1 ? 1 : ranksOf(axes);
    return (numElements(t) + ranks - 1) / ranks;
  }

  ModuleOp module;
  func::FuncOp step;
  int64_t dp, zero, microbatches;
  ArrayAttr dpAxes;

  llvm::SetVector<Operation *> batchOps;     ///< in program order
  llvm::SetVector<Operation *> optimizerOps; ///< in program order
  /// Ops that read no batch input but whose results the optimizer reads
  /// (2:4 masks, SR-STE's decay term), and what they read: run once per
  /// step, before the micro-batches, which get what they need of them as
  /// arguments (`prologueInputs`).
  llvm::SetVector<Operation *> prologueOps;
  llvm::SetVector<Value> prologueInputs;
  /// Additions of a replicated term to a gradient (SR-STE's decay): moved
  /// to the optimizer part, so the term is added once to the gradient
  /// summed over micro-batches and ranks, not once per micro-batch and rank.
  llvm::DenseSet<Operation *> replicatedAdds;
  llvm::SetVector<Value> boundary;           ///< batch values the optimizer reads
  llvm::DenseSet<Value> gradients;           ///< boundary values that are gradients
  llvm::SmallVector<unsigned> usedArgs;      ///< step arguments the batch part reads
  /// Distinct loss masks in the micro step, each with its count argument.
  llvm::MapVector<Value, unsigned> maskCounts;
  llvm::DenseMap<Value, Value> shardOf; ///< reduced gradient -> its shard
  /// Gradients of split parameters -> the axes the parameter is split over
  /// (kiln.split's `axes`).
  llvm::DenseMap<Value, ArrayAttr> splitAxesOf;
};

//===----------------------------------------------------------------------===//
// Analysis
//===----------------------------------------------------------------------===//

LogicalResult DataParallelRewrite::classifyOps() {
  llvm::DenseSet<Value> optimizerValues;
  for (Operation &op : step.getBody().front().without_terminator()) {
    bool afterOptimizer = llvm::any_of(op.getOperands(), [&](Value v) {
      return optimizerValues.contains(v);
    });
    if (isOptimizerOp(&op) || afterOptimizer) {
      optimizerOps.insert(&op);
      optimizerValues.insert(op.result_begin(), op.result_end());
    } else if (!isa<arith::ConstantOp>(op)) {
      batchOps.insert(&op);
    }
  }
  if (llvm::none_of(optimizerOps, [](Operation *op) { return isa<AdamWOp>(op); }))
    return step.emitError() << "kiln-data-parallel: @" << step.getSymName()
                            << " has no kiln.adamw; expected the training step "
                               "kiln-autodiff builds (mode=train)";
  return splitReplicatedWork();
}

/// Work that reads no batch input and feeds the optimizer is done once per
/// step (see prologueOps and replicatedAdds).
LogicalResult DataParallelRewrite::splitReplicatedWork() {
  auto returnOp = cast<func::ReturnOp>(step.getBody().front().getTerminator());
  llvm::DenseSet<Value> fromBatch;
  for (unsigned i = 0; i < step.getNumArguments(); ++i)
    if (isBatchInput(step, i))
      fromBatch.insert(step.getArgument(i));
  for (Operation *op : batchOps)
    if (llvm::any_of(op->getOperands(), [&](Value v) { return fromBatch.contains(v); }))
      fromBatch.insert(op->result_begin(), op->result_end());
  auto feedsOptimizer = [&](Operation *op) {
    return llvm::any_of(op->getUsers(), [&](Operation *u) {
      return optimizerOps.contains(u) || u == returnOp;
    });
  };
  // gradient + term, read by the optimizer alone: the optimizer's.
  for (Operation *op : llvm::reverse(batchOps)) {
    if (!isa<arith::AddFOp, arith::SubFOp>(op) || op->getNumOperands() != 2)
      continue;
    const bool lhs = fromBatch.contains(op->getOperand(0)),
               rhs = fromBatch.contains(op->getOperand(1));
    if (lhs == rhs || !llvm::all_of(op->getUsers(), [&](Operation *u) {
          return optimizerOps.contains(u) || u == returnOp;
        }))
      continue;
    if (zero == 1 && dp > 1)
      return op->emitError() << "kiln-data-parallel: adds a term that does not depend on the "
                                "batch to a gradient (SR-STE's decay), which ZeRO-1's "
                                "reduce-scattered gradients do not take yet; expected zero 0";
    replicatedAdds.insert(op);
  }
  for (Operation *op : replicatedAdds) {
    batchOps.remove(op);
    optimizerOps.insert(op);
  }
  // Keep optimizerOps in program order.
  llvm::SetVector<Operation *> ordered;
  for (Operation &op : step.getBody().front().without_terminator())
    if (optimizerOps.contains(&op))
      ordered.insert(&op);
  optimizerOps = std::move(ordered);
  // What the optimizer reads without the batch, and what that reads.
  SmallVector<Operation *> work;
  for (Operation *op : batchOps)
    if (op->getNumResults() > 0 && !fromBatch.contains(op->getResult(0)) && feedsOptimizer(op))
      work.push_back(op);
  llvm::DenseSet<Operation *> prologue;
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!batchOps.contains(op) || !prologue.insert(op).second)
      continue;
    for (Value v : op->getOperands())
      if (Operation *def = v.getDefiningOp())
        work.push_back(def);
  }
  for (Operation *op : batchOps)
    if (prologue.contains(op))
      prologueOps.insert(op);
  for (Operation *op : prologueOps)
    batchOps.remove(op);
  for (Operation *op : batchOps)
    for (Value v : op->getOperands())
      if (Operation *def = v.getDefiningOp(); def && prologueOps.contains(def))
        prologueInputs.insert(v);
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    Value arg = step.getArgument(i);
    if (llvm::any_of(arg.getUsers(), [&](Operation *u) { return batchOps.contains(u); }))
      usedArgs.push_back(i);
  }
  return success();
}

/// Every value that crosses from the batch part into the optimizer must be a
/// sum over rows, or its sum over ranks would mean nothing.
LogicalResult DataParallelRewrite::checkBoundary() {
  auto returnOp = cast<func::ReturnOp>(step.getBody().front().getTerminator());
  for (Operation *op : batchOps) {
    for (Value v : op->getResults()) {
      for (OpOperand &use : v.getUses()) {
        Operation *user = use.getOwner();
        bool summable = false;
        if (isa<AdamWOp>(user)) {
          summable = use.getOperandNumber() == 1; // the gradient
          gradients.insert(v);
        } else if (replicatedAdds.contains(user)) {
          summable = true; // a gradient plus a replicated term
          gradients.insert(v);
        } else if (isa<GlobalNormOp>(user)) {
          summable = true;
          gradients.insert(v);
        } else if (isa<BiasUpdateOp>(user)) {
          summable = use.getOperandNumber() == 1; // the expert load
        } else if (user == returnOp) {
          auto role = step.getResultAttrOfType<StringAttr>(use.getOperandNumber(), "kiln.result");
          summable = role && llvm::is_contained({"loss", "main_loss", "expert_load", "expert_kept"},
                                                role.getValue());
        } else if (!optimizerOps.contains(user)) {
          continue; // a use inside the batch part
        }
        if (!summable || !isa<FloatType>(getElementTypeOrSelf(v.getType()))) {
          auto diag = user->emitError()
                      << "kiln-data-parallel: reads a result of '" << op->getName()
                      << "' from the batch part of the step, which is neither a gradient, an "
                         "expert load nor a loss; only such sums over rows can be combined "
                         "over ranks";
          diag.attachNote(op->getLoc()) << "produced here";
          return diag;
        }
        boundary.insert(v);
      }
    }
  }
  return success();
}

/// Gradients of parameters that each rank holds a split of (kiln.split, set
/// by kiln-expert-parallel): the ranks that hold the same split sum them,
/// i.e. over the grid axes other than the split ones.
LogicalResult DataParallelRewrite::findSplitGradients() {
  for (Operation *op : optimizerOps) {
    auto adam = dyn_cast<AdamWOp>(op);
    if (!adam)
      continue;
    auto param = dyn_cast<BlockArgument>(adam.getParam());
    if (!param || param.getOwner() != &step.getBody().front())
      continue;
    auto split = step.getArgAttrOfType<DictionaryAttr>(param.getArgNumber(), "kiln.split");
    if (!split)
      continue;
    auto splitAxes = split.getAs<ArrayAttr>("axes");
    if (!GridAttr::lookup(module) || !splitAxes ||
        llvm::none_of(splitAxes, [&](Attribute a) { return llvm::is_contained(dpAxes, a); }))
      return adam.emitError() << "kiln-data-parallel: the parameter is split over " << splitAxes
                              << " (kiln.split), which are not axes of the data-parallel grid "
                              << dpAxes;
    splitAxesOf[adam.getGrad()] = splitAxes;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// The micro step
//===----------------------------------------------------------------------===//

func::FuncOp DataParallelRewrite::outlineMicroStep() {
  OpBuilder b(step);
  b.setInsertionPointAfter(step); // read top-down: the step, then what it calls
  SmallVector<Type> argTypes;
  for (unsigned i : usedArgs)
    argTypes.push_back(step.getArgument(i).getType());
  for (Value v : prologueInputs)
    argTypes.push_back(v.getType());
  SmallVector<Type> resultTypes;
  for (Value v : boundary)
    resultTypes.push_back(v.getType());
  auto micro = func::FuncOp::create(b, step.getLoc(), (step.getSymName() + "_micro").str(),
                                    b.getFunctionType(argTypes, resultTypes));
  micro.setPrivate();
  for (auto [k, i] : llvm::enumerate(usedArgs))
    micro.setArgAttrs(k, step.getArgAttrDict(i));
  Block *body = micro.addEntryBlock();
  IRMapping map;
  for (auto [k, i] : llvm::enumerate(usedArgs))
    map.map(step.getArgument(i), body->getArgument(k));
  for (auto [k, v] : llvm::enumerate(prologueInputs))
    map.map(v, body->getArgument(usedArgs.size() + k));
  OpBuilder mb = OpBuilder::atBlockEnd(body);
  for (Operation &op : step.getBody().front().without_terminator()) {
    if (batchOps.contains(&op))
      mb.clone(op, map);
    else if (isa<arith::ConstantOp>(op) &&
             llvm::any_of(op.getUsers(), [&](Operation *u) { return batchOps.contains(u); }))
      mb.clone(op, map);
  }
  SmallVector<Value> results;
  for (Value v : boundary)
    results.push_back(map.lookup(v));
  func::ReturnOp::create(mb, step.getLoc(), results);
  return micro;
}

/// Gives every cross-entropy in the micro step the global token count of its
/// mask, as a new trailing argument per distinct mask, and every GRPO loss
/// the denominator of its reduction over the global batch.
LogicalResult DataParallelRewrite::wireLossCounts(func::FuncOp micro) {
  SymbolTable symbols(module);
  WalkResult nested = micro.walk([&](func::CallOp call) {
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    if (!callee)
      return WalkResult::advance();
    WalkResult inner = callee.walk([&](Operation *op) {
      if (isa<CrossEntropyOp, CrossEntropyGradOp, GrpoLossOp, GrpoLossGradOp>(op)) {
        op->emitError() << "kiln-data-parallel: a loss inside @" << callee.getSymName()
                        << " cannot be normalised over the global batch; expected every "
                           "kiln.cross_entropy in the step function itself";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    return inner.wasInterrupted() ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (nested.wasInterrupted())
    return failure();

  auto scalar = RankedTensorType::get({}, Float32Type::get(module.getContext()));
  Block &body = micro.getBody().front();
  auto countFor = [&](Value mask) -> Value {
    auto [it, inserted] = maskCounts.insert({mask, body.getNumArguments()});
    if (inserted) {
      (void)micro.insertArgument(body.getNumArguments(), scalar,
                           DictionaryAttr::get(module.getContext(),
                                               {NamedAttribute(StringAttr::get(module.getContext(),
                                                                               "kiln.input"),
                                                               StringAttr::get(module.getContext(),
                                                                               "token_count"))}),
                           micro.getLoc());
    }
    return body.getArgument(it->second);
  };
  // GRPO's per-sequence reductions divide by the global batch's rows, a
  // constant of the layout; its token mean by the global token count.
  auto globalRows = [&](Operation *op, Value logits) -> Value {
    OpBuilder b(op);
    const int64_t rows = cast<RankedTensorType>(logits.getType()).getDimSize(0) * dp *
                         microbatches;
    return arith::ConstantOp::create(
        b, op->getLoc(), scalar,
        DenseElementsAttr::get(scalar, b.getF32FloatAttr(float(rows)).getValue()));
  };
  auto grpoCount = [&](auto grpo) -> Value {
    return grpo.getAggregation() == "token-mean" ? countFor(grpo.getMask())
                                                 : globalRows(grpo, grpo.getLogits());
  };
  for (Operation &op : llvm::make_early_inc_range(body)) {
    if (auto ce = dyn_cast<CrossEntropyOp>(op))
      ce.getCountMutable().assign(countFor(ce.getMask()));
    else if (auto grad = dyn_cast<CrossEntropyGradOp>(op))
      grad.getCountMutable().assign(countFor(grad.getMask()));
    else if (auto grpo = dyn_cast<GrpoLossOp>(op))
      grpo.getCountMutable().assign(grpoCount(grpo));
    else if (auto grpoGrad = dyn_cast<GrpoLossGradOp>(op))
      grpoGrad.getCountMutable().assign(grpoCount(grpoGrad));
  }
  // A mask must be computable from the batch alone: it is counted before the
  // first micro-batch runs.
  for (auto &[mask, index] : maskCounts) {
    SmallVector<Value> work = {mask};
    llvm::DenseSet<Value> seen;
    while (!work.empty()) {
      Value v = work.pop_back_val();
      if (!seen.insert(v).second)
        continue;
      if (auto arg = dyn_cast<BlockArgument>(v)) {
        if (arg.getOwner() == &body && isBatchInput(micro, arg.getArgNumber()))
          continue;
        return micro.emitError() << "kiln-data-parallel: a loss mask depends on argument #"
                                 << arg.getArgNumber()
                                 << ", which is not a batch input; masks are counted over "
                                    "the global batch before the step runs";
      }
      Operation *def = v.getDefiningOp();
      if (isa<func::CallOp>(def))
        return def->emitError() << "kiln-data-parallel: a loss mask comes out of a call; "
                                   "expected it computed from the batch inputs in the step";
      work.append(def->operand_begin(), def->operand_end());
    }
  }
  return success();
}

/// Balance losses average over sequences: over the global batch's.
void DataParallelRewrite::setBalanceNormalisers(func::FuncOp micro) {
  SymbolTable symbols(module);
  llvm::SetVector<func::FuncOp> reachable;
  reachable.insert(micro);
  for (size_t i = 0; i < reachable.size(); ++i) {
    func::FuncOp f = reachable[i];
    f.walk([&](func::CallOp call) {
      if (auto callee = symbols.lookup<func::FuncOp>(call.getCallee()))
        reachable.insert(callee);
    });
  }
  auto global = [&](int64_t sequences) {
    return IntegerAttr::get(IntegerType::get(module.getContext(), 64),
                            sequences * dp * microbatches);
  };
  for (func::FuncOp f : reachable)
    f.walk([&](Operation *op) {
      if (auto loss = dyn_cast<BalanceLossOp>(op))
        loss.setTotalSequencesAttr(global(loss.getNumSequences()));
      else if (auto grad = dyn_cast<BalanceLossGradOp>(op))
        grad.setTotalSequencesAttr(global(grad.getNumSequences()));
    });
}

//===----------------------------------------------------------------------===//
// The new step
//===----------------------------------------------------------------------===//

Value DataParallelRewrite::sumOverRanks(OpBuilder &b, Value v, ArrayAttr axes) {
  if (dp == 1)
    return v;
  ++numAllReduced;
  allReducedBytes += bytesOf(v.getType());
  return AllReduceOp::create(b, v.getLoc(), v.getType(), v, b.getStringAttr("sum"), axes);
}

/// `v` as a 1-D tensor zero-padded to a multiple of `ranks` elements.
Value DataParallelRewrite::flatPadded(OpBuilder &b, Location loc, Value v, int64_t ranks) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t n = type.getNumElements(), padded = (n + ranks - 1) / ranks * ranks;
  Value flat = v;
  if (type.getRank() != 1) {
    SmallVector<ReassociationIndices> all(1);
    for (int64_t d = 0; d < type.getRank(); ++d)
      all[0].push_back(d);
    flat = tensor::CollapseShapeOp::create(b, loc, v, all);
  }
  if (padded == n)
    return flat;
  auto zerosType = RankedTensorType::get({padded - n}, type.getElementType());
  Value zeros = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(zerosType, b.getZeroAttr(type.getElementType())));
  return tensor::ConcatOp::create(b, loc, 0, ValueRange{flat, zeros});
}

/// The inverse of flatPadded.
Value DataParallelRewrite::unflatten(OpBuilder &b, Location loc, Value flat, Type type) {
  auto target = cast<RankedTensorType>(type);
  int64_t n = target.getNumElements();
  Value v = flat;
  if (cast<RankedTensorType>(flat.getType()).getNumElements() != n)
    v = tensor::ExtractSliceOp::create(b, loc, RankedTensorType::get({n}, target.getElementType()),
                                       flat, ValueRange{}, ValueRange{}, ValueRange{},
                                       b.getDenseI64ArrayAttr({0}), b.getDenseI64ArrayAttr({n}),
                                       b.getDenseI64ArrayAttr({1}));
  if (target.getRank() == 1)
    return v;
  SmallVector<ReassociationIndices> all(1);
  for (int64_t d = 0; d < target.getRank(); ++d)
    all[0].push_back(d);
  return tensor::ExpandShapeOp::create(b, loc, target, v, all);
}

Value DataParallelRewrite::gradientShard(OpBuilder &b, Value oldGrad, Value grad) {
  if (Value shard = shardOf.lookup(grad))
    return shard;
  Location loc = grad.getLoc();
  ArrayAttr axes = reduceAxes(oldGrad);
  Value flat = flatPadded(b, loc, grad, ranksOf(axes));
  auto shardType = RankedTensorType::get({shardSize(grad.getType(), axes)},
                                         getElementTypeOrSelf(grad.getType()));
  ++numScattered;
  scatteredBytes += bytesOf(flat.getType());
  Value shard = ReduceScatterOp::create(b, loc, shardType, flat, b.getStringAttr("sum"), axes,
                                        b.getI64IntegerAttr(0));
  shardOf[grad] = shard;
  return shard;
}

/// The gradient norm when some gradients are split over ranks (each rank
/// holds the summed gradient of its split only): the replicated gradients'
/// squared norm, plus the sum over the split axes of each split's squared
/// norm.
Value DataParallelRewrite::splitGlobalNorm(OpBuilder &b, GlobalNormOp norm, IRMapping &map) {
  Location loc = norm.getLoc();
  llvm::MapVector<ArrayAttr, SmallVector<Value>> bySplit; // null: replicated
  for (Value g : norm.getTensors())
    bySplit[splitAxesOf.lookup(g)].push_back(map.lookup(g));
  Value total;
  for (auto &[splitAxes, tensors] : bySplit) {
    Value part = GlobalNormOp::create(b, loc, norm.getType(), tensors);
    Value squared = arith::MulFOp::create(b, loc, part, part);
    if (splitAxes)
      squared = sumOverRanks(b, squared, splitAxes);
    total = total ? arith::AddFOp::create(b, loc, total, squared).getResult() : squared;
  }
  return math::SqrtOp::create(b, loc, total);
}

LogicalResult DataParallelRewrite::buildStep(func::FuncOp micro) {
  MLIRContext *ctx = module.getContext();
  const bool sharded = zero == 1 && dp > 1;
  Block &oldBody = step.getBody().front();
  auto oldReturn = cast<func::ReturnOp>(oldBody.getTerminator());

  // Which arguments and results change type: batch inputs hold M micro-batches;
  // with ZeRO-1 the moments of each AdamW are shards.
  SmallVector<Type> argTypes(step.getArgumentTypes());
  for (unsigned i = 0; i < step.getNumArguments(); ++i)
    if (isBatchInput(step, i)) {
      auto type = cast<RankedTensorType>(argTypes[i]);
      if (type.getRank() == 0)
        return step.emitError() << "kiln-data-parallel: batch input #" << i
                                << " is a 0-d tensor; expected [rows, ...]";
      batchRows = type.getDimSize(0);
      SmallVector<int64_t> shape(type.getShape());
      shape[0] *= microbatches;
      argTypes[i] = RankedTensorType::get(shape, type.getElementType());
    }
  SmallVector<Type> resultTypes(step.getResultTypes());
  llvm::DenseMap<Value, AdamWOp> adamOfMoment; // moment argument -> its AdamW
  if (sharded)
    for (Operation *op : optimizerOps)
      if (auto adam = dyn_cast<AdamWOp>(op)) {
        for (Value moment : {adam.getM(), adam.getV()}) {
          auto arg = dyn_cast<BlockArgument>(moment);
          if (!arg || arg.getOwner() != &oldBody || !moment.hasOneUse())
            return adam.emitError() << "kiln-data-parallel: zero=1 shards AdamW moments that "
                                       "are step arguments read once; this one is not";
          argTypes[arg.getArgNumber()] =
              RankedTensorType::get({shardSize(moment.getType(), reduceAxes(adam.getGrad()))},
                                    getElementTypeOrSelf(moment.getType()));
          adamOfMoment[moment] = adam;
        }
        for (OpOperand &use : adam->getUses())
          if (use.getOwner() == oldReturn && use.get() != adam.getNewParam())
            resultTypes[use.getOperandNumber()] =
                RankedTensorType::get({shardSize(use.get().getType(), reduceAxes(adam.getGrad()))},
                                      getElementTypeOrSelf(use.get().getType()));
      }

  OpBuilder b(step);
  auto newStep = func::FuncOp::create(b, step.getLoc(), step.getSymName(),
                                      b.getFunctionType(argTypes, resultTypes));
  newStep->setAttrs(step->getAttrs()); // copies the old function_type too
  newStep.setFunctionType(b.getFunctionType(argTypes, resultTypes));
  Block *body = newStep.addEntryBlock();
  b.setInsertionPointToEnd(body);
  IRMapping map;
  for (unsigned i = 0; i < step.getNumArguments(); ++i)
    map.map(step.getArgument(i), body->getArgument(i));
  for (auto [moment, adam] : adamOfMoment) {
    unsigned i = cast<BlockArgument>(moment).getArgNumber();
    SmallVector<NamedAttribute> attrs(step.getArgAttrDict(i).getValue());
    attrs.push_back(b.getNamedAttr(
        "kiln.sharded", b.getDictionaryAttr({b.getNamedAttr("axes", reduceAxes(adam.getGrad())),
                                             b.getNamedAttr("numel", b.getI64IntegerAttr(
                                                                         numElements(moment.getType())))})));
    newStep.setArgAttrs(i, b.getDictionaryAttr(attrs));
  }

  // Rows [i*B, (i+1)*B) of every batch input, per micro-batch.
  auto microInput = [&](unsigned arg, int64_t i) -> Value {
    Value full = body->getArgument(arg);
    if (microbatches == 1)
      return full;
    auto type = cast<RankedTensorType>(step.getArgument(arg).getType());
    SmallVector<int64_t> offsets(type.getRank(), 0), strides(type.getRank(), 1);
    offsets[0] = i * batchRows;
    return tensor::ExtractSliceOp::create(b, step.getLoc(), type, full, ValueRange{},
                                          ValueRange{}, ValueRange{},
                                          b.getDenseI64ArrayAttr(offsets),
                                          b.getDenseI64ArrayAttr(type.getShape()),
                                          b.getDenseI64ArrayAttr(strides));
  };
  // What reads no batch input but feeds the optimizer: once, before the
  // micro-batches.
  for (Operation &op : oldBody.without_terminator()) {
    const bool constantForPrologue =
        isa<arith::ConstantOp>(op) &&
        llvm::any_of(op.getUsers(), [&](Operation *u) { return prologueOps.contains(u); });
    if (constantForPrologue || prologueOps.contains(&op))
      b.clone(op, map);
  }
  SmallVector<SmallVector<Value>> microArgs(microbatches);
  for (int64_t i = 0; i < microbatches; ++i) {
    for (unsigned arg : usedArgs)
      microArgs[i].push_back(isBatchInput(step, arg) ? microInput(arg, i)
                                                     : body->getArgument(arg));
    for (Value v : prologueInputs)
      microArgs[i].push_back(map.lookup(v));
  }

  // Token counts of every loss mask over the global batch, before any
  // micro-batch runs: the micro step's mask computation, replayed on each
  // micro-batch's rows, summed, then summed over ranks.
  Block &microBody = micro.getBody().front();
  auto scalar = RankedTensorType::get({}, Float32Type::get(ctx));
  SmallVector<Value> counts;
  for (auto &[mask, index] : maskCounts) {
    llvm::SetVector<Operation *> slice; // the ops the mask is computed by
    SmallVector<Value> work = {mask};
    while (!work.empty()) {
      Value v = work.pop_back_val();
      if (Operation *def = v.getDefiningOp())
        if (slice.insert(def))
          work.append(def->operand_begin(), def->operand_end());
    }
    Value total;
    for (int64_t i = 0; i < microbatches; ++i) {
      IRMapping replay;
      for (auto [k, v] : llvm::enumerate(microArgs[i]))
        replay.map(microBody.getArgument(k), v);
      for (Operation &op : microBody)
        if (slice.contains(&op))
          b.clone(op, replay);
      Value m = replay.lookupOrDefault(mask);
      auto type = cast<RankedTensorType>(m.getType());
      auto ones = RankedTensorType::get(SmallVector<int64_t>(type.getRank(), 1),
                                        type.getElementType());
      Value summed = UnbroadcastOp::create(b, mask.getLoc(), ones, m);
      Value count = tensor::CollapseShapeOp::create(b, mask.getLoc(), scalar, summed,
                                                    SmallVector<ReassociationIndices>{});
      total = total ? arith::AddFOp::create(b, mask.getLoc(), total, count).getResult() : count;
    }
    counts.push_back(sumOverRanks(b, total, dpAxes));
  }

  // The micro-batches, their results summed in order.
  SmallVector<Value> sums;
  for (int64_t i = 0; i < microbatches; ++i) {
    SmallVector<Value> operands(microArgs[i]);
    operands.append(counts);
    auto call = func::CallOp::create(b, step.getLoc(), micro, operands);
    for (auto [k, r] : llvm::enumerate(call.getResults()))
      if (i == 0)
        sums.push_back(r);
      else
        sums[k] = arith::AddFOp::create(b, step.getLoc(), sums[k], r);
  }
  for (auto [v, sum] : llvm::zip(boundary, sums))
    map.map(v, sharded && gradients.contains(v) ? sum : sumOverRanks(b, sum, reduceAxes(v)));

  // The optimizer, reading the combined values.
  for (Operation &op : oldBody.without_terminator()) {
    if (isa<arith::ConstantOp>(op) &&
        llvm::any_of(op.getUsers(), [&](Operation *u) { return optimizerOps.contains(u); })) {
      b.clone(op, map);
      continue;
    }
    if (!optimizerOps.contains(&op))
      continue;
    if (auto norm = dyn_cast<GlobalNormOp>(op); norm && sharded) {
      // sqrt(sum over ranks of the squared norm of this rank's shards): the
      // shards of all ranks partition every gradient, split ones included.
      SmallVector<Value> shards;
      for (Value g : norm.getTensors())
        shards.push_back(gradientShard(b, g, map.lookup(g)));
      Location loc = norm.getLoc();
      Value local = GlobalNormOp::create(b, loc, norm.getType(), shards);
      Value squared = arith::MulFOp::create(b, loc, local, local);
      Value total = sumOverRanks(b, squared, dpAxes);
      map.map(norm.getNorm(), math::SqrtOp::create(b, loc, total));
      continue;
    }
    if (auto norm = dyn_cast<GlobalNormOp>(op);
        norm && llvm::any_of(norm.getTensors(),
                             [&](Value g) { return splitAxesOf.contains(g); })) {
      map.map(norm.getNorm(), splitGlobalNorm(b, norm, map));
      continue;
    }
    if (auto adam = dyn_cast<AdamWOp>(op); adam && sharded) {
      Location loc = adam.getLoc();
      ArrayAttr axes = reduceAxes(adam.getGrad());
      const int64_t ranks = ranksOf(axes);
      Value gradShard = gradientShard(b, adam.getGrad(), map.lookup(adam.getGrad()));
      Value paramShard =
          LocalShardOp::create(b, loc, gradShard.getType(),
                               flatPadded(b, loc, map.lookup(adam.getParam()), ranks), axes,
                               b.getI64IntegerAttr(0));
      const Value m = map.lookup(adam.getM()), v = map.lookup(adam.getV());
      auto update = AdamWOp::create(
          b, loc, TypeRange{gradShard.getType(), m.getType(), v.getType()},
          paramShard, gradShard, m, v,
          map.lookup(adam.getLr()), map.lookup(adam.getStep()), map.lookup(adam.getGradScale()),
          adam.getSkip() ? map.lookup(adam.getSkip()) : Value(),
          adam.getMask() ? LocalShardOp::create(b, loc, gradShard.getType(),
                                                flatPadded(b, loc, map.lookup(adam.getMask()), ranks),
                                                axes, b.getI64IntegerAttr(0))
                               .getResult()
                         : Value(),
          adam.getBeta1Attr(), adam.getBeta2Attr(), adam.getEpsAttr(), adam.getWeightDecayAttr());
      auto paddedType =
          RankedTensorType::get({shardSize(adam.getParam().getType(), axes) * ranks},
                                getElementTypeOrSelf(gradShard.getType()));
      gatheredBytes += bytesOf(paddedType);
      Value gathered = AllGatherOp::create(b, loc, paddedType, update.getNewParam(), axes,
                                           b.getI64IntegerAttr(0));
      map.map(adam.getNewParam(), unflatten(b, loc, gathered, adam.getParam().getType()));
      map.map(adam.getNewM(), update.getNewM());
      map.map(adam.getNewV(), update.getNewV());
      continue;
    }
    b.clone(op, map);
  }
  SmallVector<Value> results;
  for (Value v : oldReturn.getOperands())
    results.push_back(map.lookupOrDefault(v));
  func::ReturnOp::create(b, oldReturn.getLoc(), results);

  for (unsigned i = 0; i < step.getNumResults(); ++i)
    newStep.setResultAttrs(i, step.getResultAttrDict(i));
  step.erase();
  step = newStep;
  return success();
}

LogicalResult DataParallelRewrite::run() {
  if (failed(classifyOps()) || failed(checkBoundary()) || failed(findSplitGradients()))
    return failure();
  func::FuncOp micro = outlineMicroStep();
  if (failed(wireLossCounts(micro)))
    return failure();
  setBalanceNormalisers(micro);
  return buildStep(micro);
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct DataParallelPass : impl::KilnDataParallelBase<DataParallelPass> {
  using KilnDataParallelBase::KilnDataParallelBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (dp < 1 || microbatches < 1 || (zero != 0 && zero != 1)) {
      module.emitError() << "kiln-data-parallel: expected dp >= 1, microbatches >= 1 and zero "
                            "0 or 1, got dp "
                         << dp << ", microbatches " << microbatches << ", zero " << zero;
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>(entry);
    if (!step || step.isExternal()) {
      module.emitError() << "kiln-data-parallel: no function @" << entry
                         << " with a body to partition";
      return signalPassFailure();
    }
    ArrayAttr dpAxes = ArrayAttr::get(&getContext(), {StringAttr::get(&getContext(), "dp")});
    if (dp > 1 && failed(declareGrid(module, dpAxes)))
      return signalPassFailure();
    DataParallelRewrite rewrite(module, step, dp, zero, microbatches, dpAxes);
    if (failed(rewrite.run()))
      return signalPassFailure();
    if (report) {
      auto newStep = module.lookupSymbol<func::FuncOp>(entry);
      auto remark = newStep.emitRemark()
                    << "kiln-data-parallel: dp " << dp.getValue() << ", microbatches "
                    << microbatches.getValue() << " x " << rewrite.batchRows
                    << " rows, zero " << zero.getValue() << ": per rank per step, "
                    << rewrite.numAllReduced << " all_reduce (" << rewrite.allReducedBytes
                    << " bytes)";
      if (zero == 1 && dp > 1)
        remark << ", " << rewrite.numScattered << " reduce_scatter ("
               << rewrite.scatteredBytes << " bytes) and as many all_gather ("
               << rewrite.gatheredBytes << " bytes)";
    }
  }

  /// The module's grid gets a "dp" axis of size dp, or already has one, or
  /// is kiln-expert-parallel's ["edp", "ep"] with dp ranks (the batch is
  /// then split over both axes); `dpAxes` gets the batch axes.
  LogicalResult declareGrid(ModuleOp module, ArrayAttr &dpAxes) {
    MLIRContext *ctx = module.getContext();
    if (GridAttr grid = GridAttr::lookup(module)) {
      int64_t axis = grid.axisIndex("dp");
      if (axis >= 0 && grid.getShape()[axis] == dp)
        return success();
      if (grid.axisIndex("edp") >= 0 && grid.axisIndex("ep") >= 0 && grid.numRanks() == dp &&
          grid.getAxes().size() == 2) {
        dpAxes = grid.getAxes();
        return success();
      }
      return module.emitError() << "kiln-data-parallel: the module's grid " << grid
                                << " has no \"dp\" axis of size " << dp.getValue()
                                << " (nor is it kiln-expert-parallel's edp x ep grid of "
                                << dp.getValue() << " ranks)";
    }
    module->setAttr("kiln.grid", GridAttr::get(ctx, ArrayAttr::get(ctx, {StringAttr::get(ctx, "dp")}),
                                               {int64_t(dp)}));
    return success();
  }
};

} // namespace
} // namespace kiln
