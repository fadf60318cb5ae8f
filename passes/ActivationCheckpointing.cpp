//===- ActivationCheckpointing.cpp - kiln-activation-checkpointing --------===//
//
// kiln-autodiff gives each block function F a forward F_fwd that returns,
// after F's results, the values F_bwd needs, and a backward F_bwd that takes
// them as its last arguments (kiln.forward and kiln.saved on F_bwd say which
// and how many). Between the two calls those values are live across the rest
// of the forward and the backward of the later layers: that is the
// activation memory. Recompute.h rewrites one backward to recompute them;
// this pass decides which backwards do, per policy:
//
//  * full keeps only each block's inputs: every F_bwd the step calls
//    recomputes all its saved values. A block nested in another (the MTP
//    module's decoder layer) keeps its saved values: the outer block's
//    recomputation produces them, so nothing is computed three times.
//  * selective recomputes only the saved values cheap ops make from the
//    block's inputs and the values it keeps (isCheapToRecompute), in every
//    backward, and then drops what an outer block kept only for a nested one.
//  * budget chooses, per block call of the step, none, selective or full so
//    that the planned arena fits the budget with the fewest recompute FLOPs
//    (StepCost.h counts them). The arena of a choice is priced by planning
//    it: a clone of the module is rewritten and lowered to the kernel level
//    by the pricer (by default inline, convert-kiln-to-kernel,
//    kiln-fuse-elementwise, kiln-plan-arena; kilnc adds its own passes
//    between, so the price is the arena it will build). The search is
//    greedy: raise the call that frees the most arena per added FLOP until
//    the plan fits, then lower back every call the plan can do without.
//    Calls of one backward are raised in forward order (the first layer's
//    saved values are live the longest).
//
// Recomputation runs the same ops on the same inputs, so every policy gives
// the same bits as `none` (TrainExecutableCheckpointing checks it on
// r1-tiny and dense-tiny).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/Recompute.h"
#include "passes/StepCost.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>
#include <map>

