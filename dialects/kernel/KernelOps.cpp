//===- KernelOps.cpp - kiln_kernel op verifiers ---------------------------===//

#include "dialects/kernel/KernelCatalog.h"
#include "dialects/kernel/KernelDialect.h"

using namespace mlir;
using namespace kiln::kernel;

#define GET_OP_CLASSES
#include "dialects/kernel/KernelOps.cpp.inc"

static bool hasIdentityLayout(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  return memref && memref.getLayout().isIdentity();
}

LogicalResult BufferOp::verify() {
  int64_t offset = static_cast<int64_t>(getOffset());
  if (offset < 0 || offset % kArenaAlignment != 0)
    return emitOpError() << "expects an offset that is a non-negative multiple of "
                         << kArenaAlignment << ", got " << offset;
  if (!hasIdentityLayout(getType()))
    return emitOpError() << "expects an identity-layout memref, got " << getType();
  auto func = (*this)->getParentOfType<func::FuncOp>();
  auto arena = func ? func->getAttrOfType<IntegerAttr>(kArenaBytesAttr) : IntegerAttr();
  if (!arena)
    return emitOpError() << "must be inside a function with a '" << kArenaBytesAttr
                         << "' attribute";
  int64_t end = offset + bufferBytes(getType());
  if (end > arena.getInt())
    return emitOpError() << "ends at byte " << end << ", past the arena's "
                         << arena.getInt() << " bytes";
  return success();
}

LogicalResult ReshapeOp::verify() {
  MemRefType from = getSource().getType(), to = getType();
  if (from.getElementType() != to.getElementType() ||
      from.getNumElements() != to.getNumElements())
    return emitOpError() << "expects the same element type and count, got " << from
                         << " to " << to;
  if (!hasIdentityLayout(from) || !hasIdentityLayout(to))
    return emitOpError() << "expects identity-layout memrefs";
  return success();
}

LogicalResult LaunchOp::verify() {
  const KernelInfo *info = lookupKernel(getKernel());
  if (!info)
    return emitOpError() << "names no kernel of the catalog: '" << getKernel() << "'";
  int64_t numIns = getIns().size(), numOuts = getOuts().size();
  bool insOk = info->numIns == kVariadic
                   ? numIns >= 1
                   : numIns >= info->numIns && numIns <= info->numIns + info->optionalIns;
  if (!insOk) {
    std::string expected = info->numIns == kVariadic ? std::string("one or more")
                                                     : std::to_string(info->numIns);
    if (info->optionalIns > 0)
      expected += " to " + std::to_string(info->numIns + info->optionalIns);
    return emitOpError() << "kernel '" << getKernel() << "' expects " << expected
                         << " ins, got " << numIns;
  }
  if (numOuts != info->numOuts)
    return emitOpError() << "kernel '" << getKernel() << "' expects " << info->numOuts
                         << " outs, got " << numOuts;
  for (Value v : getOperands())
    if (!hasIdentityLayout(v.getType()))
      return emitOpError() << "expects identity-layout memrefs, got " << v.getType();
  return success();
}

LogicalResult ElementwiseOp::verify() {
  if (getOuts().empty())
    return emitOpError() << "expects at least one out";
  auto outType = cast<MemRefType>(getOuts().front().getType());
  int64_t count = outType.getNumElements();
  for (Value v : getOperands()) {
    auto type = cast<MemRefType>(v.getType());
    if (type.getNumElements() != count)
      return emitOpError() << "expects every operand to have " << count
                           << " elements (as the first out " << outType << "), got "
                           << type;
    if (!hasIdentityLayout(type))
      return emitOpError() << "expects identity-layout memrefs, got " << type;
  }
  Block &body = getBody().front();
  if (body.getNumArguments() != getIns().size())
    return emitOpError() << "expects the body to take " << getIns().size()
                         << " arguments (one per in), got " << body.getNumArguments();
  for (auto [arg, in] : llvm::zip(body.getArguments(), getIns()))
    if (arg.getType() != cast<MemRefType>(in.getType()).getElementType())
      return emitOpError() << "expects body argument #" << arg.getArgNumber() << " of type "
                           << cast<MemRefType>(in.getType()).getElementType() << ", got "
                           << arg.getType();
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield || yield.getValues().size() != getOuts().size())
    return emitOpError() << "expects the body to yield " << getOuts().size()
                         << " values (one per out)";
  for (auto [value, out] : llvm::zip(yield.getValues(), getOuts()))
    if (value.getType() != cast<MemRefType>(out.getType()).getElementType())
      return emitOpError() << "yields " << value.getType() << " for an out of "
                           << out.getType();
  for (Operation &op : body.without_terminator()) {
    StringRef dialect = op.getDialect() ? op.getDialect()->getNamespace() : "";
    if (dialect != "arith" && dialect != "math")
      return op.emitOpError() << "is not allowed in a kiln_kernel.elementwise body "
                                 "(only scalar arith and math ops are)";
    for (Type t : op.getResultTypes())
      if (isa<ShapedType>(t))
        return op.emitOpError() << "must be scalar inside kiln_kernel.elementwise";
  }
  return success();
}
