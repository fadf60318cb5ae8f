//===- Evaluate.h - kilnc --eval / --save-params / --save-batch -----------===//

#ifndef KILN_TOOLS_KILNC_EVALUATE_H
#define KILN_TOOLS_KILNC_EVALUATE_H

#include "dialects/kiln/reference/Evaluator.h"
#include "frontend/Spec.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace kiln {

struct EvalOptions {
  uint64_t seed = 0;
  std::string paramsPath;   ///< load parameters instead of initialising them
  std::string tokensPath;   ///< JSON token rows instead of the seeded batch
  std::string saveParams;   ///< write the (initial) parameters here
  std::string saveBatch;    ///< write the token batch here as JSON
  std::string evalJson;     ///< write losses and logits statistics here
  std::string saveGrads;    ///< write the loss gradients here (HF names)
  bool evaluate = false;
  /// The evaluator's arithmetic (ideal f64, or as-typed).
  reference::Rounding rounding = reference::Rounding::Ideal;
  /// A module holding @forward_grad (kiln-autodiff mode=gradient) when the
  /// printed loss is the total loss or gradients are saved; null otherwise.
  mlir::ModuleOp gradModule;
};

/// Runs what `opts` asks for on @forward of `module`. Prints "loss = X" (and
/// "mtp_loss_k = X") to `os` when evaluating. Returns false after printing an
/// error to stderr; it never leaves a partial output file behind.
bool runEvaluation(mlir::ModuleOp module, const frontend::Spec &spec,
                   const EvalOptions &opts, llvm::raw_ostream &os);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_EVALUATE_H
