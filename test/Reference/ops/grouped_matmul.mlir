// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.grouped_matmul: result[r, n] = sum_k x[r, k] * weight[e, n, k] for
// offsets[e] <= r < offsets[e+1]. Dyadic values: every product and sum is exact.

func.func @main() -> (tensor<5x2xf32>, tensor<5x1xf32>, tensor<5x2xf32>, tensor<5x2xf32>) {
  // rows [5, 3], 3 experts with weight [3, 2, 3], offsets [0, 2, 2, 5]: rows 0-1 use expert 0,
  // expert 1 has zero rows, rows 2-4 use expert 2.
  // CHECK: result #0 : tensor<5x2xf32> = [-2, 1.25, 7.25, -1.625, -1.25, 5.25, -0.125, -8.75, 3.125, -2.625]
  %x = arith.constant dense<[[1.0, -0.5, 2.0], [0.25, 3.0, -1.0], [-2.0, 1.5, 0.5], [4.0, 0.0, -0.75], [1.5, -1.25, 1.0]]> : tensor<5x3xf32>
  %w = arith.constant dense<[[[1.0, 2.0, -1.0], [0.5, -0.5, 0.25]], [[-3.0, 1.0, 0.0], [2.0, 2.0, 2.0]], [[0.25, -1.0, 1.5], [-2.0, 0.5, 1.0]]]> : tensor<3x2x3xf32>
  %off = arith.constant dense<[0, 2, 2, 5]> : tensor<4xi32>
  %r0 = kiln.grouped_matmul %x, %w, %off : (tensor<5x3xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> tensor<5x2xf32>

  // The first and last experts empty (offsets [0, 0, 3, 5, 5], i64): their weights (all 9)
  // are never read.
  // CHECK-NEXT: result #1 : tensor<5x1xf32> = [2.5, -3.25, -3.25, -2.75, -2.25]
  %w4 = arith.constant dense<[[[9.0, 9.0, 9.0]], [[1.0, -1.0, 0.5]], [[-0.5, 2.0, 1.0]], [[9.0, 9.0, 9.0]]]> : tensor<4x1x3xf32>
  %off2 = arith.constant dense<[0, 0, 3, 5, 5]> : tensor<5xi64>
  %r1 = kiln.grouped_matmul %x, %w4, %off2 : (tensor<5x3xf32>, tensor<4x1x3xf32>, tensor<5xi64>) -> tensor<5x1xf32>

  // Every row on expert 0 (offsets [0, 5, 5, 5]).
  // CHECK-NEXT: result #2 : tensor<5x2xf32> = [-2, 1.25, 7.25, -1.625, 0.5, -1.625, 4.75, 1.8125, -2, 1.625]
  %off3 = arith.constant dense<[0, 5, 5, 5]> : tensor<4xi32>
  %r2 = kiln.grouped_matmul %x, %w, %off3 : (tensor<5x3xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> tensor<5x2xf32>

  // Offsets ending before the last row ([0, 1, 1, 3]): rows 3-4 are spare
  // receive capacity, not multiplied, zero in the result.
  // CHECK-NEXT: result #3 : tensor<5x2xf32> = [-2, 1.25, -4.4375, 0, -1.25, 5.25, 0, 0, 0, 0]
  %off4 = arith.constant dense<[0, 1, 1, 3]> : tensor<4xi32>
  %r3 = kiln.grouped_matmul %x, %w, %off4 : (tensor<5x3xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> tensor<5x2xf32>

  return %r0, %r1, %r2, %r3
      : tensor<5x2xf32>, tensor<5x1xf32>, tensor<5x2xf32>, tensor<5x2xf32>
}
