//===- Parameters.h - parameters and inputs of a kiln function ------------===//
//
// The frontend marks each argument of @forward with what it is:
//   kiln.param = "model.layers.3.self_attn.o_proj.weight"   a parameter, by HF name
//   kiln.param = "model.layers.3.mlp.experts.*.up_proj.weight"
//                  stacked experts: dim 0 indexes the expert, "*" its number
//   kiln.init = "normal" | "ones" | "zeros", kiln.init_std = 0.02
//   kiln.input = "tokens" | "targets" | "loss_mask"
// Checkpoints hold one tensor per HF name with HF's shape, so a Kiln
// checkpoint loads into the Hugging Face model with no converter: stacked
// experts are split on write and stacked again on read.
//
// Initialisation is seeded and platform-independent: each HF tensor draws
// from its own splitmix64 stream keyed by (seed, HF name), normal values via
// Box-Muller, so a parameter's initial value does not depend on the order of
// arguments or on how experts are stacked.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_PARAMETERS_H
#define KILN_REFERENCE_PARAMETERS_H

#include "dialects/kiln/reference/RefTensor.h"

#include "runtime/init/SeededRng.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>

namespace kiln::reference {

struct ParamSlot {
  unsigned argIndex = 0;
  std::string name; ///< HF name; for stacked experts a pattern with one "*"
  bool stacked = false;
  llvm::SmallVector<int64_t, 4> shape; ///< the IR shape (stacked: [experts, ...])
  mlir::Type elementType;
  std::string init = "normal";
  double initStd = 0.02;
  bool trainable = true;

  /// HF name of expert `e` ("*" replaced); the name itself when not stacked.
  std::string hfName(int64_t e) const;
  /// HF shape of one stored tensor (the IR shape without the expert dim).
  std::vector<int64_t> hfShape() const;
  int64_t numStored() const { return stacked ? shape[0] : 1; }
};

struct InputSlot {
  unsigned argIndex = 0;
  std::string role; ///< tokens | targets | loss_mask
  llvm::SmallVector<int64_t, 4> shape;
  mlir::Type elementType;
};

struct Signature {
  std::vector<ParamSlot> params;
  std::vector<InputSlot> inputs;
  unsigned numArgs = 0;
  const InputSlot *input(llvm::StringRef role) const;
};

/// Reads the argument attributes of `func`; every argument must be a
/// parameter or an input, or the function is rejected with an error at it.
mlir::FailureOr<Signature> readSignature(mlir::func::FuncOp func);

/// The seeded initial value of a parameter (all experts when stacked).
RefTensor initParameter(const ParamSlot &param, uint64_t seed);

/// Writes every parameter under its HF name(s), as f32, atomically.
bool saveParameters(const std::string &path, const Signature &sig,
                    llvm::ArrayRef<RefTensor> args, std::string &error);

/// Reads every parameter from a safetensors file into `args` (sized to the
/// function's arity). Missing tensors, wrong shapes and tensors the model does
/// not have are errors that name the tensor.
bool loadParameters(const std::string &path, const Signature &sig,
                    llvm::MutableArrayRef<RefTensor> args, std::string &error);

/// The seeded init generator, shared with the generated executables.
using SeededRng = kiln::init::SeededRng;

} // namespace kiln::reference

#endif // KILN_REFERENCE_PARAMETERS_H
