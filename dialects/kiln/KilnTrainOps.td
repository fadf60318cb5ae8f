//===- KilnTrainOps.td - losses, optimizer and balancing of a train step --===//

#ifndef KILN_TRAIN_OPS_TD
#define KILN_TRAIN_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_ExpertLoadOp : Kiln_Op<"expert_load", [Pure]> {
  let summary = "How many routed (token, slot) pairs each expert received";
  let description = [{
    `load[e] = number of entries of indices equal to e`, as floats
    ([num_experts]). The aux-loss-free balancing update reads it (from the
    router's indices: the load routing asked for). Every index must be in
    [0, num_experts) or be -1, a pair `kiln.expert_capacity` dropped, which
    counts for no expert: the load of its result is what the experts kept.

    ```mlir
    %load = kiln.expert_load %idx {num_experts = 8 : i64} : (tensor<128x2xi32>) -> tensor<8xf32>
    ```
  }];
  let arguments = (ins Kiln_IntTensor:$indices, I64Attr:$num_experts);
  let results = (outs Kiln_FloatTensor:$load);
  let assemblyFormat = "$indices attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_BalanceLossOp : Kiln_Op<"balance_loss", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "DeepSeek-V3's sequence-wise balance loss (without alpha)";
  let description = [{
    `logits` is [tokens, experts] with tokens = num_sequences * T, grouped by
    sequence; `indices` is [tokens, top_k] (the router's selection). For each
    sequence, with `s` the unbiased scores (sigmoid or softmax of logits),
    `s' = s / sum_experts(s)`, N = experts, K = top_k:

    ```
    f[i] = N / (K T) * #{t : i selected for t}     (a constant: no gradient)
    P[i] = 1/T sum_t s'[i, t]
    loss = mean over sequences of sum_i f[i] P[i]
    ```

    `t` ranges over the sequence's T tokens; every index must be in
    [0, experts) and K >= 1.

    The training step multiplies it by `aux_loss_alpha`. With
    `total_sequences` (kiln-data-parallel: the sequences of the whole global
    batch), the sum over this tensor's sequences is divided by it instead of
    by `num_sequences`, so each rank's result is its share of the global
    mean.

    ```mlir
    %l = kiln.balance_loss %logits, %idx {scoring = "sigmoid", num_sequences = 4 : i64}
        : (tensor<128x8xf32>, tensor<128x2xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$indices,
                       StrAttr:$scoring, I64Attr:$num_sequences,
                       OptionalAttr<I64Attr>:$total_sequences);
  let results = (outs Kiln_Scalar:$loss);
  let assemblyFormat = "$logits `,` $indices attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_BalanceLossGradOp : Kiln_Op<"balance_loss_grad", [Pure]> {
  let summary = "Gradient of kiln.balance_loss with respect to the logits";
  let description = [{
    With the forward's `f`, `s`, `Z = sum_j s[j, t]`, `dloss` the scalar
    gradient and `q = dloss / (S * T)`, S = `total_sequences` when given,
    else `num_sequences`:
    `ds[i, t] = q * (f[i] - sum_j f[j] s[j, t] / Z) / Z`, then through the
    scoring function as in `kiln.router_grad`.

    ```mlir
    %dl = kiln.balance_loss_grad %logits, %idx, %dloss {scoring = "sigmoid", num_sequences = 4 : i64}
        : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<f32>) -> tensor<128x8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$indices,
                       Kiln_Scalar:$dloss, StrAttr:$scoring, I64Attr:$num_sequences,
                       OptionalAttr<I64Attr>:$total_sequences);
  let results = (outs Kiln_FloatTensor:$dlogits);
  let assemblyFormat = "$logits `,` $indices `,` $dloss attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_LrScheduleOp : Kiln_Op<"lr_schedule", [Pure]> {
  let summary = "Learning rate at a step: linear warmup, then cosine decay to a floor";
  let description = [{
    For step `t` (1-based: t >= 1, the evaluator rejects smaller steps),
    `W = warmup_steps`, `N = total_steps`:

    ```
    t <= W:  lr * t / W
    else:    min_lr + (lr - min_lr) / 2 * (1 + cos(pi * clamp((t - W) / max(1, N - W), 0, 1)))
    ```

    ```mlir
    %lr = kiln.lr_schedule %step {lr = 3.0e-03 : f64, min_lr = 3.0e-04 : f64,
                                  warmup_steps = 20 : i64, total_steps = 300 : i64}
        : (tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins 0DTensorOf<[I64]>:$step, F64Attr:$lr, F64Attr:$min_lr,
                       I64Attr:$warmup_steps, I64Attr:$total_steps);
  let results = (outs Kiln_Scalar:$result);
  let assemblyFormat = "$step attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_GlobalNormOp : Kiln_Op<"global_norm", [Pure]> {
  let summary = "L2 norm of all given tensors together";
  let description = [{
    `sqrt(sum over tensors, elements of x^2)`: the gradient norm that
    clipping and the training log report.

    ```mlir
    %n = kiln.global_norm %g0, %g1 : (tensor<64x64xf32>, tensor<64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Kiln_FloatTensor>:$tensors);
  let results = (outs Kiln_Scalar:$norm);
  let assemblyFormat = "$tensors attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_ClipScaleOp : Kiln_Op<"clip_scale", [Pure]> {
  let summary = "Gradient scale of global-norm clipping";
  let description = [{
    `min(1, max_norm / (norm + 1e-6))` (torch.nn.utils.clip_grad_norm_'s
    rule); `max_norm = 0` disables clipping (scale 1).

    ```mlir
    %s = kiln.clip_scale %norm {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_Scalar:$norm, F64Attr:$max_norm);
  let results = (outs Kiln_Scalar:$scale);
  let assemblyFormat = "$norm attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_AdamWOp : Kiln_Op<"adamw", [Pure, AttrSizedOperandSegments]> {
  let summary = "One AdamW update of one parameter (decoupled weight decay)";
  let description = [{
    With `g = grad * grad_scale` (clipping), step `t` (1-based: t >= 1, the
    evaluator rejects smaller steps), learning rate `lr`, all in f32 state
    (torch.optim.AdamW):

    ```
    p' = p * (1 - lr * weight_decay)
    m' = beta1 * m + (1 - beta1) * g
    v' = beta2 * v + (1 - beta2) * g^2
    p' = p' - lr * (m' / (1 - beta1^t)) / (sqrt(v' / (1 - beta2^t)) + eps)
    ```

    kiln-autodiff sets `weight_decay = 0` for 1-D parameters (RMSNorm
    weights), as Megatron-LM and TorchTitan do; every matrix, the embedding
    and the router gate are decayed.

    The parameter and the gradient are f32. The moments are f32, or bf16
    (kiln-autodiff `moment-type=bf16`, DeepSeek-V3's storage): then the
    update computes in f32 from the widened moments, `p'` uses the f32
    `m'` and `v'`, and the new moments are stored rounded to nearest even.

    With the optional `skip` (an i1 from `kiln.grad_scaler`), a true value
    leaves the parameter and both moments exactly as they were: the step
    whose scaled gradients overflowed is skipped, as GradScaler.step skips
    optimizer.step.

    With the optional `mask` (kiln-sparsity-2-4: 0 and 1 of the parameter's
    shape, f32), the update starts from `p * mask`, `grad * mask`, `m * mask`
    and `v * mask`: a pruned entry of the parameter and its moments becomes
    zero and, its gradient being zero too, AdamW leaves it exactly zero.
    Multiplying by 1 is exact, so kept entries update as without a mask.

    ```mlir
    %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %step, %scale
        {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
        : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
           tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$param, Kiln_FloatTensor:$grad,
                       Kiln_FloatTensor:$m, Kiln_FloatTensor:$v, Kiln_Scalar:$lr,
                       0DTensorOf<[I64]>:$step, Kiln_Scalar:$grad_scale,
                       Optional<0DTensorOf<[I1]>>:$skip,
                       Optional<StaticShapeTensorOf<[F32]>>:$mask,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs Kiln_FloatTensor:$new_param, Kiln_FloatTensor:$new_m,
                      Kiln_FloatTensor:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step `,` $grad_scale (`skip` $skip^)? (`mask` $mask^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Kiln_GradScalerOp : Kiln_Op<"grad_scaler", [Pure]> {
  let summary = "Dynamic loss scaling: overflow check and the next scale (torch GradScaler)";
  let description = [{
    The step seeds its backward with `scale` instead of 1, so every gradient
    is `scale` times too large; this op reads the global norm of those scaled
    gradients and decides the step, with torch.amp.GradScaler's semantics:

    ```
    overflow     = norm is inf or NaN    (some gradient is: the squares of
                                          finite f32 values cannot overflow
                                          the f64 sum global_norm keeps)
    skip         = overflow
    inv_scale    = 1 / scale             (exact: scales are powers of two
                                          with the default factors)
    if overflow:   new_scale = scale * backoff_factor, new_tracker = 0,
                   new_updates = updates
    else:          new_tracker = tracker + 1, new_updates = updates + 1,
                   if new_tracker == growth_interval:
                     new_scale = scale * growth_factor, new_tracker = 0
                   else new_scale = scale
    ```

    `updates` counts the AdamW updates applied so far (steps minus skipped
    steps): AdamW's bias correction counts these, as torch.optim.AdamW's
    per-parameter `step` does when GradScaler skips optimizer.step, while
    the learning rate schedule keeps counting every step. Unscaling folds
    into the norm and the clipping coefficient (`norm * inv_scale`,
    `clip_scale(...) * inv_scale`): with a power-of-two scale these are
    exactly GradScaler.unscale_'s products, without a pass over every
    gradient. kiln-autodiff's `loss-scale=dynamic` builds this; the scale,
    the tracker and the update count are step state (arguments updated in
    place) that the driver checkpoints.

    ```mlir
    %skip, %inv, %s2, %t2, %u2 = kiln.grad_scaler %norm, %s, %t, %u
        {growth_factor = 2.0 : f64, backoff_factor = 5.0e-01 : f64, growth_interval = 2000 : i64}
        : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
        -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
    ```
  }];
  let arguments = (ins Kiln_Scalar:$norm, 0DTensorOf<[F32]>:$scale,
                       0DTensorOf<[I64]>:$growth_tracker, 0DTensorOf<[I64]>:$updates,
                       F64Attr:$growth_factor, F64Attr:$backoff_factor,
                       I64Attr:$growth_interval);
  let results = (outs 0DTensorOf<[I1]>:$skip, 0DTensorOf<[F32]>:$inv_scale,
                      0DTensorOf<[F32]>:$new_scale, 0DTensorOf<[I64]>:$new_growth_tracker,
                      0DTensorOf<[I64]>:$new_updates);
  let assemblyFormat = [{
    $norm `,` $scale `,` $growth_tracker `,` $updates attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Kiln_BiasUpdateOp : Kiln_Op<"bias_update", [Pure]> {
  let summary = "Aux-loss-free balancing: move each expert's bias toward balance";
  let description = [{
    `bias'[e] = bias[e] + speed * sign(mean(load) - load[e])` (sign(0) = 0),
    after each step, from the step's `kiln.expert_load`: under-loaded experts
    become more likely to be selected. The bias never gets a gradient. With
    the optional `skip` true (a step `kiln.grad_scaler` skips), the bias is
    left as it was, so a skipped step changes no parameter.

    ```mlir
    %b2 = kiln.bias_update %b, %load {speed = 1.0e-03 : f64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$bias, Kiln_FloatTensor:$load,
                       Optional<0DTensorOf<[I1]>>:$skip, F64Attr:$speed);
  let results = (outs Kiln_FloatTensor:$new_bias);
  let assemblyFormat = [{
    $bias `,` $load (`skip` $skip^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Kiln_TopkCompressOp : Kiln_Op<"topk_compress", [Pure]> {
  let summary = "Top-k gradient compression with error feedback, into one message";
  let description = [{
    `grad` and `residual` have one shape of n f32 elements. `acc = grad +
    residual`; the `k` elements of largest |acc| (NaN first, ties to the
    lower index) go into `message`, in increasing index order, as their
    index and value: f32 values with `quantize = "none"`, or int8 values
    with one f32 scale per tensor (max |acc| of the kept / 127, values
    rounded to nearest even and clamped to [-127, 127]) with `quantize =
    "int8"`. The message is bytes, packed little-endian (runtime/kernels/
    GradCompressMath.h): [scale f32][k x i32 index][k x i8 value] (4 + 5k
    bytes) or [k x i32 index][k x f32 value] (8k bytes). `new_residual` is
    acc minus what the message carries (error feedback: what is not sent
    now is sent later); with error feedback off its producer passes zeros
    and ignores it.

    Defined in f32 (the message holds f32 bits): the reference evaluator
    runs the kernel's own code. No gradient: it compresses gradients.

    ```mlir
    %msg, %res2 = kiln.topk_compress %g, %res {k = 13 : i64, quantize = "int8"}
        : (tensor<16x16xf32>, tensor<16x16xf32>) -> (tensor<69xi8>, tensor<16x16xf32>)
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$grad, Kiln_FloatTensor:$residual, I64Attr:$k,
                       StrAttr:$quantize);
  let results = (outs StaticShapeTensorOf<[I8]>:$message, Kiln_FloatTensor:$new_residual);
  let assemblyFormat = "$grad `,` $residual attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_TopkDecompressOp : Kiln_Op<"topk_decompress", [Pure]> {
  let summary = "Sums the gathered top-k messages of every rank into a dense tensor";
  let description = [{
    `messages` is the `kiln.all_gather` of one `kiln.topk_compress` message
    per rank ([ranks x message bytes], rank order). The result (the
    compressed gradient's shape) is the sum over ranks, in rank order, of
    each message's values scattered to their indices: zero where no rank
    sent a value. An index outside the tensor is a runtime error.

    ```mlir
    %sum = kiln.topk_decompress %gathered {k = 13 : i64, quantize = "int8"}
        : (tensor<138xi8>) -> tensor<16x16xf32>
    ```
  }];
  let arguments = (ins StaticShapeTensorOf<[I8]>:$messages, I64Attr:$k, StrAttr:$quantize);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$messages attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_SparsityMask24Op : Kiln_Op<"sparsity_mask_2_4", [Pure]> {
  let summary = "The 2:4 sparsity mask of a weight at this step (kiln-sparsity-2-4)";
  let description = [{
    `weight` and `mask` are f32 of the same shape, the last dimension (the
    input dimension of a `[out, in]` or `[experts, out, in]` weight)
    divisible by 4; `step` is the 1-based training step. The result is the
    mask this step trains with:

    ```
    step <  start_step                                        all ones (dense)
    step == start_step, or mask_every > 0 and
      (step - start_step) % mask_every == 0                   2:4 of weight
    otherwise                                                 mask
    ```

    The 2:4 mask keeps, in every group of 4 consecutive values along the
    last dimension, the 2 of largest magnitude as 1.0 and the others as 0.0:
    NaN counts as the largest magnitude and ties go to the lower index
    (runtime/kernels/SparsityMath.h; the values are compared as f32). With
    `mask_every = 0` the mask is chosen once, at `start_step`, and frozen.
    It has no gradient.

    ```mlir
    %m2 = kiln.sparsity_mask_2_4 %w, %m, %step {start_step = 100 : i64, mask_every = 0 : i64}
        : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<i64>) -> tensor<64x64xf32>
    ```
  }];
  let arguments = (ins StaticShapeTensorOf<[F32]>:$weight, StaticShapeTensorOf<[F32]>:$mask,
                       0DTensorOf<[I64]>:$step, I64Attr:$start_step, I64Attr:$mask_every);
  let results = (outs StaticShapeTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $weight `,` $mask `,` $step attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // KILN_TRAIN_OPS_TD
