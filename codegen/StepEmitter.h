//===- StepEmitter.h - The emitter of one kernel-level function (private) -===//
//
// Private to codegen/: the Emitter that HostEmitter.cpp (training steps,
// main()) and HostProgramsEmitter.cpp (decode and score programs over the
// model's parameters by name) share. It renders one planned kernel-level
// function as C++ functions of at most kKernelsPerPart kernels over the
// buffers a driver struct names.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_STEPEMITTER_H
#define KILN_CODEGEN_STEPEMITTER_H

#include "codegen/HostEmitter.h"
#include "codegen/HostLaunches.h"
#include "dialects/kernel/KernelDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"

#include <string>
#include <utility>

namespace kiln::codegen::detail {

using namespace mlir;
using kiln::kernel::ElementwiseOp;

/// "model.layers.1.mlp.gate" for a call-site location from inlining.
std::string describeLoc(Location loc);
/// "[4, 32, 64]".
std::string shapeString(MemRefType type);
/// `p_model_layers_0_mlp_up_proj_weight` for "model.layers.0.mlp.up_proj.weight"
/// (stacked experts drop the '*').
std::string identifierFor(StringRef prefix, StringRef hfName);

struct ArgRoles {
  SmallVector<unsigned> params;    ///< arg numbers, ModelDesc::params order
  SmallVector<unsigned> trainable; ///< arg numbers of trainable params
};

/// Kernels per emitted function (see Emitter::emitStep).
constexpr int64_t kKernelsPerPart = 128;

class Emitter {
public:
  /// `stage` of `stages`: the pipeline stage whose program `step` is (0 of
  /// 1 without pipeline parallelism).
  /// A stage that reads neither tokens nor targets (a middle stage) trains
  /// `batchShape`'s rows, those of stage 0.
  Emitter(func::FuncOp step, const HostProgramInfo &info, int64_t stage, int64_t stages,
          std::pair<int64_t, int64_t> batchShape)
      : step(step), info(info), stage(stage), stages(stages), batch(batchShape.first),
        seqLen(batchShape.second) {}

  /// The model description and the step functions, into `code`.
  LogicalResult emit(std::string &code);
  /// A program over the model's parameters by name (not the step's state):
  /// a decode program's function (frontend/DecodeGen.cpp) over
  /// runtime/driver/DecodeProgram.h's DecodeBuffers, or the score program
  /// over ScoreProgram.h's ScoreBuffers, named `function`, into `code`; its
  /// parameter names and caches are recorded for the program's descriptor.
  LogicalResult emitNamedParamProgram(StringRef function, StringRef buffersType,
                                      std::string &code);
  SmallVector<std::string> paramNames, cacheNames;
  /// The ModelDesc points at `kRampup` (train.batch_rampup's schedule and
  /// smaller programs, emitted before it).
  bool pointsAtRampup = false;
  /// Which kernel library the launches call (HostLaunches.h). For CUDA the
  /// step's parts run their launches on kiln::cuda::stepStream(), fused
  /// elementwise loops become `__global__` kernels (collected in
  /// `deviceKernels`, to be emitted before the step), and nothing is timed
  /// (launches return before their kernels run).
  LaunchTarget target = LaunchTarget::Host;
  std::string deviceKernels;
  SmallVector<MemRefType> cacheTypes;
  int64_t kernels() const { return numKernels; }
  int64_t batchRows() const { return batch; }
  int64_t sequenceLength() const { return seqLen; }

private:
  LogicalResult classifyArguments();
  LogicalResult classifyNamedParamArguments();
  void nameArguments();
  LogicalResult emitModelDesc();
  LogicalResult declarePointers();
  void declareUsed(mlir::ValueRange values, llvm::StringSet<> &declared);
  LogicalResult emitStep();
  LogicalResult emitLoop(ElementwiseOp loop);
  /// The line that times a launch of `kernel` for --profile: the host's
  /// wall-clock KernelTimer, or the CUDA step's event pair on its stream
  /// (runtime/cuda/KernelEvents.cuh).
  std::string kernelTimer(StringRef kernel) const;
  /// The statements computing element `i` of `loop`'s outs, each line
  /// starting with `indent`.
  FailureOr<std::string> loopBody(ElementwiseOp loop, StringRef indent);
  LogicalResult emitGradSink(Location loc);
  std::string nameOf(Value v) { return names.lookup(v); }

  func::FuncOp step;
  const HostProgramInfo &info;
  int64_t stage, stages;
  int64_t batch = 0, seqLen = 0;
  raw_ostream *os = nullptr; ///< where the part being rendered goes
  ArgRoles roles;
  llvm::DenseMap<Value, std::string> names;
  struct ArgDecl {
    std::string name, source, comment;
    MemRefType type;
  };
  SmallVector<ArgDecl> argDecls; ///< one per argument, in order
  /// The C++ declaration of each buffer's pointer, emitted in a part of the
  /// step before its first use there.
  llvm::DenseMap<Value, std::string> declarations;
  // Per param arg number: the buffer of its gradient (from its adamw).
  llvm::DenseMap<unsigned, Value> gradOf;
  int64_t numExpertLoads = 0, numExpertKept = 0, numExperts = 0;
  int64_t gradResiduals = 0;
  /// The parameters with a 2:4 mask (ParamDesc::sparse).
  llvm::StringSet<> sparseParams;
  int64_t scalerStateArgs = 0;
  int64_t bf16MomentArgs = 0, f32MomentArgs = 0;
  double initialLossScale = 0; ///< 0: no loss scaling
  int64_t numKernels = 0, numFused = 0;
  /// The emitted functions: `<function>Part<i>` and `<function>`, over
  /// `buffersType` (StepBuffers for a training step).
  std::string function = "trainStep", partPrefix = "stepPart",
              buffersType = "kiln::driver::StepBuffers";
};

/// The programs `entry` names: @entry itself, or the per-rank programs of
/// kiln-pipeline (`kiln.program = entry`), in stage order.
FailureOr<SmallVector<func::FuncOp>> programsOf(ModuleOp module, StringRef entry);

/// train.curriculum's stage table `kCurriculum` for the ModelDescs to point
/// at ("" without a curriculum).
std::string curriculumTable(const HostProgramInfo &info);

/// The CUDA program's `device` (the kiln::cuda::DeviceStep main() points it
/// at) and `trainStep`, the driver's step, which runs it.
std::string deviceTrainStep();

/// train.batch_rampup: `namespace rampupN { kModel, trainStep }` per smaller
/// global batch, and `kRampup`, the schedule over them, appended to `code`;
/// a summary of their kernel counts appended to `summary`. For the CUDA
/// target each namespace also has its step's `deviceStep` and a `device`
/// (kiln::cuda::DeviceStep *) that main() points at the program's
/// DeviceStep, which `trainStep` runs.
LogicalResult emitRampupPrograms(const RampupPrograms &rampup, StringRef entry,
                                 const HostProgramInfo &info, LaunchTarget target,
                                 std::string &code, std::string &summary);

/// `namespace decode { prefill, decodeStep, kDecode }`: the decode program's
/// two functions and its DecodeDesc.
LogicalResult emitDecodeProgram(const DecodeModules &decode, const HostProgramInfo &info,
                                std::string &code);
/// `namespace grpo { score, kScore, kGrpo }`: the score program and the
/// GRPO options.
LogicalResult emitGrpoProgram(const GrpoProgram &grpo, const HostProgramInfo &info,
                              std::string &code);

} // namespace kiln::codegen::detail

#endif // KILN_CODEGEN_STEPEMITTER_H
