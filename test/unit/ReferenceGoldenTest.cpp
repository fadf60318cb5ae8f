//===- ReferenceGoldenTest.cpp - evaluator vs the independent PyTorch reference
//
// For each model under models/ with goldens (test/Reference/goldens/), builds
// @forward from the spec, initialises the parameters from the spec's seed (the
// same f32 values scripts/make-goldens.sh saved for PyTorch), runs the
// reference evaluator on the committed token batch and compares the loss, the
// MTP losses and the logits with what models/reference/ computed in float64.
// Prints the first values compared and the largest relative error.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

using namespace kiln;
using namespace kiln::reference;

namespace {

constexpr double kTolerance = 1e-9;

double relativeError(double got, double want) {
  return std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
}

struct Comparison {
  std::string what;
  double maxError = 0;
  void check(double got, double want) { maxError = std::max(maxError, relativeError(got, want)); }
};

/// `specPath` is relative to the repository root; goldens are named after it.
void compareModel(const std::string &specPath) {
  std::string root = KILN_SOURCE_DIR;
  std::string model = specPath.substr(specPath.rfind('/') + 1);
  model = model.substr(0, model.size() - 5);
  std::string error;
  std::optional<frontend::Spec> spec = frontend::loadSpec(root + "/" + specPath, error);
  ASSERT_TRUE(spec) << error;

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *spec);
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*module)));
  auto forward = module->lookupSymbol<mlir::func::FuncOp>("forward");
  mlir::FailureOr<Signature> sig = readSignature(forward);
  ASSERT_TRUE(mlir::succeeded(sig));

  llvm::SmallVector<RefTensor> args(sig->numArgs);
  for (const ParamSlot &p : sig->params)
    args[p.argIndex] = initParameter(p, spec->train.seed);
  std::string goldens = root + "/test/Reference/goldens/" + model;
  TokenBatch batch;
  ASSERT_TRUE(readBatchJson(goldens + ".tokens.json", spec->train.microBatch,
                            spec->train.seqLen, spec->model.vocabSize, batch, error))
      << error;
  ASSERT_TRUE(bindNextTokenInputs(batch, *sig, args, error)) << error;

  Evaluator evaluator(*module);
  mlir::FailureOr<llvm::SmallVector<RefTensor>> results = evaluator.call("forward", args);
  ASSERT_TRUE(mlir::succeeded(results));

  std::ifstream in(goldens + ".golden.json");
  ASSERT_TRUE(in) << "missing golden " << goldens << ".golden.json";
  nlohmann::json golden = nlohmann::json::parse(in);

  const RefTensor &logits = (*results)[1];
  std::printf("[%s] loss: kiln %.17g  pytorch %.17g\n", model.c_str(), (*results)[0].data[0],
              golden["loss"].get<double>());
  std::printf("[%s] logits[0..3]: kiln %.15g %.15g %.15g %.15g\n", model.c_str(),
              logits.data[0], logits.data[1], logits.data[2], logits.data[3]);
  std::printf("[%s]            pytorch %.15g %.15g %.15g %.15g\n", model.c_str(),
              golden["logits_first"][0].get<double>(), golden["logits_first"][1].get<double>(),
              golden["logits_first"][2].get<double>(), golden["logits_first"][3].get<double>());

  Comparison loss{"loss"}, first{"logits_first"}, sums{"logits sums"}, mtp{"mtp"};
  loss.check((*results)[0].data[0], golden["loss"].get<double>());
  ASSERT_EQ(golden["logits_first"].size(), 64u);
  for (size_t i = 0; i < 64; ++i)
    first.check(logits.data[i], golden["logits_first"][i].get<double>());
  double sum = 0, abs = 0;
  for (double v : logits.data)
    sum += v, abs += std::fabs(v);
  // The sum of signed logits cancels; compare it relative to the absolute sum.
  sums.check(abs, golden["logits_abs_sum"].get<double>());
  EXPECT_LE(std::fabs(sum - golden["logits_sum"].get<double>()) / abs, kTolerance);

  size_t depth = golden["mtp_losses"].size();
  ASSERT_EQ(results->size(), 2 + 2 * depth) << "MTP depth differs from the reference";
  for (size_t k = 0; k < depth; ++k) {
    mtp.check((*results)[2 + 2 * k].data[0], golden["mtp_losses"][k].get<double>());
    std::printf("[%s] mtp_loss_%zu: kiln %.17g  pytorch %.17g\n", model.c_str(), k + 1,
                (*results)[2 + 2 * k].data[0], golden["mtp_losses"][k].get<double>());
    for (size_t i = 0; i < 64; ++i)
      mtp.check((*results)[3 + 2 * k].data[i], golden["mtp_logits_first"][k][i].get<double>());
  }
  for (const Comparison *c : {&loss, &first, &sums, &mtp}) {
    std::printf("[%s] max relative error %-13s %.3g\n", model.c_str(), c->what.c_str(),
                c->maxError);
    EXPECT_LE(c->maxError, kTolerance) << model << ": " << c->what;
  }
}

TEST(ReferenceGolden, R1Tiny) { compareModel("models/r1-tiny.json"); }
TEST(ReferenceGolden, DenseTiny) { compareModel("models/dense-tiny.json"); }
// q_lora 0, softmax scores, group-limited greedy, no YaRN, MTP depth 2,
// moe_layer_freq 2, 2 shared experts, label smoothing.
TEST(ReferenceGolden, R1Variant) { compareModel("test/Reference/specs/r1-variant.json"); }
// Untied head, explicit head_dim, 6 query heads on 1 kv head, label smoothing.
TEST(ReferenceGolden, DenseVariant) { compareModel("test/Reference/specs/dense-variant.json"); }

} // namespace
