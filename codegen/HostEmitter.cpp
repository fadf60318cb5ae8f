//===- HostEmitter.cpp - Kernel-level module -> one C++ training program --===//
//
// The emitted step reads like llm.c's train_gpt2.c: every buffer is a named
// pointer (parameters by their HF name in a comment, temporaries as arena
// offsets), and each kernel is one call or one loop, preceded by the HF
// module it came from. Launches are spelled by HostLaunches.cpp; this file
// owns the program around them: the model description, buffer names, fused
// loops, the gradient hook and main().
//
//===----------------------------------------------------------------------===//

#include "codegen/HostEmitter.h"
#include "codegen/StepEmitter.h"
#include "dialects/kiln/KilnDialect.h"
#include "codegen/CppLiterals.h"
#include "codegen/CppTypes.h"
#include "codegen/HostLaunches.h"

#include "mlir/IR/Location.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"

#include <cctype>
#include <cmath>

using namespace mlir;
using kiln::kernel::BufferOp;
using kiln::kernel::ElementwiseOp;
using kiln::kernel::LaunchOp;
using kiln::kernel::ReshapeOp;
using kiln::kernel::YieldOp;

namespace kiln::codegen {
namespace detail {

/// "model.layers.1.mlp.gate" for a call-site location from inlining.
std::string describeLoc(Location loc) {
  // A pipeline action's mark is not where in the model an op is.
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().getValue().starts_with(kiln::kPipelineActionPrefix)
               ? ""
               : name.getName().str();
  if (auto site = dyn_cast<CallSiteLoc>(loc)) {
    std::string caller = describeLoc(site.getCaller()), callee = describeLoc(site.getCallee());
    if (caller.empty())
      return callee;
    return callee.empty() ? caller : caller + "." + callee;
  }
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string s = describeLoc(inner); !s.empty())
        return s;
  return "";
}

std::string shapeString(MemRefType type) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    s += (i ? ", " : "") + std::to_string(d);
  return s + "]";
}


/// `p_model_layers_0_mlp_up_proj_weight` for "model.layers.0.mlp.up_proj.weight"
/// (stacked experts drop the '*').
std::string identifierFor(StringRef prefix, StringRef hfName) {
  std::string id = prefix.str();
  for (char c : hfName) {
    if (c == '*')
      continue;
    char out = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (out == '_' && !id.empty() && id.back() == '_')
      continue;
    id += out;
  }
  return id;
}

