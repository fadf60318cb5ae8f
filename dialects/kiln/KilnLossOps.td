//===- KilnLossOps.td - training losses -----------------------------------===//

#ifndef KILN_LOSS_OPS_TD
#define KILN_LOSS_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_CrossEntropyOp : Kiln_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Masked mean softmax cross-entropy with label smoothing";
  let description = [{
    `logits` is [i..., vocab], `targets` is [i...] (class ids in [0, vocab))
    and `mask` is [i...] (1 = counted, 0 = ignored; SFT masks prompt tokens,
    next-token losses mask the last position). With `p = softmax(logits[i])`
    and smoothing `eps` (`label_smoothing`, in [0, 1)):

    ```
    ce[i]  = (1 - eps) * -log p[targets[i]] + eps * mean_c(-log p[c])
    result = sum_i mask[i] * ce[i] / sum_i mask[i]     (0 when sum_i mask[i] = 0)
    ```

    This is `torch.nn.functional.cross_entropy(..., label_smoothing=eps)`
    over the unmasked positions. The result is a 0-d tensor.

    With the optional `count` (a 0-d float), the sum is divided by `count`
    instead of `sum_i mask[i]` (0 when count = 0): kiln-data-parallel passes
    the unmasked tokens of the whole global batch, so each rank's result is
    its share of the global mean and the shares add up to it.

    ```mlir
    %loss = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.0 : f64}
        : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets,
                       Kiln_FloatTensor:$mask, Optional<Kiln_Scalar>:$count,
                       DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing);
  let results = (outs Kiln_Scalar:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $mask (`count` $count^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Kiln_TokenLogprobsOp : Kiln_Op<"token_logprobs", [Pure]> {
  let summary = "Log-probability of each target token under softmax(logits / temperature)";
  let description = [{
    `logits` is [i..., vocab] and `targets` [i...] (ids in [0, vocab)):

    ```
    result[i] = z[targets[i]] - log sum_c exp(z[c]),   z = logits[i] / temperature
    ```

    What GRPO needs of a policy without training it: the old policy's and the
    reference model's log-probabilities of sampled tokens, from the same
    forward the training step runs (so that at the first update the policy
    ratio is exactly 1). Not differentiable.

    ```mlir
    %lp = kiln.token_logprobs %logits, %targets {temperature = 1.0 : f64}
        : (tensor<4x32x256xf32>, tensor<4x32xi32>) -> tensor<4x32xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets,
                       DefaultValuedAttr<F64Attr, "1.0">:$temperature);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$logits `,` $targets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_GrpoLossOp : Kiln_Op<"grpo_loss", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "GRPO's clipped policy-gradient loss with a k3 KL penalty (DeepSeekMath eq. 3)";
  let description = [{
    `logits` is [rows, seq, vocab]; `targets`, `mask` (1 = a completion token
    the loss counts), `old_logprobs` and `ref_logprobs` are [rows, seq];
    `advantages` is [rows] (one per sampled completion). Per position i of
    row b, with `T = temperature`, `eps_lo = clip_low`, `eps_hi = clip_high`:

    ```
    lp[i]   = log softmax(logits[i] / T)[targets[i]]
    r[i]    = exp(lp[i] - old_logprobs[i])                      (the policy ratio)
    surr[i] = min(r A_b, clamp(r, 1 - eps_lo, 1 + eps_hi) A_b)  (DAPO's clip-higher when eps_hi > eps_lo)
    kl[i]   = exp(ref[i] - lp[i]) - (ref[i] - lp[i]) - 1        (Schulman's k3, >= 0)
    l[i]    = -(surr[i] - beta kl[i])
    ```

    reduced over the positions with `mask = 1` by `aggregation`:

    ```
    "token-mean":              sum_i m l / W,            W = sum_i m
    "seq-mean-token-mean":     sum_b (sum_t m l / max(sum_t m, 1)) / R,  R = rows   (DeepSeekMath eq. 3)
    "seq-mean-token-sum-norm": sum_i m l / (R * max_tokens)                          (Dr. GRPO)
    ```

    With the optional `count` (0-d), it replaces the outer denominator (W,
    or R): kiln-data-parallel passes the global batch's, so the ranks' losses
    add up to the global one. A masked position is never read beyond its
    target id, which must still lie in [0, vocab). The gradient follows
    PyTorch's conventions for `min` and `clamp` (`kiln.grpo_loss_grad`).

    ```mlir
    %loss = kiln.grpo_loss %logits, %targets, %mask, %adv, %old, %ref
        {temperature = 1.0 : f64, clip_low = 0.2 : f64, clip_high = 0.28 : f64, beta = 0.04 : f64,
         aggregation = "token-mean", max_tokens = 0 : i64}
        : (tensor<8x32x256xf32>, tensor<8x32xi32>, tensor<8x32xf32>, tensor<8xf32>,
           tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets, Kiln_FloatTensor:$mask,
                       Kiln_FloatTensor:$advantages, Kiln_FloatTensor:$old_logprobs,
                       Kiln_FloatTensor:$ref_logprobs, Optional<Kiln_Scalar>:$count,
                       DefaultValuedAttr<F64Attr, "1.0">:$temperature,
                       DefaultValuedAttr<F64Attr, "0.2">:$clip_low,
                       DefaultValuedAttr<F64Attr, "0.2">:$clip_high,
                       DefaultValuedAttr<F64Attr, "0.0">:$beta,
                       DefaultValuedAttr<StrAttr, "\"token-mean\"">:$aggregation,
                       DefaultValuedAttr<I64Attr, "0">:$max_tokens);
  let results = (outs Kiln_Scalar:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $mask `,` $advantages `,` $old_logprobs `,` $ref_logprobs
    (`count` $count^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // KILN_LOSS_OPS_TD
