// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.matmul: result[b, m, n] = sum_k lhs'[b, m, k] * rhs'[b, k, n], lhs' and rhs'
// transposed in their last two dimensions when transpose_lhs / transpose_rhs.
// Dyadic values: every product and sum is exact.

func.func @main() -> (tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2x2xf32>, tensor<2x1x3x3xf32>) {
  // [2, 3] x [3, 2] -> [2, 2].
  // CHECK: result #0 : tensor<2x2xf32> = [6.1875, -0.5, -4.1875, -4.75]
  %a = arith.constant dense<[[1.5, -2.0, 0.25], [-0.5, 3.0, 1.75]]> : tensor<2x3xf32>
  %b = arith.constant dense<[[2.0, 0.5], [-1.5, 0.25], [0.75, -3.0]]> : tensor<3x2xf32>
  %r0 = kiln.matmul %a, %b : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>

  // transpose_lhs: lhs is [K, M] = [3, 2].
  // CHECK-NEXT: result #1 : tensor<2x2xf32> = [-4.75, 13.125, -0.25, -4.6875]
  %at = arith.constant dense<[[1.0, -0.5], [2.5, 0.25], [-4.0, 1.5]]> : tensor<3x2xf32>
  %r1 = kiln.matmul %at, %b {transpose_lhs = true} : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>

  // transpose_rhs: rhs is [N, K] = [2, 3].
  // CHECK-NEXT: result #2 : tensor<2x2xf32> = [3.25, 4.1875, 0.25, -1.5625]
  %bt = arith.constant dense<[[0.5, -1.0, 2.0], [3.0, 0.125, -0.25]]> : tensor<2x3xf32>
  %r2 = kiln.matmul %a, %bt {transpose_rhs = true} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x2xf32>

  // Both transposed: [K, M] x [N, K] -> [M, N] = [2, 2].
  // CHECK-NEXT: result #3 : tensor<2x2xf32> = [-10, 4.3125, 2.5, -1.84375]
  %r3 = kiln.matmul %at, %bt {transpose_lhs = true, transpose_rhs = true} : (tensor<3x2xf32>, tensor<2x3xf32>) -> tensor<2x2xf32>

  // Batched: [2, 2, 3] x [2, 3, 2] -> [2, 2, 2], each batch its own product.
  // CHECK-NEXT: result #4 : tensor<2x2x2xf32> = [-1.5, 3.5, 3, 1, -1.5, 9, 4.875, -11.0625]
  %ba = arith.constant dense<[[[1.0, 2.0, -1.0], [0.5, -0.5, 4.0]], [[-2.0, 0.25, 1.0], [3.0, 1.5, -0.75]]]> : tensor<2x2x3xf32>
  %bb = arith.constant dense<[[[1.0, 0.0], [-1.0, 2.0], [0.5, 0.5]], [[0.25, -4.0], [2.0, 1.0], [-1.5, 0.75]]]> : tensor<2x3x2xf32>
  %r4 = kiln.matmul %ba, %bb : (tensor<2x2x3xf32>, tensor<2x3x2xf32>) -> tensor<2x2x2xf32>

  // Two batch dims, both transposed: [2, 1, K=2, M=3] x [2, 1, N=3, K=2] -> [2, 1, 3, 3].
  // CHECK-NEXT: result #5 : tensor<2x1x3x3xf32> = [-3.5, 0.75, 0, -1.5, -0.4375, -4.25, 7.25, -0.125, 8, 3, 0.75, 1.4375, 6, 4.5, 2.75, 1, -6.25, 0.75]
  %c4a = arith.constant dense<[[[[0.5, -1.0, 1.25], [2.0, 0.25, -3.0]]], [[[1.5, 3.0, 0.5], [-0.5, -2.0, 2.0]]]]> : tensor<2x1x2x3xf32>
  %c4b = arith.constant dense<[[[[1.0, -2.0], [0.5, 0.25], [4.0, -1.0]]], [[[2.0, 0.0], [-0.5, -3.0], [1.0, 0.125]]]]> : tensor<2x1x3x2xf32>
  %r5 = kiln.matmul %c4a, %c4b {transpose_lhs = true, transpose_rhs = true} : (tensor<2x1x2x3xf32>, tensor<2x1x3x2xf32>) -> tensor<2x1x3x3xf32>

  return %r0, %r1, %r2, %r3, %r4, %r5
      : tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2x2xf32>, tensor<2x1x3x3xf32>
}