LogicalResult Emitter::classifyArguments() {
  llvm::StringMap<unsigned> paramArg;
  llvm::StringMap<int64_t> trainableIndex;
  auto argError = [&](unsigned i) {
    return step.emitError() << "argument #" << i << " of @" << step.getSymName() << " ";
  };
  for (BlockArgument arg : step.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (step.getArgAttr(i, "kiln.param") && !step.getArgAttr(i, "kiln.state")) {
      auto name = step.getArgAttrOfType<StringAttr>(i, "kiln.param");
      paramArg[name.getValue()] = i;
      names[arg] = "io.params[" + std::to_string(roles.params.size()) + "]";
      roles.params.push_back(i);
      auto trainable = step.getArgAttrOfType<BoolAttr>(i, "kiln.trainable");
      if (!trainable || trainable.getValue()) {
        trainableIndex[name.getValue()] = roles.trainable.size();
        roles.trainable.push_back(i);
      }
    }
  }
  for (BlockArgument arg : step.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto type = cast<MemRefType>(arg.getType());
    auto scalerState = step.getArgAttrOfType<StringAttr>(i, "kiln.state");
    if (scalerState && !step.getArgAttr(i, "kiln.param") &&
        isLossScalerStateRole(scalerState.getValue())) {
      // Dynamic loss scaling's state (kiln-autodiff loss-scale=dynamic).
      const bool isScale = scalerState == "loss_scale";
      if (type.getRank() != 0 || (isScale ? !type.getElementType().isF32()
                                          : !type.getElementType().isInteger(64)))
        return argError(i) << "(" << scalerState.getValue() << ") must be a 0-d "
                           << (isScale ? "f32" : "i64") << " buffer, got " << type;
      names[arg] = isScale ? "io.lossScale"
                   : scalerState == "growth_tracker" ? "io.growthTracker"
                                                     : "io.optimizerUpdates";
      if (isScale) {
        auto initial = step.getArgAttrOfType<FloatAttr>(i, "kiln.initial");
        if (!initial || !(initial.getValueAsDouble() > 0))
          return argError(i) << "(loss_scale) needs kiln.initial, the scale a run starts with";
        initialLossScale = initial.getValueAsDouble();
      }
      ++scalerStateArgs;
    } else if (auto state = step.getArgAttrOfType<StringAttr>(i, "kiln.state")) {
      auto name = step.getArgAttrOfType<StringAttr>(i, "kiln.param");
      auto it = name ? trainableIndex.find(name.getValue()) : trainableIndex.end();
      if (it == trainableIndex.end() || (state != "exp_avg" && state != "exp_avg_sq" &&
                                         state != "grad_residual" && state != "sparsity_mask"))
        return argError(i) << "is optimizer state of no trainable parameter";
      if (state == "sparsity_mask") {
        // A 2:4 mask of the parameter's f32 shape (kiln-sparsity-2-4).
        if (type != cast<MemRefType>(step.getArgument(roles.trainable[it->second]).getType()))
          return argError(i) << "(sparsity_mask) is " << type << "; expected the parameter's "
                             << step.getArgument(roles.trainable[it->second]).getType();
        names[arg] = "io.sparsityMask[" + std::to_string(it->second) + "]";
        sparseParams.insert(name.getValue());
        continue;
      }
      // bf16 moments (moment-type=bf16) have their own driver arrays.
      const bool bf16 = type.getElementType().isBF16() && state != "grad_residual";
      if (state != "grad_residual" && !bf16 && !type.getElementType().isF32())
        return argError(i) << "(" << state.getValue() << ") is " << type
                           << "; the driver holds f32 or bf16 moments";
      (bf16 ? bf16MomentArgs : f32MomentArgs) += state != "grad_residual";
      names[arg] = std::string(state == "exp_avg"      ? (bf16 ? "io.expAvgBf16[" : "io.expAvg[")
                               : state == "exp_avg_sq" ? (bf16 ? "io.expAvgSqBf16["
                                                               : "io.expAvgSq[")
                                                       : "io.gradResidual[") +
                   std::to_string(it->second) + "]";
      gradResiduals += state == "grad_residual";
    } else if (auto input = step.getArgAttrOfType<StringAttr>(i, "kiln.input")) {
      StringRef role = input.getValue();
      if (role == "step")
        names[arg] = "const_cast<int64_t *>(io.step)";
      else if (role == "tokens" || role == "targets")
        names[arg] = "const_cast<int32_t *>(io." + role.str() + ")";
      else if (role == "loss_mask")
        names[arg] = "const_cast<float *>(io.lossMask)";
      else if (role == "advantages")
        names[arg] = "const_cast<float *>(io.advantages)";
      else if (role == "old_logprobs")
        names[arg] = "const_cast<float *>(io.oldLogprobs)";
      else if (role == "ref_logprobs")
        names[arg] = "const_cast<float *>(io.refLogprobs)";
      else
        return argError(i) << "is input '" << role
                           << "'; the host driver feeds step, tokens, targets, loss_mask and "
                              "GRPO's advantages, old_logprobs and ref_logprobs";
      // A pipeline stage past the first reads no tokens, only targets.
      if (role == "tokens" || role == "targets") {
        if (type.getRank() != 2)
          return argError(i) << "(" << role << ") must be [batch, seq_len], got " << type;
        batch = type.getDimSize(0);
        seqLen = type.getDimSize(1);
      }
    } else if (auto output = step.getArgAttrOfType<StringAttr>(i, "kiln.output")) {
      StringRef role = output.getValue();
      if (role == "loss")
        names[arg] = "io.loss";
      else if (role == "main_loss")
        names[arg] = "io.mainLoss";
      else if (role == "grad_norm")
        names[arg] = "io.gradNorm";
      else if (role == "lr")
        names[arg] = "io.lr";
      else if (role == "expert_load") {
        names[arg] = "io.expertLoads[" + std::to_string(numExpertLoads++) + "]";
        numExperts = type.getNumElements();
      } else if (role == "expert_kept") {
        names[arg] = "io.expertKept[" + std::to_string(numExpertKept++) + "]";
      } else {
        return argError(i) << "is output '" << role << "', which the host driver does not read";
      }
    } else if (!names.count(arg)) {
      return argError(i) << "has no kiln.param, kiln.state, kiln.input or kiln.output role";
    }
  }
  if (batch == 0)
    return step.emitError() << "@" << step.getSymName()
                            << " has no tokens or targets input"
                            << (stage > 0 ? ", and stage 0 has none either" : "");
  if (bf16MomentArgs && f32MomentArgs)
    return step.emitError() << "@" << step.getSymName() << " has " << bf16MomentArgs
                            << " bf16 and " << f32MomentArgs
                            << " f32 AdamW moments; the driver holds all of one kind";
  if (scalerStateArgs != 0 && (scalerStateArgs != 3 || initialLossScale == 0))
    return step.emitError() << "@" << step.getSymName()
                            << " has part of the loss scaler's state; the driver expects "
                               "loss_scale, growth_tracker and optimizer_updates together";
  for (StringRef required : {"io.loss", "io.mainLoss", "io.gradNorm", "io.lr"})
    if (llvm::none_of(names, [&](auto &entry) { return entry.second == required; }))
      return step.emitError() << "@" << step.getSymName() << " has no output for "
                              << required.drop_front(3);
  nameArguments();
  return success();
}

void Emitter::nameArguments() {
  // Every argument gets a readable local name, declared at the top of the
  // step: parameters and moments by their HF names, the batch and outputs by
  // role. `names` held the driver expression for each; it now holds the name.
  llvm::StringSet<> used;
  int64_t nextLoad = 0, nextKept = 0;
  for (BlockArgument arg : step.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto param = step.getArgAttrOfType<StringAttr>(i, "kiln.param");
    auto state = step.getArgAttrOfType<StringAttr>(i, "kiln.state");
    auto input = step.getArgAttrOfType<StringAttr>(i, "kiln.input");
    auto output = step.getArgAttrOfType<StringAttr>(i, "kiln.output");
    std::string id, comment;
    if (param) {
      id = identifierFor(!state ? "p_" : state == "exp_avg" ? "m_" : "v_", param.getValue());
      comment = (!state ? "" : state.getValue() + " of ").str() + param.getValue().str();
    } else if (state) {
      id = state.getValue().str();
    } else if (input) {
      id = input.getValue().str();
    } else if (output) {
      id = "out_" + output.getValue().str();
      if (output == "expert_load")
        id += "_" + std::to_string(nextLoad++);
      else if (output == "expert_kept")
        id += "_" + std::to_string(nextKept++);
    }
    if (!used.insert(id).second)
      id += "_" + std::to_string(i);
    used.insert(id);
    argDecls.push_back({id, names.lookup(arg), comment, cast<MemRefType>(arg.getType())});
    names[arg] = id;
  }
}

