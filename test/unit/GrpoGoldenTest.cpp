//===- GrpoGoldenTest.cpp - kiln.grpo_loss and its gradient vs PyTorch ----===//
//
// For each GRPO golden (test/Reference/goldens/MODEL.grpo-OPTIONS.json,
// written by models/reference/make_grpo_goldens.py from the independent
// float64 GRPO objective in models/reference/grpo.py):
//  (a) the spec embedded in the golden (train.stage "grpo") is parsed, its
//      @forward built, differentiated by kiln-autodiff mode=gradient, and
//      evaluated on the reference evaluator at the seeded initial parameters
//      with the golden's rollout bound by kiln.input role; the loss and
//      every parameter's gradient statistics must match at 1e-9 relative;
//  (b) each GRPO option the golden sets (clip_high, temperature, beta,
//      aggregation, max_new_tokens) is changed in turn and the loss must
//      move by more than 1e-6: the rollout exercises every option, so a
//      wrong convention for any of them could not pass (a);
//  (c) runtime/driver/GrpoAdvantages.h against the reference's advantages of
//      the golden's rewards, and of the hand cases in advantages.grpo.json.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "passes/Passes.h"
#include "runtime/driver/GrpoAdvantages.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "test/unit/GradientStats.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>

using namespace kiln;
using namespace kiln::reference;
using nlohmann::json;

namespace {

using namespace kiln::test;

constexpr double kTolerance = 1e-9;

std::string goldenDir() { return std::string(KILN_SOURCE_DIR) + "/test/Reference/goldens/"; }

json readGolden(const std::string &file) {
  std::ifstream in(goldenDir() + file);
  EXPECT_TRUE(in) << "missing golden " << goldenDir() + file;
  return in ? json::parse(in) : json();
}

/// Calls `fn(hfName, data, count)` for every stored tensor of a parameter
/// (each expert of a stacked one).
template <typename Fn>
void forEachHfTensor(const ParamSlot &p, const RefTensor &t, Fn fn) {
  int64_t per = t.numElements() / p.numStored();
  for (int64_t e = 0; e < p.numStored(); ++e)
    fn(p.hfName(e), t.data.data() + e * per, per);
}

/// A GRPO spec's @forward with Kiln's seeded parameters and a golden's
/// rollout bound to its arguments.
struct GrpoForward {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  Signature sig;
  llvm::SmallVector<RefTensor> args;

  /// Builds from `specJson`; on failure returns false with `error` set.
  bool build(mlir::MLIRContext &context, const json &specJson, const json &inputs,
             const std::string &where, std::string &error) {
    std::optional<frontend::Spec> spec = frontend::parseSpec(specJson.dump(), where, error);
    if (!spec)
      return false;
    if (spec->train.stage != "grpo") {
      error = where + ": the embedded spec's train.stage is not \"grpo\"";
      return false;
    }
    module = frontend::buildForwardModule(context, *spec);
    if (!module) {
      error = where + ": buildForwardModule failed";
      return false;
    }
    auto forward = module->lookupSymbol<mlir::func::FuncOp>("forward");
    mlir::FailureOr<Signature> read = readSignature(forward);
    if (mlir::failed(read)) {
      error = where + ": @forward's signature is not readable";
      return false;
    }
    sig = *read;
    args.assign(sig.numArgs, RefTensor());
    for (const ParamSlot &p : sig.params)
      args[p.argIndex] = initParameter(p, spec->train.seed);
    for (const InputSlot &in : sig.inputs) {
      if (!inputs.contains(in.role)) {
        error = where + ": the golden has no input '" + in.role + "'";
        return false;
      }
      RefTensor t(in.elementType, in.shape);
      std::vector<double> flat;
      for (const json &v : inputs[in.role])
        if (v.is_array())
          for (const json &x : v)
            flat.push_back(x.get<double>());
        else
          flat.push_back(v.get<double>());
      if (int64_t(flat.size()) != t.numElements()) {
        error = where + ": input '" + in.role + "' has " + std::to_string(flat.size()) +
                " values; @forward expects " + std::to_string(t.numElements());
        return false;
      }
      t.data = std::move(flat);
      args[in.argIndex] = std::move(t);
    }
    return true;
  }

  /// The GRPO loss of @forward.
  mlir::FailureOr<double> loss() {
    Evaluator evaluator(*module);
    mlir::FailureOr<llvm::SmallVector<RefTensor>> out = evaluator.call("forward", args);
    if (mlir::failed(out))
      return mlir::failure();
    return (*out)[0].data[0];
  }
};

class GrpoGolden : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    name = GetParam();
    golden = readGolden(name + ".json");
    ASSERT_FALSE(golden.is_null());
    std::string error;
    ASSERT_TRUE(forward.build(context, golden["spec"], golden["inputs"],
                              goldenDir() + name + ".json", error))
        << error;
  }

  std::string name;
  json golden;
  mlir::MLIRContext context;
  GrpoForward forward;
};

