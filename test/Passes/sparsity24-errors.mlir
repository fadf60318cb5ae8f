// RUN: not kiln-opt %s --kiln-sparsity-2-4 2>&1 | FileCheck %s --check-prefix=NO-ADAMW
// RUN: not kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4 2>&1 | FileCheck %s --check-prefix=SHAPE
// RUN: not kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="targets=model.layers.*" 2>&1 | FileCheck %s --check-prefix=NO-MATCH
// RUN: not kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="method=ste" 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="start-step=0" 2>&1 | FileCheck %s --check-prefix=START

// A model whose projection has 6 inputs: not groups of 4.
func.func @forward(%emb: tensor<16x6xf32> {kiln.param = "embed.weight"},
                   %w: tensor<6x6xf32> {kiln.param = "proj.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x6xf32>, tensor<2x4xi32>) -> tensor<2x4x6xf32>
  %y = kiln.linear %h, %w : (tensor<2x4x6xf32>, tensor<6x6xf32>) -> tensor<2x4x6xf32>
  %logits = kiln.linear %y, %emb : (tensor<2x4x6xf32>, tensor<16x6xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// NO-ADAMW: error: kiln-sparsity-2-4: no AdamW update in the module; run kiln-autodiff (mode=train) first
// SHAPE: error: kiln-sparsity-2-4: "embed.weight" 'tensor<16x6xf32>' cannot be 2:4 sparse: it needs rank >= 2 and a last (input) dimension divisible by 4; leave it out of the targets
// NO-MATCH: error: kiln-sparsity-2-4: target 'model.layers.*' matches no trainable parameter (they are named like 'embed.weight')
// METHOD: error: kiln-sparsity-2-4: unknown method 'ste'; expected magnitude or sr-ste
// START: error: kiln-sparsity-2-4: expects start-step >= 1, mask-every >= 0 and decay >= 0, got 0, 0 and 2.000000e-04