LogicalResult Emitter::emitModelDesc() {
  *os << "const kiln::driver::ParamDesc kParams[] = {\n";
  for (unsigned i : roles.params) {
    auto type = cast<MemRefType>(step.getArgument(i).getType());
    if (type.getRank() > 4)
      return step.emitError() << "parameter argument #" << i << " has rank " << type.getRank()
                              << "; the driver supports rank <= 4";
    auto name = step.getArgAttrOfType<StringAttr>(i, "kiln.param");
    auto init = step.getArgAttrOfType<StringAttr>(i, "kiln.init");
    auto std = step.getArgAttrOfType<FloatAttr>(i, "kiln.init_std");
    StringRef kind = !init || init == "zeros" ? "Zeros" : init == "ones" ? "Ones" : "Normal";
    if (init && init != "zeros" && init != "ones" && init != "normal")
      return step.emitError() << "parameter '" << name.getValue() << "' has kiln.init '"
                              << init.getValue() << "'; expected normal, ones or zeros";
    auto trainable = step.getArgAttrOfType<BoolAttr>(i, "kiln.trainable");
    *os << "    {\"" << name.getValue() << "\", " << type.getRank() << ", {";
    for (auto [k, d] : llvm::enumerate(type.getShape()))
      *os << (k ? ", " : "") << d;
    *os << "}, kiln::driver::InitKind::" << kind << ", "
       << doubleLiteral(std ? std.getValueAsDouble() : 0.0) << ", "
       << ((!trainable || trainable.getValue()) ? "true" : "false");
    if (auto split = step.getArgAttrOfType<DictionaryAttr>(i, "kiln.split")) {
      auto axes = split.getAs<ArrayAttr>("axes");
      auto dim = split.getAs<IntegerAttr>("dim");
      if (!axes || axes.size() != 1 || cast<StringAttr>(axes[0]).getValue() != "ep" || !dim ||
          dim.getInt() != 0)
        return step.emitError() << "parameter '" << name.getValue() << "' has kiln.split "
                                << split << "; the driver holds splits of dim 0 over \"ep\"";
      *os << ", /*expertSplit=*/true";
    } else if (sparseParams.contains(name.getValue())) {
      *os << ", /*expertSplit=*/false";
    }
    if (sparseParams.contains(name.getValue()))
      *os << ", /*sparse=*/true";
    *os << "},\n";
  }
  *os << "};\n\n";
  auto arena = step->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr);
  *os << "const kiln::driver::ModelDesc kModel = {\n"
     << "    /*specName=*/\"" << info.specName << "\",\n"
     << "    /*specFingerprint=*/\"" << info.specFingerprint << "\",\n"
     << "    kParams,\n"
     << "    /*numParams=*/" << roles.params.size() << ",\n"
     << "    /*batch=*/" << batch << ",\n"
     << "    /*seqLen=*/" << seqLen << ",\n"
     << "    /*vocabSize=*/" << info.vocabSize << ",\n"
     << "    /*sft=*/" << (info.sft ? "true" : "false") << ",\n"
     << "    /*numExpertLoads=*/" << numExpertLoads << ",\n"
     << "    /*numExperts=*/" << numExperts << ",\n"
     << "    /*arenaBytes=*/" << arena.getInt() << "u,\n"
     << "    /*defaultSteps=*/" << info.defaultSteps << "u,\n"
     << "    /*defaultSeed=*/" << info.defaultSeed << "u,\n";
  // A data-parallel step (kiln-data-parallel): its ranks and whether the
  // AdamW moments are ZeRO-1 shards (marked kiln.sharded).
  // With expert parallelism the grid is edp x ep: every rank is a
  // data-parallel rank, ep of them per expert group.
  int64_t ranks = 1, ep = 1, pp = 1;
  bool sharded = false;
  if (kiln::GridAttr grid = kiln::GridAttr::lookup(step)) {
    ep = grid.axisIndex("ep") >= 0 ? grid.getShape()[grid.axisIndex("ep")] : 1;
    pp = grid.axisIndex("pp") >= 0 ? grid.getShape()[grid.axisIndex("pp")] : 1;
    const bool dataParallel = grid.axisIndex("dp") >= 0 && ep == 1 &&
                              grid.getShape().size() == size_t(pp > 1 ? 2 : 1);
    const bool pipeline = pp > 1 && ep == 1 && grid.getShape().size() <= 2;
    const bool expertParallel = grid.axisIndex("edp") >= 0 && ep > 1 && pp == 1;
    if (!dataParallel && !pipeline && !expertParallel)
      return step.emitError() << "the host driver runs the grids of kiln-data-parallel "
                                 "([\"dp\"]), kiln-expert-parallel ([\"edp\", \"ep\"]) and "
                                 "kiln-pipeline ([\"pp\"], [\"pp\", \"dp\"]), not "
                              << grid;
    if (pp != stages)
      return step.emitError() << "@" << step.getSymName() << " is one of " << stages
                              << " programs on a grid of pp " << pp
                              << "; expected one program per pipeline stage";
    sharded = llvm::any_of(step.getArguments(), [&](BlockArgument a) {
      return step.getArgAttr(a.getArgNumber(), "kiln.sharded") != nullptr;
    });
    ranks = grid.numRanks() / pp;
  }
  *os << "    /*dp=*/" << ranks << ",\n"
      << "    /*shardedState=*/" << (sharded ? "true" : "false") << ",\n"
      << "    /*ep=*/" << ep << ",\n"
      << "    /*numExpertKept=*/" << numExpertKept << ",\n";
  // Gradient compression: whether every trainable parameter has an
  // error-feedback residual, and the bytes its messages and the all_reduce
  // they replace move per step on a rank.
  // Expert parallelism: each MoE layer call's all_to_all bytes per ep group
  // (kiln-expert-parallel put them on its dispatch), over the ranks' groups.
  int64_t sent = 0, uncompressed = 0, allToAll = 0;
  step.walk([&](kernel::LaunchOp launch) {
    if (launch.getKernel() == "topk_compress") {
      sent += cast<MemRefType>(launch.getOuts()[0].getType()).getNumElements();
      uncompressed += 4 * cast<MemRefType>(launch.getIns()[0].getType()).getNumElements();
    } else if (launch.getKernel() == "dispatch") {
      if (auto bytes = launch.getParams().getAs<IntegerAttr>("kiln.all_to_all_bytes"))
        allToAll += bytes.getInt();
    }
  });
  if (gradResiduals != 0 && gradResiduals != int64_t(roles.trainable.size()))
    return step.emitError() << gradResiduals << " of " << roles.trainable.size()
                            << " trainable parameters have a grad_residual; the driver "
                               "expects all or none";
  *os << "    /*gradResiduals=*/" << (gradResiduals ? "true" : "false") << ",\n"
      << "    /*gradBytesSent=*/" << sent << "u,\n"
      << "    /*gradBytesUncompressed=*/" << uncompressed << "u,\n"
      << "    /*allToAllBytesPerStep=*/" << allToAll * (ranks / ep) << "u,\n"
      << "    /*initialLossScale=*/" << doubleLiteral(initialLossScale) << ",\n"
      << "    /*bf16Moments=*/" << (bf16MomentArgs ? "true" : "false") << ",\n"
      << "    /*pp=*/" << pp << ",\n"
      << "    /*stage=*/" << stage << ",\n"
      << "    /*modelFlopsPerToken=*/" << doubleLiteral(info.modelFlopsPerToken) << ",\n";
  if (!info.curriculum.empty() || pointsAtRampup)
    *os << "    /*curriculum=*/" << (info.curriculum.empty() ? "nullptr" : "kCurriculum") << ",\n"
        << "    /*numCurriculum=*/" << info.curriculum.size() << ",\n";
  if (pointsAtRampup)
    *os << "    /*rampup=*/&kRampup,\n";
  *os << "};\n\n";
  return success();
}

