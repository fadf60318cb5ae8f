//===- TrainRules.cpp - evaluation of the training-step ops (KilnTrainOps.td)
//
// Expert load and the sequence-wise balance loss (with its gradient), the
// learning-rate schedule, gradient clipping, AdamW and the aux-loss-free bias
// update: each rule transcribes its op's description, in f64.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/RoutingMath.h"
#include "runtime/kernels/GradCompressMath.h"
#include "runtime/kernels/SparsityMath.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mlir;

namespace kiln::reference {

static RefTensor resultLike(Operation *op, unsigned i = 0) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

/// A 1-based step (lr_schedule, adamw); 0 and negative steps are errors.
static FailureOr<double> readStep(Operation *op, const RefTensor &step) {
  double t = step.data[0];
  if (t >= 1)
    return t;
  return op->emitError() << "reference evaluator: step " << formatNumber(t)
                         << " is not a 1-based step (expected >= 1)",
         failure();
}

/// The balance loss's f[i] = N / (K T) * #{t : i selected for t} of sequence
/// `seq` (tokens seq*T .. seq*T + T-1), from `indices` [tokens, K].
static FailureOr<std::vector<double>> selectionFractions(Operation *op,
                                                         const RefTensor &indices,
                                                         int64_t experts, int64_t seq,
                                                         int64_t seqLen) {
  int64_t topk = indices.shape[1];
  std::vector<double> f(experts, 0.0);
  for (int64_t t = seq * seqLen; t < (seq + 1) * seqLen; ++t)
    for (int64_t j = 0; j < topk; ++j) {
      double e = indices.data[t * topk + j];
      if (!(e >= 0 && e < experts))
        return op->emitError() << "reference evaluator: expert index " << formatNumber(e)
                               << " of token " << t << " is outside [0, " << experts
                               << ")",
               failure();
      f[int64_t(e)] += 1;
    }
  for (double &v : f)
    v *= double(experts) / double(topk * seqLen);
  return f;
}

static void addBalanceRules(RuleTable &table) {
  table.add("kiln.expert_load", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &indices = *in[0];
    RefTensor load = resultLike(op);
    int64_t experts = load.numElements();
    for (int64_t i = 0; i < indices.numElements(); ++i) {
      double e = indices.data[i];
      if (e == -1)
        continue; // dropped by kiln.expert_capacity
      if (!(e >= 0 && e < experts))
        return op->emitError() << "reference evaluator: expert index " << formatNumber(e)
                               << " at flat position " << i << " is outside [0, "
                               << experts << ") and not -1 (dropped)";
      load.data[int64_t(e)] += 1;
    }
    out.push_back(std::move(load));
    return success();
  });

  table.add("kiln.balance_loss", [](Operation *op, ArrayRef<const RefTensor *> in,
                                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto balance = cast<BalanceLossOp>(op);
    const RefTensor &logits = *in[0], &indices = *in[1];
    int64_t experts = logits.shape[1], sequences = balance.getNumSequences();
    int64_t seqLen = logits.shape[0] / sequences;
    bool softmax = balance.getScoring() == "softmax";
    std::vector<double> s(experts);
    double loss = 0;
    for (int64_t seq = 0; seq < sequences; ++seq) {
      FailureOr<std::vector<double>> f =
          selectionFractions(op, indices, experts, seq, seqLen);
      if (failed(f))
        return failure();
      std::vector<double> prob(experts, 0.0); // P[i] * T
      for (int64_t t = seq * seqLen; t < (seq + 1) * seqLen; ++t) {
        routerScores(&logits.data[t * experts], experts, softmax, s.data());
        double z = 0;
        for (double v : s)
          z += v;
        for (int64_t i = 0; i < experts; ++i)
          prob[i] += s[i] / z;
      }
      for (int64_t i = 0; i < experts; ++i)
        loss += (*f)[i] * prob[i] / seqLen;
    }
    RefTensor r = resultLike(op);
    r.data[0] = loss / double(balance.getTotalSequences().value_or(sequences));
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.balance_loss_grad", [](Operation *op, ArrayRef<const RefTensor *> in,
                                         SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto balance = cast<BalanceLossGradOp>(op);
    const RefTensor &logits = *in[0], &indices = *in[1];
    int64_t experts = logits.shape[1], sequences = balance.getNumSequences();
    int64_t seqLen = logits.shape[0] / sequences;
    bool softmax = balance.getScoring() == "softmax";
    double q = in[2]->data[0] /
               double(int64_t(balance.getTotalSequences().value_or(sequences)) * seqLen);
    RefTensor dlogits = resultLike(op);
    std::vector<double> s(experts), ds(experts);
    for (int64_t seq = 0; seq < sequences; ++seq) {
      FailureOr<std::vector<double>> f =
          selectionFractions(op, indices, experts, seq, seqLen);
      if (failed(f))
        return failure();
      for (int64_t t = seq * seqLen; t < (seq + 1) * seqLen; ++t) {
        routerScores(&logits.data[t * experts], experts, softmax, s.data());
        double z = 0, fs = 0;
        for (int64_t j = 0; j < experts; ++j) {
          z += s[j];
          fs += (*f)[j] * s[j];
        }
        for (int64_t i = 0; i < experts; ++i)
          ds[i] = q * ((*f)[i] - fs / z) / z;
        routerScoresBackward(s.data(), ds.data(), experts, softmax,
                             &dlogits.data[t * experts]);
      }
    }
    out.push_back(std::move(dlogits));
    return success();
  });

