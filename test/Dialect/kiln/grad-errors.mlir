// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the backward ops (KilnGradOps.cpp) and the
// training-step ops (KilnTrainOps.cpp), in the generic op syntax: the custom
// assembly formats reject ill-typed operands before the verifier runs.

//===----------------------------------------------------------------------===//
// linear_dgrad / linear_wgrad / matmul_grad
//===----------------------------------------------------------------------===//

func.func @linear_dgrad_dy_0d(%dy: tensor<f32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{expects dy of rank >= 1}}
  %0 = "kiln.linear_dgrad"(%dy, %w) : (tensor<f32>, tensor<4x8xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @linear_dgrad_weight_rank(%dy: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{expects weight of rank 2, got rank 1 (shape [4])}}
  %0 = "kiln.linear_dgrad"(%dy, %w) : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_dgrad_weight_mismatch(%dy: tensor<2x4xf32>, %w: tensor<5x8xf32>) {
  // expected-error @+1 {{expects weight of shape [4, K] to match dy's last dimension, got [5, 8]}}
  %0 = "kiln.linear_dgrad"(%dy, %w) : (tensor<2x4xf32>, tensor<5x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @linear_dgrad_dx(%dy: tensor<2x4xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{expects dx of shape [2, 8], got [2, 4]}}
  %0 = "kiln.linear_dgrad"(%dy, %w) : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_wgrad_leading(%dy: tensor<2x3x4xf32>, %x: tensor<2x5x8xf32>) {
  // expected-error @+1 {{expects dy and x with equal leading dimensions, got [2, 3, 4] and [2, 5, 8]}}
  %0 = "kiln.linear_wgrad"(%dy, %x) : (tensor<2x3x4xf32>, tensor<2x5x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_wgrad_dweight(%dy: tensor<6x4xf32>, %x: tensor<6x8xf32>) {
  // expected-error @+1 {{expects dweight of shape [4, 8], got [8, 4]}}
  %0 = "kiln.linear_wgrad"(%dy, %x) : (tensor<6x4xf32>, tensor<6x8xf32>) -> tensor<8x4xf32>
  return
}

// -----

func.func @matmul_grad_dlhs(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>, %dc: tensor<2x4xf32>) {
  // expected-error @+1 {{expects dlhs of shape [2, 3], got [3, 2]}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<2x4xf32>) -> (tensor<3x2xf32>, tensor<3x4xf32>)
  return
}

// -----

func.func @matmul_grad_drhs(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>, %dc: tensor<2x4xf32>) {
  // expected-error @+1 {{expects drhs of shape [3, 4], got [4, 3]}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<2x4xf32>) -> (tensor<2x3xf32>, tensor<4x3xf32>)
  return
}

// -----

func.func @matmul_grad_rank(%a: tensor<3xf32>, %b: tensor<3x4xf32>, %dc: tensor<4xf32>) {
  // expected-error @+1 {{expects lhs and rhs of equal rank >= 2, got [3] and [3, 4]}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) : (tensor<3xf32>, tensor<3x4xf32>, tensor<4xf32>) -> (tensor<3xf32>, tensor<3x4xf32>)
  return
}

// -----

func.func @matmul_grad_batch(%a: tensor<2x2x3xf32>, %b: tensor<5x3x4xf32>, %dc: tensor<2x2x4xf32>) {
  // expected-error @+1 {{expects equal batch dimensions, got lhs [2, 2, 3] and rhs [5, 3, 4]}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) : (tensor<2x2x3xf32>, tensor<5x3x4xf32>, tensor<2x2x4xf32>) -> (tensor<2x2x3xf32>, tensor<5x3x4xf32>)
  return
}

// -----

func.func @matmul_grad_contraction(%a: tensor<2x3xf32>, %b: tensor<5x4xf32>, %dc: tensor<2x4xf32>) {
  // expected-error @+1 {{expects the contracted dimensions to match, got lhs [2, 3] (K = 3) and rhs [5, 4] (K = 5)}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) : (tensor<2x3xf32>, tensor<5x4xf32>, tensor<2x4xf32>) -> (tensor<2x3xf32>, tensor<5x4xf32>)
  return
}

// -----

func.func @matmul_grad_dc_transposed(%a: tensor<3x2xf32>, %b: tensor<4x3xf32>, %dc: tensor<3x4xf32>) {
  // expected-error @+1 {{expects dc of shape [2, 4], got [3, 4]}}
  %0:2 = "kiln.matmul_grad"(%a, %b, %dc) {transpose_lhs = true, transpose_rhs = true} : (tensor<3x2xf32>, tensor<4x3xf32>, tensor<3x4xf32>) -> (tensor<3x2xf32>, tensor<4x3xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// embedding_grad / rms_norm_grad / silu_grad / swiglu_grad / unbroadcast
//===----------------------------------------------------------------------===//

func.func @embedding_grad_table_rank(%dy: tensor<4x8xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{expects dtable of rank 2, got rank 1 (shape [16])}}
  %0 = "kiln.embedding_grad"(%dy, %ids) : (tensor<4x8xf32>, tensor<4xi32>) -> tensor<16xf32>
  return
}

// -----

func.func @embedding_grad_dy(%dy: tensor<4x8xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{expects dy of shape [4, 16], got [4, 8]}}
  %0 = "kiln.embedding_grad"(%dy, %ids) : (tensor<4x8xf32>, tensor<4xi32>) -> tensor<10x16xf32>
  return
}

// -----

func.func @rms_norm_grad_x_0d(%dy: tensor<f32>, %x: tensor<f32>, %g: tensor<1xf32>) {
  // expected-error @+1 {{expects x of rank >= 1}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 1.0e-06 : f64} : (tensor<f32>, tensor<f32>, tensor<1xf32>) -> (tensor<f32>, tensor<1xf32>)
  return
}

// -----

func.func @rms_norm_grad_dy(%dy: tensor<2x8xf32>, %x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{expects dy of shape [2, 4], got [2, 8]}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 1.0e-06 : f64} : (tensor<2x8xf32>, tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @rms_norm_grad_gamma(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{expects gamma of shape [4], got [8]}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 1.0e-06 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<8xf32>) -> (tensor<2x4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @rms_norm_grad_dx(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{expects dx of shape [2, 4], got [4, 2]}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 1.0e-06 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<4xf32>) -> (tensor<4x2xf32>, tensor<4xf32>)
  return
}

// -----

func.func @rms_norm_grad_epsilon(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{expects epsilon > 0, got 0.000000e+00}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 0.0 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @rms_norm_grad_dgamma(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{expects dgamma of shape [4], got [2, 4]}}
  %0:2 = "kiln.rms_norm_grad"(%dy, %x, %g) {epsilon = 1.0e-06 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
  return
}

// -----

func.func @silu_grad_types(%dy: tensor<4xf32>, %x: tensor<8xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %0 = "kiln.silu_grad"(%dy, %x) : (tensor<4xf32>, tensor<8xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @swiglu_grad_up(%dy: tensor<4xf32>, %g: tensor<4xf32>, %u: tensor<8xf32>) {
  // expected-error @+1 {{expects up of shape [4], got [8]}}
  %0:2 = "kiln.swiglu_grad"(%dy, %g, %u) : (tensor<4xf32>, tensor<4xf32>, tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @swiglu_grad_dup(%dy: tensor<4xf32>, %g: tensor<4xf32>, %u: tensor<4xf32>) {
  // expected-error @+1 {{expects dup of shape [4], got [2, 2]}}
  %0:2 = "kiln.swiglu_grad"(%dy, %g, %u) : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<2x2xf32>)
  return
}

// -----

func.func @unbroadcast_rank(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{expects result of the rank of x [4, 8], got [8]}}
  %0 = "kiln.unbroadcast"(%x) : (tensor<4x8xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @unbroadcast_dim(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{expects result dimension 1 to be 1 or 8, got [4, 8] -> [4, 2]}}
  %0 = "kiln.unbroadcast"(%x) : (tensor<4x8xf32>) -> tensor<4x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// attention_grad
//===----------------------------------------------------------------------===//

func.func @attention_grad_rank(%q: tensor<8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects q, k, v of rank 4}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>)
  return
}

// -----

func.func @attention_grad_k(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x12xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects k of shape [2, 8, 2, 16], got [2, 8, 2, 12]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x12xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x2x12xf32>, tensor<2x8x2x16xf32>)
  return
}

// -----

func.func @attention_grad_v(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x4x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects v of shape [2, 8, 2, 16], got [2, 4, 2, 16]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x4x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x4x2x16xf32>)
  return
}

// -----

func.func @attention_grad_heads(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x3x16xf32>, %v: tensor<2x8x3x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects the 4 query heads to be a multiple of the 3 kv heads}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x3x16xf32>, tensor<2x8x3x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x3x16xf32>, tensor<2x8x3x16xf32>)
  return
}

// -----

func.func @attention_grad_scale(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects scale > 0, got 0.000000e+00}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.0 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>)
  return
}

// -----

func.func @attention_grad_dout(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x8xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects dout of shape [2, 8, 4, 8], got [2, 8, 4, 16]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x8xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x8xf32>)
  return
}

// -----

func.func @attention_grad_dq(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects dq of shape [2, 8, 4, 16], got [2, 8, 2, 16]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>)
  return
}

// -----

func.func @attention_grad_dk(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects dk of shape [2, 8, 2, 16], got [2, 8, 4, 16]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>)
  return
}

