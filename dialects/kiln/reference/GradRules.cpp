//===- GradRules.cpp - evaluation of the backward ops (KilnGradOps.td) ----===//
//
// Each rule transcribes its op's description. Where a backward op recomputes
// forward quantities (rms, attention probabilities, router scores, softmax)
// it uses the forward rules' own math (DenseMath.h, AttentionMath.h,
// RoutingMath.h). test/unit/GradOpCheckTest.cpp checks every rule against
// central finite differences of the forward rules.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/AttentionMath.h"
#include "dialects/kiln/reference/DenseMath.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/RoutingMath.h"

#include <cmath>
#include <vector>

using namespace mlir;

namespace kiln::reference {

static RefTensor resultLike(Operation *op, unsigned i = 0) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

/// Checks that every entry of a `source` permutation lies in [0, pairs).
static LogicalResult checkSource(Operation *op, const RefTensor &source, int64_t pairs) {
  for (int64_t row = 0; row < source.numElements(); ++row) {
    double p = source.data[row];
    if (!(p >= 0 && p < pairs))
      return op->emitError() << "reference evaluator: source entry " << formatNumber(p)
                             << " of row " << row << " is outside [0, " << pairs << ")";
  }
  return success();
}

static void addDenseGradRules(RuleTable &table) {
  table.add("kiln.linear_dgrad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &dy = *in[0], &w = *in[1];
    int64_t n = w.shape[0], k = w.shape[1], rows = dy.leadingElements();
    RefTensor dx = resultLike(op);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t l = 0; l < k; ++l) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j)
          acc += dy.data[i * n + j] * w.data[j * k + l];
        dx.data[i * k + l] = acc;
      }
    out.push_back(std::move(dx));
    return success();
  });

  table.add("kiln.linear_wgrad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &dy = *in[0], &x = *in[1];
    int64_t n = dy.shape.back(), k = x.shape.back(), rows = dy.leadingElements();
    RefTensor dw = resultLike(op);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < k; ++l) {
        double acc = 0;
        for (int64_t i = 0; i < rows; ++i)
          acc += dy.data[i * n + j] * x.data[i * k + l];
        dw.data[j * k + l] = acc;
      }
    out.push_back(std::move(dw));
    return success();
  });

  table.add("kiln.matmul_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto mm = cast<MatmulGradOp>(op);
    const RefTensor &a = *in[0], &b = *in[1], &dc = *in[2];
    bool ta = mm.getTransposeLhs(), tb = mm.getTransposeRhs();
    int64_t rank = dc.rank(), m = dc.shape[rank - 2], n = dc.shape[rank - 1];
    int64_t k = ta ? a.shape[rank - 2] : a.shape[rank - 1];
    int64_t batch = dc.numElements() / (m * n);
    RefTensor da = resultLike(op, 0), db = resultLike(op, 1);
    // lhs'[i, l] and rhs'[l, j] (the untransposed frame) live at these offsets.
    auto at = [&](int64_t i, int64_t l) { return ta ? l * m + i : i * k + l; };
    auto bt = [&](int64_t l, int64_t j) { return tb ? j * k + l : l * n + j; };
    for (int64_t bi = 0; bi < batch; ++bi) {
      const double *pa = &a.data[bi * m * k], *pb = &b.data[bi * k * n];
      const double *pc = &dc.data[bi * m * n];
      double *pda = &da.data[bi * m * k], *pdb = &db.data[bi * k * n];
      for (int64_t i = 0; i < m; ++i) // dlhs' = dc @ rhs'^T
        for (int64_t l = 0; l < k; ++l) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j)
            acc += pc[i * n + j] * pb[bt(l, j)];
          pda[at(i, l)] = acc;
        }
      for (int64_t l = 0; l < k; ++l) // drhs' = lhs'^T @ dc
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < m; ++i)
            acc += pa[at(i, l)] * pc[i * n + j];
          pdb[bt(l, j)] = acc;
        }
    }
    out.push_back(std::move(da));
    out.push_back(std::move(db));
    return success();
  });

  table.add("kiln.embedding_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &dy = *in[0], &ids = *in[1];
    RefTensor dtable = resultLike(op);
    int64_t vocab = dtable.shape[0], hidden = dtable.shape[1];
    for (int64_t i = 0; i < ids.numElements(); ++i) {
      double id = ids.data[i];
      if (!(id >= 0 && id < vocab) || id != std::floor(id))
        return op->emitError() << "reference evaluator: token id " << formatNumber(id)
                               << " at flat position " << i
                               << " is outside the embedding table [0, " << vocab << ")";
      for (int64_t h = 0; h < hidden; ++h)
        dtable.data[int64_t(id) * hidden + h] += dy.data[i * hidden + h];
    }
    out.push_back(std::move(dtable));
    return success();
  });

  table.add("kiln.rms_norm_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                     SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double eps = cast<RMSNormGradOp>(op).getEpsilon().convertToDouble();
    const RefTensor &dy = *in[0], &x = *in[1], &gamma = *in[2];
    int64_t h = x.shape.back(), rows = x.leadingElements();
    RefTensor dx = resultLike(op, 0), dgamma = resultLike(op, 1);
    std::vector<double> n(h), g(h);
    for (int64_t i = 0; i < rows; ++i) {
      const double *px = &x.data[i * h], *pdy = &dy.data[i * h];
      double r = rmsInverse(px, h, eps), meanGN = 0;
      for (int64_t j = 0; j < h; ++j) {
        n[j] = px[j] * r;
        g[j] = pdy[j] * gamma.data[j];
        meanGN += g[j] * n[j];
        dgamma.data[j] += pdy[j] * n[j];
      }
      meanGN /= h;
      for (int64_t j = 0; j < h; ++j)
        dx.data[i * h + j] = r * (g[j] - n[j] * meanGN);
    }
    out.push_back(std::move(dx));
    out.push_back(std::move(dgamma));
    return success();
  });

  table.add("kiln.silu_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &dy = *in[0], &x = *in[1];
    RefTensor dx = resultLike(op);
    for (int64_t i = 0; i < dx.numElements(); ++i) {
      double s = sigmoid(x.data[i]);
      dx.data[i] = dy.data[i] * s * (1 + x.data[i] * (1 - s));
    }
    out.push_back(std::move(dx));
    return success();
  });

  table.add("kiln.swiglu_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &dy = *in[0], &gate = *in[1], &up = *in[2];
    RefTensor dgate = resultLike(op, 0), dup = resultLike(op, 1);
    for (int64_t i = 0; i < dgate.numElements(); ++i) {
      double g = gate.data[i], s = sigmoid(g);
      dgate.data[i] = dy.data[i] * up.data[i] * s * (1 + g * (1 - s));
      dup.data[i] = dy.data[i] * g * s;
    }
    out.push_back(std::move(dgate));
    out.push_back(std::move(dup));
    return success();
  });

  table.add("kiln.unbroadcast", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &x = *in[0];
    RefTensor r = resultLike(op);
    auto rs = r.strides();
    SmallVector<int64_t, 4> idx(x.rank(), 0);
    for (int64_t flat = 0; flat < x.numElements(); ++flat) {
      int64_t dst = 0;
      for (int64_t d = 0; d < x.rank(); ++d)
        dst += (r.shape[d] == 1 ? 0 : idx[d]) * rs[d];
      r.data[dst] += x.data[flat];
      for (int64_t d = x.rank() - 1; d >= 0 && ++idx[d] == x.shape[d]; --d)
        idx[d] = 0;
    }
    out.push_back(std::move(r));
    return success();
  });
}

