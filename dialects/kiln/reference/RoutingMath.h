//===- RoutingMath.h - router scores, top-k and expert offsets ------------===//
//
// Shared by the MoE forward rules (router, grouped_matmul), their backward
// rules (router_grad, grouped_matmul_dgrad/wgrad) and the balance loss and
// its gradient: the scores are computed once, in one way, everywhere.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_ROUTINGMATH_H
#define KILN_REFERENCE_ROUTINGMATH_H

#include "dialects/kiln/reference/DenseMath.h"
#include "dialects/kiln/reference/Evaluator.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace kiln::reference {

/// scores[0..experts) = sigmoid(logits) or, with `softmax`, softmax(logits)
/// (kiln.router's step 1).
inline void routerScores(const double *logits, int64_t experts, bool softmax,
                         double *scores) {
  if (softmax) {
    std::copy_n(logits, experts, scores);
    softmaxInPlace(scores, experts);
  } else {
    for (int64_t e = 0; e < experts; ++e)
      scores[e] = sigmoid(logits[e]);
  }
}

/// The gradient of the logits from the gradient `ds` of the scores `s`:
/// sigmoid: ds * s * (1 - s); softmax: s * (ds - sum_f ds[f] s[f]).
inline void routerScoresBackward(const double *s, const double *ds, int64_t experts,
                                 bool softmax, double *dlogits) {
  double dot = 0;
  if (softmax)
    for (int64_t e = 0; e < experts; ++e)
      dot += ds[e] * s[e];
  for (int64_t e = 0; e < experts; ++e)
    dlogits[e] = softmax ? s[e] * (ds[e] - dot) : ds[e] * s[e] * (1 - s[e]);
}

/// Indices of the `k` largest values, largest first; ties go to the lower
/// index (a stable sort), so selection never depends on the sort library.
inline std::vector<int64_t> topK(const std::vector<double> &values, int64_t k) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  order.resize(k);
  return order;
}

/// Checks an expert-offsets tensor: starts at 0, non-decreasing, ends at
/// most at rows (rows after the last offset are buffer capacity).
inline mlir::LogicalResult checkOffsets(mlir::Operation *op, const RefTensor &offsets,
                                        int64_t rows) {
  const std::vector<double> &o = offsets.data;
  bool ok = o.front() == 0 && o.back() <= rows;
  for (size_t e = 1; ok && e < o.size(); ++e)
    ok = o[e] >= o[e - 1];
  if (ok)
    return mlir::success();
  return op->emitError() << "reference evaluator: expert offsets must start at 0, "
                            "never decrease and end at most at the row count "
                         << rows << "; got first " << int64_t(o.front()) << ", last "
                         << int64_t(o.back());
}

} // namespace kiln::reference

#endif // KILN_REFERENCE_ROUTINGMATH_H
