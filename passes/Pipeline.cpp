//===- Pipeline.cpp - kiln-pipeline: stages, a schedule, per-rank programs -===//
//
// After kiln-data-parallel the step calls `@<entry>_micro` once per
// micro-batch and sums what each call returns (gradients, loss shares,
// expert loads) before the optimizer. kiln-pipeline cuts the micro step into
// pp x chunks stages (contiguous ranges of block calls), builds the
// schedule's action lists (PipelineSchedule.h) and writes, for each pipeline
// rank, the program that runs its list: the forward ops of a stage for F,
// its input-gradient ops for B (I), its weight-gradient ops for W, with a
// kiln.send / kiln.recv for every value that crosses a stage boundary.
//
// How ops are placed, in the micro step's order:
//  * free ops (pure, reading only arguments and other free ops: constants,
//    the shifted tokens of MTP) are cloned into every stage that reads them;
//  * forward ops: block call number l (l < layers) is on the stage holding
//    layer l; other forward ops are on the stage of the block call before
//    them (stage 0 before the first), and everything after the last layer
//    (final norm, head, losses, MTP) is on the last stage;
//  * backward ops (those that depend on a loss gradient): a block backward
//    is on the stage of the block forward whose saved values it reads; any
//    other backward op is on the lowest stage among its backward operands
//    (the gradient flows down the stages).
// A value read on a later stage travels with the forward sends of every
// stage in between; one read on an earlier stage in its backward travels
// with the backward sends. A micro output whose value is a sum of pieces
// from different stages (the tied embedding's gradient: the embedding's on
// the first stage, the head's or MTP's on the last) is not moved per
// micro-batch: each stage sums its piece over micro-batches and the ranks
// holding it exchange their sums at the end, in a fixed order, as Megatron
// reduces the gradients of shared weights between the first and last
// stage; both then run the same AdamW update.
//
// Blocking sends would deadlock on the schedules' own orders (DualPipeV's
// overlapped pairs send both ways), so each rank's actions are ordered by
// the simulated time of the schedule, a send moved to the time its
// receive completes: every rank meets its peers in one global order.
//

#include "passes/Passes.h"
#include "passes/PipelinePlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/Support/Format.h"

#include <map>
#include <tuple>

namespace kiln {
#define GEN_PASS_DEF_KILNPIPELINE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln::pipeline_lowering {

//===----------------------------------------------------------------------===//
// One rank's program
//===----------------------------------------------------------------------===//

/// Writes the program of one pipeline rank: its actions in order, then the
/// sums over micro-batches, the exchange of shared gradients and the
/// optimizer ops whose operands it holds.
class RankBuilder {
public:
  RankBuilder(PipelineRewrite &rw, int32_t rank, func::FuncOp fn)
      : rw(rw), rank(rank), fn(fn), b(OpBuilder::atBlockEnd(&fn.getBody().front())),
        microMap(rw.calls.size()) {
    for (auto [old, arg] : llvm::zip(rw.step.getArguments(), fn.getArguments()))
      stepMap.map(old, arg);
  }

  LogicalResult emitActions();
  LogicalResult emitOutputs();
  LogicalResult emitEpilogue(SmallVectorImpl<Value> &results, SmallVectorImpl<unsigned> &which);
  /// Drops the action marks of the ops after the last action.
  void unmarkEpilogue();

private:
  Value stepValue(Value old);
  Value microValue(int32_t m, Value old);
  LogicalResult cloneOp(int32_t m, Operation *op);
  LogicalResult runStage(int32_t m, int32_t stage, pipeline::Op what);
  LogicalResult transfer(int32_t m, const llvm::SetVector<Value> &values, int32_t peer,
                         bool send);
  Value zerosLike(Type type);
  Value allReducePP(Value v);
  void advanceSums();

  /// A running sum over micro-batches, in order, of one piece of a micro
  /// output: added to as soon as the next micro-batch's piece exists, so
  /// a micro-batch's gradients are not kept past its W.
  struct RunningSum {
    int32_t next = 0;
    Value sum;
  };
  /// By (micro output, stage, piece).
  std::map<std::tuple<unsigned, int32_t, unsigned>, RunningSum> running;

