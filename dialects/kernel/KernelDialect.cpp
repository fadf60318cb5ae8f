//===- KernelDialect.cpp - kiln_kernel dialect registration ---------------===//

#include "dialects/kernel/KernelDialect.h"

using namespace mlir;
using namespace kiln::kernel;

#include "dialects/kernel/KernelDialect.cpp.inc"

void KernelDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/kernel/KernelOps.cpp.inc"
      >();
}

int64_t kiln::kernel::bufferBytes(MemRefType type) {
  int64_t bits = type.getElementTypeBitWidth();
  return type.getNumElements() * ((bits + 7) / 8);
}

Value kiln::kernel::viewedBuffer(Value v) {
  while (auto reshape = v.getDefiningOp<ReshapeOp>())
    v = reshape.getSource();
  return v;
}
