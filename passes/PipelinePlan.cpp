//===- PipelinePlan.cpp - kiln-pipeline's analysis of a micro step -------===//

#include "passes/PipelinePlan.h"
#include "passes/Passes.h"
#include "passes/StepCost.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <algorithm>
#include <limits>
#include <tuple>

namespace kiln::pipeline_lowering {

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
      llvm::DenseSet<Operation *> calleeSlice;
      llvm::BitVector args = sliceOfResults(callee, needed, calleeSlice);
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
  simulationByStage = pipeline::simulate(schedule, perStage, error);
}


} // namespace kiln::pipeline_lowering
