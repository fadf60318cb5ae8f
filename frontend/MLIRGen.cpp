//===- MLIRGen.cpp - assemble @forward: embedding, layers, head, MTP ------===//

#include "frontend/MLIRGen.h"
#include "frontend/ModelGen.h"
#include "dialects/kiln/UpstreamGrads.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace kiln::frontend {

void loadKilnDialects(MLIRContext &context) {
  DialectRegistry registry;
  registerUpstreamGradientModels(registry);
  context.appendDialectRegistry(registry);
  context.loadDialect<KilnDialect, func::FuncDialect, arith::ArithDialect,
                      tensor::TensorDialect>();
}

namespace {

/// One argument of @forward: a parameter (full HF name) or an input.
struct ForwardArg {
  std::string name;
  ParamDecl decl;
  Type type;
  bool isInput = false;
};

class ForwardBuilder {
public:
  ForwardBuilder(MLIRContext &ctx, const Spec &spec)
      : spec(spec), m(spec.model), builder(&ctx),
        g(builder, spec.model.initializerRange) {}

  OwningOpRef<ModuleOp> build();

private:
  bool deepseek() const { return m.family == ModelFamily::DeepSeekV3; }
  bool moeLayer(int64_t layer) const { return m.isMoELayer(layer); }
  std::vector<ParamDecl> layerParams(int64_t layer) const {
    return deepseek() ? deepseekLayerParams(m, moeLayer(layer)) : llamaLayerParams(m);
  }
  /// The block function of decoder layer `layer`, defined on first use.
  func::FuncOp layerFunc(int64_t layer);
  /// The MTP module function whose decoder layer has index `layer`.
  func::FuncOp mtpFunc(int64_t layer);

  void addParam(const std::string &prefix, const ParamDecl &decl) {
    args.push_back({prefix + decl.name, decl, g.f32(decl.shape)});
  }

  const Spec &spec;
  const ModelConfig &m;
  OpBuilder builder;
  Graph g;
  ModuleOp module;
  std::vector<ForwardArg> args;
  llvm::StringMap<func::FuncOp> blocks;
};

} // namespace

func::FuncOp ForwardBuilder::layerFunc(int64_t layer) {
  std::string name = !deepseek()           ? "decoder_layer"
                     : moeLayer(layer)     ? "decoder_layer_moe"
                                           : "decoder_layer_dense";
  if (func::FuncOp f = blocks.lookup(name))
    return f;
  int64_t B = spec.train.microBatch, S = spec.train.seqLen;
  Type x = g.f32({B, S, m.hiddenSize});
  bool moe = moeLayer(layer);
  func::FuncOp f = g.defineBlock(
      module, name, {x}, layerParams(layer), {x},
      [&](ValueRange in, const ParamScope &p) -> SmallVector<Value> {
        int64_t capacity =
            spec.parallel.expertCapacityPairs(S, m.numExpertsPerTok, m.nRoutedExperts);
        return {deepseek() ? buildDeepseekLayer(g, m, moe, capacity, in[0], p)
                           : buildLlamaLayer(g, m, in[0], p)};
      });
  blocks[name] = f;
  return f;
}

func::FuncOp ForwardBuilder::mtpFunc(int64_t layer) {
  std::string name = moeLayer(layer) ? "mtp_module_moe" : "mtp_module_dense";
  if (func::FuncOp f = blocks.lookup(name))
    return f;
  func::FuncOp decoder = layerFunc(layer);
  int64_t B = spec.train.microBatch, S = spec.train.seqLen, H = m.hiddenSize;
  int64_t V = m.vocabSize;
  Type hidden = g.f32({B, S, H});
  std::vector<ParamDecl> params = deepseekMtpParams(m);
  std::vector<ParamDecl> layerDecls = layerParams(layer);
  params.insert(params.end(), layerDecls.begin(), layerDecls.end());
  func::FuncOp f = g.defineBlock(
      module, name, {hidden, g.i32({B, S}), g.f32({V, H}), g.f32({V, H})}, params,
      {hidden, g.f32({B, S, V})},
      [&](ValueRange in, const ParamScope &p) -> SmallVector<Value> {
        OpBuilder &b = g.builder();
        Value emb = EmbeddingOp::create(b, g.loc("embed_tokens"), hidden, in[2], in[1]);
        Value e = g.rmsNorm(emb, p["enorm.weight"], m.rmsNormEps, "enorm");
        Value h = g.rmsNorm(in[0], p["hnorm.weight"], m.rmsNormEps, "hnorm");
        Value x = g.linear(g.concat({e, h}, 2, "eh_proj"), p["eh_proj.weight"], "eh_proj");
        SmallVector<Value> callArgs{x};
        for (const ParamDecl &d : layerDecls)
          callArgs.push_back(p[d.name]);
        Value out = func::CallOp::create(b, g.loc("mtp_block"), decoder, callArgs)
                        .getResult(0);
        Value n = g.rmsNorm(out, p["shared_head.norm.weight"], m.rmsNormEps,
                            "shared_head.norm");
        return {out, g.linear(n, in[3], "shared_head.head")};
      });
  blocks[name] = f;
  return f;
}