// -----

func.func @attention_grad_dv(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>, %do: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{expects dv of shape [2, 8, 2, 16], got [2, 8, 4, 16]}}
  %0:3 = "kiln.attention_grad"(%q, %k, %v, %do) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x4x16xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// router_grad / dispatch_grad / combine_grad / grouped_matmul_*grad
//===----------------------------------------------------------------------===//

func.func @router_grad_logits_rank(%l: tensor<16xf32>, %i: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{expects logits of rank 2, got rank 1 (shape [16])}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<16xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @router_grad_indices_rank(%l: tensor<4x8xf32>, %i: tensor<8xi32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{expects indices of rank 2, got rank 1 (shape [8])}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<4x8xf32>, tensor<8xi32>, tensor<8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @router_grad_indices_tokens(%l: tensor<4x8xf32>, %i: tensor<2x2xi32>, %w: tensor<2x2xf32>) {
  // expected-error @+1 {{expects indices of shape [4, 2], got [2, 2]}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<4x8xf32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @router_grad_dweights(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{expects dweights of shape [4, 2], got [4, 3]}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x3xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @router_grad_scoring(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{expects scoring "sigmoid" or "softmax", got "relu"}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "relu", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @router_grad_dlogits(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{expects dlogits of shape [4, 8], got [4, 2]}}
  %0 = "kiln.router_grad"(%l, %i, %w) {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64} : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  return
}

// -----

func.func @dispatch_grad_rank(%d: tensor<8xf32>, %s: tensor<8xi32>) {
  // expected-error @+1 {{expects drows of rank 2, got rank 1 (shape [8])}}
  %0 = "kiln.dispatch_grad"(%d, %s) {top_k = 2 : i64} : (tensor<8xf32>, tensor<8xi32>) -> tensor<4xf32>
  return
}

// -----

func.func @dispatch_grad_top_k(%d: tensor<9x4xf32>, %s: tensor<9xi32>) {
  // expected-error @+1 {{expects [tokens*top_k, hidden] rows with top_k > 0, got [9, 4] and top_k = 2}}
  %0 = "kiln.dispatch_grad"(%d, %s) {top_k = 2 : i64} : (tensor<9x4xf32>, tensor<9xi32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @dispatch_grad_negative_top_k(%d: tensor<8x4xf32>, %s: tensor<8xi32>) {
  // expected-error @+1 {{expects [tokens*top_k, hidden] rows with top_k > 0, got [8, 4] and top_k = -2}}
  %0 = "kiln.dispatch_grad"(%d, %s) {top_k = -2 : i64} : (tensor<8x4xf32>, tensor<8xi32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @dispatch_grad_source(%d: tensor<8x4xf32>, %s: tensor<4xi32>) {
  // expected-error @+1 {{expects source of shape [8], got [4]}}
  %0 = "kiln.dispatch_grad"(%d, %s) {top_k = 2 : i64} : (tensor<8x4xf32>, tensor<4xi32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @dispatch_grad_dx(%d: tensor<8x4xf32>, %s: tensor<8xi32>) {
  // expected-error @+1 {{expects dx of shape [4, 4], got [8, 4]}}
  %0 = "kiln.dispatch_grad"(%d, %s) {top_k = 2 : i64} : (tensor<8x4xf32>, tensor<8xi32>) -> tensor<8x4xf32>
  return
}

// -----

func.func @combine_grad_rows(%r: tensor<6x4xf32>, %w: tensor<4x2xf32>, %s: tensor<6xi32>, %dy: tensor<4x4xf32>) {
  // expected-error @+1 {{expects rows [tokens*top_k, hidden] for weights [tokens, top_k], got [6, 4] and [4, 2]}}
  %0:2 = "kiln.combine_grad"(%r, %w, %s, %dy) : (tensor<6x4xf32>, tensor<4x2xf32>, tensor<6xi32>, tensor<4x4xf32>) -> (tensor<6x4xf32>, tensor<4x2xf32>)
  return
}

// -----

func.func @combine_grad_source(%r: tensor<8x4xf32>, %w: tensor<4x2xf32>, %s: tensor<4xi32>, %dy: tensor<4x4xf32>) {
  // expected-error @+1 {{expects source of shape [8], got [4]}}
  %0:2 = "kiln.combine_grad"(%r, %w, %s, %dy) : (tensor<8x4xf32>, tensor<4x2xf32>, tensor<4xi32>, tensor<4x4xf32>) -> (tensor<8x4xf32>, tensor<4x2xf32>)
  return
}

// -----

func.func @combine_grad_dy(%r: tensor<8x4xf32>, %w: tensor<4x2xf32>, %s: tensor<8xi32>, %dy: tensor<8x4xf32>) {
  // expected-error @+1 {{expects dy of shape [4, 4], got [8, 4]}}
  %0:2 = "kiln.combine_grad"(%r, %w, %s, %dy) : (tensor<8x4xf32>, tensor<4x2xf32>, tensor<8xi32>, tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<4x2xf32>)
  return
}

// -----

func.func @combine_grad_drows(%r: tensor<8x4xf32>, %w: tensor<4x2xf32>, %s: tensor<8xi32>, %dy: tensor<4x4xf32>) {
  // expected-error @+1 {{expects drows of shape [8, 4], got [4, 4]}}
  %0:2 = "kiln.combine_grad"(%r, %w, %s, %dy) : (tensor<8x4xf32>, tensor<4x2xf32>, tensor<8xi32>, tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x2xf32>)
  return
}

// -----

func.func @combine_grad_dweights(%r: tensor<8x4xf32>, %w: tensor<4x2xf32>, %s: tensor<8xi32>, %dy: tensor<4x4xf32>) {
  // expected-error @+1 {{expects dweights of shape [4, 2], got [4, 4]}}
  %0:2 = "kiln.combine_grad"(%r, %w, %s, %dy) : (tensor<8x4xf32>, tensor<4x2xf32>, tensor<8xi32>, tensor<4x4xf32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @grouped_matmul_dgrad_dy_rank(%dy: tensor<6xf32>, %w: tensor<3x4x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects dy of rank 2, got rank 1 (shape [6])}}
  %0 = "kiln.grouped_matmul_dgrad"(%dy, %w, %o) : (tensor<6xf32>, tensor<3x4x8xf32>, tensor<4xi32>) -> tensor<6x8xf32>
  return
}

// -----

func.func @grouped_matmul_dgrad_weight_rank(%dy: tensor<6x4xf32>, %w: tensor<4x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects weight of rank 3, got rank 2 (shape [4, 8])}}
  %0 = "kiln.grouped_matmul_dgrad"(%dy, %w, %o) : (tensor<6x4xf32>, tensor<4x8xf32>, tensor<4xi32>) -> tensor<6x8xf32>
  return
}

// -----

func.func @grouped_matmul_dgrad_weight(%dy: tensor<6x4xf32>, %w: tensor<3x8x4xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects weight of shape [experts, 4, K], got [3, 8, 4]}}
  %0 = "kiln.grouped_matmul_dgrad"(%dy, %w, %o) : (tensor<6x4xf32>, tensor<3x8x4xf32>, tensor<4xi32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @grouped_matmul_dgrad_offsets(%dy: tensor<6x4xf32>, %w: tensor<3x4x8xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expects offsets of shape [4], got [3]}}
  %0 = "kiln.grouped_matmul_dgrad"(%dy, %w, %o) : (tensor<6x4xf32>, tensor<3x4x8xf32>, tensor<3xi32>) -> tensor<6x8xf32>
  return
}

// -----

func.func @grouped_matmul_dgrad_dx(%dy: tensor<6x4xf32>, %w: tensor<3x4x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects dx of shape [6, 8], got [6, 4]}}
  %0 = "kiln.grouped_matmul_dgrad"(%dy, %w, %o) : (tensor<6x4xf32>, tensor<3x4x8xf32>, tensor<4xi32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_dy_rank(%dy: tensor<6xf32>, %x: tensor<6x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects dy of rank 2, got rank 1 (shape [6])}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6xf32>, tensor<6x8xf32>, tensor<4xi32>) -> tensor<3x4x8xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_x_rank(%dy: tensor<6x4xf32>, %x: tensor<6x8x1xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects x of rank 2, got rank 3 (shape [6, 8, 1])}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6x4xf32>, tensor<6x8x1xf32>, tensor<4xi32>) -> tensor<3x4x8xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_rows(%dy: tensor<6x4xf32>, %x: tensor<5x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects dy and x with the same rows, got [6, 4] and [5, 8]}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6x4xf32>, tensor<5x8xf32>, tensor<4xi32>) -> tensor<3x4x8xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_offsets_rank(%dy: tensor<6x4xf32>, %x: tensor<6x8xf32>, %o: tensor<2x2xi32>) {
  // expected-error @+1 {{expects offsets of rank 1, got rank 2 (shape [2, 2])}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6x4xf32>, tensor<6x8xf32>, tensor<2x2xi32>) -> tensor<3x4x8xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_offsets_empty(%dy: tensor<6x4xf32>, %x: tensor<6x8xf32>, %o: tensor<0xi32>) {
  // expected-error @+1 {{expects offsets of shape [experts + 1], got [0]}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6x4xf32>, tensor<6x8xf32>, tensor<0xi32>) -> tensor<0x4x8xf32>
  return
}

// -----

func.func @grouped_matmul_wgrad_dweight(%dy: tensor<6x4xf32>, %x: tensor<6x8xf32>, %o: tensor<4xi32>) {
  // expected-error @+1 {{expects dweight of shape [3, 4, 8], got [3, 8, 4]}}
  %0 = "kiln.grouped_matmul_wgrad"(%dy, %x, %o) : (tensor<6x4xf32>, tensor<6x8xf32>, tensor<4xi32>) -> tensor<3x8x4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// cross_entropy_grad
//===----------------------------------------------------------------------===//

func.func @cross_entropy_grad_0d(%l: tensor<f32>, %t: tensor<i32>, %m: tensor<f32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects logits of rank >= 1}}
  %0 = "kiln.cross_entropy_grad"(%l, %t, %m, %d) {label_smoothing = 0.0 : f64} : (tensor<f32>, tensor<i32>, tensor<f32>, tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_grad_targets(%l: tensor<2x3x8xf32>, %t: tensor<2x4xi32>, %m: tensor<2x3xf32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects targets of shape [2, 3], got [2, 4]}}
  %0 = "kiln.cross_entropy_grad"(%l, %t, %m, %d) {label_smoothing = 0.0 : f64} : (tensor<2x3x8xf32>, tensor<2x4xi32>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @cross_entropy_grad_mask(%l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>, %m: tensor<6xf32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects mask of shape [2, 3], got [6]}}
  %0 = "kiln.cross_entropy_grad"(%l, %t, %m, %d) {label_smoothing = 0.0 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>, tensor<6xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @cross_entropy_grad_smoothing(%l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects label_smoothing in [0, 1), got 1}}
  %0 = "kiln.cross_entropy_grad"(%l, %t, %m, %d) {label_smoothing = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @cross_entropy_grad_dlogits(%l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects dlogits of shape [2, 3, 8], got [6, 8]}}
  %0 = "kiln.cross_entropy_grad"(%l, %t, %m, %d) {label_smoothing = 0.0 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<f32>) -> tensor<6x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// KilnTrainOps.cpp: expert_load / balance_loss / balance_loss_grad
//===----------------------------------------------------------------------===//

func.func @expert_load_num_experts(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects num_experts > 0, got 0}}
  %0 = "kiln.expert_load"(%i) {num_experts = 0 : i64} : (tensor<4x2xi32>) -> tensor<0xf32>
  return
}

