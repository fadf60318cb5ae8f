//===- LossRules.cpp - evaluation of cross_entropy ------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"

#include <algorithm>
#include <cmath>

using namespace mlir;

namespace kiln::reference {

void addLossRules(RuleTable &table) {
  table.add("kiln.cross_entropy", [](Operation *op, ArrayRef<const RefTensor *> in,
                                     SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double eps = cast<CrossEntropyOp>(op).getLabelSmoothing().convertToDouble();
    const RefTensor &logits = *in[0], &targets = *in[1], &mask = *in[2];
    int64_t vocab = logits.shape.back(), positions = logits.leadingElements();
    double total = 0, weight = 0;
    for (int64_t i = 0; i < positions; ++i) {
      if (mask.data[i] == 0)
        continue; // a masked position's target may be anything, even out of range
      double t = targets.data[i];
      if (!(t >= 0 && t < vocab))
        return op->emitError() << "reference evaluator: target " << formatNumber(t)
                               << " at flat position " << i
                               << " is outside [0, " << vocab << ")";
      const double *l = &logits.data[i * vocab];
      double m = *std::max_element(l, l + vocab), sum = 0, mean = 0;
      for (int64_t c = 0; c < vocab; ++c) {
        sum += std::exp(l[c] - m);
        mean += l[c];
      }
      // -log p[c] = (m - l[c]) + log(sum): no cancellation of large logits.
      double logSum = std::log(sum);
      double nll = (m - l[int64_t(t)]) + logSum;
      double smooth = (m - mean / vocab) + logSum; // mean over classes of -log p[c]
      total += mask.data[i] * ((1 - eps) * nll + eps * smooth);
      weight += mask.data[i];
    }
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    if (in.size() > 3) // the global batch's token count (kiln-data-parallel)
      weight = in[3]->data[0];
    r.data[0] = weight == 0 ? 0.0 : total / weight;
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
