//===- Evaluate.cpp - kilnc --eval / --save-params / --save-batch ---------===//

#include "tools/kilnc/Evaluate.h"
#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"

#include <functional>

using namespace mlir;

namespace kiln {

using namespace reference;

/// Writes `text` to `path` through a temporary file renamed into place, so a
/// failure never leaves a partial file.
static bool writeFileAtomically(const std::string &path, const std::string &text) {
  std::error_code ec;
  llvm::ToolOutputFile out(path + ".tmp", ec, llvm::sys::fs::OF_Text);
  if (ec) {
    llvm::errs() << "kilnc: error: cannot write " << path << ": " << ec.message() << "\n";
    return false;
  }
  out.os() << text;
  out.os().close();
  if (out.os().has_error() || (ec = llvm::sys::fs::rename(path + ".tmp", path))) {
    llvm::errs() << "kilnc: error: cannot write " << path << "\n";
    return false;
  }
  out.keep();
  return true;
}

static std::string rowsJson(int64_t rows, int64_t seq,
                            const std::function<std::string(int64_t)> &value) {
  std::string s = "[";
  for (int64_t r = 0; r < rows; ++r) {
    s += r ? ",\n [" : "[";
    for (int64_t i = 0; i < seq; ++i)
      s += (i ? ", " : "") + value(r * seq + i);
    s += "]";
  }
  return s + "]";
}

/// The batch as kilnc --tokens reads it back: plain rows, or with the mask.
static std::string batchJson(const TokenBatch &batch) {
  std::string tokens = rowsJson(batch.rows, batch.seqLen,
                                [&](int64_t i) { return std::to_string(batch.ids[i]); });
  if (batch.learn.empty())
    return tokens + "\n";
  std::string mask = rowsJson(batch.rows, batch.seqLen, [&](int64_t i) {
    return std::to_string(int(batch.learn[i]));
  });
  return "{\"tokens\": " + tokens + ",\n \"loss_mask\": " + mask + "}\n";
}

static std::string number(double v) {
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format("%.17g", v);
  return s;
}

/// Losses plus the first 64 logits and their sums, the evidence the golden
/// tests compare.
static std::string evalJson(func::FuncOp forward, ArrayRef<RefTensor> results) {
  std::string s = "{";
  for (auto [i, r] : llvm::enumerate(results)) {
    auto role = forward.getResultAttrOfType<StringAttr>(i, "kiln.result");
    std::string name = role ? role.str() : "result_" + std::to_string(i);
    if (i)
      s += ", ";
    if (r.numElements() == 1) {
      s += "\"" + name + "\": " + number(r.data[0]);
      continue;
    }
    double sum = 0, abs = 0;
    for (double v : r.data)
      sum += v, abs += std::fabs(v);
    s += "\"" + name + "_first\": [";
    for (int64_t j = 0; j < std::min<int64_t>(64, r.numElements()); ++j)
      s += (j ? ", " : "") + number(r.data[j]);
    s += "], \"" + name + "_sum\": " + number(sum) + ", \"" + name +
         "_abs_sum\": " + number(abs);
  }
  return s + "}\n";
}

/// Writes the gradients @forward_grad returned under their parameters' HF
/// names (stacked experts split), as f32.
static bool saveGradients(const std::string &path, ModuleOp gradModule,
                          ArrayRef<RefTensor> results, std::string &error) {
  auto gradFunc = gradModule.lookupSymbol<func::FuncOp>("forward_grad");
  Signature sig;
  for (unsigned i = 1; i < gradFunc.getNumResults(); ++i) {
    auto name = gradFunc.getResultAttrOfType<StringAttr>(i, "kiln.param");
    ParamSlot slot;
    slot.argIndex = i;
    slot.name = name.str();
    slot.stacked = name.getValue().count('*') == 1;
    slot.shape.assign(results[i].shape.begin(), results[i].shape.end());
    slot.elementType = results[i].elementType;
    sig.params.push_back(slot);
  }
  return saveParameters(path, sig, results, error);
}

bool runEvaluation(ModuleOp module, const frontend::Spec &spec, const EvalOptions &opts,
                   llvm::raw_ostream &os) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward) {
    llvm::errs() << "kilnc: error: the module has no @forward\n";
    return false;
  }
  FailureOr<Signature> sig = readSignature(forward);
  if (failed(sig))
    return false;
  std::string error;
  SmallVector<RefTensor> args(sig->numArgs);
  if (!opts.paramsPath.empty()) {
    if (!loadParameters(opts.paramsPath, *sig, args, error)) {
      llvm::errs() << "kilnc: error: " << error << "\n";
      return false;
    }
  } else {
    for (const ParamSlot &p : sig->params)
      args[p.argIndex] = initParameter(p, opts.seed);
  }

  TokenBatch batch;
  int64_t rows = spec.train.microBatch, seq = spec.train.seqLen;
  if (!opts.tokensPath.empty()) {
    if (!readBatchJson(opts.tokensPath, rows, seq, spec.model.vocabSize, batch, error,
                       /*requireMask=*/spec.train.stage == "sft")) {
      llvm::errs() << "kilnc: error: " << error << "\n";
      return false;
    }
  } else {
    batch = seededBatch(rows, seq, spec.model.vocabSize, opts.seed);
    if (spec.train.stage == "sft") {
      // A seeded SFT batch: the first half of each row is the prompt.
      batch.learn.assign(rows * seq, 1.0);
      for (int64_t r = 0; r < rows; ++r)
        std::fill_n(batch.learn.begin() + r * seq, seq / 2, 0.0);
    }
  }
  if (!bindNextTokenInputs(batch, *sig, args, error)) {
    llvm::errs() << "kilnc: error: " << error << "\n";
    return false;
  }

  if (!opts.saveParams.empty() &&
      !saveParameters(opts.saveParams, *sig, args, error)) {
    llvm::errs() << "kilnc: error: " << error << "\n";
    return false;
  }
  if (!opts.saveBatch.empty() && !writeFileAtomically(opts.saveBatch, batchJson(batch)))
    return false;
  if (!opts.evaluate)
    return true;

  Evaluator evaluator(module, opts.rounding);
  FailureOr<SmallVector<RefTensor>> results = evaluator.call("forward", args);
  if (failed(results))
    return false;
  std::optional<double> gradLoss;
  if (opts.gradModule) {
    Evaluator gradEvaluator(opts.gradModule, opts.rounding);
    FailureOr<SmallVector<RefTensor>> grads = gradEvaluator.call("forward_grad", args);
    if (failed(grads))
      return false;
    gradLoss = (*grads)[0].data[0];
    if (!opts.saveGrads.empty() &&
        !saveGradients(opts.saveGrads, opts.gradModule, *grads, error)) {
      llvm::errs() << "kilnc: error: " << error << "\n";
      return false;
    }
  }
  for (auto [i, r] : llvm::enumerate(*results)) {
    auto role = forward.getResultAttrOfType<StringAttr>(i, "kiln.result");
    if (r.numElements() != 1 || !role)
      continue;
    // The printed loss is the one whose gradient --save-grads writes.
    double value = role.getValue() == "loss" && gradLoss ? *gradLoss : r.data[0];
    os << role.getValue() << " = " << llvm::format("%.10f", value) << "\n";
  }
  if (!opts.evalJson.empty() && !writeFileAtomically(opts.evalJson, evalJson(forward, *results)))
    return false;
  return true;
}

} // namespace kiln
