// RUN: kiln-opt %s -split-input-file --kiln-autodiff="lr=0.01 total-steps=10" | FileCheck %s
// RUN: kiln-opt %s -split-input-file --kiln-autodiff="report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: kiln-opt %s -split-input-file --kiln-autodiff="mode=gradient" | FileCheck %s --check-prefix=GRAD

// A block function called twice is differentiated once: @block_fwd returns
// its result plus the values its backward needs, @block_bwd consumes them.

func.func private @block(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w: tensor<8x8xf32> {kiln.param = "proj.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = kiln.linear %n, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = kiln.silu %y : tensor<2x4x8xf32>
  %r = arith.addf %x, %s : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g0: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %w0: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"},
                   %g1: tensor<8xf32> {kiln.param = "layers.1.norm.weight"}, %w1: tensor<8x8xf32> {kiln.param = "layers.1.proj.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g0, %w0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h2 = call @block(%h1, %g1, %w1) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h2, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// REPORT: remark: kiln-autodiff: @block: 4 ops differentiated, 2 values saved for backward (512 bytes per call)
// REPORT: remark: kiln-autodiff: @train_step: 5 ops differentiated, 5 trainable parameters, 0 router outputs

// CHECK-LABEL: func.func private @block_fwd(
// CHECK: %[[N:.*]] = kiln.rms_norm
// CHECK: %[[Y:.*]] = kiln.linear %[[N]]
// CHECK: return %{{.*}}, %[[Y]], %[[N]] : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>

// CHECK-LABEL: func.func private @block_bwd(
// CHECK-SAME: %[[X:arg0]]: tensor<2x4x8xf32>, %[[G:arg1]]: tensor<8xf32> {kiln.param = "norm.weight"}, %[[W:arg2]]: tensor<8x8xf32> {kiln.param = "proj.weight"}, %[[DR:arg3]]: tensor<2x4x8xf32>, %[[SY:arg4]]: tensor<2x4x8xf32>, %[[SN:arg5]]: tensor<2x4x8xf32>)
// CHECK: %[[DS:.*]] = kiln.silu_grad %[[DR]], %[[SY]]
// CHECK: %[[DN:.*]] = kiln.linear_dgrad %[[DS]], %[[W]]
// CHECK: %[[DWB:.*]] = kiln.linear_wgrad %[[DS]], %[[SN]]
// CHECK: %[[DX2:.*]], %[[DG:.*]] = kiln.rms_norm_grad %[[DN]], %[[X]], %[[G]]
// The residual adds the two paths' gradients.
// CHECK: %[[DXT:.*]] = arith.addf %[[DR]], %[[DX2]]
// CHECK: return %[[DXT]], %[[DG]], %[[DWB]]

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[EMB:arg0]]: tensor<16x8xf32> {kiln.param = "embed.weight"}
// CHECK-SAME: %[[M0:arg5]]: tensor<16x8xf32> {kiln.param = "embed.weight", kiln.state = "exp_avg"}
// CHECK-SAME: %[[V0:arg10]]: tensor<16x8xf32> {kiln.param = "embed.weight", kiln.state = "exp_avg_sq"}
// CHECK-SAME: %[[STEP:arg15]]: tensor<i64> {kiln.input = "step"}
// CHECK-SAME: %[[TOKENS:arg16]]: tensor<2x4xi32> {kiln.input = "tokens"}
// CHECK-SAME: -> (tensor<16x8xf32> {kiln.param = "embed.weight", kiln.result = "param"}
// CHECK-SAME: tensor<f32> {kiln.result = "loss"}, tensor<f32> {kiln.result = "main_loss"}, tensor<f32> {kiln.result = "grad_norm"}, tensor<f32> {kiln.result = "lr"})
// CHECK: %[[H:.*]] = kiln.embedding %[[EMB]], %[[TOKENS]]
// CHECK: %[[B1:.*]]:3 = call @block_fwd(%[[H]],
// CHECK: %[[B2:.*]]:3 = call @block_fwd(%[[B1]]#0,
// CHECK: %[[LOGITS:.*]] = kiln.linear %[[B2]]#0, %[[EMB]]
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DLOGITS:.*]] = kiln.cross_entropy_grad %[[LOGITS]], {{.*}}, %[[ONE]]
// The tied head's two halves of the gradient stay separate ops.
// CHECK: %[[DX:.*]] = kiln.linear_dgrad %[[DLOGITS]], %[[EMB]]
// CHECK: %[[DW:.*]] = kiln.linear_wgrad %[[DLOGITS]], %[[B2]]#0
// Backward calls consume the saved values (results #1, #2) of the matching forward call.
// CHECK: %[[G2:.*]]:3 = call @block_bwd(%[[B1]]#0, %arg3, %arg4, %[[DX]], %[[B2]]#1, %[[B2]]#2)
// CHECK: %[[G1:.*]]:3 = call @block_bwd(%[[H]], %arg1, %arg2, %[[G2]]#0, %[[B1]]#1, %[[B1]]#2)
// CHECK: %[[DEMB:.*]] = kiln.embedding_grad %[[G1]]#0, %[[TOKENS]]
// CHECK: %[[GEMB:.*]] = arith.addf %[[DW]], %[[DEMB]]
// CHECK: %[[NORM:.*]] = kiln.global_norm %[[GEMB]], %[[G1]]#1, %[[G1]]#2, %[[G2]]#1, %[[G2]]#2
// CHECK: %[[SCALE:.*]] = kiln.clip_scale %[[NORM]] {max_norm = 1.000000e+00 : f64}
// CHECK: %[[LR:.*]] = kiln.lr_schedule %[[STEP]] {lr = 1.000000e-02 : f64, min_lr = 0.000000e+00 : f64, total_steps = 10 : i64, warmup_steps = 0 : i64}
// CHECK: kiln.adamw %[[EMB]], %[[GEMB]], %[[M0]], %[[V0]], %[[LR]], %[[STEP]], %[[SCALE]] {{.*}}weight_decay = 1.000000e-01
// No weight decay on 1-D parameters (norm weights).
// CHECK: kiln.adamw %arg1, %[[G1]]#1, {{.*}}weight_decay = 0.000000e+00

