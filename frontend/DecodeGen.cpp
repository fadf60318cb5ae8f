//===- DecodeGen.cpp - assemble @decode: embedding, cached layers, head ---===//
//
// The decode program is the training forward's main path (embedding,
// decoder layers, final norm, head) with each layer's attention going
// through its KV caches (ModelGen.h's DecodeState). As in MLIRGen, each
// layer kind is one block function called once per layer, here taking and
// returning the layer's caches next to the hidden state.
//
//===----------------------------------------------------------------------===//

#include "frontend/DecodeGen.h"
#include "frontend/MLIRGen.h"
#include "frontend/ModelGen.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;

namespace kiln::frontend {

namespace {

class DecodeBuilder {
public:
  DecodeBuilder(MLIRContext &ctx, const Spec &spec, int64_t chunk)
      : spec(spec), m(spec.model), rows(spec.train.generate.batch), chunk(chunk),
        maxLen(spec.train.generate.maxLen), builder(&ctx),
        g(builder, spec.model.initializerRange) {}

  OwningOpRef<ModuleOp> build();

private:
  bool deepseek() const { return m.family == ModelFamily::DeepSeekV3; }
  std::vector<ParamDecl> layerParams(int64_t layer) const {
    return deepseek() ? deepseekLayerParams(m, m.isMoELayer(layer)) : llamaLayerParams(m);
  }
  SmallVector<Type> cacheTypes() {
    SmallVector<Type> types;
    for (auto &[name, shape] : layerCacheShapes(m, rows, maxLen))
      types.push_back(g.f32(shape));
    return types;
  }
  /// (x, start, caches..., params...) -> (x, caches...), defined on first use.
  func::FuncOp layerFunc(int64_t layer);

