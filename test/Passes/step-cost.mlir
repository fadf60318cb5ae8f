// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=2304 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=FLOOR
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=2600 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=CHEAP

// The FLOP model of passes/StepCost.cpp, through the recompute FLOPs the
// budget policy reports: a linear costs 2 x result elements x K, every other
// op one per result element; a recomputed block costs what its backward
// clones of the forward.
//  * @dense in full: its rms_norm (2x4x8 = 64 elements: 64) and linear
//    (2 x 64 x 8 = 1024); its silu and residual add only made the block's
//    result and are not recomputed: 1088.
//  * a selective block recomputes its rms_norm alone: 64.

// FLOOR: block 1 of 2 (@dense_bwd) recomputes full
// FLOOR: block 2 of 2 (@attn_bwd) recomputes selective
// FLOOR: an arena of 2304 bytes fits the budget of 2304 bytes (without recomputation 2816) with 1152 recompute FLOPs per step
// CHEAP: block 1 of 2 (@dense_bwd) recomputes selective
// CHEAP: block 2 of 2 (@attn_bwd) recomputes none
// CHEAP: with 64 recompute FLOPs per step

func.func private @dense(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w: tensor<8x8xf32> {kiln.param = "proj.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = kiln.linear %n, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = kiln.silu %y : tensor<2x4x8xf32>
  %r = arith.addf %x, %s : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func private @attn(%x: tensor<2x4x2x4xf32>, %g: tensor<4xf32> {kiln.param = "attn_norm.weight"}) -> tensor<2x4x2x4xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x2x4xf32>, tensor<4xf32>) -> tensor<2x4x2x4xf32>
  %a = kiln.attention %n, %n, %n {scale = 0.5 : f64, causal = true} : (tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> tensor<2x4x2x4xf32>
  %r = arith.addf %x, %a : tensor<2x4x2x4xf32>
  return %r : tensor<2x4x2x4xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g0: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %w0: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"},
                   %g1: tensor<4xf32> {kiln.param = "layers.1.attn_norm.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @dense(%h, %g0, %w0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h4 = tensor.expand_shape %h1 [[0], [1], [2, 3]] output_shape [2, 4, 2, 4] : tensor<2x4x8xf32> into tensor<2x4x2x4xf32>
  %h5 = call @attn(%h4, %g1) : (tensor<2x4x2x4xf32>, tensor<4xf32>) -> tensor<2x4x2x4xf32>
  %h6 = tensor.collapse_shape %h5 [[0], [1], [2, 3]] : tensor<2x4x2x4xf32> into tensor<2x4x8xf32>
  %logits = kiln.linear %h6, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}
