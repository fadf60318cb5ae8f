//===- TrainStepGoldenTest.cpp - kiln-autodiff vs PyTorch autograd + AdamW
//
// For each model with training goldens (test/Reference/goldens/*.grads.json,
// *.train.json, written by models/reference/ in float64):
//  (a) every parameter gradient of the main and the total loss, from
//      kiln-autodiff mode=gradient on the reference evaluator, against
//      PyTorch autograd;
//  (b) three @train_step steps (warmup + cosine schedule, clipping, AdamW,
//      expert-bias update) against torch.optim.AdamW: losses, gradient
//      norms, learning rates, parameters, Adam moments and expert biases;
//  (c) finite differences (five-point stencil) of the total loss on the
//      largest gradient coordinate of every parameter tensor.
// Gradients are compared through per-tensor statistics (sum, |sum|, sum of
// squares, first values, a ±1 projection; see models/reference/README.md),
// since full gradients are too large to commit.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "test/unit/GoldenHparams.h"
#include "test/unit/GradientStats.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

using namespace kiln;
using namespace kiln::reference;
using nlohmann::json;

namespace {

using namespace kiln::test;

constexpr double kTolerance = 1e-9;

/// Calls `fn(hfName, data, count)` for every stored tensor of a parameter
/// (each expert of a stacked one).
template <typename Fn>
void forEachHfTensor(const ParamSlot &p, const RefTensor &t, Fn fn) {
  int64_t per = t.numElements() / p.numStored();
  for (int64_t e = 0; e < p.numStored(); ++e)
    fn(p.hfName(e), t.data.data() + e * per, per);
}

class TrainStepGolden : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    std::string root = KILN_SOURCE_DIR;
    std::string specPath = GetParam();
    model = specPath.substr(specPath.rfind('/') + 1);
    model = model.substr(0, model.size() - 5);
    std::string error;
    spec = frontend::loadSpec(root + "/" + specPath, error);
    ASSERT_TRUE(spec) << error;
    std::ifstream gradsIn(root + "/test/Reference/goldens/" + model + ".grads.json");
    std::ifstream trainIn(root + "/test/Reference/goldens/" + model + ".train.json");
    ASSERT_TRUE(gradsIn && trainIn) << "missing training goldens for " << model;
    grads = json::parse(gradsIn);
    train = json::parse(trainIn);

    module = frontend::buildForwardModule(context, *spec);
    auto forward = module->lookupSymbol<mlir::func::FuncOp>("forward");
    mlir::FailureOr<Signature> read = readSignature(forward);
    ASSERT_TRUE(mlir::succeeded(read));
    sig = *read;
    args.resize(sig.numArgs);
    for (const ParamSlot &p : sig.params)
      args[p.argIndex] = initParameter(p, spec->train.seed);
    TokenBatch batch{spec->train.microBatch, spec->train.seqLen, {}};
    for (const json &row : train["tokens"])
      for (const json &id : row)
        batch.ids.push_back(id.get<int64_t>());
    ASSERT_TRUE(bindNextTokenInputs(batch, sig, args, error)) << error;
  }

  /// The recipe the reference used, as kiln-autodiff options.
  KilnAutodiffOptions options() const { return autodiffOptionsOf(train["hparams"]); }

  mlir::OwningOpRef<mlir::ModuleOp> differentiate(KilnAutodiffOptions o) {
    mlir::OwningOpRef<mlir::ModuleOp> m = module->clone();
    mlir::PassManager pm(&context);
    pm.addPass(createKilnAutodiff(o));
    EXPECT_TRUE(mlir::succeeded(pm.run(*m)));
    return m;
  }

  /// The loss gradients of every parameter, by argument index.
  std::map<unsigned, RefTensor> gradients(const std::string &loss, double *lossValue) {
    KilnAutodiffOptions o = options();
    o.mode = "gradient";
    o.lossKind = loss;
    mlir::OwningOpRef<mlir::ModuleOp> m = differentiate(o);
    Evaluator evaluator(*m);
    mlir::FailureOr<llvm::SmallVector<RefTensor>> out = evaluator.call("forward_grad", args);
    EXPECT_TRUE(mlir::succeeded(out));
    std::map<unsigned, RefTensor> byArg;
    if (mlir::failed(out))
      return byArg;
    *lossValue = (*out)[0].data[0];
    auto gradFunc = m->lookupSymbol<mlir::func::FuncOp>("forward_grad");
    for (unsigned i = 1; i < gradFunc.getNumResults(); ++i) {
      auto name = gradFunc.getResultAttrOfType<mlir::StringAttr>(i, "kiln.param");
      for (const ParamSlot &p : sig.params)
        if (p.name == name.getValue())
          byArg[p.argIndex] = (*out)[i];
    }
    return byArg;
  }

  std::string model;
  std::optional<frontend::Spec> spec;
  json grads, train;
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  Signature sig;
  llvm::SmallVector<RefTensor> args;
};

