// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.combine: result[t, h] = sum over rows r with source[r] / top_k == t of
// weights[t, source[r] % top_k] * rows[r, h]. Dyadic values: exact.

func.func @main() -> (tensor<3x2xf32>, tensor<2x3xf32>, tensor<3x2xf32>) {
  // 3 tokens, top_k 2: row r adds weights[t, j] * rows[r] to token t, with t*2+j = source[r].
  // source = [3, 0, 5, 2, 1, 4]: token 0 <- rows 1 (slot 0) and 4 (slot 1), token 1 <- rows 3
  // (slot 0) and 0 (slot 1), token 2 <- rows 5 (slot 0) and 2 (slot 1).
  // CHECK: result #0 : tensor<3x2xf32> = [0.875, 2.875, 3, -2.5, -1.3125, 2.96875]
  %rows = arith.constant dense<[[1.0, -2.0], [0.5, 4.0], [-1.5, 0.25], [3.0, 1.0], [2.0, -0.5], [-0.75, 1.5]]> : tensor<6x2xf32>
  %w = arith.constant dense<[[0.75, 0.25], [0.5, 1.5], [2.0, -0.125]]> : tensor<3x2xf32>
  %source = arith.constant dense<[3, 0, 5, 2, 1, 4]> : tensor<6xi32>
  %r0 = kiln.combine %rows, %w, %source : (tensor<6x2xf32>, tensor<3x2xf32>, tensor<6xi32>) -> tensor<3x2xf32>

  // top_k 1, i64 source, a negative weight.
  // CHECK-NEXT: result #1 : tensor<2x3xf32> = [-2, 0.25, 0.125, -2, -4, -6]
  %rows1 = arith.constant dense<[[1.0, 2.0, 3.0], [-4.0, 0.5, 0.25]]> : tensor<2x3xf32>
  %w1 = arith.constant dense<[[0.5], [-2.0]]> : tensor<2x1xf32>
  %source1 = arith.constant dense<[1, 0]> : tensor<2xi64>
  %r1 = kiln.combine %rows1, %w1, %source1 : (tensor<2x3xf32>, tensor<2x1xf32>, tensor<2xi64>) -> tensor<2x3xf32>

  // The inverse of kiln.dispatch: combining dispatch's own rows and source gives
  // (sum_j weights[t, j]) * x[t].
  // CHECK-NEXT: result #2 : tensor<3x2xf32> = [0.75, -0.375, 0.5, 0.0625, -6.375, 3.1875]
  %xd = arith.constant dense<[[1.0, -0.5], [2.0, 0.25], [-3.0, 1.5]]> : tensor<3x2xf32>
  %idxd = arith.constant dense<[[2, 0], [1, 2], [0, 1]]> : tensor<3x2xi32>
  %wd = arith.constant dense<[[0.5, 0.25], [1.0, -0.75], [0.125, 2.0]]> : tensor<3x2xf32>
  %drows, %doff, %dsrc = kiln.dispatch %xd, %idxd {num_experts = 3 : i64}
      : (tensor<3x2xf32>, tensor<3x2xi32>) -> (tensor<6x2xf32>, tensor<4xi32>, tensor<6xi32>)
  %r2 = kiln.combine %drows, %wd, %dsrc : (tensor<6x2xf32>, tensor<3x2xf32>, tensor<6xi32>) -> tensor<3x2xf32>

  return %r0, %r1, %r2
      : tensor<3x2xf32>, tensor<2x3xf32>, tensor<3x2xf32>
}