TEST_P(GrpoGolden, LossAndGradientsMatchPyTorch) {
  // The GRPO forward has one loss (no MTP); kiln.grpo_loss is its "main".
  mlir::OwningOpRef<mlir::ModuleOp> m = forward.module->clone();
  KilnAutodiffOptions o;
  o.mode = "gradient";
  o.lossKind = "main";
  mlir::PassManager pm(&context);
  pm.addPass(createKilnAutodiff(o));
  ASSERT_TRUE(mlir::succeeded(pm.run(*m)));
  Evaluator evaluator(*m);
  mlir::FailureOr<llvm::SmallVector<RefTensor>> out = evaluator.call("forward_grad", forward.args);
  ASSERT_TRUE(mlir::succeeded(out));

  const double value = (*out)[0].data[0], want = golden["loss"];
  const double lossError = std::fabs(value - want) / std::fabs(want);
  std::printf("[%s] loss: kiln %.17g  pytorch %.17g  (relative error %.3g)\n", name.c_str(),
              value, want, lossError);
  EXPECT_LE(lossError, kTolerance);

  auto gradFunc = m->lookupSymbol<mlir::func::FuncOp>("forward_grad");
  std::map<unsigned, const RefTensor *> byArg;
  for (unsigned i = 1; i < gradFunc.getNumResults(); ++i) {
    auto param = gradFunc.getResultAttrOfType<mlir::StringAttr>(i, "kiln.param");
    for (const ParamSlot &p : forward.sig.params)
      if (param && p.name == param.getValue())
        byArg[p.argIndex] = &(*out)[i];
  }
  const json &grads = golden["grads"];
  Worst worst;
  int tensors = 0, printed = 0;
  for (const ParamSlot &p : forward.sig.params) {
    RefTensor zeros(p.elementType, p.shape);
    const RefTensor &t = byArg.count(p.argIndex) ? *byArg[p.argIndex] : zeros;
    forEachHfTensor(p, t, [&](const std::string &hf, const double *data, int64_t n) {
      ++tensors;
      ASSERT_TRUE(grads.contains(hf)) << "no golden gradient for " << hf;
      compareStats(hf, statsOf(hf, data, n), grads[hf], worst, worst, worst);
      if (printed < 2 && grads[hf]["first"][0].get<double>() != 0 && ++printed)
        std::printf("[%s] d loss / d %s first values: kiln %.12g %.12g  pytorch %.12g %.12g\n",
                    name.c_str(), hf.c_str(), data[0], data[1],
                    grads[hf]["first"][0].get<double>(), grads[hf]["first"][1].get<double>());
    });
  }
  EXPECT_EQ(tensors, int(grads.size())) << "the golden and @forward list different parameters";
  std::printf("[%s] %d gradient tensors, max relative error %.3g (%s)\n", name.c_str(), tensors,
              worst.error, worst.where.c_str());
  EXPECT_LE(worst.error, kTolerance) << worst.where;
}

