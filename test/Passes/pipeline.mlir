// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2" --kiln-verify-collectives | FileCheck %s
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=zb-h1" --kiln-verify-collectives | FileCheck %s --check-prefix=ZB
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="dp=2 microbatches=2" --kiln-pipeline="pp=2" --kiln-verify-collectives | FileCheck %s --check-prefix=DP
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=zb-h1 report=true" --kiln-verify-collectives -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=2" --kiln-pipeline="pp=2 schedule=zb-h1" -mlir-print-debuginfo | FileCheck %s --check-prefix=ACTIONS

// Two layers of one block, a head tied to the embedding, masked
// cross-entropy. On pp 2 layer 0 is on stage 0 with the embedding, layer 1
// on stage 1 with the head and the loss.
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
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %h1 = call @block(%h, %g0, %w0) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %h2 = call @block(%h1, %g1, %w1) : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %h2, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// 1F1B, 2 micro-batches. Rank 0 runs both forwards (sending each block's
// output up), then both backwards (receiving each input gradient), summing
// its gradients over micro-batches as each backward ends. Its piece of the
// tied embedding's gradient (embedding_grad) and rank 1's (the head's
// linear_wgrad) are exchanged, rank 0 sending first, and added in rank
// order on both: both run the same AdamW on it. The gradient norm adds the
// ranks' squared norms, the shared gradient counted on rank 0 only; the
// loss is all-reduced from rank 1 (rank 0 adds zero).
// CHECK: module attributes {kiln.grid = #kiln.grid<axes = ["pp"], shape = [2]>}
// CHECK-LABEL: func.func @train_step_pp0(
// CHECK-SAME: %[[EMB:arg0]]: tensor<16x8xf32> {kiln.param = "embed.weight"}, %{{.*}}: tensor<8xf32> {kiln.param = "layers.0.norm.weight"}, %{{.*}}: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"}
// CHECK-NOT: layers.1
// CHECK-SAME: attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>}
// CHECK: %[[H0:.*]] = kiln.embedding %[[EMB]]
// CHECK: %[[F0:.*]]:3 = call @block_fwd(%[[H0]],
// CHECK: kiln.send %[[F0]]#0 {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// CHECK: %[[F1:.*]]:3 = call @block_fwd(
// CHECK: kiln.send %[[F1]]#0 {axis = "pp", peer = 1 : i64}
// CHECK: %[[G0:.*]] = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4x8xf32>
// CHECK: %[[B0:.*]]:3 = call @block_bwd(%[[H0]], %{{.*}}, %{{.*}}, %[[G0]], %[[F0]]#1, %[[F0]]#2)
// CHECK: %[[E0:.*]] = kiln.embedding_grad %[[B0]]#0
// CHECK: %[[G1:.*]] = kiln.recv {axis = "pp", peer = 1 : i64}
// CHECK: %[[B1:.*]]:3 = call @block_bwd(
// CHECK: %[[E1:.*]] = kiln.embedding_grad %[[B1]]#0
// CHECK: %[[MINE:.*]] = arith.addf %[[E0]], %[[E1]] : tensor<16x8xf32>
// CHECK: kiln.send %[[MINE]] {axis = "pp", peer = 1 : i64} : tensor<16x8xf32>
// CHECK: %[[THEIRS:.*]] = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<16x8xf32>
// CHECK: %[[DEMB:.*]] = arith.addf %[[MINE]], %[[THEIRS]] : tensor<16x8xf32>
// CHECK: %[[NORM:.*]] = kiln.global_norm %[[DEMB]], %{{.*}}, %{{.*}} : (tensor<16x8xf32>, tensor<8xf32>, tensor<8x8xf32>)
// CHECK: %[[SQ:.*]] = arith.mulf %[[NORM]], %[[NORM]]
// CHECK: %[[ALL:.*]] = kiln.all_reduce %[[SQ]] {axes = ["pp"], kind = "sum"}
// CHECK: math.sqrt %[[ALL]]
// CHECK: kiln.adamw %[[EMB]], %[[DEMB]]
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<f32>
// CHECK: kiln.all_reduce %[[ZERO]] {axes = ["pp"], kind = "sum"}
// CHECK-LABEL: func.func @train_step_pp1(
// CHECK-SAME: kiln.param = "layers.1.norm.weight"
// CHECK-SAME: attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>}
// CHECK: %[[X0:.*]] = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<2x4x8xf32>
// CHECK: call @block_fwd(%[[X0]],
// CHECK: kiln.cross_entropy
// CHECK: kiln.cross_entropy_grad
// CHECK: %[[W0:.*]] = kiln.linear_wgrad
// CHECK: %[[D0:.*]]:3 = call @block_bwd(%[[X0]],
// CHECK: %[[X1:.*]] = kiln.recv {axis = "pp", peer = 0 : i64}
// CHECK: kiln.send %[[D0]]#0 {axis = "pp", peer = 0 : i64}
// CHECK: %[[W1:.*]] = kiln.linear_wgrad
// CHECK: %[[HEAD:.*]] = arith.addf %[[W0]], %[[W1]] : tensor<16x8xf32>
// CHECK: %[[OTHER:.*]] = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<16x8xf32>
// CHECK: kiln.send %[[HEAD]] {axis = "pp", peer = 0 : i64} : tensor<16x8xf32>
// CHECK: %[[DEMB1:.*]] = arith.addf %[[OTHER]], %[[HEAD]] : tensor<16x8xf32>
// CHECK: kiln.global_norm %{{.*}}, %{{.*}} : (tensor<8xf32>, tensor<8x8xf32>)
// CHECK: kiln.adamw %{{.*}}, %[[DEMB1]]
// CHECK: kiln.all_reduce %{{.*}} {axes = ["pp"], kind = "sum"} : tensor<f32>