// -----

func.func @expert_load_negative(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects num_experts > 0, got -8}}
  %0 = "kiln.expert_load"(%i) {num_experts = -8 : i64} : (tensor<4x2xi32>) -> tensor<8xf32>
  return
}

// -----

func.func @expert_load_load(%i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects load of shape [8], got [4]}}
  %0 = "kiln.expert_load"(%i) {num_experts = 8 : i64} : (tensor<4x2xi32>) -> tensor<4xf32>
  return
}

// -----

func.func @balance_loss_logits_rank(%l: tensor<32xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects logits ([tokens, experts]) of rank 2, got rank 1 (shape [32])}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<32xf32>, tensor<4x2xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_indices_rank(%l: tensor<4x8xf32>, %i: tensor<8xi32>) {
  // expected-error @+1 {{expects indices ([tokens, top_k]) of rank 2, got rank 1 (shape [8])}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x8xf32>, tensor<8xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_indices_rows(%l: tensor<4x8xf32>, %i: tensor<2x2xi32>) {
  // expected-error @+1 {{expects one indices row per token (4), got [2, 2]}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x8xf32>, tensor<2x2xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_top_k(%l: tensor<4x8xf32>, %i: tensor<4x0xi32>) {
  // expected-error @+1 {{expects indices ([tokens, top_k]) with top_k >= 1, got [4, 0]}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x8xf32>, tensor<4x0xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_sequences(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects num_sequences to divide the 4 tokens, got 3}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "sigmoid", num_sequences = 3 : i64} : (tensor<4x8xf32>, tensor<4x2xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_scoring(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>) {
  // expected-error @+1 {{expects scoring "sigmoid" or "softmax", got "tanh"}}
  %0 = "kiln.balance_loss"(%l, %i) {scoring = "tanh", num_sequences = 2 : i64} : (tensor<4x8xf32>, tensor<4x2xi32>) -> tensor<f32>
  return
}

