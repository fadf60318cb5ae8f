//===- HostLaunchesMoE.cpp - host launches: routing, dispatch, grouped GEMM ---===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) for these catalog kernels:
// each checks its operands, reads its attributes and spells the call into
// runtime/kernels/.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "dialects/kiln/KilnDialect.h"

namespace kiln::codegen::detail {

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

// router(logits [tokens, experts], bias [experts]) -> (indices, weights [tokens, top_k])
void LaunchEmitter::router() {
  elements("ff", "if");
  rank(true, 0, 2);
  rank(true, 1, 1);
  rank(false, 0, 2);
  rank(false, 1, 2);
  bool softmax = softmaxScoring();
  StringRef groupScore = str("group_score");
  if (groupScore != "top2_sum" && groupScore != "max")
    fail("expects group_score \"top2_sum\" or \"max\", got \"", groupScore, "\"");
  int64_t nGroup = i64("n_group"), topkGroup = i64("topk_group"), topK = i64("top_k");
  bool norm = flag("norm_topk_prob");
  double scaling = f64("routed_scaling_factor");
  if (failed)
    return;
  sameCount(topK, outShape(0)[1], "top_k and the indices' second dimension");
  if (failed)
    return;
  open();
  line("kiln::kernels::RouterConfig config;");
  line("config.softmax = " + boolLiteral(softmax) + ";");
  line("config.top2Sum = " + boolLiteral(groupScore == "top2_sum") + ";");
  line("config.nGroup = " + intLiteral(nGroup) + ";");
  line("config.topkGroup = " + intLiteral(topkGroup) + ";");
  line("config.topK = " + intLiteral(topK) + ";");
  line("config.normTopkProb = " + boolLiteral(norm) + ";");
  line("config.routedScalingFactor = " + floatLiteral(scaling) + ";");
  checkedCall("router", {in(0), in(1), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
                         "config", out(0), out(1)});
  close();
}

// router_grad(logits [tokens, experts], indices [tokens, k], dweights) -> dlogits
void LaunchEmitter::routerGrad() {
  elements("fif", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  bool softmax = softmaxScoring();
  bool norm = flag("norm_topk_prob");
  double scaling = f64("routed_scaling_factor");
  if (failed)
    return;
  checkedCall("routerGrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
               intLiteral(inShape(1)[1]), boolLiteral(softmax), boolLiteral(norm),
               floatLiteral(scaling), out(0)});
}

// dispatch(x [tokens, hidden], indices [tokens, k]) -> (rows, offsets, source)
void LaunchEmitter::dispatch() {
  elements("fi", "fii");
  rank(true, 0, 2);
  rank(true, 1, 2);
  int64_t experts = i64("num_experts");
  if (failed)
    return;
  sameCount(experts + 1, outCount(1), "num_experts + 1 and the offsets' size");
  if (failed)
    return;
  checkedCall("dispatch", {in(0), in(1), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
                           intLiteral(inShape(1)[1]), intLiteral(experts), out(0), out(1),
                           out(2)});
}

// dispatch_grad(drows [tokens*k, hidden], source) -> dx [tokens, hidden]
void LaunchEmitter::dispatchGrad() {
  elements("fi", "f");
  rank(true, 0, 2);
  rank(false, 0, 2);
  int64_t topK = i64("top_k");
  if (failed)
    return;
  checkedCall("dispatchGrad", {in(0), in(1), intLiteral(outShape(0)[0]), intLiteral(topK),
                               intLiteral(outShape(0)[1]), out(0)});
}

// combine(rows [tokens*k, hidden], weights [tokens, k], source) -> [tokens, hidden]
void LaunchEmitter::combine() {
  elements("ffi", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  if (failed)
    return;
  checkedCall("combine", {in(0), in(1), in(2), intLiteral(inShape(1)[0]),
                          intLiteral(inShape(1)[1]), intLiteral(inShape(0)[1]), out(0)});
}

// combine_grad(rows, weights, source, dy) -> (drows, dweights)
void LaunchEmitter::combineGrad() {
  elements("ffif", "ff");
  rank(true, 0, 2);
  rank(true, 1, 2);
  if (failed)
    return;
  checkedCall("combineGrad",
              {in(0), in(1), in(2), in(3), intLiteral(inShape(1)[0]),
               intLiteral(inShape(1)[1]), intLiteral(inShape(0)[1]), out(0), out(1)});
}

// grouped_matmul(x [rows, K], weight [E, N, K], offsets [E + 1]) -> [rows, N]
void LaunchEmitter::groupedMatmul() {
  elements("wwi", "w");
  sameFloatElements();
  rank(true, 0, 2);
  rank(true, 1, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = inShape(1);
  checkedCall("groupedMatmul", {in(0), in(1), in(2), intLiteral(inShape(0)[0]),
                                intLiteral(w[2]), intLiteral(w[0]), intLiteral(w[1]), out(0)});
}

// grouped_matmul_dgrad(dy [rows, N], weight [E, N, K], offsets) -> dx [rows, K]
void LaunchEmitter::groupedMatmulDgrad() {
  elements("wwi", "w");
  sameFloatElements();
  rank(true, 0, 2);
  rank(true, 1, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = inShape(1);
  checkedCall("groupedMatmulDgrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(w[1]),
               intLiteral(w[0]), intLiteral(w[2]), out(0)});
}

// grouped_matmul_wgrad(dy [rows, N], x [rows, K], offsets) -> dweight [E, N, K]
void LaunchEmitter::groupedMatmulWgrad() {
  elements("wwi", "w");
  sameFloatElements();
  rank(true, 0, 2);
  rank(false, 0, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = outShape(0);
  checkedCall("groupedMatmulWgrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(w[1]),
               intLiteral(w[2]), intLiteral(w[0]), out(0)});
}

// expert_load(indices [...]) -> load [experts]
void LaunchEmitter::expertLoad() {
  elements("i", "f");
  int64_t experts = i64("num_experts");
  if (failed)
    return;
  sameCount(experts, outCount(0), "num_experts and the load's size");
  if (failed)
    return;
  checkedCall("expertLoad", {in(0), intLiteral(inCount(0)), intLiteral(experts), out(0)});
}

// expert_capacity(indices [tokens, k]) -> kept [tokens, k]
void LaunchEmitter::expertCapacity() {
  elements("i", "i");
  rank(true, 0, 2);
  rank(false, 0, 2);
  int64_t experts = i64("num_experts"), group = i64("group_tokens"),
          capacity = i64("capacity");
  if (failed)
    return;
  checkedCall("expertCapacity", {in(0), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
                                 intLiteral(experts), intLiteral(group), intLiteral(capacity),
                                 out(0)});
}

// balance_loss(logits [tokens, experts], indices [tokens, k]) -> scalar
/// Calls balanceLoss(Grad) with `callArgs`, passing total_sequences after the
/// error pointer when the step is data parallel.
void LaunchEmitter::globalSequences(std::vector<std::string> callArgs) {
  StringRef fn = launch.getKernel() == "balance_loss" ? "balanceLoss" : "balanceLossGrad";
  auto total = dyn_cast_or_null<IntegerAttr>(params.get("total_sequences"));
  if (!total) {
    checkedCall(fn, callArgs);
    return;
  }
  checkedCall(fn, callArgs, intLiteral(total.getInt()));
}

void LaunchEmitter::balanceLoss() {
  elements("fi", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  scalar(false, 0);
  bool softmax = softmaxScoring();
  int64_t sequences = i64("num_sequences");
  if (failed)
    return;
  std::vector<std::string> callArgs = {in(0), in(1), intLiteral(inShape(0)[0]),
                                       intLiteral(inShape(0)[1]), intLiteral(inShape(1)[1]),
                                       intLiteral(sequences), boolLiteral(softmax), out(0)};
  globalSequences(callArgs);
}

// balance_loss_grad(logits, indices, dloss) -> dlogits
void LaunchEmitter::balanceLossGrad() {
  elements("fif", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  scalar(true, 2);
  bool softmax = softmaxScoring();
  int64_t sequences = i64("num_sequences");
  if (failed)
    return;
  std::vector<std::string> callArgs = {
      in(0), in(1), deref(in(2)), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
      intLiteral(inShape(1)[1]), intLiteral(sequences), boolLiteral(softmax), out(0)};
  globalSequences(callArgs);
}

// expert_counts(offsets [experts + 1]) -> (per_expert [groups, L], per_rank [groups])
void LaunchEmitter::expertCounts() {
  elements("i", "ll");
  rank(true, 0, 1);
  rank(false, 0, 2);
  int64_t groups = i64("groups");
  if (failed)
    return;
  checkedCall("expertCounts", {in(0), intLiteral(inCount(0) - 1), intLiteral(groups), out(0),
                               out(1)});
}

// segment_transpose(x [capacity, ...], counts [outer, inner]) -> (reordered x, offsets)
void LaunchEmitter::segmentTranspose() {
  elements("fl", "fi");
  minRank(true, 0, 1);
  rank(true, 1, 2);
  bool inverse = flag("inverse", false);
  if (failed)
    return;
  checkedCall("segmentTranspose",
              {in(0), in(1), intLiteral(inShape(1)[0]), intLiteral(inShape(1)[1]),
               intLiteral(inShape(0)[0]), intLiteral(product(inShape(0).drop_front())),
               boolLiteral(inverse), out(0), out(1)});
}

} // namespace kiln::codegen::detail
