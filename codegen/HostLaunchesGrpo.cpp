//===- HostLaunchesGrpo.cpp - host launches: token_logprobs and GRPO ------===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) for the GRPO kernels of
// the catalog (KilnLossOps.td, KilnGradOps.td): each checks its operands,
// reads its attributes (absent ones take the kiln op's ODS default) and
// spells the call into runtime/kernels/Grpo.h. grpo_loss and its gradient
// take an optional last in, the global denominator (kiln-data-parallel).
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "runtime/kernels/GrpoMath.h"

namespace kiln::codegen::detail {

//===----------------------------------------------------------------------===//
// GRPO
//===----------------------------------------------------------------------===//

// token_logprobs(logits [positions..., vocab], targets [positions...])
// -> [positions...]
void LaunchEmitter::tokenLogprobs() {
  elements("fi", "f");
  minRank(true, 0, 1);
  double temperature = f64("temperature", 1.0);
  if (failed)
    return;
  int64_t positions = inCount(1), vocab = inShape(0).back();
  sameCount(positions * vocab, inCount(0), "the logits' size and positions * vocab");
  sameCount(outCount(0), positions, "the out's and the targets' sizes");
  if (failed)
    return;
  call("tokenLogprobs", {out(0), in(0), in(1), intLiteral(positions), intLiteral(vocab),
                         floatLiteral(temperature)});
}

std::vector<std::string> LaunchEmitter::grpoOperands() {
  // logits, targets, mask, advantages, old_logprobs, ref_logprobs.
  rank(true, 0, 3);
  if (failed)
    return {};
  ArrayRef<int64_t> logits = inShape(0);
  int64_t rows = logits[0], seq = logits[1];
  for (unsigned i : {1u, 2u, 4u, 5u})
    if (inCount(i) != rows * seq)
      fail("expects in #", i, " to have rows * seq = ", rows * seq, " elements, got ",
           inType(i));
  sameCount(inCount(3), rows, "the advantages' size and rows");
  return {intLiteral(rows), intLiteral(seq), intLiteral(logits[2])};
}

std::vector<std::string> LaunchEmitter::grpoAttributes() {
  double temperature = f64("temperature", 1.0), clipLow = f64("clip_low", 0.2),
         clipHigh = f64("clip_high", 0.2), beta = f64("beta", 0.0);
  StringRef aggregation = "token-mean";
  if (Attribute attr = param("aggregation", "string", true)) {
    if (auto s = dyn_cast<StringAttr>(attr))
      aggregation = s.getValue();
    else
      fail("expects 'aggregation' to be a string attribute, got ", attr);
  }
  kernels::GrpoAggregation parsed = kernels::GrpoAggregation::TokenMean;
  if (!kernels::parseGrpoAggregation(aggregation.str().c_str(), parsed))
    fail("expects aggregation \"token-mean\", \"seq-mean-token-mean\" or "
         "\"seq-mean-token-sum-norm\", got \"",
         aggregation, "\"");
  int64_t maxTokens = 0;
  if (Attribute attr = param("max_tokens", "integer", true)) {
    if (auto i = dyn_cast<IntegerAttr>(attr))
      maxTokens = i.getInt();
    else
      fail("expects 'max_tokens' to be an integer attribute, got ", attr);
  }
  StringRef enumerator = parsed == kernels::GrpoAggregation::TokenMean ? "TokenMean"
                         : parsed == kernels::GrpoAggregation::SeqMeanTokenMean
                             ? "SeqMeanTokenMean"
                             : "SeqMeanTokenSumNorm";
  return {floatLiteral(temperature),
          floatLiteral(clipLow),
          floatLiteral(clipHigh),
          floatLiteral(beta),
          ("kiln::kernels::GrpoAggregation::" + enumerator).str(),
          intLiteral(maxTokens)};
}

// grpo_loss(logits [rows, seq, vocab], targets, mask, advantages [rows],
// old_logprobs, ref_logprobs[, count]) -> scalar
void LaunchEmitter::grpoLoss() {
  bool hasCount = launch.getIns().size() == 7;
  elements(hasCount ? "fifffff" : "fiffff", "f");
  if (hasCount)
    scalar(true, 6);
  scalar(false, 0);
  std::vector<std::string> sizes = grpoOperands(), attributes = grpoAttributes();
  if (failed)
    return;
  std::vector<std::string> callArgs = {in(0), in(1), in(2), in(3), in(4), in(5)};
  llvm::append_range(callArgs, sizes);
  llvm::append_range(callArgs, attributes);
  if (hasCount)
    callArgs.push_back(in(6));
  callInto(out(0), "grpoLossForward", callArgs);
}

// grpo_loss_grad(logits, targets, mask, advantages, old_logprobs,
// ref_logprobs, dloss[, count]) -> dlogits [rows, seq, vocab]
void LaunchEmitter::grpoLossGrad() {
  bool hasCount = launch.getIns().size() == 8;
  elements(hasCount ? "fiffffff" : "fifffff", "f");
  scalar(true, 6);
  if (hasCount)
    scalar(true, 7);
  std::vector<std::string> sizes = grpoOperands(), attributes = grpoAttributes();
  if (failed)
    return;
  sameCount(outCount(0), inCount(0), "the out's and the logits' sizes");
  if (failed)
    return;
  std::vector<std::string> callArgs = {out(0), in(0), in(1), in(2),
                                       in(3),  in(4), in(5), deref(in(6))};
  llvm::append_range(callArgs, sizes);
  llvm::append_range(callArgs, attributes);
  if (hasCount)
    callArgs.push_back(in(7));
  call("grpoLossBackward", callArgs);
}

} // namespace kiln::codegen::detail
