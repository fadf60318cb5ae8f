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
//===----------------------------------------------------------------------===//

#include "passes/BackwardSplit.h"
#include "passes/Passes.h"
#include "passes/PipelineSchedule.h"
#include "passes/StepCost.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Format.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

namespace kiln {
#define GEN_PASS_DEF_KILNPIPELINE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

enum class Phase : uint8_t { Free, Forward, Backward, Dissolved };

struct Placement {
  Phase phase = Phase::Free;
  int32_t stage = 0;
};

/// Which ranks hold a value of the step after the micro-batches (bit r:
/// pipeline rank r).
using Holders = llvm::BitVector;

/// The layers of each stage as contiguous ranges minimising the largest
/// stage cost (the linear partition problem); the first and last stage
/// also pay `firstExtra` and `lastExtra`. Returns the first layer of each
/// stage.
SmallVector<int64_t> balancedSplit(ArrayRef<double> cost, int64_t stages, double firstExtra,
                                   double lastExtra) {
  const int64_t n = cost.size();
  SmallVector<double> prefix(n + 1, 0);
  for (int64_t i = 0; i < n; ++i)
    prefix[i + 1] = prefix[i] + cost[i];
  auto span = [&](int64_t s, int64_t from, int64_t to) {
    double c = prefix[to] - prefix[from];
    if (s == 0)
      c += firstExtra;
    if (s == stages - 1)
      c += lastExtra;
    return c;
  };
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][i]: the smallest largest cost of stages 0..s holding layers [0, i).
  std::vector<std::vector<double>> best(stages, std::vector<double>(n + 1, inf));
  std::vector<std::vector<int64_t>> cut(stages, std::vector<int64_t>(n + 1, 0));
  for (int64_t i = 1; i <= n; ++i)
    best[0][i] = span(0, 0, i);
  for (int64_t s = 1; s < stages; ++s)
    for (int64_t i = s + 1; i <= n; ++i)
      for (int64_t j = s; j < i; ++j) {
        double c = std::max(best[s - 1][j], span(s, j, i));
        if (c < best[s][i]) {
          best[s][i] = c;
          cut[s][i] = j;
        }
      }
  SmallVector<int64_t> first(stages, 0);
  int64_t end = n;
  for (int64_t s = stages - 1; s > 0; --s) {
    first[s] = cut[s][end];
    end = first[s];
  }
  return first;
}

struct RewriteOptions {
  std::string entry, schedule;
  int64_t pp = 1, chunks = 1, layers = 0;
  SmallVector<int64_t> layersPerStage;
};

class PipelineRewrite {
public:
  PipelineRewrite(ModuleOp module, func::FuncOp step, RewriteOptions options)
      : module(module), step(step), opts(std::move(options)), symbols(module) {}

  LogicalResult run();
  bool splitsWeightsReport() const { return splitsWeights; }

  // What the report says.
  SmallVector<int64_t> firstLayer;
  std::vector<int64_t> edgeBytesF, edgeBytesB;
  std::optional<pipeline::Simulation> simulation;
  pipeline::Schedule schedule;
  /// The costliest stage's FLOPs per action (StepCost.h's model) and the
  /// schedule simulated with them.
  pipeline::Costs stageCosts;
  std::optional<pipeline::Simulation> pricedSimulation;

private:
  LogicalResult findMicroCalls();
  void classifyMicroOps();
  LogicalResult placeForward();
  void placeBackward();
  void collectOutputs();
  LogicalResult collectEdges();
  LogicalResult splitBackwards();
  LogicalResult findSums();
  LogicalResult buildActionLists();
  void priceStages();
  LogicalResult buildRank(int32_t rank);

