// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the kiln dialect (dialects/kiln/*.cpp),
// plus the ODS type constraints that matter. The verifier cases use the
// generic op syntax: the custom assembly formats reject ill-typed operands
// before the verifier runs.

//===----------------------------------------------------------------------===//
// ODS constraints
//===----------------------------------------------------------------------===//

func.func @dynamic_shape_rejected(%x: tensor<?x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor of floating-point values, but got 'tensor<?x64xf32>'}}
  %0 = "kiln.linear"(%x, %w) : (tensor<?x64xf32>, tensor<128x64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @dynamic_result_rejected(%x: tensor<4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{result #0 must be statically shaped tensor of floating-point values, but got 'tensor<4x?xf32>'}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xf32>, tensor<128x64xf32>) -> tensor<4x?xf32>
  return
}

// -----

func.func @unranked_rejected(%x: tensor<*xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor of floating-point values, but got 'tensor<*xf32>'}}
  %0 = "kiln.silu"(%x) : (tensor<*xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @integer_where_float_required(%x: tensor<4x64xi32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor of floating-point values, but got 'tensor<4x64xi32>'}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xi32>, tensor<128x64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @float_where_integer_required(%table: tensor<256x64xf32>, %ids: tensor<4x32xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<4x32xf32>'}}
  %0 = "kiln.embedding"(%table, %ids) : (tensor<256x64xf32>, tensor<4x32xf32>) -> tensor<4x32x64xf32>
  return
}

// -----

func.func @i16_ids_rejected(%table: tensor<256x64xf32>, %ids: tensor<4x32xi16>) {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<4x32xi16>'}}
  %0 = "kiln.embedding"(%table, %ids) : (tensor<256x64xf32>, tensor<4x32xi16>) -> tensor<4x32x64xf32>
  return
}

// -----

func.func @float_offsets_rejected(%x: tensor<256x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xf32>) {
  // expected-error @+1 {{operand #2 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<9xf32>'}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xf32>) -> tensor<256x32xf32>
  return
}

// -----

func.func @loss_not_scalar(%logits: tensor<4x32x256xf32>, %t: tensor<4x32xi32>, %m: tensor<4x32xf32>) {
  // expected-error @+1 {{result #0 must be 0D tensor of floating-point values, but got 'tensor<1xf32>'}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<1xf32>
  return
}

// -----

func.func @rope_missing_theta(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{requires attribute 'theta'}}
  %0 = "kiln.rope"(%x) {interleaved = true} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @rope_result_type(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xbf16>
  return
}

// -----

func.func @swiglu_operand_types(%g: tensor<4x128xf32>, %u: tensor<4x64xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %0 = "kiln.swiglu"(%g, %u) : (tensor<4x128xf32>, tensor<4x64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @custom_format_dynamic_shape(%x: tensor<?x64xf32>) {
  // The custom assembly format checks operand types as it parses.
  // expected-error @+1 {{must be statically shaped tensor of floating-point values, but got 'tensor<?x64xf32>'}}
  %0 = kiln.silu %x : tensor<?x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.embedding
//===----------------------------------------------------------------------===//

// -----

func.func @embedding_table_rank(%table: tensor<256x64x2xf32>, %ids: tensor<4x32xi32>) {
  // expected-error @+1 {{'kiln.embedding' op expects table of rank 2, got rank 3 (shape [256, 64, 2])}}
  %0 = "kiln.embedding"(%table, %ids) : (tensor<256x64x2xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
  return
}

// -----

func.func @embedding_element_type(%table: tensor<256x64xf32>, %ids: tensor<4x32xi32>) {
  // expected-error @+1 {{'kiln.embedding' op expects result to have the element type of table ('f32'), got 'bf16'}}
  %0 = "kiln.embedding"(%table, %ids) : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xbf16>
  return
}

// -----

func.func @embedding_result_shape(%table: tensor<256x64xf32>, %ids: tensor<4x32xi32>) {
  // expected-error @+1 {{'kiln.embedding' op expects result of shape [4, 32, 64], got [4, 32, 256]}}
  %0 = "kiln.embedding"(%table, %ids) : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x256xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.linear
//===----------------------------------------------------------------------===//

// -----

func.func @linear_scalar_x(%x: tensor<f32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'kiln.linear' op expects x of rank >= 1, got a 0-d tensor}}
  %0 = "kiln.linear"(%x, %w) : (tensor<f32>, tensor<128x64xf32>) -> tensor<128xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'kiln.linear' op expects weight of rank 2, got rank 1 (shape [64])}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xf32>, tensor<64xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @linear_contracted_dim(%x: tensor<4x64xf32>, %w: tensor<128x32xf32>) {
  // expected-error @+1 {{'kiln.linear' op expects weight of shape [N, 64] to match x's last dimension 64, got [128, 32]}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xf32>, tensor<128x32xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @linear_hf_layout(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) {
  // A [in, out] weight is the wrong layout: weights are [out, in].
  // expected-error @+1 {{'kiln.linear' op expects weight of shape [N, 64] to match x's last dimension 64, got [64, 128]}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return
}

// -----

func.func @linear_element_type(%x: tensor<4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'kiln.linear' op expects result to have the element type of x ('f32'), got 'f16'}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x64xf32>, tensor<128x64xf32>) -> tensor<4x128xf16>
  return
}

// -----

func.func @linear_result_shape(%x: tensor<4x32x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'kiln.linear' op expects result of shape [4, 32, 128], got [4, 32, 64]}}
  %0 = "kiln.linear"(%x, %w) : (tensor<4x32x64xf32>, tensor<128x64xf32>) -> tensor<4x32x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.matmul
//===----------------------------------------------------------------------===//

// -----

func.func @matmul_rank(%a: tensor<16xf32>, %b: tensor<16x24xf32>) {
  // expected-error @+1 {{'kiln.matmul' op expects lhs and rhs of rank >= 2, got [16] and [16, 24]}}
  %0 = "kiln.matmul"(%a, %b) : (tensor<16xf32>, tensor<16x24xf32>) -> tensor<24xf32>
  return
}

// -----

func.func @matmul_equal_rank(%a: tensor<8x16x32xf32>, %b: tensor<32x24xf32>) {
  // expected-error @+1 {{'kiln.matmul' op expects lhs and rhs of equal rank, got [8, 16, 32] and [32, 24]}}
  %0 = "kiln.matmul"(%a, %b) : (tensor<8x16x32xf32>, tensor<32x24xf32>) -> tensor<8x16x24xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<8x16x32xf32>, %b: tensor<4x32x24xf32>) {
  // expected-error @+1 {{'kiln.matmul' op expects equal batch dimensions, got lhs [8, 16, 32] and rhs [4, 32, 24]}}
  %0 = "kiln.matmul"(%a, %b) : (tensor<8x16x32xf32>, tensor<4x32x24xf32>) -> tensor<8x16x24xf32>
  return
}

// -----

func.func @matmul_contracted(%a: tensor<16x32xf32>, %b: tensor<24x32xf32>) {
  // expected-error @+1 {{'kiln.matmul' op expects the contracted dimensions to match, got lhs [16, 32] (K = 32) and rhs [24, 32] (K = 24)}}
  %0 = "kiln.matmul"(%a, %b) : (tensor<16x32xf32>, tensor<24x32xf32>) -> tensor<16x24xf32>
  return
}

// -----

func.func @matmul_contracted_transposed(%a: tensor<16x32xf32>, %b: tensor<24x32xf32>) {
  // transpose_lhs makes lhs [K, M] = [16, 32]: K = 16 against rhs' 32.
  // expected-error @+1 {{'kiln.matmul' op expects the contracted dimensions to match, got lhs [16, 32] (K = 16) and rhs [24, 32] (K = 32)}}
  %0 = "kiln.matmul"(%a, %b) {transpose_lhs = true, transpose_rhs = true} : (tensor<16x32xf32>, tensor<24x32xf32>) -> tensor<32x24xf32>
  return
}

// -----

func.func @matmul_result_shape(%a: tensor<8x16x32xf32>, %b: tensor<8x24x32xf32>) {
  // expected-error @+1 {{'kiln.matmul' op expects result of shape [8, 16, 24], got [8, 16, 32]}}
  %0 = "kiln.matmul"(%a, %b) {transpose_rhs = true} : (tensor<8x16x32xf32>, tensor<8x24x32xf32>) -> tensor<8x16x32xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.rms_norm
//===----------------------------------------------------------------------===//

// -----

func.func @rms_norm_scalar_x(%x: tensor<f32>, %g: tensor<1xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op expects x of rank >= 1, got a 0-d tensor}}
  %0 = "kiln.rms_norm"(%x, %g) {epsilon = 1.0e-06 : f64} : (tensor<f32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @rms_norm_gamma(%x: tensor<4x32x64xf32>, %g: tensor<32xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op expects gamma of shape [64], got [32]}}
  %0 = "kiln.rms_norm"(%x, %g) {epsilon = 1.0e-06 : f64} : (tensor<4x32x64xf32>, tensor<32xf32>) -> tensor<4x32x64xf32>
  return
}

// -----

func.func @rms_norm_epsilon(%x: tensor<4x32x64xf32>, %g: tensor<64xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op expects epsilon > 0, got 0.000000e+00}}
  %0 = "kiln.rms_norm"(%x, %g) {epsilon = 0.0 : f64} : (tensor<4x32x64xf32>, tensor<64xf32>) -> tensor<4x32x64xf32>
  return
}

