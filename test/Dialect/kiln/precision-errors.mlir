// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the FP8 ops (KilnPrecisionOps.cpp) and
// the ODS element-type constraints. Generic syntax where the custom format
// would reject the types before the verifier runs.

func.func @quantize_block_arity(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects block = [rows, cols] with both >= 1, or [1, rows, cols] to tile each matrix of a rank-3 tensor alone, got [128] for a tensor [4, 256]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 128>} : tensor<4x256xf32> -> tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_block_zero(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects block = [rows, cols] with both >= 1, or [1, rows, cols] to tile each matrix of a rank-3 tensor alone, got [0, 128]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 0, 128>} : tensor<4x256xf32> -> tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_scales_shape(%x: tensor<4x300xf32>) {
  // A partial last tile still has a scale: ceil(300 / 128) = 3.
  // expected-error @+1 {{expects scales of shape [4, 3], got [4, 2]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>} : tensor<4x300xf32> -> tensor<4x300xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_values_shape(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects values of shape [4, 256], got [4, 128]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>} : tensor<4x256xf32> -> tensor<4x128xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_from_fp8(%x: tensor<4x256xf8E4M3FN>) {
  // expected-error @+1 {{expects x of element type f32, bf16 or f16, got 'f8E4M3FN'}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>} : tensor<4x256xf8E4M3FN> -> tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_scalar(%x: tensor<f32>) {
  // expected-error @+1 {{expects a tensor of rank >= 1 to quantize, got a 0-d tensor}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>} : tensor<f32> -> tensor<f8E4M3FN>, tensor<1x1xf32>
  return
}

// -----

func.func @quantize_to_e5m2(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{result #0 must be statically shaped tensor of f8E4M3FN type values, but got 'tensor<4x256xf8E5M2>'}}
  %q, %s = "kiln.quantize_fp8"(%x) {block = array<i64: 1, 128>} : (tensor<4x256xf32>) -> (tensor<4x256xf8E5M2>, tensor<4x2xf32>)
  return
}

// -----

func.func @quantize_bf16_scales(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{result #1 must be statically shaped tensor of 32-bit float values, but got 'tensor<4x2xbf16>'}}
  %q, %s = "kiln.quantize_fp8"(%x) {block = array<i64: 1, 128>} : (tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xbf16>)
  return
}

// -----

func.func @dequantize_result_type(%q: tensor<4x256xf8E4M3FN>, %s: tensor<4x2xf32>) {
  // expected-error @+1 {{expects result of element type f32, bf16 or f16, got 'f8E4M3FN'}}
  %x = kiln.dequantize_fp8 %q, %s {block = array<i64: 1, 128>} : tensor<4x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<4x256xf8E4M3FN>
  return
}

// -----

func.func @dequantize_result_shape(%q: tensor<4x256xf8E4M3FN>, %s: tensor<4x2xf32>) {
  // expected-error @+1 {{expects result of shape [4, 256], got [4, 128]}}
  %x = kiln.dequantize_fp8 %q, %s {block = array<i64: 1, 128>} : tensor<4x256xf8E4M3FN>, tensor<4x2xf32> -> tensor<4x128xf32>
  return
}

// -----

func.func @dequantize_scales_shape(%q: tensor<256x256xf8E4M3FN>, %s: tensor<256x2xf32>) {
  // expected-error @+1 {{expects scales of shape [2, 2], got [256, 2]}}
  %x = kiln.dequantize_fp8 %q, %s {block = array<i64: 128, 128>} : tensor<256x256xf8E4M3FN>, tensor<256x2xf32> -> tensor<256x256xf32>
  return
}

// -----

func.func @scaled_rank(%a: tensor<2x4x256xf8E4M3FN>, %as: tensor<8x2xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // expected-error @+1 {{expects lhs of rank 2, got rank 3 (shape [2, 4, 256])}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<2x4x256xf8E4M3FN>, tensor<8x2xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<8x256xf32>
  return
}

// -----

func.func @scaled_contracted(%a: tensor<4x256xf8E4M3FN>, %as: tensor<4x2xf32>, %b: tensor<384x256xf8E4M3FN>, %bs: tensor<3x2xf32>) {
  // rhs not transposed is [K, N]: K = 384 against lhs's 256.
  // expected-error @+1 {{expects the contracted dimensions to match, got lhs [4, 256] (K = 256) and rhs [384, 256] (K = 384)}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<384x256xf8E4M3FN>, tensor<3x2xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @scaled_k_tile(%a: tensor<256x256xf8E4M3FN>, %as: tensor<2x256xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // [128, 1] tiles of an untransposed lhs change scale every element of K.
  // expected-error @+1 {{expects lhs_block to span 128 along the contracted dimension (dimension 1), so that its scales are constant over each K block, got [128, 1]}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 128>}
      : (tensor<256x256xf8E4M3FN>, tensor<2x256xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<256x256xf32>
  return
}

// -----

func.func @scaled_rhs_k_tile(%a: tensor<4x256xf8E4M3FN>, %as: tensor<4x2xf32>, %b: tensor<512x256xf8E4M3FN>, %bs: tensor<4x256xf32>) {
  // A transposed rhs is [N, K]: its tiles must span 128 along dimension 1.
  // expected-error @+1 {{expects rhs_block to span 128 along the contracted dimension (dimension 1), so that its scales are constant over each K block, got [128, 1]}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 1>, transpose_rhs = true}
      : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<512x256xf8E4M3FN>, tensor<4x256xf32>) -> tensor<4x512xf32>
  return
}

// -----

func.func @scaled_lhs_scales(%a: tensor<4x256xf8E4M3FN>, %as: tensor<4x1xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // expected-error @+1 {{expects lhs_scales of shape [4, 2], got [4, 1]}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<4x256xf8E4M3FN>, tensor<4x1xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @scaled_result_shape(%a: tensor<4x256xf8E4M3FN>, %as: tensor<4x2xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // expected-error @+1 {{expects result of shape [4, 256], got [256, 4]}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<256x4xf32>
  return
}

// -----

func.func @scaled_result_type(%a: tensor<4x256xf8E4M3FN>, %as: tensor<4x2xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // expected-error @+1 {{expects result of element type f32, bf16 or f16, got 'f8E4M3FN'}}
  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<4x256xf8E4M3FN>
  return
}

// -----

func.func @scaled_bf16_operand(%a: tensor<4x256xbf16>, %as: tensor<4x2xf32>, %b: tensor<256x256xf8E4M3FN>, %bs: tensor<2x2xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor of f8E4M3FN type values, but got 'tensor<4x256xbf16>'}}
  %y = "kiln.scaled_matmul"(%a, %as, %b, %bs) {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<4x256xbf16>, tensor<4x2xf32>, tensor<256x256xf8E4M3FN>, tensor<2x2xf32>) -> tensor<4x256xf32>
  return
}

