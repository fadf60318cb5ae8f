//===- Summary.h - parameter counts, FLOPs and memory of a spec ----------===//
//
// What `kilnc spec.json` prints when asked for nothing else: how big the model
// is, how much of it one token uses, what a forward pass costs per token, and
// how many bytes the weights, gradients and optimizer state take (all ranks
// together, before any sharding; --plan splits it per rank).
//
// Parameters are counted exactly, tensor by tensor, from the architecture
// (HF names, [out, in] shapes; H hidden, V vocab, n heads, E routed experts):
//   model:          embed_tokens [V, H], norm [H], lm_head [V, H] (not when
//                   tie_word_embeddings: then embed_tokens is counted once)
//   every layer:    input_layernorm [H], post_attention_layernorm [H]
//   llama attn:     q_proj [n*hd, H], k_proj, v_proj [kv*hd, H], o_proj [H, n*hd]
//   deepseek MLA:   q_a_proj [q_lora, H], q_a_layernorm [q_lora],
//                   q_b_proj [n*(nope+rope), q_lora]   (or, with q_lora_rank
//                   null, q_proj [n*(nope+rope), H]),
//                   kv_a_proj_with_mqa [kv_lora+rope, H], kv_a_layernorm
//                   [kv_lora], kv_b_proj [n*(nope+v), kv_lora], o_proj [H, n*v]
//   dense FFN:      gate_proj, up_proj [I, H], down_proj [H, I]
//   MoE FFN:        gate.weight [E, H], gate.e_score_correction_bias [E]
//                   (topk_method noaux_tc only), E experts of gate/up
//                   [moeI, H] + down [H, moeI], shared_experts gate/up
//                   [moeI*n_shared, H] + down [H, moeI*n_shared]
//   MTP module k:   enorm [H], hnorm [H], eh_proj [H, 2H], one decoder layer
//                   (MoE iff layer index num_hidden_layers+k-1 is a MoE
//                   layer), shared_head.norm [H]; the embedding and output
//                   head are shared with the main model and not counted again.
//
// Active parameters per token: everything except the routed experts that a
// token does not use, i.e. per MoE layer only num_experts_per_tok routed
// experts (plus the shared ones, the router and its bias); both embedding
// matrices count (the lookup row and the head).
//
// Forward FLOPs per token: 2 per multiply-accumulate of every matmul a token
// goes through (its active matmul weights: projections, experts, router gate,
// lm_head; not the embedding lookup, norms or elementwise work) plus causal
// attention, 2 * S_avg * heads * (d_qk + d_v) per layer with S_avg =
// (seq_len + 1) / 2 keys on average (d_qk = nope + rope, d_v = v_head_dim for
// MLA computed in its expanded form; head_dim for both in llama). A training
// step costs about 3x the forward (backward = 2x).
//   flopsPerTokenMtp: the MTP modules, each with its eh_proj, decoder layer,
//   attention and a second pass through the shared lm_head.
//
// Bytes per parameter by train.precision (main model + MTP):
//   fp32:       weights 4, grads 4, Adam m+v 8, no master copy.
//   bf16/fp16:  weights 2, grads 2, fp32 master 4, Adam 8 (the classic
//               mixed-precision 16 bytes/param).
//   fp8:        matmul weights of attention, dense FFN and experts 1 byte
//               (e4m3) plus one fp32 scale per 128x128 block; embedding,
//               lm_head, router gate and norms stay bf16 (2), as in
//               DeepSeek-V3; grads bf16 (2); fp32 master 4; Adam 8.
//   train.optimizer.state_dtype "bf16" stores Adam's m and v in bf16: 4
//   bytes instead of 8 in every precision (DeepSeek-V3 in fp8 with bf16
//   moments: about 11 bytes per parameter).
//   The router bias (e_score_correction_bias) is an fp32 buffer (4 bytes)
//   moved by the bias-update rule, so it has no grad, master or Adam state.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FRONTEND_SUMMARY_H
#define KILN_FRONTEND_SUMMARY_H

#include "frontend/Spec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::frontend {