static void addAttentionGradRules(RuleTable &table) {
  table.add("kiln.attention_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto attn = cast<AttentionGradOp>(op);
    const RefTensor &q = *in[0], &k = *in[1], &v = *in[2], &dout = *in[3];
    AttentionDims dims(q, k, v);
    double scale = attn.getScale().convertToDouble();
    bool causal = attn.getCausal();
    RefTensor dq = resultLike(op, 0), dk = resultLike(op, 1), dv = resultLike(op, 2);
    std::vector<double> p(dims.seq), ds(dims.seq);
    for (int64_t b = 0; b < dims.batch; ++b)
      for (int64_t h = 0; h < dims.heads; ++h) {
        int64_t g = dims.kvHeadOf(h);
        for (int64_t i = 0; i < dims.seq; ++i) {
          int64_t keys =
              attentionProbabilities(dims, q, k, scale, causal, b, h, i, p.data());
          const double *doi = &dout.data[dims.outOffset(b, i, h)];
          double sumPdp = 0;
          for (int64_t j = 0; j < keys; ++j) {
            const double *vj = &v.data[dims.vOffset(b, j, g)];
            double *dvj = &dv.data[dims.vOffset(b, j, g)];
            double dp = 0;
            for (int64_t e = 0; e < dims.dv; ++e) {
              dvj[e] += p[j] * doi[e];
              dp += doi[e] * vj[e];
            }
            ds[j] = dp;
            sumPdp += p[j] * dp;
          }
          const double *qi = &q.data[dims.qOffset(b, i, h)];
          double *dqi = &dq.data[dims.qOffset(b, i, h)];
          for (int64_t j = 0; j < keys; ++j) {
            ds[j] = p[j] * (ds[j] - sumPdp);
            const double *kj = &k.data[dims.kOffset(b, j, g)];
            double *dkj = &dk.data[dims.kOffset(b, j, g)];
            for (int64_t d = 0; d < dims.dqk; ++d) {
              dqi[d] += scale * ds[j] * kj[d];
              dkj[d] += scale * ds[j] * qi[d];
            }
          }
        }
      }
    out.push_back(std::move(dq));
    out.push_back(std::move(dk));
    out.push_back(std::move(dv));
    return success();
  });
}