/// The C++ expression of one scalar op inside a fused loop.
FailureOr<std::string> scalarExpr(Operation &op, llvm::DenseMap<Value, std::string> &vars) {
  auto v = [&](unsigned i) { return vars.lookup(op.getOperand(i)); };
  return TypeSwitch<Operation *, FailureOr<std::string>>(&op)
      .Case([&](arith::AddFOp) { return v(0) + " + " + v(1); })
      .Case([&](arith::SubFOp) { return v(0) + " - " + v(1); })
      .Case([&](arith::MulFOp) { return v(0) + " * " + v(1); })
      .Case([&](arith::DivFOp) { return v(0) + " / " + v(1); })
      .Case([&](arith::NegFOp) { return "-" + v(0); })
      // The loop rounds a narrow result to its type; widening is exact.
      .Case<arith::TruncFOp, arith::ExtFOp>([&](Operation *) { return v(0); })
      .Case([&](arith::MaximumFOp) { return "std::fmax(" + v(0) + ", " + v(1) + ")"; })
      // KernelMath.h's exp: vectorizes on the host, CUDA's expf on the GPU.
      .Case([&](math::ExpOp) { return "kiln::kernels::expFaithful(" + v(0) + ")"; })
      .Case([&](math::LogOp) { return "std::log(" + v(0) + ")"; })
      .Case([&](math::SqrtOp) { return "std::sqrt(" + v(0) + ")"; })
      .Case([&](arith::ConstantOp c) -> FailureOr<std::string> {
        if (auto f = dyn_cast<FloatAttr>(c.getValue()))
          return f.getType().isF32() ? floatLiteral(f.getValueAsDouble())
                                     : doubleLiteral(f.getValueAsDouble());
        if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
          return std::to_string(i.getInt());
        return op.emitError() << "constant the host emitter cannot spell";
      })
      .Default([&](Operation *) -> FailureOr<std::string> {
        return op.emitError() << "has no host C++ spelling inside a fused loop";
      });
}

FailureOr<std::string> Emitter::loopBody(ElementwiseOp loop, StringRef indent) {
  Block &body = loop.getBody().front();
  llvm::DenseMap<Value, std::string> vars;
  std::string text;
  llvm::raw_string_ostream out(text);
  // bf16 / f16 / e4m3 values are f32 variables holding exactly what their
  // type can store: loaded with widen(), every result of a narrow type
  // rounded to it (the as-typed evaluator's semantics), stored with narrowTo.
  for (auto [k, arg] : llvm::enumerate(body.getArguments())) {
    FailureOr<StringRef> elem = cppElementType(loop.getLoc(), arg.getType());
    if (failed(elem))
      return failure();
    vars[arg] = "a" + std::to_string(k);
    std::string load = nameOf(loop.getIns()[k]) + "[i]";
    if (isNarrowFloat(arg.getType()))
      out << indent << "const float a" << k << " = kiln::kernels::widen(" << load << ");\n";
    else
      out << indent << "const " << *elem << " a" << k << " = " << load << ";\n";
  }
  // A narrow result keeps its bits too (n<k>), so that storing it to an out
  // of its own type is a copy, not a second rounding: the compiler then
  // drops the widened copy where only the store reads it, and the loop
  // vectorizes as one rounding per element.
  llvm::DenseMap<Value, std::pair<Type, std::string>> narrowBits;
  int64_t next = 0;
  for (Operation &op : body.without_terminator()) {
    FailureOr<std::string> expr = scalarExpr(op, vars);
    if (failed(expr))
      return failure();
    Type type = op.getResult(0).getType();
    FailureOr<StringRef> elem = cppElementType(op.getLoc(), type);
    if (failed(elem))
      return failure();
    std::string var = "v" + std::to_string(next++);
    vars[op.getResult(0)] = var;
    if (isNarrowFloat(type)) {
      std::string bits = "n" + std::to_string(next - 1);
      narrowBits[op.getResult(0)] = {type, bits};
      out << indent << "const " << *elem << " " << bits << " = kiln::kernels::narrowTo<" << *elem
          << ">(" << *expr << ");\n"
          << indent << "const float " << var << " = kiln::kernels::widen(" << bits << ");\n";
    } else
      out << indent << "const " << *elem << " " << var << " = " << *expr << ";\n";
  }
  auto yield = cast<YieldOp>(body.getTerminator());
  for (auto [value, result] : llvm::zip(yield.getValues(), loop.getOuts())) {
    Type type = cast<MemRefType>(result.getType()).getElementType();
    std::string v = vars.lookup(value);
    auto bits = narrowBits.find(value);
    if (bits != narrowBits.end() && bits->second.first == type)
      v = bits->second.second;
    else if (isNarrowFloat(type))
      v = "kiln::kernels::narrowTo<" + cppElementType(loop.getLoc(), type)->str() + ">(" + v + ")";
    out << indent << nameOf(result) << "[i] = " << v << ";\n";
  }
  return text;
}

