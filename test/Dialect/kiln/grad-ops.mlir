// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt -mlir-print-op-generic %s | kiln-opt | FileCheck %s

// Every backward op (KilnGradOps.td) and training-step op (KilnTrainOps.td)
// prints and parses back to itself.

// CHECK-LABEL: func.func @dense_grads
func.func @dense_grads(%dy: tensor<4x32x128xf32>, %w: tensor<128x64xf32>, %x: tensor<4x32x64xf32>,
                       %ids: tensor<4x32xi32>, %dh: tensor<4x32x64xf32>, %gamma: tensor<64xf32>)
    -> (tensor<4x32x64xf32>, tensor<128x64xf32>, tensor<256x64xf32>, tensor<4x32x64xf32>, tensor<64xf32>) {
  // CHECK: %[[DX:.*]] = kiln.linear_dgrad %{{.*}}, %{{.*}} : (tensor<4x32x128xf32>, tensor<128x64xf32>) -> tensor<4x32x64xf32>
  %dx = kiln.linear_dgrad %dy, %w : (tensor<4x32x128xf32>, tensor<128x64xf32>) -> tensor<4x32x64xf32>
  // CHECK: %[[DW:.*]] = kiln.linear_wgrad %{{.*}}, %{{.*}} : (tensor<4x32x128xf32>, tensor<4x32x64xf32>) -> tensor<128x64xf32>
  %dw = kiln.linear_wgrad %dy, %x : (tensor<4x32x128xf32>, tensor<4x32x64xf32>) -> tensor<128x64xf32>
  // CHECK: %[[DT:.*]] = kiln.embedding_grad %{{.*}}, %{{.*}} : (tensor<4x32x64xf32>, tensor<4x32xi32>) -> tensor<256x64xf32>
  %dt = kiln.embedding_grad %dh, %ids : (tensor<4x32x64xf32>, tensor<4x32xi32>) -> tensor<256x64xf32>
  // CHECK: %[[DN:.*]], %[[DG:.*]] = kiln.rms_norm_grad %[[DX]], %{{.*}}, %{{.*}} {epsilon = 9.9999999999999995E-7 : f64} : (tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<64xf32>) -> (tensor<4x32x64xf32>, tensor<64xf32>)
  %dn, %dg = kiln.rms_norm_grad %dx, %x, %gamma {epsilon = 1.0e-06 : f64}
      : (tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<64xf32>) -> (tensor<4x32x64xf32>, tensor<64xf32>)
  // CHECK: return %[[DX]], %[[DW]], %[[DT]], %[[DN]], %[[DG]]
  return %dx, %dw, %dt, %dn, %dg : tensor<4x32x64xf32>, tensor<128x64xf32>, tensor<256x64xf32>, tensor<4x32x64xf32>, tensor<64xf32>
}

// CHECK-LABEL: func.func @matmul_grad
func.func @matmul_grad(%a: tensor<8x16x32xf32>, %b: tensor<8x24x32xf32>, %dc: tensor<8x16x24xf32>,
                       %c: tensor<32x16xbf16>, %d: tensor<24x32xbf16>, %dcd: tensor<16x24xbf16>)
    -> (tensor<8x16x32xf32>, tensor<8x24x32xf32>, tensor<32x16xbf16>, tensor<24x32xbf16>) {
  // CHECK: kiln.matmul_grad %{{.*}}, %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<8x16x32xf32>, tensor<8x24x32xf32>, tensor<8x16x24xf32>) -> (tensor<8x16x32xf32>, tensor<8x24x32xf32>)
  %da, %db = kiln.matmul_grad %a, %b, %dc {transpose_rhs = true}
      : (tensor<8x16x32xf32>, tensor<8x24x32xf32>, tensor<8x16x24xf32>) -> (tensor<8x16x32xf32>, tensor<8x24x32xf32>)
  // CHECK: kiln.matmul_grad %{{.*}}, %{{.*}}, %{{.*}} {transpose_lhs = true, transpose_rhs = true} : (tensor<32x16xbf16>, tensor<24x32xbf16>, tensor<16x24xbf16>) -> (tensor<32x16xbf16>, tensor<24x32xbf16>)
  %dc2, %dd = kiln.matmul_grad %c, %d, %dcd {transpose_lhs = true, transpose_rhs = true}
      : (tensor<32x16xbf16>, tensor<24x32xbf16>, tensor<16x24xbf16>) -> (tensor<32x16xbf16>, tensor<24x32xbf16>)
  return %da, %db, %dc2, %dd : tensor<8x16x32xf32>, tensor<8x24x32xf32>, tensor<32x16xbf16>, tensor<24x32xbf16>
}

