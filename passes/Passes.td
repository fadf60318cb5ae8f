//===- Passes.td - Kiln passes --------------------------------------------===//

#ifndef KILN_PASSES_TD
#define KILN_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnAutodiff : Pass<"kiln-autodiff", "mlir::ModuleOp"> {
  let summary = "Turns @forward into a training step (forward, loss, backward, AdamW)";
  let description = [{
    Reverse-mode differentiation of the entry function (default `@forward`).
    Gradient rules come from each op's DifferentiableOpInterface; an op with
    float operands and no rule fails the pass with an error naming it.

    Block functions called from the entry are differentiated once each, not
    once per call: `@F` gets `@F_fwd` (F's results, then its aux outputs, then
    the values its backward needs: the *saved values*, as explicit results)
    and `@F_bwd(F's arguments..., result gradients..., saved values...)`
    returning the gradients of F's float arguments. Activation checkpointing
    and pipeline schedules work on these. `@forward` and the block functions
    are left as they are.

    For every `kiln.router`, the step records the expert load
    (`kiln.expert_load`) and, with `aux-loss-alpha > 0`, adds the
    sequence-wise balance loss. Gradients flow through the routing weights,
    never the indices; the balancing bias (`kiln.trainable = false`) gets none
    and is updated by `kiln.bias_update` after the step. For every
    `kiln.expert_capacity` it also records what the experts kept (the
    `kiln.expert_load` of its result, role `expert_kept`), so the driver can
    report the rows dropped over capacity.

    `mode=train` builds

    ```
    func.func @train_step(params..., exp_avg..., exp_avg_sq..., %step, inputs...)
        -> (new params..., new exp_avg..., new exp_avg_sq..., loss, main_loss,
            grad_norm, lr, expert loads..., kept expert loads...)
    ```

    with total loss = loss + mtp-loss-weight / D * sum_k mtp_loss_k
    + aux-loss-alpha * balance losses, global-norm clipping, the learning
    rate schedule and AdamW (no weight decay on 1-D parameters).
    `moment-type=bf16` stores both AdamW moments in bf16 (DeepSeek-V3's
    choice, half their memory): `kiln.adamw` computes each update in f32 from
    the widened moments and stores the new moments rounded to nearest even;
    the parameters and gradients stay f32.

    `loss-scale=dynamic` (fp16, torch.amp.GradScaler's semantics and
    defaults) adds three state arguments after `%step` — `%loss_scale`
    (f32, `kiln.state = "loss_scale"`, `kiln.initial` = loss-scale-init),
    `%growth_tracker` and `%optimizer_updates` (i64) — and their updated
    values as results after `lr`. The backward is seeded with the scale
    instead of 1; `kiln.grad_scaler` reads the scaled gradients' norm and
    gives the skip flag (inf/NaN anywhere), the inverse scale, and the next
    state; the reported and clipped norm is the unscaled one, the clipping
    coefficient is multiplied by the inverse scale, and AdamW (bias
    correction counting applied updates) and the bias updates are skipped
    on overflow.
    `mode=gradient` builds `@<entry>_grad(args...) -> (loss, gradients of the
    parameters...)` for the `main` or `total` loss, which `kilnc --save-grads`
    and the gradient checks use; on a function without kiln.param arguments it
    differentiates its single scalar result with respect to every float
    argument.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"forward\"", "Function to differentiate">,
    Option<"mode", "mode", "std::string", "\"train\"", "train | gradient">,
    Option<"lossKind", "loss", "std::string", "\"total\"",
           "Loss to differentiate in gradient mode: main | total">,
    Option<"mtpLossWeight", "mtp-loss-weight", "double", "0.3",
           "Weight of the MTP losses (divided by the MTP depth)">,
    Option<"auxLossAlpha", "aux-loss-alpha", "double", "0.0",
           "Weight of the sequence-wise balance loss (0 disables it)">,
    Option<"biasUpdateSpeed", "bias-update-speed", "double", "0.001",
           "Aux-loss-free balancing: bias step per training step">,
    Option<"lr", "lr", "double", "3e-4", "Peak learning rate">,
    Option<"minLr", "min-lr", "double", "0.0", "Floor of the cosine decay">,
    Option<"warmupSteps", "warmup-steps", "int64_t", "0", "Linear warmup steps">,
    Option<"totalSteps", "total-steps", "int64_t", "0", "Steps of the whole schedule">,
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.95", "AdamW beta2">,
    Option<"eps", "eps", "double", "1e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", "0.1",
           "Decoupled weight decay (not applied to 1-D parameters)">,
    Option<"gradClip", "grad-clip", "double", "1.0", "Global-norm clipping (0 disables it)">,
    Option<"momentType", "moment-type", "std::string", "\"f32\"",
           "Element type of the AdamW moments: f32 | bf16 (computed in f32, stored rounded)">,
    Option<"lossScale", "loss-scale", "std::string", "\"none\"",
           "none | dynamic (fp16: torch GradScaler's dynamic loss scaling)">,
    Option<"lossScaleInit", "loss-scale-init", "double", "65536.0",
           "Initial loss scale (GradScaler's init_scale, 2^16)">,
    Option<"lossScaleGrowthFactor", "loss-scale-growth-factor", "double", "2.0",
           "Scale multiplier after growth-interval finite steps">,
    Option<"lossScaleBackoffFactor", "loss-scale-backoff-factor", "double", "0.5",
           "Scale multiplier after a step with inf/NaN gradients (which is skipped)">,
    Option<"lossScaleGrowthInterval", "loss-scale-growth-interval", "int64_t", "2000",
           "Consecutive finite steps before the scale grows">,
    Option<"report", "report", "bool", "false",
           "Emit remarks: ops differentiated, values saved for backward, bytes saved">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect", "::mlir::tensor::TensorDialect"];
}

def KilnExpertParallel : Pass<"kiln-expert-parallel", "mlir::ModuleOp"> {
  let summary = "Shards the routed experts over ep ranks with all-to-all dispatch and combine";
  let description = [{
    Runs on the forward module (before kiln-autodiff, which differentiates
    what it builds). The grid becomes `#kiln.grid<axes = ["edp", "ep"],
    shape = [dp / ep, ep]>`: expert parallelism is carved out of data
    parallelism, as in Megatron and TorchTitan, so every rank still trains
    its own rows and the ep group is dp / ep-th of the ranks. Rank p of an ep
    group holds routed experts [p*L, (p+1)*L), L = experts / ep: every
    stacked expert weight the layer's grouped GEMMs read becomes [L, ...] in
    the function and in every caller up to the entry, whose argument gets
    `kiln.split = {axes = ["ep"], dim = 0, size = experts}`.

    Each `kiln.dispatch` ... `kiln.combine` becomes, keeping the local
    routing and the single-device dispatch and combine:

    1. `kiln.expert_counts` splits the dispatch offsets into rows per
       (destination rank, local expert) and per destination rank;
    2. a `kiln.all_to_all` of the per-expert counts, then one of the rows
       (already grouped by destination: dispatch sorts by expert) with the
       per-rank counts;
    3. `kiln.segment_transpose` orders the received rows local-expert-major;
       the grouped GEMMs and the row-wise ops between them run on the local
       experts over a receive buffer of C rows, touching only the rows that
       arrived (their offsets end at the received count);
    4. the inverse `kiln.segment_transpose` and the reverse `kiln.all_to_all`
       bring every result row back to where the dispatch put it, and the
       original `kiln.combine` sums them with the routing weights.

    The rows, their order and the weights are the single-device ones, so the
    result equals it exactly. C is the dropless bound ep x tokens x
    min(top_k, L) (each token sends at most min(top_k, L) rows to one rank),
    or, when the dispatch reads a `kiln.expert_capacity`, the smaller
    ep x L x groups x capacity (every source sends each expert at most
    `capacity` rows per group of tokens; the pairs over it were dropped
    before the dispatch, identically on every layout). `report=true` prints
    C per layer with the all-to-all bytes. Each rewritten dispatch gets
    `kiln.all_to_all_bytes`: what its ep group passes to the all_to_alls of
    one call, forward and backward, dropless (the count exchange every
    all_to_all starts with, the per-expert counts, the rows out and back
    twice); the host driver checks the ranks' measured sum against it. Shared
    experts, attention and dense layers are untouched (kiln-data-parallel
    reduces their gradients over all ranks, and the experts' over "edp").

    Errors, naming the op: ep not dividing dp or a layer's experts; an op
    other than a grouped GEMM or a row-wise op (swiglu, silu, scale,
    arith.addf/subf/mulf) between dispatch and combine; dispatched rows or
    offsets used outside that region; an expert weight that does not come
    from an argument of the entry function, or is used by anything but
    grouped GEMMs and calls.
  }];
  let options = [
    Option<"ep", "ep", "int64_t", "1", "Expert-parallel ranks (the ep group size)">,
    Option<"dp", "dp", "int64_t", "1", "Data-parallel ranks (a multiple of ep)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark per MoE layer: receive buffer rows and all-to-all bytes">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect"];
}

def KilnDataParallel : Pass<"kiln-data-parallel", "mlir::ModuleOp"> {
  let summary = "Splits a training step's batch over dp ranks, with ZeRO-1 and gradient accumulation";
  let description = [{
    Turns the single-device `@train_step` (after kiln-autodiff, built for one
    micro-batch of B rows) into the program every rank of a data-parallel
    grid runs (`kiln.grid = #kiln.grid<axes = ["dp"], shape = [dp]>` on the
    module). One step trains dp x microbatches x B rows; rank r reads rows
    [r*M*B, (r+1)*M*B) of the global batch, so its batch inputs become
    [M*B, ...]. The rewrite:

    * The batch part of the step (everything but the optimizer: global_norm,
      clip_scale, lr_schedule, adamw, bias_update and what uses them) is
      outlined into `@train_step_micro`, called once per micro-batch on rows
      [i*B, (i+1)*B); its results (gradients, expert loads, loss shares) are
      summed over micro-batches in order 0, 1, ... (a fixed order: the same
      bits on every run).
    * Losses are means over the whole global batch, not means of means:
      every `kiln.cross_entropy` (and its gradient) gets a `count` operand,
      the unmasked tokens of its mask over all micro-batches and ranks
      (counted before the first micro-batch runs, all_reduce over dp), and
      every `kiln.balance_loss` (and gradient) in the functions the step
      calls gets `total_sequences` = dp x M x its sequences. Each rank's loss
      is then its share of the global mean, and the shares add up to it.
    * Gradients of the (replicated) parameters are summed over dp with
      `kiln.all_reduce`; expert loads (for the aux-loss-free bias update,
      which uses global loads as DeepSeek and Megatron do) and the loss
      shares too. The global gradient norm then needs nothing more.
    * With `zero=1` the AdamW state is sharded over dp (ZeRO-1, as
      DeepSeek-V3 trains): each gradient is flattened, zero-padded to a
      multiple of dp and `kiln.reduce_scatter`ed; the rank updates its slice
      of the parameter (`kiln.local_shard`) with its slice of the moments
      (the `exp_avg`/`exp_avg_sq` arguments and results become
      [ceil(numel/dp)], marked `kiln.sharded = {axes = ["dp"], numel = N}`)
      and `kiln.all_gather`s the parameter back. The gradient norm is the
      square root of the all_reduce of the shards' squared norms.

    * After kiln-expert-parallel the grid is its `["edp", "ep"]` (dp ranks):
      the batch is split over both axes, so losses, loads and the gradients
      of replicated parameters are summed over both, while a parameter
      marked `kiln.split` (a rank's experts) has its gradient summed over
      the other axes only ("edp": the ranks holding the same experts), its
      ZeRO-1 state sharded over them, and the gradient norm adds the sum
      over "ep" of the split gradients' squared norms.

    With dp = 1 no collective is inserted (microbatches > 1 is then plain
    gradient accumulation). `report=true` emits a remark with the bytes each
    rank sends into collectives per step. The step must be the one
    kiln-autodiff builds; an optimizer input that is neither a gradient, an
    expert load nor a loss, a loss inside a called function, or a loss mask
    that depends on parameters is an error naming the op.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"train_step\"", "Training step to partition">,
    Option<"dp", "dp", "int64_t", "1", "Data-parallel ranks">,
    Option<"zero", "zero", "int64_t", "0", "0: replicated AdamW state, 1: sharded over dp">,
    Option<"microbatches", "microbatches", "int64_t", "1",
           "Micro-batches per step on each rank (gradient accumulation)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: collectives and bytes per rank per step">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect", "::mlir::tensor::TensorDialect",
                           "::mlir::math::MathDialect"];
}

def KilnPipeline : Pass<"kiln-pipeline", "mlir::ModuleOp"> {
  let summary = "Splits a training step into pipeline stages and writes each rank's schedule as its program";
  let description = [{
    Runs after kiln-data-parallel (at dp 1 too), whose `@train_step` calls
    `@train_step_micro` once per micro-batch and sums the results in order.
    The micro step is cut into `pp` x chunks stages (chunks: 2 for the V of
    `zb-v` and `dualpipev`, `virtual-stages` for `interleaved-1f1b`, 1
    otherwise), each
    a contiguous range of the first `layers` block calls (0: all of them):
    balanced by the FLOPs of each block (StepCost.h) with the ops before the
    first block charged to the first stage and those after the last (final
    norm, head, losses, MTP) to the last, or as `layers-per-stage` lists.
    The embedding is on the first stage; free ops (constants, shifted
    tokens) are cloned where they are read.

    The schedule `schedule` (gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-v,
    dualpipev: PipelineSchedule.h) gives each pipeline rank its list of
    actions; the rank's program `@train_step_pp<r>` (`kiln.program =
    "train_step"`, `kiln.ranks` = its data-parallel ranks) runs them in the
    order of the schedule's simulation, a send placed where its receive
    completes, which meets every peer in one global order (no deadlock with
    blocking sends; kiln-verify-collectives proves it). F clones the stage's
    forward ops for the micro-batch; B the backward ops the stage below
    waits for, a block backward cut in two (`<bwd>_input`, `<bwd>_weight`)
    where only some of its results are needed; W the rest; F&B a forward
    then a whole backward. Values read on another stage move with
    `kiln.send`/`kiln.recv` over the grid axis "pp" (prepended to the grid),
    through every stage in between.

    After the actions each rank sums its pieces of the micro outputs over
    micro-batches; a gradient with pieces on several ranks (a tied or
    shared embedding) is exchanged between them and added in rank order, so
    every holder runs the same AdamW update. The optimizer ops run on the
    ranks holding their operands; the gradient norm is the square root of
    the all_reduce over "pp" of each rank's squared norm (a shared gradient
    counted once, by its lowest rank); losses and expert loads are all-reduced
    from their stage to every rank. Each rank's program takes and returns
    only what it holds.

    ZeRO-1 state (kiln-data-parallel zero=1) stays sharded over each stage's
    data-parallel ranks. fp16's kiln.grad_scaler runs on every rank on the
    all-reduced norm, so an overflow on any stage skips the step on all.
    Not built yet, and refused: expert-parallel grids. `report=true` emits a remark with the stages, the
    bytes per micro-batch on each edge and the simulated bubbles. Every op
    of an action carries it in its location (callsite(... at "pipeline
    action 0F3"), KilnDialect.h), which `train --trace` times.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"train_step\"", "Training step to split">,
    Option<"pp", "pp", "int64_t", "2", "Pipeline ranks">,
    Option<"schedule", "schedule", "std::string", "\"1f1b\"",
           "gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-v or dualpipev">,
    Option<"virtualStages", "virtual-stages", "int64_t", "1",
           "Chunks per rank for interleaved-1f1b">,
    Option<"layers", "layers", "int64_t", "0",
           "Block calls that are layers (the rest, e.g. MTP, go to the last stage); 0: all">,
    ListOption<"layersPerStage", "layers-per-stage", "int64_t",
               "Layers of each stage, in stage order (default: balanced by FLOPs)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: stages, bytes per edge, simulated bubbles">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def KilnSparsity24 : Pass<"kiln-sparsity-2-4", "mlir::ModuleOp"> {
  let summary = "Trains the targeted weights 2:4 sparse (magnitude pruning or SR-STE)";
  let description = [{
    Runs on the training step after `kiln-autodiff` (and `kiln-lower-fp8`,
    `kiln-activation-checkpointing`), driven by `train.sparsity`. The
    targets are the trainable parameters whose `kiln.param` name matches one
    of `targets` (globs: `*`, `?`, `[...]`), by default every weight of rank
    >= 2 but `model.embed_tokens.weight` and `lm_head.weight`. Each target
    gets a mask state (an argument and a result with `kiln.state` /
    `kiln.result = "sparsity_mask"`, all ones in a fresh run, kept in
    checkpoints) and, at the start of the step:

    ```
    M' = kiln.sparsity_mask_2_4(W, M, step)   (ones before start-step; W's 2:4
                                               mask at start-step and every
                                               mask-every steps after)
    W_eff = W * M'                            every use of W in the forward and
                                               backward reads W_eff
    ```

    * `method=magnitude` (Apex ASP): the gradient becomes g * M' (the
      gradient of the sparse model; the global norm and clipping see it),
      and AdamW gets M' as its `mask`: it updates W * M' with the masked
      moments m * M', v * M', in place. A pruned weight, its gradient and
      its moments are then exactly zero, so AdamW leaves it exactly zero
      (its decay multiplies zero): the weights stay 2:4 sparse after every
      step, and checkpoints hold them as plain tensors with zeros in place.
    * `method=sr-ste` (SR-STE, Zhou et al. 2021): W stays dense; the
      forward reads W_eff, so the gradient reaching W is the straight-through
      one (clipping sees it as it is); AdamW then takes g + decay * (W -
      W_eff), the sparse-refined decay that pulls the pruned weights towards
      zero (the clipping coefficient scales the sum, as it scales g).

    Before start-step M' is all ones and every multiplication by it is
    exact, so with magnitude those steps train bit for bit as without the
    pass (sr-ste adds a decay term of zero). kilnc runs the pass for one
    rank and one micro-batch so far.

    Errors: a glob that matches no trainable parameter, a target whose last
    (input) dimension is not a multiple of 4 or whose rank is below 2, a
    step without AdamW updates of its parameters (autodiff has not run, or
    a ZeRO-1 step, which this pass does not handle yet), an unknown method.
  }];
  let options = [
    ListOption<"targets", "targets", "std::string",
               "kiln.param globs of the weights to sparsify (default: every weight of rank >= 2 "
               "but the embedding and lm_head)">,
    Option<"startStep", "start-step", "int64_t", "1", "The first step trained sparse (1-based)">,
    Option<"method", "method", "std::string", "\"magnitude\"", "magnitude | sr-ste">,
    Option<"maskEvery", "mask-every", "int64_t", "0",
           "Recompute the mask every K steps from start-step; 0: once, then frozen">,
    Option<"decay", "decay", "double", "2e-4", "sr-ste: the decay of the pruned weights">,
    Option<"report", "report", "bool", "false", "Emit remarks: the weights made sparse">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::arith::ArithDialect"];
}

def KilnGradCompression : Pass<"kiln-grad-compression", "mlir::ModuleOp"> {
  let summary = "Top-k gradient compression with int8 values and error feedback for data parallelism";
  let description = [{
    Runs after kiln-data-parallel (zero 0), on its step. Each gradient's sum
    over ranks (the `kiln.all_reduce` before its AdamW) becomes:

    1. `kiln.topk_compress` of the rank's gradient plus its residual: the k
       = ceil(ratio x n) largest-magnitude elements of the tensor (top-k per
       tensor, not per bucket: each tensor keeps its own share, so a small
       tensor with large gradients is never crowded out by a large one), as
       one message of indices and values, int8 with one f32 scale per tensor
       (`quantize=int8`) or f32 (`none`);
    2. a `kiln.all_gather` of the messages over the all_reduce's axes (one
       collective per tensor; message sizes are static);
    3. `kiln.topk_decompress`: the sum over ranks, in rank order, of every
       message's values at their indices.

    With `error-feedback=true` (the default) each rank keeps, per gradient,
    what it computed but did not send (the residual, f32, the gradient's
    shape): a step argument `kiln.state = "grad_residual"` and a result of
    the same role and `kiln.param`, added to the next step's gradient before
    its top-k, so nothing is lost, only delayed. Without it the rest is
    dropped. Everything after the sum (global norm, clipping, AdamW) sees the
    decompressed gradient, identical on every rank.

    `report=true` emits the bytes each rank sends per step against the
    all_reduce's. Errors: no grid or one rank, a gradient that is
    reduce-scattered (ZeRO-1: use zero 0) or that reaches AdamW other than
    from an all_reduce, a non-sum reduction, bad options.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"train_step\"", "Training step to rewrite">,
    Option<"ratio", "ratio", "double", "0.05", "Fraction of each tensor's elements sent">,
    Option<"quantize", "quantize", "std::string", "\"int8\"",
           "Values sent: int8 (one f32 scale per tensor) or none (f32)">,
    Option<"errorFeedback", "error-feedback", "bool", "true",
           "Keep what is not sent as a per-rank residual added to the next gradient">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: bytes sent per rank per step against the all_reduce">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect"];
}

def KilnMixedPrecision : Pass<"kiln-mixed-precision", "mlir::ModuleOp"> {
  let summary = "Runs the model's GEMMs in bf16 or f16 (train.precision), keeping the rest in f32";
  let description = [{
    Runs on the forward module, before `kiln-autodiff`. Each GEMM of a
    low-precision family reads its operands rounded to the policy's type and
    writes its result in that type, which is widened back to f32 for its
    users:

    ```
    %y = kiln.linear %x, %w : (f32, f32) -> f32
      becomes
    %xl = arith.truncf %x : f32 -> bf16     (one per GEMM operand)
    %wl = arith.truncf %w : f32 -> bf16
    %yl = kiln.linear %xl, %wl : (bf16, bf16) -> bf16
    %y  = arith.extf %yl : bf16 -> f32
    ```

    This is PyTorch autocast's contract for GEMMs, and autodiff then builds
    its backward: dgrad and wgrad in the low type, each gradient widened to
    f32 by the conversions' gradient rules before it is accumulated, so the
    parameters (master weights), their gradients and the AdamW moments stay
    f32. Every op that is not a GEMM keeps computing in f32.

    Families (which ops are GEMMs the policy may lower), with DeepSeek-V3's
    defaults (technical report 3.3: embedding, output head, MoE gating,
    normalisation, attention and the losses keep their precision):

    | family      | ops                                             | default |
    |-------------|-------------------------------------------------|---------|
    | `linear`    | `kiln.linear` not listed below                  | low     |
    | `expert`    | `kiln.grouped_matmul` (routed experts)          | low     |
    | `head`      | `kiln.linear` whose result reaches a            | f32     |
    |             | `kiln.cross_entropy` (output and MTP heads)     |         |
    | `gate`      | `kiln.linear` whose result reaches a            | f32     |
    |             | `kiln.router` (MoE gating)                      |         |

    "Reaches" follows reshapes, function results and call sites.
    `high-precision` keeps more families in f32, `low-precision` lowers the
    f32 ones; a family named in both, or a name not in the table, is an
    error. Embedding, normalisation, attention (scores and softmax) and the
    losses are not GEMMs the pass lowers. A GEMM whose operands are not all
    f32 (already lowered) is left as it is, so running the pass twice
    changes nothing. `report=true` emits a remark with the count per family.

    `policy=fp16` lowers the same families to f16, whose range (max 65504)
    the gradients overflow without loss scaling: pair it with
    `kiln-autodiff loss-scale=dynamic` (kilnc does, for train.precision
    fp16).

    `policy=fp8` (DeepSeek-V3's recipe) marks each low-precision
    `kiln.linear` and `kiln.grouped_matmul` with the unit attribute
    `kiln.fp8` and changes nothing else; autodiff copies the mark to their
    dgrad and wgrad, and `kiln-lower-fp8`, after autodiff, turns the three
    into block-quantized FP8 GEMMs.
  }];
  let options = [
    Option<"policy", "policy", "std::string", "\"bf16\"",
           "Low-precision type of the GEMMs: bf16 | fp16 | fp8">,
    ListOption<"highPrecision", "high-precision", "std::string",
               "Families kept in f32 besides head and gate (linear, expert)">,
    ListOption<"lowPrecision", "low-precision", "std::string",
               "Families lowered besides linear and expert (head, gate)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: GEMMs lowered and kept per family">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::arith::ArithDialect"];
}

def KilnActivationCheckpointing : Pass<"kiln-activation-checkpointing", "mlir::ModuleOp"> {
  let summary = "Recomputes block activations in the backward instead of keeping them";
  let description = [{
    Runs after `kiln-autodiff` (and `kiln-lower-fp8`), before
    `kiln-data-parallel`, driven by `train.checkpointing`. It works on the
    block functions autodiff builds: `F_fwd` returns F's results and then the
    values `F_bwd` needs; `F_bwd` carries `kiln.forward = @F_fwd` and
    `kiln.saved = N`, its last N arguments being those values.

    * `policy=none` changes nothing.
    * `policy=full` (Megatron's `--recompute-granularity full`, per layer):
      each block the step calls keeps only its inputs. Its `F_bwd` starts
      with a copy of `F_fwd`'s body on its own arguments, uses the copies of
      the saved values, and no longer takes them (the saved-value operands
      of its calls are dropped; ops only F's results needed are not
      copied). A block called inside such a block (the MTP module's decoder
      layer) keeps taking its saved values, from the outer recomputation,
      through a copy `F_bwd_saved`, so nothing is computed a third time.

    * `policy=selective` (Megatron's selective recompute, with DeepSeek-V3's
      choices) recomputes a saved value when it comes from cheap ops alone:
      normalisation (`kiln.rms_norm`), activations (`silu`, `swiglu`),
      `rope`, `broadcast`, `scale`, elementwise `arith` (add, sub, mul, neg,
      truncf, extf, constants), data movement (`tensor.expand_shape`,
      `collapse_shape`, `extract_slice`, `concat`) and MLA's up-projections
      (a `kiln.linear` whose weight is a `*q_b_proj.weight` or
      `*kv_b_proj.weight` parameter), reading only the block's arguments and
      the saved values it keeps. Other GEMMs, attention and MoE ops stay
      saved (attention probabilities are never saved: `attention_grad`
      recomputes them). Every backward drops the values it recomputes, at
      every call; an outer block then stops keeping the values it only
      handed to a nested block.

    * `policy=budget budget-bytes=N` chooses per block call of the step
      (each layer, and the MTP module) `none`, `selective` or `full` so that
      the planned arena of the step fits N bytes with the fewest recompute
      FLOPs (`passes/StepCost.h` has the FLOP model). It prices each choice
      by planning it: a clone of the module is rewritten (calls at a level
      go to a copy `F_bwd_selective` or `F_bwd_full`) and lowered by the
      pricer, by default `inline`, `convert-kiln-to-kernel`,
      `kiln-fuse-elementwise` and `kiln-plan-arena` (kilnc adds the passes
      it runs between, so the price is the arena it builds). The search is
      greedy: it raises the call that frees the most arena per added FLOP
      (calls of one backward in forward order) until the plan fits, then
      lowers back each call the plan fits without. A budget below the
      smallest arena of the uniform policies is an error naming that
      smallest feasible budget; a budget the step fits without
      recomputation changes nothing.

    Recomputation runs the same ops on the same values: the trained numbers
    are bit-identical to `none`. Forward collectives inside a block (expert
    parallelism's all_to_all) are recomputed too, on every rank alike.

    Errors: an unknown policy, `budget` without a positive `budget-bytes`,
    a budget below the smallest feasible arena, a module without any block
    backward (autodiff has not run), or a backward whose arguments do not
    match its forward's. A module whose called backwards save nothing (or
    already recompute) is left as it is. `report=true` emits a remark per
    block and the bytes no longer kept (budget: each block's level, the
    arena, the recompute FLOPs and how many plans were priced).
  }];
  let options = [
    Option<"policy", "policy", "std::string", "\"none\"", "none | full | selective | budget">,
    Option<"budgetBytes", "budget-bytes", "int64_t", "0",
           "policy=budget: the planned arena must fit this many bytes">,
    Option<"report", "report", "bool", "false",
           "Emit remarks: saved values recomputed per block, bytes per step">
  ];
  // The budget policy prices candidates by lowering them to the kernel level.
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::kiln::kernel::KernelDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def KilnLowerFp8 : Pass<"kiln-lower-fp8", "mlir::ModuleOp"> {
  let summary = "Lowers the GEMMs marked kiln.fp8 to block-quantized FP8 GEMMs (DeepSeek-V3)";
  let description = [{
    Runs after `kiln-autodiff` on every function. Each `kiln.linear`,
    `kiln.linear_dgrad` and `kiln.linear_wgrad` carrying `kiln.fp8` (set by
    `kiln-mixed-precision policy=fp8`) becomes `kiln.quantize_fp8` of its
    two operands and one `kiln.scaled_matmul`, with the tilings of the
    DeepSeek-V3 technical report (3.3):

    | GEMM   | computes      | lhs tiles             | rhs tiles           |
    |--------|---------------|-----------------------|---------------------|
    | Fprop  | y  = x W^T    | x: 1x128              | W: 128x128          |
    | Dgrad  | dx = dy W     | dy: 1x128             | W: 128x128          |
    | Wgrad  | dW = dy^T x   | dy: 128x1 (transpose) | x: 128x1 (transpose)|

    so that every scale is constant over each 128-wide block of the
    contracted dimension, and the GEMM promotes to f32 per block.

    The expert GEMMs (`kiln.grouped_matmul` and its dgrad and wgrad, marked
    the same way) become the grouped forms with the same tilings, per
    expert: x and dy in 1x128 tiles (`kiln.quantize_fp8`: a row belongs to
    one expert), the stacked weights [E, N, K] in [1, 128, 128] blocks (no
    block mixes two experts), and for the Wgrad dy and x in 128x1 tiles that
    restart at each expert's first row (`kiln.quantize_fp8_grouped`), into
    `kiln.scaled_grouped_matmul` (Fprop with `transpose_rhs`, Dgrad without)
    and `kiln.scaled_grouped_matmul_wgrad`. Leading
    dimensions of activations are collapsed into rows (tensor.collapse_shape)
    and restored after. Results keep the op's element type (f32). The
    quantization of W is done where its GEMM is, once per GEMM: a function
    that holds both Fprop and Dgrad of one weight gets two (CSE merges them).

    Errors: a marked op whose operands are not f32, bf16 or f16.
    `report=true` emits a remark counting the GEMMs lowered.
  }];
  let options = [
    Option<"report", "report", "bool", "false", "Emit a remark: FP8 GEMMs lowered">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::tensor::TensorDialect"];
}

def ConvertKilnToKernel : Pass<"convert-kiln-to-kernel", "mlir::ModuleOp"> {
  let summary = "Lowers a kiln training step to kernel launches over buffers";
  let description = [{
    Bufferizes the entry function (default `@train_step`, after `inline`),
    or each per-rank program marked `kiln.program = "<entry>"` where there
    are some (kiln-pipeline's stages), into the kernel level: every tensor becomes a static memref, every value
    that is not an argument gets a `kiln_kernel.alloc`, and each op becomes

    * a `kiln_kernel.launch` of the kernel named like the op (catalog in
      dialects/kernel/KernelCatalog.cpp; ins = operands, outs = results,
      params = the op's attributes);
    * a one-op `kiln_kernel.elementwise` loop for elementwise ops
      (`arith.addf/subf/mulf/divf/negf` on tensors, `kiln.scale`, `silu`,
      `swiglu`, `silu_grad`, `swiglu_grad`);
    * a `kiln_kernel.reshape` alias for `tensor.expand_shape` and
      `tensor.collapse_shape`;
    * `fill`, `extract_slice`, `insert_slice` and `concat` launches for splat
      constants and the other tensor ops.

    State is updated in place: `kiln.adamw` writes its parameter and moments
    into their argument buffers and `kiln.bias_update` its bias, which is
    only legal when nothing reads the old value afterwards (checked; an
    error otherwise). Results marked `kiln.result = "param"`, `"exp_avg"` or
    `"exp_avg_sq"` must come out of such an update of the matching argument.
    A decode program's (frontend/DecodeGen.cpp) `kiln.cache_write` updates
    its cache argument in place the same way, and each result marked
    `kiln.result = "kv_cache"` must be that update of the argument with the
    same `kiln.cache` name.
    Every other result (loss, main_loss, grad_norm, lr, expert_load,
    expert_kept, a decode program's logits)
    becomes an output argument marked `kiln.output = "<role>"`, written
    directly by the kernel that computes it. The function then returns
    nothing. Other functions are erased: the kernel-level module holds one
    step.

    Fails, naming the op, on calls (run `inline` first), ops with no kernel,
    dynamic shapes or slices, and non-splat constants.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"train_step\"", "Function to lower">
  ];
  let dependentDialects = ["::kiln::kernel::KernelDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::func::FuncDialect"];
}

def KilnFuseElementwise : Pass<"kiln-fuse-elementwise", "mlir::func::FuncOp"> {
  let summary = "Merges chains of elementwise loops into one loop each";
  let description = [{
    A `kiln_kernel.elementwise` loop whose out buffer is read by exactly one
    later elementwise loop (directly or through `kiln_kernel.reshape`s with
    no other users), and by nothing else, is merged into that reader: the
    producer's body is inlined into the consumer's, the intermediate buffer
    disappears, and the producer's ins become the consumer's. A `fill` launch
    read only by elementwise loops becomes a scalar constant inside them.
    Merging is legal only if no op between the two writes a buffer the
    producer reads (checked conservatively: any write to an in, including
    in-place state updates and aliases through reshape).

    Launches (GEMMs, norms, attention, ...) are left alone. With
    `report=true`, a remark on the function gives the kernel count before
    and after and the buffers removed.
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "Emit a remark: kernels before/after fusion, intermediate buffers removed">
  ];
  let dependentDialects = ["::kiln::kernel::KernelDialect", "::mlir::arith::ArithDialect"];
}

def KilnOverlapSendRecv : Pass<"kiln-overlap-send-recv", "mlir::func::FuncOp"> {
  let summary = "Posts sends and receives early and waits late, so transfers overlap compute";
  let description = [{
    On the kernel level of one straight-line program (before kiln-plan-arena),
    each `send` becomes a `send_start` right after the last kernel that writes
    its buffer (not before the communication launch before it) and a
    `p2p_wait` right before the next blocking communication (a receive's
    wait or a collective), the end of the step, or the next write of its
    buffer; each `recv` becomes a `recv_start` right after the collective or
    receive before it and a `p2p_wait` where the `recv` was. The start and
    its wait share a `ticket` (unique in the function); the wait takes the
    buffer, so the arena keeps it live and untouched until the transfer is
    over.

    Posts keep their order (transfers between two ranks match in posting
    order) and no rank blocks earlier than before, so a program whose
    blocking sends meet their receives (kiln-verify-collectives) cannot
    deadlock now either. With `report=true`, a remark counts the transfers,
    those posted early and the send waits deferred.
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "Emit a remark: transfers posted, posted early, send waits deferred">
  ];
  let dependentDialects = ["::kiln::kernel::KernelDialect"];
}

def KilnOverlapCollectives : Pass<"kiln-overlap-collectives", "mlir::func::FuncOp"> {
  let summary = "Puts all_reduce, all_gather and reduce_scatter on a communication stream that overlaps compute";
  let description = [{
    On the kernel level of one straight-line program (before kiln-plan-arena),
    makes the streams explicit: each `all_reduce`, `all_gather` and
    `reduce_scatter` launch gets `stream = "comm"` and a unique `event` in its
    params and moves up to right after the last kernel that writes its input
    (never past the communication launch before it: every rank issues its
    collectives in the same order, nor past a kernel that reads or writes its
    output, nor above the ops defining its operands; the `kiln_kernel.alloc`
    of its output moves up with it). The communication
    stream starts it once the compute stream's work issued before it is done.
    A `stream_wait` launch with the same `event`, taking the collective's
    buffers, is inserted right before the first later op that reads or
    writes the collective's output, writes its input (or reads it, when the
    collective is in place), any other communication (`all_to_all`, `send`,
    `recv` and their posted forms), or the end of the step: there the
    compute stream waits for the communication stream. The kernels between
    a collective and its wait overlap it. The wait keeps the buffers live in
    kiln-plan-arena's plan, so no other buffer shares their bytes while the
    communication stream uses them.

    ```mlir
    kiln_kernel.launch "linear_wgrad"(...) -> (%g : memref<64x64xf32>) {}
    kiln_kernel.launch "all_reduce"(%g : memref<64x64xf32>) -> (%r : memref<64x64xf32>)
        {axes = ["dp"], event = 0 : i64, kind = "sum", stream = "comm"}
    kiln_kernel.launch "rms_norm_grad"(...) -> (...) {}      // overlaps the all_reduce
    kiln_kernel.launch "stream_wait"(%g, %r : memref<64x64xf32>, memref<64x64xf32>) -> () {event = 0 : i64}
    kiln_kernel.launch "global_norm"(%r, ...) -> (...) {}
    ```

    `local_shard` (no data moves between ranks) and everything else stay on
    the compute stream. The IR stays target-neutral: the host target's
    collectives block where they are issued and its `stream_wait` is empty,
    so the host computes the same numbers with or without the pass (kilnc
    runs it for the CUDA target). A function already carrying streams (a
    `stream_wait`, a launch with a `stream` param) or whose collectives are
    not in its single block is an error. With `report=true`, a remark counts
    the collectives, those moved up and the kernels issued between a
    collective and its wait.
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "Emit a remark: collectives on the communication stream, moved up, kernels overlapped">
  ];
  let dependentDialects = ["::kiln::kernel::KernelDialect"];
}

def KilnPlanArena : Pass<"kiln-plan-arena", "mlir::func::FuncOp"> {
  let summary = "Places every temporary buffer in one arena, reusing memory by liveness";
  let description = [{
    Replaces each `kiln_kernel.alloc` with a `kiln_kernel.buffer` at a byte
    offset of one arena and sets the function's `kiln_kernel.arena_bytes`.
    A buffer is live from the op that first writes it to the last op that
    reads it (through any reshape alias); the step is straight-line, so
    liveness is an interval of op positions. Buffers are placed largest
    first, each at the lowest 64-byte-aligned offset that does not overlap a
    placed buffer whose interval intersects its own (greedy by size, as
    TFLite's and XLA's heap simulators do). Arguments (state, batch,
    outputs) are not in the arena.

    With `report=true`, a remark gives the arena size, the sum of all
    buffer sizes (the size without reuse) and the peak of live bytes (the
    lower bound any placement needs).
  }];
  let options = [
    Option<"reuse", "reuse", "bool", "true",
           "Share bytes between buffers with disjoint lifetimes (false: every buffer "
           "gets its own bytes, to check that reuse changes no result)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: arena bytes, bytes without reuse, peak live bytes">
  ];
  let dependentDialects = ["::kiln::kernel::KernelDialect"];
}

def KilnVerifyCollectives : Pass<"kiln-verify-collectives", "mlir::ModuleOp"> {
  let summary = "Proves that every rank's collectives and send/recv meet their peers' (no hang)";
  let description = [{
    Checks the per-rank programs of a module with a `kiln.grid` before
    anything runs; the IR is left as it is. Without a grid the module is
    one rank and the pass does nothing.

    Which function each rank runs: if functions carry
    `kiln.program = "<entry>"`, each of them lists the world ranks that run
    it in `kiln.ranks = array<i64: ...>` and every rank of the grid must be
    listed exactly once (one program per pipeline stage); otherwise every
    rank runs `@<entry>` (SPMD). A rank's communication is its program's
    kiln.all_reduce, all_gather, reduce_scatter, all_to_all, send and recv in
    program order, following `func.call`s into their callees in order
    (`kiln.local_shard` moves no data and is not communication). Such ops
    and calls must sit in the single block of their function, not inside a
    loop or branch, and calls must not recurse: the sequence has to be
    fixed.

    Every operation blocks (a send returns once its recv has the data, as
    the runtime's LocalWorld enforces), and the pass simulates all ranks:
    a collective completes when every rank of its group (the ranks that
    agree on the other axes) is at its next collective on that group with
    the same op, reduction, element type, element count and dim
    (all_to_all: elements per row, since capacities are per-rank bounds); a
    send completes with its peer's recv of the same element type and count.
    When no rank can move and some have not ended, it reports the first
    problem, lowest rank first, as an error at that rank's op with notes at
    the peers' ops (or where a peer's program ends):

    ```
    rank 0 and rank 1 disagree on collective #3 of group dp [0, 1]: rank 0 runs
      kiln.all_reduce sum of 4096 x f32, rank 1 runs kiln.all_gather of 2048 x f32 along dim 0
    rank 1 ends its program while rank 0 waits in kiln.all_reduce over dp (#5 of that group)
    rank 0's kiln.send to rank 1 (4 x f32) has no matching kiln.recv: rank 1 has ended its program
    rank 0 and rank 1 disagree on a send/recv: rank 0 runs kiln.send to rank 1 of 4 x bf16, ...
    deadlock: rank 0 waits in kiln.recv from rank 1, rank 1 waits in kiln.recv from rank 0
    ```

    Collectives are numbered per group from #1. A deadlock is reported only
    when no rank disagrees with a peer or waits for one that has ended; it
    lists the cycle of waits reached from the lowest waiting rank.
    `report=true` emits a remark on the module with the ranks, the
    collectives matched (once per group) and the send/recv pairs matched.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"train_step\"",
           "The SPMD function every rank runs, or the kiln.program of per-rank functions">,
    Option<"report", "report", "bool", "false",
           "Emit a remark: ranks, collectives and send/recv pairs matched">
  ];
}

#endif // KILN_PASSES_TD