// -----

func.func @rms_norm_result_shape(%x: tensor<4x32x64xf32>, %g: tensor<64xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op expects result of shape [4, 32, 64], got [4, 64]}}
  %0 = "kiln.rms_norm"(%x, %g) {epsilon = 1.0e-06 : f64} : (tensor<4x32x64xf32>, tensor<64xf32>) -> tensor<4x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.broadcast
//===----------------------------------------------------------------------===//

// -----

func.func @broadcast_rank(%x: tensor<32x1x8xf32>) {
  // expected-error @+1 {{'kiln.broadcast' op expects result of the rank of x [32, 1, 8], got [4, 32, 16, 8]}}
  %0 = "kiln.broadcast"(%x) : (tensor<32x1x8xf32>) -> tensor<4x32x16x8xf32>
  return
}

// -----

func.func @broadcast_dim(%x: tensor<4x32x2x8xf32>) {
  // expected-error @+1 {{'kiln.broadcast' op expects x's dimension 2 to be 1 or 16 (the result's), got [4, 32, 2, 8] -> [4, 32, 16, 8]}}
  %0 = "kiln.broadcast"(%x) : (tensor<4x32x2x8xf32>) -> tensor<4x32x16x8xf32>
  return
}

// -----

func.func @broadcast_element_type(%x: tensor<4x32x1x8xf32>) {
  // expected-error @+1 {{'kiln.broadcast' op expects result to have the element type of x ('f32'), got 'bf16'}}
  %0 = "kiln.broadcast"(%x) : (tensor<4x32x1x8xf32>) -> tensor<4x32x16x8xbf16>
  return
}