  PipelineRewrite &rw;
  int32_t rank;
  func::FuncOp fn;
  OpBuilder b;
  IRMapping stepMap;
  std::vector<IRMapping> microMap;
  llvm::DenseMap<std::pair<int32_t, Operation *>, SmallVector<Value>> bridgesOf;
  /// Per micro output held here: the rank's sum of it.
  llvm::DenseMap<unsigned, Value> outputValue;
  llvm::DenseMap<Value, Holders> holders;
  bool failedBuild = false;
  Operation *lastActionOp = nullptr; ///< the last op of the last action
};

Value RankBuilder::stepValue(Value old) {
  if (Value v = stepMap.lookupOrNull(old))
    return v;
  Operation *def = old.getDefiningOp();
  if (!def || !rw.stepPrologue.contains(def))
    return Value();
  for (Value operand : def->getOperands())
    if (!stepValue(operand))
      return Value();
  b.clone(*def, stepMap);
  return stepMap.lookup(old);
}

Value RankBuilder::microValue(int32_t m, Value old) {
  IRMapping &map = microMap[m];
  if (Value v = map.lookupOrNull(old))
    return v;
  if (auto arg = dyn_cast<BlockArgument>(old)) {
    Value v = stepValue(rw.calls[m].getOperand(arg.getArgNumber()));
    if (v)
      map.map(old, v);
    return v;
  }
  if (rw.placeOf(old).phase != Phase::Free)
    return Value();
  Operation *def = old.getDefiningOp();
  if (failed(cloneOp(m, def)))
    return Value();
  return map.lookup(old);
}

LogicalResult RankBuilder::cloneOp(int32_t m, Operation *op) {
  for (Value operand : op->getOperands())
    if (!microValue(m, operand))
      return op->emitError() << "kiln-pipeline: rank " << rank << ", micro-batch " << m
                             << ": an operand of this op is not on the rank when it runs";
  b.clone(*op, microMap[m]);
  return success();
}

LogicalResult RankBuilder::runStage(int32_t m, int32_t stage, pipeline::Op what) {
  using pipeline::Op;
  for (Operation &op : rw.micro.getBody().front().without_terminator()) {
    Placement p = rw.place.lookup(&op);
    if (p.stage != stage)
      continue;
    if (what == Op::F) {
      if (p.phase == Phase::Forward && failed(cloneOp(m, &op)))
        return failure();
      continue;
    }
    if (p.phase != Phase::Backward)
      continue;
    auto split = rw.splitOf.find(&op);
    const bool input = rw.inputOps.contains(&op);
    if (what == Op::BW || (split == rw.splitOf.end() && (what == Op::B) == input)) {
      if (failed(cloneOp(m, &op)))
        return failure();
      continue;
    }
    if (split == rw.splitOf.end())
      continue;
    // A block backward cut in two: its input half in B, the rest in W.
    auto call = cast<func::CallOp>(op);
    const BackwardSplit &s = split->second;
    SmallVector<Value> operands;
    for (Value v : call.getOperands()) {
      operands.push_back(microValue(m, v));
      if (!operands.back())
        return call.emitError() << "kiln-pipeline: rank " << rank << ", micro-batch " << m
                                << ": an operand of this call is not on the rank when it runs";
    }
    if (what == Op::B) {
      auto first = func::CallOp::create(b, call.getLoc(), s.input, operands);
      unsigned k = 0;
      for (unsigned i : s.needed.set_bits())
        microMap[m].map(call.getResult(i), first.getResult(k++));
      bridgesOf[{m, &op}] =
          SmallVector<Value>(first.getResults().drop_front(s.numNeeded));
    } else {
      operands.append(bridgesOf[{m, &op}]);
      auto second = func::CallOp::create(b, call.getLoc(), s.weight, operands);
      unsigned k = 0;
      for (unsigned i = 0; i < call.getNumResults(); ++i)
        if (!s.needed.test(i))
          microMap[m].map(call.getResult(i), second.getResult(k++));
    }
  }
  return success();
}

LogicalResult RankBuilder::transfer(int32_t m, const llvm::SetVector<Value> &values,
                                    int32_t peer, bool send) {
  MLIRContext *ctx = fn.getContext();
  for (Value v : values) {
    if (send) {
      Value held = microMap[m].lookupOrNull(v);
      if (!held)
        return emitError(v.getLoc())
               << "kiln-pipeline: rank " << rank << " sends a value of micro-batch " << m
               << " to rank " << peer << " before it has it";
      SendOp::create(b, v.getLoc(), held, StringAttr::get(ctx, "pp"), b.getI64IntegerAttr(peer));
      continue;
    }
    auto recv = RecvOp::create(b, v.getLoc(), v.getType(), StringAttr::get(ctx, "pp"),
                               b.getI64IntegerAttr(peer));
    microMap[m].map(v, recv.getResult());
  }
  return success();
}

LogicalResult RankBuilder::emitActions() {
  using pipeline::Op;
  const pipeline::Schedule &sched = rw.schedule;
  Block &body = fn.getBody().front();
  for (size_t index : rw.order[rank]) {
    const pipeline::Action &a = sched.actions[rank][index];
    const int32_t stage = sched.stageOf[rank][a.chunk];
    Operation *before = body.empty() ? nullptr : &body.back();
    switch (a.op) {
    case Op::F:
    case Op::B:
    case Op::W:
    case Op::BW:
      if (failed(runStage(a.microbatch, stage, a.op)))
        return failure();
      advanceSums();
      break;
    case Op::FB:
      if (failed(runStage(a.microbatch, stage, Op::F)) ||
          failed(runStage(a.microbatch2, sched.stageOf[rank][a.chunk2], Op::BW)))
        return failure();
      advanceSums();
      break;
    // A rank handing values to itself (the V's turn) moves nothing.
    case Op::SendF:
    case Op::RecvF:
    case Op::SendB:
    case Op::RecvB: {
      if (a.peer == rank)
        break;
      const bool forward = a.op == Op::SendF || a.op == Op::RecvF;
      const bool send = a.op == Op::SendF || a.op == Op::SendB;
      // Edge e joins stages e and e + 1.
      const int32_t edge = forward == send ? stage : stage - 1;
      if (failed(transfer(a.microbatch, forward ? rw.edgeF[edge] : rw.edgeB[edge], a.peer,
                          send)))
        return failure();
      break;
    }
    }
    // The action's ops are marked with it (pipelineActionLoc), for traces.
    const std::string name = pipeline::formatAction(sched, rank, a);
    for (Operation &op : llvm::make_range(
             before ? std::next(before->getIterator()) : body.begin(), body.end()))
      op.setLoc(pipelineActionLoc(op.getLoc(), name));
  }
  lastActionOp = body.empty() ? nullptr : &body.back();
  return success();
}

void RankBuilder::unmarkEpilogue() {
  // Ops after the actions (sums, exchanges, the optimizer) took their
  // locations from values of some action; they belong to none.
  Block &body = fn.getBody().front();
  for (Operation &op : llvm::make_range(
           lastActionOp ? std::next(lastActionOp->getIterator()) : body.begin(), body.end()))
    if (auto site = dyn_cast<CallSiteLoc>(op.getLoc());
        site && !pipelineActionOf(site.getCaller()).empty())
      op.setLoc(site.getCallee());
}

void RankBuilder::advanceSums() {
  const int32_t microbatches = int32_t(rw.calls.size());
  for (auto [k, parts] : llvm::enumerate(rw.outputParts))
    for (auto &[stage, leaves] : parts) {
      if (rw.rankOfStage(stage) != rank)
        continue;
      for (auto [i, leaf] : llvm::enumerate(leaves)) {
        RunningSum &run = running[{unsigned(k), stage, unsigned(i)}];
        const bool anywhere = rw.placeOf(leaf).phase == Phase::Free;
        for (; run.next < microbatches; ++run.next) {
          Value piece = anywhere ? microValue(run.next, leaf)
                                 : microMap[run.next].lookupOrNull(leaf);
          if (!piece)
            break;
          run.sum = run.sum ? arith::AddFOp::create(b, leaf.getLoc(), run.sum, piece).getResult()
                            : piece;
        }
      }
    }
}

Value RankBuilder::zerosLike(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      b, fn.getLoc(), DenseElementsAttr::get(tensor, b.getZeroAttr(tensor.getElementType())));
}