// GRAD-LABEL: func.func @forward_grad(
// GRAD-SAME: -> (tensor<f32> {kiln.result = "loss"}, tensor<16x8xf32> {kiln.param = "embed.weight", kiln.result = "grad"}
// GRAD-NOT: kiln.adamw
// GRAD: return

// -----

// A router's bias is not trained: the step returns its expert load and
// moves the bias with kiln.bias_update. The weights' gradient reaches the logits.

func.func @forward(%x: tensor<4x8xf32> {kiln.param = "x"}, %gate: tensor<4x8xf32> {kiln.param = "mlp.gate.weight"},
                   %bias: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.trainable = false},
                   %tokens: tensor<1x4xi32> {kiln.input = "tokens"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %logits = kiln.linear %x, %gate : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum", n_group = 2 : i64,
      topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<4x4xf32>, tensor<4xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  %c = arith.constant dense<1.0> : tensor<4x2xf32>
  %t = arith.mulf %w, %c : tensor<4x2xf32>
  %z = arith.constant dense<0> : tensor<4xi32>
  %m = arith.constant dense<1.0> : tensor<4xf32>
  %l = kiln.cross_entropy %t, %z, %m : (tensor<4x2xf32>, tensor<4xi32>, tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// REPORT: remark: kiln-autodiff: @train_step: 4 ops differentiated, 2 trainable parameters, 1 router outputs

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[BIAS:arg2]]: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.trainable = false}
// CHECK-SAME: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.result = "param"}
// CHECK-SAME: tensor<4xf32> {kiln.result = "expert_load"})
// CHECK-NOT: kiln.param = "mlp.gate.e_score_correction_bias", kiln.state
// CHECK: %[[IDX:.*]], %[[W:.*]] = kiln.router %[[LOGITS:[^,]*]], %[[BIAS]]
// CHECK: %[[LOAD:.*]] = kiln.expert_load %[[IDX]] {num_experts = 4 : i64}
// CHECK: kiln.router_grad %[[LOGITS]], %[[IDX]], %{{.*}} {norm_topk_prob = true, routed_scaling_factor = 2.500000e+00 : f64, scoring = "sigmoid"}
// CHECK: %[[NEWBIAS:.*]] = kiln.bias_update %[[BIAS]], %[[LOAD]] {speed = 1.000000e-03 : f64}
// CHECK: return {{.*}}%[[NEWBIAS]], {{.*}}%[[LOAD]] :

