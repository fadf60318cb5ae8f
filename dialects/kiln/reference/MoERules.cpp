//===- MoERules.cpp - evaluation of router, dispatch, grouped GEMM, combine ===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/RoutingMath.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::reference {

static RefTensor resultLike(Operation *op, unsigned i) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

void addMoERules(RuleTable &table) {
  table.add("kiln.router", [](Operation *op, ArrayRef<const RefTensor *> in,
                              SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto router = cast<RouterOp>(op);
    const RefTensor &logits = *in[0], &bias = *in[1];
    int64_t tokens = logits.shape[0], experts = logits.shape[1];
    int64_t groups = router.getNGroup(), keepGroups = router.getTopkGroup();
    int64_t topk = router.getTopK(), perGroup = experts / groups;
    bool softmax = router.getScoring() == "softmax";
    bool top2Sum = router.getGroupScore() == "top2_sum";
    double scaling = router.getRoutedScalingFactor().convertToDouble();
    RefTensor indices = resultLike(op, 0), weights = resultLike(op, 1);
    std::vector<double> scores(experts), choice(experts), groupScore(groups);
    for (int64_t t = 0; t < tokens; ++t) {
      routerScores(&logits.data[t * experts], experts, softmax, scores.data());
      for (int64_t e = 0; e < experts; ++e)
        choice[e] = scores[e] + bias.data[e];
      if (groups > 1) {
        for (int64_t g = 0; g < groups; ++g) {
          std::vector<double> members(choice.begin() + g * perGroup,
                                      choice.begin() + (g + 1) * perGroup);
          std::vector<int64_t> best = topK(members, top2Sum ? 2 : 1);
          groupScore[g] = 0;
          for (int64_t i : best)
            groupScore[g] += members[i];
        }
        std::vector<int64_t> kept = topK(groupScore, keepGroups);
        std::vector<bool> keep(groups, false);
        for (int64_t g : kept)
          keep[g] = true;
        for (int64_t e = 0; e < experts; ++e)
          if (!keep[e / perGroup])
            choice[e] = -std::numeric_limits<double>::infinity();
      }
      std::vector<int64_t> selected = topK(choice, topk);
      double sum = 0;
      for (int64_t j = 0; j < topk; ++j)
        sum += scores[selected[j]];
      for (int64_t j = 0; j < topk; ++j) {
        double w = scores[selected[j]];
        if (router.getNormTopkProb())
          w /= sum + 1e-20;
        indices.data[t * topk + j] = double(selected[j]);
        weights.data[t * topk + j] = w * scaling;
      }
    }
    out.push_back(std::move(indices));
    out.push_back(std::move(weights));
    return success();
  });

  table.add("kiln.expert_capacity", [](Operation *op, ArrayRef<const RefTensor *> in,
                                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto cap = cast<ExpertCapacityOp>(op);
    const int64_t experts = cap.getNumExperts(), capacity = cap.getCapacity();
    const RefTensor &idx = *in[0];
    const int64_t topk = idx.shape[1], groupPairs = int64_t(cap.getGroupTokens()) * topk;
    RefTensor kept = resultLike(op, 0);
    std::vector<int64_t> taken(experts);
    for (int64_t p = 0; p < idx.numElements(); ++p) {
      if (p % groupPairs == 0)
        std::fill(taken.begin(), taken.end(), 0);
      const double e = idx.data[p];
      if (!(e >= 0 && e < experts))
        return op->emitError() << "reference evaluator: expert index " << formatNumber(e)
                               << " of token " << p / topk << " is outside [0, " << experts
                               << ")";
      kept.data[p] = taken[int64_t(e)]++ < capacity ? e : -1.0;
    }
    out.push_back(std::move(kept));
    return success();
  });

  table.add("kiln.dispatch", [](Operation *op, ArrayRef<const RefTensor *> in,
                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    int64_t experts = cast<DispatchOp>(op).getNumExperts();
    const RefTensor &x = *in[0], &idx = *in[1];
    int64_t hidden = x.shape[1], topk = idx.shape[1], pairs = idx.numElements();
    RefTensor rows = resultLike(op, 0), offsets = resultLike(op, 1),
              source = resultLike(op, 2);
    // Bucket `experts` holds the dropped pairs (index -1), after every expert.
    std::vector<int64_t> count(experts + 1, 0);
    auto bucket = [&](int64_t p) { return idx.data[p] < 0 ? experts : int64_t(idx.data[p]); };
    for (int64_t p = 0; p < pairs; ++p) {
      double e = idx.data[p];
      if (!(e == -1 || (e >= 0 && e < experts)))
        return op->emitError() << "reference evaluator: expert index " << formatNumber(e)
                               << " of token " << p / topk << " is outside [0, " << experts
                               << ") and not -1 (dropped)";
      ++count[bucket(p)];
    }
    for (int64_t e = 0; e < experts; ++e)
      offsets.data[e + 1] = offsets.data[e] + count[e];
    std::vector<int64_t> next(offsets.data.begin(), offsets.data.end());
    for (int64_t p = 0; p < pairs; ++p) { // token-major: a stable sort by expert
      int64_t r = next[bucket(p)]++;
      source.data[r] = double(p);
      std::copy_n(&x.data[(p / topk) * hidden], hidden, &rows.data[r * hidden]);
    }
    out.push_back(std::move(rows));
    out.push_back(std::move(offsets));
    out.push_back(std::move(source));
    return success();
  });

  table.add("kiln.grouped_matmul", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &x = *in[0], &w = *in[1], &offsets = *in[2];
    int64_t rows = x.shape[0], k = x.shape[1], experts = w.shape[0], n = w.shape[1];
    if (failed(checkOffsets(op, offsets, rows)))
      return failure();
    RefTensor r = resultLike(op, 0);
    for (int64_t e = 0; e < experts; ++e) {
      const double *we = &w.data[e * n * k];
      for (int64_t i = int64_t(offsets.data[e]); i < int64_t(offsets.data[e + 1]); ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t l = 0; l < k; ++l)
            acc += x.data[i * k + l] * we[j * k + l];
          r.data[i * n + j] = acc;
        }
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.combine", [](Operation *op, ArrayRef<const RefTensor *> in,
                               SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &rows = *in[0], &weights = *in[1], &source = *in[2];
    int64_t hidden = rows.shape[1], pairs = rows.shape[0];
    RefTensor r = resultLike(op, 0);
    for (int64_t row = 0; row < pairs; ++row) {
      double p = source.data[row];
      if (!(p >= 0 && p < pairs))
        return op->emitError() << "reference evaluator: source entry " << formatNumber(p)
                               << " of row " << row << " is outside [0, "
                               << pairs << ")";
      int64_t token = int64_t(p) / weights.shape[1];
      double w = weights.data[int64_t(p)];
      for (int64_t h = 0; h < hidden; ++h)
        r.data[token * hidden + h] += w * rows.data[row * hidden + h];
    }
    out.push_back(std::move(r));
    return success();
  });
  table.add("kiln.expert_counts", [](Operation *op, ArrayRef<const RefTensor *> in,
                                     SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &offsets = *in[0];
    RefTensor perExpert = resultLike(op, 0), perRank = resultLike(op, 1);
    const int64_t groups = perExpert.shape[0], local = perExpert.shape[1];
    for (int64_t p = 0; p < groups; ++p) {
      for (int64_t l = 0; l < local; ++l) {
        const int64_t e = p * local + l;
        perExpert.data[e] = offsets.data[e + 1] - offsets.data[e];
      }
      perRank.data[p] = offsets.data[(p + 1) * local] - offsets.data[p * local];
    }
    out.push_back(std::move(perExpert));
    out.push_back(std::move(perRank));
    return success();
  });

  table.add("kiln.segment_transpose", [](Operation *op, ArrayRef<const RefTensor *> in,
                                         SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const bool inverse = cast<SegmentTransposeOp>(op).getInverse();
    const RefTensor &x = *in[0], &counts = *in[1];
    const int64_t outer = counts.shape[0], inner = counts.shape[1];
    const int64_t rowSize = x.numElements() / x.shape[0];
    // Start row of segment (g, l) in (g, l) order and in (l, g) order.
    std::vector<int64_t> byOuter(outer * inner), byInner(outer * inner);
    int64_t next = 0;
    for (int64_t g = 0; g < outer; ++g)
      for (int64_t l = 0; l < inner; ++l) {
        const double c = counts.data[g * inner + l];
        if (!(c >= 0) || c != std::floor(c))
          return op->emitError() << "reference evaluator: counts[" << g << ", " << l
                                 << "] = " << formatNumber(c) << " is not a row count";
        byOuter[g * inner + l] = next;
        next += int64_t(c);
      }
    if (next > x.shape[0])
      return op->emitError() << "reference evaluator: counts hold " << next
                             << " rows, more than x's " << x.shape[0];
    RefTensor result = resultLike(op, 0), offsets = resultLike(op, 1);
    next = 0;
    for (int64_t l = 0; l < inner; ++l) {
      if (!inverse)
        offsets.data[l] = double(next);
      for (int64_t g = 0; g < outer; ++g) {
        byInner[g * inner + l] = next;
        next += int64_t(counts.data[g * inner + l]);
      }
    }
    if (!inverse)
      offsets.data[inner] = double(next);
    else
      for (int64_t g = 0; g <= outer; ++g)
        offsets.data[g] = double(g < outer ? byOuter[g * inner] : next);
    for (int64_t s = 0; s < outer * inner; ++s) {
      const int64_t from = inverse ? byInner[s] : byOuter[s];
      const int64_t to = inverse ? byOuter[s] : byInner[s];
      std::copy_n(&x.data[from * rowSize], int64_t(counts.data[s]) * rowSize,
                  &result.data[to * rowSize]);
    }
    out.push_back(std::move(result));
    out.push_back(std::move(offsets));
    return success();
  });
}

} // namespace kiln::reference
