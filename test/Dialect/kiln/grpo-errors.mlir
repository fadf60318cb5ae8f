// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of GRPO's ops (KilnLossOps.cpp).

func.func @logprobs_targets(%l: tensor<4x8x16xf32>, %t: tensor<4x7xi32>) {
  // expected-error @+1 {{expects targets of shape [4, 8], got [4, 7]}}
  %0 = "kiln.token_logprobs"(%l, %t) : (tensor<4x8x16xf32>, tensor<4x7xi32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @logprobs_temperature(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>) {
  // expected-error @+1 {{expects temperature > 0, got 0}}
  %0 = "kiln.token_logprobs"(%l, %t) {temperature = 0.0 : f64} : (tensor<4x8x16xf32>, tensor<4x8xi32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @grpo_rank(%l: tensor<32x16xf32>, %t: tensor<32xi32>, %m: tensor<32xf32>, %a: tensor<4xf32>, %o: tensor<32xf32>, %r: tensor<32xf32>) {
  // expected-error @+1 {{expects logits ([rows, seq, vocab]) of rank 3}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) : (tensor<32x16xf32>, tensor<32xi32>, tensor<32xf32>, tensor<4xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_advantages(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<2xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>) {
  // expected-error @+1 {{expects advantages of shape [4], got [2]}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<2xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_ref(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x16xf32>) {
  // expected-error @+1 {{expects ref_logprobs of shape [4, 8], got [4, 16]}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x16xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_clip(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>) {
  // expected-error @+1 {{expects clip_low in [0, 1) and clip_high >= 0, got 1.000000e+00 and 2.000000e-01}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) {clip_low = 1.0 : f64} : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_beta(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>) {
  // expected-error @+1 {{expects beta >= 0, got -1.000000e-01}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) {beta = -0.1 : f64} : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_aggregation(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>) {
  // expected-error @+1 {{expects aggregation "token-mean", "seq-mean-token-mean" or "seq-mean-token-sum-norm", got "sum"}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) {aggregation = "sum"} : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_dr_normaliser(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>) {
  // expected-error @+1 {{expects max_tokens > 0 (Dr. GRPO's constant normaliser) with "seq-mean-token-sum-norm", got 0}}
  %0 = "kiln.grpo_loss"(%l, %t, %m, %a, %o, %r) {aggregation = "seq-mean-token-sum-norm"} : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @grpo_grad_result(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>, %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>, %d: tensor<f32>) {
  // expected-error @+1 {{expects dlogits of shape [4, 8, 16], got [4, 8, 8]}}
  %0 = "kiln.grpo_loss_grad"(%l, %t, %m, %a, %o, %r, %d) : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<f32>) -> tensor<4x8x8xf32>
  return
}
