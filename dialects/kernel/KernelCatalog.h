//===- KernelCatalog.h - The kernels a kiln_kernel.launch may name --------===//
//
// One entry per kernel of Kiln's kernel library, with its operand counts.
// The launch verifier checks against it, convert-kiln-to-kernel uses it to
// reject kiln ops that have no kernel yet, and each code emitter must
// implement every entry (its tests walk the catalog).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_KERNEL_KERNELCATALOG_H
#define KILN_KERNEL_KERNELCATALOG_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

namespace kiln::kernel {

struct KernelInfo {
  llvm::StringRef name;
  /// Number of ins; kVariadic means one or more.
  int numIns;
  int numOuts;
  /// Trailing ins a launch may leave out (cross_entropy's global token
  /// count, given only in data-parallel steps).
  int optionalIns = 0;
};

constexpr int kVariadic = -1;

llvm::ArrayRef<KernelInfo> kernelCatalog();

/// The entry named `name`, or null.
const KernelInfo *lookupKernel(llvm::StringRef name);

} // namespace kiln::kernel

#endif // KILN_KERNEL_KERNELCATALOG_H