//===----------------------------------------------------------------------===//
// kiln.rope and #kiln.yarn
//===----------------------------------------------------------------------===//

// -----

func.func @rope_rank(%x: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'kiln.rope' op expects x ([batch, seq, heads, dim]) of rank 4, got rank 3 (shape [2, 8, 16])}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true} : (tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @rope_odd_dim(%x: tensor<2x8x4x15xf32>) {
  // expected-error @+1 {{'kiln.rope' op expects an even rotary dimension, got x of shape [2, 8, 4, 15]}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = false} : (tensor<2x8x4x15xf32>) -> tensor<2x8x4x15xf32>
  return
}

// -----

func.func @rope_theta(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{'kiln.rope' op expects theta > 1, got 1.000000e+00}}
  %0 = "kiln.rope"(%x) {theta = 1.0 : f64, interleaved = true} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @yarn_factor(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects yarn factor > 0, got 0.000000e+00}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true, yarn = #kiln.yarn<factor = 0.0, original_max_position_embeddings = 32, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @yarn_original_max_positions(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects yarn original_max_position_embeddings > 0, got 0}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true, yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 0, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @yarn_beta_fast(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects yarn beta_fast and beta_slow > 0, got -3.200000e+01 and 1.000000e+00}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true, yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 32, beta_fast = -32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @yarn_beta_slow(%x: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects yarn beta_fast and beta_slow > 0, got 3.200000e+01 and 0.000000e+00}}
  %0 = "kiln.rope"(%x) {theta = 10000.0 : f64, interleaved = true, yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 32, beta_fast = 32.0, beta_slow = 0.0, mscale = 1.0, mscale_all_dim = 1.0>} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.attention
//===----------------------------------------------------------------------===//

// -----

func.func @attention_q_rank(%q: tensor<2x8x64xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects q ([batch, seq, heads, d_qk]) of rank 4, got rank 3 (shape [2, 8, 64])}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x64xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_k_rank(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x32xf32>, %v: tensor<2x8x2x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects k ([batch, seq, kv_heads, d_qk]) of rank 4, got rank 3 (shape [2, 8, 32])}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x32xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_v_rank(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16x1xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects v ([batch, seq, kv_heads, d_v]) of rank 4, got rank 5 (shape [2, 8, 2, 16, 1])}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16x1xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_k_shape(%q: tensor<2x8x4x24xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects k of shape [2, 8, 2, 24], got [2, 8, 2, 16]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x24xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_k_seq(%q: tensor<2x8x4x16xf32>, %k: tensor<2x16x2x16xf32>, %v: tensor<2x16x2x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects k of shape [2, 8, 2, 16], got [2, 16, 2, 16]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x16x2x16xf32>, tensor<2x16x2x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_v_shape(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects v of shape [2, 8, 2, 16], got [2, 8, 4, 16]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_gqa_heads(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x3x16xf32>, %v: tensor<2x8x3x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects the 4 query heads to be a multiple of the 3 kv heads}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x3x16xf32>, tensor<2x8x3x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_zero_kv_heads(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x0x16xf32>, %v: tensor<2x8x0x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects k ([batch, seq, kv_heads, d_qk]) with kv_heads > 0, got [2, 8, 0, 16]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x0x16xf32>, tensor<2x8x0x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_zero_heads(%q: tensor<2x8x0x16xf32>, %k: tensor<2x8x0x16xf32>, %v: tensor<2x8x0x16xf32>) {
  // 0 query heads are a multiple of 0 kv heads: the error is the empty k.
  // expected-error @+1 {{'kiln.attention' op expects k ([batch, seq, kv_heads, d_qk]) with kv_heads > 0, got [2, 8, 0, 16]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.25 : f64} : (tensor<2x8x0x16xf32>, tensor<2x8x0x16xf32>, tensor<2x8x0x16xf32>) -> tensor<2x8x0x16xf32>
  return
}

// -----

func.func @attention_scale(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>) {
  // expected-error @+1 {{'kiln.attention' op expects scale > 0, got -2.500000e-01}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = -0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @attention_result_shape(%q: tensor<4x32x4x24xf32>, %k: tensor<4x32x4x24xf32>, %v: tensor<4x32x4x16xf32>) {
  // MLA: the result has v's head dimension, not q's.
  // expected-error @+1 {{'kiln.attention' op expects result of shape [4, 32, 4, 16], got [4, 32, 4, 24]}}
  %0 = "kiln.attention"(%q, %k, %v) {scale = 0.2041 : f64} : (tensor<4x32x4x24xf32>, tensor<4x32x4x24xf32>, tensor<4x32x4x16xf32>) -> tensor<4x32x4x24xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.router
//===----------------------------------------------------------------------===//

// -----

func.func @router_logits_rank(%l: tensor<4x32x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects logits ([tokens, experts]) of rank 2, got rank 3 (shape [4, 32, 8])}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<4x32x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_bias(%l: tensor<128x8xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'kiln.router' op expects bias of shape [8], got [16]}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<16xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_scoring(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects scoring "sigmoid" or "softmax", got "relu"}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "relu", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_group_score(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects group_score "top2_sum" or "max", got "sum"}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_n_group_divides(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects n_group to divide the 8 experts, got n_group = 3}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 3 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_n_group_zero(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects n_group to divide the 8 experts, got n_group = 0}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 0 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_topk_group_large(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects 1 <= topk_group <= n_group = 4, got topk_group = 5}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 5 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_topk_group_zero(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects 1 <= topk_group <= n_group = 4, got topk_group = 0}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 0 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_top2_sum_group_size(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects at least 2 experts per group for group_score "top2_sum", got 1}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 8 : i64, topk_group = 4 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_top_k_large(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // Two kept groups of two experts: at most 4 can be chosen.
  // expected-error @+1 {{'kiln.router' op expects 1 <= top_k <= 4 (experts in the kept groups), got top_k = 5}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 5 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x5xi32>, tensor<128x5xf32>)
  return
}

// -----

func.func @router_top_k_zero(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects 1 <= top_k <= 8 (experts in the kept groups), got top_k = 0}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "softmax", group_score = "max", n_group = 1 : i64, topk_group = 1 : i64, top_k = 0 : i64, norm_topk_prob = false, routed_scaling_factor = 1.0 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x0xi32>, tensor<128x0xf32>)
  return
}

// -----

func.func @router_indices_shape(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects indices of shape [128, 2], got [128, 8]}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x8xi32>, tensor<128x2xf32>)
  return
}

// -----

func.func @router_weights_shape(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects weights of shape [128, 2], got [2, 128]}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<2x128xf32>)
  return
}

