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
    and is updated by `kiln.bias_update` after the step.

    `mode=train` builds

    ```
    func.func @train_step(params..., exp_avg..., exp_avg_sq..., %step, inputs...)
        -> (new params..., new exp_avg..., new exp_avg_sq..., loss, main_loss,
            grad_norm, lr, expert loads...)
    ```

    with total loss = loss + mtp-loss-weight / D * sum_k mtp_loss_k
    + aux-loss-alpha * balance losses, global-norm clipping, the learning
    rate schedule and AdamW (no weight decay on 1-D parameters).
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
    Option<"report", "report", "bool", "false",
           "Emit remarks: ops differentiated, values saved for backward, bytes saved">
  ];
  let dependentDialects = ["::kiln::KilnDialect", "::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect", "::mlir::tensor::TensorDialect"];
}

#endif // KILN_PASSES_TD