  int32_t stages() const { return int32_t(opts.pp * opts.chunks); }
  int32_t rankOfStage(int32_t stage) const { return schedule.placeOf(stage).first; }
  Placement placeOf(Value v) {
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != &micro.getBody().front())
      return Placement{};
    return place.lookup(def);
  }

  ModuleOp module;
  func::FuncOp step, micro;
  RewriteOptions opts;
  SymbolTable symbols;
  SmallVector<func::CallOp> calls; // one per micro-batch, in order
  llvm::DenseSet<Operation *> stepPrologue, stepSumChain;
  SmallVector<Value> sumOf; // per micro output: the step's sum over micro-batches

  llvm::DenseMap<Operation *, Placement> place;
  /// Per micro output: per stage, the pieces summed into it.
  std::vector<std::map<int32_t, SmallVector<Value>>> outputParts;
  /// Edge e joins stages e and e + 1: the values the forward sends up it
  /// and the backward sends down it, per micro-batch.
  std::vector<llvm::SetVector<Value>> edgeF, edgeB;
  /// Backward ops of the B (input gradient) action; the rest are W's.
  llvm::DenseSet<Operation *> inputOps;
  llvm::DenseMap<Operation *, BackwardSplit> splitOf;
  bool splitsWeights = false;
  /// Per rank, the order its actions run in (indices into the schedule's).
  std::vector<std::vector<size_t>> order;

  friend class RankBuilder;
};

//===----------------------------------------------------------------------===//
// Analysis of the step and its micro step
//===----------------------------------------------------------------------===//

LogicalResult PipelineRewrite::findMicroCalls() {
  std::string microName = opts.entry + "_micro";
  Block &body = step.getBody().front();
  for (auto call : body.getOps<func::CallOp>())
    if (call.getCallee() == microName)
      calls.push_back(call);
  if (calls.empty())
    return step.emitError() << "kiln-pipeline: @" << opts.entry << " calls no @" << microName
                            << "; expected the step kiln-data-parallel builds (run it first, "
                               "also with dp 1)";
  micro = module.lookupSymbol<func::FuncOp>(microName);
  if (!micro || !micro.getBody().hasOneBlock())
    return step.emitError() << "kiln-pipeline: @" << microName << " has no body of one block";
  for (Operation &op : body) {
    if (&op == calls.front().getOperation())
      break;
    stepPrologue.insert(&op);
  }
  WalkResult unsupported = step.walk([&](Operation *op) -> WalkResult {
    if (isa<LocalShardOp>(op))
      return op->emitError() << "kiln-pipeline: the step shards its optimizer state (ZeRO-1); "
                                "pipeline stages are built for replicated state so far, "
                                "expected parallel.zero 0 with pp > 1";
    if (isa<GradScalerOp>(op))
      return op->emitError() << "kiln-pipeline: fp16 loss scaling checks every gradient for "
                                "overflow, which pipeline stages do not share yet; expected "
                                "train.precision fp32, bf16 or fp8 with pp > 1";
    return WalkResult::advance();
  });
  if (unsupported.wasInterrupted())
    return failure();
  if (GridAttr grid = GridAttr::lookup(module))
    if (grid.getAxes().size() != 1 || cast<StringAttr>(grid.getAxes()[0]).getValue() != "dp")
      return module.emitError() << "kiln-pipeline: the module's grid " << grid
                                << " is not kiln-data-parallel's [\"dp\"]; pipeline stages "
                                   "over expert-parallel grids are not built yet";
  return success();
}

void PipelineRewrite::classifyMicroOps() {
  Block &body = micro.getBody().front();
  llvm::DenseSet<Operation *> backward;
  for (Operation &op : body.without_terminator()) {
    bool free = isPure(&op) && op.getNumRegions() == 0 && !isa<func::CallOp>(op) &&
                llvm::all_of(op.getOperands(), [&](Value v) {
                  Operation *def = v.getDefiningOp();
                  return !def || place.lookup(def).phase == Phase::Free;
                });
    if (free) {
      place[&op] = Placement{Phase::Free, 0};
      continue;
    }
    bool isBackward = isa<CrossEntropyGradOp, BalanceLossGradOp>(op) ||
                      llvm::any_of(op.getOperands(), [&](Value v) {
                        Operation *def = v.getDefiningOp();
                        return def && backward.contains(def);
                      });
    if (isBackward)
      backward.insert(&op);
    place[&op] = Placement{isBackward ? Phase::Backward : Phase::Forward, 0};
  }
}

