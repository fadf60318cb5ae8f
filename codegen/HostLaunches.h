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
mlir::LogicalResult emitHostLaunch(kernel::LaunchOp launch, const LaunchArgs &args,
                                   llvm::StringRef indent, llvm::raw_ostream &os);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_HOSTLAUNCHES_H