Value RankBuilder::allReducePP(Value v) {
  MLIRContext *ctx = fn.getContext();
  return AllReduceOp::create(b, v.getLoc(), v.getType(), v, b.getStringAttr("sum"),
                             ArrayAttr::get(ctx, {StringAttr::get(ctx, "pp")}));
}

LogicalResult RankBuilder::emitOutputs() {
  const int32_t ranks = rw.schedule.ranks;
  MLIRContext *ctx = fn.getContext();
  advanceSums();
  for (auto [k, parts] : llvm::enumerate(rw.outputParts)) {
    Holders holding(ranks);
    for (auto &[stage, leaves] : parts)
      holding.set(rw.rankOfStage(stage));
    // This rank's pieces: per stage (in order), per micro-batch (in order).
    Value local;
    for (auto &[stage, leaves] : parts) {
      if (rw.rankOfStage(stage) != rank)
        continue;
      for (unsigned i = 0; i < leaves.size(); ++i) {
        const RunningSum &run = running[{unsigned(k), stage, i}];
        if (run.next != int32_t(rw.calls.size()))
          return rw.micro.emitError()
                 << "kiln-pipeline: rank " << rank << " has micro output #" << k
                 << " of stage " << stage << " for " << run.next << " of "
                 << rw.calls.size() << " micro-batches after its actions";
        local = local ? arith::AddFOp::create(b, leaves[i].getLoc(), local, run.sum).getResult()
                      : run.sum;
      }
    }
    Value sum = rw.sumOf[k];
    holders[sum] = holding;
    if (!holding.test(rank))
      continue;
    if (holding.count() > 1) {
      // Every holder gets every other holder's piece (pairs in a fixed
      // order, the lower rank sending first) and adds them in rank order.
      SmallVector<Value> pieces(ranks);
      pieces[rank] = local;
      for (int32_t i : holding.set_bits())
        for (int32_t j : holding.set_bits()) {
          if (j <= i || (rank != i && rank != j))
            continue;
          int32_t peer = rank == i ? j : i;
          auto recvPiece = [&] {
            pieces[peer] = RecvOp::create(b, local.getLoc(), local.getType(),
                                          StringAttr::get(ctx, "pp"), b.getI64IntegerAttr(peer));
          };
          auto sendPiece = [&] {
            SendOp::create(b, local.getLoc(), local, StringAttr::get(ctx, "pp"),
                           b.getI64IntegerAttr(peer));
          };
          if (rank == i) {
            sendPiece();
            recvPiece();
          } else {
            recvPiece();
            sendPiece();
          }
        }
      Value total;
      for (int32_t h : holding.set_bits())
        total = total ? arith::AddFOp::create(b, local.getLoc(), total, pieces[h]).getResult()
                      : pieces[h];
      local = total;
    }
    stepMap.map(sum, local);
  }
  return success();
}

