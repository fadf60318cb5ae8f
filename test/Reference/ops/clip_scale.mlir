// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.clip_scale: min(1, max_norm / (norm + 1e-6)) (torch.nn.utils.clip_grad_norm_'s rule);
// max_norm = 0 disables clipping (scale 1). Expected values computed with numpy.

func.func @main() -> (tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>) {
  // max_norm 1: norm 4 -> 1 / (4 + 1e-6); norm 1 -> 1 / (1 + 1e-6), just below 1 (torch clips
  // by the same epsilon); norm 0.25 and norm 0 -> 1 (never scaled up). max_norm 0 with norm 1000 -> 1
  // (disabled). max_norm 2.5 with norm 10 -> 2.5 / (10 + 1e-6).
  // CHECK: result #0 : tensor<f32> = [{{(0\.24999993750001[0-9]*|0\.24999993750002[0-9]*)}}]
  // CHECK-NEXT: result #1 : tensor<f32> = [{{(0\.99999900000098[0-9]*|0\.99999900000099[0-9]*|0\.99999900000100[0-9]*|0\.99999900000101[0-9]*|0\.99999900000102[0-9]*)}}]
  // CHECK-NEXT: result #2 : tensor<f32> = [1]
  // CHECK-NEXT: result #3 : tensor<f32> = [1]
  // CHECK-NEXT: result #4 : tensor<f32> = [1]
  // CHECK-NEXT: result #5 : tensor<f32> = [{{(0\.24999997499999[0-9]*|0\.24999997500000[0-9]*)}}]
  %norm0 = arith.constant dense<4.0> : tensor<f32>
  %s0 = kiln.clip_scale %norm0 {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  %norm1 = arith.constant dense<1.0> : tensor<f32>
  %s1 = kiln.clip_scale %norm1 {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  %norm2 = arith.constant dense<0.25> : tensor<f32>
  %s2 = kiln.clip_scale %norm2 {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  %norm3 = arith.constant dense<0.0> : tensor<f32>
  %s3 = kiln.clip_scale %norm3 {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  %norm4 = arith.constant dense<1000.0> : tensor<f32>
  %s4 = kiln.clip_scale %norm4 {max_norm = 0.0 : f64} : (tensor<f32>) -> tensor<f32>
  %norm5 = arith.constant dense<10.0> : tensor<f32>
  %s5 = kiln.clip_scale %norm5 {max_norm = 2.5 : f64} : (tensor<f32>) -> tensor<f32>

  return %s0, %s1, %s2, %s3, %s4, %s5
      : tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>
}
