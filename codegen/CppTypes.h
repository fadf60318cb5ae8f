//===- CppTypes.h - C++ spellings of buffer element types in emitted code -===//
//
// f32, i32, i64 and i8 buffers are plain C++ arrays; bf16, f16 and
// f8E4M3FN buffers hold bit patterns wrapped in runtime/kernels/
// PrecisionMath.h's Bf16, F16 and E4m3, which kernels and fused loops read
// with widen() and write with narrowTo<T>() (compute in f32, store the
// declared type).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_CPPTYPES_H
#define KILN_CODEGEN_CPPTYPES_H

#include "mlir/IR/Location.h"
#include "mlir/IR/Types.h"
#include "mlir/Support/LLVM.h"

namespace kiln::codegen {

/// The C++ element type of a buffer of `type`, or an error at `loc`.
mlir::FailureOr<llvm::StringRef> cppElementType(mlir::Location loc, mlir::Type type);

/// True for bf16, f16 and f8E4M3FN: stored as bits, computed on as f32.
bool isNarrowFloat(mlir::Type type);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_CPPTYPES_H
