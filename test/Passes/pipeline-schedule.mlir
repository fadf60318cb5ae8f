// kiln-pipeline lowers each schedule of passes/PipelineSchedule.h into the
// order rank 0's program runs its actions in (4 layers, pp 2; the tied head
// and the loss on the last stage).
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=gpipe" --kiln-verify-collectives | FileCheck %s --check-prefix=GPIPE
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=interleaved-1f1b virtual-stages=2" --kiln-verify-collectives | FileCheck %s --check-prefix=INTERLEAVED
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 schedule=dualpipev" --kiln-verify-collectives | FileCheck %s --check-prefix=DUALPIPEV
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 schedule=zb-v" --kiln-verify-collectives | FileCheck %s --check-prefix=ZBV

func.func private @block(%x: tensor<2x4x8xf32>, %g: tensor<8xf32> {kiln.param = "norm.weight"},
                         %w: tensor<8x8xf32> {kiln.param = "proj.weight"}) -> tensor<2x4x8xf32> {
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = kiln.linear %n, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = kiln.silu %y : tensor<2x4x8xf32>
  %r = arith.addf %x, %s : tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g0: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %w0: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"},
                   %g1: tensor<8xf32> {kiln.param = "layers.1.norm.weight"}, %w1: tensor<8x8xf32> {kiln.param = "layers.1.proj.weight"},
                   %g2: tensor<8xf32> {kiln.param = "layers.2.norm.weight"}, %w2: tensor<8x8xf32> {kiln.param = "layers.2.proj.weight"},
                   %g3: tensor<8xf32> {kiln.param = "layers.3.norm.weight"}, %w3: tensor<8x8xf32> {kiln.param = "layers.3.proj.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g0, %w0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h2 = call @block(%h1, %g1, %w1) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h3 = call @block(%h2, %g2, %w2) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h4 = call @block(%h3, %g3, %w3) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h4, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// GPipe: rank 0 (layers 0-2 with the embedding) runs every forward, then
// every backward; the tied head's gradient pieces are exchanged at the end.
// GPIPE-LABEL: func.func @train_step_pp0(
// GPIPE-COUNT-3: call @block_fwd(
// GPIPE: kiln.send {{.*}} {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// GPIPE-NOT: call @block_bwd(
// GPIPE-COUNT-3: call @block_fwd(
// GPIPE: kiln.send {{.*}} {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// GPIPE: kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// GPIPE-COUNT-3: call @block_bwd(
// GPIPE: kiln.embedding_grad
// GPIPE: kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// GPIPE-COUNT-3: call @block_bwd(
// GPIPE: kiln.embedding_grad
// GPIPE: kiln.send {{.*}} {axis = "pp", peer = 1 : i64} : tensor<16x8xf32>
// GPIPE: kiln.recv {axis = "pp", peer = 1 : i64} : tensor<16x8xf32>
// Rank 1 (layer 3, the head, the loss): both micro-batches' losses before
// any backward (1F1B would run micro-batch 0's backward in between).
// GPIPE-LABEL: func.func @train_step_pp1(
// GPIPE: kiln.cross_entropy %
// GPIPE-NOT: kiln.cross_entropy_grad
// GPIPE: kiln.cross_entropy %
// GPIPE: kiln.cross_entropy_grad %

// Interleaved 1F1B, 2 chunks per rank: rank 0 holds stages 0 and 2
// (Megatron's placement). Both micro-batches go through stage 0, then
// through stage 2 (received from rank 1's stage 1), whose backwards come
// before stage 0's.
// INTERLEAVED-LABEL: func.func @train_step_pp0(
// INTERLEAVED: kiln.embedding
// INTERLEAVED-NEXT: call @block_fwd(
// INTERLEAVED-NEXT: kiln.send
// INTERLEAVED: kiln.embedding
// INTERLEAVED-NEXT: call @block_fwd(
// INTERLEAVED-NEXT: kiln.send
// INTERLEAVED-NEXT: kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// INTERLEAVED-NEXT: call @block_fwd(
// INTERLEAVED-NEXT: kiln.send
// INTERLEAVED-NEXT: kiln.recv
// INTERLEAVED-NEXT: call @block_fwd(
// INTERLEAVED-NEXT: kiln.send
// INTERLEAVED-NEXT: kiln.recv
// INTERLEAVED-NEXT: call @block_bwd(
// INTERLEAVED-NEXT: kiln.send
// INTERLEAVED-NOT: kiln.embedding_grad
// INTERLEAVED: call @block_bwd(
// INTERLEAVED: call @block_bwd(
// INTERLEAVED-NEXT: kiln.embedding_grad
// INTERLEAVED: call @block_bwd(
// INTERLEAVED-NEXT: kiln.embedding_grad
// INTERLEAVED-LABEL: func.func @train_step_pp1(

// DualPipeV: the V puts stages 0 and 3 on rank 0, so it runs the embedding
// and the loss; its deferred weight gradients use the cut backward
// (@block_bwd_input / @block_bwd_weight) and its overlapped F&B pairs run a
// forward then a whole backward. The tied embedding's gradient pieces are
// both on rank 0: no [16, 8] tensor crosses ranks.
// DUALPIPEV-LABEL: func.func @train_step_pp0(
// DUALPIPEV-SAME: kiln.ranks = array<i64: 0>
// DUALPIPEV: kiln.embedding
// DUALPIPEV: kiln.cross_entropy
// DUALPIPEV: call @block_bwd_input(
// DUALPIPEV: call @block_bwd_weight(
// DUALPIPEV: call @block_fwd(
// DUALPIPEV: kiln.cross_entropy
// DUALPIPEV: call @block_bwd(
// DUALPIPEV: kiln.embedding_grad
// DUALPIPEV-NOT: kiln.send {{.*}} : tensor<16x8xf32>
// DUALPIPEV-NOT: kiln.recv {{.*}} : tensor<16x8xf32>
// DUALPIPEV: kiln.global_norm
// DUALPIPEV-LABEL: func.func @train_step_pp1(
// DUALPIPEV-NOT: kiln.embedding

// ZB-V: the same V (stages 0 and 3 on rank 0), every backward cut into its
// input half and its deferred weight half; rank 0 runs its three warm-up
// forwards of stage 0 before the first of stage 3.
// ZBV-LABEL: func.func @train_step_pp0(
// ZBV-SAME: kiln.ranks = array<i64: 0>
// ZBV: kiln.embedding
// ZBV-NEXT: call @block_fwd(
// ZBV: kiln.embedding
// ZBV-NEXT: call @block_fwd(
// ZBV: kiln.embedding
// ZBV-NEXT: call @block_fwd(
// ZBV: kiln.recv {axis = "pp", peer = 1 : i64}
// ZBV-NEXT: call @block_fwd(
// ZBV: kiln.cross_entropy
// ZBV: call @block_bwd_input(
// ZBV: call @block_bwd_weight(
// ZBV-NOT: kiln.send {{.*}} : tensor<16x8xf32>
// ZBV: kiln.global_norm
// ZBV-LABEL: func.func @train_step_pp1(
// ZBV-NOT: kiln.embedding
// ZBV: call @block_bwd_input(
// ZBV: call @block_bwd_weight(
