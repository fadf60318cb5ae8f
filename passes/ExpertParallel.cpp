//===- ExpertParallel.cpp - kiln-expert-parallel: experts sharded over ep -===//
//
// Rewrites each MoE layer of the forward module so that a rank runs only its
// own routed experts, on the rows every rank of its ep group routed to them
// (Passes.td has the contract). The single-device dispatch and combine stay:
// the exchange sits between them, so the rows a GEMM sees, and the weights
// and order in which combine sums them, are the single-device ones.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/SetVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNEXPERTPARALLEL
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// Ops that may sit between dispatch and combine: grouped GEMMs and ops that
/// work row by row, so they run unchanged on a reordered, larger buffer.
bool isRowWise(Operation *op) {
  return isa<SwigluOp, SiluOp, ScaleOp, arith::AddFOp, arith::SubFOp, arith::MulFOp>(op);
}

/// One MoE layer: the dispatch, the ops on its rows, and the combine.
struct MoELayer {
  DispatchOp dispatch;
  CombineOp combine;
  /// Between dispatch and combine, in block order.
  SmallVector<Operation *> region;
  /// Function arguments read as stacked expert weights.
  llvm::SetVector<unsigned> weightArgs;
};

FailureOr<MoELayer> findLayer(DispatchOp dispatch) {
  MoELayer layer;
  layer.dispatch = dispatch;
  auto func = dispatch->getParentOfType<func::FuncOp>();
  llvm::SetVector<Operation *> region;
  SmallVector<Value> work = {dispatch.getRows(), dispatch.getOffsets()};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (Operation *user : v.getUsers()) {
      if (auto combine = dyn_cast<CombineOp>(user);
          combine && combine.getRows() == v && combine.getSource() == dispatch.getSource()) {
        if (layer.combine && layer.combine != combine)
          return dispatch.emitError()
                 << "kiln-expert-parallel: the dispatched rows reach two combines";
        layer.combine = combine;
        continue;
      }
      auto gemm = dyn_cast<GroupedMatmulOp>(user);
      if (gemm && gemm.getOffsets() == dispatch.getOffsets() && gemm.getWeight() != v) {
        auto weight = dyn_cast<BlockArgument>(gemm.getWeight());
        if (!weight || weight.getOwner() != &func.getBody().front())
          return gemm.emitError() << "kiln-expert-parallel: the expert weight of this grouped "
                                     "GEMM is computed in the function; expected an argument "
                                     "(a parameter) to shard over ep";
        layer.weightArgs.insert(weight.getArgNumber());
      } else if (!isRowWise(user) || v == dispatch.getOffsets()) {
        return user->emitError()
               << "kiln-expert-parallel: uses the rows of a dispatch (or their offsets) in a way "
                  "that cannot be partitioned; between dispatch and combine only grouped GEMMs "
                  "and row-wise ops (swiglu, silu, scale, arith.addf/subf/mulf) are supported";
      }
      if (region.insert(user))
        work.append(user->result_begin(), user->result_end());
    }
  }
  if (!layer.combine)
    return dispatch.emitError()
           << "kiln-expert-parallel: the dispatched rows never reach a kiln.combine with this "
              "dispatch's source";
  // Row-wise binary ops must not mix in values from outside the region.
  for (Operation *op : region)
    for (Value operand : op->getOperands())
      if (!isa<GroupedMatmulOp>(op) && operand.getDefiningOp() &&
          !region.contains(operand.getDefiningOp()) && operand != dispatch.getRows())
        return op->emitError() << "kiln-expert-parallel: a row-wise op between dispatch and "
                                  "combine reads a value computed outside the expert path";
  layer.region.assign(region.begin(), region.end());
  llvm::sort(layer.region, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return layer;
}

RankedTensorType withRows(Type type, int64_t rows) {
  auto shaped = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(shaped.getShape());
  shape[0] = rows;
  return RankedTensorType::get(shape, shaped.getElementType());
}

class ExpertParallelRewrite {
public:
  ExpertParallelRewrite(ModuleOp module, int64_t ep) : module(module), ep(ep) {}

  /// Rewrites `layer`; returns the receive buffer rows.
  FailureOr<int64_t> rewrite(MoELayer &layer);
  /// Shrinks dim 0 of argument `arg` of `func` to its ep shard, and the
  /// operands of every call up to the entry, which gets `kiln.split`.
  LogicalResult shardArgument(func::FuncOp func, unsigned arg, int64_t experts);

  int64_t allToAllBytes = 0;

private:
  ModuleOp module;
  int64_t ep;
  llvm::DenseSet<std::pair<Operation *, unsigned>> sharded;
};

