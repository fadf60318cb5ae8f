//===- DecodeProgramTest.cpp - @decode vs @forward on the reference evaluator
//
// The decode program (frontend/DecodeGen.cpp) must give the training
// forward's logits on the same tokens. For each model family this builds
// @forward for rows x max_len and @decode for a prefill chunk and for one
// token, on the same seeded parameters, and checks, in f64:
//   - prefill of every row's first `prompt` tokens = forward's first
//     `prompt` positions;
//   - one-token steps after it, each row at its own position, = forward's
//     logits at that position, for every position to max_len;
//   - rows of different prompt lengths in one batch: a row prefilled with
//     padding past its prompt, then stepped from its own length, still gives
//     forward's logits (the padding's cache entries are overwritten before
//     they are read).
// Prints the first logits compared and the worst relative error.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/DecodeGen.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using namespace kiln;
using namespace kiln::reference;

namespace {

constexpr int64_t kRows = 3, kMaxLen = 10, kPrompt = 5;
constexpr double kTolerance = 1e-9;

struct DecodeCase {
  const char *spec;
};

class DecodeProgramTest : public ::testing::TestWithParam<DecodeCase> {};

/// Evaluates `module`'s @decode on `params` (by HF name), the chunk's tokens
/// and starts, and `caches` (updated in place); returns the logits.
RefTensor runDecode(mlir::ModuleOp module, const llvm::StringMap<RefTensor> &params,
                    const RefTensor &tokens, const RefTensor &start,
                    std::vector<RefTensor> &caches) {
  auto decode = module.lookupSymbol<mlir::func::FuncOp>(frontend::kDecodeEntry);
  llvm::SmallVector<RefTensor> args;
  size_t nextCache = 0;
  for (unsigned i = 0; i < decode.getNumArguments(); ++i) {
    if (auto name = decode.getArgAttrOfType<mlir::StringAttr>(i, "kiln.param"))
      args.push_back(params.lookup(name.getValue()));
    else if (auto input = decode.getArgAttrOfType<mlir::StringAttr>(i, "kiln.input"))
      args.push_back(input.getValue() == "tokens" ? tokens : start);
    else
      args.push_back(caches[nextCache++]);
  }
  EXPECT_EQ(nextCache, caches.size());
  Evaluator evaluator(module);
  mlir::FailureOr<llvm::SmallVector<RefTensor>> results =
      evaluator.call(frontend::kDecodeEntry, args);
  EXPECT_TRUE(mlir::succeeded(results));
  if (mlir::failed(results))
    return {};
  for (size_t c = 0; c < caches.size(); ++c)
    caches[c] = (*results)[1 + c];
  return (*results)[0];
}

TEST_P(DecodeProgramTest, LogitsEqualTheForwardAtEveryPosition) {
  std::string error;
  std::optional<frontend::Spec> loaded =
      frontend::loadSpec(std::string(KILN_SOURCE_DIR) + "/" + GetParam().spec, error);
  ASSERT_TRUE(loaded) << error;
  frontend::Spec spec = *loaded;
  spec.train.microBatch = kRows;
  spec.train.seqLen = kMaxLen;
  spec.train.generate = {kRows, kPrompt, kMaxLen};
  const int64_t V = spec.model.vocabSize;

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> forwardModule = frontend::buildForwardModule(context, spec);
  mlir::OwningOpRef<mlir::ModuleOp> prefill =
      frontend::buildDecodeModule(context, spec, kPrompt);
  mlir::OwningOpRef<mlir::ModuleOp> step = frontend::buildDecodeModule(context, spec, 1);
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*forwardModule)));
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*prefill)));
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*step)));

  // The forward on seeded parameters and a fixed token batch.
  auto forward = forwardModule->lookupSymbol<mlir::func::FuncOp>("forward");
  mlir::FailureOr<Signature> sig = readSignature(forward);
  ASSERT_TRUE(mlir::succeeded(sig));
  llvm::SmallVector<RefTensor> args(sig->numArgs);
  llvm::StringMap<RefTensor> params;
  for (const ParamSlot &p : sig->params) {
    args[p.argIndex] = initParameter(p, spec.train.seed);
    params[p.name] = args[p.argIndex];
  }
  mlir::Builder b(&context);
  RefTensor tokens(b.getI32Type(), {kRows, kMaxLen});
  for (int64_t i = 0; i < tokens.numElements(); ++i)
    tokens.data[i] = double((i * 37 + 11) % V);
  for (const InputSlot &in : sig->inputs)
    args[in.argIndex] = in.role == "loss_mask" ? RefTensor(b.getF32Type(), in.shape, 1.0)
                                               : tokens;
  Evaluator evaluator(*forwardModule);
  mlir::FailureOr<llvm::SmallVector<RefTensor>> out = evaluator.call("forward", args);
  ASSERT_TRUE(mlir::succeeded(out));
  const RefTensor &want = (*out)[1]; // [rows, maxLen, V]

  // Row r's prompt is kPrompt - r tokens long; prefill sees padding (0)
  // past it.
  auto promptLen = [](int64_t r) { return kPrompt - r; };
  auto decode = prefill->lookupSymbol<mlir::func::FuncOp>(frontend::kDecodeEntry);
  std::vector<RefTensor> caches;
  for (unsigned i = 0; i < decode.getNumArguments(); ++i)
    if (decode.getArgAttr(i, "kiln.cache"))
      caches.emplace_back(b.getF32Type(),
                          llvm::cast<mlir::ShapedType>(decode.getArgument(i).getType()).getShape());
  ASSERT_FALSE(caches.empty());
  RefTensor chunk(b.getI32Type(), {kRows, kPrompt}), zeros(b.getI32Type(), {kRows});
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t c = 0; c < promptLen(r); ++c)
      chunk.data[r * kPrompt + c] = tokens.data[r * kMaxLen + c];
  RefTensor got = runDecode(*prefill, params, chunk, zeros, caches);
  ASSERT_EQ(got.numElements(), kRows * kPrompt * V);

  double worst = 0;
  int64_t compared = 0;
  auto compare = [&](double g, double w) {
    worst = std::max(worst, std::fabs(g - w) / std::max(std::fabs(w), 1e-6));
    ++compared;
  };
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t c = 0; c < promptLen(r); ++c)
      for (int64_t v = 0; v < V; ++v)
        compare(got.data[(r * kPrompt + c) * V + v], want.data[(r * kMaxLen + c) * V + v]);
  std::printf("[%s] prefill logits[0, 0, 0..2]: decode %.15g %.15g %.15g, forward %.15g %.15g "
              "%.15g\n",
              GetParam().spec, got.data[0], got.data[1], got.data[2], want.data[0], want.data[1],
              want.data[2]);

  // One token per row per step, each row from its own length.
  std::vector<int64_t> position(kRows);
  for (int64_t r = 0; r < kRows; ++r)
    position[r] = promptLen(r);
  while (true) {
    bool any = false;
    RefTensor one(b.getI32Type(), {kRows, 1}), start(b.getI32Type(), {kRows});
    for (int64_t r = 0; r < kRows; ++r) {
      // A row past the end re-feeds its last position (as the driver does).
      int64_t p = std::min(position[r], kMaxLen - 1);
      any |= position[r] < kMaxLen;
      one.data[r] = tokens.data[r * kMaxLen + p];
      start.data[r] = double(p);
    }
    if (!any)
      break;
    RefTensor logits = runDecode(*step, params, one, start, caches);
    ASSERT_EQ(logits.numElements(), kRows * V);
    for (int64_t r = 0; r < kRows; ++r) {
      if (position[r] >= kMaxLen)
        continue;
      for (int64_t v = 0; v < V; ++v)
        compare(logits.data[r * V + v], want.data[(r * kMaxLen + position[r]) * V + v]);
      ++position[r];
    }
  }
  std::printf("[%s] %lld logits compared, worst relative error %.3g (limit %.0e)\n",
              GetParam().spec, (long long)compared, worst, kTolerance);
  EXPECT_EQ(compared, kRows * kMaxLen * V);
  EXPECT_LE(worst, kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Models, DecodeProgramTest,
                         ::testing::Values(DecodeCase{"models/r1-tiny.json"},
                                           DecodeCase{"models/dense-tiny.json"}),
                         [](const auto &info) {
                           std::string name = info.param.spec;
                           name = name.substr(7, name.size() - 12);
                           for (char &c : name)
                             if (c == '-')
                               c = '_';
                           return name;
                         });

} // namespace
