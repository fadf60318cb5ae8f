//===- HostProgramsEmitter.cpp - Decode and score programs as C++ --------===//
//
// The programs kilnc emits next to a training step that read the model's
// parameters by name rather than hold the step's state: the decode program
// (prefill and one-token steps over KV caches, runtime/driver/
// DecodeProgram.h) and GRPO's score program (runtime/driver/
// ScoreProgram.h), each with the descriptor its driver reads.
//
//===----------------------------------------------------------------------===//

#include "codegen/StepEmitter.h"

using namespace mlir;

namespace kiln::codegen::detail {

/// `kParamNames[]`: the HF names of the parameters a program reads, in its
/// argument order, which the driver binds to its buffers by name.
static std::string paramNamesTable(ArrayRef<std::string> names) {
  std::string table = "const char *const kParamNames[] = {\n";
  for (const std::string &name : names)
    table += "    \"" + name + "\",\n";
  return table + "};\n\n";
}

LogicalResult Emitter::classifyNamedParamArguments() {
  auto argError = [&](unsigned i) {
    return step.emitError() << "argument #" << i << " of @" << step.getSymName() << " ";
  };
  bool sawOutput = false;
  for (BlockArgument arg : step.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto type = cast<MemRefType>(arg.getType());
    if (auto name = step.getArgAttrOfType<StringAttr>(i, "kiln.param")) {
      names[arg] = "const_cast<float *>(io.params[" + std::to_string(paramNames.size()) + "])";
      paramNames.push_back(name.getValue().str());
      argDecls.push_back({identifierFor("p_", name.getValue()), names[arg], name.getValue().str(),
                          type});
    } else if (auto cache = step.getArgAttrOfType<StringAttr>(i, "kiln.cache")) {
      if (type.getRank() < 3 || type.getRank() > 4 || !type.getElementType().isF32())
        return argError(i) << "(cache '" << cache.getValue() << "') is " << type
                           << "; the driver holds f32 caches of rank 3 or 4";
      names[arg] = "io.caches[" + std::to_string(cacheNames.size()) + "]";
      cacheNames.push_back(cache.getValue().str());
      cacheTypes.push_back(type);
      argDecls.push_back({identifierFor("cache_", cache.getValue()), names[arg],
                          cache.getValue().str(), type});
    } else if (auto input = step.getArgAttrOfType<StringAttr>(i, "kiln.input")) {
      StringRef role = input.getValue();
      if (role != "tokens" && role != "positions" && role != "targets")
        return argError(i) << "is input '" << role
                           << "'; decode and score programs read tokens, targets and positions";
      if (role == "tokens") {
        batch = type.getDimSize(0);
        seqLen = type.getDimSize(1);
      }
      names[arg] = "const_cast<int32_t *>(io." + role.str() + ")";
      argDecls.push_back({role.str(), names[arg], "", type});
    } else if (auto output = step.getArgAttrOfType<StringAttr>(i, "kiln.output");
               output && (output.getValue() == "logits" || output.getValue() == "logprobs")) {
      names[arg] = "io." + output.getValue().str();
      argDecls.push_back({output.getValue().str(), names[arg], "", type});
      sawOutput = true;
    } else {
      return argError(i) << "is neither a parameter, a cache, tokens, targets, positions nor "
                            "the logits or logprobs output of a decode or score program";
    }
  }
  if (!sawOutput || batch == 0)
    return step.emitError() << "@" << step.getSymName()
                            << " is not a decode or score program: it needs tokens and a "
                               "logits or logprobs output";
  for (auto [arg, decl] : llvm::zip(step.getArguments(), argDecls))
    names[arg] = decl.name;
  return success();
}

LogicalResult Emitter::emitNamedParamProgram(StringRef name, StringRef buffers,
                                             std::string &code) {
  if (!step->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr))
    return step.emitError() << "@" << step.getSymName()
                            << " has no planned arena; run kiln-plan-arena first";
  function = name.str();
  partPrefix = name.str() + "Part";
  buffersType = buffers.str();
  if (failed(classifyNamedParamArguments()))
    return failure();
  llvm::raw_string_ostream stream(code);
  os = &stream;
  return emitStep();
}

