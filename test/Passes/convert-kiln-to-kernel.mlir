// RUN: kiln-opt %s -split-input-file --convert-kiln-to-kernel | FileCheck %s

// A small training step: a GEMM becomes a launch, silu + addf become
// one-op loops, a reshape becomes an alias, splat constants become fills,
// AdamW updates its argument buffers in place and the loss and lr become
// output arguments written by the kernels that compute them.

func.func @train_step(
    %w: tensor<4x8xf32> {kiln.param = "proj.weight", kiln.init = "normal", kiln.init_std = 0.02 : f64},
    %m: tensor<4x8xf32> {kiln.param = "proj.weight", kiln.state = "exp_avg"},
    %v: tensor<4x8xf32> {kiln.param = "proj.weight", kiln.state = "exp_avg_sq"},
    %step: tensor<i64> {kiln.input = "step"},
    %x: tensor<2x3x8xf32> {kiln.input = "tokens"})
    -> (tensor<4x8xf32> {kiln.param = "proj.weight", kiln.result = "param"},
        tensor<4x8xf32> {kiln.param = "proj.weight", kiln.result = "exp_avg"},
        tensor<4x8xf32> {kiln.param = "proj.weight", kiln.result = "exp_avg_sq"},
        tensor<f32> {kiln.result = "grad_norm"}, tensor<f32> {kiln.result = "lr"}) {
  %y = kiln.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf32>
  %s = kiln.silu %y : tensor<2x3x4xf32>
  %half = arith.constant dense<0.5> : tensor<2x3x4xf32>
  %a = arith.addf %s, %half : tensor<2x3x4xf32>
  %flat = tensor.collapse_shape %a [[0, 1], [2]] : tensor<2x3x4xf32> into tensor<6x4xf32>
  %xf = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x3x8xf32> into tensor<6x8xf32>
  %g = kiln.linear_wgrad %flat, %xf : (tensor<6x4xf32>, tensor<6x8xf32>) -> tensor<4x8xf32>
  %n = kiln.global_norm %g : (tensor<4x8xf32>) -> tensor<f32>
  %lr = kiln.lr_schedule %step {lr = 1.0e-3 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64} : (tensor<i64>) -> tensor<f32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %p2, %m2, %v2 = kiln.adamw %w, %g, %m, %v, %lr, %step, %one {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.1 : f64} : (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>)
  return %p2, %m2, %v2, %n, %lr : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:arg0]]: memref<4x8xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "proj.weight"}
// CHECK-SAME: %[[M:arg1]]: memref<4x8xf32> {kiln.param = "proj.weight", kiln.state = "exp_avg"}
// CHECK-SAME: %[[V:arg2]]: memref<4x8xf32> {kiln.param = "proj.weight", kiln.state = "exp_avg_sq"}
// CHECK-SAME: %[[STEP:arg3]]: memref<i64> {kiln.input = "step"}
// CHECK-SAME: %[[X:arg4]]: memref<2x3x8xf32> {kiln.input = "tokens"}
// CHECK-SAME: %[[NORM:arg5]]: memref<f32> {kiln.output = "grad_norm"}
// CHECK-SAME: %[[LR:arg6]]: memref<f32> {kiln.output = "lr"})
// CHECK-NOT: ->
// CHECK: %[[Y:.*]] = kiln_kernel.alloc : memref<2x3x4xf32>
// CHECK: kiln_kernel.launch "linear"(%[[X]], %[[W]] : memref<2x3x8xf32>, memref<4x8xf32>) -> (%[[Y]] : memref<2x3x4xf32>) {}
// CHECK: %[[S:.*]] = kiln_kernel.alloc : memref<2x3x4xf32>
// CHECK: kiln_kernel.elementwise(%[[Y]] : memref<2x3x4xf32>) -> (%[[S]] : memref<2x3x4xf32>) origin ["kiln.silu"]
// CHECK: math.exp
// CHECK: %[[HALF:.*]] = kiln_kernel.alloc : memref<2x3x4xf32>
// CHECK: kiln_kernel.launch "fill"() -> (%[[HALF]] : memref<2x3x4xf32>) {value = 5.000000e-01 : f64}
// CHECK: %[[A:.*]] = kiln_kernel.alloc : memref<2x3x4xf32>
// CHECK: kiln_kernel.elementwise(%[[S]], %[[HALF]] : memref<2x3x4xf32>, memref<2x3x4xf32>) -> (%[[A]] : memref<2x3x4xf32>) origin ["arith.addf"]
// CHECK: %[[FLAT:.*]] = kiln_kernel.reshape %[[A]] : memref<2x3x4xf32> to memref<6x4xf32>
// CHECK: %[[XF:.*]] = kiln_kernel.reshape %[[X]] : memref<2x3x8xf32> to memref<6x8xf32>
// CHECK: %[[G:.*]] = kiln_kernel.alloc : memref<4x8xf32>
// CHECK: kiln_kernel.launch "linear_wgrad"(%[[FLAT]], %[[XF]] : memref<6x4xf32>, memref<6x8xf32>) -> (%[[G]] : memref<4x8xf32>)
// CHECK: kiln_kernel.launch "global_norm"(%[[G]] : memref<4x8xf32>) -> (%[[NORM]] : memref<f32>)
// CHECK: kiln_kernel.launch "lr_schedule"(%[[STEP]] : memref<i64>) -> (%[[LR]] : memref<f32>) {lr = 1.000000e-03 : f64
// CHECK: %[[ONE:.*]] = kiln_kernel.alloc : memref<f32>
// CHECK: kiln_kernel.launch "fill"() -> (%[[ONE]] : memref<f32>) {value = 1.000000e+00 : f64}
// CHECK: kiln_kernel.launch "adamw"(%[[W]], %[[G]], %[[M]], %[[V]], %[[LR]], %[[STEP]], %[[ONE]] : {{.*}}) -> (%[[W]], %[[M]], %[[V]] : memref<4x8xf32>, memref<4x8xf32>, memref<4x8xf32>) {beta1 = 9.000000e-01 : f64
// CHECK-NEXT: return{{$}}

