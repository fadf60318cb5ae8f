//===- AttentionRules.cpp - evaluation of rope and attention --------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/AttentionMath.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Rope.h"

#include <algorithm>
#include <cmath>

using namespace mlir;

namespace kiln::reference {

std::optional<YarnParams> yarnParamsOf(RopeOp op) {
  if (!op.getYarn())
    return std::nullopt;
  YarnAttr y = *op.getYarn();
  return YarnParams{y.getFactor().convertToDouble(),
                    double(y.getOriginalMaxPositionEmbeddings()),
                    y.getBetaFast().convertToDouble(),
                    y.getBetaSlow().convertToDouble(),
                    y.getMscale().convertToDouble(),
                    y.getMscaleAllDim().convertToDouble()};
}

void addAttentionRules(RuleTable &table) {
  table.add("kiln.rope", [](Operation *op, ArrayRef<const RefTensor *> in,
                            SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto rope = cast<RopeOp>(op);
    const RefTensor &x = *in[0];
    int64_t batch = x.shape[0], seq = x.shape[1], heads = x.shape[2], dim = x.shape[3];
    std::optional<YarnParams> yarn = yarnParamsOf(rope);
    const YarnParams *config = yarn ? &*yarn : nullptr;
    std::vector<double> inv =
        ropeInverseFrequencies(dim, rope.getTheta().convertToDouble(), config);
    double magnitude = ropeMagnitude(config);
    bool interleaved = rope.getInterleaved();
    double direction = rope.getTranspose() ? -1.0 : 1.0;
    RefTensor r = x;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < seq; ++s) {
        // With `start` (decoding) row b's chunk begins at position start[b].
        const double position = double(s) + (in.size() > 1 ? in[1]->data[b] : 0.0);
        if (position < 0)
          return op->emitError() << "start[" << b << "] = " << in[1]->data[b]
                                 << " is negative; positions start at 0";
        for (int64_t h = 0; h < heads; ++h) {
          int64_t base = ((b * seq + s) * heads + h) * dim;
          for (int64_t i = 0; i < dim / 2; ++i) {
            int64_t i0 = interleaved ? 2 * i : i;
            int64_t i1 = interleaved ? 2 * i + 1 : i + dim / 2;
            double angle = position * inv[i];
            double c = std::cos(angle) * magnitude,
                   sn = direction * std::sin(angle) * magnitude;
            double x0 = x.data[base + i0], x1 = x.data[base + i1];
            r.data[base + i0] = x0 * c - x1 * sn;
            r.data[base + i1] = x1 * c + x0 * sn;
          }
        }
      }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.attention", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto attn = cast<AttentionOp>(op);
    const RefTensor &q = *in[0], &k = *in[1], &v = *in[2];
    AttentionDims dims(q, k, v);
    double scale = attn.getScale().convertToDouble();
    bool causal = attn.getCausal();
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    std::vector<double> p(dims.seq);
    for (int64_t b = 0; b < dims.batch; ++b)
      for (int64_t h = 0; h < dims.heads; ++h)
        for (int64_t i = 0; i < dims.seq; ++i) {
          int64_t keys =
              attentionProbabilities(dims, q, k, scale, causal, b, h, i, p.data());
          double *oi = &r.data[dims.outOffset(b, i, h)];
          for (int64_t j = 0; j < keys; ++j) {
            const double *vj = &v.data[dims.vOffset(b, j, dims.kvHeadOf(h))];
            for (int64_t e = 0; e < dims.dv; ++e)
              oi[e] += p[j] * vj[e];
          }
        }
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
