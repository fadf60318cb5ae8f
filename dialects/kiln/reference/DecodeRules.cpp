//===- DecodeRules.cpp - evaluation of the KV-cache ops -------------------===//
//
// kiln.cache_write, kiln.cached_attention and kiln.head_matmul
// (KilnDecodeOps.td). cached_attention computes each query's softmax with
// the same dot-product-then-softmaxInPlace steps as kiln.attention's rule
// (AttentionMath.h), over keys 0..start[b]+c of its row.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/DenseMath.h"
#include "dialects/kiln/reference/Evaluator.h"

#include <vector>

using namespace mlir;

namespace kiln::reference {

/// start[b], checked to leave room for `chunk` positions of `maxLen`.
static FailureOr<int64_t> chunkStart(Operation *op, const RefTensor &start, int64_t b,
                                     int64_t chunk, int64_t maxLen) {
  const double s = start.data[b];
  if (s < 0 || s + double(chunk) > double(maxLen))
    return op->emitError() << "start[" << b << "] = " << s << " with a chunk of " << chunk
                           << " leaves positions [0, " << maxLen << "); expected 0 <= start <= "
                           << maxLen - chunk;
  return int64_t(s);
}

void addDecodeRules(RuleTable &table) {
  table.add("kiln.cache_write", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &cache = *in[0], &rows = *in[1], &start = *in[2];
    const int64_t batch = cache.shape[0], maxLen = cache.shape[1], chunk = rows.shape[1];
    const int64_t width = cache.numElements() / (batch * maxLen);
    RefTensor r = cache;
    for (int64_t b = 0; b < batch; ++b) {
      FailureOr<int64_t> first = chunkStart(op, start, b, chunk, maxLen);
      if (failed(first))
        return failure();
      for (int64_t c = 0; c < chunk; ++c)
        for (int64_t e = 0; e < width; ++e)
          r.data[(b * maxLen + *first + c) * width + e] = rows.data[(b * chunk + c) * width + e];
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.cached_attention", [](Operation *op, ArrayRef<const RefTensor *> in,
                                        SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto attn = cast<CachedAttentionOp>(op);
    const RefTensor &q = *in[0], &k = *in[1], &v = *in[2], &start = *in[3];
    const int64_t batch = q.shape[0], chunk = q.shape[1], heads = q.shape[2], dqk = q.shape[3];
    const int64_t maxLen = k.shape[1], kvHeads = k.shape[2], dv = v.shape[3];
    const double scale = attn.getScale().convertToDouble();
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    std::vector<double> p(maxLen);
    for (int64_t b = 0; b < batch; ++b) {
      FailureOr<int64_t> first = chunkStart(op, start, b, chunk, maxLen);
      if (failed(first))
        return failure();
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t g = h / (heads / kvHeads);
        for (int64_t c = 0; c < chunk; ++c) {
          const int64_t keys = *first + c + 1;
          const double *qc = &q.data[((b * chunk + c) * heads + h) * dqk];
          for (int64_t j = 0; j < keys; ++j) {
            const double *kj = &k.data[((b * maxLen + j) * kvHeads + g) * dqk];
            double s = 0;
            for (int64_t d = 0; d < dqk; ++d)
              s += qc[d] * kj[d];
            p[j] = s * scale;
          }
          softmaxInPlace(p.data(), keys);
          double *oc = &r.data[((b * chunk + c) * heads + h) * dv];
          for (int64_t j = 0; j < keys; ++j) {
            const double *vj = &v.data[((b * maxLen + j) * kvHeads + g) * dv];
            for (int64_t e = 0; e < dv; ++e)
              oc[e] += p[j] * vj[e];
          }
        }
      }
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.head_matmul", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto mm = cast<HeadMatmulOp>(op);
    const RefTensor &x = *in[0], &w = *in[1];
    const int64_t rows = x.shape[0] * x.shape[1], heads = x.shape[2], kDim = x.shape[3];
    const bool transposed = mm.getTransposeWeight();
    const int64_t n = transposed ? w.shape[2] : w.shape[1];
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t h = 0; h < heads; ++h) {
        const double *xr = &x.data[(row * heads + h) * kDim];
        const double *wh = &w.data[h * n * kDim];
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t kk = 0; kk < kDim; ++kk)
            s += xr[kk] * (transposed ? wh[kk * n + j] : wh[j * kDim + kk]);
          r.data[(row * heads + h) * n + j] = s;
        }
      }
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