LogicalResult PipelineRewrite::placeForward() {
  Block &body = micro.getBody().front();
  SmallVector<Operation *> forward;
  SmallVector<func::CallOp> blockCalls;
  for (Operation &op : body.without_terminator())
    if (place[&op].phase == Phase::Forward) {
      forward.push_back(&op);
      if (auto call = dyn_cast<func::CallOp>(op))
        blockCalls.push_back(call);
    }
  const int64_t layers = opts.layers > 0 ? opts.layers : int64_t(blockCalls.size());
  if (layers > int64_t(blockCalls.size()))
    return micro.emitError() << "kiln-pipeline: layers=" << layers << " but the micro step makes "
                             << blockCalls.size() << " block calls in its forward";
  if (layers < stages())
    return micro.emitError() << "kiln-pipeline: " << stages() << " stages (pp " << opts.pp
                             << " x " << opts.chunks << " chunks) for " << layers
                             << " layers; expected at least one layer per stage";

  SymbolTableCollection costSymbols;
  if (!opts.layersPerStage.empty()) {
    if (int64_t(opts.layersPerStage.size()) != stages())
      return micro.emitError() << "kiln-pipeline: layers-per-stage lists "
                               << opts.layersPerStage.size() << " stages; expected "
                               << stages();
    int64_t sum = 0;
    for (int64_t n : opts.layersPerStage) {
      if (n < 1)
        return micro.emitError() << "kiln-pipeline: layers-per-stage has a stage of " << n
                                 << " layers; expected at least 1";
      firstLayer.push_back(sum);
      sum += n;
    }
    if (sum != layers)
      return micro.emitError() << "kiln-pipeline: layers-per-stage adds up to " << sum
                               << " layers; the model has " << layers;
  } else {
    SmallVector<double> cost;
    double before = 0, after = 0;
    int64_t seen = 0;
    for (Operation *op : forward) {
      double flops = opFlops(op, costSymbols);
      if (isa<func::CallOp>(op) && seen < layers) {
        cost.push_back(flops);
        ++seen;
      } else if (seen == 0) {
        before += flops;
      } else if (seen == layers) {
        after += flops;
      }
    }
    firstLayer = balancedSplit(cost, stages(), before, after);
  }
  auto stageOfLayer = [&](int64_t layer) {
    return int32_t(std::upper_bound(firstLayer.begin(), firstLayer.end(), layer) -
                   firstLayer.begin() - 1);
  };
  int32_t current = 0;
  int64_t layer = 0;
  for (Operation *op : forward) {
    if (isa<func::CallOp>(op) && layer < layers) {
      current = stageOfLayer(layer++);
      place[op].stage = current;
      if (layer == layers)
        current = stages() - 1;
      continue;
    }
    place[op].stage = layer == layers ? stages() - 1 : current;
  }
  return success();
}

void PipelineRewrite::placeBackward() {
  for (Operation &op : micro.getBody().front().without_terminator()) {
    Placement &p = place[&op];
    if (p.phase != Phase::Backward)
      continue;
    int32_t fromForwardCall = -1, lowestBackward = stages(), highestForward = -1;
    for (Value v : op.getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!def || def->getBlock() != op.getBlock())
        continue;
      Placement d = place.lookup(def);
      if (d.phase == Phase::Backward)
        lowestBackward = std::min(lowestBackward, d.stage);
      if (d.phase == Phase::Forward) {
        highestForward = std::max(highestForward, d.stage);
        if (isa<func::CallOp>(def))
          fromForwardCall = std::max(fromForwardCall, d.stage);
      }
    }
    if (isa<func::CallOp>(op) && fromForwardCall >= 0)
      p.stage = fromForwardCall;
    else if (lowestBackward < stages())
      p.stage = lowestBackward;
    else
      p.stage = highestForward >= 0 ? highestForward : stages() - 1;
  }
}

