//===- HostLaunches.h - C++ for one kiln_kernel.launch on the host --------===//
//
// The host emitter (HostEmitter.h) walks a kernel-level step function and
// names every buffer; this file turns one launch into the C++ statements
// that call Kiln's host kernel library (runtime/kernels/) on those buffers.
// Sizes come from the memref types, attributes from the launch's `params`
// (the attributes of the kiln op it was made from).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_HOSTLAUNCHES_H
#define KILN_CODEGEN_HOSTLAUNCHES_H

#include "dialects/kernel/KernelDialect.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace kiln::codegen {

/// Which kernel library a launch calls: the host's (runtime/kernels/*.h,
/// `kiln::kernels::fn(args)`) or the CUDA target's (runtime/kernels/cuda/
/// *.cuh, `kiln::cuda::fn(stream, args)`, the same arguments on device
/// buffers). One description per kernel, two spellings; where the host
/// reads a scalar buffer on the CPU (`*p`), the CUDA spelling passes the
/// device pointer `p`; where the host assigns a kernel's returned value
/// (`*out = fn(args)`), the CUDA launcher writes it through `out`, its first
/// argument after the stream; a step kiln.grad_scaler may skip hands its
/// flag to the CUDA launcher as a trailing pointer (after `&error`) instead
/// of the host's `if (!*skip)`. A CUDA launcher fails like the host's on what
/// it can check on the host (sizes, attributes); bad data its kernels find
/// is a device error, read after the step.
enum class LaunchTarget { Host, Cuda };

/// C++ expressions for the data pointers of a launch's buffers, already of
/// the element's pointer type (`float *`, `int32_t *`, `int64_t *`), in the
/// order of the launch's ins and outs.
struct LaunchArgs {
  llvm::SmallVector<std::string> ins, outs;
};

/// Appends to `os` the statements that run `launch`, each line starting
/// with `indent`. The emitted code runs inside
/// `bool trainStep(const kiln::driver::StepBuffers &io, std::string &error)`:
/// when a kernel reports failure it returns false with `error` set to the
/// kernel's message. Fails with an error on `launch` for a kernel of the
/// catalog it has no host code for, an element type other than f32 (i32 for
/// ids/indices/offsets, i64 for the step), or a missing or bad attribute.
/// With LaunchTarget::Cuda, the same launch for the CUDA target; the code
/// runs where `stream` names the step's compute stream; the data-parallel
/// collectives call runtime/cuda/StepCollectives.cuh, while all_to_all and
/// send/recv are refused (not built for the CUDA target yet).
mlir::LogicalResult emitHostLaunch(kernel::LaunchOp launch, const LaunchArgs &args,
                                   llvm::StringRef indent, llvm::raw_ostream &os,
                                   LaunchTarget target = LaunchTarget::Host);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_HOSTLAUNCHES_H