OwningOpRef<ModuleOp> ForwardBuilder::build() {
  OwningOpRef<ModuleOp> owned = ModuleOp::create(g.loc(spec.path));
  module = *owned;
  int64_t B = spec.train.microBatch, S = spec.train.seqLen, H = m.hiddenSize;
  int64_t V = m.vocabSize, L = m.numHiddenLayers;
  // GRPO trains the main head on sampled completions; the MTP modules are
  // neither built nor trained there (R1's RL stage).
  const bool grpo = spec.train.stage == "grpo";
  int64_t depth = deepseek() && !grpo ? m.numNextnPredictLayers : 0;

  // @forward's arguments, in HF order: embedding, layers, norm, head, MTP.
  addParam("model.", {"embed_tokens.weight", {V, H}});
  std::vector<size_t> layerArgStart;
  for (int64_t l = 0; l < L + depth; ++l) {
    std::string prefix = "model.layers." + std::to_string(l) + ".";
    if (l == L) {
      addParam("model.", {"norm.weight", {H}, "ones"});
      if (!m.tieWordEmbeddings)
        addParam("", {"lm_head.weight", {V, H}});
    }
    layerArgStart.push_back(args.size());
    if (l >= L)
      for (const ParamDecl &d : deepseekMtpParams(m))
        addParam(prefix, d);
    for (const ParamDecl &d : layerParams(l))
      addParam(prefix, d);
  }
  if (L + depth == L) {
    addParam("model.", {"norm.weight", {H}, "ones"});
    if (!m.tieWordEmbeddings)
      addParam("", {"lm_head.weight", {V, H}});
  }
  size_t firstInput = args.size();
  for (StringRef role : {"tokens", "targets"})
    args.push_back({role.str(), {}, g.i32({B, S}), true});
  args.push_back({"loss_mask", {}, g.f32({B, S}), true});
  if (grpo) {
    args.push_back({"advantages", {}, g.f32({B}), true});
    args.push_back({"old_logprobs", {}, g.f32({B, S}), true});
    args.push_back({"ref_logprobs", {}, g.f32({B, S}), true});
  }

  SmallVector<Type> argTypes, resultTypes;
  for (const ForwardArg &a : args)
    argTypes.push_back(a.type);
  Type scalar = g.f32({});
  resultTypes = {scalar, g.f32({B, S, V})};
  for (int64_t k = 0; k < depth; ++k)
    resultTypes.append({scalar, g.f32({B, S, V})});

  builder.setInsertionPointToEnd(module.getBody());
  auto forward = func::FuncOp::create(builder, g.loc("model"), "forward",
                                      builder.getFunctionType(argTypes, resultTypes));
  forward->setAttr("kiln.model_type", builder.getStringAttr(m.modelType));
  forward->setAttr("kiln.vocab_size", builder.getI64IntegerAttr(V));
  for (auto [i, a] : llvm::enumerate(args)) {
    if (a.isInput)
      forward.setArgAttr(i, "kiln.input", builder.getStringAttr(a.name));
    else
      g.annotateParam(forward, i, a.decl, a.name);
  }
  forward.setResultAttr(0, "kiln.result", builder.getStringAttr("loss"));
  forward.setResultAttr(1, "kiln.result", builder.getStringAttr("logits"));
  for (int64_t k = 0; k < depth; ++k) {
    std::string n = std::to_string(k + 1);
    forward.setResultAttr(2 + 2 * k, "kiln.result", builder.getStringAttr("mtp_loss_" + n));
    forward.setResultAttr(3 + 2 * k, "kiln.result", builder.getStringAttr("mtp_logits_" + n));
  }

  Block *entry = forward.addEntryBlock();
  auto argNamed = [&](StringRef name) -> Value {
    for (auto [i, a] : llvm::enumerate(args))
      if (a.name == name)
        return entry->getArgument(i);
    llvm::report_fatal_error(llvm::Twine("MLIRGen: no @forward argument ") + name);
  };
  auto layerArgs = [&](int64_t l, Value first, size_t skip) {
    SmallVector<Value> v{first};
    size_t begin = layerArgStart[l] + skip;
    for (size_t i = 0; i < layerParams(l).size(); ++i)
      v.push_back(entry->getArgument(begin + i));
    return v;
  };

  // Block functions are defined before @forward's body is filled.
  for (int64_t l = 0; l < L; ++l)
    layerFunc(l);
  for (int64_t l = L; l < L + depth; ++l)
    mtpFunc(l);

  builder.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(firstInput);
  Value targets = entry->getArgument(firstInput + 1);
  Value mask = entry->getArgument(firstInput + 2);
  Value embed = argNamed("model.embed_tokens.weight");
  Value head = m.tieWordEmbeddings ? embed : argNamed("lm_head.weight");
  auto crossEntropy = [&](Value logits, Value t, Value msk, StringRef where) -> Value {
    return CrossEntropyOp::create(builder, g.loc(where), scalar, logits, t, msk, Value(),
                                  builder.getF64FloatAttr(spec.train.labelSmoothing));
  };

  Value h = EmbeddingOp::create(builder, g.loc("model.embed_tokens"), g.f32({B, S, H}),
                                embed, tokens);
  for (int64_t l = 0; l < L; ++l) {
    std::string where = "model.layers." + std::to_string(l);
    h = func::CallOp::create(builder, g.loc(where), layerFunc(l), layerArgs(l, h, 0))
            .getResult(0);
  }
  Value logits = g.linear(g.rmsNorm(h, argNamed("model.norm.weight"), m.rmsNormEps,
                                    "model.norm"),
                          head, "lm_head");
  Value loss;
  if (grpo) {
    const frontend::GrpoConfig &c = spec.train.grpo;
    loss = GrpoLossOp::create(
        builder, g.loc("loss"), scalar, logits, targets, mask,
        entry->getArgument(firstInput + 3), entry->getArgument(firstInput + 4),
        entry->getArgument(firstInput + 5), Value(), builder.getF64FloatAttr(c.temperature),
        builder.getF64FloatAttr(c.clipLow), builder.getF64FloatAttr(c.clipHigh),
        builder.getF64FloatAttr(c.beta), builder.getStringAttr(c.aggregation),
        builder.getI64IntegerAttr(c.maxNewTokens));
  } else {
    loss = crossEntropy(logits, targets, mask, "loss");
  }
  SmallVector<Value> results{loss, logits};

  // MTP depth k predicts token i + k + 1 at position i from h^{k-1} and the
  // embedding of token i + k (tokens rolled left by k, wrapping around); the
  // last k positions have no target and are masked out. Causal attention keeps
  // the wrapped positions from affecting the others; only the balance loss,
  // which averages over every position, sees them.
  for (int64_t k = 1; k <= depth; ++k) {
    int64_t l = L + k - 1;
    std::string where = "model.layers." + std::to_string(l);
    Value inTokens = g.rollLeft(tokens, k, where);
    SmallVector<Value> callArgs{h, inTokens, embed, head};
    size_t begin = layerArgStart[l];
    size_t count = deepseekMtpParams(m).size() + layerParams(l).size();
    for (size_t i = 0; i < count; ++i)
      callArgs.push_back(entry->getArgument(begin + i));
    auto call = func::CallOp::create(builder, g.loc(where), mtpFunc(l), callArgs);
    h = call.getResult(0);
    Value mtpLogits = call.getResult(1);
    results.push_back(crossEntropy(mtpLogits, g.rollLeft(targets, k, where),
                                   g.shiftLeftZeroFill(mask, k, where),
                                   where + ".loss"));
    results.push_back(mtpLogits);
  }
  func::ReturnOp::create(builder, g.loc("model"), results);

  // Keep @forward first in the module: it is what a reader looks for.
  forward->moveBefore(&module.getBody()->front());
  return owned;
}

OwningOpRef<ModuleOp> buildForwardModule(MLIRContext &context, const Spec &spec) {
  loadKilnDialects(context);
  return ForwardBuilder(context, spec).build();
}

} // namespace kiln::frontend