// -----

func.func @balance_loss_grad_sequences(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects num_sequences to divide the 4 tokens, got 0}}
  %0 = "kiln.balance_loss_grad"(%l, %i, %d) {scoring = "softmax", num_sequences = 0 : i64} : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @balance_loss_grad_dlogits(%l: tensor<4x8xf32>, %i: tensor<4x2xi32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects dlogits of shape [4, 8], got [4, 2]}}
  %0 = "kiln.balance_loss_grad"(%l, %i, %d) {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<4x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// KilnTrainOps.cpp: lr_schedule / global_norm / clip_scale / adamw / bias_update
//===----------------------------------------------------------------------===//

func.func @lr_schedule_min_lr(%s: tensor<i64>) {
  // expected-error @+1 {{expects 0 <= min_lr <= lr, got lr = 1.000000e-03, min_lr = 1.000000e-02}}
  %0 = "kiln.lr_schedule"(%s) {lr = 1.0e-03 : f64, min_lr = 1.0e-02 : f64, warmup_steps = 2 : i64, total_steps = 10 : i64} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @lr_schedule_steps(%s: tensor<i64>) {
  // expected-error @+1 {{expects warmup_steps and total_steps >= 0, got -1 and 10}}
  %0 = "kiln.lr_schedule"(%s) {lr = 1.0e-03 : f64, min_lr = 0.0 : f64, warmup_steps = -1 : i64, total_steps = 10 : i64} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @global_norm_empty() {
  // expected-error @+1 {{expects at least one tensor}}
  %0 = "kiln.global_norm"() : () -> tensor<f32>
  return
}

// -----

func.func @clip_scale_negative(%n: tensor<f32>) {
  // expected-error @+1 {{expects max_norm >= 0, got -1.000000e+00}}
  %0 = "kiln.clip_scale"(%n) {max_norm = -1.0 : f64} : (tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @adamw_grad(%p: tensor<4x4xf32>, %g: tensor<4x8xf32>, %m: tensor<4x4xf32>, %v: tensor<4x4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects grad of shape [4, 4], got [4, 8]}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4x4xf32>, tensor<4x8xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_new_v(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %v: tensor<4x4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects new_v of shape [4, 4], got [16]}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<16xf32>)
  return
}

// -----

func.func @adamw_betas(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %v: tensor<4x4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects betas in [0, 1), got 9.000000e-01 and 1.000000e+00}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 1.0 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_eps(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %v: tensor<4x4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects eps > 0 and weight_decay >= 0}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 0.0 : f64, weight_decay = 0.1 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_f16_moments(%p: tensor<4xf32>, %g: tensor<4xf32>, %m: tensor<4xf16>, %v: tensor<4xf16>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects moments in f32 or bf16, got 'tensor<4xf16>'}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf16>, tensor<4xf16>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf16>, tensor<4xf16>)
  return
}

// -----

func.func @adamw_mixed_moments(%p: tensor<4xf32>, %g: tensor<4xf32>, %m: tensor<4xbf16>, %v: tensor<4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects both moments and their new values in one element type ('bf16'), got 'tensor<4xf32>'}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4xf32>, tensor<4xf32>, tensor<4xbf16>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xbf16>, tensor<4xf32>)
  return
}

