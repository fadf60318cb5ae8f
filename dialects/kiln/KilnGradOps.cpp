//===- KilnGradOps.cpp - verifiers of the backward ops --------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult LinearDgradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), w = shapeOf(getWeight());
  if (dy.empty() || failed(expectRank(*this, "weight", w, 2)))
    return dy.empty() ? emitOpError("expects dy of rank >= 1") : failure();
  if (w[0] != dy.back())
    return emitOpError() << "expects weight of shape [" << dy.back()
                         << ", K] to match dy's last dimension, got " << formatShape(w);
  SmallVector<int64_t> expected(dy);
  expected.back() = w[1];
  return expectShape(*this, "dx", shapeOf(getDx()), expected);
}

LogicalResult LinearWgradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), x = shapeOf(getX());
  if (dy.empty() || x.size() != dy.size() || dy.drop_back() != x.drop_back())
    return emitOpError() << "expects dy and x with equal leading dimensions, got "
                         << formatShape(dy) << " and " << formatShape(x);
  return expectShape(*this, "dweight", shapeOf(getDweight()), {dy.back(), x.back()});
}

LogicalResult MatmulGradOp::verify() {
  if (failed(expectShape(*this, "dlhs", shapeOf(getDlhs()), shapeOf(getLhs()))) ||
      failed(expectShape(*this, "drhs", shapeOf(getDrhs()), shapeOf(getRhs()))))
    return failure();
  ArrayRef<int64_t> a = shapeOf(getLhs()), b = shapeOf(getRhs());
  if (a.size() < 2 || a.size() != b.size())
    return emitOpError() << "expects lhs and rhs of equal rank >= 2, got "
                         << formatShape(a) << " and " << formatShape(b);
  size_t r = a.size();
  if (a.drop_back(2) != b.drop_back(2))
    return emitOpError() << "expects equal batch dimensions, got lhs " << formatShape(a)
                         << " and rhs " << formatShape(b);
  int64_t ka = getTransposeLhs() ? a[r - 2] : a[r - 1];
  int64_t kb = getTransposeRhs() ? b[r - 1] : b[r - 2];
  if (ka != kb)
    return emitOpError() << "expects the contracted dimensions to match, got lhs "
                         << formatShape(a) << " (K = " << ka << ") and rhs "
                         << formatShape(b) << " (K = " << kb << ")";
  SmallVector<int64_t> expected(a.drop_back(2));
  expected.push_back(getTransposeLhs() ? a[r - 1] : a[r - 2]);
  expected.push_back(getTransposeRhs() ? b[r - 2] : b[r - 1]);
  return expectShape(*this, "dc", shapeOf(getDc()), expected);
}

LogicalResult EmbeddingGradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), table = shapeOf(getDtable());
  if (failed(expectRank(*this, "dtable", table, 2)))
    return failure();
  SmallVector<int64_t> expected(shapeOf(getIds()));
  expected.push_back(table[1]);
  return expectShape(*this, "dy", dy, expected);
}

LogicalResult RMSNormGradOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX());
  if (x.empty())
    return emitOpError("expects x of rank >= 1");
  if (failed(expectShape(*this, "dy", shapeOf(getDy()), x)) ||
      failed(expectShape(*this, "gamma", shapeOf(getGamma()), {x.back()})) ||
      failed(expectShape(*this, "dx", shapeOf(getDx()), x)))
    return failure();
  if (!(getEpsilon().convertToDouble() > 0))
    return emitOpError() << "expects epsilon > 0, got " << getEpsilon().convertToDouble();
  return expectShape(*this, "dgamma", shapeOf(getDgamma()), {x.back()});
}

LogicalResult SwigluGradOp::verify() {
  ArrayRef<int64_t> g = shapeOf(getGate());
  for (auto [name, v] : {std::pair<StringRef, Value>{"dy", getDy()}, {"up", getUp()},
                         {"dgate", getDgate()}, {"dup", getDup()}})
    if (failed(expectShape(*this, name, shapeOf(v), g)))
      return failure();
  return success();
}

LogicalResult UnbroadcastOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), y = shapeOf(getResult());
  if (x.size() != y.size())
    return emitOpError() << "expects result of the rank of x " << formatShape(x)
                         << ", got " << formatShape(y);
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != y[i] && y[i] != 1)
      return emitOpError() << "expects result dimension " << i << " to be 1 or "
                           << x[i] << ", got " << formatShape(x) << " -> "
                           << formatShape(y);
  return success();
}