// -----

// Everything but the step is erased; the same value returned twice is
// written by its kernel into the first output and copied into the second.

func.func private @unused() {
  return
}

func.func @train_step(%step: tensor<i64> {kiln.input = "step"})
    -> (tensor<f32> {kiln.result = "loss"}, tensor<f32> {kiln.result = "main_loss"}) {
  %lr = kiln.lr_schedule %step {lr = 1.0e-3 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64} : (tensor<i64>) -> tensor<f32>
  return %lr, %lr : tensor<f32>, tensor<f32>
}

// CHECK-NOT: @unused
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[STEP:arg0]]: memref<i64> {kiln.input = "step"}, %[[LOSS:arg1]]: memref<f32> {kiln.output = "loss"}, %[[MAIN:arg2]]: memref<f32> {kiln.output = "main_loss"})
// CHECK: kiln_kernel.launch "lr_schedule"(%[[STEP]] : memref<i64>) -> (%[[LOSS]] : memref<f32>)
// CHECK: kiln_kernel.elementwise(%[[LOSS]] : memref<f32>) -> (%[[MAIN]] : memref<f32>) origin ["copy"]

// -----

// A parameter rebuilt from shards (ZeRO-1): the shard is a temporary the
// update may overwrite; collectives are launches; the gathered parameter is
// copied into its argument as soon as it is complete, since every read of
// the old value came before.
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
func.func @train_step(%w: tensor<8xf32> {kiln.param = "w"}, %m: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg"},
                      %v: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg_sq"}, %step: tensor<i64> {kiln.input = "step"},
                      %g: tensor<8xf32> {kiln.input = "tokens"})
    -> (tensor<8xf32> {kiln.param = "w", kiln.result = "param"}, tensor<4xf32> {kiln.param = "w", kiln.result = "exp_avg"},
        tensor<4xf32> {kiln.param = "w", kiln.result = "exp_avg_sq"}) {
  %one = arith.constant dense<1.0> : tensor<f32>
  %gs = kiln.reduce_scatter %g {kind = "sum", axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<4xf32>
  %ws = kiln.local_shard %w {axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<4xf32>
  %p, %m2, %v2 = kiln.adamw %ws, %gs, %m, %v, %one, %step, %one {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  %full = kiln.all_gather %p {axes = ["dp"], dim = 0 : i64} : (tensor<4xf32>) -> tensor<8xf32>
  return %full, %m2, %v2 : tensor<8xf32>, tensor<4xf32>, tensor<4xf32>
}
}
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:arg0]]: memref<8xf32>
// CHECK: kiln_kernel.launch "reduce_scatter"(%{{.*}} : memref<8xf32>) -> (%[[GS:.*]] : memref<4xf32>) {axes = ["dp"], dim = 0 : i64, kind = "sum"}
// CHECK: kiln_kernel.launch "local_shard"(%[[W]] : memref<8xf32>) -> (%[[WS:.*]] : memref<4xf32>)
// CHECK: kiln_kernel.launch "adamw"(%[[WS]], %[[GS]], %arg1, %arg2, {{.*}}) -> (%[[WS]], %arg1, %arg2 :
// CHECK: kiln_kernel.launch "all_gather"(%[[WS]] : memref<4xf32>) -> (%[[FULL:.*]] : memref<8xf32>)
// CHECK-NEXT: kiln_kernel.elementwise(%[[FULL]] : memref<8xf32>) -> (%[[W]] : memref<8xf32>) origin ["copy"]
