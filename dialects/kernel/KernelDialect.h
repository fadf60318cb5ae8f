//===- KernelDialect.h - the kiln_kernel dialect and its ops --------------===//

#ifndef KILN_KERNEL_DIALECT_H
#define KILN_KERNEL_DIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kernel/KernelDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/kernel/KernelOps.h.inc"

namespace kiln::kernel {
/// The function attribute holding the planned arena size in bytes.
constexpr llvm::StringLiteral kArenaBytesAttr = "kiln_kernel.arena_bytes";
/// Arena offsets are multiples of this (a cache line, and enough for any
/// vector load the host compiler emits).
constexpr int64_t kArenaAlignment = 64;
/// Bytes of a static memref (element bits rounded up to bytes).
int64_t bufferBytes(mlir::MemRefType type);
/// The buffer `v` is a view of: the alloc or argument under any reshapes.
mlir::Value viewedBuffer(mlir::Value v);
} // namespace kiln::kernel

#endif // KILN_KERNEL_DIALECT_H