  table.add("kiln.bias_update", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double speed = cast<BiasUpdateOp>(op).getSpeed().convertToDouble();
    const RefTensor &bias = *in[0], &load = *in[1];
    if (cast<BiasUpdateOp>(op).getSkip() && in[2]->data[0] != 0) {
      out.push_back(bias); // a skipped step
      return success();
    }
    double mean = 0;
    for (double v : load.data)
      mean += v;
    mean /= load.numElements();
    RefTensor r = resultLike(op);
    for (int64_t e = 0; e < r.numElements(); ++e) {
      double d = mean - load.data[e];
      r.data[e] = bias.data[e] + speed * double((d > 0) - (d < 0));
    }
    out.push_back(std::move(r));
    return success();
  });
}

static void addSparsityRules(RuleTable &table) {
  table.add("kiln.sparsity_mask_2_4", [](Operation *op, ArrayRef<const RefTensor *> in,
                                         SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto update = cast<SparsityMask24Op>(op);
    FailureOr<double> step = readStep(op, *in[2]);
    if (failed(step))
      return failure();
    const RefTensor &weight = *in[0], &mask = *in[1];
    RefTensor r = resultLike(op);
    switch (kernels::maskStep(int64_t(*step), update.getStartStepAttr().getInt(),
                              update.getMaskEveryAttr().getInt())) {
    case kernels::MaskStep::Dense:
      std::fill(r.data.begin(), r.data.end(), 1.0);
      break;
    case kernels::MaskStep::Select:
      // The rule compares f32 values, as the weights are f32.
      for (size_t g = 0; g < r.data.size() / 4; ++g) {
        float group[4];
        for (size_t j = 0; j < 4; ++j)
          group[j] = float(weight.data[4 * g + j]);
        const unsigned keep = kernels::keep2of4(group);
        for (size_t j = 0; j < 4; ++j)
          r.data[4 * g + j] = (keep >> j) & 1u ? 1.0 : 0.0;
      }
      break;
    case kernels::MaskStep::Keep:
      r.data = mask.data;
      break;
    }
    out.push_back(std::move(r));
    return success();
  });
}