static void addMoEGradRules(RuleTable &table) {
  table.add("kiln.router_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto router = cast<RouterGradOp>(op);
    const RefTensor &logits = *in[0], &indices = *in[1], &dw = *in[2];
    int64_t tokens = logits.shape[0], experts = logits.shape[1], topk = indices.shape[1];
    bool softmax = router.getScoring() == "softmax", norm = router.getNormTopkProb();
    double scaling = router.getRoutedScalingFactor().convertToDouble();
    RefTensor dlogits = resultLike(op);
    std::vector<double> s(experts), ds(experts);
    for (int64_t t = 0; t < tokens; ++t) {
      const double *idx = &indices.data[t * topk], *dwt = &dw.data[t * topk];
      for (int64_t j = 0; j < topk; ++j)
        if (!(idx[j] >= 0 && idx[j] < experts))
          return op->emitError() << "reference evaluator: expert index "
                                 << formatNumber(idx[j]) << " of token " << t
                                 << " is outside [0, " << experts << ")";
      routerScores(&logits.data[t * experts], experts, softmax, s.data());
      double sum = 1e-20, dot = 0;
      for (int64_t j = 0; j < topk; ++j) {
        sum += s[int64_t(idx[j])];
        dot += dwt[j] * s[int64_t(idx[j])];
      }
      std::fill(ds.begin(), ds.end(), 0.0);
      for (int64_t l = 0; l < topk; ++l)
        ds[int64_t(idx[l])] +=
            norm ? scaling * (dwt[l] / sum - dot / (sum * sum)) : scaling * dwt[l];
      routerScoresBackward(s.data(), ds.data(), experts, softmax,
                           &dlogits.data[t * experts]);
    }
    out.push_back(std::move(dlogits));
    return success();
  });

  table.add("kiln.dispatch_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                     SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    int64_t topk = cast<DispatchGradOp>(op).getTopK();
    const RefTensor &drows = *in[0], &source = *in[1];
    int64_t pairs = drows.shape[0], hidden = drows.shape[1];
    if (failed(checkSource(op, source, pairs)))
      return failure();
    RefTensor dx = resultLike(op);
    for (int64_t r = 0; r < pairs; ++r) {
      int64_t token = int64_t(source.data[r]) / topk;
      for (int64_t h = 0; h < hidden; ++h)
        dx.data[token * hidden + h] += drows.data[r * hidden + h];
    }
    out.push_back(std::move(dx));
    return success();
  });

  table.add("kiln.combine_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &rows = *in[0], &weights = *in[1], &source = *in[2], &dy = *in[3];
    int64_t pairs = rows.shape[0], hidden = rows.shape[1], topk = weights.shape[1];
    if (failed(checkSource(op, source, pairs)))
      return failure();
    RefTensor drows = resultLike(op, 0), dweights = resultLike(op, 1);
    for (int64_t r = 0; r < pairs; ++r) {
      int64_t p = int64_t(source.data[r]), token = p / topk;
      const double *dyt = &dy.data[token * hidden], *row = &rows.data[r * hidden];
      double dot = 0;
      for (int64_t h = 0; h < hidden; ++h) {
        drows.data[r * hidden + h] = weights.data[p] * dyt[h];
        dot += row[h] * dyt[h];
      }
      dweights.data[p] += dot;
    }
    out.push_back(std::move(drows));
    out.push_back(std::move(dweights));
    return success();
  });

  table.add("kiln.grouped_matmul_dgrad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                            SmallVectorImpl<RefTensor> &out)
                                             -> LogicalResult {
    const RefTensor &dy = *in[0], &w = *in[1], &offsets = *in[2];
    int64_t rows = dy.shape[0], n = dy.shape[1], experts = w.shape[0], k = w.shape[2];
    if (failed(checkOffsets(op, offsets, rows)))
      return failure();
    RefTensor dx = resultLike(op);
    for (int64_t e = 0; e < experts; ++e) {
      const double *we = &w.data[e * n * k];
      for (int64_t r = int64_t(offsets.data[e]); r < int64_t(offsets.data[e + 1]); ++r)
        for (int64_t l = 0; l < k; ++l) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j)
            acc += dy.data[r * n + j] * we[j * k + l];
          dx.data[r * k + l] = acc;
        }
    }
    out.push_back(std::move(dx));
    return success();
  });

  table.add("kiln.grouped_matmul_wgrad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                            SmallVectorImpl<RefTensor> &out)
                                             -> LogicalResult {
    const RefTensor &dy = *in[0], &x = *in[1], &offsets = *in[2];
    int64_t rows = dy.shape[0], n = dy.shape[1], k = x.shape[1];
    int64_t experts = offsets.numElements() - 1;
    if (failed(checkOffsets(op, offsets, rows)))
      return failure();
    RefTensor dw = resultLike(op);
    for (int64_t e = 0; e < experts; ++e) {
      double *dwe = &dw.data[e * n * k];
      for (int64_t j = 0; j < n; ++j)
        for (int64_t l = 0; l < k; ++l) {
          double acc = 0;
          for (int64_t r = int64_t(offsets.data[e]); r < int64_t(offsets.data[e + 1]); ++r)
            acc += dy.data[r * n + j] * x.data[r * k + l];
          dwe[j * k + l] = acc;
        }
    }
    out.push_back(std::move(dw));
    return success();
  });
}

