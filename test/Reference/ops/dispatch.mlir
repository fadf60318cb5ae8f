// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.dispatch: the tokens*top_k (token, slot) pairs, stably sorted by expert:
// rows[r] = x[source[r] / top_k], offsets[e] = number of pairs routed to experts < e,
// source[r] = t * top_k + j of the r-th pair.

func.func @main() -> (tensor<8x2xf32>, tensor<6xi32>, tensor<8xi32>, tensor<3x3xf32>, tensor<3xi64>, tensor<3xi64>) {
  // 4 tokens, top_k 2, num_experts 5 (experts 1 and 4 get nothing). Pairs t*2+j by expert:
  // expert 0 <- pairs 1 (t0), 2 (t1), 6 (t3); expert 2 <- 0 (t0), 5 (t2), 7 (t3); expert 3 <- 3 (t1), 4 (t2).
  // offsets = [0, 3, 3, 6, 8, 8], source = [1, 2, 6, 0, 5, 7, 3, 4], rows = x[source / 2].
  // CHECK: result #0 : tensor<8x2xf32> = [1, -0.5, 2, 0.25, 0.75, -2, 1, -0.5, -3, 1.5, 0.75, -2, 2, 0.25, -3, 1.5]
  // CHECK-NEXT: result #1 : tensor<6xi32> = [0, 3, 3, 6, 8, 8]
  // CHECK-NEXT: result #2 : tensor<8xi32> = [1, 2, 6, 0, 5, 7, 3, 4]
  %x = arith.constant dense<[[1.0, -0.5], [2.0, 0.25], [-3.0, 1.5], [0.75, -2.0]]> : tensor<4x2xf32>
  %idx = arith.constant dense<[[2, 0], [0, 3], [3, 2], [0, 2]]> : tensor<4x2xi32>
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 5 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<6xi32>, tensor<8xi32>)

  // top_k 1, i64 indices and outputs: tokens 0 and 2 go to expert 1 in token order.
  // CHECK-NEXT: result #3 : tensor<3x3xf32> = [0, 4, 0.5, 1.5, 2.5, -1, -2, 0.125, 3]
  // CHECK-NEXT: result #4 : tensor<3xi64> = [0, 1, 3]
  // CHECK-NEXT: result #5 : tensor<3xi64> = [1, 0, 2]
  %x1 = arith.constant dense<[[1.5, 2.5, -1.0], [0.0, 4.0, 0.5], [-2.0, 0.125, 3.0]]> : tensor<3x3xf32>
  %idx1 = arith.constant dense<[[1], [0], [1]]> : tensor<3x1xi64>
  %rows1, %offsets1, %source1 = kiln.dispatch %x1, %idx1 {num_experts = 2 : i64}
      : (tensor<3x3xf32>, tensor<3x1xi64>) -> (tensor<3x3xf32>, tensor<3xi64>, tensor<3xi64>)

  return %rows, %offsets, %source, %rows1, %offsets1, %source1
      : tensor<8x2xf32>, tensor<6xi32>, tensor<8xi32>, tensor<3x3xf32>, tensor<3xi64>, tensor<3xi64>
}
