//===- LlamaGen.cpp - Llama decoder layer (GQA, RoPE on halves, SwiGLU) ---===//

#include "frontend/ModelGen.h"

using namespace mlir;

namespace kiln::frontend {

std::vector<ParamDecl> llamaLayerParams(const ModelConfig &m) {
  int64_t H = m.hiddenSize, hd = m.headDim, I = m.intermediateSize;
  int64_t nq = m.numAttentionHeads * hd, nkv = m.numKeyValueHeads * hd;
  return {{"input_layernorm.weight", {H}, "ones"},
          {"self_attn.q_proj.weight", {nq, H}},
          {"self_attn.k_proj.weight", {nkv, H}},
          {"self_attn.v_proj.weight", {nkv, H}},
          {"self_attn.o_proj.weight", {H, nq}},
          {"post_attention_layernorm.weight", {H}, "ones"},
          {"mlp.gate_proj.weight", {I, H}},
          {"mlp.up_proj.weight", {I, H}},
          {"mlp.down_proj.weight", {H, I}}};
}

Value buildLlamaLayer(Graph &g, const ModelConfig &m, Value x, const ParamScope &p,
                      DecodeState *decode) {
  OpBuilder &b = g.builder();
  Value n = g.rmsNorm(x, p["input_layernorm.weight"], m.rmsNormEps, "input_layernorm");
  auto project = [&](StringRef name, int64_t heads) {
    std::string proj = ("self_attn." + name).str();
    return g.splitHeads(g.linear(n, p[proj + ".weight"], proj), heads, proj);
  };
  Value q = project("q_proj", m.numAttentionHeads);
  Value k = project("k_proj", m.numKeyValueHeads);
  Value v = project("v_proj", m.numKeyValueHeads);
  auto rope = [&](Value t) -> Value {
    return RopeOp::create(b, g.loc("self_attn.rotary_emb"), t.getType(), t,
                          decode ? decode->start : Value(),
                          b.getF64FloatAttr(m.ropeTheta), b.getBoolAttr(m.ropeInterleave),
                          YarnAttr());
  };
  // Sequenced statements, not call arguments: the IR's op order must not
  // depend on the compiler's argument evaluation order.
  q = rope(q);
  k = rope(k);
  ArrayRef<int64_t> s = Graph::shape(q);
  FloatAttr scale = b.getF64FloatAttr(1.0 / std::sqrt(double(s[3])));
  Value attn;
  if (decode) {
    Location at = g.loc("self_attn.kv_cache");
    Value keys = CacheWriteOp::create(b, at, decode->caches[0].getType(), decode->caches[0], k,
                                      decode->start);
    Value values = CacheWriteOp::create(b, at, decode->caches[1].getType(), decode->caches[1],
                                        v, decode->start);
    decode->caches = {keys, values};
    attn = CachedAttentionOp::create(b, g.loc("self_attn"), q.getType(), q, keys, values,
                                     decode->start, scale);
  } else {
    attn = AttentionOp::create(b, g.loc("self_attn"), q.getType(), q, k, v, scale,
                               b.getBoolAttr(true));
  }
  Value o = g.linear(g.mergeHeads(attn, "self_attn.o_proj"), p["self_attn.o_proj.weight"],
                     "self_attn.o_proj");
  Value h = g.add(x, o, "self_attn");
  Value n2 = g.rmsNorm(h, p["post_attention_layernorm.weight"], m.rmsNormEps,
                       "post_attention_layernorm");
  return g.add(h, g.mlp(n2, p, "mlp"), "mlp");
}

} // namespace kiln::frontend