  const Spec &spec;
  const ModelConfig &m;
  int64_t rows, chunk, maxLen;
  OpBuilder builder;
  Graph g;
  ModuleOp module;
  llvm::StringMap<func::FuncOp> blocks;
};

} // namespace

func::FuncOp DecodeBuilder::layerFunc(int64_t layer) {
  const bool moe = m.isMoELayer(layer);
  std::string name = !deepseek() ? "decoder_layer"
                     : moe       ? "decoder_layer_moe"
                                 : "decoder_layer_dense";
  if (func::FuncOp f = blocks.lookup(name))
    return f;
  Type x = g.f32({rows, chunk, m.hiddenSize});
  SmallVector<Type> inputs{x, g.i32({rows})}, results{x};
  SmallVector<Type> caches = cacheTypes();
  inputs.append(caches);
  results.append(caches);
  func::FuncOp f = g.defineBlock(
      module, name, inputs, layerParams(layer), results,
      [&](ValueRange in, const ParamScope &p) -> SmallVector<Value> {
        DecodeState decode{in[1], SmallVector<Value, 2>(in.drop_front(2))};
        // Inference is dropless: no expert capacity, whatever training uses.
        Value y = deepseek() ? buildDeepseekLayer(g, m, moe, /*capacityPairs=*/0, in[0], p,
                                                  &decode)
                             : buildLlamaLayer(g, m, in[0], p, &decode);
        SmallVector<Value> out{y};
        out.append(decode.caches.begin(), decode.caches.end());
        return out;
      });
  blocks[name] = f;
  return f;
}

OwningOpRef<ModuleOp> DecodeBuilder::build() {
  OwningOpRef<ModuleOp> owned = ModuleOp::create(g.loc(spec.path));
  module = *owned;
  const int64_t H = m.hiddenSize, V = m.vocabSize, L = m.numHiddenLayers;

  // Arguments: parameters in the forward's HF order (no MTP modules), then
  // the chunk's tokens, the rows' start positions and the caches.
  struct Arg {
    std::string name;
    ParamDecl decl;
    Type type;
  };
  std::vector<Arg> params;
  auto addParam = [&](const std::string &prefix, const ParamDecl &d) {
    params.push_back({prefix + d.name, d, g.f32(d.shape)});
  };
  addParam("model.", {"embed_tokens.weight", {V, H}});
  std::vector<size_t> layerArgStart;
  for (int64_t l = 0; l < L; ++l) {
    layerArgStart.push_back(params.size());
    for (const ParamDecl &d : layerParams(l))
      addParam("model.layers." + std::to_string(l) + ".", d);
  }
  addParam("model.", {"norm.weight", {H}, "ones"});
  if (!m.tieWordEmbeddings)
    addParam("", {"lm_head.weight", {V, H}});

  SmallVector<Type> argTypes, resultTypes{g.f32({rows, chunk, V})};
  for (const Arg &a : params)
    argTypes.push_back(a.type);
  const size_t tokensArg = argTypes.size();
  argTypes.append({g.i32({rows, chunk}), g.i32({rows})});
  const size_t firstCache = argTypes.size();
  auto cacheShapes = layerCacheShapes(m, rows, maxLen);
  std::vector<std::string> cacheNames;
  for (int64_t l = 0; l < L; ++l)
    for (auto &[name, shape] : cacheShapes) {
      cacheNames.push_back("model.layers." + std::to_string(l) + "." + name);
      argTypes.push_back(g.f32(shape));
      resultTypes.push_back(g.f32(shape));
    }

  builder.setInsertionPointToEnd(module.getBody());
  auto decode = func::FuncOp::create(builder, g.loc("model"), kDecodeEntry,
                                     builder.getFunctionType(argTypes, resultTypes));
  decode->setAttr("kiln.model_type", builder.getStringAttr(m.modelType));
  decode->setAttr("kiln.vocab_size", builder.getI64IntegerAttr(V));
  for (auto [i, a] : llvm::enumerate(params))
    g.annotateParam(decode, i, a.decl, a.name);
  decode.setArgAttr(tokensArg, "kiln.input", builder.getStringAttr("tokens"));
  decode.setArgAttr(tokensArg + 1, "kiln.input", builder.getStringAttr("positions"));
  decode.setResultAttr(0, "kiln.result", builder.getStringAttr("logits"));
  for (auto [i, name] : llvm::enumerate(cacheNames)) {
    decode.setArgAttr(firstCache + i, "kiln.cache", builder.getStringAttr(name));
    decode.setResultAttr(1 + i, "kiln.result", builder.getStringAttr("kv_cache"));
    decode.setResultAttr(1 + i, "kiln.cache", builder.getStringAttr(name));
  }

  for (int64_t l = 0; l < L; ++l)
    layerFunc(l);
  Block *entry = decode.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  auto paramNamed = [&](StringRef name) -> Value {
    for (auto [i, a] : llvm::enumerate(params))
      if (a.name == name)
        return entry->getArgument(i);
    llvm::report_fatal_error(llvm::Twine("DecodeGen: no @decode parameter ") + name);
  };
  Value start = entry->getArgument(tokensArg + 1);
  Value embed = paramNamed("model.embed_tokens.weight");
  Value head = m.tieWordEmbeddings ? embed : paramNamed("lm_head.weight");
  Value h = EmbeddingOp::create(builder, g.loc("model.embed_tokens"), g.f32({rows, chunk, H}),
                                embed, entry->getArgument(tokensArg));
  SmallVector<Value> updatedCaches;
  const size_t cachesPerLayer = cacheShapes.size();
  for (int64_t l = 0; l < L; ++l) {
    SmallVector<Value> callArgs{h, start};
    for (size_t c = 0; c < cachesPerLayer; ++c)
      callArgs.push_back(entry->getArgument(firstCache + l * cachesPerLayer + c));
    for (size_t i = 0; i < layerParams(l).size(); ++i)
      callArgs.push_back(entry->getArgument(layerArgStart[l] + i));
    auto call = func::CallOp::create(builder, g.loc("model.layers." + std::to_string(l)),
                                     layerFunc(l), callArgs);
    h = call.getResult(0);
    updatedCaches.append(call.getResults().begin() + 1, call.getResults().end());
  }
  Value logits = g.linear(g.rmsNorm(h, paramNamed("model.norm.weight"), m.rmsNormEps,
                                    "model.norm"),
                          head, "lm_head");
  SmallVector<Value> results{logits};
  results.append(updatedCaches);
  func::ReturnOp::create(builder, g.loc("model"), results);
  decode->moveBefore(&module.getBody()->front());
  return owned;
}

OwningOpRef<ModuleOp> buildDecodeModule(MLIRContext &context, const Spec &spec, int64_t chunk) {
  loadKilnDialects(context);
  return DecodeBuilder(context, spec, chunk).build();
}

} // namespace kiln::frontend
