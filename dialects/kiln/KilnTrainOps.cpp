//===- KilnTrainOps.cpp - verifiers of losses, optimizer and balancing ops ===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"
#include "runtime/kernels/GradCompressMath.h"

#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;

namespace kiln {

// I64Attr getters return uint64_t: read them as int64_t so that a negative
// value is seen as negative.

LogicalResult ExpertLoadOp::verify() {
  int64_t experts = getNumExperts();
  if (experts <= 0)
    return emitOpError() << "expects num_experts > 0, got " << experts;
  return expectShape(*this, "load", shapeOf(getLoad()), {experts});
}

static LogicalResult verifyBalance(Operation *op, Value logits, Value indices,
                                   StringRef scoring, int64_t sequences,
                                   std::optional<uint64_t> totalSequences) {
  if (totalSequences && int64_t(*totalSequences) < sequences)
    return op->emitOpError() << "expects total_sequences >= num_sequences (" << sequences
                             << "), got " << int64_t(*totalSequences);
  ArrayRef<int64_t> l = shapeOf(logits), idx = shapeOf(indices);
  if (failed(expectRank(op, "logits ([tokens, experts])", l, 2)) ||
      failed(expectRank(op, "indices ([tokens, top_k])", idx, 2)))
    return failure();
  if (idx[0] != l[0])
    return op->emitOpError() << "expects one indices row per token (" << l[0]
                             << "), got " << formatShape(idx);
  if (idx[1] < 1)
    return op->emitOpError() << "expects indices ([tokens, top_k]) with top_k >= 1, got "
                             << formatShape(idx);
  if (sequences <= 0 || l[0] % sequences != 0)
    return op->emitOpError() << "expects num_sequences to divide the " << l[0]
                             << " tokens, got " << sequences;
  if (scoring != "sigmoid" && scoring != "softmax")
    return op->emitOpError() << "expects scoring \"sigmoid\" or \"softmax\", got \""
                             << scoring << "\"";
  return success();
}

LogicalResult BalanceLossOp::verify() {
  return verifyBalance(*this, getLogits(), getIndices(), getScoring(), getNumSequences(),
                       getTotalSequences());
}

LogicalResult BalanceLossGradOp::verify() {
  if (failed(verifyBalance(*this, getLogits(), getIndices(), getScoring(),
                           getNumSequences(), getTotalSequences())))
    return failure();
  return expectShape(*this, "dlogits", shapeOf(getDlogits()), shapeOf(getLogits()));
}

LogicalResult LrScheduleOp::verify() {
  double lr = getLr().convertToDouble(), minLr = getMinLr().convertToDouble();
  if (!(lr >= 0) || !(minLr >= 0) || minLr > lr)
    return emitOpError() << "expects 0 <= min_lr <= lr, got lr = " << lr
                         << ", min_lr = " << minLr;
  int64_t warmup = getWarmupSteps(), total = getTotalSteps();
  if (warmup < 0 || total < 0)
    return emitOpError() << "expects warmup_steps and total_steps >= 0, got " << warmup
                         << " and " << total;
  return success();
}

LogicalResult SparsityMask24Op::verify() {
  auto weight = cast<ShapedType>(getWeight().getType());
  if (getMask().getType() != weight || getResult().getType() != weight)
    return emitOpError() << "expects the mask and the result of the weight's type " << weight
                         << ", got " << getMask().getType() << " and " << getResult().getType();
  if (weight.getRank() < 2 || weight.getShape().back() % 4 != 0)
    return emitOpError() << "expects a weight of rank >= 2 whose last (input) dimension is "
                            "divisible by 4 (groups of 4), got "
                         << weight;
  const int64_t start = getStartStepAttr().getInt(), every = getMaskEveryAttr().getInt();
  if (start < 1 || every < 0)
    return emitOpError() << "expects start_step >= 1 and mask_every >= 0, got " << start
                         << " and " << every;
  return success();
}

LogicalResult GlobalNormOp::verify() {
  if (getTensors().empty())
    return emitOpError("expects at least one tensor");
  return success();
}

LogicalResult ClipScaleOp::verify() {
  if (!(getMaxNorm().convertToDouble() >= 0))
    return emitOpError() << "expects max_norm >= 0, got " << getMaxNorm().convertToDouble();
  return success();
}

LogicalResult AdamWOp::verify() {
  ArrayRef<int64_t> p = shapeOf(getParam());
  for (auto [name, v] : {std::pair<StringRef, Value>{"grad", getGrad()}, {"m", getM()},
                         {"v", getV()}, {"new_param", getNewParam()},
                         {"new_m", getNewM()}, {"new_v", getNewV()}})
    if (failed(expectShape(*this, name, shapeOf(v), p)))
      return failure();
  // f32 master weights and gradients; moments in f32 or stored in bf16.
  for (auto [name, v] : {std::pair<StringRef, Value>{"param", getParam()}, {"grad", getGrad()},
                         {"new_param", getNewParam()}})
    if (!getElementTypeOrSelf(v.getType()).isF32())
      return emitOpError() << "expects an f32 " << name << " (master weights and gradients stay "
                              "f32), got "
                           << v.getType();
  if (getMask() && getMask().getType() != getParam().getType())
    return emitOpError() << "expects a mask of the parameter's type " << getParam().getType()
                         << ", got " << getMask().getType();
  Type moment = getElementTypeOrSelf(getM().getType());
  if (!moment.isF32() && !moment.isBF16())
    return emitOpError() << "expects moments in f32 or bf16, got " << getM().getType();
  for (Value v : {getV(), getNewM(), getNewV()})
    if (getElementTypeOrSelf(v.getType()) != moment)
      return emitOpError() << "expects both moments and their new values in one element type ("
                           << moment << "), got " << v.getType();
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    return emitOpError() << "expects betas in [0, 1), got " << b1 << " and " << b2;
  if (!(getEps().convertToDouble() > 0) || !(getWeightDecay().convertToDouble() >= 0))
    return emitOpError("expects eps > 0 and weight_decay >= 0");
  return success();
}

LogicalResult GradScalerOp::verify() {
  double growth = getGrowthFactor().convertToDouble(),
         backoff = getBackoffFactor().convertToDouble();
  if (!(growth > 1) || !std::isfinite(growth))
    return emitOpError() << "expects a finite growth_factor > 1, got " << growth;
  if (!(backoff > 0 && backoff < 1))
    return emitOpError() << "expects backoff_factor in (0, 1), got " << backoff;
  if (getGrowthInterval() < 1)
    return emitOpError() << "expects growth_interval >= 1, got " << getGrowthInterval();
  return success();
}

LogicalResult BiasUpdateOp::verify() {
  ArrayRef<int64_t> b = shapeOf(getBias());
  if (failed(expectRank(*this, "bias", b, 1)) ||
      failed(expectShape(*this, "load", shapeOf(getLoad()), b)))
    return failure();
  return expectShape(*this, "new_bias", shapeOf(getNewBias()), b);
}

/// k, the quantization and the message size of a top-k message.
static LogicalResult verifyTopkMessage(Operation *op, int64_t n, int64_t k, StringRef quantize,
                                       int64_t *bytes) {
  if (quantize != "int8" && quantize != "none")
    return op->emitOpError() << "expects quantize \"int8\" or \"none\", got \"" << quantize
                             << "\"";
  if (k < 1 || k > n)
    return op->emitOpError() << "expects 1 <= k <= " << n << " (the tensor's elements), got k = "
                             << k;
  *bytes = kernels::topkMessageBytes(k, quantize == "int8");
  return success();
}

LogicalResult TopkCompressOp::verify() {
  ArrayRef<int64_t> grad = shapeOf(getGrad());
  if (shapeOf(getResidual()) != grad || shapeOf(getNewResidual()) != grad)
    return emitOpError() << "expects residual and new_residual of the gradient's shape "
                         << formatShape(grad);
  for (Value v : {getGrad(), getResidual(), getNewResidual()})
    if (!getElementTypeOrSelf(v.getType()).isF32())
      return emitOpError() << "expects f32 gradients and residuals (the message holds f32), got "
                           << v.getType();
  int64_t bytes = 0;
  if (failed(verifyTopkMessage(*this, cast<ShapedType>(getGrad().getType()).getNumElements(),
                               int64_t(getK()), getQuantize(), &bytes)))
    return failure();
  return expectShape(*this, "message", shapeOf(getMessage()), {bytes});
}

LogicalResult TopkDecompressOp::verify() {
  if (!getElementTypeOrSelf(getResult().getType()).isF32())
    return emitOpError() << "expects an f32 result, got " << getResult().getType();
  int64_t bytes = 0;
  if (failed(verifyTopkMessage(*this, cast<ShapedType>(getResult().getType()).getNumElements(),
                               int64_t(getK()), getQuantize(), &bytes)))
    return failure();
  ArrayRef<int64_t> messages = shapeOf(getMessages());
  if (messages.size() != 1 || messages[0] % bytes != 0 || messages[0] == 0)
    return emitOpError() << "expects messages of shape [ranks x " << bytes
                         << "] (whole messages of k = " << getK() << "), got "
                         << formatShape(messages);
  return success();
}

} // namespace kiln