void PipelineRewrite::collectOutputs() {
  auto ret = cast<func::ReturnOp>(micro.getBody().front().getTerminator());
  outputParts.resize(ret.getNumOperands());
  for (auto [k, v] : llvm::enumerate(ret.getOperands())) {
    // The leaves of the tree of single-use additions v is.
    SmallVector<Value> leaves;
    SmallVector<Operation *> adds;
    SmallVector<Value> work = {v};
    while (!work.empty()) {
      Value x = work.pop_back_val();
      auto add = x.getDefiningOp<arith::AddFOp>();
      if (add && placeOf(x).phase != Phase::Free && (x == v || x.hasOneUse())) {
        adds.push_back(add);
        work.push_back(add.getRhs());
        work.push_back(add.getLhs());
        continue;
      }
      leaves.push_back(x);
    }
    std::map<int32_t, SmallVector<Value>> byStage;
    for (Value leaf : leaves)
      byStage[placeOf(leaf).stage].push_back(leaf);
    if (byStage.size() > 1 && v.hasOneUse()) {
      for (Operation *add : adds)
        place[add].phase = Phase::Dissolved;
      outputParts[k] = std::move(byStage);
    } else {
      outputParts[k][placeOf(v).stage].push_back(v);
    }
  }
}

LogicalResult PipelineRewrite::collectEdges() {
  edgeF.assign(stages() - 1, {});
  edgeB.assign(stages() - 1, {});
  for (Operation &op : micro.getBody().front().without_terminator()) {
    Placement use = place[&op];
    if (use.phase == Phase::Free || use.phase == Phase::Dissolved)
      continue;
    for (Value v : op.getOperands()) {
      Placement def = placeOf(v);
      if (def.phase == Phase::Free || def.stage == use.stage)
        continue;
      if (def.stage < use.stage) {
        if (def.phase != Phase::Forward)
          return op.emitError() << "kiln-pipeline: this op on stage " << use.stage
                                << " reads a backward value of stage " << def.stage
                                << ", which that stage computes after this one's backward";
        for (int32_t e = def.stage; e < use.stage; ++e)
          edgeF[e].insert(v);
      } else {
        if (use.phase != Phase::Backward)
          return op.emitError() << "kiln-pipeline: this forward op on stage " << use.stage
                                << " reads a value of the later stage " << def.stage;
        for (int32_t e = use.stage; e < def.stage; ++e)
          edgeB[e].insert(v);
      }
    }
  }
  for (auto &[edges, bytes] : {std::pair{&edgeF, &edgeBytesF}, std::pair{&edgeB, &edgeBytesB}})
    for (auto &values : *edges) {
      int64_t total = 0;
      for (Value v : values)
        total += bytesOf(v.getType());
      bytes->push_back(total);
    }
  return success();
}

/// The arguments of `f` that the results marked in `needed` depend on.
llvm::BitVector argumentsNeeded(func::FuncOp f, const llvm::BitVector &needed) {
  Block &body = f.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::BitVector args(body.getNumArguments());
  llvm::DenseSet<Operation *> seen;
  SmallVector<Value> work;
  for (unsigned i : needed.set_bits())
    work.push_back(ret.getOperand(i));
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (arg.getOwner() == &body)
        args.set(arg.getArgNumber());
      continue;
    }
    if (Operation *def = v.getDefiningOp())
      if (seen.insert(def).second)
        work.append(def->operand_begin(), def->operand_end());
  }
  return args;
}

