// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the FP8 ops (KilnPrecisionOps.cpp) and
// the ODS element-type constraints. Generic syntax where the custom format
// would reject the types before the verifier runs.

func.func @quantize_block_arity(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects block = [rows, cols] with both >= 1, got [128]}}
  %q, %s = kiln.quantize_fp8 %x {block = array<i64: 128>} : tensor<4x256xf32> -> tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
  return
}

// -----

func.func @quantize_block_zero(%x: tensor<4x256xf32>) {
  // expected-error @+1 {{expects block = [rows, cols] with both >= 1, got [0, 128]}}
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
