//===- KilnLossOps.cpp - verifier of cross_entropy ------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult CrossEntropyOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  if (logits.empty())
    return emitOpError("expects logits of rank >= 1 ([positions..., vocab]), got a 0-d tensor");
  ArrayRef<int64_t> positions = logits.drop_back();
  if (failed(expectShape(*this, "targets", shapeOf(getTargets()), positions)) ||
      failed(expectShape(*this, "mask", shapeOf(getMask()), positions)))
    return failure();
  double eps = getLabelSmoothing().convertToDouble();
  if (!(eps >= 0 && eps < 1))
    return emitOpError() << "expects label_smoothing in [0, 1), got " << eps;
  return success();
}

} // namespace kiln