LogicalResult PipelineRewrite::splitBackwards() {
  // B of a stage: what the stage below waits for, and what that needs.
  llvm::DenseMap<Operation *, llvm::BitVector> neededResults;
  SmallVector<Value> work;
  for (int32_t e = 0; e + 1 < stages(); ++e)
    for (Value v : edgeB[e])
      if (placeOf(v).phase == Phase::Backward && placeOf(v).stage == e + 1)
        work.push_back(v);
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || placeOf(v).phase != Phase::Backward)
      continue;
    if (auto call = dyn_cast<func::CallOp>(def)) {
      auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
      if (!callee || callee.isExternal())
        return call.emitError() << "kiln-pipeline: cannot split the external @"
                                << call.getCallee() << " into input and weight gradients";
      llvm::BitVector &needed =
          neededResults.try_emplace(call.getOperation(), llvm::BitVector(call.getNumResults()))
              .first->second;
      unsigned index = cast<OpResult>(v).getResultNumber();
      if (needed.test(index))
        continue;
      needed.set(index);
      llvm::BitVector args = argumentsNeeded(callee, needed);
      for (unsigned a : args.set_bits())
        work.push_back(call.getOperand(a));
      continue;
    }
    if (inputOps.insert(def).second)
      work.append(def->operand_begin(), def->operand_end());
  }
  std::map<std::pair<std::string, std::vector<bool>>, BackwardSplit> splits;
  for (Operation &blockOp : micro.getBody().front().without_terminator()) {
    auto found = neededResults.find(&blockOp);
    if (found == neededResults.end())
      continue;
    Operation *op = &blockOp;
    const llvm::BitVector &needed = found->second;
    if (needed.all()) {
      inputOps.insert(op);
      continue;
    }
    auto call = cast<func::CallOp>(op);
    std::vector<bool> key(needed.size());
    for (unsigned i = 0; i < needed.size(); ++i)
      key[i] = needed.test(i);
    auto it = splits.find({call.getCallee().str(), key});
    if (it == splits.end()) {
      FailureOr<BackwardSplit> split =
          splitBackward(symbols.lookup<func::FuncOp>(call.getCallee()), needed, symbols);
      if (failed(split))
        return failure();
      it = splits.insert({{call.getCallee().str(), key}, *split}).first;
    }
    splitOf[op] = it->second;
  }
  return success();
}

LogicalResult PipelineRewrite::findSums() {
  for (unsigned k = 0; k < calls.front().getNumResults(); ++k) {
    Value sum = calls.front().getResult(k);
    for (size_t m = 1; m < calls.size(); ++m) {
      Value next = calls[m].getResult(k);
      arith::AddFOp add;
      for (Operation *user : sum.getUsers())
        if (auto a = dyn_cast<arith::AddFOp>(user))
          if (a.getLhs() == sum && a.getRhs() == next)
            add = a;
      if (!add)
        return calls[m].emitError() << "kiln-pipeline: result #" << k
                                    << " of this micro-batch is not added to the previous ones' "
                                       "sum; expected kiln-data-parallel's in-order sum";
      stepSumChain.insert(add);
      sum = add.getResult();
    }
    sumOf.push_back(sum);
  }
  return success();
}