// -----

func.func @quantize_batched_block_on_a_matrix(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects block = [rows, cols] with both >= 1, or [1, rows, cols] to tile each matrix of a rank-3 tensor alone, got [1, 128, 128] for a tensor [4, 256]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128, 128>} : tensor<4x256xf32> -> tensor<4x256xf8E4M3FN>, tensor<1x4x2xf32>
  return
}

// -----

func.func @quantize_batched_block_spanning_matrices(%w: tensor<2x8x256xf32>) {
  // expected-error @+1 {{got [2, 128, 128] for a tensor [2, 8, 256]}}
  %q, %s = kiln.quantize_fp8 %w {block = array<i64: 2, 128, 128>} : tensor<2x8x256xf32> -> tensor<2x8x256xf8E4M3FN>, tensor<1x1x2xf32>
  return
}

// -----

func.func @quantize_batched_scales_per_matrix(%w: tensor<2x8x256xf32>) {
  // expected-error @+1 {{expects scales of shape [2, 1, 2], got [1, 2]}}
  %q, %s = kiln.quantize_fp8 %w {block = array<i64: 1, 128, 128>} : tensor<2x8x256xf32> -> tensor<2x8x256xf8E4M3FN>, tensor<1x2xf32>
  return
}

// -----

func.func @grouped_quantize_scale_rows(%x: tensor<300x4xf32>, %o: tensor<3xi32>) {
  // 300 / 128 rounded down, plus 2 experts: 4 scale rows.
  // expected-error @+1 {{expects scales of shape [4, 4], got [3, 4]}}
  %q, %s = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>} : tensor<300x4xf32>, tensor<3xi32> -> tensor<300x4xf8E4M3FN>, tensor<3x4xf32>
  return
}

// -----

func.func @grouped_quantize_offsets_type(%x: tensor<300x4xf32>, %o: tensor<3xi64>) {
  // expected-error @+1 {{expects offsets of element type i32, got 'i64'}}
  %q, %s = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>} : tensor<300x4xf32>, tensor<3xi64> -> tensor<300x4xf8E4M3FN>, tensor<4x4xf32>
  return
}

// -----

func.func @grouped_quantize_no_expert(%x: tensor<300x4xf32>, %o: tensor<1xi32>) {
  // expected-error @+1 {{expects offsets [experts + 1] with at least one expert, got [1]}}
  %q, %s = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>} : tensor<300x4xf32>, tensor<1xi32> -> tensor<300x4xf8E4M3FN>, tensor<2x4xf32>
  return
}

// -----

func.func @grouped_quantize_rank(%x: tensor<2x150x4xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects x ([rows, C], sorted by expert) of rank 2}}
  %q, %s = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>} : tensor<2x150x4xf32>, tensor<3xi32> -> tensor<2x150x4xf8E4M3FN>, tensor<4x4xf32>
  return
}

