//===- CheckpointBudgetTest.cpp - policy budget never exceeds its budget --===//
//
// A property test of kiln-activation-checkpointing policy=budget on r1-tiny
// and dense-tiny: for random budgets around the feasible range, a budget at
// or above the smallest feasible arena (which a budget of 1 byte reports)
// builds a step whose planned arena fits it, one at or above the arena
// without recomputation changes nothing, and one below the smallest
// feasible arena is refused with that number. The arena is planned here by
// the same kernel lowering as the build (addKernelLowering), independently
// of the pass's own pricing.
//
//===----------------------------------------------------------------------===//

#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>

using namespace mlir;

namespace kiln {
namespace {

struct Outcome {
  bool ok = false;
  int64_t arenaBytes = 0;
  std::string errors;
};

class CheckpointBudget : public ::testing::TestWithParam<const char *> {
protected:
  void SetUp() override {
    DialectRegistry registry;
    func::registerInlinerExtension(registry);
    context.appendDialectRegistry(registry);
    std::string error;
    std::optional<frontend::Spec> spec =
        frontend::loadSpec(std::string(KILN_SOURCE_DIR) + "/models/" + GetParam() + ".json",
                           error);
    ASSERT_TRUE(spec) << error;
    trained = frontend::buildForwardModule(context, *spec);
    ASSERT_TRUE(trained);
    PassManager pm(&context);
    pm.addNestedPass<func::FuncOp>(createCSEPass());
    KilnAutodiffOptions autodiff;
    autodiff.lr = spec->train.lr;
    autodiff.totalSteps = spec->train.steps;
    autodiff.mtpLossWeight = spec->train.mtpLossWeight;
    pm.addPass(createKilnAutodiff(autodiff));
    ASSERT_TRUE(succeeded(pm.run(*trained)));
  }

  /// The training step with `policy` (and `budget`), lowered and planned.
  Outcome build(const std::string &policy, int64_t budget = 0) {
    Outcome outcome;
    ScopedDiagnosticHandler collect(&context, [&](Diagnostic &diag) {
      if (diag.getSeverity() == DiagnosticSeverity::Error)
        outcome.errors += diag.str() + "\n";
      return success();
    });
    OwningOpRef<ModuleOp> module = trained->clone();
    PassManager pm(&context);
    KilnActivationCheckpointingOptions options;
    options.policy = policy;
    options.budgetBytes = budget;
    pm.addPass(createKilnActivationCheckpointing(options));
    addKernelLowering(pm, /*fuseElementwise=*/true, /*arenaReuse=*/true, /*report=*/false);
    outcome.ok = succeeded(pm.run(*module));
    if (outcome.ok) {
      auto step = module->lookupSymbol<func::FuncOp>("train_step");
      outcome.arenaBytes = step->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr).getInt();
    }
    return outcome;
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> trained;
};

TEST_P(CheckpointBudget, PlansNeverExceedTheirBudget) {
  const Outcome none = build("none"), full = build("full");
  ASSERT_TRUE(none.ok) << none.errors;
  ASSERT_TRUE(full.ok) << full.errors;
  // The smallest feasible budget, as the pass reports it.
  const Outcome tiny = build("budget", 1);
  ASSERT_FALSE(tiny.ok);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(tiny.errors, m,
                                std::regex("the smallest feasible budget is ([0-9]+) bytes")))
      << tiny.errors;
  const int64_t floor = std::stoll(m[1]);
  EXPECT_LE(floor, full.arenaBytes) << "policy full plans a smaller arena than the floor";
  EXPECT_LT(floor, none.arenaBytes);
  const Outcome atFloor = build("budget", floor);
  ASSERT_TRUE(atFloor.ok) << atFloor.errors;
  EXPECT_LE(atFloor.arenaBytes, floor);
  const Outcome belowFloor = build("budget", floor - 1);
  EXPECT_FALSE(belowFloor.ok);

  std::mt19937_64 rng(12);
  const int64_t low = floor / 2, high = none.arenaBytes + none.arenaBytes / 10;
  std::uniform_int_distribution<int64_t> pick(low, high);
  int fits = 0, refused = 0;
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t budget = pick(rng);
    SCOPED_TRACE("budget " + std::to_string(budget));
    const Outcome got = build("budget", budget);
    if (budget < floor) {
      EXPECT_FALSE(got.ok);
      EXPECT_NE(got.errors.find("the smallest feasible budget is " + std::to_string(floor) +
                                " bytes"),
                std::string::npos)
          << got.errors;
      ++refused;
      continue;
    }
    ASSERT_TRUE(got.ok) << got.errors;
    EXPECT_LE(got.arenaBytes, budget);
    if (budget >= none.arenaBytes) {
      EXPECT_EQ(got.arenaBytes, none.arenaBytes) << "a budget the step fits must change nothing";
    }
    ++fits;
  }
  std::printf("[%s] arena: none %lld, full %lld, smallest feasible %lld; %d budgets fit, %d "
              "refused\n",
              GetParam(), (long long)none.arenaBytes, (long long)full.arenaBytes,
              (long long)floor, fits, refused);
  EXPECT_GT(fits, 0);
  EXPECT_GT(refused, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, CheckpointBudget, ::testing::Values("r1-tiny", "dense-tiny"),
                         [](const auto &info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

} // namespace
} // namespace kiln