// -----

func.func @router_element_type(%l: tensor<128x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.router' op expects weights to have the element type of logits ('f32'), got 'bf16'}}
  %i, %w = "kiln.router"(%l, %b) {scoring = "sigmoid", group_score = "top2_sum", n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64} : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xbf16>)
  return
}

//===----------------------------------------------------------------------===//
// kiln.expert_capacity
//===----------------------------------------------------------------------===//

// -----

func.func @expert_capacity_rank(%i: tensor<128xi32>) {
  // expected-error @+1 {{'kiln.expert_capacity' op expects indices ([tokens, top_k]) of rank 2, got rank 1 (shape [128])}}
  %k = "kiln.expert_capacity"(%i) {num_experts = 8 : i64, group_tokens = 64 : i64, capacity = 20 : i64} : (tensor<128xi32>) -> tensor<128xi32>
  return
}

// -----

func.func @expert_capacity_result(%i: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.expert_capacity' op expects a result of the indices' shape [128, 2], got [128, 1]}}
  %k = "kiln.expert_capacity"(%i) {num_experts = 8 : i64, group_tokens = 64 : i64, capacity = 20 : i64} : (tensor<128x2xi32>) -> tensor<128x1xi32>
  return
}

// -----

func.func @expert_capacity_group(%i: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.expert_capacity' op expects group_tokens to divide the 128 tokens, got group_tokens = 48}}
  %k = "kiln.expert_capacity"(%i) {num_experts = 8 : i64, group_tokens = 48 : i64, capacity = 20 : i64} : (tensor<128x2xi32>) -> tensor<128x2xi32>
  return
}

// -----

func.func @expert_capacity_zero(%i: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.expert_capacity' op expects capacity >= 1 pairs per expert and group, got 0}}
  %k = "kiln.expert_capacity"(%i) {num_experts = 8 : i64, group_tokens = 64 : i64, capacity = 0 : i64} : (tensor<128x2xi32>) -> tensor<128x2xi32>
  return
}

// -----

