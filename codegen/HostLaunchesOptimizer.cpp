//===- HostLaunchesOptimizer.cpp - host launches: optimizer kernels ---------===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) for these catalog kernels:
// each checks its operands, reads its attributes and spells the call into
// runtime/kernels/.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "dialects/kiln/KilnDialect.h"
#include "runtime/kernels/GradCompressMath.h"

namespace kiln::codegen::detail {

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

// lr_schedule(step: i64 scalar) -> lr scalar
void LaunchEmitter::lrSchedule() {
  elements("l", "f");
  scalar(true, 0);
  scalar(false, 0);
  double lr = f64("lr"), minLr = f64("min_lr");
  int64_t warmup = i64("warmup_steps"), total = i64("total_steps");
  if (failed)
    return;
  checkedCall("lrSchedule", {deref(in(0)), floatLiteral(lr), floatLiteral(minLr),
                             intLiteral(warmup), intLiteral(total), out(0)});
}

// sparsity_mask_2_4(weight, mask, step: i64 scalar) -> mask
void LaunchEmitter::sparsityMask24() {
  elements("ffl", "f");
  sameCount(inCount(0), inCount(1), "the weight's and the mask's element counts");
  scalar(true, 2);
  int64_t start = i64("start_step"), every = i64("mask_every");
  if (failed)
    return;
  checkedCall("sparsityMaskUpdate24", {in(0), in(1), deref(in(2)), intLiteral(start),
                                       intLiteral(every), intLiteral(inCount(0)), out(0)});
}

// global_norm(tensors...) -> scalar
void LaunchEmitter::globalNorm() {
  elements("f", "f");
  scalar(false, 0);
  if (failed)
    return;
  SmallVector<std::string> sizes;
  for (unsigned i = 0, e = launch.getIns().size(); i < e; ++i)
    sizes.push_back(intLiteral(inCount(i)));
  open();
  line("const float *ptrs[] = " + braced(args.ins) + ";");
  line("const int64_t sizes[] = " + braced(sizes) + ";");
  checkedCall("globalNorm", {"ptrs", "sizes", intLiteral(sizes.size()), out(0)});
  close();
}

// clip_scale(norm scalar) -> scale scalar
void LaunchEmitter::clipScale() {
  elements("f", "f");
  scalar(true, 0);
  scalar(false, 0);
  double maxNorm = f64("max_norm");
  if (failed)
    return;
  callInto(out(0), "clipScale", {deref(in(0)), floatLiteral(maxNorm)});
}

// grad_scaler(norm, scale, tracker, updates) -> (skip, inv_scale, scale,
// tracker, updates), the state in place.
void LaunchEmitter::gradScaler() {
  elements("ffll", "kffll");
  for (unsigned i = 0; i < 4; ++i)
    scalar(true, i);
  for (unsigned o = 0; o < 5; ++o)
    scalar(false, o);
  double growth = f64("growth_factor"), backoff = f64("backoff_factor");
  int64_t interval = i64("growth_interval");
  if (failed)
    return;
  checkedCall("gradScaler", {deref(in(0)), deref(in(1)), deref(in(2)), deref(in(3)),
                             floatLiteral(growth), floatLiteral(backoff), intLiteral(interval),
                             out(0), out(1), out(2), out(3), out(4)});
}

// adamw(param, grad, m, v, lr, step, grad_scale [, skip]) -> (param, m, v),
// in place; a true skip (kiln.grad_scaler) leaves the state as it was. The
// moments are f32 or bf16 (an overload of the kernel), updated in place when
// bf16 (the copy kernels move f32 only).
void LaunchEmitter::adamw() {
  // After the 7 ins, the optional skip (i1) and mask (f32, the param's size).
  const unsigned ins = launch.getIns().size();
  const bool skippable = ins >= 8 && inType(7).getElementType().isInteger(1);
  const bool masked = ins == 9 || (ins == 8 && !skippable);
  elements(std::string("ffwwflf") + (skippable ? "k" : "") + (masked ? "f" : ""), "fww");
  Type moment = inType(2).getElementType();
  if (!failed && (moment.isF16() || inType(3).getElementType() != moment ||
                  outType(1).getElementType() != moment ||
                  outType(2).getElementType() != moment))
    fail("the moments (ins 2, 3 and outs 1, 2) must all be f32 or all bf16, got ", inType(2),
         ", ", inType(3), ", ", outType(1), ", ", outType(2));
  if (!failed && moment.isBF16() &&
      (launch.getIns()[2] != launch.getOuts()[1] || launch.getIns()[3] != launch.getOuts()[2]))
    fail("bf16 moments must be updated in place (outs 1, 2 the buffers of ins 2, 3)");
  if (skippable)
    scalar(true, 7);
  for (unsigned i : {4u, 5u, 6u})
    scalar(true, i);
  int64_t size = inCount(0);
  for (unsigned i : {1u, 2u, 3u})
    sameCount(size, inCount(i), "the sizes of param, grad and the moments");
  if (masked)
    sameCount(size, inCount(ins - 1), "the sizes of param and the mask");
  for (unsigned o : {0u, 1u, 2u})
    sameCount(size, outCount(o), "the sizes of param and the updated state");
  double beta1 = f64("beta1"), beta2 = f64("beta2"), eps = f64("eps"),
         weightDecay = f64("weight_decay");
  if (failed)
    return;
  copyInPlace(0, 0);
  copyInPlace(2, 1);
  copyInPlace(3, 2);
  SmallVector<std::string> state = {out(0), in(1), out(1), out(2)};
  if (masked)
    state.push_back(in(ins - 1));
  SmallVector<std::string> callArgs = {llvm::join(state, ", "), intLiteral(size),
                                       deref(in(4)),          deref(in(5)),
                                       deref(in(6)),          floatLiteral(beta1),
                                       floatLiteral(beta2),   floatLiteral(eps),
                                       floatLiteral(weightDecay)};
  StringRef fn = masked ? "maskedAdamw" : "adamw";
  if (cuda()) // The skip flag is read on the device: the kernel leaves the state be.
    return checkedCall(fn, callArgs, skippable ? in(7) : "nullptr");
  callArgs.push_back("&error");
  const std::string update =
      "if (!kiln::kernels::" + fn.str() + "(" + llvm::join(callArgs, ", ") + ")) return false;";
  line(skippable ? "if (!" + deref(in(7)) + ") " + update : update);
}

// bias_update(bias [experts], load [experts] [, skip]) -> new bias (may be
// bias itself); a true skip leaves the bias as it was.
void LaunchEmitter::biasUpdate() {
  const bool skippable = launch.getIns().size() == 3;
  elements(skippable ? "ffk" : "ff", "f");
  if (skippable)
    scalar(true, 2);
  double speed = f64("speed");
  if (failed)
    return;
  sameCount(inCount(0), inCount(1), "the sizes of bias and load");
  sameCount(inCount(0), outCount(0), "the sizes of bias and the new bias");
  if (failed)
    return;
  if (skippable)
    copyInPlace(0, 0);
  if (cuda()) // The skip flag is read on the device: the kernel leaves the bias be.
    return checkedCall("biasUpdate",
                       {in(0), in(1), intLiteral(inCount(0)), floatLiteral(speed), out(0)},
                       skippable ? in(2) : "nullptr");
  if (skippable) {
    line("if (!" + deref(in(2)) + ")");
    indent += "  ";
  }
  checkedCall("biasUpdate",
              {in(0), in(1), intLiteral(inCount(0)), floatLiteral(speed), out(0)});
  if (skippable)
    indent.resize(indent.size() - 2);
}

// topk_compress(grad, residual) -> (message [bytes], new_residual)
void LaunchEmitter::topkCompress() {
  elements("ff", "bf");
  int64_t k = i64("k");
  StringRef quantize = str("quantize");
  if (failed)
    return;
  sameCount(inCount(0), inCount(1), "the sizes of grad and residual");
  sameCount(inCount(0), outCount(1), "the sizes of grad and new_residual");
  if (failed)
    return;
  checkedCall("topkCompress", {in(0), in(1), intLiteral(inCount(0)), intLiteral(k),
                               boolLiteral(quantize == "int8"), out(0), out(1)});
}

// topk_decompress(messages [ranks x bytes]) -> dense sum
void LaunchEmitter::topkDecompress() {
  elements("b", "f");
  int64_t k = i64("k");
  StringRef quantize = str("quantize");
  if (failed)
    return;
  const bool int8 = quantize == "int8";
  const int64_t bytes = kernels::topkMessageBytes(k, int8);
  if (bytes <= 0 || inCount(0) % bytes != 0) {
    fail("the messages' ", inCount(0), " bytes are not whole messages of ", bytes);
    return;
  }
  checkedCall("topkDecompress", {in(0), intLiteral(inCount(0) / bytes), intLiteral(outCount(0)),
                                 intLiteral(k), boolLiteral(int8), out(0)});
}

} // namespace kiln::codegen::detail