FailureOr<int64_t> ExpertParallelRewrite::rewrite(MoELayer &layer) {
  DispatchOp dispatch = layer.dispatch;
  MLIRContext *ctx = module.getContext();
  const int64_t experts = static_cast<int64_t>(dispatch.getNumExperts());
  if (experts % ep != 0)
    return dispatch.emitError() << "kiln-expert-parallel: the layer's " << experts
                                << " routed experts cannot be split over ep = " << ep
                                << "; choose an ep that divides n_routed_experts";
  const int64_t local = experts / ep;
  auto indices = cast<RankedTensorType>(dispatch.getIndices().getType());
  const int64_t tokens = indices.getDimSize(0), topK = indices.getDimSize(1);
  const int64_t pairs = tokens * topK;
  // Each token sends one rank at most min(top_k, L) rows; under
  // kiln.expert_capacity a source sends each expert at most `capacity` rows
  // per group of tokens.
  int64_t capacity = ep * tokens * std::min(topK, local);
  if (auto bound = dispatch.getIndices().getDefiningOp<ExpertCapacityOp>())
    capacity = std::min(capacity, ep * local * (tokens / int64_t(bound.getGroupTokens())) *
                                      int64_t(bound.getCapacity()));

  OpBuilder b(ctx);
  b.setInsertionPointAfter(dispatch);
  Location loc = dispatch.getLoc();
  ArrayAttr epAxes = b.getStrArrayAttr({"ep"});
  // Row counts are i64 (all_to_all's send and receive counts); offsets
  // keep the dispatch's type, which the grouped GEMMs read.
  Type countType = b.getI64Type();
  Type offsetType = getElementTypeOrSelf(dispatch.getOffsets().getType());
  auto perExpertType = RankedTensorType::get({ep, local}, countType);
  auto perRankType = RankedTensorType::get({ep}, countType);
  auto counts = ExpertCountsOp::create(b, loc, perExpertType, perRankType,
                                       dispatch.getOffsets(), b.getI64IntegerAttr(ep));
  Value ones = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(perRankType, b.getIntegerAttr(countType, 1)));
  // Each rank first learns how many rows of each of its experts every
  // source sends, then receives the rows, grouped by source.
  auto receivedCounts = AllToAllOp::create(b, loc, perExpertType, perRankType,
                                           counts.getPerExpert(), ones, epAxes);
  Value rows = dispatch.getRows();
  auto received = AllToAllOp::create(b, loc, withRows(rows.getType(), capacity), perRankType,
                                     rows, counts.getPerRank(), epAxes);
  auto localOffsetsType = RankedTensorType::get({local + 1}, offsetType);
  auto sorted = SegmentTransposeOp::create(b, loc, received.getResult().getType(),
                                           localOffsetsType, received.getResult(),
                                           receivedCounts.getResult(), b.getBoolAttr(false));

  // The region now runs on the local experts over the receive buffer.
  for (Operation *op : layer.region) {
    for (OpOperand &operand : op->getOpOperands()) {
      if (operand.get() == rows)
        operand.set(sorted.getResult());
      else if (operand.get() == dispatch.getOffsets())
        operand.set(sorted.getOffsets());
    }
    for (OpResult result : op->getResults())
      result.setType(withRows(result.getType(), capacity));
  }

  // Back to the rows' senders, in the places dispatch gave them.
  CombineOp combine = layer.combine;
  b.setInsertionPoint(combine);
  Value computed = combine.getRows();
  auto bySourceType = RankedTensorType::get({ep + 1}, offsetType);
  auto unsorted = SegmentTransposeOp::create(b, loc, computed.getType(), bySourceType, computed,
                                             receivedCounts.getResult(), b.getBoolAttr(true));
  auto returned = AllToAllOp::create(b, loc, withRows(computed.getType(), pairs), perRankType,
                                     unsorted.getResult(), received.getRecvCounts(), epAxes);
  combine.getRowsMutable().assign(returned.getResult());
  // Every (token, slot) row goes to exactly one rank (itself included) and
  // comes back. A rank sends all `pairs` of its rows out, and back as many
  // as the routing sent it, so only the group's total is fixed: ep ranks x
  // (counts + pairs rows out + pairs rows back) per call, whatever the routing.
  allToAllBytes += ep * (bytesOf(perExpertType) + bytesOf(rows.getType()) +
                         bytesOf(returned.getResult().getType()));
  // Per call, forward and backward, for the driver to check: every
  // all_to_all first exchanges its counts (ep x i64 per rank): 3 forward, 2
  // backward (the counts have no gradient); then the per-expert counts
  // (ep x L x i64 per rank) and the rows, out and back, forward and backward.
  const int64_t callBytes = 5 * ep * ep * 8 + ep * bytesOf(perExpertType) +
                            4 * ep * bytesOf(rows.getType());
  dispatch->setAttr("kiln.all_to_all_bytes", b.getI64IntegerAttr(callBytes));

  auto func = dispatch->getParentOfType<func::FuncOp>();
  for (unsigned arg : layer.weightArgs)
    if (failed(shardArgument(func, arg, experts)))
      return failure();
  return capacity;
}