// CHECK-LABEL: func.func @activation_grads
func.func @activation_grads(%dy: tensor<4x128xf32>, %x: tensor<4x128xf32>, %up: tensor<4x128xf32>,
                            %dk: tensor<4x32x16x8xf32>)
    -> (tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x32x1x8xf32>) {
  // CHECK: %[[DS:.*]] = kiln.silu_grad %{{.*}}, %{{.*}} : tensor<4x128xf32>
  %ds = kiln.silu_grad %dy, %x : tensor<4x128xf32>
  // CHECK: %[[DG:.*]], %[[DU:.*]] = kiln.swiglu_grad %[[DS]], %{{.*}}, %{{.*}} : (tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x128xf32>) -> (tensor<4x128xf32>, tensor<4x128xf32>)
  %dg, %du = kiln.swiglu_grad %ds, %x, %up
      : (tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x128xf32>) -> (tensor<4x128xf32>, tensor<4x128xf32>)
  // CHECK: %[[DB:.*]] = kiln.unbroadcast %{{.*}} : (tensor<4x32x16x8xf32>) -> tensor<4x32x1x8xf32>
  %db = kiln.unbroadcast %dk : (tensor<4x32x16x8xf32>) -> tensor<4x32x1x8xf32>
  return %ds, %dg, %du, %db : tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x128xf32>, tensor<4x32x1x8xf32>
}

// CHECK-LABEL: func.func @attention_grad
func.func @attention_grad(%q: tensor<2x8x4x24xf32>, %k: tensor<2x8x2x24xf32>, %v: tensor<2x8x2x16xf32>,
                          %do: tensor<2x8x4x16xf32>)
    -> (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>) {
  // CHECK: %[[DQ:.*]], %[[DK:.*]], %[[DV:.*]] = kiln.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {scale = 2.500000e-01 : f64} : (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>)
  %dq, %dk, %dv = kiln.attention_grad %q, %k, %v, %do {scale = 0.25 : f64, causal = true}
      : (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>)
      -> (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>)
  // CHECK: kiln.attention_grad {{.*}} {causal = false, scale = 2.500000e-01 : f64}
  %dq2, %dk2, %dv2 = kiln.attention_grad %q, %k, %v, %do {scale = 0.25 : f64, causal = false}
      : (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>)
      -> (tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>)
  // CHECK: return %[[DQ]], %[[DK]], %[[DV]]
  return %dq, %dk, %dv : tensor<2x8x4x24xf32>, tensor<2x8x2x24xf32>, tensor<2x8x2x16xf32>
}