TEST_P(TrainStepGolden, GradientsMatchPyTorch) {
  for (std::string loss : {"main", "total"}) {
    double value = 0;
    std::map<unsigned, RefTensor> g = gradients(loss, &value);
    double want = grads["loss"][loss];
    std::printf("[%s] %s loss: kiln %.17g  pytorch %.17g\n", model.c_str(), loss.c_str(),
                value, want);
    EXPECT_LE(std::fabs(value - want) / std::fabs(want), kTolerance);
    Worst worst;
    int tensors = 0;
    for (const ParamSlot &p : sig.params) {
      RefTensor zeros(p.elementType, p.shape);
      const RefTensor &t = g.count(p.argIndex) ? g[p.argIndex] : zeros;
      forEachHfTensor(p, t, [&](const std::string &name, const double *data, int64_t n) {
        ASSERT_TRUE(grads["grads"][loss].contains(name)) << "no golden gradient for " << name;
        compareStats(name, statsOf(name, data, n), grads["grads"][loss][name], worst, worst,
                     worst);
        if (tensors++ == 0)
          std::printf("[%s] %s: d %s first values: kiln %.12g %.12g  pytorch %.12g %.12g\n",
                      model.c_str(), loss.c_str(), name.c_str(), data[0], data[1],
                      grads["grads"][loss][name]["first"][0].get<double>(),
                      grads["grads"][loss][name]["first"][1].get<double>());
      });
    }
    EXPECT_EQ(tensors, (int)grads["grads"][loss].size()) << "tensor count differs";
    std::printf("[%s] %s: %d gradient tensors, max relative error %.3g (%s)\n", model.c_str(),
                loss.c_str(), tensors, worst.error, worst.where.c_str());
    EXPECT_LE(worst.error, kTolerance) << worst.where;
  }
}

