//===- HostEmitter.h - Kernel-level module -> one C++ training program ----===//
//
// Emits the kernel-level step (after convert-kiln-to-kernel,
// kiln-fuse-elementwise and kiln-plan-arena) as a single readable C++ file:
// the model description the driver needs (runtime/driver/TrainStep.h), the
// step as a straight list of kernel calls and fused loops over named arena
// buffers, and a main() that hands both to kiln::driver::trainMain.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_HOSTEMITTER_H
#define KILN_CODEGEN_HOSTEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cstdint>
#include <vector>
#include <string>
#include <utility>

namespace kiln::codegen {

/// What the emitted program needs from the spec (the module holds the rest).
struct HostProgramInfo {
  std::string specPath;        ///< for the header comment
  std::string specName;        ///< e.g. "r1-tiny"
  std::string specFingerprint; ///< see specFingerprint()
  int64_t vocabSize = 0;
  bool sft = false;
  uint64_t defaultSteps = 1;
  uint64_t defaultSeed = 0;
  /// ModelDesc::modelFlopsPerToken: 3x the forward FLOPs per token
  /// (frontend/Summary.h), main model and MTP modules.
  double modelFlopsPerToken = 0;
  /// train.precision ("fp32", "bf16", "fp16", "fp8"): the CUDA program's
  /// peak for MFU.
  std::string precision = "fp32";
  /// train.curriculum: (until_step, max_digits, max_ops) per stage.
  std::vector<std::array<int64_t, 3>> curriculum;
};

/// The decode program emitted next to the step (frontend/DecodeGen.cpp),
/// each function a planned kernel-level module with the entry @decode:
/// prefill (a chunk of promptLen tokens per row) and step (one token).
struct DecodeModules {
  mlir::ModuleOp prefill, step;
  int64_t promptLen = 0, maxLen = 0;
};

/// GRPO (train.stage "grpo"): train.grpo's options as the driver's
/// GrpoDesc fields (runtime/driver/GrpoProgram.h), in their order, and the
/// planned score program (entry @score).
struct GrpoProgram {
  std::string descFields; ///< "/*promptsPerStep=*/8, ..." without the score
  mlir::ModuleOp score;
};

/// train.batch_rampup: the schedule (global rows) and the planned
/// kernel-level module of each smaller global batch, ascending, each with
/// the step function of the same name as the main program's.
struct RampupPrograms {
  int64_t startRows = 0, incrementRows = 0, samples = 0;
  std::vector<std::pair<int64_t, mlir::ModuleOp>> programs; ///< (global rows, module)
};

/// Writes the C++ program for the step function `entry` of `module`, with
/// `decode` its decode program (runtime/driver/DecodeProgram.h), which
/// `train --generate` runs, and with `grpo` the score program and GRPO
/// options of a GRPO step, and with `rampup` the programs of a batch-size
/// rampup's smaller batches. Fails with an error on the offending op or
/// argument if a module is not a planned kernel-level step.
mlir::LogicalResult emitHostProgram(mlir::ModuleOp module, llvm::StringRef entry,
                                    const HostProgramInfo &info, llvm::raw_ostream &os,
                                    const DecodeModules *decode = nullptr,
                                    const GrpoProgram *grpo = nullptr,
                                    const RampupPrograms *rampup = nullptr);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_HOSTEMITTER_H