// CHECK-LABEL: func.func @moe_grads
func.func @moe_grads(%logits: tensor<128x8xf32>, %idx: tensor<128x2xi32>, %dw: tensor<128x2xf32>,
                     %drows: tensor<256x64xf32>, %source: tensor<256xi32>, %rows: tensor<256x64xf32>,
                     %w: tensor<128x2xf32>, %dy: tensor<128x64xf32>, %dh: tensor<256x32xf32>,
                     %w_gate: tensor<8x32x64xf32>, %offsets: tensor<9xi32>)
    -> (tensor<128x8xf32>, tensor<128x64xf32>, tensor<256x64xf32>, tensor<128x2xf32>, tensor<256x64xf32>, tensor<8x32x64xf32>) {
  // CHECK: kiln.router_grad %{{.*}}, %{{.*}}, %{{.*}} {norm_topk_prob = true, routed_scaling_factor = 2.500000e+00 : f64, scoring = "sigmoid"} : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x8xf32>
  %dl = kiln.router_grad %logits, %idx, %dw {scoring = "sigmoid", norm_topk_prob = true,
                                             routed_scaling_factor = 2.5 : f64}
      : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x8xf32>
  // CHECK: kiln.dispatch_grad %{{.*}}, %{{.*}} {top_k = 2 : i64} : (tensor<256x64xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  %dx = kiln.dispatch_grad %drows, %source {top_k = 2 : i64} : (tensor<256x64xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  // CHECK: kiln.combine_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>, tensor<128x64xf32>) -> (tensor<256x64xf32>, tensor<128x2xf32>)
  %dr, %dcw = kiln.combine_grad %rows, %w, %source, %dy
      : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>, tensor<128x64xf32>) -> (tensor<256x64xf32>, tensor<128x2xf32>)
  // CHECK: kiln.grouped_matmul_dgrad %{{.*}}, %{{.*}}, %{{.*}} : (tensor<256x32xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x64xf32>
  %dgx = kiln.grouped_matmul_dgrad %dh, %w_gate, %offsets : (tensor<256x32xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x64xf32>
  // CHECK: kiln.grouped_matmul_wgrad %{{.*}}, %{{.*}}, %{{.*}} : (tensor<256x32xf32>, tensor<256x64xf32>, tensor<9xi32>) -> tensor<8x32x64xf32>
  %dgw = kiln.grouped_matmul_wgrad %dh, %rows, %offsets : (tensor<256x32xf32>, tensor<256x64xf32>, tensor<9xi32>) -> tensor<8x32x64xf32>
  return %dl, %dx, %dr, %dcw, %dgx, %dgw : tensor<128x8xf32>, tensor<128x64xf32>, tensor<256x64xf32>, tensor<128x2xf32>, tensor<256x64xf32>, tensor<8x32x64xf32>
}

// CHECK-LABEL: func.func @loss_grads
func.func @loss_grads(%logits: tensor<4x32x256xf32>, %targets: tensor<4x32xi32>, %mask: tensor<4x32xf32>,
                      %dloss: tensor<f32>, %rl: tensor<128x8xf32>, %idx: tensor<128x2xi32>)
    -> (tensor<4x32x256xf32>, tensor<f32>, tensor<128x8xf32>) {
  // CHECK: kiln.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {label_smoothing = 1.000000e-01 : f64} : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>, tensor<f32>) -> tensor<4x32x256xf32>
  %dl = kiln.cross_entropy_grad %logits, %targets, %mask, %dloss {label_smoothing = 0.1 : f64}
      : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>, tensor<f32>) -> tensor<4x32x256xf32>
  // CHECK: %[[BL:.*]] = kiln.balance_loss %{{.*}}, %{{.*}} {num_sequences = 4 : i64, scoring = "sigmoid"} : (tensor<128x8xf32>, tensor<128x2xi32>) -> tensor<f32>
  %bl = kiln.balance_loss %rl, %idx {scoring = "sigmoid", num_sequences = 4 : i64}
      : (tensor<128x8xf32>, tensor<128x2xi32>) -> tensor<f32>
  // CHECK: kiln.balance_loss_grad %{{.*}}, %{{.*}}, %[[BL]] {num_sequences = 4 : i64, scoring = "softmax"} : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<f32>) -> tensor<128x8xf32>
  %dbl = kiln.balance_loss_grad %rl, %idx, %bl {scoring = "softmax", num_sequences = 4 : i64}
      : (tensor<128x8xf32>, tensor<128x2xi32>, tensor<f32>) -> tensor<128x8xf32>
  return %dl, %bl, %dbl : tensor<4x32x256xf32>, tensor<f32>, tensor<128x8xf32>
}