TEST_P(TrainStepGolden, ThreeAdamWStepsMatchPyTorch) {
  mlir::OwningOpRef<mlir::ModuleOp> m = differentiate(options());
  auto step = m->lookupSymbol<mlir::func::FuncOp>("train_step");
  ASSERT_TRUE(step);

  // train_step arguments: parameters and inputs by name, zero Adam state, step.
  llvm::SmallVector<RefTensor> stepArgs(step.getNumArguments());
  std::map<std::string, unsigned> paramArg; // HF pattern -> forward arg index
  for (const ParamSlot &p : sig.params)
    paramArg[p.name] = p.argIndex;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    auto type = mlir::cast<mlir::RankedTensorType>(step.getArgumentTypes()[i]);
    auto name = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.param");
    auto input = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.input");
    if (step.getArgAttr(i, "kiln.state"))
      stepArgs[i] = RefTensor(type.getElementType(), type.getShape());
    else if (name)
      stepArgs[i] = args[paramArg.at(name.str())];
    else if (input && input.getValue() == "step")
      stepArgs[i] = RefTensor(type.getElementType(), {});
  }
  for (const InputSlot &in : sig.inputs)
    for (unsigned i = 0; i < step.getNumArguments(); ++i)
      if (auto role = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.input"))
        if (role.getValue() == in.role)
          stepArgs[i] = args[in.argIndex];

  Evaluator evaluator(*m);
  llvm::SmallVector<RefTensor> out;
  auto resultRole = [&](unsigned r) {
    return step.getResultAttrOfType<mlir::StringAttr>(r, "kiln.result").getValue();
  };
  for (int t = 1; t <= 3; ++t) {
    for (unsigned i = 0; i < step.getNumArguments(); ++i)
      if (auto input = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.input"))
        if (input.getValue() == "step")
          stepArgs[i].data[0] = t;
    mlir::FailureOr<llvm::SmallVector<RefTensor>> result = evaluator.call("train_step", stepArgs);
    ASSERT_TRUE(mlir::succeeded(result));
    out = std::move(*result);
    const json &want = train["steps"][t - 1];
    for (unsigned r = 0; r < step.getNumResults(); ++r) {
      llvm::StringRef role = resultRole(r);
      const char *key = role == "loss" ? "loss" : role == "main_loss" ? "main_loss"
                        : role == "grad_norm" ? "grad_norm" : role == "lr" ? "lr" : nullptr;
      if (!key)
        continue;
      double got = out[r].data[0], expected = want[key];
      std::printf("[%s] step %d %-9s kiln %.15g  pytorch %.15g\n", model.c_str(), t, key, got,
                  expected);
      if (expected == 0)
        EXPECT_EQ(got, 0.0) << key;
      else
        EXPECT_LE(std::fabs(got - expected) / std::fabs(expected), kTolerance) << key;
    }
    // Feed the new parameters and state back in.
    unsigned r = 0;
    for (unsigned i = 0; i < step.getNumArguments(); ++i) {
      bool isParam = step.getArgAttr(i, "kiln.param") != nullptr;
      if (isParam)
        stepArgs[i] = out[r++];
    }
  }

  // Parameters, biases and Adam moments after three steps.
  Worst params, state, biases;
  unsigned numParams = 0;
  for (unsigned i = 0; i < step.getNumArguments(); ++i)
    if (step.getArgAttr(i, "kiln.param") && !step.getArgAttr(i, "kiln.state"))
      ++numParams;
  for (unsigned r = 0; r < step.getNumResults(); ++r) {
    llvm::StringRef role = resultRole(r);
    auto name = step.getResultAttrOfType<mlir::StringAttr>(r, "kiln.param");
    if (!name)
      continue;
    const ParamSlot *slot = nullptr;
    for (const ParamSlot &p : sig.params)
      if (p.name == name.getValue())
        slot = &p;
    ASSERT_TRUE(slot);
    forEachHfTensor(*slot, out[r], [&](const std::string &hf, const double *data, int64_t n) {
      if (role == "param" && !slot->trainable) {
        const json &want = train["biases"][hf];
        for (int64_t i = 0; i < n; ++i)
          biases.check(data[i], want[i].get<double>(), 1e-3, hf);
      } else if (role == "param") {
        compareStats(hf, statsOf(hf, data, n), train["params"][hf], params, params, params);
      } else {
        const char *key = role == "exp_avg" ? "adam_m" : "adam_v";
        compareStats(hf, statsOf(hf, data, n), train[key][hf], state, state, state);
      }
    });
  }
  std::printf("[%s] after 3 steps, max relative error: params %.3g (%s), adam %.3g (%s), "
              "expert biases %.3g (%s)\n",
              model.c_str(), params.error, params.where.c_str(), state.error,
              state.where.c_str(), biases.error, biases.where.c_str());
  EXPECT_GT(numParams, 0u);
  EXPECT_LE(params.error, kTolerance) << params.where;
  EXPECT_LE(state.error, kTolerance) << state.where;
  EXPECT_LE(biases.error, kTolerance) << biases.where;
}

TEST_P(TrainStepGolden, FiniteDifferences) {
  double loss0 = 0;
  std::map<unsigned, RefTensor> g = gradients("total", &loss0);
  KilnAutodiffOptions o = options();
  o.mode = "gradient";
  o.lossKind = "total";
  mlir::OwningOpRef<mlir::ModuleOp> m = differentiate(o);
  Evaluator evaluator(*m);
  auto lossAt = [&](llvm::SmallVector<RefTensor> &a) {
    return (*evaluator.call("forward_grad", a))[0].data[0];
  };
  double worst = 0;
  std::string where;
  double largest = 0;
  for (auto &[arg, grad] : g)
    for (double v : grad.data)
      largest = std::max(largest, std::fabs(v));
  int checked = 0, skipped = 0;
  for (const ParamSlot &p : sig.params) {
    if (!p.trainable || !g.count(p.argIndex))
      continue;
    const RefTensor &grad = g[p.argIndex];
    // The coordinate with the largest gradient: its relative error is meaningful.
    int64_t best = 0;
    for (int64_t i = 1; i < grad.numElements(); ++i)
      if (std::fabs(grad.data[i]) > std::fabs(grad.data[best]))
        best = i;
    if (grad.data[best] == 0)
      continue;
    // Five-point stencil: truncation error O(h^4), so h can stay large
    // enough that rounding in the loss does not dominate.
    llvm::SmallVector<RefTensor> a = args;
    double x0 = a[p.argIndex].data[best];
    auto at = [&](double dx) {
      a[p.argIndex].data[best] = x0 + dx;
      return lossAt(a);
    };
    auto stencil = [&](double h) {
      return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
    };
    // Top-k routing makes the loss piecewise smooth: where a perturbation
    // flips an expert choice, finite differences measure the jump, not the
    // derivative. Two step sizes that agree show the loss is smooth there;
    // otherwise shrink h, and report the coordinate if that never happens.
    std::optional<double> fdValue;
    for (double h = 1e-3; h >= 1e-6 && !fdValue; h /= 10) {
      double scaled = h * std::max(1.0, std::fabs(x0));
      double coarse = stencil(scaled), fine = stencil(scaled / 2);
      // Rounding alone moves a stencil by ~|loss| * 1e-16 / h; a flip by far more.
      double noise = 1e-14 * std::fabs(loss0) / scaled;
      if (std::fabs(coarse - fine) <= 1e-6 * std::fabs(grad.data[best]) + noise)
        fdValue = fine;
    }
    if (!fdValue) {
      std::printf("[%s] %s[%lld]: loss not smooth at any step size (a routing flip), "
                  "skipped\n", model.c_str(), p.name.c_str(), (long long)best);
      ++skipped;
      continue;
    }
    double fd = *fdValue;
    // Relative to the coordinate's gradient, but never below 1e-3 of the
    // model's largest: a stencil's rounding error (~1e-16 |loss| / h) is
    // absolute, so tiny gradients cannot be checked more finely than that.
    double e = std::fabs(fd - grad.data[best]) /
               std::max(std::fabs(grad.data[best]), 1e-3 * largest);
    if (checked++ < 3)
      std::printf("[%s] d loss / d %s[%lld]: autodiff %.12g  finite difference %.12g\n",
                  model.c_str(), p.name.c_str(), (long long)best, grad.data[best], fd);
    if (e > worst)
      worst = e, where = p.name;
  }
  std::printf("[%s] finite differences on %d parameters (%d skipped, not smooth): max "
              "relative error %.3g (%s)\n",
              model.c_str(), checked, skipped, worst, where.c_str());
  EXPECT_GT(checked, 0);
  EXPECT_LE(skipped, checked / 10) << "too many coordinates sit on a routing flip";
  EXPECT_LE(worst, 1e-6) << where;
}

INSTANTIATE_TEST_SUITE_P(Models, TrainStepGolden,
                         ::testing::Values("models/r1-tiny.json", "models/dense-tiny.json",
                                           "test/Reference/specs/r1-variant.json",
                                           "test/Reference/specs/dense-variant.json",
                                           "test/Reference/specs/r1-balance.json"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           std::string s = info.param.substr(info.param.rfind('/') + 1);
                           s = s.substr(0, s.size() - 5);
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

} // namespace
