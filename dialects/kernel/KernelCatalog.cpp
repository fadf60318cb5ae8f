//===- KernelCatalog.cpp - The kernel library's entries -------------------===//

#include "dialects/kernel/KernelCatalog.h"

#include "llvm/ADT/STLExtras.h"

using namespace llvm;

namespace kiln::kernel {

// Kernels made from kiln ops keep the op's operand and result counts (see
// KilnDenseOps.td and the other kiln .td files for their meaning).
// Elementwise kiln ops (silu, swiglu, scale and their gradients, arith on
// tensors) are not here: they become kiln_kernel.elementwise loops.
static const KernelInfo kCatalog[] = {
    // Dense.
    {"embedding", 2, 1},
    {"embedding_grad", 2, 1},
    {"linear", 2, 1},
    {"linear_dgrad", 2, 1},
    {"linear_wgrad", 2, 1},
    {"rms_norm", 2, 1},
    {"rms_norm_grad", 3, 2},
    {"broadcast", 1, 1},
    {"unbroadcast", 1, 1},
    // Attention.
    {"rope", 1, 1, /*optionalIns=*/1}, // the optional in is `start` (decoding)
    {"attention", 3, 1},
    {"attention_grad", 4, 3},
    // Decoding (KilnDecodeOps.td): cache_write updates its cache in place
    // when the cache is a step argument (its out is then in 0's buffer).
    {"cache_write", 3, 1},
    {"cached_attention", 4, 1},
    {"head_matmul", 2, 1},
    // Mixture of experts.
    {"router", 2, 2},
    {"router_grad", 3, 1},
    {"dispatch", 2, 3},
    {"dispatch_grad", 2, 1},
    {"combine", 3, 1},
    {"combine_grad", 4, 2},
    {"grouped_matmul", 3, 1},
    {"grouped_matmul_dgrad", 3, 1},
    {"grouped_matmul_wgrad", 3, 1},
    {"expert_load", 1, 1},
    {"expert_capacity", 1, 1},
    // Gradient compression (kiln-grad-compression).
    {"topk_compress", 2, 2},
    {"topk_decompress", 1, 1},
    {"balance_loss", 2, 1},
    {"balance_loss_grad", 3, 1},
    // Expert parallelism (kiln-expert-parallel), around the all_to_all.
    {"expert_counts", 1, 2},
    {"segment_transpose", 2, 2},
    // Loss.
    {"cross_entropy", 3, 1, /*optionalIns=*/1},
    {"cross_entropy_grad", 4, 1, /*optionalIns=*/1},
    // GRPO (KilnLossOps.td): the optional in is the global denominator.
    {"token_logprobs", 2, 1},
    {"grpo_loss", 6, 1, /*optionalIns=*/1},
    {"grpo_loss_grad", 7, 1, /*optionalIns=*/1},
    // Optimizer. adamw, bias_update and grad_scaler update their state in
    // place: the outs are the same buffers as ins 0, 2, 3 (adamw), 0
    // (bias_update) and outs 2, 3, 4 as ins 1, 2, 3 (grad_scaler). The
    // optional last in of bias_update is grad_scaler's skip flag; adamw's
    // optional ins are that flag and a 2:4 sparsity mask, in that order.
    {"lr_schedule", 1, 1},
    {"sparsity_mask_2_4", 3, 1},
    {"global_norm", kVariadic, 1},
    {"clip_scale", 1, 1},
    {"grad_scaler", 4, 5},
    {"adamw", 7, 3, /*optionalIns=*/2},
    {"bias_update", 2, 1, /*optionalIns=*/1},
    // Data movement (from tensor ops and splat constants).
    {"fill", 0, 1},
    {"extract_slice", 1, 1},
    {"insert_slice", 2, 1},
    {"concat", kVariadic, 1},
    // Collectives (KilnCollectiveOps.td): the same ins and outs as the ops;
    // params `axes` (and `kind`, `dim`) or `axis` and `peer` say which ranks
    // and what to do; the emitted program calls runtime/driver/StepComm.h.
    {"all_reduce", 1, 1},
    {"all_gather", 1, 1},
    {"reduce_scatter", 1, 1},
    {"local_shard", 1, 1},
    {"all_to_all", 2, 2},
    {"send", 1, 0},
    {"recv", 0, 1},
    // Posted send and receive (kiln-overlap-send-recv) and their wait,
    // matched by the param `ticket`; the wait takes the transfer's buffer.
    {"send_start", 1, 0},
    {"recv_start", 0, 1},
    {"p2p_wait", 1, 0},
    // kiln-overlap-collectives: the compute stream waits for the collective
    // of the same `event` param (on the communication stream); the wait
    // takes the collective's buffers (its in, and its out if another).
    {"stream_wait", kVariadic, 0},
    // FP8 (KilnPrecisionOps.td): quantize to e4m3 + block scales, back, and
    // the block-scaled GEMM; the grouped forms for the experts take the
    // expert offsets last.
    {"quantize_fp8", 1, 2},
    {"dequantize_fp8", 2, 1},
    {"scaled_matmul", 4, 1},
    {"quantize_fp8_grouped", 2, 2},
    {"scaled_grouped_matmul", 5, 1},
    {"scaled_grouped_matmul_wgrad", 5, 1},
};

ArrayRef<KernelInfo> kernelCatalog() { return kCatalog; }

const KernelInfo *lookupKernel(StringRef name) {
  auto *it = find_if(kCatalog, [&](const KernelInfo &k) { return k.name == name; });
  return it == std::end(kCatalog) ? nullptr : it;
}

} // namespace kiln::kernel