LogicalResult AttentionGradOp::verify() {
  ArrayRef<int64_t> q = shapeOf(getQ()), k = shapeOf(getK()), v = shapeOf(getV());
  if (q.size() != 4 || k.size() != 4 || v.size() != 4)
    return emitOpError("expects q, k, v of rank 4");
  if (failed(expectShape(*this, "k", k, {q[0], q[1], k[2], q[3]})) ||
      failed(expectShape(*this, "v", v, {q[0], q[1], k[2], v[3]})))
    return failure();
  if (k[2] <= 0 || q[2] % k[2] != 0)
    return emitOpError() << "expects the " << q[2] << " query heads to be a multiple of the "
                         << k[2] << " kv heads";
  if (!(getScale().convertToDouble() > 0))
    return emitOpError() << "expects scale > 0, got " << getScale().convertToDouble();
  if (failed(expectShape(*this, "dout", shapeOf(getDout()), {q[0], q[1], q[2], v[3]})) ||
      failed(expectShape(*this, "dq", shapeOf(getDq()), q)) ||
      failed(expectShape(*this, "dk", shapeOf(getDk()), k)))
    return failure();
  return expectShape(*this, "dv", shapeOf(getDv()), v);
}

LogicalResult RouterGradOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits()), idx = shapeOf(getIndices());
  if (failed(expectRank(*this, "logits", logits, 2)) ||
      failed(expectRank(*this, "indices", idx, 2)) ||
      failed(expectShape(*this, "indices", idx, {logits[0], idx[1]})) ||
      failed(expectShape(*this, "dweights", shapeOf(getDweights()), idx)))
    return failure();
  if (getScoring() != "sigmoid" && getScoring() != "softmax")
    return emitOpError() << "expects scoring \"sigmoid\" or \"softmax\", got \""
                         << getScoring() << "\"";
  return expectShape(*this, "dlogits", shapeOf(getDlogits()), logits);
}

LogicalResult DispatchGradOp::verify() {
  ArrayRef<int64_t> drows = shapeOf(getDrows()), dx = shapeOf(getDx());
  if (failed(expectRank(*this, "drows", drows, 2)))
    return failure();
  int64_t topK = getTopK(); // the getter is uint64_t: a negative top_k reads as negative
  if (topK <= 0 || drows[0] % topK != 0)
    return emitOpError() << "expects [tokens*top_k, hidden] rows with top_k > 0, got "
                         << formatShape(drows) << " and top_k = " << topK;
  if (failed(expectShape(*this, "source", shapeOf(getSource()), {drows[0]})))
    return failure();
  return expectShape(*this, "dx", dx, {drows[0] / topK, drows[1]});
}

LogicalResult CombineGradOp::verify() {
  ArrayRef<int64_t> rows = shapeOf(getRows()), w = shapeOf(getWeights());
  if (rows.size() != 2 || w.size() != 2 || rows[0] != w[0] * w[1])
    return emitOpError() << "expects rows [tokens*top_k, hidden] for weights [tokens, top_k], got "
                         << formatShape(rows) << " and " << formatShape(w);
  if (failed(expectShape(*this, "source", shapeOf(getSource()), {rows[0]})) ||
      failed(expectShape(*this, "dy", shapeOf(getDy()), {w[0], rows[1]})) ||
      failed(expectShape(*this, "drows", shapeOf(getDrows()), rows)))
    return failure();
  return expectShape(*this, "dweights", shapeOf(getDweights()), w);
}

LogicalResult GroupedMatmulDgradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), w = shapeOf(getWeight());
  if (failed(expectRank(*this, "dy", dy, 2)) || failed(expectRank(*this, "weight", w, 3)))
    return failure();
  if (w[1] != dy[1])
    return emitOpError() << "expects weight of shape [experts, " << dy[1]
                         << ", K], got " << formatShape(w);
  if (failed(expectShape(*this, "offsets", shapeOf(getOffsets()), {w[0] + 1})))
    return failure();
  return expectShape(*this, "dx", shapeOf(getDx()), {dy[0], w[2]});
}

LogicalResult GroupedMatmulWgradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), x = shapeOf(getX());
  if (failed(expectRank(*this, "dy", dy, 2)) || failed(expectRank(*this, "x", x, 2)))
    return failure();
  if (dy[0] != x[0])
    return emitOpError() << "expects dy and x with the same rows, got " << formatShape(dy)
                         << " and " << formatShape(x);
  ArrayRef<int64_t> offsets = shapeOf(getOffsets());
  if (failed(expectRank(*this, "offsets", offsets, 1)))
    return failure();
  if (offsets[0] < 1)
    return emitOpError("expects offsets of shape [experts + 1], got [0]");
  return expectShape(*this, "dweight", shapeOf(getDweight()),
                     {offsets[0] - 1, dy[1], x[1]});
}

LogicalResult CrossEntropyGradOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  if (logits.empty())
    return emitOpError("expects logits of rank >= 1");
  if (failed(expectShape(*this, "targets", shapeOf(getTargets()), logits.drop_back())) ||
      failed(expectShape(*this, "mask", shapeOf(getMask()), logits.drop_back())))
    return failure();
  double eps = getLabelSmoothing().convertToDouble();
  if (!(eps >= 0 && eps < 1))
    return emitOpError() << "expects label_smoothing in [0, 1), got " << eps;
  return expectShape(*this, "dlogits", shapeOf(getDlogits()), logits);
}

} // namespace kiln
