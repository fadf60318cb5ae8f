// RUN: kiln-opt %s --kiln-lower-fp8 -split-input-file -verify-diagnostics

// Only wide floats are quantized: an operand already in FP8 is an error.
func.func @already_fp8(%x: tensor<4x8xf8E4M3FN>, %w: tensor<8x8xf8E4M3FN>) -> tensor<4x8xf8E4M3FN> {
  // expected-error @+1 {{kiln-lower-fp8: operand of element type 'f8E4M3FN' cannot be quantized to FP8 (expected f32, bf16 or f16)}}
  %y = kiln.linear %x, %w {kiln.fp8} : (tensor<4x8xf8E4M3FN>, tensor<8x8xf8E4M3FN>) -> tensor<4x8xf8E4M3FN>
  return %y : tensor<4x8xf8E4M3FN>
}

// -----

// The expert GEMMs too; their offsets are not quantized.
func.func @expert_already_fp8(%x: tensor<4x8xf32>, %w: tensor<2x8x8xf8E4M3FN>, %o: tensor<3xi32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{kiln-lower-fp8: operand of element type 'f8E4M3FN' cannot be quantized to FP8 (expected f32, bf16 or f16)}}
  %y = kiln.grouped_matmul %x, %w, %o {kiln.fp8} : (tensor<4x8xf32>, tensor<2x8x8xf8E4M3FN>, tensor<3xi32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
