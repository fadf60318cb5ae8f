// kiln-autodiff moment-type=bf16 (train.optimizer.state_dtype "bf16",
// DeepSeek-V3's storage): both AdamW moments are bf16 step state of the
// parameter's shape; the parameter, its gradient and the update stay f32.
// RUN: kiln-opt %s --kiln-autodiff="moment-type=bf16" | FileCheck %s
// RUN: not kiln-opt %s --kiln-autodiff="moment-type=f16" 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: kiln-autodiff: moment-type must be 'f32' or 'bf16', got 'f16'

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:arg0]]: tensor<4x4xf32> {kiln.param = "w"}
// CHECK-SAME: %[[M:arg1]]: tensor<4x4xbf16> {kiln.param = "w", kiln.state = "exp_avg"}
// CHECK-SAME: %[[V:arg2]]: tensor<4x4xbf16> {kiln.param = "w", kiln.state = "exp_avg_sq"}
// CHECK-SAME: -> (tensor<4x4xf32> {kiln.param = "w", kiln.result = "param"}, tensor<4x4xbf16> {kiln.param = "w", kiln.result = "exp_avg"}, tensor<4x4xbf16> {kiln.param = "w", kiln.result = "exp_avg_sq"}
// CHECK: kiln.adamw %[[W]], %{{.*}}, %[[M]], %[[V]], {{.*}} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xbf16>, tensor<4x4xbf16>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xbf16>, tensor<4x4xbf16>)

func.func @forward(%w: tensor<4x4xf32> {kiln.param = "w"}, %x: tensor<2x4xf32> {kiln.input = "x"})
    -> (tensor<f32> {kiln.result = "loss"}) {
  %t = arith.constant dense<0> : tensor<2xi32>
  %m = arith.constant dense<1.0> : tensor<2xf32>
  %y = kiln.linear %x, %w : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
  %l = kiln.cross_entropy %y, %t, %m : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