static void addLossGradRules(RuleTable &table) {
  table.add("kiln.cross_entropy_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                          SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double eps = cast<CrossEntropyGradOp>(op).getLabelSmoothing().convertToDouble();
    const RefTensor &logits = *in[0], &targets = *in[1], &mask = *in[2];
    double dloss = in[3]->data[0];
    int64_t vocab = logits.shape.back(), positions = logits.leadingElements();
    double weight = 0;
    for (int64_t i = 0; i < positions; ++i)
      weight += mask.data[i];
    if (in.size() > 4) // the global batch's token count (kiln-data-parallel)
      weight = in[4]->data[0];
    RefTensor dlogits = resultLike(op);
    if (weight == 0) {
      out.push_back(std::move(dlogits));
      return success();
    }
    for (int64_t i = 0; i < positions; ++i) {
      if (mask.data[i] == 0)
        continue; // a masked position's target may be anything, even out of range
      double t = targets.data[i];
      if (!(t >= 0 && t < vocab))
        return op->emitError() << "reference evaluator: target " << formatNumber(t)
                               << " at flat position " << i << " is outside [0, "
                               << vocab << ")";
      double *d = &dlogits.data[i * vocab];
      std::copy_n(&logits.data[i * vocab], vocab, d);
      softmaxInPlace(d, vocab);
      double factor = dloss * mask.data[i] / weight;
      for (int64_t c = 0; c < vocab; ++c)
        d[c] = factor * (d[c] - (1 - eps) * (c == int64_t(t)) - eps / vocab);
    }
    out.push_back(std::move(dlogits));
    return success();
  });
}

void addGradRules(RuleTable &table) {
  addDenseGradRules(table);
  addAttentionGradRules(table);
  addMoEGradRules(table);
  addLossGradRules(table);
}

} // namespace kiln::reference