std::string Emitter::kernelTimer(StringRef kernel) const {
  if (target == LaunchTarget::Host)
    return ("    kiln::driver::KernelTimer timer(io.profile, \"" + kernel + "\");\n").str();
  return ("    kiln::cuda::KernelTimer timer(\"" + kernel + "\", stream);\n").str();
}

LogicalResult Emitter::emitLoop(ElementwiseOp loop) {
  int64_t n = cast<MemRefType>(loop.getOuts()[0].getType()).getNumElements();
  if (target == LaunchTarget::Cuda) {
    // A generated kernel over the loop's buffers (an out may be an in:
    // no __restrict__), one element per thread, grid-stride.
    FailureOr<std::string> body = loopBody(loop, "    ");
    if (failed(body))
      return failure();
    const std::string kernel = "fused" + std::to_string(numFused++);
    SmallVector<std::string> params, args;
    llvm::StringSet<> seen;
    for (Value buffer : llvm::concat<Value>(loop.getOuts(), loop.getIns())) {
      const std::string name = nameOf(buffer);
      if (!seen.insert(name).second)
        continue;
      FailureOr<StringRef> elem =
          cppElementType(loop.getLoc(), cast<MemRefType>(buffer.getType()).getElementType());
      if (failed(elem))
        return failure();
      const bool written = llvm::is_contained(loop.getOuts(), buffer);
      params.push_back((written ? "" : "const ") + elem->str() + " *" + name);
      args.push_back(name);
    }
    deviceKernels += "__global__ void " + kernel + "(" + llvm::join(params, ", ") +
                     ", int64_t n) {\n  for (int64_t i = kiln::cuda::globalThread(); i < n; "
                     "i += kiln::cuda::gridThreads()) {\n" +
                     *body + "  }\n}\n\n";
    *os << "    KILN_LAUNCH(" << kernel << ", kiln::cuda::blocksFor(" << n
        << "), kiln::cuda::kBlock, 0, stream, " << llvm::join(args, ", ") << ", int64_t(" << n
        << "));\n";
    return success();
  }
  FailureOr<std::string> body = loopBody(loop, "    ");
  if (failed(body))
    return failure();
  // Loops under ~32k elements finish faster than an OpenMP fork/join.
  if (n >= 32768)
    *os << "  #pragma omp parallel for schedule(static)\n";
  *os << "  for (int64_t i = 0; i < " << n << "; ++i) {\n" << *body << "  }\n";
  return success();
}

LogicalResult Emitter::emitGradSink(Location loc) {
  SmallVector<Value> grads;
  for (unsigned i : roles.trainable) {
    Value grad = gradOf.lookup(i);
    if (!grad)
      return emitError(loc) << "trainable parameter '"
                            << step.getArgAttrOfType<StringAttr>(i, "kiln.param").getValue()
                            << "' has no adamw update to take its gradient from";
    grads.push_back(grad);
  }
  *os << (target == LaunchTarget::Cuda ? "  {\n" : "  if (io.gradSink) {\n")
      << "    const float *grads[] = {\n";
  for (Value grad : grads)
    *os << "        " << nameOf(grad) << ",\n";
  *os << "    };\n";
  if (target == LaunchTarget::Host) {
    *os << "    io.gradSink(io.gradSinkContext, grads);\n  }\n";
    return success();
  }
  // The gradients are on the device: DeviceStep.cuh copies them over.
  *os << "    const int64_t counts[] = {";
  for (auto [k, grad] : llvm::enumerate(grads))
    *os << (k ? ", " : "") << cast<MemRefType>(grad.getType()).getNumElements();
  *os << "};\n    if (!kiln::cuda::sinkGradients(io, grads, counts, " << grads.size()
      << ", error)) return false;\n  }\n";
  return success();
}

LogicalResult Emitter::declarePointers() {
  // Arguments: from the driver's StepBuffers.
  for (auto [arg, decl] : llvm::zip(step.getArguments(), argDecls)) {
    // Parameters, optimizer state and inputs cross into the driver, whose
    // buffers are f32 (master weights) and integers; the AdamW moments may
    // be bf16 (its expAvgBf16 / expAvgSqBf16).
    auto state = step.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "kiln.state");
    const bool moment = state && (state == "exp_avg" || state == "exp_avg_sq");
    if (isNarrowFloat(decl.type.getElementType()) &&
        !(moment && decl.type.getElementType().isBF16()))
      return step.emitError() << "step argument '" << decl.name << "' has element type "
                              << decl.type.getElementType()
                              << "; the host driver passes f32 and integer buffers and bf16 "
                                 "AdamW moments (keep master weights and other state in f32 and "
                                 "convert inside the step)";
    FailureOr<StringRef> elem = cppElementType(step.getLoc(), decl.type.getElementType());
    if (failed(elem))
      return failure();
    declarations[arg] = (*elem + " *" + decl.name + " = " + decl.source + "; // " +
                         (decl.comment.empty() ? "" : decl.comment + " ") +
                         shapeString(decl.type))
                            .str();
  }
  // Temporaries: views of the arena; reshapes are the same pointer.
  int64_t nextBuffer = 0;
  for (Operation &op : step.getBody().front()) {
    if (auto buffer = dyn_cast<BufferOp>(op)) {
      std::string name = "t" + std::to_string(nextBuffer++);
      FailureOr<StringRef> elem =
          cppElementType(op.getLoc(), buffer.getType().getElementType());
      if (failed(elem))
        return failure();
      names[buffer.getResult()] = name;
      declarations[buffer.getResult()] =
          (*elem + " *" + name + " = reinterpret_cast<" + *elem + " *>(io.arena + " +
           std::to_string(buffer.getOffset()) + "); // " + shapeString(buffer.getType()))
              .str();
    } else if (auto reshape = dyn_cast<ReshapeOp>(op)) {
      names[reshape.getResult()] = nameOf(reshape.getSource());
      declarations[reshape.getResult()] = declarations.lookup(reshape.getSource());
    }
  }
  return success();
}