func.func @expert_capacity_experts(%i: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.expert_capacity' op expects num_experts > 0, got -8}}
  %k = "kiln.expert_capacity"(%i) {num_experts = -8 : i64, group_tokens = 64 : i64, capacity = 20 : i64} : (tensor<128x2xi32>) -> tensor<128x2xi32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.topk_compress, kiln.topk_decompress
//===----------------------------------------------------------------------===//

// -----

func.func @topk_k_too_large(%g: tensor<4x4xf32>) {
  // expected-error @+1 {{'kiln.topk_compress' op expects 1 <= k <= 16 (the tensor's elements), got k = 17}}
  %m, %r = "kiln.topk_compress"(%g, %g) {k = 17 : i64, quantize = "int8"} : (tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<89xi8>, tensor<4x4xf32>)
  return
}

// -----

func.func @topk_quantize(%g: tensor<4x4xf32>) {
  // expected-error @+1 {{'kiln.topk_compress' op expects quantize "int8" or "none", got "fp8"}}
  %m, %r = "kiln.topk_compress"(%g, %g) {k = 2 : i64, quantize = "fp8"} : (tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<14xi8>, tensor<4x4xf32>)
  return
}

// -----

func.func @topk_message_size(%g: tensor<4x4xf32>) {
  // expected-error @+1 {{'kiln.topk_compress' op expects message of shape [16], got [14]}}
  %m, %r = "kiln.topk_compress"(%g, %g) {k = 2 : i64, quantize = "none"} : (tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<14xi8>, tensor<4x4xf32>)
  return
}

// -----

func.func @topk_residual_shape(%g: tensor<4x4xf32>, %r: tensor<16xf32>) {
  // expected-error @+1 {{'kiln.topk_compress' op expects residual and new_residual of the gradient's shape [4, 4]}}
  %m, %n = "kiln.topk_compress"(%g, %r) {k = 2 : i64, quantize = "int8"} : (tensor<4x4xf32>, tensor<16xf32>) -> (tensor<14xi8>, tensor<16xf32>)
  return
}

// -----

func.func @topk_bf16(%g: tensor<4x4xbf16>) {
  // expected-error @+1 {{'kiln.topk_compress' op expects f32 gradients and residuals (the message holds f32), got 'tensor<4x4xbf16>'}}
  %m, %r = "kiln.topk_compress"(%g, %g) {k = 2 : i64, quantize = "int8"} : (tensor<4x4xbf16>, tensor<4x4xbf16>) -> (tensor<14xi8>, tensor<4x4xbf16>)
  return
}

// -----

func.func @topk_decompress_partial(%m: tensor<20xi8>) {
  // expected-error @+1 {{'kiln.topk_decompress' op expects messages of shape [ranks x 14] (whole messages of k = 2), got [20]}}
  %d = "kiln.topk_decompress"(%m) {k = 2 : i64, quantize = "int8"} : (tensor<20xi8>) -> tensor<4x4xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.expert_counts, kiln.segment_transpose
//===----------------------------------------------------------------------===//

// -----

func.func @expert_counts_groups(%o: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.expert_counts' op expects groups to divide the 8 experts of the offsets, got groups = 3}}
  %e, %r = "kiln.expert_counts"(%o) {groups = 3 : i64} : (tensor<9xi32>) -> (tensor<3x2xi32>, tensor<3xi32>)
  return
}

// -----

func.func @expert_counts_shape(%o: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.expert_counts' op expects per_expert of shape [2, 4], got [4, 2]}}
  %e, %r = "kiln.expert_counts"(%o) {groups = 2 : i64} : (tensor<9xi32>) -> (tensor<4x2xi32>, tensor<2xi32>)
  return
}

// -----

func.func @segment_transpose_counts_rank(%x: tensor<16x4xf32>, %c: tensor<8xi32>) {
  // expected-error @+1 {{'kiln.segment_transpose' op expects counts ([outer, inner]) of rank 2, got rank 1 (shape [8])}}
  %y, %o = "kiln.segment_transpose"(%x, %c) : (tensor<16x4xf32>, tensor<8xi32>) -> (tensor<16x4xf32>, tensor<5xi32>)
  return
}

// -----

func.func @segment_transpose_result(%x: tensor<16x4xf32>, %c: tensor<2x4xi32>) {
  // expected-error @+1 {{'kiln.segment_transpose' op expects a result of x's shape [16, 4], got [8, 4]}}
  %y, %o = "kiln.segment_transpose"(%x, %c) : (tensor<16x4xf32>, tensor<2x4xi32>) -> (tensor<8x4xf32>, tensor<5xi32>)
  return
}

// -----

func.func @segment_transpose_offsets(%x: tensor<16x4xf32>, %c: tensor<2x4xi32>) {
  // expected-error @+1 {{'kiln.segment_transpose' op expects offsets of shape [3], got [5]}}
  %y, %o = "kiln.segment_transpose"(%x, %c) {inverse = true} : (tensor<16x4xf32>, tensor<2x4xi32>) -> (tensor<16x4xf32>, tensor<5xi32>)
  return
}

//===----------------------------------------------------------------------===//
// kiln.dispatch
//===----------------------------------------------------------------------===//

// -----

func.func @dispatch_x_rank(%x: tensor<4x32x64xf32>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects x ([tokens, hidden]) of rank 2, got rank 3 (shape [4, 32, 64])}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<4x32x64xf32>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<9xi32>, tensor<256xi32>)
  return
}

