// RUN: kiln-opt %s -kiln-expert-parallel="ep=2 dp=4 report=true" -split-input-file -verify-diagnostics | FileCheck %s

// One MoE block called for two layers: 8 experts over ep 2 (4 per rank), 16
// tokens x top-2 = 32 routed rows; receive buffer 2 x 16 x min(2, 4) = 64.

// CHECK: module attributes {kiln.grid = #kiln.grid<axes = ["edp", "ep"], shape = [2, 2]>}
// CHECK-LABEL: func.func @forward
// CHECK-SAME: %{{.*}}: tensor<4x6x8xf32> {kiln.param = "model.layers.1.mlp.experts.*.gate_proj.weight", kiln.split = {axes = ["ep"], dim = 0 : i64, size = 8 : i64}}
// CHECK-SAME: %{{.*}}: tensor<4x8x6xf32> {kiln.param = "model.layers.1.mlp.experts.*.down_proj.weight", kiln.split = {axes = ["ep"], dim = 0 : i64, size = 8 : i64}}
// CHECK-SAME: %{{.*}}: tensor<4x6x8xf32> {kiln.param = "model.layers.2.mlp.experts.*.gate_proj.weight", kiln.split
// CHECK-SAME: %{{.*}}: tensor<4x8x6xf32> {kiln.param = "model.layers.2.mlp.experts.*.down_proj.weight", kiln.split
// CHECK-SAME: %[[SHARED:[a-z0-9]+]]: tensor<8x8xf32> {kiln.param = "model.layers.1.mlp.shared.weight"}
func.func @forward(%x: tensor<16x8xf32>, %logits: tensor<16x8xf32>, %bias: tensor<8xf32>,
                   %g1: tensor<8x6x8xf32> {kiln.param = "model.layers.1.mlp.experts.*.gate_proj.weight"},
                   %d1: tensor<8x8x6xf32> {kiln.param = "model.layers.1.mlp.experts.*.down_proj.weight"},
                   %g2: tensor<8x6x8xf32> {kiln.param = "model.layers.2.mlp.experts.*.gate_proj.weight"},
                   %d2: tensor<8x8x6xf32> {kiln.param = "model.layers.2.mlp.experts.*.down_proj.weight"},
                   %shared: tensor<8x8xf32> {kiln.param = "model.layers.1.mlp.shared.weight"}) -> tensor<16x8xf32> {
  %h1 = func.call @moe(%x, %logits, %bias, %g1, %d1) : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<8xf32>, tensor<8x6x8xf32>, tensor<8x8x6xf32>) -> tensor<16x8xf32>
  %h2 = func.call @moe(%h1, %logits, %bias, %g2, %d2) : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<8xf32>, tensor<8x6x8xf32>, tensor<8x8x6xf32>) -> tensor<16x8xf32>
  // Dense weights are untouched.
  // CHECK: kiln.linear %{{.*}}, %[[SHARED]] : (tensor<16x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  %y = kiln.linear %h2, %shared : (tensor<16x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}

