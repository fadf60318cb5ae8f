//===- KilnLossOps.cpp - verifiers of the losses ----------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"
#include "runtime/kernels/GrpoMath.h"

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

LogicalResult TokenLogprobsOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  if (logits.empty())
    return emitOpError("expects logits of rank >= 1 ([positions..., vocab]), got a 0-d tensor");
  if (failed(expectShape(*this, "targets", shapeOf(getTargets()), logits.drop_back())) ||
      failed(expectShape(*this, "result", shapeOf(getResult()), logits.drop_back())))
    return failure();
  if (!(getTemperature().convertToDouble() > 0))
    return emitOpError() << "expects temperature > 0, got " << getTemperature().convertToDouble();
  return success();
}

/// The checks grpo_loss and grpo_loss_grad share.
template <class Op> static LogicalResult verifyGrpo(Op op) {
  ArrayRef<int64_t> logits = shapeOf(op.getLogits());
  if (failed(expectRank(op, "logits ([rows, seq, vocab])", logits, 3)))
    return failure();
  ArrayRef<int64_t> positions = logits.drop_back();
  if (failed(expectShape(op, "targets", shapeOf(op.getTargets()), positions)) ||
      failed(expectShape(op, "mask", shapeOf(op.getMask()), positions)) ||
      failed(expectShape(op, "advantages", shapeOf(op.getAdvantages()), {logits[0]})) ||
      failed(expectShape(op, "old_logprobs", shapeOf(op.getOldLogprobs()), positions)) ||
      failed(expectShape(op, "ref_logprobs", shapeOf(op.getRefLogprobs()), positions)))
    return failure();
  const double t = op.getTemperature().convertToDouble(), lo = op.getClipLow().convertToDouble(),
               hi = op.getClipHigh().convertToDouble(), beta = op.getBeta().convertToDouble();
  if (!(t > 0))
    return op.emitOpError() << "expects temperature > 0, got " << t;
  if (!(lo >= 0 && lo < 1) || !(hi >= 0))
    return op.emitOpError() << "expects clip_low in [0, 1) and clip_high >= 0, got " << lo
                            << " and " << hi;
  if (!(beta >= 0))
    return op.emitOpError() << "expects beta >= 0, got " << beta;
  kernels::GrpoAggregation aggregation = kernels::GrpoAggregation::TokenMean;
  if (!kernels::parseGrpoAggregation(op.getAggregation().str().c_str(), aggregation))
    return op.emitOpError() << "expects aggregation \"token-mean\", \"seq-mean-token-mean\" or "
                               "\"seq-mean-token-sum-norm\", got \""
                            << op.getAggregation() << "\"";
  if (aggregation == kernels::GrpoAggregation::SeqMeanTokenSumNorm && op.getMaxTokens() <= 0)
    return op.emitOpError() << "expects max_tokens > 0 (Dr. GRPO's constant normaliser) with "
                               "\"seq-mean-token-sum-norm\", got "
                            << op.getMaxTokens();
  return success();
}

LogicalResult GrpoLossOp::verify() { return verifyGrpo(*this); }

// Here rather than in KilnGradOps.cpp: it checks what the forward op does.
LogicalResult GrpoLossGradOp::verify() {
  if (failed(verifyGrpo(*this)))
    return failure();
  return expectShape(*this, "dlogits", shapeOf(getDlogits()), shapeOf(getLogits()));
}

} // namespace kiln
