//===- KilnDialect.cpp - kiln dialect registration ------------------------===//

#include "dialects/kiln/KilnDialect.h"

#include "mlir/IR/DialectImplementation.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace kiln;

#include "dialects/kiln/KilnDialect.cpp.inc"
#include "dialects/kiln/KilnInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/kiln/KilnAttrs.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/kiln/KilnOps.cpp.inc"

namespace {
/// Every kiln op is a pure function of its operands, so block functions can
/// be inlined into the step before it is lowered to kernels.
struct KilnInlinerInterface : DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final { return true; }
};
} // namespace

void KilnDialect::initialize() {
  addInterfaces<KilnInlinerInterface>();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/kiln/KilnAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/kiln/KilnOps.cpp.inc"
      >();
}

Value kiln::buildZeros(OpBuilder &b, Location loc, Type type) {
  auto shaped = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      b, loc, shaped, DenseElementsAttr::get(shaped, b.getZeroAttr(shaped.getElementType())));
}

Value GradientContext::resultGradOrZeros(OpBuilder &b, unsigned i) {
  if (resultGrads[i])
    return resultGrads[i];
  return buildZeros(b, loc(), op->getResult(i).getType());
}

Location kiln::pipelineActionLoc(Location loc, StringRef action) {
  MLIRContext *ctx = loc->getContext();
  return CallSiteLoc::get(
      loc, NameLoc::get(StringAttr::get(ctx, (kPipelineActionPrefix + action).str())));
}

StringRef kiln::pipelineActionOf(Location loc) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location part : fused.getLocations())
      if (StringRef action = pipelineActionOf(part); !action.empty())
        return action;
    return "";
  }
  while (auto site = dyn_cast<CallSiteLoc>(loc))
    loc = site.getCaller();
  if (auto name = dyn_cast<NameLoc>(loc)) {
    StringRef text = name.getName().getValue();
    if (text.consume_front(kPipelineActionPrefix))
      return text;
  }
  return "";
}