static void addOptimizerRules(RuleTable &table) {
  table.add("kiln.lr_schedule", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto sched = cast<LrScheduleOp>(op);
    FailureOr<double> t = readStep(op, *in[0]);
    if (failed(t))
      return failure();
    double lr = sched.getLr().convertToDouble(), minLr = sched.getMinLr().convertToDouble();
    double warmup = double(sched.getWarmupSteps()), total = double(sched.getTotalSteps());
    RefTensor r = resultLike(op);
    if (*t <= warmup) {
      r.data[0] = lr * *t / warmup;
    } else {
      double progress = std::clamp((*t - warmup) / std::max(1.0, total - warmup), 0.0, 1.0);
      r.data[0] = minLr + (lr - minLr) / 2 * (1 + std::cos(M_PI * progress));
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.global_norm", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double sum = 0;
    for (const RefTensor *t : in)
      for (double v : t->data)
        sum += v * v;
    RefTensor r = resultLike(op);
    r.data[0] = std::sqrt(sum);
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.clip_scale", [](Operation *op, ArrayRef<const RefTensor *> in,
                                  SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    double maxNorm = cast<ClipScaleOp>(op).getMaxNorm().convertToDouble();
    double norm = in[0]->data[0];
    RefTensor r = resultLike(op);
    r.data[0] = maxNorm == 0 ? 1.0 : std::min(1.0, maxNorm / (norm + 1e-6));
    out.push_back(std::move(r));
    return success();
  });

  table.add("kiln.grad_scaler", [](Operation *op, ArrayRef<const RefTensor *> in,
                                   SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto scaler = cast<GradScalerOp>(op);
    const double norm = in[0]->data[0], scale = in[1]->data[0];
    const double tracker = in[2]->data[0], updates = in[3]->data[0];
    const bool overflow = !std::isfinite(norm);
    double newScale = scale, newTracker = tracker + 1, newUpdates = updates + 1;
    if (overflow) {
      newScale = scale * scaler.getBackoffFactor().convertToDouble();
      newTracker = 0;
      newUpdates = updates;
    } else if (newTracker == double(scaler.getGrowthInterval())) {
      newScale = scale * scaler.getGrowthFactor().convertToDouble();
      newTracker = 0;
    }
    for (double v : {double(overflow), 1 / scale, newScale, newTracker, newUpdates}) {
      RefTensor r = resultLike(op, out.size());
      r.data[0] = v;
      out.push_back(std::move(r));
    }
    return success();
  });

  table.add("kiln.adamw", [](Operation *op, ArrayRef<const RefTensor *> in,
                             SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto adamw = cast<AdamWOp>(op);
    const RefTensor &p = *in[0], &grad = *in[1], &m = *in[2], &v = *in[3];
    FailureOr<double> t = readStep(op, *in[5]);
    if (failed(t))
      return failure();
    double lr = in[4]->data[0], gradScale = in[6]->data[0];
    const RefTensor *mask = adamw.getMask() ? in[adamw.getSkip() ? 8 : 7] : nullptr;
    if (adamw.getSkip() && in[7]->data[0] != 0) {
      // A step kiln.grad_scaler skips: the state stays as it was.
      out.append({p, m, v});
      return success();
    }
    double b1 = adamw.getBeta1().convertToDouble(), b2 = adamw.getBeta2().convertToDouble();
    double eps = adamw.getEps().convertToDouble();
    double decay = 1 - lr * adamw.getWeightDecay().convertToDouble();
    double correction1 = 1 - std::pow(b1, *t), correction2 = 1 - std::pow(b2, *t);
    RefTensor newP = p, newM = m, newV = v;
    for (int64_t i = 0; i < p.numElements(); ++i) {
      const double keep = mask ? mask->data[i] : 1.0;
      double g = grad.data[i] * keep * gradScale;
      newM.data[i] = b1 * (m.data[i] * keep) + (1 - b1) * g;
      newV.data[i] = b2 * (v.data[i] * keep) + (1 - b2) * g * g;
      newP.data[i] = p.data[i] * keep * decay -
                     lr * (newM.data[i] / correction1) /
                         (std::sqrt(newV.data[i] / correction2) + eps);
    }
    out.push_back(std::move(newP));
    out.push_back(std::move(newM));
    out.push_back(std::move(newV));
    return success();
  });
}

/// Top-k compression is defined on f32 and bytes (its message holds f32 and
/// int8 bits): the rules run the kernels' own code on f32 copies.
static void addCompressionRules(RuleTable &table) {
  auto floats = [](const RefTensor &t) { return std::vector<float>(t.data.begin(), t.data.end()); };
  table.add("kiln.topk_compress", [floats](Operation *op, ArrayRef<const RefTensor *> in,
                                           SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto compress = cast<TopkCompressOp>(op);
    std::vector<float> grad = floats(*in[0]), residual = floats(*in[1]), next(grad.size());
    RefTensor message = resultLike(op, 0), newResidual = resultLike(op, 1);
    std::vector<unsigned char> bytes(size_t(message.numElements()));
    std::vector<int64_t> order;
    std::vector<float> sent;
    kernels::topkCompressTensor(grad.data(), residual.data(), int64_t(grad.size()),
                                int64_t(compress.getK()), compress.getQuantize() == "int8",
                                bytes.data(), next.data(), order, sent);
    for (size_t i = 0; i < bytes.size(); ++i)
      message.data[i] = double(int8_t(bytes[i]));
    std::copy(next.begin(), next.end(), newResidual.data.begin());
    out.push_back(std::move(message));
    out.push_back(std::move(newResidual));
    return success();
  });
  table.add("kiln.topk_decompress", [](Operation *op, ArrayRef<const RefTensor *> in,
                                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto decompress = cast<TopkDecompressOp>(op);
    const bool int8 = decompress.getQuantize() == "int8";
    const int64_t k = decompress.getK(), size = kernels::topkMessageBytes(k, int8);
    std::vector<unsigned char> bytes(in[0]->data.size());
    for (size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = (unsigned char)int8_t(in[0]->data[i]);
    RefTensor result = resultLike(op, 0);
    std::vector<float> sum(size_t(result.numElements()), 0.0f);
    for (int64_t r = 0; r < int64_t(bytes.size()) / size; ++r) {
      int64_t bad = 0;
      if (!kernels::topkDecompressAdd(bytes.data() + r * size, int64_t(sum.size()), k, int8,
                                      sum.data(), &bad))
        return op->emitError() << "reference evaluator: the message of rank " << r
                               << " holds index " << bad << ", outside [0, " << sum.size()
                               << ")";
    }
    std::copy(sum.begin(), sum.end(), result.data.begin());
    out.push_back(std::move(result));
    return success();
  });
}

void addTrainRules(RuleTable &table) {
  addBalanceRules(table);
  addOptimizerRules(table);
  addSparsityRules(table);
  addCompressionRules(table);
}

} // namespace kiln::reference