// -----

// Under kiln.expert_capacity the step also returns what the experts kept
// (the expert_load of the capacity result, role expert_kept) after the
// router loads; the bias still moves by the router's own load.

func.func @forward(%x: tensor<4x8xf32> {kiln.param = "x"}, %gate: tensor<4x8xf32> {kiln.param = "mlp.gate.weight"},
                   %bias: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.trainable = false},
                   %wd: tensor<4x8x8xf32> {kiln.param = "mlp.experts.*.down_proj.weight"},
                   %tokens: tensor<1x4xi32> {kiln.input = "tokens"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %y = func.call @moe(%x, %gate, %bias, %wd) : (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8x8xf32>) -> tensor<4x8xf32>
  %z = arith.constant dense<0> : tensor<4xi32>
  %m = arith.constant dense<1.0> : tensor<4xf32>
  %l = kiln.cross_entropy %y, %z, %m : (tensor<4x8xf32>, tensor<4xi32>, tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
func.func private @moe(%x: tensor<4x8xf32>, %gate: tensor<4x8xf32>, %bias: tensor<4xf32>, %wd: tensor<4x8x8xf32>) -> tensor<4x8xf32> {
  %logits = kiln.linear %x, %gate : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum", n_group = 2 : i64,
      topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<4x4xf32>, tensor<4xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  %kept = kiln.expert_capacity %idx {num_experts = 4 : i64, group_tokens = 2 : i64, capacity = 1 : i64}
      : (tensor<4x2xi32>) -> tensor<4x2xi32>
  %rows, %offsets, %source = kiln.dispatch %x, %kept {num_experts = 4 : i64}
      : (tensor<4x8xf32>, tensor<4x2xi32>) -> (tensor<8x8xf32>, tensor<5xi32>, tensor<8xi32>)
  %o = kiln.grouped_matmul %rows, %wd, %offsets : (tensor<8x8xf32>, tensor<4x8x8xf32>, tensor<5xi32>) -> tensor<8x8xf32>
  %y = kiln.combine %o, %w, %source : (tensor<8x8xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// REPORT: remark: kiln-autodiff: @moe: 5 ops differentiated, 7 values saved for backward
// REPORT: remark: kiln-autodiff: @train_step: 2 ops differentiated, 3 trainable parameters, 2 router outputs

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: tensor<4xf32> {kiln.result = "expert_load"}, tensor<4xf32> {kiln.result = "expert_kept"})
// CHECK: %[[FWD:.*]]:{{[0-9]+}} = call @moe_fwd(
// CHECK: %[[NEWBIAS:.*]] = kiln.bias_update %{{.*}}, %[[FWD]]#1
// CHECK: return {{.*}}%[[FWD]]#1, %[[FWD]]#2 : {{.*}}tensor<4xf32>, tensor<4xf32>
// CHECK-LABEL: func.func private @moe_fwd(
// CHECK-SAME: -> (tensor<4x8xf32>, tensor<4xf32>, tensor<4xf32>,
// CHECK: %[[IDX:.*]], %{{.*}} = kiln.router
// CHECK: %[[LOAD:.*]] = kiln.expert_load %[[IDX]] {num_experts = 4 : i64}
// CHECK: %[[KEPT:.*]] = kiln.expert_capacity %[[IDX]]
// CHECK: %[[KEPTLOAD:.*]] = kiln.expert_load %[[KEPT]] {num_experts = 4 : i64}
// CHECK: kiln.dispatch %{{.*}}, %[[KEPT]]
// CHECK: return %{{.*}}, %[[LOAD]], %[[KEPTLOAD]],
