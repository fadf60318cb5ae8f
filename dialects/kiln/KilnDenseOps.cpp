//===- KilnDenseOps.cpp - verifiers of embedding, linear, matmul, norms ---===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult EmbeddingOp::verify() {
  ArrayRef<int64_t> table = shapeOf(getTable());
  if (failed(expectRank(*this, "table", table, 2)))
    return failure();
  SmallVector<int64_t> expected(shapeOf(getIds()));
  expected.push_back(table[1]);
  if (failed(expectSameElementType(*this, "table", getTable(), "result", getResult())))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), expected);
}

LogicalResult LinearOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), w = shapeOf(getWeight());
  if (x.empty())
    return emitOpError("expects x of rank >= 1, got a 0-d tensor");
  if (failed(expectRank(*this, "weight", w, 2)))
    return failure();
  if (w[1] != x.back())
    return emitOpError() << "expects weight of shape [N, " << x.back()
                         << "] to match x's last dimension " << x.back()
                         << ", got " << formatShape(w);
  SmallVector<int64_t> expected(x);
  expected.back() = w[0];
  if (failed(expectSameElementType(*this, "x", getX(), "result", getResult())))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), expected);
}

LogicalResult MatmulOp::verify() {
  ArrayRef<int64_t> a = shapeOf(getLhs()), b = shapeOf(getRhs());
  if (a.size() < 2 || b.size() < 2)
    return emitOpError() << "expects lhs and rhs of rank >= 2, got "
                         << formatShape(a) << " and " << formatShape(b);
  if (a.size() != b.size())
    return emitOpError() << "expects lhs and rhs of equal rank, got "
                         << formatShape(a) << " and " << formatShape(b);
  size_t r = a.size();
  if (a.drop_back(2) != b.drop_back(2))
    return emitOpError() << "expects equal batch dimensions, got lhs "
                         << formatShape(a) << " and rhs " << formatShape(b);
  int64_t m = getTransposeLhs() ? a[r - 1] : a[r - 2];
  int64_t ka = getTransposeLhs() ? a[r - 2] : a[r - 1];
  int64_t kb = getTransposeRhs() ? b[r - 1] : b[r - 2];
  int64_t n = getTransposeRhs() ? b[r - 2] : b[r - 1];
  if (ka != kb)
    return emitOpError() << "expects the contracted dimensions to match, got lhs "
                         << formatShape(a) << " (K = " << ka << ") and rhs "
                         << formatShape(b) << " (K = " << kb << ")";
  SmallVector<int64_t> expected(a.drop_back(2));
  expected.push_back(m);
  expected.push_back(n);
  return expectShape(*this, "result", shapeOf(getResult()), expected);
}

LogicalResult RMSNormOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX());
  if (x.empty())
    return emitOpError("expects x of rank >= 1, got a 0-d tensor");
  if (failed(expectShape(*this, "gamma", shapeOf(getGamma()), {x.back()})))
    return failure();
  if (!(getEpsilon().convertToDouble() > 0))
    return emitOpError() << "expects epsilon > 0, got " << getEpsilon().convertToDouble();
  return expectShape(*this, "result", shapeOf(getResult()), x);
}

LogicalResult BroadcastOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), y = shapeOf(getResult());
  if (x.size() != y.size())
    return emitOpError() << "expects result of the rank of x " << formatShape(x)
                         << ", got " << formatShape(y);
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != y[i] && x[i] != 1)
      return emitOpError() << "expects x's dimension " << i << " to be 1 or "
                           << y[i] << " (the result's), got " << formatShape(x)
                           << " -> " << formatShape(y);
  return expectSameElementType(*this, "x", getX(), "result", getResult());
}

} // namespace kiln