// -----

func.func @grouped_gemm_contraction(%a: tensor<16x200xf8E4M3FN>, %as: tensor<16x2xf32>, %w: tensor<2x64x200xf8E4M3FN>, %ws: tensor<2x1x2xf32>, %o: tensor<3xi32>) {
  // Dgrad reads W [E, K, N]: dimension 1 (64) is contracted, not 200.
  // expected-error @+1 {{expects the contracted dimensions to match, got lhs [16, 200] (K = 200) and rhs [2, 64, 200] (K = 64, dimension 1 with transpose_rhs = false)}}
  %y = kiln.scaled_grouped_matmul %a, %as, %w, %ws, %o : (tensor<16x200xf8E4M3FN>, tensor<16x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<16x200xf32>
  return
}

// -----

func.func @grouped_gemm_row_scales(%a: tensor<16x200xf8E4M3FN>, %as: tensor<1x2xf32>, %w: tensor<2x64x200xf8E4M3FN>, %ws: tensor<2x1x2xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects lhs_scales (one per row and K block) of shape [16, 2], got [1, 2]}}
  %y = kiln.scaled_grouped_matmul %a, %as, %w, %ws, %o {transpose_rhs = true} : (tensor<16x200xf8E4M3FN>, tensor<1x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @grouped_gemm_weight_scales(%a: tensor<16x200xf8E4M3FN>, %as: tensor<16x2xf32>, %w: tensor<2x64x200xf8E4M3FN>, %ws: tensor<1x2xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects rhs_scales (one per expert and 128x128 block) of shape [2, 1, 2], got [1, 2]}}
  %y = kiln.scaled_grouped_matmul %a, %as, %w, %ws, %o {transpose_rhs = true} : (tensor<16x200xf8E4M3FN>, tensor<16x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<1x2xf32>, tensor<3xi32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @grouped_gemm_offsets(%a: tensor<16x200xf8E4M3FN>, %as: tensor<16x2xf32>, %w: tensor<2x64x200xf8E4M3FN>, %ws: tensor<2x1x2xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects offsets ([experts + 1]) of shape [3], got [4]}}
  %y = kiln.scaled_grouped_matmul %a, %as, %w, %ws, %o {transpose_rhs = true} : (tensor<16x200xf8E4M3FN>, tensor<16x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<4xi32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @grouped_gemm_result(%a: tensor<16x200xf8E4M3FN>, %as: tensor<16x2xf32>, %w: tensor<2x64x200xf8E4M3FN>, %ws: tensor<2x1x2xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects result of shape [16, 64], got [16, 200]}}
  %y = kiln.scaled_grouped_matmul %a, %as, %w, %ws, %o {transpose_rhs = true} : (tensor<16x200xf8E4M3FN>, tensor<16x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<16x200xf32>
  return
}

// -----

func.func @grouped_wgrad_rows(%dy: tensor<16x64xf8E4M3FN>, %dys: tensor<2x64xf32>, %x: tensor<8x200xf8E4M3FN>, %xs: tensor<2x200xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects dy and x to have the same rows, got [16, 64] and [8, 200]}}
  %dw = kiln.scaled_grouped_matmul_wgrad %dy, %dys, %x, %xs, %o : (tensor<16x64xf8E4M3FN>, tensor<2x64xf32>, tensor<8x200xf8E4M3FN>, tensor<2x200xf32>, tensor<3xi32>) -> tensor<2x64x200xf32>
  return
}

// -----

func.func @grouped_wgrad_scales(%dy: tensor<16x64xf8E4M3FN>, %dys: tensor<1x64xf32>, %x: tensor<16x200xf8E4M3FN>, %xs: tensor<2x200xf32>, %o: tensor<3xi32>) {
  // 16 / 128 rounded down, plus 2 experts.
  // expected-error @+1 {{expects dy_scales (grouped [128, 1] tiles) of shape [2, 64], got [1, 64]}}
  %dw = kiln.scaled_grouped_matmul_wgrad %dy, %dys, %x, %xs, %o : (tensor<16x64xf8E4M3FN>, tensor<1x64xf32>, tensor<16x200xf8E4M3FN>, tensor<2x200xf32>, tensor<3xi32>) -> tensor<2x64x200xf32>
  return
}

// -----

func.func @grouped_wgrad_result(%dy: tensor<16x64xf8E4M3FN>, %dys: tensor<2x64xf32>, %x: tensor<16x200xf8E4M3FN>, %xs: tensor<2x200xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects result of shape [2, 64, 200], got [64, 200]}}
  %dw = kiln.scaled_grouped_matmul_wgrad %dy, %dys, %x, %xs, %o : (tensor<16x64xf8E4M3FN>, tensor<2x64xf32>, tensor<16x200xf8E4M3FN>, tensor<2x200xf32>, tensor<3xi32>) -> tensor<64x200xf32>
  return
}