// -----

func.func @dispatch_indices_rank(%x: tensor<128x64xf32>, %idx: tensor<256xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects indices ([tokens, top_k]) of rank 2, got rank 1 (shape [256])}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xf32>, tensor<256xi32>) -> (tensor<256x64xf32>, tensor<9xi32>, tensor<256xi32>)
  return
}

// -----

func.func @dispatch_indices_tokens(%x: tensor<128x64xf32>, %idx: tensor<64x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects indices of shape [128, top_k] (one row per token of x), got [64, 2]}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xf32>, tensor<64x2xi32>) -> (tensor<128x64xf32>, tensor<9xi32>, tensor<128xi32>)
  return
}

// -----

func.func @dispatch_num_experts(%x: tensor<128x64xf32>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects num_experts > 0, got 0}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 0 : i64} : (tensor<128x64xf32>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<1xi32>, tensor<256xi32>)
  return
}

// -----

func.func @dispatch_rows(%x: tensor<128x64xf32>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects rows of shape [256, 64], got [128, 64]}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xf32>, tensor<128x2xi32>) -> (tensor<128x64xf32>, tensor<9xi32>, tensor<256xi32>)
  return
}

// -----

func.func @dispatch_offsets(%x: tensor<128x64xf32>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects offsets of shape [9], got [8]}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xf32>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<8xi32>, tensor<256xi32>)
  return
}

// -----

func.func @dispatch_source(%x: tensor<128x64xf32>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects source of shape [256], got [128, 2]}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xf32>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<9xi32>, tensor<128x2xi32>)
  return
}

// -----

func.func @dispatch_element_type(%x: tensor<128x64xbf16>, %idx: tensor<128x2xi32>) {
  // expected-error @+1 {{'kiln.dispatch' op expects rows to have the element type of x ('bf16'), got 'f32'}}
  %r, %o, %s = "kiln.dispatch"(%x, %idx) {num_experts = 8 : i64} : (tensor<128x64xbf16>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<9xi32>, tensor<256xi32>)
  return
}

//===----------------------------------------------------------------------===//
// kiln.grouped_matmul
//===----------------------------------------------------------------------===//

// -----

func.func @grouped_matmul_x_rank(%x: tensor<2x128x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects x ([rows, K]) of rank 2, got rank 3 (shape [2, 128, 64])}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<2x128x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x32xf32>
  return
}

// -----

func.func @grouped_matmul_weight_rank(%x: tensor<256x64xf32>, %w: tensor<32x64xf32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects weight ([experts, N, K]) of rank 3, got rank 2 (shape [32, 64])}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<32x64xf32>, tensor<9xi32>) -> tensor<256x32xf32>
  return
}

// -----

func.func @grouped_matmul_contracted(%x: tensor<256x64xf32>, %w: tensor<8x64x32xf32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects weight of shape [experts, N, 64] to match x's last dimension, got [8, 64, 32]}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<8x64x32xf32>, tensor<9xi32>) -> tensor<256x64xf32>
  return
}

// -----

func.func @grouped_matmul_offsets(%x: tensor<256x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<8xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects offsets of shape [9], got [8]}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<8xi32>) -> tensor<256x32xf32>
  return
}

// -----

func.func @grouped_matmul_element_type(%x: tensor<256x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects result to have the element type of x ('f32'), got 'bf16'}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x32xbf16>
  return
}

// -----