void Emitter::declareUsed(ValueRange values, llvm::StringSet<> &declared) {
  for (Value v : values)
    if (declared.insert(nameOf(v)).second)
      *os << "  " << declarations.lookup(v) << "\n";
}

LogicalResult Emitter::emitStep() {
  // The gradient of each parameter is what its adamw reads.
  LaunchOp firstUpdate;
  step.walk([&](LaunchOp launch) {
    if (launch.getKernel() != "adamw")
      return;
    if (auto arg = dyn_cast<BlockArgument>(launch.getIns()[0]))
      gradOf[arg.getArgNumber()] = launch.getIns()[1];
    if (!firstUpdate)
      firstUpdate = launch;
  });
  if (failed(declarePointers()))
    return failure();

  // The step is split into parts of kKernelsPerPart kernels, each its own
  // function: one function of thousands of calls takes the C++ compiler
  // minutes and gigabytes at -O3, parts take it linear time. A part declares
  // the pointers it uses where it first uses them.
  SmallVector<SmallVector<Operation *>> parts;
  for (Operation &op : step.getBody().front()) {
    if (!isa<LaunchOp, ElementwiseOp>(op))
      continue;
    if (parts.empty() || int64_t(parts.back().size()) == kKernelsPerPart)
      parts.emplace_back();
    parts.back().push_back(&op);
  }
  // A pipeline stage's step tells --trace where each schedule action
  // begins: where the action marked on its kernels changes (kernels of no
  // action are the step's prologue or epilogue).
  std::string runningAction;
  bool sawAction = false;
  auto markAction = [&](Operation *op) {
    if (stages == 1)
      return;
    StringRef action = kiln::pipelineActionOf(op->getLoc());
    sawAction |= !action.empty();
    std::string label = !action.empty() ? action.str() : sawAction ? "epilogue" : "prologue";
    if (label == runningAction)
      return;
    runningAction = label;
    *os << "\n  kiln::driver::traceAction(io.trace, \"" << label << "\");\n";
  };
  // While transfers are posted (kiln-overlap-send-recv), each kernel is
  // followed by a progress call, so they move on during compute.
  llvm::DenseSet<int64_t> posted;
  auto trackPosted = [&](Operation *op) {
    auto launch = dyn_cast<LaunchOp>(op);
    StringRef kernel = launch ? launch.getKernel() : "";
    if (kernel == "send_start" || kernel == "recv_start" || kernel == "p2p_wait") {
      auto ticket = launch.getParams().getAs<IntegerAttr>("ticket");
      if (ticket && kernel == "p2p_wait")
        posted.erase(ticket.getInt());
      else if (ticket)
        posted.insert(ticket.getInt());
      return;
    }
    if (!posted.empty())
      *os << "  if (!kiln::driver::p2pProgress(io.comm, &error)) return false;\n";
  };
  for (auto [index, part] : llvm::enumerate(parts)) {
    std::string first = describeLoc(part.front()->getLoc()),
                last = describeLoc(part.back()->getLoc());
    *os << "// Kernels " << numKernels << "-" << numKernels + part.size() - 1 << ": " << first
        << (last == first ? "" : " ... " + last) << "\n";
    // The body goes first to a string: a part with no fallible kernel
    // leaves its `error` parameter unnamed.
    raw_ostream *file = os;
    std::string body;
    llvm::raw_string_ostream bodyStream(body);
    os = &bodyStream;
    llvm::StringSet<> declared;
    for (Operation *op : part) {
      markAction(op);
      std::string where = describeLoc(op->getLoc());
      if (auto loop = dyn_cast<ElementwiseOp>(op)) {
        *os << "\n  // " << (where.empty() ? "" : where + ": ");
        for (auto [k, origin] : llvm::enumerate(loop.getOrigin()))
          *os << (k ? " + " : "") << cast<StringAttr>(origin).getValue();
        *os << "\n";
        declareUsed(loop->getOperands(), declared);
        *os << "  {\n";
        *os << kernelTimer("fused_elementwise");
        if (failed(emitLoop(loop)))
          return failure();
        *os << "  }\n";
        trackPosted(op);
        ++numKernels;
        continue;
      }
      auto launch = cast<LaunchOp>(op);
      // A multi-rank step has no gradient hook: its ranks hold reduced or
      // ZeRO-1-sharded gradients, and the driver runs --save-grads on one rank.
      if (launch == firstUpdate && !kiln::GridAttr::lookup(step)) {
        SmallVector<Value> grads;
        for (unsigned i : roles.trainable)
          if (Value grad = gradOf.lookup(i))
            grads.push_back(grad);
        *os << "\n  // The gradients, before the optimizer consumes them.\n";
        declareUsed(grads, declared);
        if (failed(emitGradSink(op->getLoc())))
          return failure();
      }
      *os << "\n  // " << (where.empty() ? "" : where + ": ") << launch.getKernel() << "\n";
      declareUsed(launch->getOperands(), declared);
      LaunchArgs args;
      for (Value in : launch.getIns())
        args.ins.push_back(nameOf(in));
      for (Value out : launch.getOuts())
        args.outs.push_back(nameOf(out));
      *os << "  {\n";
      *os << kernelTimer(launch.getKernel());
      if (failed(emitHostLaunch(launch, args, "    ", *os, target)))
        return failure();
      *os << "  }\n";
      trackPosted(op);
      ++numKernels;
    }
    os = file;
    *os << "bool " << partPrefix << index << "(const " << buffersType << " &io, std::string &"
        << (StringRef(body).contains("error") ? "error" : "/*error*/") << ") {\n";
    if (target == LaunchTarget::Cuda)
      *os << "  cudaStream_t stream = kiln::cuda::stepStream();\n  (void)stream;\n";
    *os << body << "  return true;\n}\n\n";
  }

  *os << "bool " << function << "(const " << buffersType << " &io, std::string &error) {\n";
  for (size_t index = 0; index < parts.size(); ++index)
    *os << "  if (!" << partPrefix << index << "(io, error))\n    return false;\n";
  *os << "  return true;\n}\n\n";
  return success();
}

