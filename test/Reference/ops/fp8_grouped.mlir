// RUN: kiln-run %s --entry main | FileCheck %s
// RUN: kiln-run %s --entry main --rounding=as-typed | FileCheck %s
// The FP8 forms of the expert GEMMs: kiln.quantize_fp8 with a batched
// [1, rows, cols] block, kiln.quantize_fp8_grouped, kiln.scaled_grouped_matmul
// (Fprop and Dgrad) and kiln.scaled_grouped_matmul_wgrad. Every value below
// is exact in e4m3 and f32, so both evaluator modes print the same.

func.func @main() -> (tensor<2x2x2xf8E4M3FN>, tensor<2x1x1xf32>,
                      tensor<6x2xf8E4M3FN>, tensor<5x2xf32>,
                      tensor<4x1xf32>, tensor<4x2xf32>, tensor<2x1x1xf32>) {
  // Each expert's [2, 2] matrix has its own scale: amax 448 (factor 1) and
  // amax 2 (factor 224, scale 2 / 448 in f32).
  %w = arith.constant dense<[[[448.0, 1.0], [-2.0, 0.5]], [[2.0, 1.0], [-0.5, 0.25]]]> : tensor<2x2x2xf32>
  // CHECK: result #0 : tensor<2x2x2xf8E4M3FN> = [448, 1, -2, 0.5, 448, 224, -112, 56]
  // CHECK-NEXT: result #1 : tensor<2x1x1xf32> = [1, 0.0044642859138548374]
  %wq, %ws = kiln.quantize_fp8 %w {block = array<i64: 1, 128, 128>}
      : tensor<2x2x2xf32> -> tensor<2x2x2xf8E4M3FN>, tensor<2x1x1xf32>

  // Six rows over two experts (rows 0-2 and 3-4; row 5 is capacity) in
  // [2, 1] tiles that restart at each expert: expert 0's tiles are rows
  // {0, 1} and {2} at scale rows 0 and 1, expert 1's rows {3, 4} at scale
  // row 3 / 2 + 1 = 2; scale rows 3 and 4 (6 / 2 + 2 = 5 in all) are unused
  // and 0, row 5 quantizes to 0.
  %x = arith.constant dense<[[448.0, 1.0], [224.0, 2.0], [1.0, -4.0], [2.0, 0.5], [-1.0, 0.25], [7.0, 7.0]]> : tensor<6x2xf32>
  %offsets = arith.constant dense<[0, 3, 5]> : tensor<3xi32>
  // CHECK-NEXT: result #2 : tensor<6x2xf8E4M3FN> = [448, 224, 224, 448, 448, -448, 448, 448, -224, 224, 0, 0]
  // CHECK-NEXT: result #3 : tensor<5x2xf32> = [1, 0.0044642859138548374, 0.0022321429569274187, 0.0089285718277096748, 0.0044642859138548374, 0.0011160714784637094, 0, 0, 0, 0]
  %xq, %xs = kiln.quantize_fp8_grouped %x, %offsets {block = array<i64: 2, 1>}
      : tensor<6x2xf32>, tensor<3xi32> -> tensor<6x2xf8E4M3FN>, tensor<5x2xf32>

  // Fprop over rows 0-1 (expert 0) and 2 (expert 1); row 3 is capacity:
  // [(1 + 2) * 1 * 1, (3 + 4) * 0.5 * 1, (2 - 1) * 2 * 0.25, 0].
  %lhs = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [1.0, 1.0], [5.0, 5.0]]> : tensor<4x2xf8E4M3FN>
  %ls = arith.constant dense<[[1.0], [0.5], [2.0], [1.0]]> : tensor<4x1xf32>
  %fw = arith.constant dense<[[[1.0, 1.0]], [[2.0, -1.0]]]> : tensor<2x1x2xf8E4M3FN>
  %fs = arith.constant dense<[[[1.0]], [[0.25]]]> : tensor<2x1x1xf32>
  %groups = arith.constant dense<[0, 2, 3]> : tensor<3xi32>
  // CHECK-NEXT: result #4 : tensor<4x1xf32> = [3, 3.5, 0.5, 0]
  %y = kiln.scaled_grouped_matmul %lhs, %ls, %fw, %fs, %groups {transpose_rhs = true}
      : (tensor<4x2xf8E4M3FN>, tensor<4x1xf32>, tensor<2x1x2xf8E4M3FN>, tensor<2x1x1xf32>, tensor<3xi32>) -> tensor<4x1xf32>

  // Dgrad reads each expert's weights as [K, N]: expert 0's is the
  // identity, expert 1's [[1, 1], [2, 3]]; row 2 = [1 + 2, 1 + 3] * 2 * 0.25.
  %dw = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [2.0, 3.0]]]> : tensor<2x2x2xf8E4M3FN>
  // CHECK-NEXT: result #5 : tensor<4x2xf32> = [1, 2, 1.5, 2, 1.5, 2, 0, 0]
  %dx = kiln.scaled_grouped_matmul %lhs, %ls, %dw, %fs, %groups
      : (tensor<4x2xf8E4M3FN>, tensor<4x1xf32>, tensor<2x2x2xf8E4M3FN>, tensor<2x1x1xf32>, tensor<3xi32>) -> tensor<4x2xf32>

  // Wgrad over experts of rows 0-2 and 3-4, one 128-row block each at scale
  // rows 0 and 3 / 128 + 1 = 1: [(1 + 2 + 3) * 1 * 2, (4 * 2 + 5 * 2) * 0.5 * 1].
  %gdy = arith.constant dense<[[1.0], [2.0], [3.0], [4.0], [5.0]]> : tensor<5x1xf8E4M3FN>
  %gdys = arith.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %gx = arith.constant dense<[[1.0], [1.0], [1.0], [2.0], [2.0]]> : tensor<5x1xf8E4M3FN>
  %gxs = arith.constant dense<[[2.0], [1.0]]> : tensor<2x1xf32>
  %wgrad_offsets = arith.constant dense<[0, 3, 5]> : tensor<3xi32>
  // CHECK-NEXT: result #6 : tensor<2x1x1xf32> = [12, 9]
  %gw = kiln.scaled_grouped_matmul_wgrad %gdy, %gdys, %gx, %gxs, %wgrad_offsets
      : (tensor<5x1xf8E4M3FN>, tensor<2x1xf32>, tensor<5x1xf8E4M3FN>, tensor<2x1xf32>, tensor<3xi32>) -> tensor<2x1x1xf32>

  return %wq, %ws, %xq, %xs, %y, %dx, %gw
      : tensor<2x2x2xf8E4M3FN>, tensor<2x1x1xf32>, tensor<6x2xf8E4M3FN>, tensor<5x2xf32>,
        tensor<4x1xf32>, tensor<4x2xf32>, tensor<2x1x1xf32>
}
