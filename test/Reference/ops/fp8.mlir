// RUN: kiln-run %s --entry main | FileCheck %s --check-prefix=IDEAL
// RUN: kiln-run %s --entry main --rounding=as-typed | FileCheck %s --check-prefix=TYPED
// kiln.quantize_fp8, kiln.dequantize_fp8 and kiln.scaled_matmul in both
// evaluator modes. The factor 448 / amax and the scale amax / 448 are f32 in
// both; ideal keeps x * factor exact, as-typed rounds it to e4m3.

func.func @main() -> (tensor<2x4xf8E4M3FN>, tensor<2x1xf32>, tensor<2x4xf32>,
                      tensor<2x2xf32>, tensor<2x3xbf16>) {
  // Row 0: amax 448, factor 1: the plain e4m3 encoding. 1.0625 is the tie
  // between 1 and 1.125 (to even: 1), -3.375 the tie between -3.25 and -3.5
  // (to even: -3.5). Row 1: amax 2, factor 224 (exact); 0.001 * 224 falls
  // between e4m3's 0.21875 and 0.234375.
  %x = arith.constant dense<[[448.0, 1.0625, -3.375, 0.0], [0.5, -1.0, 2.0, 0.001]]> : tensor<2x4xf32>
  // IDEAL: result #0 : tensor<2x4xf8E4M3FN> = [448, 1.0625, -3.375, 0, 112, -224, 448, 0.22400001063942909]
  // TYPED: result #0 : tensor<2x4xf8E4M3FN> = [448, 1, -3.5, 0, 112, -224, 448, 0.21875]
  // IDEAL-NEXT: result #1 : tensor<2x1xf32> = [1, 0.0044642859138548374]
  // TYPED-NEXT: result #1 : tensor<2x1xf32> = [1, 0.0044642859138548374]
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>}
      : tensor<2x4xf32> -> tensor<2x4xf8E4M3FN>, tensor<2x1xf32>

  // Back to f32: each value times its row's scale. The f32 scale of row 1
  // is a little above 1 / 224; as-typed, 112 * scale = 0.5000000223... is
  // nearer 0.5 than its f32 neighbour 0.5 + 2^-24.
  // IDEAL-NEXT: result #2 : tensor<2x4xf32> = [448, 1.0625, -3.375, 0, 0.50000002235174179, -1.0000000447034836, 2.0000000894069672, 0.001000000092200937]
  // TYPED-NEXT: result #2 : tensor<2x4xf32> = [448, 1, -3.5, 0, 0.5, -1, 2, 0.0009765625]
  %back = kiln.dequantize_fp8 %q, %s {block = array<i64: 1, 128>}
      : tensor<2x4xf8E4M3FN>, tensor<2x1xf32> -> tensor<2x4xf32>

  // Two K blocks of 128 with their own scales: lhs and rhs all ones, so
  // result[m, n] = 128 * (ls[m, 0] * rs[0, n]) + 128 * (ls[m, 1] * rs[1, n]).
  %ones_a = arith.constant dense<1.0> : tensor<2x256xf8E4M3FN>
  %ones_b = arith.constant dense<1.0> : tensor<256x2xf8E4M3FN>
  %ls = arith.constant dense<[[1.0, 2.0], [0.5, 0.25]]> : tensor<2x2xf32>
  %rs = arith.constant dense<[[1.0, 3.0], [4.0, 0.5]]> : tensor<2x2xf32>
  // [128 * 1 * 1 + 128 * 2 * 4, 128 * 1 * 3 + 128 * 2 * 0.5, ...]
  // IDEAL-NEXT: result #3 : tensor<2x2xf32> = [1152, 512, 192, 208]
  // TYPED-NEXT: result #3 : tensor<2x2xf32> = [1152, 512, 192, 208]
  %blocks = kiln.scaled_matmul %ones_a, %ls, %ones_b, %rs
      {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 1>}
      : (tensor<2x256xf8E4M3FN>, tensor<2x2xf32>, tensor<256x2xf8E4M3FN>, tensor<2x2xf32>) -> tensor<2x2xf32>

  // Transposes, one partial K block (K = 2): lhs^T [2, 2] is [K, M] with a
  // scale per m ([128, 1] tiles), rhs^T [3, 2] is [N, K] with a scale per n;
  // the bf16 result rounds 1.0087890625 to 1.0078125 (bf16's step is 2^-7).
  %lt = arith.constant dense<[[1.0, 0.5], [0.75, 2.0]]> : tensor<2x2xf8E4M3FN>
  %rt = arith.constant dense<[[1.0, 0.01171875], [2.0, 0.0], [-1.0, 1.0]]> : tensor<3x2xf8E4M3FN>
  %lts = arith.constant dense<[[1.0, 2.0]]> : tensor<1x2xf32>
  %rts = arith.constant dense<[[1.0], [1.0], [0.5]]> : tensor<3x1xf32>
  // result[m, n] = sum_k lt[k, m] * rt[n, k] * ls(m) * rs(n):
  // m = 0: [1 + 0.75 * 0.01171875, 2, (-1 + 0.75) * 0.5]
  // m = 1: [0.5 + 2 * 0.01171875, 1, (-0.5 + 2) * 0.5] * 2
  // IDEAL-NEXT: result #4 : tensor<2x3xbf16> = [1.0087890625, 2, -0.125, 1.046875, 2, 1.5]
  // TYPED-NEXT: result #4 : tensor<2x3xbf16> = [1.0078125, 2, -0.125, 1.046875, 2, 1.5]
  %small = kiln.scaled_matmul %lt, %lts, %rt, %rts
      {lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 1, 128>,
       transpose_lhs = true, transpose_rhs = true}
      : (tensor<2x2xf8E4M3FN>, tensor<1x2xf32>, tensor<3x2xf8E4M3FN>, tensor<3x1xf32>) -> tensor<2x3xbf16>
  return %q, %s, %back, %blocks, %small
      : tensor<2x4xf8E4M3FN>, tensor<2x1xf32>, tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x3xbf16>
}
