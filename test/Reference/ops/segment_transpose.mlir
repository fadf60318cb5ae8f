// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.expert_counts splits dispatch offsets by expert-parallel rank, and
// kiln.segment_transpose reorders rows held as (source, expert) segments
// into (expert, source) order and back.

func.func @main() -> (tensor<2x2xi32>, tensor<2xi32>, tensor<8x1xf32>, tensor<3xi32>,
                      tensor<8x1xf32>, tensor<3xi32>) {
  // 4 experts over 2 ranks: experts 0-1 on rank 0, 2-3 on rank 1.
  // offsets [0, 2, 2, 5, 6]: expert rows 2, 0, 3, 1.
  // CHECK: result #0 : tensor<2x2xi32> = [2, 0, 3, 1]
  // CHECK-NEXT: result #1 : tensor<2xi32> = [2, 4]
  %offsets = arith.constant dense<[0, 2, 2, 5, 6]> : tensor<5xi32>
  %per_expert, %per_rank = kiln.expert_counts %offsets {groups = 2 : i64}
      : (tensor<5xi32>) -> (tensor<2x2xi32>, tensor<2xi32>)

  // Received from 2 sources, 2 local experts: counts [[1, 2], [3, 0]] (6 rows
  // in a buffer of 8). Source-major rows: s0e0 = 1; s0e1 = 2, 3; s1e0 = 4, 5, 6.
  // Expert-major: e0 = 1, 4, 5, 6; e1 = 2, 3; the 2 spare rows are zero.
  // CHECK-NEXT: result #2 : tensor<8x1xf32> = [1, 4, 5, 6, 2, 3, 0, 0]
  // CHECK-NEXT: result #3 : tensor<3xi32> = [0, 4, 6]
  %counts = arith.constant dense<[[1, 2], [3, 0]]> : tensor<2x2xi32>
  %rows = arith.constant dense<[[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [9.0], [9.0]]> : tensor<8x1xf32>
  %sorted, %by_expert = kiln.segment_transpose %rows, %counts
      : (tensor<8x1xf32>, tensor<2x2xi32>) -> (tensor<8x1xf32>, tensor<3xi32>)
  // The inverse restores source-major order; the offsets are per source.
  // CHECK-NEXT: result #4 : tensor<8x1xf32> = [1, 2, 3, 4, 5, 6, 0, 0]
  // CHECK-NEXT: result #5 : tensor<3xi32> = [0, 3, 6]
  %back, %by_source = kiln.segment_transpose %sorted, %counts {inverse = true}
      : (tensor<8x1xf32>, tensor<2x2xi32>) -> (tensor<8x1xf32>, tensor<3xi32>)
  return %per_expert, %per_rank, %sorted, %by_expert, %back, %by_source
      : tensor<2x2xi32>, tensor<2xi32>, tensor<8x1xf32>, tensor<3xi32>, tensor<8x1xf32>, tensor<3xi32>
}
