//===- KilnGradOps.td - backward ops produced by kiln-autodiff ------------===//
//
// Each op here is the backward of a forward kiln op, written so that its
// kernel can be derived from the description alone. A matmul's backward stays
// split into its input gradient (dgrad) and weight gradient (wgrad): pipeline
// schedules such as zero-bubble and DualPipe move wgrad on its own.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_GRAD_OPS_TD
#define KILN_GRAD_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_LinearDgradOp : Kiln_Op<"linear_dgrad", [Pure]> {
  let summary = "Input gradient of kiln.linear: dy @ weight";
  let description = [{
    `dx[i..., k] = sum_n dy[i..., n] * weight[n, k]` for `y = linear(x, weight)`.

    ```mlir
    %dx = kiln.linear_dgrad %dy, %w : (tensor<4x32x128xf32>, tensor<128x64xf32>) -> tensor<4x32x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$weight);
  let results = (outs Kiln_FloatTensor:$dx);
  let assemblyFormat = "$dy `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_LinearWgradOp : Kiln_Op<"linear_wgrad", [Pure]> {
  let summary = "Weight gradient of kiln.linear: dy^T @ x over all rows";
  let description = [{
    `dweight[n, k] = sum_i dy[i, n] * x[i, k]`, rows `i` ranging over every
    leading index of `dy` and `x` (which must agree).

    ```mlir
    %dw = kiln.linear_wgrad %dy, %x : (tensor<4x32x128xf32>, tensor<4x32x64xf32>) -> tensor<128x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$x);
  let results = (outs Kiln_FloatTensor:$dweight);
  let assemblyFormat = "$dy `,` $x attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_MatmulGradOp : Kiln_Op<"matmul_grad", [Pure]> {
  let summary = "Gradients of kiln.matmul with respect to both operands";
  let description = [{
    For `c = matmul(lhs, rhs)` with the same `transpose_lhs`/`transpose_rhs`,
    returns `dlhs` (shaped like lhs) and `drhs` (shaped like rhs):
    `dlhs' = dc @ rhs'^T`, `drhs' = lhs'^T @ dc` in the untransposed frame,
    transposed back where the operand was transposed.

    ```mlir
    %da, %db = kiln.matmul_grad %a, %b, %dc {transpose_rhs = true}
        : (tensor<8x16x32xf32>, tensor<8x24x32xf32>, tensor<8x16x24xf32>)
        -> (tensor<8x16x32xf32>, tensor<8x24x32xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$lhs, Kiln_FloatTensor:$rhs, Kiln_FloatTensor:$dc,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Kiln_FloatTensor:$dlhs, Kiln_FloatTensor:$drhs);
  let assemblyFormat = "$lhs `,` $rhs `,` $dc attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_EmbeddingGradOp : Kiln_Op<"embedding_grad", [Pure]> {
  let summary = "Gradient of kiln.embedding: scatter-add of rows into the table";
  let description = [{
    `dtable[v, h] = sum over positions i with ids[i] == v of dy[i, h]`; the
    result has the table's shape [vocab, hidden]. As for `kiln.embedding`,
    every id must lie in [0, vocab): the evaluator rejects others.

    ```mlir
    %dt = kiln.embedding_grad %dy, %ids : (tensor<4x32x64xf32>, tensor<4x32xi32>) -> tensor<256x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_IntTensor:$ids);
  let results = (outs Kiln_FloatTensor:$dtable);
  let assemblyFormat = "$dy `,` $ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_RMSNormGradOp : Kiln_Op<"rms_norm_grad", [Pure]> {
  let summary = "Gradients of kiln.rms_norm with respect to x and gamma";
  let description = [{
    With `r = 1 / sqrt(mean_h(x^2) + epsilon)` per row and `n = x * r`:

    ```
    dgamma[h] = sum over rows of dy[., h] * n[., h]
    dx[., h]  = r * (g[., h] - n[., h] * mean_h(g[., :] * n[., :])),  g = dy * gamma
    ```

    ```mlir
    %dx, %dg = kiln.rms_norm_grad %dy, %x, %gamma {epsilon = 1.0e-06 : f64}
        : (tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<64xf32>) -> (tensor<4x32x64xf32>, tensor<64xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$x, Kiln_FloatTensor:$gamma,
                       F64Attr:$epsilon);
  let results = (outs Kiln_FloatTensor:$dx, Kiln_FloatTensor:$dgamma);
  let assemblyFormat = "$dy `,` $x `,` $gamma attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_SiluGradOp : Kiln_Op<"silu_grad", [Pure, SameOperandsAndResultType]> {
  let summary = "Gradient of kiln.silu";
  let description = [{
    `dx = dy * s * (1 + x * (1 - s))` with `s = sigmoid(x)`.

    ```mlir
    %dx = kiln.silu_grad %dy, %x : tensor<4x128xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$x);
  let results = (outs Kiln_FloatTensor:$dx);
  let assemblyFormat = "$dy `,` $x attr-dict `:` type($dx)";
}

def Kiln_SwigluGradOp : Kiln_Op<"swiglu_grad", [Pure]> {
  let summary = "Gradients of kiln.swiglu with respect to gate and up";
  let description = [{
    `dgate = dy * up * s * (1 + gate * (1 - s))`, `dup = dy * gate * s`, with
    `s = sigmoid(gate)`. All operands and results have one type.

    ```mlir
    %dg, %du = kiln.swiglu_grad %dy, %gate, %up
        : (tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x128xf32>) -> (tensor<4x128xf32>, tensor<4x128xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$gate, Kiln_FloatTensor:$up);
  let results = (outs Kiln_FloatTensor:$dgate, Kiln_FloatTensor:$dup);
  let assemblyFormat = "$dy `,` $gate `,` $up attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_UnbroadcastOp : Kiln_Op<"unbroadcast", [Pure]> {
  let summary = "Sums over the dimensions a kiln.broadcast repeated";
  let description = [{
    The gradient of `kiln.broadcast`: the result has the broadcast's operand
    shape; each result dimension of size 1 whose input dimension is larger is
    summed over.

    ```mlir
    %dk = kiln.unbroadcast %d : (tensor<4x32x16x8xf32>) -> tensor<4x32x1x8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_AttentionGradOp : Kiln_Op<"attention_grad", [Pure]> {
  let summary = "Gradients of kiln.attention with respect to q, k and v";
  let description = [{
    Recomputes the probabilities `p` of the forward (same `scale`, `causal`;
    p = 0 for j > i when causal) and, with `dout` the output gradient:

    ```
    dv[b,j,g,e] = sum over heads h of group g, i: p[b,h,i,j] dout[b,i,h,e]
    dp[b,h,i,j] = sum_e dout[b,i,h,e] v[b,j,g(h),e]
    ds[b,h,i,j] = p[b,h,i,j] * (dp[b,h,i,j] - sum_j' p[b,h,i,j'] dp[b,h,i,j'])
    dq[b,i,h,d] = scale * sum_j ds[b,h,i,j] k[b,j,g(h),d]
    dk[b,j,g,d] = scale * sum over heads h of group g, i: ds[b,h,i,j] q[b,i,h,d]
    ```

    ```mlir
    %dq, %dk, %dv = kiln.attention_grad %q, %k, %v, %do {scale = 0.25 : f64, causal = true}
        : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>)
        -> (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$q, Kiln_FloatTensor:$k, Kiln_FloatTensor:$v,
                       Kiln_FloatTensor:$dout, F64Attr:$scale,
                       DefaultValuedAttr<BoolAttr, "true">:$causal);
  let results = (outs Kiln_FloatTensor:$dq, Kiln_FloatTensor:$dk, Kiln_FloatTensor:$dv);
  let assemblyFormat = "$q `,` $k `,` $v `,` $dout attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_RouterGradOp : Kiln_Op<"router_grad", [Pure]> {
  let summary = "Gradient of kiln.router's weights with respect to the logits";
  let description = [{
    Routing indices are not differentiable; the weights are. For each token,
    with the selected experts `i_j` (from `indices`), unbiased scores `s`
    recomputed from `logits`, `c = routed_scaling_factor` and `dw` the
    gradient of the weights:

    ```
    norm_topk_prob: S = sum_j s[i_j] + 1e-20
                    ds[i_l] = c * (dw[l] / S - sum_j dw[j] s[i_j] / S^2)
    otherwise:      ds[i_l] = c * dw[l]
    (ds = 0 for experts not selected; an expert listed twice gets the sum)
    sigmoid: dlogits[e] = ds[e] * s[e] * (1 - s[e])
    softmax: dlogits[e] = s[e] * (ds[e] - sum_f ds[f] s[f])
    ```

    The bias receives no gradient: it only selects. Every index must be in
    [0, experts).

    ```mlir
    %dl = kiln.router_grad %logits, %idx, %dw {scoring = "sigmoid", norm_topk_prob = true,
                                               routed_scaling_factor = 2.5 : f64}
        : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$indices,
                       Kiln_FloatTensor:$dweights, StrAttr:$scoring,
                       BoolAttr:$norm_topk_prob, F64Attr:$routed_scaling_factor);
  let results = (outs Kiln_FloatTensor:$dlogits);
  let assemblyFormat = "$logits `,` $indices `,` $dweights attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_DispatchGradOp : Kiln_Op<"dispatch_grad", [Pure]> {
  let summary = "Gradient of kiln.dispatch's rows with respect to x";
  let description = [{
    `dx[t, h] = sum over rows r with source[r] / top_k == t of drows[r, h]`:
    each token's gradient is the sum over its routed copies. Every source
    entry must be in [0, tokens*top_k).

    ```mlir
    %dx = kiln.dispatch_grad %drows, %source {top_k = 2 : i64}
        : (tensor<256x64xf32>, tensor<256xi32>) -> tensor<128x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$drows, Kiln_IntTensor:$source, I64Attr:$top_k);
  let results = (outs Kiln_FloatTensor:$dx);
  let assemblyFormat = "$drows `,` $source attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_CombineGradOp : Kiln_Op<"combine_grad", [Pure]> {
  let summary = "Gradients of kiln.combine with respect to rows and weights";
  let description = [{
    With `top_k` the second dimension of `weights`, `t = source[r] / top_k`
    and `j = source[r] % top_k`:
    `drows[r, h] = weights[t, j] * dy[t, h]` and
    `dweights[t, j] = sum over rows r with source[r] == t * top_k + j of
                      sum_h rows[r, h] * dy[t, h]`
    (exactly one such row when `source` is a permutation, as `kiln.dispatch`
    makes it). Every source entry must be in [0, tokens*top_k).

    ```mlir
    %drows, %dw = kiln.combine_grad %rows, %w, %source, %dy
        : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>, tensor<128x64xf32>)
        -> (tensor<256x64xf32>, tensor<128x2xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$rows, Kiln_FloatTensor:$weights,
                       Kiln_IntTensor:$source, Kiln_FloatTensor:$dy);
  let results = (outs Kiln_FloatTensor:$drows, Kiln_FloatTensor:$dweights);
  let assemblyFormat = "$rows `,` $weights `,` $source `,` $dy attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_GroupedMatmulDgradOp : Kiln_Op<"grouped_matmul_dgrad", [Pure]> {
  let summary = "Input gradient of kiln.grouped_matmul";
  let description = [{
    `dx[r, k] = sum_n dy[r, n] * weight[e, n, k]` for offsets[e] <= r < offsets[e+1].
    `offsets` must be non-decreasing, start at 0 and end at `rows`, as for
    `kiln.grouped_matmul`.

    ```mlir
    %dx = kiln.grouped_matmul_dgrad %dy, %w, %offsets
        : (tensor<256x32xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$weight, Kiln_IntTensor:$offsets);
  let results = (outs Kiln_FloatTensor:$dx);
  let assemblyFormat = "$dy `,` $weight `,` $offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_GroupedMatmulWgradOp : Kiln_Op<"grouped_matmul_wgrad", [Pure]> {
  let summary = "Weight gradient of kiln.grouped_matmul, per expert";
  let description = [{
    `dweight[e, n, k] = sum over offsets[e] <= r < offsets[e+1] of dy[r, n] * x[r, k]`;
    an expert with no rows gets a zero gradient. The result is
    [experts, N, K] with experts = offsets size - 1. `offsets` must be
    non-decreasing, start at 0 and end at `rows`, as for `kiln.grouped_matmul`.

    ```mlir
    %dw = kiln.grouped_matmul_wgrad %dy, %x, %offsets
        : (tensor<256x32xf32>, tensor<256x64xf32>, tensor<9xi32>) -> tensor<8x32x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$dy, Kiln_FloatTensor:$x, Kiln_IntTensor:$offsets);
  let results = (outs Kiln_FloatTensor:$dweight);
  let assemblyFormat = "$dy `,` $x `,` $offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_CrossEntropyGradOp : Kiln_Op<"cross_entropy_grad", [Pure]> {
  let summary = "Gradient of kiln.cross_entropy with respect to the logits";
  let description = [{
    With `p = softmax(logits[i])`, `W = sum_i mask[i]` and the scalar loss
    gradient `dloss`:
    `dlogits[i, c] = dloss * mask[i] / W * (p[c] - (1 - eps) * [c == targets[i]] - eps / vocab)`
    (all zero when W = 0), where `W` is `count` when given (see
    `kiln.cross_entropy`). As in the forward, a masked position's target is
    never read (it may be out of range, e.g. -100); an unmasked one must be in
    [0, vocab).

    ```mlir
    %dl = kiln.cross_entropy_grad %logits, %targets, %mask, %dloss {label_smoothing = 0.0 : f64}
        : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>, tensor<f32>) -> tensor<4x32x256xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets,
                       Kiln_FloatTensor:$mask, Kiln_Scalar:$dloss, Optional<Kiln_Scalar>:$count,
                       DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing);
  let results = (outs Kiln_FloatTensor:$dlogits);
  let assemblyFormat = [{
    $logits `,` $targets `,` $mask `,` $dloss (`count` $count^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Kiln_GrpoLossGradOp : Kiln_Op<"grpo_loss_grad", [Pure]> {
  let summary = "Gradient of kiln.grpo_loss with respect to the logits";
  let description = [{
    With the names of `kiln.grpo_loss`, `w[i]` the weight of position i in
    the reduction (m / W, m / (max(sum_t m, 1) R) or m / (R max_tokens)) and
    `p = softmax(logits[i] / T)`:

    ```
    dsurr[i] = 0 if clamp(r, 1 - eps_lo, 1 + eps_hi) A < r A (the clipped term is the min), else r A
    dl/dlp   = -dsurr[i] + beta (1 - exp(ref[i] - lp[i]))
    dlogits[i, c] = dloss * w[i] * dl/dlp * ([c == targets[i]] - p[c]) / T
    ```

    (PyTorch's `torch.min` splits a tie's gradient between its operands and
    `clamp` passes it at the bounds, which add up to the rule above.)

    ```mlir
    %dl = kiln.grpo_loss_grad %logits, %targets, %mask, %adv, %old, %ref, %dloss
        {clip_low = 0.2 : f64, clip_high = 0.28 : f64, beta = 0.04 : f64}
        : (tensor<8x32x256xf32>, tensor<8x32xi32>, tensor<8x32xf32>, tensor<8xf32>,
           tensor<8x32xf32>, tensor<8x32xf32>, tensor<f32>) -> tensor<8x32x256xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets, Kiln_FloatTensor:$mask,
                       Kiln_FloatTensor:$advantages, Kiln_FloatTensor:$old_logprobs,
                       Kiln_FloatTensor:$ref_logprobs, Kiln_Scalar:$dloss,
                       Optional<Kiln_Scalar>:$count,
                       DefaultValuedAttr<F64Attr, "1.0">:$temperature,
                       DefaultValuedAttr<F64Attr, "0.2">:$clip_low,
                       DefaultValuedAttr<F64Attr, "0.2">:$clip_high,
                       DefaultValuedAttr<F64Attr, "0.0">:$beta,
                       DefaultValuedAttr<StrAttr, "\"token-mean\"">:$aggregation,
                       DefaultValuedAttr<I64Attr, "0">:$max_tokens);
  let results = (outs Kiln_FloatTensor:$dlogits);
  let assemblyFormat = [{
    $logits `,` $targets `,` $mask `,` $advantages `,` $old_logprobs `,` $ref_logprobs `,` $dloss
    (`count` $count^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // KILN_GRAD_OPS_TD