func.func @grouped_matmul_result_shape(%x: tensor<256x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xi32>) {
  // expected-error @+1 {{'kiln.grouped_matmul' op expects result of shape [256, 32], got [256, 64]}}
  %0 = "kiln.grouped_matmul"(%x, %w, %off) : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.combine
//===----------------------------------------------------------------------===//

// -----

func.func @combine_rows_rank(%rows: tensor<256xf32>, %w: tensor<128x2xf32>, %src: tensor<256xi32>) {
  // expected-error @+1 {{'kiln.combine' op expects rows ([tokens*top_k, hidden]) of rank 2, got rank 1 (shape [256])}}
  %0 = "kiln.combine"(%rows, %w, %src) : (tensor<256xf32>, tensor<128x2xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  return
}

// -----

func.func @combine_weights_rank(%rows: tensor<256x64xf32>, %w: tensor<256xf32>, %src: tensor<256xi32>) {
  // expected-error @+1 {{'kiln.combine' op expects weights ([tokens, top_k]) of rank 2, got rank 1 (shape [256])}}
  %0 = "kiln.combine"(%rows, %w, %src) : (tensor<256x64xf32>, tensor<256xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  return
}

// -----

func.func @combine_row_count(%rows: tensor<255x64xf32>, %w: tensor<128x2xf32>, %src: tensor<255xi32>) {
  // expected-error @+1 {{'kiln.combine' op expects rows to have tokens*top_k = 256 rows for weights of shape [128, 2], got [255, 64]}}
  %0 = "kiln.combine"(%rows, %w, %src) : (tensor<255x64xf32>, tensor<128x2xf32>, tensor<255xi32>) -> tensor<128x64xf32>
  return
}

// -----

func.func @combine_source(%rows: tensor<256x64xf32>, %w: tensor<128x2xf32>, %src: tensor<128xi32>) {
  // expected-error @+1 {{'kiln.combine' op expects source of shape [256], got [128]}}
  %0 = "kiln.combine"(%rows, %w, %src) : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<128xi32>) -> tensor<128x64xf32>
  return
}

// -----

func.func @combine_result_shape(%rows: tensor<256x64xf32>, %w: tensor<128x2xf32>, %src: tensor<256xi32>) {
  // expected-error @+1 {{'kiln.combine' op expects result of shape [128, 64], got [256, 64]}}
  %0 = "kiln.combine"(%rows, %w, %src) : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>) -> tensor<256x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// kiln.cross_entropy
//===----------------------------------------------------------------------===//

// -----

func.func @cross_entropy_scalar_logits(%logits: tensor<f32>, %t: tensor<i32>, %m: tensor<f32>) {
  // expected-error @+1 {{'kiln.cross_entropy' op expects logits of rank >= 1 ([positions..., vocab]), got a 0-d tensor}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) : (tensor<f32>, tensor<i32>, tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_targets(%logits: tensor<4x32x256xf32>, %t: tensor<4x31xi32>, %m: tensor<4x32xf32>) {
  // expected-error @+1 {{'kiln.cross_entropy' op expects targets of shape [4, 32], got [4, 31]}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) : (tensor<4x32x256xf32>, tensor<4x31xi32>, tensor<4x32xf32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_mask(%logits: tensor<4x32x256xf32>, %t: tensor<4x32xi32>, %m: tensor<4x32x256xf32>) {
  // expected-error @+1 {{'kiln.cross_entropy' op expects mask of shape [4, 32], got [4, 32, 256]}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32x256xf32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_label_smoothing_one(%logits: tensor<4x32x256xf32>, %t: tensor<4x32xi32>, %m: tensor<4x32xf32>) {
  // expected-error @+1 {{'kiln.cross_entropy' op expects label_smoothing in [0, 1), got 1.000000e+00}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) {label_smoothing = 1.0 : f64} : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_label_smoothing_negative(%logits: tensor<4x32x256xf32>, %t: tensor<4x32xi32>, %m: tensor<4x32xf32>) {
  // expected-error @+1 {{'kiln.cross_entropy' op expects label_smoothing in [0, 1), got -1.000000e-01}}
  %0 = "kiln.cross_entropy"(%logits, %t, %m) {label_smoothing = -0.1 : f64} : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
  return
}

// -----

func.func @dispatch_negative_experts(%x: tensor<4x8xf32>, %idx: tensor<4x2xi32>) {
  // expected-error @+1 {{expects num_experts > 0, got -1}}
  %0:3 = "kiln.dispatch"(%x, %idx) {num_experts = -1 : i64} : (tensor<4x8xf32>, tensor<4x2xi32>) -> (tensor<8x8xf32>, tensor<0xi32>, tensor<8xi32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// Collectives (KilnCollectiveOps.td)
//===----------------------------------------------------------------------===//

func.func @collective_no_grid(%x: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.all_reduce' op needs a device grid: expected the enclosing module to have a kiln.grid attribute}}
  %0 = "kiln.all_reduce"(%x) {kind = "sum", axes = ["dp"]} : (tensor<8xf32>) -> tensor<8xf32>
  return
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_unknown_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.all_reduce' op expects axes of the grid ("pp", "dp"), got "tp"}}
  %0 = "kiln.all_reduce"(%x) {kind = "sum", axes = ["tp"]} : (tensor<8xf32>) -> tensor<8xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_axes_out_of_order(%x: tensor<8xf32>) {
  // expected-error @+1 {{expects distinct axes in grid order ("pp", "dp"), got "pp" out of place}}
  %0 = "kiln.all_reduce"(%x) {kind = "sum", axes = ["dp", "pp"]} : (tensor<8xf32>) -> tensor<8xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_no_axes(%x: tensor<8xf32>) {
  // expected-error @+1 {{expects at least one grid axis in 'axes'}}
  %0 = "kiln.all_reduce"(%x) {kind = "sum", axes = []} : (tensor<8xf32>) -> tensor<8xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_bad_kind(%x: tensor<8xf32>) {
  // expected-error @+1 {{expects kind "sum" or "max", got "mean"}}
  %0 = "kiln.all_reduce"(%x) {kind = "mean", axes = ["dp"]} : (tensor<8xf32>) -> tensor<8xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_gather_shape(%x: tensor<8x4xf32>) {
  // expected-error @+1 {{'kiln.all_gather' op expects result of shape [32, 4], got [16, 4]}}
  %0 = "kiln.all_gather"(%x) {axes = ["dp"], dim = 0 : i64} : (tensor<8x4xf32>) -> tensor<16x4xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_gather_dim(%x: tensor<8x4xf32>) {
  // expected-error @+1 {{expects dim in [0, 2) for x of shape [8, 4], got 2}}
  %0 = "kiln.all_gather"(%x) {axes = ["dp"], dim = 2 : i64} : (tensor<8x4xf32>) -> tensor<8x16xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_gather_element_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{expects result to have the element type of x ('f32'), got 'f16'}}
  %0 = "kiln.all_gather"(%x) {axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<32xf16>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_scatter_indivisible(%x: tensor<6xf32>) {
  // expected-error @+1 {{'kiln.reduce_scatter' op expects dimension 0 of x [6] to be divisible by the group size 4}}
  %0 = "kiln.reduce_scatter"(%x) {kind = "sum", axes = ["dp"], dim = 0 : i64} : (tensor<6xf32>) -> tensor<1xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_scatter_max(%x: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.reduce_scatter' op expects kind "sum", got "max"}}
  %0 = "kiln.reduce_scatter"(%x) {kind = "max", axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<2xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_shard_shape(%x: tensor<16xf32>) {
  // expected-error @+1 {{'kiln.local_shard' op expects result of shape [2], got [4]}}
  %0 = "kiln.local_shard"(%x) {axes = ["pp", "dp"], dim = 0 : i64} : (tensor<16xf32>) -> tensor<4xf32>
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_all_to_all_rows(%x: tensor<8x4xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'kiln.all_to_all' op expects result rows shaped like x's rows ([8, 4]), got [8, 5]}}
  %0:2 = "kiln.all_to_all"(%x, %c) {axes = ["dp"]} : (tensor<8x4xf32>, tensor<4xi64>) -> (tensor<8x5xf32>, tensor<4xi64>)
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_all_to_all_counts(%x: tensor<8x4xf32>, %c: tensor<2xi64>) {
  // expected-error @+1 {{'kiln.all_to_all' op expects send_counts of shape [4], got [2]}}
  %0:2 = "kiln.all_to_all"(%x, %c) {axes = ["dp"]} : (tensor<8x4xf32>, tensor<2xi64>) -> (tensor<8x4xf32>, tensor<2xi64>)
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_send_peer(%x: tensor<8xf32>) {
  // expected-error @+1 {{'kiln.send' op expects peer in [0, 2) on axis "pp", got 2}}
  "kiln.send"(%x) {axis = "pp", peer = 2 : i64} : (tensor<8xf32>) -> ()
  return
}
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {
func.func @collective_recv_axis() {
  // expected-error @+1 {{'kiln.recv' op expects an axis of the grid ("pp", "dp"), got "ep"}}
  %0 = "kiln.recv"() {axis = "ep", peer = 0 : i64} : () -> tensor<8xf32>
  return
}
}

// -----

// expected-error @+1 {{expects one size per grid axis, got 2 axes and 1 sizes}}
module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2]>} {
}

// -----

// expected-error @+1 {{expects distinct grid axes, got "dp" twice}}
module attributes {kiln.grid = #kiln.grid<axes = ["dp", "dp"], shape = [2, 2]>} {
}

// -----

func.func @sparsity_mask_groups(%w: tensor<8x6xf32>, %step: tensor<i64>) {
  // expected-error @+1 {{'kiln.sparsity_mask_2_4' op expects a weight of rank >= 2 whose last (input) dimension is divisible by 4 (groups of 4), got 'tensor<8x6xf32>'}}
  %m = kiln.sparsity_mask_2_4 %w, %w, %step {start_step = 1 : i64, mask_every = 0 : i64} : (tensor<8x6xf32>, tensor<8x6xf32>, tensor<i64>) -> tensor<8x6xf32>
  return
}

// -----

func.func @sparsity_mask_type(%w: tensor<8x8xf32>, %m: tensor<8x4xf32>, %step: tensor<i64>) {
  // expected-error @+1 {{'kiln.sparsity_mask_2_4' op expects the mask and the result of the weight's type 'tensor<8x8xf32>', got 'tensor<8x4xf32>' and 'tensor<8x8xf32>'}}
  %r = kiln.sparsity_mask_2_4 %w, %m, %step {start_step = 1 : i64, mask_every = 0 : i64} : (tensor<8x8xf32>, tensor<8x4xf32>, tensor<i64>) -> tensor<8x8xf32>
  return
}

// -----

func.func @sparsity_mask_start(%w: tensor<8x8xf32>, %step: tensor<i64>) {
  // expected-error @+1 {{'kiln.sparsity_mask_2_4' op expects start_step >= 1 and mask_every >= 0, got 0 and -1}}
  %r = kiln.sparsity_mask_2_4 %w, %w, %step {start_step = 0 : i64, mask_every = -1 : i64} : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<i64>) -> tensor<8x8xf32>
  return
}