LogicalResult Emitter::emit(std::string &code) {
  if (!step->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr))
    return step.emitError() << "@" << step.getSymName()
                            << " has no planned arena; run kiln-plan-arena first";
  if (failed(classifyArguments()))
    return failure();
  if (target == LaunchTarget::Cuda) { // wrapped by the driver's trainStep
    function = "deviceStep";
    partPrefix = "deviceStepPart";
  }
  llvm::raw_string_ostream stream(code);
  os = &stream;
  if (failed(emitModelDesc()))
    return failure();
  // The step's fused loops become kernels the step launches: they go first.
  std::string stepCode;
  llvm::raw_string_ostream stepStream(stepCode);
  os = &stepStream;
  if (failed(emitStep()))
    return failure();
  code += deviceKernels + stepCode;
  return success();
}

/// The programs `entry` names: @entry itself, or the per-rank programs of
/// kiln-pipeline (`kiln.program = entry`), in stage order.
FailureOr<SmallVector<func::FuncOp>> programsOf(ModuleOp module, StringRef entry) {
  if (auto step = module.lookupSymbol<func::FuncOp>(entry); step && !step.isExternal())
    return SmallVector<func::FuncOp>{step};
  SmallVector<std::pair<int64_t, func::FuncOp>> stages;
  for (auto f : module.getOps<func::FuncOp>()) {
    auto program = f->getAttrOfType<StringAttr>("kiln.program");
    if (!program || program.getValue() != entry)
      continue;
    auto ranks = f->getAttrOfType<DenseI64ArrayAttr>("kiln.ranks");
    if (!ranks || ranks.empty() || f.isExternal())
      return f.emitError() << "@" << f.getSymName() << " is a program of @" << entry
                           << " without a body or kiln.ranks";
    stages.push_back({ranks[0], f});
  }
  if (stages.empty())
    return module.emitError() << "no function @" << entry << " to emit";
  llvm::sort(stages, [](auto &a, auto &b) { return a.first < b.first; });
  // Stage s must run on ranks [s * dp, (s + 1) * dp): the driver's pp x dp
  // grid, dp fastest.
  const int64_t dp = int64_t(stages.front().second->getAttrOfType<DenseI64ArrayAttr>(
                                 "kiln.ranks").size());
  SmallVector<func::FuncOp> out;
  for (auto [s, entryAndStep] : llvm::enumerate(stages)) {
    func::FuncOp f = entryAndStep.second;
    ArrayRef<int64_t> ranks = f->getAttrOfType<DenseI64ArrayAttr>("kiln.ranks").asArrayRef();
    for (auto [d, r] : llvm::enumerate(ranks))
      if (int64_t(ranks.size()) != dp || r != int64_t(s) * dp + int64_t(d))
        return f.emitError() << "@" << f.getSymName() << " runs on ranks " << "["
                             << llvm::make_range(ranks.begin(), ranks.end())
                             << "]; the host driver runs pipeline stage " << s << " on ranks "
                             << int64_t(s) * dp << " to " << (int64_t(s) + 1) * dp - 1;
    out.push_back(f);
  }
  return out;
}

} // namespace detail

using namespace detail;

std::string detail::curriculumTable(const HostProgramInfo &info) {
  if (info.curriculum.empty())
    return "";
  std::string table = "// train.curriculum: the corpus' difficulty by steps.\n"
                      "const kiln::driver::CurriculumStage kCurriculum[] = {\n";
  for (const auto &[until, digits, ops] : info.curriculum)
    table += "    {/*untilStep=*/" + std::to_string(until) + "u, /*maxDigits=*/" +
             std::to_string(digits) + ", /*maxOps=*/" + std::to_string(ops) + "},\n";
  return table + "};\n\n";
}

std::string detail::deviceTrainStep() {
  return "kiln::cuda::DeviceStep *device = nullptr;\n\n"
         "bool trainStep(const kiln::driver::StepBuffers &io, std::string &error) {\n"
         "  return device->run(io, error);\n}\n\n";
}

LogicalResult detail::emitRampupPrograms(const RampupPrograms &rampup, StringRef entry,
                                         const HostProgramInfo &info, LaunchTarget target,
                                         std::string &code, std::string &summary) {
  std::string table = "const kiln::driver::RampupProgram kRampupPrograms[] = {\n";
  for (auto [i, sized] : llvm::enumerate(rampup.programs)) {
    auto [rows, module] = sized;
    FailureOr<SmallVector<func::FuncOp>> programs = programsOf(module, entry);
    if (failed(programs))
      return failure();
    if (programs->size() != 1)
      return module.emitError() << "a batch rampup's program of " << rows << " rows has "
                                << programs->size() << " pipeline stages; expected one";
    Emitter emitter(programs->front(), info, 0, 1, {0, 0});
    emitter.target = target;
    std::string sizedCode;
    if (failed(emitter.emit(sizedCode)))
      return failure();
    if (target == LaunchTarget::Cuda)
      sizedCode += deviceTrainStep();
    const std::string ns = "rampup" + std::to_string(i);
    code += "// train.batch_rampup: the step of a global batch of " + std::to_string(rows) +
            " rows.\nnamespace " + ns + " {\n\n" + sizedCode + "} // namespace " + ns + "\n\n";
    table += "    {&" + ns + "::kModel, " + ns + "::trainStep},\n";
    summary += "; " + std::to_string(emitter.kernels()) + " kernels for " + std::to_string(rows) +
               " rows";
  }
  code += table + "};\n\nconst kiln::driver::BatchRampup kRampup = {\n" +
          "    /*startRows=*/" + std::to_string(rampup.startRows) + ",\n" +
          "    /*incrementRows=*/" + std::to_string(rampup.incrementRows) + ",\n" +
          "    /*samples=*/" + std::to_string(rampup.samples) + "u,\n" +
          "    kRampupPrograms,\n" +
          "    /*numPrograms=*/" + std::to_string(rampup.programs.size()) + ",\n};\n\n";
  return success();
}

