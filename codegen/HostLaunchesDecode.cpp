//===- HostLaunchesDecode.cpp - host launches: KV caches and head matmuls ---===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) for the decoding kernels
// of the catalog (KilnDecodeOps.td): each checks its operands, reads its
// attributes and spells the call into runtime/kernels/Decode.h. (rope's
// optional `start` is handled by rope() in HostLaunchesAttention.cpp.)
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

namespace kiln::codegen::detail {

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

// cache_write(cache [batch, maxLen, d...], rows [batch, chunk, d...],
// start [batch]) -> [batch, maxLen, d...]; in place when the out is the
// cache's buffer (the kernel skips the copy then).
void LaunchEmitter::cacheWrite() {
  elements("ffi", "f");
  minRank(true, 0, 2);
  minRank(true, 1, 2);
  rank(true, 2, 1);
  if (failed)
    return;
  ArrayRef<int64_t> cache = inShape(0), rows = inShape(1);
  int64_t width = product(cache.drop_front(2));
  sameCount(rows[0], cache[0], "the rows' and the cache's batch");
  sameCount(product(rows.drop_front(2)), width, "the rows' and the cache's row widths");
  sameCount(inCount(2), cache[0], "start's size and the batch");
  sameCount(outCount(0), inCount(0), "the out's and the cache's sizes");
  if (failed)
    return;
  call("cacheWrite", {out(0), in(0), in(1), in(2), intLiteral(cache[0]), intLiteral(cache[1]),
                      intLiteral(rows[1]), intLiteral(width)});
}

// cached_attention(q [b, chunk, h, dqk], k [b, maxLen, kvh, dqk],
// v [b, maxLen, kvh, dv], start [b]) -> [b, chunk, h, dv]
void LaunchEmitter::cachedAttention() {
  elements("fffi", "f");
  for (unsigned i = 0; i < 3; ++i)
    rank(true, i, 4);
  rank(true, 3, 1);
  rank(false, 0, 4);
  double scale = f64("scale");
  if (failed)
    return;
  ArrayRef<int64_t> q = inShape(0), k = inShape(1), v = inShape(2);
  sameCount(k[0] * k[1] * k[2], v[0] * v[1] * v[2], "k's and v's [batch, max_len, kv_heads]");
  sameCount(inCount(3), q[0], "start's size and the batch");
  sameCount(outCount(0), q[0] * q[1] * q[2] * v[3], "the out's size and batch*chunk*heads*dv");
  if (failed)
    return;
  call("cachedAttention",
       {out(0), in(0), in(1), in(2), in(3), intLiteral(q[0]), intLiteral(q[1]),
        intLiteral(k[1]), intLiteral(q[2]), intLiteral(k[2]), intLiteral(q[3]),
        intLiteral(v[3]), floatLiteral(scale)});
}

// head_matmul(x [b, s, h, k], weight [h, n, k] or [h, k, n]
// (transpose_weight)) -> [b, s, h, n]
void LaunchEmitter::headMatmul() {
  elements("ff", "f");
  rank(true, 0, 4);
  rank(true, 1, 3);
  rank(false, 0, 4);
  bool transposeWeight = flag("transpose_weight", false);
  if (failed)
    return;
  ArrayRef<int64_t> x = inShape(0), w = inShape(1);
  int64_t n = transposeWeight ? w[2] : w[1];
  sameCount(w[0], x[2], "the weight's and x's head counts");
  sameCount(transposeWeight ? w[1] : w[2], x[3], "the weight's and x's inner sizes");
  sameCount(outCount(0), x[0] * x[1] * x[2] * n, "the out's size and batch*seq*heads*n");
  if (failed)
    return;
  call("headMatmul", {out(0), in(0), in(1), intLiteral(x[0]), intLiteral(x[1]),
                      intLiteral(x[2]), intLiteral(x[3]), intLiteral(n),
                      boolLiteral(transposeWeight)});
}

} // namespace kiln::codegen::detail
