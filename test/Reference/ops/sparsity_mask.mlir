// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.sparsity_mask_2_4 by the schedule: before start_step all ones; at
// start_step and every mask_every steps after it the 2:4 mask of the weight
// (the two largest magnitudes of each group of 4 along a row, NaN largest,
// ties to the lower index); in between the mask it is given.
// Sparsity24Test.MaskUpdateFollowsTheSchedule checks the host kernel on the
// same weight.

func.func @main() -> (tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) {
  %w = arith.constant dense<[[1.0, -3.0, 2.0, 0.5, 0.0, 0.0, -1.0, 1.0],
                             [4.0, 4.0, 4.0, -4.0, 0x7FC00000, 9.0, -9.0, 1.0]]> : tensor<2x8xf32>
  %m = arith.constant dense<[[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
                             [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]]> : tensor<2x8xf32>
  %s4 = arith.constant dense<4> : tensor<i64>
  %s5 = arith.constant dense<5> : tensor<i64>
  %s7 = arith.constant dense<7> : tensor<i64>
  %s8 = arith.constant dense<8> : tensor<i64>
  // CHECK: result #0 : tensor<2x8xf32> = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
  %dense = kiln.sparsity_mask_2_4 %w, %m, %s4 {start_step = 5 : i64, mask_every = 3 : i64}
      : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<i64>) -> tensor<2x8xf32>
  // Row 0: -3 and 2 of the first group, -1 and 1 over the zeros of the
  // second. Row 1: four equal magnitudes keep the first two; NaN, then 9
  // (-9 ties with it and comes later).
  // CHECK-NEXT: result #1 : tensor<2x8xf32> = [0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0]
  %first = kiln.sparsity_mask_2_4 %w, %m, %s5 {start_step = 5 : i64, mask_every = 3 : i64}
      : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<i64>) -> tensor<2x8xf32>
  // CHECK-NEXT: result #2 : tensor<2x8xf32> = [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]
  %kept = kiln.sparsity_mask_2_4 %w, %m, %s7 {start_step = 5 : i64, mask_every = 3 : i64}
      : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<i64>) -> tensor<2x8xf32>
  // CHECK-NEXT: result #3 : tensor<2x8xf32> = [0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0]
  %again = kiln.sparsity_mask_2_4 %w, %m, %s8 {start_step = 5 : i64, mask_every = 3 : i64}
      : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<i64>) -> tensor<2x8xf32>
  return %dense, %first, %kept, %again : tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>
}