LogicalResult emitHostProgram(ModuleOp module, StringRef entry, const HostProgramInfo &info,
                              raw_ostream &os, const DecodeModules *decode,
                              const GrpoProgram *grpo, const RampupPrograms *rampup) {
  FailureOr<SmallVector<func::FuncOp>> programs = programsOf(module, entry);
  if (failed(programs))
    return failure();
  const int64_t stages = int64_t(programs->size());
  if (rampup && stages > 1)
    return module.emitError() << "a batch rampup over " << stages
                              << " pipeline stages is not built yet";
  std::string code, summary, rampupSummary;
  if (rampup && failed(detail::emitRampupPrograms(*rampup, entry, info, LaunchTarget::Host, code,
                                                  rampupSummary)))
    return failure();
  // Each stage's description and step, rendered first so the header can
  // give the kernel counts; with pipeline stages each in its namespace.
  int64_t batch = 0, seqLen = 0;
  for (auto [s, step] : llvm::enumerate(*programs)) {
    Emitter emitter(step, info, int64_t(s), stages, {batch, seqLen});
    emitter.pointsAtRampup = rampup != nullptr;
    std::string stageCode;
    if (failed(emitter.emit(stageCode)))
      return failure();
    const int64_t arena = step->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr).getInt();
    summary += (s ? ", " : "") + std::to_string(emitter.kernels()) + " kernels over a " +
               std::to_string(arena) + "-byte arena";
    batch = emitter.batchRows();
    seqLen = emitter.sequenceLength();
    code += stages == 1 ? stageCode
                        : "namespace stage" + std::to_string(s) + " {\n\n" + stageCode +
                              "} // namespace stage" + std::to_string(s) + "\n\n";
  }
  std::string decodeCode;
  if (decode && failed(emitDecodeProgram(*decode, info, decodeCode)))
    return failure();
  if (decode && stages > 1)
    return module.emitError() << "a decode program next to " << stages
                              << " pipeline stages is not built yet";
  std::string grpoCode;
  if (grpo && (!decode || stages > 1))
    return module.emitError() << "a GRPO step needs its decode program and one stage";
  if (grpo && failed(emitGrpoProgram(*grpo, info, grpoCode)))
    return failure();
  os << "// Generated by kilnc from " << info.specPath << ". Do not edit.\n"
     << "//\n"
     << "// The training step of " << info.specName << " for the host target"
     << (stages > 1 ? ", in " + std::to_string(stages) + " pipeline stages" : std::string())
     << ": " << summary << ", batch " << batch << " x " << seqLen << " tokens"
     << rampupSummary << ". build.sh next to this file rebuilds it.\n\n"
     << (decode ? "// With its decode program (prefill and one-token steps over KV caches) for "
                  "`train --generate`.\n\n"
                : "")
     << "#include \"runtime/driver/ActionTrace.h\"\n"
     << (decode ? "#include \"runtime/driver/DecodeProgram.h\"\n" : "")
     << (grpo ? "#include \"runtime/driver/GrpoProgram.h\"\n" : "")
     << "#include \"runtime/driver/KernelProfile.h\"\n"
     << "#include \"runtime/driver/TrainMain.h\"\n"
     << "#include \"runtime/kernels/Attention.h\"\n"
     << "#include \"runtime/kernels/Copy.h\"\n"
     << "#include \"runtime/kernels/Decode.h\"\n"
     << "#include \"runtime/kernels/Dense.h\"\n"
     << "#include \"runtime/kernels/ExpertParallel.h\"\n"
     << "#include \"runtime/kernels/GradCompress.h\"\n"
     << "#include \"runtime/kernels/Grpo.h\"\n"
     << "#include \"runtime/kernels/Loss.h\"\n"
     << "#include \"runtime/kernels/MoE.h\"\n"
     << "#include \"runtime/kernels/NarrowGemm.h\"\n"
     << "#include \"runtime/kernels/Optimizer.h\"\n"
     << "#include \"runtime/kernels/Precision.h\"\n"
     << "#include \"runtime/kernels/Sparsity24.h\"\n\n"
     << "#include <cmath>\n#include <cstdint>\n#include <string>\n\n"
     << "namespace {\n\n"
     << curriculumTable(info)
     << code << decodeCode << grpoCode << "} // namespace\n\n"
     << "int main(int argc, char **argv) {\n";
  if (stages == 1) {
    os << "  return kiln::driver::trainMain(argc, argv, kModel, trainStep"
       << (decode ? ", &decode::kDecode" : "") << (grpo ? ", &grpo::kGrpo" : "") << ");\n}\n";
    return success();
  }
  os << "  // Each rank runs its pipeline stage's program.\n"
     << "  static const kiln::driver::StageProgram kStages[] = {\n";
  for (int64_t s = 0; s < stages; ++s)
    os << "      {&stage" << s << "::kModel, stage" << s << "::trainStep},\n";
  os << "  };\n"
     << "  return kiln::driver::trainMain(argc, argv, kStages, " << stages << ");\n}\n";
  return success();
}

} // namespace kiln::codegen