/// `namespace decode { prefill, decodeStep, kDecode }`: the decode program's
/// two functions and its DecodeDesc.
LogicalResult emitDecodeProgram(const DecodeModules &decode, const HostProgramInfo &info,
                                std::string &code) {
  auto entryOf = [](ModuleOp module) -> func::FuncOp {
    auto f = module.lookupSymbol<func::FuncOp>("decode");
    if (!f || f.isExternal())
      module.emitError() << "no function @decode to emit";
    return f && !f.isExternal() ? f : func::FuncOp();
  };
  func::FuncOp prefillFn = entryOf(decode.prefill), stepFn = entryOf(decode.step);
  if (!prefillFn || !stepFn)
    return failure();
  Emitter prefill(prefillFn, info, 0, 1, {0, 0}), step(stepFn, info, 0, 1, {0, 0});
  std::string prefillCode, stepCode;
  if (failed(prefill.emitNamedParamProgram("prefill", "kiln::driver::DecodeBuffers",
                                           prefillCode)) ||
      failed(step.emitNamedParamProgram("decodeStep", "kiln::driver::DecodeBuffers", stepCode)))
    return failure();
  if (prefill.paramNames != step.paramNames ||
      prefill.cacheNames != step.cacheNames ||
      prefill.cacheTypes != step.cacheTypes || prefill.batchRows() != step.batchRows())
    return stepFn.emitError() << "the prefill and step decode programs disagree on their "
                                 "parameters, caches or rows";
  if (prefill.sequenceLength() != decode.promptLen || step.sequenceLength() != 1)
    return stepFn.emitError() << "prefill takes chunks of " << prefill.sequenceLength()
                              << " tokens and a step " << step.sequenceLength()
                              << "; expected " << decode.promptLen << " and 1";
  llvm::raw_string_ostream out(code);
  out << "namespace decode {\n\n" << prefillCode << stepCode;
  out << paramNamesTable(step.paramNames) << "const kiln::driver::CacheDesc kCaches[] = {\n";
  for (auto [name, type] : llvm::zip(step.cacheNames, step.cacheTypes)) {
    out << "    {\"" << name << "\", " << type.getRank() << ", {";
    for (auto [k, d] : llvm::enumerate(type.getShape()))
      out << (k ? ", " : "") << d;
    out << "}},\n";
  }
  auto arena = [](func::FuncOp f) {
    return f->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr).getInt();
  };
  out << "};\n\nconst kiln::driver::DecodeDesc kDecode = {\n"
      << "    kParamNames,\n"
      << "    /*numParams=*/" << step.paramNames.size() << ",\n"
      << "    kCaches,\n"
      << "    /*numCaches=*/" << step.cacheNames.size() << ",\n"
      << "    /*rows=*/" << step.batchRows() << ",\n"
      << "    /*promptLen=*/" << decode.promptLen << ",\n"
      << "    /*maxLen=*/" << decode.maxLen << ",\n"
      << "    /*vocabSize=*/" << info.vocabSize << ",\n"
      << "    /*prefillArenaBytes=*/" << arena(prefillFn) << "u,\n"
      << "    /*stepArenaBytes=*/" << arena(stepFn) << "u,\n"
      << "    prefill,\n"
      << "    decodeStep,\n"
      << "};\n\n} // namespace decode\n\n";
  return success();
}

/// `namespace grpo { score, kScore, kGrpo }`: the score program and the
/// GRPO options.
LogicalResult emitGrpoProgram(const GrpoProgram &grpo, const HostProgramInfo &info,
                              std::string &code) {
  ModuleOp module = grpo.score;
  auto scoreFn = module.lookupSymbol<func::FuncOp>("score");
  if (!scoreFn || scoreFn.isExternal())
    return module.emitError() << "no function @score to emit";
  Emitter emitter(scoreFn, info, 0, 1, {0, 0});
  std::string scoreCode;
  if (failed(emitter.emitNamedParamProgram("score", "kiln::driver::ScoreBuffers", scoreCode)))
    return failure();
  llvm::raw_string_ostream out(code);
  out << "namespace grpo {\n\n" << scoreCode << paramNamesTable(emitter.paramNames)
      << "const kiln::driver::ScoreDesc kScore = {\n"
      << "    kParamNames,\n"
      << "    /*numParams=*/" << emitter.paramNames.size() << ",\n"
      << "    /*rows=*/" << emitter.batchRows() << ",\n"
      << "    /*seqLen=*/" << emitter.sequenceLength() << ",\n"
      << "    /*arenaBytes=*/"
      << scoreFn->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr).getInt() << "u,\n"
      << "    score,\n"
      << "};\n\nconst kiln::driver::GrpoDesc kGrpo = {\n"
      << "    " << grpo.descFields << ",\n"
      << "    &kScore,\n"
      << "};\n\n} // namespace grpo\n\n";
  return success();
}

} // namespace kiln::codegen::detail
