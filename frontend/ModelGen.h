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

/// Parameters of decoder layer `layer` (its FFN is MoE per the config).
std::vector<ParamDecl> deepseekLayerParams(const ModelConfig &m, bool moe);
/// x [B, S, H] -> [B, S, H]: MLA attention + dense or DeepSeekMoE FFN.
/// `capacityPairs` > 0 bounds the pairs each routed expert takes from one
/// sequence (kiln.expert_capacity); 0 is dropless.
mlir::Value buildDeepseekLayer(Graph &g, const ModelConfig &m, bool moe,
                               int64_t capacityPairs, mlir::Value x, const ParamScope &p);
/// Parameters of one MTP module besides its decoder layer (enorm, hnorm,
/// eh_proj, shared_head.norm).
std::vector<ParamDecl> deepseekMtpParams(const ModelConfig &m);

std::vector<ParamDecl> llamaLayerParams(const ModelConfig &m);
/// x [B, S, H] -> [B, S, H]: GQA attention + SwiGLU MLP.
mlir::Value buildLlamaLayer(Graph &g, const ModelConfig &m, mlir::Value x,
                            const ParamScope &p);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_MODELGEN_H