struct ModelSummary {
  /// Main model (everything but the MTP modules), embed_tokens and lm_head
  /// included (once if tied).
  int64_t paramsTotal = 0;
  /// Per token: non-expert parameters + top-k routed + shared experts per MoE
  /// layer; both embedding matrices included.
  int64_t paramsActive = 0;
  /// embed_tokens + lm_head (just embed_tokens when tied).
  int64_t paramsEmbedding = 0;
  /// MTP modules, without the shared embedding and head.
  int64_t paramsMtp = 0;
  int64_t paramsMtpActive = 0;
  /// Forward FLOPs per token of the main model (see above), at train.seq_len.
  double flopsPerToken = 0;
  /// Forward FLOPs per token of all MTP modules together.
  double flopsPerTokenMtp = 0;
  /// Bytes over the whole model (main + MTP), per train.precision (above).
  int64_t weightBytes = 0, gradBytes = 0, optimizerBytes = 0,
          masterWeightBytes = 0;
  /// The layout (spec.parallel): dp x pp ranks; one step trains
  /// dp x microbatches x micro_batch rows of seq_len tokens (a double: exact
  /// up to 2^53, and never overflows).
  int64_t worldSize = 1;
  int64_t globalBatchRows = 0;
  double globalBatchTokens = 0;
  /// Model state (weights, grads, master, Adam) one rank of the largest
  /// pipeline stage holds: layers split into pp contiguous ranges (the first
  /// num_hidden_layers % pp stages one layer longer), embedding on the first
  /// stage, final norm, head and MTP on the last (a tied embedding on both);
  /// routed experts divided by ep; with zero 1 the optimizer state and
  /// master weights divided further by the ranks that hold the same tensor
  /// (dp, or dp/ep for routed experts). Activations are not included.
  int64_t memoryPerRankBytes = 0;
  /// (weights + grads + master + Adam) / params over the whole model.
  double bytesPerParam = 0;
  /// The same model and layout in fp32, bf16, fp16 and fp8, each with the
  /// spec's moment storage: bytes per parameter and memory per rank.
  struct PrecisionCost {
    std::string precision;
    double bytesPerParam = 0;
    int64_t memoryPerRankBytes = 0;
  };
  std::vector<PrecisionCost> byPrecision;
  /// Activation checkpointing, priced by building the step (the frontend
  /// runs no passes: kilnc --activations fills this in). Per policy (none, selective, full,
  /// and the spec's own budget): the planned arena of one rank's step, the
  /// bytes of saved values each block call keeps (forward order: layers,
  /// then MTP), and the FLOPs recomputation adds per step (StepCost.h's
  /// model). Empty, with `checkpointingNote` saying why, when the step is
  /// not built (pp > 1).
  struct CheckpointingCost {
    std::string policy;
    int64_t arenaBytes = 0;
    std::vector<int64_t> savedBytesPerBlock;
    double recomputeFlops = 0;
  };
  std::vector<CheckpointingCost> checkpointing;
  std::string checkpointingNote;
  /// pp > 1 (kilnc fills it in: tools/kilnc/PipelinePricing.h): the layers
  /// cut into pp x chunks stages as Summary prices memory (contiguous, the
  /// first num_hidden_layers % stages one layer longer; embedding first,
  /// final norm, head and MTP last), the schedule simulated with the
  /// planner's per-action FLOPs of the costliest stage, and, with
  /// --activations, the bytes of saved values each rank holds at its peak.
  struct PipelineCost {
    int64_t stages = 0, chunks = 1;
    std::vector<int64_t> layersPerStage;
    /// FLOPs per micro-batch of the costliest stage: forward, backward for
    /// the input (I) and for the weights (W).
    double f = 0, i = 0, w = 0;
    /// The largest bubble (idle time within the step) over the ranks, as a
    /// fraction of the makespan, and its rank; the most micro-batches any
    /// rank holds in flight.
    double bubbleFraction = 0;
    int64_t bubbleRank = 0, peakInFlight = 0;
    /// Bytes of the hidden state one micro-batch sends across a stage
    /// boundary (f32), each way.
    int64_t edgeBytes = 0;
    /// With --activations: per rank, the peak bytes of saved values held for
    /// micro-batches in flight (a forward's values held until its W).
    std::vector<int64_t> activationBytesPerRank;
  };
  std::optional<PipelineCost> pipeline;
  std::string pipelineNote;
};

/// Forward FLOPs per token of one piece of the model, split as the backward
/// splits them: GEMMs (2 per multiply-accumulate; their input gradient and
/// their weight gradient each cost as much again) and causal attention
/// (whose backward, about twice its forward, is all input gradient).
struct PieceFlops {
  double gemm = 0, attention = 0;
};

/// The pieces a pipeline cuts: layers 0 .. num_hidden_layers - 1, then the
/// head (lm_head, tied or not), then each MTP module (its own layer and
/// projection and its use of the shared head), at train.seq_len.
std::vector<PieceFlops> pipelinePieceFlops(const Spec &spec);

ModelSummary summarize(const Spec &spec);

/// One screen, human readable ("params (total)   671.03B").
std::string formatSummaryText(const Spec &spec, const ModelSummary &summary);

/// One JSON object on one line: params_total, params_active,
/// params_embedding, params_mtp, params_mtp_active, flops_per_token,
/// flops_per_token_mtp, weight_bytes, grad_bytes, optimizer_bytes,
/// master_weight_bytes, model_type, layers, moe_layers, seq_len, precision,
/// world_size, global_batch_tokens, memory_per_rank_bytes, and when priced
/// "checkpointing": {policy: {arena_bytes, saved_bytes_per_block,
/// recompute_flops}} with memory_per_rank_with_arena_bytes (the spec's
/// policy), else checkpointing_note.
std::string formatSummaryJson(const Spec &spec, const ModelSummary &summary);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_SUMMARY_H
