//===- CudaEmitter.h - Kernel-level module -> one CUDA training program ---===//
//
// The CUDA target's twin of HostEmitter.h: the same planned kernel-level
// step as one `.cu` file, the same ModelDesc and straight-line step, its
// launches spelled for the CUDA kernel library (runtime/kernels/cuda/, see
// HostLaunches.h's LaunchTarget) on device buffers, its fused elementwise
// loops as generated `__global__` kernels, and a main() that hands the step
// to the host driver through runtime/cuda/DeviceStep.cuh (device state,
// the static arena, the step captured as a CUDA graph). A data-parallel
// step (kiln-data-parallel's grid ["dp"]) calls its collectives over NCCL
// (runtime/cuda/StepCollectives.cuh) and runs as `mpirun -np <dp> train`.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_CUDAEMITTER_H
#define KILN_CODEGEN_CUDAEMITTER_H

#include "codegen/HostEmitter.h"

namespace kiln::codegen {

/// Writes the CUDA program for the step function `entry` of `module`, with
/// `rampup` the programs of a batch-size rampup's smaller batches. Fails
/// with an error on the offending op for what the CUDA target does not run
/// yet (pipeline stages, expert parallelism's grid, all_to_all and
/// send/recv) and wherever the host emitter would.
mlir::LogicalResult emitCudaProgram(mlir::ModuleOp module, llvm::StringRef entry,
                                    const HostProgramInfo &info, llvm::raw_ostream &os,
                                    const RampupPrograms *rampup = nullptr);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_CUDAEMITTER_H
