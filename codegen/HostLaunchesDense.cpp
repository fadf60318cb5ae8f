//===- HostLaunchesDense.cpp - host launches: dense and loss kernels --------===//
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
// Dense
//===----------------------------------------------------------------------===//

// embedding(table [vocab, hidden], ids [...]) -> [..., hidden]
void LaunchEmitter::embedding() {
  elements("fi", "f");
  rank(true, 0, 2);
  if (failed)
    return;
  call("embeddingForward", {out(0), in(0), in(1), intLiteral(inCount(1)),
                            intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1])});
}

// embedding_grad(dy [..., hidden], ids [...]) -> [vocab, hidden]
void LaunchEmitter::embeddingGrad() {
  elements("fi", "f");
  rank(false, 0, 2);
  if (failed)
    return;
  call("embeddingBackward", {out(0), in(0), in(1), intLiteral(inCount(1)),
                             intLiteral(outShape(0)[0]), intLiteral(outShape(0)[1])});
}

// linear(x [rows, in], w [out, in]) -> [rows, out]
void LaunchEmitter::linear() {
  elements("ww", "w");
  sameFloatElements();
  minRank(true, 0, 1);
  rank(true, 1, 2);
  if (failed)
    return;
  int64_t k = inShape(1)[1], n = inShape(1)[0];
  sameCount(inShape(0).back(), k, "x's last dimension and the weight's in dimension");
  if (failed)
    return;
  int64_t rows = product(inShape(0).drop_back());
  call("linearForward",
       {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// linear_dgrad(dy [rows, out], w [out, in]) -> dx [rows, in]
void LaunchEmitter::linearDgrad() {
  elements("ww", "w");
  sameFloatElements();
  minRank(true, 0, 1);
  rank(true, 1, 2);
  if (failed)
    return;
  int64_t k = inShape(1)[1], n = inShape(1)[0];
  sameCount(inShape(0).back(), n, "dy's last dimension and the weight's out dimension");
  if (failed)
    return;
  int64_t rows = product(inShape(0).drop_back());
  call("linearDgrad", {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// linear_wgrad(dy [rows, out], x [rows, in]) -> dw [out, in]
void LaunchEmitter::linearWgrad() {
  elements("ww", "w");
  sameFloatElements();
  minRank(true, 0, 1);
  minRank(true, 1, 1);
  rank(false, 0, 2);
  if (failed)
    return;
  int64_t n = outShape(0)[0], k = outShape(0)[1];
  int64_t rows = product(inShape(0).drop_back());
  sameCount(rows, product(inShape(1).drop_back()), "the rows of dy and x");
  if (failed)
    return;
  call("linearWgrad", {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// rms_norm(x [rows, hidden], gamma [hidden]) -> y
void LaunchEmitter::rmsNorm() {
  elements("ff", "f");
  minRank(true, 0, 1);
  rank(true, 1, 1);
  double eps = f64("epsilon");
  if (failed)
    return;
  int64_t hidden = inShape(0).back();
  call("rmsNormForward", {out(0), in(0), in(1), intLiteral(product(inShape(0).drop_back())),
                          intLiteral(hidden), floatLiteral(eps)});
}

// rms_norm_grad(dy, x, gamma) -> (dx, dgamma)
void LaunchEmitter::rmsNormGrad() {
  elements("fff", "ff");
  minRank(true, 1, 1);
  rank(true, 2, 1);
  double eps = f64("epsilon");
  if (failed)
    return;
  int64_t hidden = inShape(1).back();
  call("rmsNormBackward",
       {out(0), out(1), in(0), in(1), in(2), intLiteral(product(inShape(1).drop_back())),
        intLiteral(hidden), floatLiteral(eps)});
}

// broadcast(x) -> result, same rank, x's dims equal or 1.
void LaunchEmitter::broadcast() {
  elements("f", "f");
  rank(false, 0, inType(0).getRank());
  if (inType(0).getRank() > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(0));
  if (failed)
    return;
  for (auto [x, y] : llvm::zip(inShape(0), outShape(0)))
    if (x != y && x != 1)
      fail("cannot broadcast ", inType(0), " to ", outType(0));
  if (failed)
    return;
  call("broadcast", {out(0), in(0), braced(inShape(0)), braced(outShape(0))});
}

// unbroadcast(x) -> result, summing where result's dim is 1 and x's larger.
void LaunchEmitter::unbroadcast() {
  elements("f", "f");
  rank(false, 0, inType(0).getRank());
  if (inType(0).getRank() > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(0));
  if (failed)
    return;
  for (auto [x, y] : llvm::zip(inShape(0), outShape(0)))
    if (x != y && y != 1)
      fail("cannot sum ", inType(0), " to ", outType(0));
  if (failed)
    return;
  call("unbroadcast", {out(0), in(0), braced(inShape(0)), braced(outShape(0))});
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

// cross_entropy(logits [positions, vocab], targets, mask) -> scalar
void LaunchEmitter::crossEntropy() {
  // A 4th in: the global batch's token count (kiln-data-parallel).
  elements(launch.getIns().size() == 4 ? "fiff" : "fif", "f");
  minRank(true, 0, 1);
  scalar(false, 0);
  double smoothing = f64("label_smoothing", 0.0);
  if (failed)
    return;
  int64_t positions = inCount(1), vocab = inShape(0).back();
  sameCount(positions * vocab, inCount(0), "the logits' size and positions * vocab");
  sameCount(positions, inCount(2), "the targets' and the mask's sizes");
  if (failed)
    return;
  std::vector<std::string> callArgs = {in(0), in(1), in(2), intLiteral(positions),
                                       intLiteral(vocab), floatLiteral(smoothing)};
  if (launch.getIns().size() == 4)
    callArgs.push_back(in(3));
  callInto(out(0), "crossEntropyForward", callArgs);
}

// cross_entropy_grad(logits, targets, mask, dloss) -> dlogits
void LaunchEmitter::crossEntropyGrad() {
  elements(launch.getIns().size() == 5 ? "fifff" : "fiff", "f");
  minRank(true, 0, 1);
  scalar(true, 3);
  double smoothing = f64("label_smoothing", 0.0);
  if (failed)
    return;
  int64_t positions = inCount(1), vocab = inShape(0).back();
  sameCount(positions * vocab, inCount(0), "the logits' size and positions * vocab");
  if (failed)
    return;
  std::vector<std::string> callArgs = {out(0), in(0), in(1), in(2), intLiteral(positions),
                                       intLiteral(vocab), floatLiteral(smoothing), deref(in(3))};
  if (launch.getIns().size() == 5)
    callArgs.push_back(in(4));
  call("crossEntropyBackward", callArgs);
}

} // namespace kiln::codegen::detail
