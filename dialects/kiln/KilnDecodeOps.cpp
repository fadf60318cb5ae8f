//===- KilnDecodeOps.cpp - verifiers of the KV-cache ops ------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

using namespace mlir;

namespace kiln {

LogicalResult CacheWriteOp::verify() {
  ArrayRef<int64_t> cache = shapeOf(getCache()), rows = shapeOf(getRows());
  if (cache.size() < 3)
    return emitOpError() << "expects cache ([batch, max_len, d...]) of rank >= 3, got "
                         << formatShape(cache);
  if (rows.size() != cache.size())
    return emitOpError() << "expects rows ([batch, chunk, d...]) of the cache's rank "
                         << cache.size() << ", got " << formatShape(rows);
  // rows is the cache's shape but in dimension 1, the chunk.
  SmallVector<int64_t> expected(cache);
  expected[1] = rows[1];
  if (failed(expectShape(*this, "rows", rows, expected)))
    return failure();
  if (rows[1] > cache[1])
    return emitOpError() << "expects a chunk of at most max_len = " << cache[1]
                         << " rows, got " << rows[1];
  if (failed(expectShape(*this, "start", shapeOf(getStart()), {cache[0]})) ||
      failed(expectSameElementType(*this, "cache", getCache(), "rows", getRows())))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), cache);
}

LogicalResult CachedAttentionOp::verify() {
  ArrayRef<int64_t> q = shapeOf(getQ()), k = shapeOf(getK()), v = shapeOf(getV());
  if (failed(expectRank(*this, "q ([batch, chunk, heads, d_qk])", q, 4)) ||
      failed(expectRank(*this, "k ([batch, max_len, kv_heads, d_qk])", k, 4)) ||
      failed(expectRank(*this, "v ([batch, max_len, kv_heads, d_v])", v, 4)))
    return failure();
  const int64_t kvHeads = k[2];
  if (failed(expectShape(*this, "k", k, {q[0], k[1], kvHeads, q[3]})) ||
      failed(expectShape(*this, "v", v, {q[0], k[1], kvHeads, v[3]})))
    return failure();
  if (kvHeads <= 0 || q[2] % kvHeads != 0)
    return emitOpError() << "expects the " << q[2] << " query heads to be a multiple of the "
                         << kvHeads << " kv heads";
  if (q[1] > k[1])
    return emitOpError() << "expects a chunk of at most max_len = " << k[1]
                         << " queries, got " << q[1];
  if (!(getScale().convertToDouble() > 0))
    return emitOpError() << "expects scale > 0, got " << getScale().convertToDouble();
  if (failed(expectShape(*this, "start", shapeOf(getStart()), {q[0]})))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {q[0], q[1], q[2], v[3]});
}

LogicalResult HeadMatmulOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), w = shapeOf(getWeight());
  if (failed(expectRank(*this, "x ([batch, seq, heads, k])", x, 4)) ||
      failed(expectRank(*this, "weight", w, 3)))
    return failure();
  const bool transposed = getTransposeWeight();
  const int64_t n = transposed ? w[2] : w[1];
  SmallVector<int64_t> expected = transposed ? SmallVector<int64_t>{x[2], x[3], n}
                                             : SmallVector<int64_t>{x[2], n, x[3]};
  if (failed(expectShape(*this, transposed ? "weight ([heads, k, n])" : "weight ([heads, n, k])",
                         w, expected)))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {x[0], x[1], x[2], n});
}

} // namespace kiln