// -----

func.func @adamw_bf16_param(%p: tensor<4xbf16>, %g: tensor<4xf32>, %m: tensor<4xf32>, %v: tensor<4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>) {
  // expected-error @+1 {{expects an f32 param (master weights and gradients stay f32), got 'tensor<4xbf16>'}}
  %0:3 = "kiln.adamw"(%p, %g, %m, %v, %lr, %t, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>}> {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4xbf16>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xbf16>, tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @grad_scaler_growth(%n: tensor<f32>, %s: tensor<f32>, %t: tensor<i64>, %u: tensor<i64>) {
  // expected-error @+1 {{expects a finite growth_factor > 1, got 1}}
  %0:5 = "kiln.grad_scaler"(%n, %s, %t, %u) {growth_factor = 1.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2000 : i64} : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  return
}

// -----

func.func @grad_scaler_backoff(%n: tensor<f32>, %s: tensor<f32>, %t: tensor<i64>, %u: tensor<i64>) {
  // expected-error @+1 {{expects backoff_factor in (0, 1), got 1}}
  %0:5 = "kiln.grad_scaler"(%n, %s, %t, %u) {growth_factor = 2.0 : f64, backoff_factor = 1.0 : f64, growth_interval = 2000 : i64} : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  return
}

// -----

func.func @grad_scaler_interval(%n: tensor<f32>, %s: tensor<f32>, %t: tensor<i64>, %u: tensor<i64>) {
  // expected-error @+1 {{expects growth_interval >= 1, got 0}}
  %0:5 = "kiln.grad_scaler"(%n, %s, %t, %u) {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 0 : i64} : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  return
}

// -----

func.func @bias_update_rank(%b: tensor<2x4xf32>, %l: tensor<2x4xf32>) {
  // expected-error @+1 {{expects bias of rank 1, got rank 2 (shape [2, 4])}}
  %0 = "kiln.bias_update"(%b, %l) {speed = 1.0e-03 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bias_update_load(%b: tensor<8xf32>, %l: tensor<4xf32>) {
  // expected-error @+1 {{expects load of shape [8], got [4]}}
  %0 = "kiln.bias_update"(%b, %l) {speed = 1.0e-03 : f64} : (tensor<8xf32>, tensor<4xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @bias_update_new_bias(%b: tensor<8xf32>, %l: tensor<8xf32>) {
  // expected-error @+1 {{expects new_bias of shape [8], got [4]}}
  %0 = "kiln.bias_update"(%b, %l) {speed = 1.0e-03 : f64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @adamw_mask(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %v: tensor<4x4xf32>, %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>, %mask: tensor<16xf32>) {
  // expected-error @+1 {{'kiln.adamw' op expects a mask of the parameter's type 'tensor<4x4xf32>', got 'tensor<16xf32>'}}
  %0:3 = kiln.adamw %p, %g, %m, %v, %lr, %t, %s mask %mask {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<16xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}