namespace kiln {
#define GEN_PASS_DEF_KILNACTIVATIONCHECKPOINTING
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// Whether kiln-autodiff has built any block backward in `module`.
bool hasBlockBackward(ModuleOp module) {
  bool found = false;
  module.walk([&](func::FuncOp f) { found |= f->hasAttr(kForwardAttr); });
  return found;
}

/// How much of its forward one block backward call recomputes.
enum class Level : uint8_t { None, Selective, Full };

StringRef nameOf(Level level) {
  switch (level) {
  case Level::None:
    return "none";
  case Level::Selective:
    return "selective";
  case Level::Full:
    return "full";
  }
  llvm_unreachable("unknown level");
}

/// The calls of block backwards with saved values that functions other than
/// block backwards (the step) make, in program order: a clone of the module
/// lists the same calls in the same order.
SmallVector<func::CallOp> stepBackwardCalls(ModuleOp module) {
  SymbolTableCollection symbols;
  SmallVector<func::CallOp> calls;
  module.walk([&](func::CallOp call) {
    auto callee = symbols.lookupNearestSymbolFrom<func::FuncOp>(call, call.getCalleeAttr());
    auto caller = call->getParentOfType<func::FuncOp>();
    if (callee && savedCountOf(callee) > 0 && !caller->hasAttr(kForwardAttr))
      calls.push_back(call);
  });
  return calls;
}

/// What one call recomputing at a level adds: FLOPs, and bytes no longer kept.
struct LevelCost {
  double flops = 0;
  int64_t bytes = 0;
};
using LevelCosts = std::map<std::pair<std::string, Level>, LevelCost>;

/// Makes the i-th of stepBackwardCalls(module) recompute at levels[i],
/// through a variant of its callee (F_bwd_selective, F_bwd_full) made once
/// per callee and level. Calls nested in a variant keep calling the
/// originals, which take their saved values from the recomputed forward;
/// originals no call needs any more are erased. Records what each variant
/// adds in `costs`.
LogicalResult applyLevels(ModuleOp module, ArrayRef<Level> levels, LevelCosts &costs) {
  SmallVector<func::CallOp> calls = stepBackwardCalls(module);
  assert(calls.size() == levels.size() && "levels for another module");
  SymbolTable symbols(module);
  struct Variant {
    func::FuncOp function;
    llvm::BitVector dropped; ///< saved values (by index) it recomputes
  };
  std::map<std::pair<std::string, Level>, Variant> variants;
  for (auto [call, level] : llvm::zip(calls, levels)) {
    if (level == Level::None)
      continue;
    auto bwd = symbols.lookup<func::FuncOp>(call.getCallee());
    const int64_t saved = savedCountOf(bwd);
    auto key = std::make_pair(bwd.getSymName().str(), level);
    auto it = variants.find(key);
    if (it == variants.end()) {
      auto fwd = symbols.lookup<func::FuncOp>(
          bwd->getAttrOfType<FlatSymbolRefAttr>(kForwardAttr).getValue());
      if (!fwd)
        return bwd.emitError() << "kiln-activation-checkpointing: @" << bwd.getSymName()
                               << " names a forward that does not exist";
      func::FuncOp variant = bwd.clone();
      variant.setSymName((bwd.getSymName() + "_" + nameOf(level)).str());
      symbols.insert(variant, std::next(Block::iterator(bwd)));
      int64_t bytes = 0;
      llvm::BitVector dropped(saved, true);
      if (level == Level::Full) {
        FailureOr<int64_t> full = recomputeAllSaved(variant, fwd);
        if (failed(full))
          return failure();
        bytes = *full;
      } else {
        FailureOr<llvm::BitVector> cheap = recomputeCheapSaved(variant, fwd, bytes);
        if (failed(cheap))
          return failure();
        dropped = *cheap;
      }
      SymbolTableCollection lookup;
      costs[key] = {functionFlops(variant, lookup) - functionFlops(bwd, lookup), bytes};
      it = variants.emplace(key, Variant{variant, dropped}).first;
    }
    const unsigned firstSaved = call.getNumOperands() - saved;
    llvm::BitVector erase(call.getNumOperands());
    for (unsigned i : it->second.dropped.set_bits())
      erase.set(firstSaved + i);
    call->eraseOperands(erase);
    call.setCallee(it->second.function.getSymName());
  }
  for (auto &entry : variants) {
    auto original = symbols.lookup<func::FuncOp>(entry.first.first);
    if (original && SymbolTable::symbolKnownUseEmpty(original, module))
      symbols.erase(original);
  }
  return success();
}

struct KilnActivationCheckpointing
    : impl::KilnActivationCheckpointingBase<KilnActivationCheckpointing> {
  using Base::Base;
  KilnActivationCheckpointing(const KilnActivationCheckpointingOptions &options,
                              ArenaPricer pricer)
      : Base(options), pricer(std::move(pricer)) {}

  void runOnOperation() override;

private:
  void runSelective(ModuleOp module, SymbolTable &symbols);
  void runBudget(ModuleOp module);

  /// Plans a candidate's arena; the default lowers to the kernel level.
  ArenaPricer pricer;
};

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
    FailureOr<llvm::BitVector> drop = recomputeCheapSaved(bwd, fwd, bytes);
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

void KilnActivationCheckpointing::runBudget(ModuleOp module) {
  const int64_t budget = budgetBytes;
  if (budget <= 0)
    return module.emitError() << "kiln-activation-checkpointing: policy budget needs "
                                 "budget-bytes > 0, got "
                              << budget,
           signalPassFailure();
  SmallVector<func::CallOp> calls = stepBackwardCalls(module);
  SmallVector<std::string> callees;
  llvm::SetVector<StringRef> distinct;
  for (func::CallOp call : calls)
    callees.push_back(call.getCallee().str());
  for (const std::string &callee : callees)
    distinct.insert(callee);
  const size_t n = calls.size();
  using Levels = std::vector<Level>;

  LevelCosts costs;
  std::map<Levels, int64_t> priced;
  auto price = [&](const Levels &levels) -> FailureOr<int64_t> {
    auto it = priced.find(levels);
    if (it != priced.end())
      return it->second;
    OwningOpRef<ModuleOp> candidate = module.clone();
    if (failed(applyLevels(*candidate, levels, costs)))
      return failure();
    FailureOr<int64_t> bytes =
        pricer ? pricer(*candidate) : plannedArenaBytes(*candidate, [](OpPassManager &pm) {
          addKernelLowering(pm, /*fuseElementwise=*/true, /*arenaReuse=*/true, /*report=*/false);
        });
    if (failed(bytes))
      return module.emitError() << "kiln-activation-checkpointing: could not plan the arena of "
                                   "a candidate to price it (see the errors above)";
    return priced[levels] = *bytes;
  };
  auto flopsOf = [&](const Levels &levels) {
    double flops = 0;
    for (size_t i = 0; i < n; ++i)
      if (levels[i] != Level::None)
        flops += costs[{callees[i], levels[i]}].flops;
    return flops;
  };

  // The cheapest plans of the uniform policies bound what a budget can get.
  const Levels none(n, Level::None), selective(n, Level::Selective), full(n, Level::Full);
  FailureOr<int64_t> noneBytes = price(none);
  if (failed(noneBytes))
    return signalPassFailure();
  if (*noneBytes <= budget) {
    if (report)
      emitRemark(module.getLoc()) << "kiln-activation-checkpointing: policy budget: the arena "
                                  << "without recomputation, " << *noneBytes
                                  << " bytes, fits the budget of " << budget << " bytes";
    return;
  }
  Levels floor = none;
  int64_t floorBytes = *noneBytes;
  for (const Levels *uniform : {&selective, &full}) {
    FailureOr<int64_t> bytes = price(*uniform);
    if (failed(bytes))
      return signalPassFailure();
    if (*bytes < floorBytes)
      floor = *uniform, floorBytes = *bytes;
  }
  if (floorBytes > budget)
    return module.emitError()
               << "kiln-activation-checkpointing: a budget of " << budget
               << " bytes is below the smallest arena this step plans in, " << floorBytes
               << " bytes (policy " << nameOf(floor.empty() ? Level::None : floor.front())
               << "; without recomputation " << *noneBytes
               << "); the smallest feasible budget is " << floorBytes << " bytes",
           signalPassFailure();

  // Greedy: raise the call that frees the most arena per added FLOP.
  Levels levels = none;
  int64_t bytes = *noneBytes;
  while (bytes > budget) {
    std::optional<Levels> best, cheapest;
    int64_t bestBytes = 0, cheapestBytes = 0;
    double bestScore = 0, cheapestFlops = 0;
    for (StringRef callee : distinct) {
      for (Level level : {Level::Selective, Level::Full}) {
        // The first block in forward order is the last backward call.
        std::optional<size_t> pick;
        for (size_t i = n; i-- > 0;)
          if (callees[i] == callee && levels[i] < level) {
            pick = i;
            break;
          }
        if (!pick)
          continue;
        Levels trial = levels;
        trial[*pick] = level;
        FailureOr<int64_t> trialBytes = price(trial);
        if (failed(trialBytes))
          return signalPassFailure();
        const double added = flopsOf(trial) - flopsOf(levels);
        const double score = double(bytes - *trialBytes) / std::max(added, 1.0);
        if (*trialBytes < bytes && (!best || score > bestScore))
          best = trial, bestBytes = *trialBytes, bestScore = score;
        if (!cheapest || added < cheapestFlops)
          cheapest = trial, cheapestBytes = *trialBytes, cheapestFlops = added;
      }
    }
    if (!best && !cheapest)
      break; // every call recomputes in full
    // No single step frees arena (the peak is elsewhere): take the cheapest
    // and look again.
    levels = best ? *best : *cheapest;
    bytes = best ? bestBytes : cheapestBytes;
  }
  if (bytes > budget) {
    levels = floor;
    bytes = floorBytes;
  }
  // Lower back every call the plan fits without, the costliest first.
  SmallVector<size_t> order = llvm::to_vector(llvm::seq<size_t>(0, n));
  llvm::stable_sort(order, [&](size_t a, size_t b) {
    return costs[{callees[a], levels[a]}].flops > costs[{callees[b], levels[b]}].flops;
  });
  for (size_t i : order) {
    while (levels[i] != Level::None) {
      Levels trial = levels;
      trial[i] = Level(uint8_t(levels[i]) - 1);
      FailureOr<int64_t> trialBytes = price(trial);
      if (failed(trialBytes))
        return signalPassFailure();
      if (*trialBytes > budget)
        break;
      levels = trial;
      bytes = *trialBytes;
    }
  }

  if (failed(applyLevels(module, levels, costs)))
    return signalPassFailure();
  if (!report)
    return;
  int64_t counts[3] = {0, 0, 0};
  for (size_t i = n; i-- > 0;) {
    ++counts[uint8_t(levels[i])];
    emitRemark(module.getLoc())
        << "kiln-activation-checkpointing: policy budget: block " << (n - i) << " of " << n
        << " (@" << callees[i] << ") recomputes " << nameOf(levels[i]);
  }
  emitRemark(module.getLoc()) << "kiln-activation-checkpointing: policy budget: an arena of "
                              << bytes << " bytes fits the budget of " << budget
                              << " bytes (without recomputation " << *noneBytes << ") with "
                              << int64_t(std::llround(flopsOf(levels)))
                              << " recompute FLOPs per step; blocks none " << counts[0]
                              << ", selective " << counts[1] << ", full " << counts[2] << "; "
                              << priced.size() << " plans priced";
}

void KilnActivationCheckpointing::runOnOperation() {
  ModuleOp module = getOperation();
  if (policy == "none")
    return;
  if (policy != "full" && policy != "selective" && policy != "budget")
    return module.emitError() << "kiln-activation-checkpointing: unknown policy '" << policy
                              << "'; expected none, full, selective or budget",
           signalPassFailure();
  if (!hasBlockBackward(module))
    return module.emitError() << "kiln-activation-checkpointing: no block backward "
                                 "(kiln.forward) in the module; run kiln-autodiff first",
           signalPassFailure();
  if (policy == "budget")
    return runBudget(module);
  SymbolTable symbols(module);
  if (policy == "selective")
    return runSelective(module, symbols);

  // Targets: backwards with saved values that a non-backward function (the
  // step) calls. Their calls from inside another target keep the saved
  // values, through a copy of the original.
  llvm::SetVector<func::FuncOp> targets;
  SmallVector<func::CallOp> calls;
  module.walk([&](func::CallOp call) {
    calls.push_back(call);
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    auto caller = call->getParentOfType<func::FuncOp>();
    if (callee && savedCountOf(callee) > 0 && !caller->hasAttr(kForwardAttr))
      targets.insert(callee);
  });
  // Nothing left to recompute (a step whose blocks save nothing, or one this
  // pass already rewrote) is fine.
  if (targets.empty())
    return;
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
    FailureOr<int64_t> bytes = recomputeAllSaved(bwd, fwd);
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

std::unique_ptr<Pass>
createKilnActivationCheckpointing(const KilnActivationCheckpointingOptions &options,
                                  ArenaPricer pricer) {
  return std::make_unique<KilnActivationCheckpointing>(options, std::move(pricer));
}

} // namespace kiln
