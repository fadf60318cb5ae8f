//===- CppTypes.cpp - C++ spellings of buffer element types ---------------===//

#include "codegen/CppTypes.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"

using namespace mlir;

namespace kiln::codegen {

bool isNarrowFloat(Type type) { return type.isBF16() || type.isF16() || isa<Float8E4M3FNType>(type); }

FailureOr<StringRef> cppElementType(Location loc, Type type) {
  if (type.isF32())
    return StringRef("float");
  if (type.isBF16())
    return StringRef("kiln::kernels::Bf16");
  if (type.isF16())
    return StringRef("kiln::kernels::F16");
  if (isa<Float8E4M3FNType>(type))
    return StringRef("kiln::kernels::E4m3");
  if (type.isInteger(32))
    return StringRef("int32_t");
  if (type.isInteger(64))
    return StringRef("int64_t");
  if (type.isInteger(8))
    return StringRef("int8_t");
  if (type.isInteger(1))
    return StringRef("bool");
  return emitError(loc) << "the host target supports f32, bf16, f16, f8E4M3FN, i32, i64, "
                           "i8 and i1 buffers, got "
                        << type;
}

} // namespace kiln::codegen
