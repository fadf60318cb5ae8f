//===- GrpoRules.cpp - evaluation of token_logprobs and the GRPO loss -----===//
//
// kiln.token_logprobs, kiln.grpo_loss and kiln.grpo_loss_grad in f64, with
// the per-token terms of runtime/kernels/GrpoMath.h (the kernels' own).
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "runtime/kernels/GrpoMath.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mlir;

namespace kiln::reference {

namespace {

/// log softmax(logits[i] / T)[target] of one row of `vocab` logits; writes
/// softmax(logits[i] / T) to `probs` when given.
double rowLogprob(const double *logits, int64_t vocab, int64_t target, double temperature,
                  double *probs = nullptr) {
  double m = *std::max_element(logits, logits + vocab) / temperature, sum = 0;
  for (int64_t c = 0; c < vocab; ++c)
    sum += std::exp(logits[c] / temperature - m);
  if (probs)
    for (int64_t c = 0; c < vocab; ++c)
      probs[c] = std::exp(logits[c] / temperature - m) / sum;
  return (logits[target] / temperature - m) - std::log(sum);
}

LogicalResult checkTarget(Operation *op, double t, int64_t vocab, int64_t i) {
  if (t >= 0 && t < vocab)
    return success();
  return op->emitError() << "reference evaluator: target " << formatNumber(t)
                         << " at flat position " << i << " is outside [0, " << vocab << ")";
}

/// What grpo_loss and its gradient both need: per position its weight in the
/// reduction and its term.
template <class Op>
FailureOr<std::vector<std::pair<double, kernels::GrpoTerm<double>>>>
grpoTerms(Op op, ArrayRef<const RefTensor *> in, std::vector<double> *probs) {
  const RefTensor &logits = *in[0], &targets = *in[1], &mask = *in[2], &adv = *in[3],
                  &old = *in[4], &ref = *in[5];
  const int64_t rows = logits.shape[0], seq = logits.shape[1], vocab = logits.shape[2];
  const double t = op.getTemperature().convertToDouble();
  // The verifier accepted the spelling.
  kernels::GrpoAggregation aggregation = kernels::GrpoAggregation::TokenMean;
  kernels::parseGrpoAggregation(op.getAggregation().str().c_str(), aggregation);
  const bool hasCount = op.getCount() != nullptr;
  const double count = hasCount ? in.back()->data[0] : 0.0;
  double batchTokens = 0;
  for (double m : mask.data)
    batchTokens += m;
  std::vector<std::pair<double, kernels::GrpoTerm<double>>> out(rows * seq);
  if (probs)
    probs->assign(logits.data.size(), 0.0);
  for (int64_t b = 0; b < rows; ++b) {
    double rowTokens = 0;
    for (int64_t s = 0; s < seq; ++s)
      rowTokens += mask.data[b * seq + s];
    const double weight = kernels::grpoRowWeight(aggregation, rowTokens, double(rows),
                                                 batchTokens, op.getMaxTokens(), hasCount, count);
    for (int64_t s = 0; s < seq; ++s) {
      const int64_t i = b * seq + s;
      if (mask.data[i] == 0)
        continue;
      if (failed(checkTarget(op, targets.data[i], vocab, i)))
        return failure();
      const double lp = rowLogprob(&logits.data[i * vocab], vocab, int64_t(targets.data[i]), t,
                                   probs ? &(*probs)[i * vocab] : nullptr);
      out[i] = {mask.data[i] * weight,
                kernels::grpoToken(lp, old.data[i], ref.data[i], adv.data[b],
                                   op.getClipLow().convertToDouble(),
                                   op.getClipHigh().convertToDouble(),
                                   op.getBeta().convertToDouble())};
    }
  }
  return out;
}

} // namespace

void addGrpoRules(RuleTable &table) {
  table.add("kiln.token_logprobs", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &logits = *in[0], &targets = *in[1];
    const int64_t vocab = logits.shape.back();
    const double t = cast<TokenLogprobsOp>(op).getTemperature().convertToDouble();
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    for (int64_t i = 0; i < r.numElements(); ++i) {
      if (failed(checkTarget(op, targets.data[i], vocab, i)))
        return failure();
      r.data[i] = rowLogprob(&logits.data[i * vocab], vocab, int64_t(targets.data[i]), t);
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.grpo_loss", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto terms = grpoTerms(cast<GrpoLossOp>(op), in, nullptr);
    if (failed(terms))
      return failure();
    double loss = 0;
    for (auto &[weight, term] : *terms)
      loss += weight * term.loss;
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    r.data[0] = loss;
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.grpo_loss_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto grad = cast<GrpoLossGradOp>(op);
    std::vector<double> probs;
    auto terms = grpoTerms(grad, in, &probs);
    if (failed(terms))
      return failure();
    const RefTensor &logits = *in[0], &targets = *in[1];
    const int64_t vocab = logits.shape[2];
    const double dloss = in[6]->data[0], t = grad.getTemperature().convertToDouble();
    auto type = cast<ShapedType>(op->getResult(0).getType());
    RefTensor r(type.getElementType(), type.getShape());
    for (size_t i = 0; i < terms->size(); ++i) {
      const auto &[weight, term] = (*terms)[i];
      if (weight == 0)
        continue;
      const double g = dloss * weight * term.dLossDlp / t;
      for (int64_t c = 0; c < vocab; ++c)
        r.data[i * vocab + c] =
            g * ((c == int64_t(targets.data[i]) ? 1.0 : 0.0) - probs[i * vocab + c]);
    }
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
