// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.adamw with a mask (kiln-sparsity-2-4): the update starts from p, g,
// m and v times the mask. Kept entries (mask 1) update exactly as without
// the mask; pruned ones (mask 0) become zero (-0 for a negative weight, as
// torch's p.mul_(mask) gives), and their weight decay and moments keep them
// zero.

func.func @main() -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %p = arith.constant dense<[0.5, -1.25, 2.0, 0.1]> : tensor<4xf32>
  %g = arith.constant dense<[0.2, 0.05, -1.5, 3.0]> : tensor<4xf32>
  %m = arith.constant dense<[0.01, -0.02, 0.3, 0.25]> : tensor<4xf32>
  %v = arith.constant dense<[0.004, 0.001, 0.2, 0.5]> : tensor<4xf32>
  %mask = arith.constant dense<[1.0, 0.0, 1.0, 0.0]> : tensor<4xf32>
  %lr = arith.constant dense<1.0e-03> : tensor<f32>
  %step = arith.constant dense<3> : tensor<i64>
  %one = arith.constant dense<1.0> : tensor<f32>
  // CHECK: result #0 : tensor<4xf32> = [[[P0:[^,]+]], {{[^,]+}}, [[P2:[^,]+]], {{[^,]+}}]
  // CHECK-NEXT: result #1 : tensor<4xf32> = [[[M0:[^,]+]], {{[^,]+}}, [[M2:[^,]+]], {{[^,]+}}]
  %p1, %m1, %v1 = kiln.adamw %p, %g, %m, %v, %lr, %step, %one
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
      : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  // CHECK-NEXT: result #2 : tensor<4xf32> = [[[P0]], -0, [[P2]], 0]
  // CHECK-NEXT: result #3 : tensor<4xf32> = [[[M0]], 0, [[M2]], 0]
  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %step, %one mask %mask
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
      : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %p1, %m1, %p2, %m2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}