// ZB-H1: stage 1's block backward is cut in two. The input half (what
// stage 0 waits for) runs in B; the weight half reads the half's bridge
// values in W, after the send.
// ZB-LABEL: func.func private @block_bwd_input(
// ZB: kiln.linear_dgrad
// ZB-NOT: kiln.linear_wgrad
// ZB: return
// ZB-LABEL: func.func private @block_bwd_weight(
// ZB: kiln.linear_wgrad
// ZB: return
// ZB-LABEL: func.func @train_step_pp1(
// ZB: %[[IN:.*]]:3 = call @block_bwd_input(
// ZB: kiln.send %[[IN]]#0 {axis = "pp", peer = 0 : i64}
// ZB: call @block_bwd_weight({{.*}}, %[[IN]]#1, %[[IN]]#2)

// pp 2 x dp 2: the grid gets "pp" in front; each program runs on its
// stage's two data-parallel ranks, which sum gradients over "dp".
// DP: module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 2]>}
// DP-LABEL: func.func @train_step_pp0(
// DP-SAME: kiln.ranks = array<i64: 0, 1>
// DP: kiln.all_reduce %{{.*}} {axes = ["dp"], kind = "sum"} : tensor<16x8xf32>
// DP-LABEL: func.func @train_step_pp1(
// DP-SAME: kiln.ranks = array<i64: 2, 3>

// The costs are StepCost.h's FLOPs of each action's ops: stage 1's forward
// (block, tied head, cross-entropy), its input gradients (the block's
// input half, the head's linear_dgrad, cross_entropy_grad) and its weight
// gradients (the head's linear_wgrad, 2 x 8 tokens x 16 x 8 = 2048, and the
// block's weight half: its linear_wgrad, 2 x 8 x 8 x 8 = 1024).
// REPORT: remark: kiln-pipeline: pp 2 x 1 chunks, zb-h1, 2 micro-batches; first layer of each stage: 0 1; bytes per micro-batch forward up each edge: 256, backward down each edge: 256; FLOPs per micro-batch of the costliest stage: F 3265, I 3400, W 3072; simulated bubble per rank: 15.6% 15.6%; with each stage's own FLOPs: 65.3% 5.9%

// Every op of an action is marked with it (train --trace times the actions
// from these marks), in the rank's order.
// ACTIONS-LABEL: func.func @train_step_pp1(
// ACTIONS: kiln.recv {axis = "pp", peer = 0 : i64} : tensor<2x4x8xf32> loc(#[[RECV:loc[0-9]+]])
// ACTIONS: kiln.send %{{.*}} {axis = "pp", peer = 0 : i64} : tensor<2x4x8xf32> loc(#[[SEND:loc[0-9]+]])
// ACTIONS-DAG: #[[RECV]] = loc(callsite(#{{loc[0-9]*}} at #[[RECVACTION:loc[0-9]+]]))
// ACTIONS-DAG: #[[RECVACTION]] = loc("pipeline action 1RECV_F0")
// ACTIONS-DAG: #[[SEND]] = loc(callsite(#{{loc[0-9]*}} at #[[SENDACTION:loc[0-9]+]]))
// ACTIONS-DAG: #[[SENDACTION]] = loc("pipeline action 1SEND_B0")
