//===- HostLaunchesAttention.cpp - host launches: rope and attention --------===//
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
// Attention
//===----------------------------------------------------------------------===//

// rope(x [batch, seq, heads, dim] [, start [batch]]) -> y: with `start` (a
// decode program's chunk), ropeForwardAt (runtime/kernels/Decode.h).
void LaunchEmitter::rope() {
  bool hasStart = launch.getIns().size() == 2;
  elements(hasStart ? "fi" : "f", "f");
  rank(true, 0, 4);
  if (hasStart)
    rank(true, 1, 1);
  double theta = f64("theta");
  bool interleaved = flag("interleaved");
  bool transpose = flag("transpose", false);
  Attribute yarnAttr = params.get("yarn");
  auto yarn = dyn_cast_or_null<kiln::YarnAttr>(yarnAttr);
  if (yarnAttr && !yarn)
    fail("expects 'yarn' to be a #kiln.yarn attribute, got ", yarnAttr);
  if (failed)
    return;
  ArrayRef<int64_t> s = inShape(0);
  if (hasStart)
    sameCount(inCount(1), s[0], "start's size and x's batch");
  if (failed)
    return;
  SmallVector<std::string> callArgs = {out(0), in(0)};
  if (hasStart)
    callArgs.push_back(in(1));
  callArgs.append({intLiteral(s[0]), intLiteral(s[1]), intLiteral(s[2]), intLiteral(s[3]),
                   doubleLiteral(theta), boolLiteral(interleaved), yarn ? "&yarn" : "nullptr",
                   boolLiteral(transpose)});
  StringRef fn = hasStart ? "ropeForwardAt" : "ropeForward";
  if (!yarn) {
    call(fn, callArgs);
    return;
  }
  open();
  line("const kiln::kernels::YarnConfig yarn = {/*factor=*/" +
       doubleLiteral(yarn.getFactor().convertToDouble()) + ", /*originalMaxPositions=*/" +
       doubleLiteral(double(yarn.getOriginalMaxPositionEmbeddings())) +
       ", /*betaFast=*/" + doubleLiteral(yarn.getBetaFast().convertToDouble()) +
       ", /*betaSlow=*/" + doubleLiteral(yarn.getBetaSlow().convertToDouble()) +
       ", /*mscale=*/" + doubleLiteral(yarn.getMscale().convertToDouble()) +
       ", /*mscaleAllDim=*/" + doubleLiteral(yarn.getMscaleAllDim().convertToDouble()) +
       "};");
  call(fn, callArgs);
  close();
}

// attention(q [b, s, h, dqk], k [b, s, kvh, dqk], v [b, s, kvh, dv]) -> [b, s, h, dv]
void LaunchEmitter::attention() {
  elements("fff", "f");
  for (unsigned i = 0; i < 3; ++i)
    rank(true, i, 4);
  double scale = f64("scale");
  bool causal = flag("causal", true);
  if (failed)
    return;
  ArrayRef<int64_t> q = inShape(0), k = inShape(1), v = inShape(2);
  call("attentionForward",
       {out(0), in(0), in(1), in(2), intLiteral(q[0]), intLiteral(q[1]), intLiteral(q[2]),
        intLiteral(k[2]), intLiteral(q[3]), intLiteral(v[3]), floatLiteral(scale),
        boolLiteral(causal)});
}

// attention_grad(q, k, v, dout) -> (dq, dk, dv)
void LaunchEmitter::attentionGrad() {
  elements("ffff", "fff");
  for (unsigned i = 0; i < 4; ++i)
    rank(true, i, 4);
  double scale = f64("scale");
  bool causal = flag("causal", true);
  if (failed)
    return;
  ArrayRef<int64_t> q = inShape(0), k = inShape(1), v = inShape(2);
  call("attentionBackward",
       {out(0), out(1), out(2), in(0), in(1), in(2), in(3), intLiteral(q[0]),
        intLiteral(q[1]), intLiteral(q[2]), intLiteral(k[2]), intLiteral(q[3]),
        intLiteral(v[3]), floatLiteral(scale), boolLiteral(causal)});
}

} // namespace kiln::codegen::detail
