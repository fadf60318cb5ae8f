//===- KilnMoEOps.td - routing, token dispatch/combine, grouped GEMM -----===//
//
// Dropless MoE with static shapes, in the contiguous layout that Megatron's
// grouped GEMM and DeepGEMM use: the tokens*top_k routed rows are permuted
// into one buffer sorted by expert, `offsets[e]..offsets[e+1]` are expert e's
// rows, and `source` says which (token, slot) each row came from.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_MOE_OPS_TD
#define KILN_MOE_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_RouterOp : Kiln_Op<"router", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "DeepSeekMoE top-k routing: scores, grouped selection, weights";
  let description = [{
    `logits` is [tokens, experts] (the `mlp.gate` linear's output) and `bias`
    is [experts] (HF `e_score_correction_bias`, the aux-loss-free balancing
    bias). Per token:

    1. `s = sigmoid(logits)` (`scoring = "sigmoid"`) or `softmax(logits)`
       over experts (`scoring = "softmax"`).
    2. `c = s + bias`: the bias is used for selection only.
    3. Experts are split into `n_group` equal contiguous groups. A group's
       score is the sum of its two largest `c` (`group_score = "top2_sum"`,
       DeepSeek-V3's noaux_tc) or its largest `c` (`group_score = "max"`).
       The `topk_group` best groups are kept; the others' experts are
       excluded. With `n_group = 1` every expert is eligible.
    4. `indices` = the `top_k` eligible experts with the largest `c`, in
       decreasing order of `c` (ties: lower expert index first).
    5. `weights[t, j] = s[t, indices[t, j]]` (unbiased); if `norm_topk_prob`,
       divided by their sum + 1e-20; then multiplied by
       `routed_scaling_factor`.

    Gradients flow to `logits` through the weights; the indices and the bias
    get none.

    ```mlir
    %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum",
                   n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64,
                   norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
        : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_FloatTensor:$bias,
                       StrAttr:$scoring, StrAttr:$group_score,
                       I64Attr:$n_group, I64Attr:$topk_group, I64Attr:$top_k,
                       BoolAttr:$norm_topk_prob, F64Attr:$routed_scaling_factor);
  let results = (outs Kiln_IntTensor:$indices, Kiln_FloatTensor:$weights);
  let assemblyFormat = "$logits `,` $bias attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_ExpertCapacityOp : Kiln_Op<"expert_capacity", [Pure]> {
  let summary = "Drops routed pairs over an expert's capacity (GShard-style, by position)";
  let description = [{
    `indices` is [tokens, top_k] from `kiln.router`. The tokens are split
    into groups of `group_tokens` consecutive tokens; in each group, expert
    e takes at most `capacity` pairs: the first ones in token-major order
    `t * top_k + j` (Megatron's `drop_policy = "position"`). The result is
    `indices` with every pair over capacity replaced by -1, which
    `kiln.dispatch` sorts after all experts and `kiln.expert_load` does not
    count. The routing weights are not renormalised over the kept pairs (as
    in GShard and Megatron): a dropped pair's expert output is zero, so its
    token keeps the residual path and the shared experts.

    Kiln's frontend makes each sequence a group, with capacity
    ceil(expert_capacity x seq_len x top_k / experts): which pairs drop then
    depends only on each sequence's routing, never on how the batch is split
    over data-parallel ranks, micro-batches or expert-parallel groups, so
    every layout trains the same numbers. Integer-valued: no gradient.

    ```mlir
    %kept = kiln.expert_capacity %idx {num_experts = 8 : i64, group_tokens = 64 : i64,
                                       capacity = 20 : i64}
        : (tensor<128x2xi32>) -> tensor<128x2xi32>
    ```
  }];
  let arguments = (ins Kiln_IntTensor:$indices, I64Attr:$num_experts, I64Attr:$group_tokens,
                       I64Attr:$capacity);
  let results = (outs Kiln_IntTensor:$kept);
  let assemblyFormat = "$indices attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_DispatchOp : Kiln_Op<"dispatch", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Permutes routed token copies into one buffer sorted by expert";
  let description = [{
    `x` is [tokens, hidden] and `indices` is [tokens, top_k] (from
    `kiln.router`). The tokens*top_k (token, slot) pairs are stably sorted by
    expert (ties keep token-major order `t * top_k + j`):

    ```
    rows[r]    = x[source[r] / top_k]           rows:    [tokens*top_k, hidden]
    offsets[e] = number of pairs routed to experts < e   offsets: [num_experts + 1]
    source[r]  = t * top_k + j of the r-th pair          source:  [tokens*top_k]
    ```

    Every index must be in [0, num_experts) or be -1: a pair that
    `kiln.expert_capacity` dropped. Dropped pairs sort after every expert
    (still token-major), so `offsets[num_experts]` is the number of pairs
    kept and the rows from there on are dropped copies, which the grouped
    GEMMs do not multiply (their results are zero, so combine adds nothing
    for them). Without -1 indices no token is dropped.

    ```mlir
    %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
        : (tensor<128x64xf32>, tensor<128x2xi32>)
        -> (tensor<256x64xf32>, tensor<9xi32>, tensor<256xi32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_IntTensor:$indices, I64Attr:$num_experts);
  let results = (outs Kiln_FloatTensor:$rows, Kiln_IntTensor:$offsets, Kiln_IntTensor:$source);
  let assemblyFormat = "$x `,` $indices attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_GroupedMatmulOp : Kiln_Op<"grouped_matmul", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Per-expert linear layers over expert-sorted rows";
  let description = [{
    `x` is [rows, K] sorted by expert, `weight` is the stacked expert
    weights [experts, N, K] (HF `mlp.experts.e.*_proj.weight` for every e),
    `offsets` is [experts + 1] from `kiln.dispatch`:

    `result[r, n] = sum_k x[r, k] * weight[e, n, k]` for offsets[e] <= r < offsets[e+1].

    `offsets` must be non-decreasing, start at 0 and end at most at `rows`:
    rows from `offsets[experts]` on are not multiplied and their results are
    zero (expert parallelism's receive buffers are sized by a bound, and the
    GEMMs touch only the rows that arrived).

    ```mlir
    %h = kiln.grouped_matmul %rows, %w_gate, %offsets
        : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x32xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_FloatTensor:$weight, Kiln_IntTensor:$offsets);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x `,` $weight `,` $offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_CombineOp : Kiln_Op<"combine", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Weighted sum of expert outputs back into token order";
  let description = [{
    The inverse of `kiln.dispatch`: `rows` is [tokens*top_k, hidden] in
    expert order, `weights` is [tokens, top_k] (from `kiln.router`) and
    `source` is dispatch's permutation.

    `result[t, h] = sum over r with source[r] / top_k == t of
                    weights[t, source[r] % top_k] * rows[r, h]`

    ```mlir
    %y = kiln.combine %rows, %w, %source
        : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>) -> tensor<128x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$rows, Kiln_FloatTensor:$weights, Kiln_IntTensor:$source);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$rows `,` $weights `,` $source attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_ExpertCountsOp : Kiln_Op<"expert_counts", [Pure]> {
  let summary = "Rows a dispatch sends to each expert and to each expert-parallel rank";
  let description = [{
    `offsets` [experts + 1] is `kiln.dispatch`'s. With the experts split
    evenly over `groups` ranks (L = experts / groups; rank p holds experts
    [p*L, (p+1)*L), so its rows are contiguous in dispatch order):

    ```
    per_expert[p, l] = offsets[p*L + l + 1] - offsets[p*L + l]    per_expert: [groups, L]
    per_rank[p]      = offsets[(p+1)*L] - offsets[p*L]             per_rank:   [groups]
    ```

    `kiln-expert-parallel` sends `per_rank` as the row counts of the
    dispatch's `kiln.all_to_all` and `per_expert` ahead of it, so that each
    rank can order what it receives by local expert. Counts have no
    gradient.

    ```mlir
    %per_expert, %per_rank = kiln.expert_counts %offsets {groups = 2 : i64}
        : (tensor<9xi32>) -> (tensor<2x4xi32>, tensor<2xi32>)
    ```
  }];
  let arguments = (ins Kiln_IntTensor:$offsets, I64Attr:$groups);
  let results = (outs Kiln_IntTensor:$per_expert, Kiln_IntTensor:$per_rank);
  let assemblyFormat = "$offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_SegmentTransposeOp : Kiln_Op<"segment_transpose", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Reorders rows held as (outer, inner) segments into (inner, outer) order";
  let description = [{
    `counts` is [G, L]. `x` [capacity, ...] holds G outer segments back to
    back from row 0, outer segment g made of L inner segments of
    counts[g, l] rows. The result holds the same rows with the segments in
    (l, g) order: for l = 0..L-1, segments (0, l), (1, l), ..., (G-1, l).
    `offsets` [L + 1] says where each l starts in the result. Rows after the
    sum of `counts` are not read, and are zero in the result.

    With `inverse`, `x` is in (l, g) order and the result in (g, l) order
    (offsets [G + 1]): the op undoes itself, which is its gradient rule.

    Expert parallelism receives rows grouped by source rank g, each source's
    sorted by local expert l; the grouped GEMMs want them expert-major.

    ```mlir
    %sorted, %offsets = kiln.segment_transpose %received, %per_expert
        : (tensor<512x64xf32>, tensor<2x4xi32>) -> (tensor<512x64xf32>, tensor<5xi32>)
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, Kiln_IntTensor:$counts,
                       DefaultValuedAttr<BoolAttr, "false">:$inverse);
  let results = (outs AnyStaticShapeTensor:$result, Kiln_IntTensor:$offsets);
  let assemblyFormat = "$x `,` $counts attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_MOE_OPS_TD