LogicalResult RankBuilder::emitEpilogue(SmallVectorImpl<Value> &results,
                                        SmallVectorImpl<unsigned> &which) {
  const int32_t ranks = rw.schedule.ranks;
  Holders everyone(ranks, true);
  auto holdersOf = [&](Value old) -> Holders {
    auto it = holders.find(old);
    return it != holders.end() ? it->second : everyone;
  };
  Block &body = rw.step.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  bool afterCalls = false;
  for (Operation &op : body.without_terminator()) {
    if (&op == rw.calls.front().getOperation())
      afterCalls = true;
    auto call = dyn_cast<func::CallOp>(op);
    if (!afterCalls || rw.stepSumChain.contains(&op) ||
        (call && call.getCallee() == rw.micro.getSymName()))
      continue;
    if (auto norm = dyn_cast<GlobalNormOp>(op)) {
      // Each gradient counted once, by the lowest rank holding it; the
      // squares summed over the pipeline ranks.
      SmallVector<Value> mine;
      for (Value g : norm.getTensors()) {
        Holders h = holdersOf(g);
        if (h.find_first() == rank)
          mine.push_back(stepMap.lookup(g));
      }
      Value squared;
      if (mine.empty()) {
        squared = zerosLike(norm.getType());
      } else {
        Value part = GlobalNormOp::create(b, norm.getLoc(), norm.getType(), mine);
        squared = arith::MulFOp::create(b, norm.getLoc(), part, part);
      }
      stepMap.map(norm.getNorm(), math::SqrtOp::create(b, norm.getLoc(), allReducePP(squared)));
      continue;
    }
    Holders h = everyone;
    for (Value v : op.getOperands())
      h &= holdersOf(v);
    if (h.none())
      return op.emitError() << "kiln-pipeline: this optimizer op reads values that no one "
                               "pipeline rank holds together";
    for (Value r : op.getResults())
      holders[r] = h;
    if (!h.test(rank))
      continue;
    for (Value v : op.getOperands())
      if (!stepValue(v))
        return op.emitError() << "kiln-pipeline: rank " << rank
                              << ": an operand of this op is missing";
    b.clone(op, stepMap);
  }
  // A parameter's other state (a 2:4 mask, made in the step's prologue from
  // arguments every rank has) belongs with the parameter: only the ranks
  // that update it return it.
  llvm::StringMap<Holders> paramHolders;
  for (auto [i, old] : llvm::enumerate(ret.getOperands()))
    if (auto name = rw.step.getResultAttrOfType<StringAttr>(i, "kiln.param");
        name && rw.step.getResultAttrOfType<StringAttr>(i, "kiln.result") == "param")
      paramHolders[name.getValue()] = holdersOf(old);
  for (auto [i, old] : llvm::enumerate(ret.getOperands())) {
    Holders h = holdersOf(old);
    if (auto name = rw.step.getResultAttrOfType<StringAttr>(i, "kiln.param"))
      if (auto it = paramHolders.find(name.getValue()); it != paramHolders.end())
        h &= it->second;
    if (h.test(rank)) {
      Value v = stepValue(old);
      if (!v)
        return ret.emitError() << "kiln-pipeline: rank " << rank << ": result #" << i
                               << " is missing";
      if (h.count() == 1 && h.count() != unsigned(ranks) &&
          !rw.step.getResultAttrOfType<StringAttr>(i, "kiln.param"))
        v = allReducePP(v); // the others add zeros: every rank reports it
      results.push_back(v);
      which.push_back(i);
    } else if (h.count() == 1 && !rw.step.getResultAttrOfType<StringAttr>(i, "kiln.param")) {
      results.push_back(allReducePP(zerosLike(old.getType())));
      which.push_back(i);
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// The rewrite
//===----------------------------------------------------------------------===//

LogicalResult PipelineRewrite::buildRank(int32_t rank) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(step);
  auto fn = func::FuncOp::create(b, step.getLoc(), opts.entry + "_pp" + std::to_string(rank),
                                 step.getFunctionType());
  for (NamedAttribute attr : step->getDiscardableAttrs())
    fn->setAttr(attr.getName(), attr.getValue());
  for (unsigned i = 0; i < step.getNumArguments(); ++i)
    fn.setArgAttrs(i, step.getArgAttrDict(i));
  fn.addEntryBlock();
  RankBuilder builder(*this, rank, fn);
  SmallVector<Value> results;
  SmallVector<unsigned> which;
  if (failed(builder.emitActions()) || failed(builder.emitOutputs()) ||
      failed(builder.emitEpilogue(results, which)))
    return failure();
  builder.unmarkEpilogue();
  OpBuilder end = OpBuilder::atBlockEnd(&fn.getBody().front());
  func::ReturnOp::create(end, step.getLoc(), results);
  // Ops whose results no one here reads (ZeRO-1's local_shard of a
  // parameter another stage updates) go, so the rank takes only the
  // parameters it trains. Collectives that meet other ranks stay.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(fn.getBody().front())))
    if (isOpTriviallyDead(&op) &&
        !isa<AllReduceOp, AllGatherOp, ReduceScatterOp, AllToAllOp, RecvOp>(op))
      op.erase();
  SmallVector<Type> resultTypes;
  for (Value v : results)
    resultTypes.push_back(v.getType());
  fn.setFunctionType(FunctionType::get(ctx, fn.getArgumentTypes(), resultTypes));
  for (auto [k, i] : llvm::enumerate(which))
    fn.setResultAttrs(k, step.getResultAttrDict(i));
  llvm::BitVector unused(fn.getNumArguments());
  for (BlockArgument arg : fn.getArguments())
    if (arg.use_empty())
      unused.set(arg.getArgNumber());
  if (failed(fn.eraseArguments(unused)))
    return failure();
  // Every data-parallel rank of this pipeline rank runs it.
  GridAttr grid = GridAttr::lookup(module);
  SmallVector<int64_t> ranks;
  for (int64_t r = 0; r < grid.numRanks(); ++r)
    if (grid.coordinates(r)[0] == rank)
      ranks.push_back(r);
  fn->setAttr("kiln.program", StringAttr::get(ctx, opts.entry));
  fn->setAttr("kiln.ranks", DenseI64ArrayAttr::get(ctx, ranks));
  return success();
}

LogicalResult PipelineRewrite::run() {
  if (failed(findMicroCalls()))
    return failure();
  classifyMicroOps();
  if (failed(placeForward()))
    return failure();
  placeBackward();
  collectOutputs();
  if (failed(collectEdges()) || failed(findSums()) || failed(buildActionLists()))
    return failure();
  if (splitsWeights && failed(splitBackwards()))
    return failure();
  priceStages();

  // The grid gets a leading "pp" axis.
  MLIRContext *ctx = module.getContext();
  SmallVector<Attribute> axes = {StringAttr::get(ctx, "pp")};
  SmallVector<int64_t> shape = {opts.pp};
  if (GridAttr grid = GridAttr::lookup(module)) {
    axes.append(grid.getAxes().begin(), grid.getAxes().end());
    shape.append(grid.getShape().begin(), grid.getShape().end());
  }
  module->setAttr("kiln.grid", GridAttr::get(ctx, ArrayAttr::get(ctx, axes), shape));
  for (int32_t r = 0; r < schedule.ranks; ++r)
    if (failed(buildRank(r)))
      return failure();
  step.erase();
  micro.erase();
  return success();
}

//===----------------------------------------------------------------------===//

} // namespace kiln::pipeline_lowering

namespace kiln {
namespace {

using pipeline_lowering::PipelineRewrite;
using pipeline_lowering::RewriteOptions;

// The pass
//===----------------------------------------------------------------------===//

struct PipelinePass : impl::KilnPipelineBase<PipelinePass> {
  using KilnPipelineBase::KilnPipelineBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (pp < 2 || virtualStages < 1) {
      module.emitError() << "kiln-pipeline: expected pp >= 2 and virtual-stages >= 1, got pp "
                         << int64_t(pp) << " and virtual-stages " << int64_t(virtualStages);
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>(entry);
    if (!step || step.isExternal()) {
      module.emitError() << "kiln-pipeline: no function @" << entry << " with a body to split";
      return signalPassFailure();
    }
    RewriteOptions options;
    options.entry = entry;
    options.schedule = schedule;
    options.pp = pp;
    options.chunks =
        schedule == "dualpipev" || schedule == "zb-v" ? 2 : int64_t(virtualStages);
    options.layers = layers;
    options.layersPerStage.assign(layersPerStage.begin(), layersPerStage.end());
    PipelineRewrite rewrite(module, step, options);
    if (failed(rewrite.run()))
      return signalPassFailure();
    if (!report)
      return;
    std::string text;
    llvm::raw_string_ostream os(text);
    os << "kiln-pipeline: pp " << int64_t(pp) << " x " << options.chunks << " chunks, "
       << schedule.getValue() << ", " << rewrite.schedule.microbatches
       << " micro-batches; first layer of each stage:";
    for (int64_t first : rewrite.firstLayer)
      os << " " << first;
    os << "; bytes per micro-batch forward up each edge:";
    for (int64_t bytes : rewrite.edgeBytesF)
      os << " " << bytes;
    os << ", backward down each edge:";
    for (int64_t bytes : rewrite.edgeBytesB)
      os << " " << bytes;
    const pipeline::Costs &c = rewrite.stageCosts;
    os << "; FLOPs per micro-batch of the costliest stage: F " << llvm::format("%.4g", c.f)
       << ", " << (rewrite.splitsWeightsReport() ? "I " : "B ") << llvm::format("%.4g", c.b);
    if (rewrite.splitsWeightsReport())
      os << ", W " << llvm::format("%.4g", c.w);
    if (rewrite.pricedSimulation) {
      os << "; simulated bubble per rank:";
      for (int32_t r = 0; r < rewrite.schedule.ranks; ++r)
        os << " " << llvm::format("%.1f%%", 100.0 * rewrite.pricedSimulation->bubble[r] /
                                                rewrite.pricedSimulation->makespan);
    }
    if (const auto &sim = rewrite.simulationByStage) {
      os << "; with each stage's own FLOPs:";
      for (int32_t r = 0; r < rewrite.schedule.ranks; ++r)
        os << " " << llvm::format("%.1f%%", 100.0 * sim->bubble[r] / sim->makespan);
    }
    module.emitRemark() << text;
  }
};

} // namespace
} // namespace kiln