LogicalResult PipelineRewrite::buildActionLists() {
  std::string error;
  pipeline::Costs costs;
  std::optional<pipeline::Schedule> built =
      pipeline::buildSchedule(opts.schedule, int32_t(opts.pp), int32_t(opts.chunks),
                              int32_t(calls.size()), costs, error);
  if (!built)
    return step.emitError() << "kiln-pipeline: " << error;
  schedule = std::move(*built);
  simulation = pipeline::simulate(schedule, costs, error);
  if (!simulation)
    return step.emitError() << "kiln-pipeline: the " << opts.schedule
                            << " schedule fails its simulation: " << error;
  for (const auto &actions : schedule.actions)
    for (const pipeline::Action &a : actions)
      splitsWeights |= a.op == pipeline::Op::W;

  // Match every send with its receive: (forward?, micro-batch, receiving
  // stage) -> (rank, action).
  using pipeline::Op;
  std::map<std::tuple<bool, int32_t, int32_t>, std::pair<int32_t, size_t>> receiveOf;
  for (int32_t r = 0; r < schedule.ranks; ++r)
    for (size_t i = 0; i < schedule.actions[r].size(); ++i) {
      const pipeline::Action &a = schedule.actions[r][i];
      if (a.op == Op::RecvF || a.op == Op::RecvB)
        receiveOf[{a.op == Op::RecvF, a.microbatch, schedule.stageOf[r][a.chunk]}] = {r, i};
    }
  // Sort key: (time, 0 for communication / 1 for compute, pair, index).
  using Key = std::tuple<double, int, int64_t, size_t>;
  std::vector<std::vector<Key>> keys(schedule.ranks);
  std::map<std::pair<int32_t, size_t>, Key> receiveKey;
  int64_t pair = 0;
  for (int32_t r = 0; r < schedule.ranks; ++r)
    for (size_t i = 0; i < schedule.actions[r].size(); ++i) {
      const pipeline::Action &a = schedule.actions[r][i];
      if (a.op != Op::SendF && a.op != Op::SendB)
        continue;
      int32_t stage = schedule.stageOf[r][a.chunk];
      auto it = receiveOf.find({a.op == Op::SendF, a.microbatch,
                                a.op == Op::SendF ? stage + 1 : stage - 1});
      if (it == receiveOf.end())
        return step.emitError() << "kiln-pipeline: rank " << r << " action " << i << " ("
                                << pipeline::opName(a.op) << " of micro-batch " << a.microbatch
                                << ") has no matching receive";
      auto [peer, j] = it->second;
      Key k{simulation->times[peer][j].second, 0, pair++, 0};
      receiveKey[{r, i}] = k;
      receiveKey[{peer, j}] = k;
    }
  order.resize(schedule.ranks);
  for (int32_t r = 0; r < schedule.ranks; ++r) {
    std::vector<std::pair<Key, size_t>> sorted;
    for (size_t i = 0; i < schedule.actions[r].size(); ++i) {
      auto it = receiveKey.find({r, i});
      Key k = it != receiveKey.end() ? it->second
                                     : Key{simulation->times[r][i].first, 1, 0, i};
      sorted.push_back({k, i});
    }
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto &x, const auto &y) { return x.first < y.first; });
    for (auto &[k, i] : sorted)
      order[r].push_back(i);
  }
  return success();
}

void PipelineRewrite::priceStages() {
  SymbolTableCollection costSymbols;
  std::vector<pipeline::Costs> perStage(stages(), pipeline::Costs{0, 0, 0});
  for (Operation &op : micro.getBody().front().without_terminator()) {
    Placement p = place.lookup(&op);
    pipeline::Costs &c = perStage[p.stage];
    if (p.phase == Phase::Forward) {
      c.f += opFlops(&op, costSymbols);
    } else if (p.phase == Phase::Backward) {
      auto split = splitOf.find(&op);
      if (split != splitOf.end()) {
        c.b += functionFlops(split->second.input, costSymbols);
        c.w += functionFlops(split->second.weight, costSymbols);
      } else if (!splitsWeights || inputOps.contains(&op)) {
        c.b += opFlops(&op, costSymbols); // without a W, the whole backward is B
      } else {
        c.w += opFlops(&op, costSymbols);
      }
    }
  }
  stageCosts = perStage.front();
  for (const pipeline::Costs &c : perStage)
    if (c.f + c.b + c.w > stageCosts.f + stageCosts.b + stageCosts.w)
      stageCosts = c;
  std::string error;
  pricedSimulation = pipeline::simulate(schedule, stageCosts, error);
}

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
  for (size_t index : rw.order[rank]) {
    const pipeline::Action &a = sched.actions[rank][index];
    const int32_t stage = sched.stageOf[rank][a.chunk];
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
  }
  return success();
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
  for (auto [i, old] : llvm::enumerate(ret.getOperands())) {
    Holders h = holdersOf(old);
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
  OpBuilder end = OpBuilder::atBlockEnd(&fn.getBody().front());
  func::ReturnOp::create(end, step.getLoc(), results);
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
    options.chunks = schedule == "dualpipev" ? 2 : int64_t(virtualStages);
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
    module.emitRemark() << text;
  }
};

} // namespace
} // namespace kiln