TEST_P(GrpoGolden, EveryOptionMovesTheLoss) {
  // A wrong reading of any option (clip-higher taken as symmetric, no
  // temperature, no KL term, another reduction or normaliser) would move the
  // loss this much, far beyond the 1e-9 of LossAndGradientsMatchPyTorch.
  const double want = golden["loss"];
  const json &g = golden["grpo"];
  std::vector<std::pair<std::string, json>> changes;
  if (g["clip_high"] != g["clip_low"])
    changes.push_back({"clip_high", g["clip_low"]});
  changes.push_back({"clip_low", g["clip_low"].get<double>() / 2});
  if (g["temperature"].get<double>() != 1.0)
    changes.push_back({"temperature", 1.0});
  if (g["beta"].get<double>() > 0)
    changes.push_back({"beta", 0.0});
  for (const char *a : {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"})
    if (g["aggregation"] != a)
      changes.push_back({"aggregation", a});
  if (g["aggregation"] == "seq-mean-token-sum-norm")
    changes.push_back({"max_new_tokens", g["max_new_tokens"].get<int64_t>() + 1});
  double smallest = INFINITY;
  std::string which;
  for (const auto &[key, value] : changes) {
    json spec = golden["spec"];
    spec["train"]["grpo"][key] = value;
    GrpoForward changed;
    std::string error;
    ASSERT_TRUE(changed.build(context, spec, golden["inputs"], name + " with " + key, error))
        << error;
    mlir::FailureOr<double> loss = changed.loss();
    ASSERT_TRUE(mlir::succeeded(loss));
    const double moved = std::fabs(*loss - want) / std::fabs(want);
    std::printf("[%s] train.grpo.%s = %s: loss %.12g (golden %.12g), moved %.3g\n", name.c_str(),
                key.c_str(), value.dump().c_str(), *loss, want, moved);
    EXPECT_GT(moved, 1e-6) << "train.grpo." << key << " does not change the loss";
    if (moved < smallest)
      smallest = moved, which = key;
  }
  std::printf("[%s] %zu option changes, smallest relative move %.3g (%s)\n", name.c_str(),
              changes.size(), smallest, which.c_str());
}

TEST_P(GrpoGolden, AdvantagesMatchPyTorch) {
  const json &g = golden["grpo"];
  std::vector<double> rewards = golden["rewards"], want = golden["advantages_f64"], got;
  std::string error;
  ASSERT_TRUE(driver::groupAdvantages(rewards, g["samples_per_prompt"],
                                      g["advantage"] == "group-norm", g["advantage_eps"], got,
                                      error))
      << error;
  ASSERT_EQ(got.size(), want.size());
  Worst worst;
  for (size_t i = 0; i < got.size(); ++i) {
    worst.check(got[i], want[i], std::max(std::fabs(want[i]), 1e-300),
                "advantage " + std::to_string(i));
    // The batch holds them as f32.
    EXPECT_EQ(double(float(got[i])), golden["inputs"]["advantages"][i].get<double>()) << i;
  }
  std::printf("[%s] %s advantages of rewards %s: kiln %.17g %.17g  pytorch %.17g %.17g; max "
              "relative error %.3g\n",
              name.c_str(), g["advantage"].get<std::string>().c_str(),
              golden["rewards"].dump().c_str(), got[0], got[1], want[0], want[1], worst.error);
  EXPECT_LE(worst.error, 1e-14) << worst.where;
}

INSTANTIATE_TEST_SUITE_P(
    Models, GrpoGolden,
    ::testing::Values("r1-tiny.grpo-token-mean", "r1-tiny.grpo-seq-mean-token-mean",
                      "r1-tiny.grpo-seq-mean-token-sum-norm", "r1-tiny.grpo-dr-grpo",
                      "dense-tiny.grpo-token-mean", "dense-tiny.grpo-seq-mean-token-mean",
                      "dense-tiny.grpo-seq-mean-token-sum-norm", "dense-tiny.grpo-dr-grpo"),
    [](const ::testing::TestParamInfo<std::string> &info) {
      std::string s = info.param;
      for (char &c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)))
          c = '_';
      return s;
    });

TEST(GrpoAdvantages, HandCasesMatchPyTorch) {
  json golden = readGolden("advantages.grpo.json");
  ASSERT_FALSE(golden.is_null());
  Worst worst;
  int values = 0;
  for (const json &c : golden["cases"]) {
    std::vector<double> rewards = c["rewards"], want = c["advantages"], got;
    std::string error;
    ASSERT_TRUE(driver::groupAdvantages(rewards, c["group_size"], c["mode"] == "group-norm",
                                        c["eps"], got, error))
        << error;
    ASSERT_EQ(got.size(), want.size());
    double scale = 0;
    for (double w : want)
      scale = std::max(scale, std::fabs(w));
    for (size_t i = 0; i < got.size(); ++i, ++values)
      worst.check(got[i], want[i], std::max(scale, 1e-300),
                  "G=" + c["group_size"].dump() + " " + c["mode"].get<std::string>() + " [" +
                      std::to_string(i) + "]");
    std::printf("G=%s %s eps %s: kiln %.17g %.17g  pytorch %.17g %.17g\n",
                c["group_size"].dump().c_str(), c["mode"].get<std::string>().c_str(),
                c["eps"].dump().c_str(), got[0], got[1], want[0], want[1]);
  }
  std::printf("%d advantages of %zu cases, max error relative to the case's largest %.3g (%s)\n",
              values, golden["cases"].size(), worst.error, worst.where.c_str());
  EXPECT_LE(worst.error, 1e-14) << worst.where;
}

TEST(GrpoAdvantages, RejectsWhatItCannotCompute) {
  std::vector<double> out{42};
  std::string error;
  EXPECT_FALSE(driver::groupAdvantages({1, 2, 3}, 2, true, 1e-4, out, error));
  EXPECT_NE(error.find("do not split into groups of 2"), std::string::npos) << error;
  EXPECT_FALSE(driver::groupAdvantages({1, 2}, 1, true, 1e-4, out, error));
  EXPECT_NE(error.find("at least 2"), std::string::npos) << error;
  EXPECT_FALSE(driver::groupAdvantages({1, 2}, 2, true, -1, out, error));
  EXPECT_NE(error.find("eps"), std::string::npos) << error;
  EXPECT_FALSE(driver::groupAdvantages({1, NAN}, 2, false, 1e-4, out, error));
  EXPECT_NE(error.find("row 1"), std::string::npos) << error;
  EXPECT_EQ(out, std::vector<double>{42}) << "out changed on failure";
}

} // namespace
