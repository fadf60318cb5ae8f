//===- ModelGen.h - per-family decoder layers for MLIRGen -----------------===//
//
// Each model family says which parameters a decoder layer has (HF names
// relative to "model.layers.N.", HF shapes, stacked experts) and how the layer
// computes. MLIRGen.cpp assembles layers, head, losses and MTP into @forward.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FRONTEND_MODELGEN_H
#define KILN_FRONTEND_MODELGEN_H

#include "frontend/GraphBuilder.h"
#include "frontend/Spec.h"

namespace kiln::frontend {

/// A decode program's view of one layer's attention (DecodeGen.cpp): each
/// row's start position and the layer's KV caches, which the layer reads and
/// replaces with their updated values. Null in the training forward.
struct DecodeState {
  mlir::Value start;                        ///< [batch] i32
  llvm::SmallVector<mlir::Value, 2> caches; ///< MLA: latent, rotary key; GQA: k, v
};

/// The KV caches of one decoder layer for `rows` x `maxLen` positions, with
/// their names relative to the layer ("self_attn.kv_latent").
std::vector<std::pair<std::string, llvm::SmallVector<int64_t, 4>>>
layerCacheShapes(const ModelConfig &m, int64_t rows, int64_t maxLen);

/// Parameters of decoder layer `layer` (its FFN is MoE per the config).
std::vector<ParamDecl> deepseekLayerParams(const ModelConfig &m, bool moe);
/// x [B, S, H] -> [B, S, H]: MLA attention + dense or DeepSeekMoE FFN.
/// `capacityPairs` > 0 bounds the pairs each routed expert takes from one
/// sequence (kiln.expert_capacity); 0 is dropless.
/// With `decode`, attention runs over the layer's caches in MLA's absorbed
/// form (DeepSeek-V3's inference): the query's no-rope part is taken into
/// latent space through kv_b_proj's key half, attention reads the latent
/// and rotary-key caches directly, and the value half maps the result back.
mlir::Value buildDeepseekLayer(Graph &g, const ModelConfig &m, bool moe,
                               int64_t capacityPairs, mlir::Value x, const ParamScope &p,
                               DecodeState *decode = nullptr);
/// Parameters of one MTP module besides its decoder layer (enorm, hnorm,
/// eh_proj, shared_head.norm).
std::vector<ParamDecl> deepseekMtpParams(const ModelConfig &m);

std::vector<ParamDecl> llamaLayerParams(const ModelConfig &m);
/// x [B, S, H] -> [B, S, H]: GQA attention + SwiGLU MLP.
/// With `decode`, keys and values go through the layer's caches.
mlir::Value buildLlamaLayer(Graph &g, const ModelConfig &m, mlir::Value x,
                            const ParamScope &p, DecodeState *decode = nullptr);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_MODELGEN_H
