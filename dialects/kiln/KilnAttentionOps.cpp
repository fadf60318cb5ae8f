//===- KilnAttentionOps.cpp - verifiers of rope and attention -------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult RopeOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX());
  if (failed(expectRank(*this, "x ([batch, seq, heads, dim])", x, 4)))
    return failure();
  if (x[3] % 2 != 0)
    return emitOpError() << "expects an even rotary dimension, got x of shape "
                         << formatShape(x);
  if (getStart() && failed(expectShape(*this, "start", shapeOf(getStart()), {x[0]})))
    return failure();
  if (!(getTheta().convertToDouble() > 1))
    return emitOpError() << "expects theta > 1, got " << getTheta().convertToDouble();
  return success();
}

LogicalResult AttentionOp::verify() {
  ArrayRef<int64_t> q = shapeOf(getQ()), k = shapeOf(getK()), v = shapeOf(getV());
  if (failed(expectRank(*this, "q ([batch, seq, heads, d_qk])", q, 4)) ||
      failed(expectRank(*this, "k ([batch, seq, kv_heads, d_qk])", k, 4)) ||
      failed(expectRank(*this, "v ([batch, seq, kv_heads, d_v])", v, 4)))
    return failure();
  int64_t kvHeads = k[2];
  if (failed(expectShape(*this, "k", k, {q[0], q[1], kvHeads, q[3]})) ||
      failed(expectShape(*this, "v", v, {q[0], q[1], kvHeads, v[3]})))
    return failure();
  if (kvHeads <= 0)
    return emitOpError() << "expects k ([batch, seq, kv_heads, d_qk]) with kv_heads > 0, got "
                         << formatShape(k);
  if (q[2] % kvHeads != 0)
    return emitOpError() << "expects the " << q[2]
                         << " query heads to be a multiple of the " << kvHeads
                         << " kv heads";
  if (!(getScale().convertToDouble() > 0))
    return emitOpError() << "expects scale > 0, got " << getScale().convertToDouble();
  return expectShape(*this, "result", shapeOf(getResult()), {q[0], q[1], q[2], v[3]});
}

} // namespace kiln
