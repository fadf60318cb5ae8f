// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=selective report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s

// The selective rule of passes/Recompute.cpp, op family by op family: an
// MLA up-projection (a linear of a *q_b_proj.weight) counts as cheap, so
// what it and the norm and SiLU after it make is recomputed; another linear
// (o_proj) is not, so its input stays saved and everything downstream of it
// that needs its output is kept too.

func.func private @block(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %wq: tensor<8x8xf32> {kiln.param = "self_attn.q_b_proj.weight"},
                         %wo: tensor<8x8xf32> {kiln.param = "self_attn.o_proj.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %q = kiln.linear %n, %wq : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = kiln.silu %q : tensor<2x4x8xf32>
  %o = kiln.linear %s, %wo : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %t = kiln.silu %o : tensor<2x4x8xf32>
  %r = arith.addf %x, %t : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g: tensor<8xf32> {kiln.param = "layers.0.norm.weight"},
                   %wq: tensor<8x8xf32> {kiln.param = "layers.0.self_attn.q_b_proj.weight"},
                   %wo: tensor<8x8xf32> {kiln.param = "layers.0.self_attn.o_proj.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g, %wq, %wo) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h1, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// Saved by autodiff: the norm's output, q, silu(q) and o. The backward
// recomputes the first three (norm, the q_b_proj linear, SiLU) at its start
// and keeps only o, the o_proj linear's output.
// CHECK: remark: kiln-activation-checkpointing: @block_bwd recomputes 3 of its 4 saved values (768 bytes per call, 1 calls)
// CHECK-LABEL: func.func private @block_bwd(
// CHECK-SAME: %arg5: tensor<2x4x8xf32>) -> (
// CHECK-SAME: kiln.saved = 1 : i64
// CHECK-NEXT: %[[N:.*]] = kiln.rms_norm %arg0, %arg1
// CHECK-NEXT: %[[Q:.*]] = kiln.linear %[[N]], %arg2
// CHECK-NEXT: %[[S:.*]] = kiln.silu %[[Q]]
// CHECK-NOT: kiln.linear %[[S]], %arg3
// CHECK: kiln.silu_grad %{{.*}}, %arg5