// CHECK-LABEL: func.func @train_step
func.func @train_step(%idx: tensor<128x2xi32>, %b: tensor<8xf32>, %step: tensor<i64>,
                      %p: tensor<64x64xf32>, %g: tensor<64x64xf32>, %m: tensor<64x64xf32>,
                      %v: tensor<64x64xf32>, %g1: tensor<64xf32>)
    -> (tensor<8xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) {
  // CHECK: %[[LOAD:.*]] = kiln.expert_load %{{.*}} {num_experts = 8 : i64} : (tensor<128x2xi32>) -> tensor<8xf32>
  %load = kiln.expert_load %idx {num_experts = 8 : i64} : (tensor<128x2xi32>) -> tensor<8xf32>
  // CHECK: %[[B2:.*]] = kiln.bias_update %{{.*}}, %[[LOAD]] {speed = 1.000000e-03 : f64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %b2 = kiln.bias_update %b, %load {speed = 1.0e-03 : f64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  // CHECK: %[[LR:.*]] = kiln.lr_schedule %{{.*}} {lr = 3.000000e-03 : f64, min_lr = 3.000000e-04 : f64, total_steps = 300 : i64, warmup_steps = 20 : i64} : (tensor<i64>) -> tensor<f32>
  %lr = kiln.lr_schedule %step {lr = 3.0e-03 : f64, min_lr = 3.0e-04 : f64,
                                warmup_steps = 20 : i64, total_steps = 300 : i64}
      : (tensor<i64>) -> tensor<f32>
  // CHECK: %[[N:.*]] = kiln.global_norm %{{.*}}, %{{.*}} : (tensor<64x64xf32>, tensor<64xf32>) -> tensor<f32>
  %n = kiln.global_norm %g, %g1 : (tensor<64x64xf32>, tensor<64xf32>) -> tensor<f32>
  // CHECK: %[[S:.*]] = kiln.clip_scale %[[N]] {max_norm = 1.000000e+00 : f64} : (tensor<f32>) -> tensor<f32>
  %s = kiln.clip_scale %n {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  // CHECK: kiln.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[LR]], %{{.*}}, %[[S]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64} : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %step, %s
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
      : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
         tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
  return %b2, %p2, %m2, %v2 : tensor<8xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>
}

// Dynamic loss scaling: kiln.grad_scaler and the skippable updates.
// CHECK-LABEL: func.func @scaled_step
func.func @scaled_step(%n: tensor<f32>, %scale: tensor<f32>, %tracker: tensor<i64>, %updates: tensor<i64>,
                       %b: tensor<8xf32>, %load: tensor<8xf32>, %lr: tensor<f32>,
                       %p: tensor<64xf32>, %g: tensor<64xf32>, %m: tensor<64xf32>, %v: tensor<64xf32>)
    -> (tensor<8xf32>, tensor<64xf32>, tensor<f32>, tensor<i64>) {
  // CHECK: %[[SKIP:[a-z0-9_]+]], %[[INV:[a-z0-9_]+]], %{{.*}}, %{{.*}}, %[[U:[a-z0-9_]+]] = kiln.grad_scaler %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {backoff_factor = 5.000000e-01 : f64, growth_factor = 2.000000e+00 : f64, growth_interval = 2000 : i64} : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  %skip, %inv, %s2, %t2, %u2 = kiln.grad_scaler %n, %scale, %tracker, %updates
      {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2000 : i64}
      : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
      -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  // CHECK: kiln.bias_update %{{.*}}, %{{.*}} skip %[[SKIP]] {speed = 1.000000e-03 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<i1>) -> tensor<8xf32>
  %b2 = kiln.bias_update %b, %load skip %skip {speed = 1.0e-03 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<i1>) -> tensor<8xf32>
  // CHECK: kiln.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[U]], %[[INV]] skip %[[SKIP]] {beta1
  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %u2, %inv skip %skip
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>,
         tensor<f32>, tensor<i64>, tensor<f32>, tensor<i1>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  // 2:4 sparsity's masked update, with and without skip.
  // CHECK: kiln.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[U]], %[[INV]] skip %[[SKIP]] mask %[[MASK:[a-z0-9_]+]] {beta1
  // CHECK: kiln.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[U]], %[[INV]] mask %[[MASK]] {beta1
  %p3, %m3, %v3 = kiln.adamw %p2, %g, %m2, %v2, %lr, %u2, %inv skip %skip mask %g
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>,
         tensor<f32>, tensor<i64>, tensor<f32>, tensor<i1>, tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  %p4, %m4, %v4 = kiln.adamw %p3, %g, %m3, %v3, %lr, %u2, %inv mask %g
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>,
         tensor<f32>, tensor<i64>, tensor<f32>, tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  return %b2, %p4, %s2, %t2 : tensor<8xf32>, tensor<64xf32>, tensor<f32>, tensor<i64>
}
