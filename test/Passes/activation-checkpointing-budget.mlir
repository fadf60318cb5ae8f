// policy=budget on the step of activation-checkpointing.mlir's module (two
// layers of @block and an @outer block that nests one): without
// recomputation its planned arena is 4096 bytes, with every block
// recomputed in full 2688, the smallest any policy plans.
//
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=4096 report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s --check-prefix=FITS
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=4000 report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s --check-prefix=B4000
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=3500 report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s --check-prefix=B3500
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=2688 report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s --check-prefix=B2688
//
// The arena the build then plans is the one the pass priced, within budget.
// RUN: kiln-opt %s --pass-pipeline="builtin.module(kiln-autodiff{lr=0.01 total-steps=10},kiln-activation-checkpointing{policy=budget budget-bytes=3500},inline,convert-kiln-to-kernel,func.func(kiln-fuse-elementwise,kiln-plan-arena))" | FileCheck %s --check-prefix=PLANNED

// A budget the step fits as it is changes nothing.
// FITS: remark: kiln-activation-checkpointing: policy budget: the arena without recomputation, 4096 bytes, fits the budget of 4096 bytes
// FITS-NOT: _selective
// FITS-NOT: _full
// FITS: call @block_bwd(%{{[^,]*}}, %arg1, %arg2, %{{[^,]*}}, %{{[^,]*}}, %{{[^,)]*}}) :

// 96 bytes short: the first layer's norm is recomputed (64 FLOPs, one per
// element) and its 256 bytes are no longer kept.
// B4000: remark: kiln-activation-checkpointing: policy budget: block 1 of 3 (@block_bwd) recomputes selective
// B4000: remark: kiln-activation-checkpointing: policy budget: block 2 of 3 (@block_bwd) recomputes none
// B4000: remark: kiln-activation-checkpointing: policy budget: block 3 of 3 (@outer_bwd) recomputes none
// B4000: remark: kiln-activation-checkpointing: policy budget: an arena of 3840 bytes fits the budget of 4000 bytes (without recomputation 4096) with 64 recompute FLOPs per step; blocks none 2, selective 1, full 0; 7 plans priced
// B4000-LABEL: func.func private @block_bwd(
// B4000-SAME: kiln.saved = 2
// B4000-LABEL: func.func private @block_bwd_selective(
// B4000-SAME: kiln.saved = 1
// B4000-NEXT: kiln.rms_norm %arg0, %arg1
// B4000-LABEL: func.func @train_step(
// B4000: call @outer_bwd(
// B4000: call @block_bwd(
// B4000: call @block_bwd_selective(%{{[^,]*}}, %arg1, %arg2, %{{[^,]*}}, %{{[^,)]*}}) :

// Levels mix: the MTP-like outer block recomputes in full (its nested call
// keeps the original @block_bwd, fed by the recomputed forward).
// B3500: block 1 of 3 (@block_bwd) recomputes selective
// B3500: block 2 of 3 (@block_bwd) recomputes none
// B3500: block 3 of 3 (@outer_bwd) recomputes full
// B3500: an arena of 3328 bytes fits the budget of 3500 bytes (without recomputation 4096) with 1280 recompute FLOPs per step; blocks none 1, selective 1, full 1
// B3500-LABEL: func.func private @outer_bwd_full(
// B3500-SAME: kiln.saved = 0
// B3500: call @block_fwd(%arg0, %arg1, %arg2)
// B3500: call @block_bwd(
// B3500-LABEL: func.func @train_step(
// B3500: call @outer_bwd_full(%{{[^,]*}}, %arg5, %arg6, %{{[^,)]*}}) :
// B3500: call @block_bwd(%{{[^,]*}}, %arg3, %arg4, %{{[^,]*}}, %{{[^,]*}}, %{{[^,)]*}}) :
// B3500: call @block_bwd_selective(

// The smallest feasible budget: everything in full. Originals no call
// needs are gone; the nested block keeps its saved values.
// B2688: an arena of 2688 bytes fits the budget of 2688 bytes (without recomputation 4096) with 3392 recompute FLOPs per step; blocks none 0, selective 0, full 3
// B2688-LABEL: func.func private @block_bwd(
// B2688-SAME: kiln.saved = 2
// B2688-LABEL: func.func private @block_bwd_full(
// B2688-NOT: func.func private @outer_bwd(
// B2688-LABEL: func.func @train_step(
// B2688: call @outer_bwd_full(
// B2688: call @block_bwd_full(
// B2688: call @block_bwd_full(

// PLANNED: kiln_kernel.arena_bytes = 3328

func.func private @block(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w: tensor<8x8xf32> {kiln.param = "proj.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = kiln.linear %n, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = kiln.silu %y : tensor<2x4x8xf32>
  %r = arith.addf %x, %s : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func private @outer(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w: tensor<8x8xf32> {kiln.param = "proj.weight"}) -> tensor<2x4x8xf32> {
  %h = call @block(%x, %g, %w) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %t = kiln.silu %h : tensor<2x4x8xf32>
  return %t : tensor<2x4x8xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g0: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %w0: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"},
                   %g1: tensor<8xf32> {kiln.param = "layers.1.norm.weight"}, %w1: tensor<8x8xf32> {kiln.param = "layers.1.proj.weight"},
                   %g2: tensor<8xf32> {kiln.param = "mtp.norm.weight"}, %w2: tensor<8x8xf32> {kiln.param = "mtp.proj.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g0, %w0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h2 = call @block(%h1, %g1, %w1) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h3 = call @outer(%h2, %g2, %w2) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h3, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}
