// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.embedding: result[i..., h] = table[ids[i...], h] for ids of any rank.
// Expected values are table rows picked by hand-checked ids (exact).

func.func @main() -> (tensor<2x2x3xf32>, tensor<5x3xf32>, tensor<3xf32>, tensor<2x1x3x2xf32>) {
  // Rank-2 ids [2, 2] -> [2, 2, 3]: rows 4 and 0 (the table's last and first),
  // then row 2 twice.
  // CHECK: result #0 : tensor<2x2x3xf32> = [6, 0.25, -0.5, 0.5, -1.25, 2, -2.5, 1, 4.25, -2.5, 1, 4.25]
  %table = arith.constant dense<[[0.5, -1.25, 2.0], [3.5, 0.125, -0.75], [-2.5, 1.0, 4.25], [0.0, -3.0, 1.5], [6.0, 0.25, -0.5]]> : tensor<5x3xf32>
  %ids2 = arith.constant dense<[[4, 0], [2, 2]]> : tensor<2x2xi32>
  %r0 = kiln.embedding %table, %ids2 : (tensor<5x3xf32>, tensor<2x2xi32>) -> tensor<2x2x3xf32>

  // Rank-1 i64 ids [5] -> [5, 3].
  // CHECK-NEXT: result #1 : tensor<5x3xf32> = [0, -3, 1.5, 3.5, 0.125, -0.75, 6, 0.25, -0.5, 0.5, -1.25, 2, 0, -3, 1.5]
  %ids1 = arith.constant dense<[3, 1, 4, 0, 3]> : tensor<5xi64>
  %r1 = kiln.embedding %table, %ids1 : (tensor<5x3xf32>, tensor<5xi64>) -> tensor<5x3xf32>

  // A 0-d id -> one row [3].
  // CHECK-NEXT: result #2 : tensor<3xf32> = [-2.5, 1, 4.25]
  %ids0 = arith.constant dense<2> : tensor<i32>
  %r2 = kiln.embedding %table, %ids0 : (tensor<5x3xf32>, tensor<i32>) -> tensor<3xf32>

  // Rank-3 ids [2, 1, 3] into a [2, 2] table -> [2, 1, 3, 2].
  // CHECK-NEXT: result #3 : tensor<2x1x3x2xf32> = [0.75, 8, 1.5, -2, 0.75, 8, 1.5, -2, 1.5, -2, 0.75, 8]
  %table_b = arith.constant dense<[[1.5, -2.0], [0.75, 8.0]]> : tensor<2x2xf32>
  %ids3 = arith.constant dense<[[[1, 0, 1]], [[0, 0, 1]]]> : tensor<2x1x3xi32>
  %r3 = kiln.embedding %table_b, %ids3 : (tensor<2x2xf32>, tensor<2x1x3xi32>) -> tensor<2x1x3x2xf32>

  return %r0, %r1, %r2, %r3
      : tensor<2x2x3xf32>, tensor<5x3xf32>, tensor<3xf32>, tensor<2x1x3x2xf32>
}
