// The cut of a block backward into its input-gradient half and its
// weight-gradient half (passes/BackwardSplit.cpp), as kiln-pipeline makes it
// for a schedule that defers weight gradients (zb-h1, pp 2): stage 1's block
// backward is cut, because stage 0 waits only for its input gradient;
// stage 0 sends nothing back, so its backward runs whole in W.
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=zb-h1" --kiln-verify-collectives | FileCheck %s
// Without deferred weight gradients (1f1b) nothing is cut.
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=1f1b" | FileCheck %s --check-prefix=WHOLE

func.func private @block(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w1: tensor<16x8xf32> {kiln.param = "up.weight"},
                         %w2: tensor<8x16xf32> {kiln.param = "down.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %u = kiln.linear %n, %w1 : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %s = kiln.silu %u : tensor<2x4x16xf32>
  %d = kiln.linear %s, %w2 : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %r = arith.addf %x, %d : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g0: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %a0: tensor<16x8xf32> {kiln.param = "layers.0.up.weight"}, %b0: tensor<8x16xf32> {kiln.param = "layers.0.down.weight"},
                   %g1: tensor<8xf32> {kiln.param = "layers.1.norm.weight"}, %a1: tensor<16x8xf32> {kiln.param = "layers.1.up.weight"}, %b1: tensor<8x16xf32> {kiln.param = "layers.1.down.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g0, %a0, %b0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %h2 = call @block(%h1, %g1, %a1, %b1) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h2, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// The input half: both dgrad GEMMs, the activation and norm gradients, and
// the residual; it returns the input gradient, then the bridges the weight
// half reads: the up projection's output gradient (silu_grad) and dgamma,
// which rms_norm_grad computes with dx.
// CHECK-LABEL: func.func private @block_bwd_input(
// CHECK-SAME: %[[X:arg0]]: tensor<2x4x8xf32>, %{{.*}}: tensor<8xf32> {kiln.param = "norm.weight"}, %{{.*}}: tensor<16x8xf32> {kiln.param = "up.weight"}, %{{.*}}: tensor<8x16xf32> {kiln.param = "down.weight"}, %[[DY:arg4]]: tensor<2x4x8xf32>
// CHECK-SAME: -> (tensor<2x4x8xf32>, tensor<2x4x16xf32>, tensor<8xf32>)
// CHECK-NOT: kiln.linear_wgrad
// CHECK: kiln.linear_dgrad %[[DY]]
// CHECK: %[[DU:.*]] = kiln.silu_grad
// CHECK: kiln.linear_dgrad %[[DU]]
// CHECK: %[[DX:.*]], %[[DGAMMA:.*]] = kiln.rms_norm_grad
// CHECK: %[[DIN:.*]] = arith.addf %[[DY]], %[[DX]]
// CHECK-NOT: kiln.linear_wgrad
// CHECK: return %[[DIN]], %[[DU]], %[[DGAMMA]]

// The weight half: the original arguments, then the bridges; both wgrad
// GEMMs; the other results in the original's order (dgamma passed through).
// CHECK-LABEL: func.func private @block_bwd_weight(
// CHECK-SAME: %[[WDY:arg4]]: tensor<2x4x8xf32>, %[[S:arg5]]: tensor<2x4x16xf32>, %{{.*}}: tensor<2x4x16xf32>, %[[N:arg7]]: tensor<2x4x8xf32>, %[[BDU:arg8]]: tensor<2x4x16xf32>, %[[BDG:arg9]]: tensor<8xf32>)
// CHECK-SAME: -> (tensor<8xf32>, tensor<16x8xf32>, tensor<8x16xf32>)
// CHECK-NOT: kiln.linear_dgrad
// CHECK: %[[DDOWN:.*]] = kiln.linear_wgrad %[[WDY]], %[[S]]
// CHECK: %[[DUP:.*]] = kiln.linear_wgrad %[[BDU]], %[[N]]
// CHECK: return %[[BDG]], %[[DUP]], %[[DDOWN]]

// Stage 1 calls the input half in B, sends its first result down, and the
// weight half in W with the input half's bridges; stage 0 calls the whole
// backward.
// CHECK-LABEL: func.func @train_step_pp0(
// CHECK-NOT: call @block_bwd_input
// CHECK: call @block_bwd(
// CHECK-LABEL: func.func @train_step_pp1(
// CHECK: %[[IN:.*]]:3 = call @block_bwd_input(
// CHECK: kiln.send %[[IN]]#0 {axis = "pp", peer = 0 : i64}
// CHECK: call @block_bwd_weight({{.*}}, %[[IN]]#1, %[[IN]]#2)

// WHOLE-NOT: @block_bwd_input
// WHOLE-NOT: @block_bwd_weight
