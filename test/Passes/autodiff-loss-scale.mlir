// kiln-autodiff loss-scale=dynamic (fp16's GradScaler): the scale seeds the
// backward, kiln.grad_scaler decides the step from the scaled gradients'
// norm, the norm and the clipping coefficient are unscaled, AdamW counts
// applied updates and is skipped on overflow, and the scaler's state is
// step state returned after lr.
// RUN: kiln-opt %s --kiln-autodiff="loss-scale=dynamic loss-scale-init=1024 loss-scale-growth-interval=3" | FileCheck %s
// RUN: kiln-opt %s --kiln-autodiff | FileCheck %s --check-prefix=UNSCALED

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[STEP:[a-z0-9]+]]: tensor<i64> {kiln.input = "step"}
// CHECK-SAME: %[[SCALE:[a-z0-9]+]]: tensor<f32> {kiln.initial = 1.024000e+03 : f64, kiln.state = "loss_scale"}
// CHECK-SAME: %[[TRACKER:[a-z0-9]+]]: tensor<i64> {kiln.state = "growth_tracker"}
// CHECK-SAME: %[[UPDATES:[a-z0-9]+]]: tensor<i64> {kiln.state = "optimizer_updates"}
// CHECK-SAME: {kiln.result = "lr"}, tensor<f32> {kiln.result = "loss_scale"}, tensor<i64> {kiln.result = "growth_tracker"}, tensor<i64> {kiln.result = "optimizer_updates"}, tensor<4xf32> {kiln.result = "expert_load"})
// CHECK: kiln.cross_entropy_grad {{.*}}, %[[SCALE]] :
// CHECK: %[[NORM:.*]] = kiln.global_norm
// CHECK: %[[SKIP:[a-z0-9_]+]], %[[INV:[a-z0-9_]+]], %[[NEWSCALE:[a-z0-9_]+]], %[[NEWTRACKER:[a-z0-9_]+]], %[[NEWUPDATES:[a-z0-9_]+]] = kiln.grad_scaler %[[NORM]], %[[SCALE]], %[[TRACKER]], %[[UPDATES]] {backoff_factor = 5.000000e-01 : f64, growth_factor = 2.000000e+00 : f64, growth_interval = 3 : i64}
// CHECK: %[[NORM1:.*]] = arith.mulf %[[NORM]], %[[INV]]
// CHECK: %[[CLIP:.*]] = kiln.clip_scale %[[NORM1]]
// CHECK: %[[COEF:.*]] = arith.mulf %[[CLIP]], %[[INV]]
// CHECK: %[[LR:.*]] = kiln.lr_schedule %[[STEP]]
// CHECK: kiln.adamw {{.*}}, %[[LR]], %[[NEWUPDATES]], %[[COEF]] skip %[[SKIP]]
// CHECK: kiln.adamw {{.*}}, %[[LR]], %[[NEWUPDATES]], %[[COEF]] skip %[[SKIP]]
// CHECK: kiln.bias_update {{.*}} skip %[[SKIP]]
// CHECK: return {{.*}}, %[[NORM1]], %[[LR]], %[[NEWSCALE]], %[[NEWTRACKER]], %[[NEWUPDATES]], %{{[0-9]+}} :

// UNSCALED-LABEL: func.func @train_step(
// UNSCALED-NOT: loss_scale
// UNSCALED-NOT: kiln.grad_scaler
// UNSCALED: kiln.adamw {{.*}} : (
// UNSCALED-NOT: skip
// UNSCALED: return

func.func @forward(%x: tensor<4x8xf32> {kiln.param = "x"}, %gate: tensor<4x8xf32> {kiln.param = "mlp.gate.weight"},
                   %bias: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.trainable = false},
                   %tokens: tensor<1x4xi32> {kiln.input = "tokens"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %logits = kiln.linear %x, %gate : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum", n_group = 2 : i64,
      topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<4x4xf32>, tensor<4xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  %z = arith.constant dense<0> : tensor<4xi32>
  %m = arith.constant dense<1.0> : tensor<4xf32>
  %l = kiln.cross_entropy %w, %z, %m : (tensor<4x2xf32>, tensor<4xi32>, tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
