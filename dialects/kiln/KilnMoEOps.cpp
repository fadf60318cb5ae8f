//===- KilnMoEOps.cpp - verifiers of router, dispatch, combine, grouped GEMM ===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult RouterOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  if (failed(expectRank(*this, "logits ([tokens, experts])", logits, 2)))
    return failure();
  int64_t tokens = logits[0], experts = logits[1];
  if (failed(expectShape(*this, "bias", shapeOf(getBias()), {experts})))
    return failure();
  if (getScoring() != "sigmoid" && getScoring() != "softmax")
    return emitOpError() << "expects scoring \"sigmoid\" or \"softmax\", got \""
                         << getScoring() << "\"";
  if (getGroupScore() != "top2_sum" && getGroupScore() != "max")
    return emitOpError() << "expects group_score \"top2_sum\" or \"max\", got \""
                         << getGroupScore() << "\"";
  int64_t groups = getNGroup(), keepGroups = getTopkGroup(), topK = getTopK();
  if (groups <= 0 || experts % groups != 0)
    return emitOpError() << "expects n_group to divide the " << experts
                         << " experts, got n_group = " << groups;
  if (keepGroups <= 0 || keepGroups > groups)
    return emitOpError() << "expects 1 <= topk_group <= n_group = " << groups
                         << ", got topk_group = " << keepGroups;
  int64_t perGroup = experts / groups;
  if (groups > 1 && getGroupScore() == "top2_sum" && perGroup < 2)
    return emitOpError() << "expects at least 2 experts per group for "
                            "group_score \"top2_sum\", got "
                         << perGroup;
  if (topK <= 0 || topK > keepGroups * perGroup)
    return emitOpError() << "expects 1 <= top_k <= " << keepGroups * perGroup
                         << " (experts in the kept groups), got top_k = " << topK;
  if (failed(expectShape(*this, "indices", shapeOf(getIndices()), {tokens, topK})) ||
      failed(expectShape(*this, "weights", shapeOf(getWeights()), {tokens, topK})))
    return failure();
  return expectSameElementType(*this, "logits", getLogits(), "weights", getWeights());
}

LogicalResult ExpertCapacityOp::verify() {
  ArrayRef<int64_t> idx = shapeOf(getIndices());
  if (failed(expectRank(*this, "indices ([tokens, top_k])", idx, 2)))
    return failure();
  if (shapeOf(getKept()) != idx)
    return emitOpError() << "expects a result of the indices' shape " << formatShape(idx)
                         << ", got " << formatShape(shapeOf(getKept()));
  // The generated I64Attr getters are unsigned: read them signed.
  const int64_t experts = static_cast<int64_t>(getNumExperts());
  const int64_t group = static_cast<int64_t>(getGroupTokens());
  const int64_t capacity = static_cast<int64_t>(getCapacity());
  if (experts <= 0)
    return emitOpError() << "expects num_experts > 0, got " << experts;
  if (group <= 0 || idx[0] % group != 0)
    return emitOpError() << "expects group_tokens to divide the " << idx[0]
                         << " tokens, got group_tokens = " << group;
  if (capacity <= 0)
    return emitOpError() << "expects capacity >= 1 pairs per expert and group, got "
                         << capacity;
  return success();
}

LogicalResult DispatchOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), idx = shapeOf(getIndices());
  if (failed(expectRank(*this, "x ([tokens, hidden])", x, 2)) ||
      failed(expectRank(*this, "indices ([tokens, top_k])", idx, 2)))
    return failure();
  if (idx[0] != x[0])
    return emitOpError() << "expects indices of shape [" << x[0]
                         << ", top_k] (one row per token of x), got "
                         << formatShape(idx);
  int64_t rows = idx[0] * idx[1];
  // The generated I64Attr getter is unsigned: read it signed so -1 is caught.
  int64_t experts = static_cast<int64_t>(getNumExperts());
  if (experts <= 0)
    return emitOpError() << "expects num_experts > 0, got " << experts;
  if (failed(expectShape(*this, "rows", shapeOf(getRows()), {rows, x[1]})) ||
      failed(expectShape(*this, "offsets", shapeOf(getOffsets()), {experts + 1})) ||
      failed(expectShape(*this, "source", shapeOf(getSource()), {rows})))
    return failure();
  return expectSameElementType(*this, "x", getX(), "rows", getRows());
}

LogicalResult GroupedMatmulOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), w = shapeOf(getWeight());
  if (failed(expectRank(*this, "x ([rows, K])", x, 2)) ||
      failed(expectRank(*this, "weight ([experts, N, K])", w, 3)))
    return failure();
  if (w[2] != x[1])
    return emitOpError() << "expects weight of shape [experts, N, " << x[1]
                         << "] to match x's last dimension, got " << formatShape(w);
  if (failed(expectShape(*this, "offsets", shapeOf(getOffsets()), {w[0] + 1})))
    return failure();
  if (failed(expectSameElementType(*this, "x", getX(), "result", getResult())))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {x[0], w[1]});
}

LogicalResult CombineOp::verify() {
  ArrayRef<int64_t> rows = shapeOf(getRows()), w = shapeOf(getWeights());
  if (failed(expectRank(*this, "rows ([tokens*top_k, hidden])", rows, 2)) ||
      failed(expectRank(*this, "weights ([tokens, top_k])", w, 2)))
    return failure();
  if (rows[0] != w[0] * w[1])
    return emitOpError() << "expects rows to have tokens*top_k = " << w[0] * w[1]
                         << " rows for weights of shape " << formatShape(w)
                         << ", got " << formatShape(rows);
  if (failed(expectShape(*this, "source", shapeOf(getSource()), {rows[0]})))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {w[0], rows[1]});
}

LogicalResult ExpertCountsOp::verify() {
  ArrayRef<int64_t> offsets = shapeOf(getOffsets());
  if (failed(expectRank(*this, "offsets ([experts + 1])", offsets, 1)))
    return failure();
  int64_t experts = offsets[0] - 1, groups = static_cast<int64_t>(getGroups());
  if (experts < 1 || groups < 1 || experts % groups != 0)
    return emitOpError() << "expects groups to divide the " << experts
                         << " experts of the offsets, got groups = " << groups;
  if (failed(expectShape(*this, "per_expert", shapeOf(getPerExpert()),
                         {groups, experts / groups})))
    return failure();
  return expectShape(*this, "per_rank", shapeOf(getPerRank()), {groups});
}

LogicalResult SegmentTransposeOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), counts = shapeOf(getCounts());
  if (x.empty())
    return emitOpError() << "expects x with a row dimension, got a scalar";
  if (failed(expectRank(*this, "counts ([outer, inner])", counts, 2)))
    return failure();
  if (shapeOf(getResult()) != x)
    return emitOpError() << "expects a result of x's shape " << formatShape(x) << ", got "
                         << formatShape(shapeOf(getResult()));
  if (failed(expectSameElementType(*this, "x", getX(), "result", getResult())))
    return failure();
  int64_t groupsOut = getInverse() ? counts[0] : counts[1];
  return expectShape(*this, "offsets", shapeOf(getOffsets()), {groupsOut + 1});
}

} // namespace kiln