// CHECK-LABEL: func.func private @moe
// CHECK-SAME: %[[WG:[a-z0-9]+]]: tensor<4x6x8xf32>, %[[WD:[a-z0-9]+]]: tensor<4x8x6xf32>
// CHECK: %[[IDX:.*]], %[[W:.*]] = kiln.router
// The dispatch carries the bytes the ep group passes to all_to_alls per call,
// forward and backward: 5 count exchanges (2 x 2 x 8 bytes each), the
// per-expert counts (2 x 64) and the rows 4 times (2 x 1024): 8480.
// CHECK: %[[ROWS:.*]], %[[OFF:.*]], %[[SRC:.*]] = kiln.dispatch %{{.*}}, %[[IDX]] {kiln.all_to_all_bytes = 8480 : i64, num_experts = 8 : i64} : (tensor<16x8xf32>, tensor<16x2xi32>) -> (tensor<32x8xf32>, tensor<9xi32>, tensor<32xi32>)
// CHECK: %[[PE:.*]], %[[PR:.*]] = kiln.expert_counts %[[OFF]] {groups = 2 : i64} : (tensor<9xi32>) -> (tensor<2x4xi64>, tensor<2xi64>)
// CHECK: %[[ONES:.*]] = arith.constant dense<1> : tensor<2xi64>
// CHECK: %[[PEIN:.*]], %{{.*}} = kiln.all_to_all %[[PE]], %[[ONES]] {axes = ["ep"]} : (tensor<2x4xi64>, tensor<2xi64>) -> (tensor<2x4xi64>, tensor<2xi64>)
// CHECK: %[[IN:.*]], %[[INCOUNTS:.*]] = kiln.all_to_all %[[ROWS]], %[[PR]] {axes = ["ep"]} : (tensor<32x8xf32>, tensor<2xi64>) -> (tensor<64x8xf32>, tensor<2xi64>)
// CHECK: %[[SORTED:.*]], %[[LOFF:.*]] = kiln.segment_transpose %[[IN]], %[[PEIN]] : (tensor<64x8xf32>, tensor<2x4xi64>) -> (tensor<64x8xf32>, tensor<5xi32>)
// CHECK: %[[H:.*]] = kiln.grouped_matmul %[[SORTED]], %[[WG]], %[[LOFF]] : (tensor<64x8xf32>, tensor<4x6x8xf32>, tensor<5xi32>) -> tensor<64x6xf32>
// CHECK: %[[A:.*]] = kiln.silu %[[H]] : tensor<64x6xf32>
// CHECK: %[[O:.*]] = kiln.grouped_matmul %[[A]], %[[WD]], %[[LOFF]] : (tensor<64x6xf32>, tensor<4x8x6xf32>, tensor<5xi32>) -> tensor<64x8xf32>
// CHECK: %[[BACK:.*]], %{{.*}} = kiln.segment_transpose %[[O]], %[[PEIN]] {inverse = true} : (tensor<64x8xf32>, tensor<2x4xi64>) -> (tensor<64x8xf32>, tensor<3xi32>)
// CHECK: %[[RET:.*]], %{{.*}} = kiln.all_to_all %[[BACK]], %[[INCOUNTS]] {axes = ["ep"]} : (tensor<64x8xf32>, tensor<2xi64>) -> (tensor<32x8xf32>, tensor<2xi64>)
// CHECK: kiln.combine %[[RET]], %[[W]], %[[SRC]] : (tensor<32x8xf32>, tensor<16x2xf32>, tensor<32xi32>) -> tensor<16x8xf32>
func.func private @moe(%x: tensor<16x8xf32>, %logits: tensor<16x8xf32>, %bias: tensor<8xf32>,
                       %wg: tensor<8x6x8xf32>, %wd: tensor<8x8x6xf32>) -> tensor<16x8xf32> {
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum",
                 n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64,
                 norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<16x8xf32>, tensor<8xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  // expected-remark @+1 {{kiln-expert-parallel: @moe: 8 experts, 4 per rank; receive buffer 64 rows (dropless: ep x tokens x min(top_k, experts per rank)); all_to_all 4224 bytes per ep group per forward call (backward: the rows again, not the counts)}}
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<16x8xf32>, tensor<16x2xi32>) -> (tensor<32x8xf32>, tensor<9xi32>, tensor<32xi32>)
  %h = kiln.grouped_matmul %rows, %wg, %offsets : (tensor<32x8xf32>, tensor<8x6x8xf32>, tensor<9xi32>) -> tensor<32x6xf32>
  %a = kiln.silu %h : tensor<32x6xf32>
  %o = kiln.grouped_matmul %a, %wd, %offsets : (tensor<32x6xf32>, tensor<8x8x6xf32>, tensor<9xi32>) -> tensor<32x8xf32>
  %y = kiln.combine %o, %w, %source : (tensor<32x8xf32>, tensor<16x2xf32>, tensor<32xi32>) -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}

// -----

// Under kiln.expert_capacity (2 groups of 8 tokens, 2 rows per expert and
// group) each source sends each expert at most 2 x 2 rows: the receive
// buffer is ep x 4 local experts x 2 groups x 2 = 32 rows, not the dropless 64.

// CHECK-LABEL: func.func @capacity
// CHECK: %[[KEPT:.*]] = kiln.expert_capacity
// CHECK: %[[ROWS:.*]], %[[OFF:.*]], %{{.*}} = kiln.dispatch %{{.*}}, %[[KEPT]]
// CHECK: kiln.all_to_all %[[ROWS]], %{{.*}} {axes = ["ep"]} : (tensor<32x8xf32>, tensor<2xi64>) -> (tensor<32x8xf32>, tensor<2xi64>)
// CHECK: kiln.grouped_matmul %{{.*}} : (tensor<32x8xf32>, tensor<4x8x8xf32>, tensor<5xi32>) -> tensor<32x8xf32>
func.func @capacity(%x: tensor<16x8xf32>, %logits: tensor<16x8xf32>, %bias: tensor<8xf32>,
                    %wd: tensor<8x8x8xf32> {kiln.param = "model.layers.1.mlp.experts.*.down_proj.weight"})
    -> tensor<16x8xf32> {
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum",
                 n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64,
                 norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<16x8xf32>, tensor<8xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  %kept = kiln.expert_capacity %idx {num_experts = 8 : i64, group_tokens = 8 : i64, capacity = 2 : i64}
      : (tensor<16x2xi32>) -> tensor<16x2xi32>
  // expected-remark @+1 {{kiln-expert-parallel: @capacity: 8 experts, 4 per rank; receive buffer 32 rows (capacity: ep x experts per rank x groups x pairs per expert and group); all_to_all 4224 bytes per ep group per forward call}}
  %rows, %offsets, %source = kiln.dispatch %x, %kept {num_experts = 8 : i64}
      : (tensor<16x8xf32>, tensor<16x2xi32>) -> (tensor<32x8xf32>, tensor<9xi32>, tensor<32xi32>)
  %o = kiln.grouped_matmul %rows, %wd, %offsets : (tensor<32x8xf32>, tensor<8x8x8xf32>, tensor<9xi32>) -> tensor<32x8xf32>
  %y = kiln.combine %o, %w, %source : (tensor<32x8xf32>, tensor<16x2xf32>, tensor<32xi32>) -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}