LogicalResult ExpertParallelRewrite::shardArgument(func::FuncOp func, unsigned arg,
                                                   int64_t experts) {
  if (!sharded.insert({func, arg}).second)
    return success();
  BlockArgument value = func.getArgument(arg);
  for (Operation *user : value.getUsers())
    if (!isa<GroupedMatmulOp, func::CallOp>(user))
      return user->emitError() << "kiln-expert-parallel: reads the stacked expert weight "
                                  "argument #"
                               << arg << " of @" << func.getSymName()
                               << ", which each rank holds only its ep shard of";
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getRank() < 1 || type.getDimSize(0) != experts)
    return func.emitError() << "kiln-expert-parallel: argument #" << arg
                            << " is read as stacked expert weights, but its type " << type
                            << " does not have " << experts << " experts in dimension 0";
  auto shardType = withRows(type, experts / ep);
  value.setType(shardType);
  SmallVector<Type> inputs(func.getArgumentTypes());
  inputs[arg] = shardType;
  func.setFunctionType(FunctionType::get(func.getContext(), inputs, func.getResultTypes()));

  std::optional<SymbolTable::UseRange> uses = SymbolTable::getSymbolUses(func, module);
  bool called = false;
  for (const SymbolTable::SymbolUse &use : *uses) {
    auto call = dyn_cast<func::CallOp>(use.getUser());
    if (!call)
      return use.getUser()->emitError()
             << "kiln-expert-parallel: refers to @" << func.getSymName()
             << " other than by a call; its expert weights cannot be sharded";
    called = true;
    auto operand = dyn_cast<BlockArgument>(call.getOperand(arg));
    auto caller = call->getParentOfType<func::FuncOp>();
    if (!operand || operand.getOwner() != &caller.getBody().front())
      return call.emitError() << "kiln-expert-parallel: passes a computed value as the expert "
                                 "weights (operand #"
                              << arg << "); expected an argument of @" << caller.getSymName();
    if (failed(shardArgument(caller, operand.getArgNumber(), experts)))
      return failure();
  }
  if (!called) {
    OpBuilder b(func);
    func.setArgAttr(arg, "kiln.split",
                    b.getDictionaryAttr({b.getNamedAttr("axes", b.getStrArrayAttr({"ep"})),
                                         b.getNamedAttr("dim", b.getI64IntegerAttr(0)),
                                         b.getNamedAttr("size", b.getI64IntegerAttr(experts))}));
  }
  return success();
}

struct KilnExpertParallel : impl::KilnExpertParallelBase<KilnExpertParallel> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (ep < 1 || dp < 1 || dp % ep != 0) {
      module.emitError() << "kiln-expert-parallel: expected ep >= 1 dividing dp, got ep " << ep.getValue()
                         << ", dp " << dp.getValue();
      return signalPassFailure();
    }
    if (ep == 1)
      return; // Experts stay replicated: nothing to exchange.
    if (GridAttr grid = GridAttr::lookup(module)) {
      module.emitError() << "kiln-expert-parallel: the module already has a grid " << grid
                         << "; run this pass first, on the forward module";
      return signalPassFailure();
    }
    SmallVector<DispatchOp> dispatches;
    module.walk([&](DispatchOp op) { dispatches.push_back(op); });
    if (dispatches.empty()) {
      module.emitError() << "kiln-expert-parallel: ep = " << ep.getValue()
                         << " but the model has no MoE layer (kiln.dispatch) to shard; use "
                            "ep 1";
      return signalPassFailure();
    }
    MLIRContext *ctx = module.getContext();
    module->setAttr("kiln.grid", GridAttr::get(ctx,
                                               ArrayAttr::get(ctx, {StringAttr::get(ctx, "edp"),
                                                                    StringAttr::get(ctx, "ep")}),
                                               {int64_t(dp / ep), int64_t(ep)}));
    ExpertParallelRewrite rewrite(module, ep.getValue());
    for (DispatchOp dispatch : dispatches) {
      FailureOr<MoELayer> layer = findLayer(dispatch);
      if (failed(layer))
        return signalPassFailure();
      const int64_t before = rewrite.allToAllBytes;
      FailureOr<int64_t> capacity = rewrite.rewrite(*layer);
      if (failed(capacity))
        return signalPassFailure();
      if (report) {
        auto func = dispatch->getParentOfType<func::FuncOp>();
        auto bound = dispatch.getIndices().getDefiningOp<ExpertCapacityOp>();
        dispatch.emitRemark() << "kiln-expert-parallel: @" << func.getSymName() << ": "
                              << dispatch.getNumExperts() << " experts, "
                              << dispatch.getNumExperts() / ep.getValue()
                              << " per rank; receive buffer " << *capacity << " rows ("
                              << (bound ? "capacity: ep x experts per rank x groups x pairs "
                                          "per expert and group"
                                        : "dropless: ep x tokens x min(top_k, experts per "
                                          "rank)")
                              << "); all_to_all "
                              << rewrite.allToAllBytes - before
                              << " bytes per ep group per forward call (backward: the "
                                 "rows again, not the counts)";
      }
    }
  }
};

} // namespace
} // namespace kiln
