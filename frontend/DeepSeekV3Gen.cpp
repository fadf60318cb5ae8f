//===- DeepSeekV3Gen.cpp - MLA + DeepSeekMoE decoder layer, MTP params ----===//
//
// Follows Hugging Face's DeepseekV3Attention / DeepseekV3MoE, with weights
// under their HF names: MLA's kv_a_proj_with_mqa yields
// [kv_lora_rank | qk_rope_head_dim] (one rotary key head shared by all heads),
// kv_b_proj yields [qk_nope | v] per head, RoPE rotates interleaved pairs, and
// the softmax scale gets YaRN's mscale^2.
//
//===----------------------------------------------------------------------===//

#include "frontend/ModelGen.h"
#include "dialects/kiln/reference/Rope.h"

using namespace mlir;

namespace kiln::frontend {

std::vector<ParamDecl> deepseekLayerParams(const ModelConfig &m, bool moe) {
  int64_t H = m.hiddenSize, nh = m.numAttentionHeads, qhd = m.qHeadDim();
  std::vector<ParamDecl> p{{"input_layernorm.weight", {H}, "ones"}};
  if (m.qLoraRank > 0) {
    p.push_back({"self_attn.q_a_proj.weight", {m.qLoraRank, H}});
    p.push_back({"self_attn.q_a_layernorm.weight", {m.qLoraRank}, "ones"});
    p.push_back({"self_attn.q_b_proj.weight", {nh * qhd, m.qLoraRank}});
  } else {
    p.push_back({"self_attn.q_proj.weight", {nh * qhd, H}});
  }
  p.push_back({"self_attn.kv_a_proj_with_mqa.weight", {m.kvLoraRank + m.qkRopeHeadDim, H}});
  p.push_back({"self_attn.kv_a_layernorm.weight", {m.kvLoraRank}, "ones"});
  p.push_back({"self_attn.kv_b_proj.weight",
               {nh * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank}});
  p.push_back({"self_attn.o_proj.weight", {H, nh * m.vHeadDim}});
  p.push_back({"post_attention_layernorm.weight", {H}, "ones"});
  if (!moe) {
    int64_t I = m.intermediateSize;
    p.push_back({"mlp.gate_proj.weight", {I, H}});
    p.push_back({"mlp.up_proj.weight", {I, H}});
    p.push_back({"mlp.down_proj.weight", {H, I}});
    return p;
  }
  int64_t E = m.nRoutedExperts, I = m.moeIntermediateSize;
  p.push_back({"mlp.gate.weight", {E, H}});
  // The balancing bias is a buffer, moved by the load-balancing update, never
  // by a gradient.
  p.push_back({"mlp.gate.e_score_correction_bias", {E}, "zeros", /*trainable=*/false});
  p.push_back({"mlp.experts.*.gate_proj.weight", {E, I, H}});
  p.push_back({"mlp.experts.*.up_proj.weight", {E, I, H}});
  p.push_back({"mlp.experts.*.down_proj.weight", {E, H, I}});
  if (m.nSharedExperts > 0) {
    int64_t S = I * m.nSharedExperts;
    p.push_back({"mlp.shared_experts.gate_proj.weight", {S, H}});
    p.push_back({"mlp.shared_experts.up_proj.weight", {S, H}});
    p.push_back({"mlp.shared_experts.down_proj.weight", {H, S}});
  }
  return p;
}

std::vector<ParamDecl> deepseekMtpParams(const ModelConfig &m) {
  int64_t H = m.hiddenSize;
  return {{"enorm.weight", {H}, "ones"},
          {"hnorm.weight", {H}, "ones"},
          {"eh_proj.weight", {H, 2 * H}},
          {"shared_head.norm.weight", {H}, "ones"}};
}

static Value rope(Graph &g, const ModelConfig &m, Value x, Value start, StringRef where) {
  OpBuilder &b = g.builder();
  YarnAttr yarn;
  if (m.yarn)
    yarn = YarnAttr::get(b.getContext(), llvm::APFloat(m.yarn->factor),
                         m.yarn->originalMaxPositionEmbeddings,
                         llvm::APFloat(m.yarn->betaFast), llvm::APFloat(m.yarn->betaSlow),
                         llvm::APFloat(m.yarn->mscale), llvm::APFloat(m.yarn->mscaleAllDim));
  return RopeOp::create(b, g.loc(where), x.getType(), x, start, b.getF64FloatAttr(m.ropeTheta),
                        b.getBoolAttr(m.ropeInterleave), yarn);
}

/// Attention over the layer's caches, MLA's absorbed form (see ModelGen.h):
/// the latent cache [B, M, kv_lora] is both the keys' first part and the
/// values; the rotary-key cache [B, M, 1, rope] the keys' second part.
static Value absorbedLatentAttention(Graph &g, const ModelConfig &m, Value qNope, Value qPe,
                                     Value latent, Value kPe, DecodeState &decode,
                                     const ParamScope &p, double scale) {
  OpBuilder &b = g.builder();
  int64_t nh = m.numAttentionHeads, nope = m.qkNopeHeadDim, lora = m.kvLoraRank;
  Location at = g.loc("self_attn.kv_cache");
  Value latentCache = CacheWriteOp::create(b, at, decode.caches[0].getType(), decode.caches[0],
                                           latent, decode.start);
  Value peCache = CacheWriteOp::create(b, at, decode.caches[1].getType(), decode.caches[1], kPe,
                                       decode.start);
  decode.caches = {latentCache, peCache};

  // kv_b_proj's rows per head are [W_UK (qk_nope) | W_UV (v_head)], each
  // [., kv_lora].
  Value wkv = g.splitRows(p["self_attn.kv_b_proj.weight"], nh, "self_attn.kv_b_proj");
  Value wUk = g.slice(wkv, 1, 0, nope, "self_attn.kv_b_proj.k");
  Value wUv = g.slice(wkv, 1, nope, m.vHeadDim, "self_attn.kv_b_proj.v");
  ArrayRef<int64_t> q = Graph::shape(qNope);
  Value qLatent = HeadMatmulOp::create(b, g.loc("self_attn.q_absorb"),
                                       g.f32({q[0], q[1], nh, lora}), qNope, wUk,
                                       b.getBoolAttr(true));
  Value query = g.concat({qLatent, qPe}, 3, "self_attn.query");
  Value latentHeads = g.splitHeads(latentCache, 1, "self_attn.kv_latent");
  Value key = g.concat({latentHeads, peCache}, 3, "self_attn.key");
  Value attn = CachedAttentionOp::create(b, g.loc("self_attn"), g.f32({q[0], q[1], nh, lora}),
                                         query, key, latentHeads, decode.start,
                                         b.getF64FloatAttr(scale));
  return HeadMatmulOp::create(b, g.loc("self_attn.v_absorb"),
                              g.f32({q[0], q[1], nh, m.vHeadDim}), attn, wUv,
                              b.getBoolAttr(false));
}

static Value multiHeadLatentAttention(Graph &g, const ModelConfig &m, Value x,
                                      const ParamScope &p, DecodeState *decode) {
  int64_t nh = m.numAttentionHeads, nope = m.qkNopeHeadDim, rot = m.qkRopeHeadDim;
  Value q;
  if (m.qLoraRank > 0) {
    Value qa = g.linear(x, p["self_attn.q_a_proj.weight"], "self_attn.q_a_proj");
    qa = g.rmsNorm(qa, p["self_attn.q_a_layernorm.weight"], m.rmsNormEps,
                   "self_attn.q_a_layernorm");
    q = g.linear(qa, p["self_attn.q_b_proj.weight"], "self_attn.q_b_proj");
  } else {
    q = g.linear(x, p["self_attn.q_proj.weight"], "self_attn.q_proj");
  }
  q = g.splitHeads(q, nh, "self_attn.q_proj");
  Value qNope = g.slice(q, 3, 0, nope, "self_attn.q_nope");
  Value start = decode ? decode->start : Value();
  Value qPe = rope(g, m, g.slice(q, 3, nope, rot, "self_attn.q_pe"), start,
                   "self_attn.rotary_emb");

  Value ckv = g.linear(x, p["self_attn.kv_a_proj_with_mqa.weight"],
                       "self_attn.kv_a_proj_with_mqa");
  Value kPe = g.slice(ckv, 2, m.kvLoraRank, rot, "self_attn.k_pe");
  kPe = rope(g, m, g.splitHeads(kPe, 1, "self_attn.k_pe"), start, "self_attn.rotary_emb");
  ArrayRef<int64_t> s = Graph::shape(x);
  auto normedLatent = [&] {
    Value latent = g.slice(ckv, 2, 0, m.kvLoraRank, "self_attn.compressed_kv");
    return g.rmsNorm(latent, p["self_attn.kv_a_layernorm.weight"], m.rmsNormEps,
                     "self_attn.kv_a_layernorm");
  };
  double scale = 1.0 / std::sqrt(double(m.qHeadDim()));
  if (m.yarn && m.yarn->mscaleAllDim != 0) {
    double mscale = reference::yarnMagnitude(m.yarn->factor, m.yarn->mscaleAllDim);
    scale *= mscale * mscale;
  }
  if (decode) {
    Value heads =
        absorbedLatentAttention(g, m, qNope, qPe, normedLatent(), kPe, *decode, p, scale);
    return g.linear(g.mergeHeads(heads, "self_attn.o_proj"), p["self_attn.o_proj.weight"],
                    "self_attn.o_proj");
  }
  kPe = BroadcastOp::create(g.builder(), g.loc("self_attn.k_pe"),
                            g.f32({s[0], s[1], nh, rot}), kPe);
  Value latent = normedLatent();
  Value kv = g.splitHeads(g.linear(latent, p["self_attn.kv_b_proj.weight"],
                                   "self_attn.kv_b_proj"),
                          nh, "self_attn.kv_b_proj");
  Value kNope = g.slice(kv, 3, 0, nope, "self_attn.k_nope");
  Value v = g.slice(kv, 3, nope, m.vHeadDim, "self_attn.value");

  Value query = g.concat({qNope, qPe}, 3, "self_attn.query");
  Value key = g.concat({kNope, kPe}, 3, "self_attn.key");
  OpBuilder &b = g.builder();
  Value attn = AttentionOp::create(b, g.loc("self_attn"), g.f32({s[0], s[1], nh, m.vHeadDim}),
                                   query, key, v, b.getF64FloatAttr(scale),
                                   b.getBoolAttr(true));
  return g.linear(g.mergeHeads(attn, "self_attn.o_proj"), p["self_attn.o_proj.weight"],
                  "self_attn.o_proj");
}

static Value deepseekMoE(Graph &g, const ModelConfig &m, int64_t capacityPairs, Value x,
                         const ParamScope &p) {
  OpBuilder &b = g.builder();
  int64_t batch = Graph::shape(x)[0], seq = Graph::shape(x)[1], H = m.hiddenSize,
          E = m.nRoutedExperts;
  int64_t k = m.numExpertsPerTok, I = m.moeIntermediateSize;
  Value t = g.flattenTokens(x, "mlp");
  int64_t T = Graph::shape(t)[0];
  Value logits = g.linear(t, p["mlp.gate.weight"], "mlp.gate");
  StringRef groupScore = m.topkMethod == "group_limited_greedy" ? "max" : "top2_sum";
  int64_t groups = m.topkMethod == "greedy" ? 1 : m.nGroup;
  int64_t keep = m.topkMethod == "greedy" ? 1 : m.topkGroup;
  auto router = RouterOp::create(
      b, g.loc("mlp.gate"), TypeRange{g.i32({T, k}), g.f32({T, k})}, logits,
      p["mlp.gate.e_score_correction_bias"], b.getStringAttr(m.scoringFunc),
      b.getStringAttr(groupScore), b.getI64IntegerAttr(groups), b.getI64IntegerAttr(keep),
      b.getI64IntegerAttr(k), b.getBoolAttr(m.normTopkProb && k > 1),
      b.getF64FloatAttr(m.routedScalingFactor));
  // Over capacity, pairs drop per sequence (the op's doc says why); the
  // router's own indices still feed the load that balancing reads.
  Value indices = router.getIndices();
  if (capacityPairs > 0)
    indices = ExpertCapacityOp::create(b, g.loc("mlp.experts"), indices.getType(), indices,
                                       b.getI64IntegerAttr(E), b.getI64IntegerAttr(seq),
                                       b.getI64IntegerAttr(capacityPairs));
  auto dispatch = DispatchOp::create(
      b, g.loc("mlp.experts"), TypeRange{g.f32({T * k, H}), g.i32({E + 1}), g.i32({T * k})},
      t, indices, b.getI64IntegerAttr(E));
  auto grouped = [&](Value in, StringRef name, int64_t n) -> Value {
    return GroupedMatmulOp::create(b, g.loc("mlp.experts"), g.f32({T * k, n}), in,
                                   p[name], dispatch.getOffsets());
  };
  Value gate = grouped(dispatch.getRows(), "mlp.experts.*.gate_proj.weight", I);
  Value up = grouped(dispatch.getRows(), "mlp.experts.*.up_proj.weight", I);
  Value act = SwigluOp::create(b, g.loc("mlp.experts"), gate.getType(), gate, up);
  Value down = grouped(act, "mlp.experts.*.down_proj.weight", H);
  Value y = CombineOp::create(b, g.loc("mlp.experts"), g.f32({T, H}), down,
                              router.getWeights(), dispatch.getSource());
  if (m.nSharedExperts > 0)
    y = g.add(y, g.mlp(t, p, "mlp.shared_experts"), "mlp");
  return g.unflattenTokens(y, batch, "mlp");
}

Value buildDeepseekLayer(Graph &g, const ModelConfig &m, bool moe, int64_t capacityPairs,
                         Value x, const ParamScope &p, DecodeState *decode) {
  Value n = g.rmsNorm(x, p["input_layernorm.weight"], m.rmsNormEps, "input_layernorm");
  Value h = g.add(x, multiHeadLatentAttention(g, m, n, p, decode), "self_attn");
  Value n2 = g.rmsNorm(h, p["post_attention_layernorm.weight"], m.rmsNormEps,
                       "post_attention_layernorm");
  Value ffn = moe ? deepseekMoE(g, m, capacityPairs, n2, p) : g.mlp(n2, p, "mlp");
  return g.add(h, ffn, "mlp");
}

} // namespace kiln::frontend

namespace kiln::frontend {

std::vector<std::pair<std::string, llvm::SmallVector<int64_t, 4>>>
layerCacheShapes(const ModelConfig &m, int64_t rows, int64_t maxLen) {
  if (m.family == ModelFamily::DeepSeekV3)
    return {{"self_attn.kv_latent", {rows, maxLen, m.kvLoraRank}},
            {"self_attn.k_rope", {rows, maxLen, 1, m.qkRopeHeadDim}}};
  return {{"self_attn.k_cache", {rows, maxLen, m.numKeyValueHeads, m.headDim}},
          {"self_attn.v_cache", {rows, maxLen, m.numKeyValueHeads, m.headDim}}};
}

} // namespace kiln::frontend
