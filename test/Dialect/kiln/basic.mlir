// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt -mlir-print-op-generic %s | kiln-opt | FileCheck %s

// Every kiln op prints and parses back to itself.
// The module declares a device grid so that the collectives below verify.

// CHECK: module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>}
module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {

// CHECK-LABEL: func.func @dense
func.func @dense(%table: tensor<256x64xf32>, %ids: tensor<4x32xi32>, %w: tensor<128x64xf32>,
                 %gamma: tensor<64xf32>) -> tensor<4x32x128xf32> {
  // CHECK: %[[H:.*]] = kiln.embedding %{{.*}}, %{{.*}} : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
  %h = kiln.embedding %table, %ids : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
  // CHECK: %[[N:.*]] = kiln.rms_norm %[[H]], %{{.*}} {epsilon = 9.9999999999999995E-7 : f64}
  %n = kiln.rms_norm %h, %gamma {epsilon = 1.0e-06 : f64} : (tensor<4x32x64xf32>, tensor<64xf32>) -> tensor<4x32x64xf32>
  // CHECK: %[[G:.*]] = kiln.linear %[[N]], %{{.*}} : (tensor<4x32x64xf32>, tensor<128x64xf32>) -> tensor<4x32x128xf32>
  %g = kiln.linear %n, %w : (tensor<4x32x64xf32>, tensor<128x64xf32>) -> tensor<4x32x128xf32>
  // CHECK: %[[S:.*]] = kiln.silu %[[G]] : tensor<4x32x128xf32>
  %s = kiln.silu %g : tensor<4x32x128xf32>
  // CHECK: kiln.swiglu %[[G]], %[[S]] : tensor<4x32x128xf32>
  %a = kiln.swiglu %g, %s : tensor<4x32x128xf32>
  return %a : tensor<4x32x128xf32>
}

// CHECK-LABEL: func.func @matmul
func.func @matmul(%a: tensor<8x16x32xf32>, %b: tensor<8x24x32xf32>, %c: tensor<32x16xbf16>,
                  %d: tensor<32x24xbf16>) -> (tensor<8x16x24xf32>, tensor<16x24xbf16>) {
  // CHECK: kiln.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<8x16x32xf32>, tensor<8x24x32xf32>) -> tensor<8x16x24xf32>
  %0 = kiln.matmul %a, %b {transpose_rhs = true} : (tensor<8x16x32xf32>, tensor<8x24x32xf32>) -> tensor<8x16x24xf32>
  // CHECK: kiln.matmul %{{.*}}, %{{.*}} {transpose_lhs = true} : (tensor<32x16xbf16>, tensor<32x24xbf16>) -> tensor<16x24xbf16>
  %1 = kiln.matmul %c, %d {transpose_lhs = true} : (tensor<32x16xbf16>, tensor<32x24xbf16>) -> tensor<16x24xbf16>
  return %0, %1 : tensor<8x16x24xf32>, tensor<16x24xbf16>
}

// CHECK-LABEL: func.func @mla_attention
func.func @mla_attention(%q: tensor<4x32x4x24xf32>, %k_nope: tensor<4x32x4x16xf32>,
                         %k_pe: tensor<4x32x1x8xf32>, %v: tensor<4x32x4x16xf32>) -> tensor<4x32x4x16xf32> {
  // CHECK: %[[R:.*]] = kiln.rope %{{.*}} {interleaved = true, theta = 1.000000e+04 : f64, yarn = #kiln.yarn<factor = 4.000000e+00, original_max_position_embeddings = 32, beta_fast = 3.200000e+01, beta_slow = 1.000000e+00, mscale = 1.000000e+00, mscale_all_dim = 1.000000e+00>} : tensor<4x32x1x8xf32>
  %r = kiln.rope %k_pe {theta = 10000.0 : f64, interleaved = true,
                        yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 32,
                               beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>}
      : tensor<4x32x1x8xf32>
  // CHECK: %[[B:.*]] = kiln.broadcast %[[R]] : (tensor<4x32x1x8xf32>) -> tensor<4x32x4x8xf32>
  %b = kiln.broadcast %r : (tensor<4x32x1x8xf32>) -> tensor<4x32x4x8xf32>
  // CHECK: %[[K:.*]] = tensor.concat dim(3) %{{.*}}, %[[B]]
  %k = tensor.concat dim(3) %k_nope, %b : (tensor<4x32x4x16xf32>, tensor<4x32x4x8xf32>) -> tensor<4x32x4x24xf32>
  // CHECK: kiln.attention %{{.*}}, %[[K]], %{{.*}} {scale = 2.041000e-01 : f64}
  %o = kiln.attention %q, %k, %v {scale = 0.2041 : f64, causal = true}
      : (tensor<4x32x4x24xf32>, tensor<4x32x4x24xf32>, tensor<4x32x4x16xf32>) -> tensor<4x32x4x16xf32>
  return %o : tensor<4x32x4x16xf32>
}

// CHECK-LABEL: func.func @gqa_attention
func.func @gqa_attention(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x2x16xf32>, %v: tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32> {
  // CHECK: kiln.rope %{{.*}} {interleaved = false, theta = 5.000000e+05 : f64} : tensor<2x8x4x16xf32>
  %qr = kiln.rope %q {theta = 500000.0 : f64, interleaved = false} : tensor<2x8x4x16xf32>
  // CHECK: kiln.attention {{.*}} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  %o = kiln.attention %qr, %k, %v {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> tensor<2x8x4x16xf32>
  return %o : tensor<2x8x4x16xf32>
}

// CHECK-LABEL: func.func @moe
func.func @moe(%x: tensor<128x64xf32>, %logits: tensor<128x8xf32>, %bias: tensor<8xf32>,
               %w_gate: tensor<8x32x64xf32>, %w_down: tensor<8x64x32xf32>) -> tensor<128x64xf32> {
  // CHECK: %[[IDX:.*]], %[[W:.*]] = kiln.router %{{.*}}, %{{.*}} {group_score = "top2_sum", n_group = 4 : i64, norm_topk_prob = true, routed_scaling_factor = 2.500000e+00 : f64, scoring = "sigmoid", top_k = 2 : i64, topk_group = 2 : i64}
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum",
                 n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64,
                 norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<128x8xf32>, tensor<8xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  // CHECK: %[[ROWS:.*]], %[[OFF:.*]], %[[SRC:.*]] = kiln.dispatch %{{.*}}, %[[IDX]] {num_experts = 8 : i64}
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<128x64xf32>, tensor<128x2xi32>) -> (tensor<256x64xf32>, tensor<9xi32>, tensor<256xi32>)
  // CHECK: kiln.grouped_matmul %[[ROWS]], %{{.*}}, %[[OFF]] : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x32xf32>
  %h = kiln.grouped_matmul %rows, %w_gate, %offsets : (tensor<256x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<256x32xf32>
  %o = kiln.grouped_matmul %h, %w_down, %offsets : (tensor<256x32xf32>, tensor<8x64x32xf32>, tensor<9xi32>) -> tensor<256x64xf32>
  // CHECK: kiln.combine %{{.*}}, %[[W]], %[[SRC]] : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  %y = kiln.combine %o, %w, %source : (tensor<256x64xf32>, tensor<128x2xf32>, tensor<256xi32>) -> tensor<128x64xf32>
  return %y : tensor<128x64xf32>
}

// CHECK-LABEL: func.func @expert_capacity
func.func @expert_capacity(%idx: tensor<128x2xi32>) -> tensor<128x2xi32> {
  // CHECK: kiln.expert_capacity %{{.*}} {capacity = 20 : i64, group_tokens = 64 : i64, num_experts = 8 : i64} : (tensor<128x2xi32>) -> tensor<128x2xi32>
  %kept = kiln.expert_capacity %idx {num_experts = 8 : i64, group_tokens = 64 : i64, capacity = 20 : i64}
      : (tensor<128x2xi32>) -> tensor<128x2xi32>
  return %kept : tensor<128x2xi32>
}

// CHECK-LABEL: func.func @topk_compression
func.func @topk_compression(%g: tensor<16x16xf32>, %r: tensor<16x16xf32>) -> (tensor<16x16xf32>, tensor<16x16xf32>) {
  // CHECK: %[[MSG:.*]], %{{.*}} = kiln.topk_compress %{{.*}}, %{{.*}} {k = 13 : i64, quantize = "int8"} : (tensor<16x16xf32>, tensor<16x16xf32>) -> (tensor<69xi8>, tensor<16x16xf32>)
  %msg, %res = kiln.topk_compress %g, %r {k = 13 : i64, quantize = "int8"}
      : (tensor<16x16xf32>, tensor<16x16xf32>) -> (tensor<69xi8>, tensor<16x16xf32>)
  %all = kiln.all_gather %msg {axes = ["dp"], dim = 0 : i64} : (tensor<69xi8>) -> tensor<276xi8>
  // CHECK: kiln.topk_decompress %{{.*}} {k = 13 : i64, quantize = "int8"} : (tensor<276xi8>) -> tensor<16x16xf32>
  %sum = kiln.topk_decompress %all {k = 13 : i64, quantize = "int8"} : (tensor<276xi8>) -> tensor<16x16xf32>
  return %sum, %res : tensor<16x16xf32>, tensor<16x16xf32>
}

// CHECK-LABEL: func.func @expert_parallel_reorder
func.func @expert_parallel_reorder(%offsets: tensor<9xi32>, %received: tensor<512x64xf32>) -> tensor<512x64xf32> {
  // CHECK: %[[PE:.*]], %{{.*}} = kiln.expert_counts %{{.*}} {groups = 2 : i64} : (tensor<9xi32>) -> (tensor<2x4xi32>, tensor<2xi32>)
  %per_expert, %per_rank = kiln.expert_counts %offsets {groups = 2 : i64}
      : (tensor<9xi32>) -> (tensor<2x4xi32>, tensor<2xi32>)
  // CHECK: %[[S:.*]], %{{.*}} = kiln.segment_transpose %{{.*}}, %[[PE]] : (tensor<512x64xf32>, tensor<2x4xi32>) -> (tensor<512x64xf32>, tensor<5xi32>)
  %sorted, %local = kiln.segment_transpose %received, %per_expert
      : (tensor<512x64xf32>, tensor<2x4xi32>) -> (tensor<512x64xf32>, tensor<5xi32>)
  // CHECK: kiln.segment_transpose %[[S]], %[[PE]] {inverse = true} : (tensor<512x64xf32>, tensor<2x4xi32>) -> (tensor<512x64xf32>, tensor<3xi32>)
  %back, %by_source = kiln.segment_transpose %sorted, %per_expert {inverse = true}
      : (tensor<512x64xf32>, tensor<2x4xi32>) -> (tensor<512x64xf32>, tensor<3xi32>)
  return %back : tensor<512x64xf32>
}

// CHECK-LABEL: func.func @loss
func.func @loss(%logits: tensor<4x32x256xf32>, %targets: tensor<4x32xi32>, %mask: tensor<4x32xf32>) -> tensor<f32> {
  // CHECK: kiln.cross_entropy %{{.*}}, %{{.*}}, %{{.*}} {label_smoothing = 1.000000e-01 : f64} : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
  %l = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.1 : f64}
      : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: func.func @collectives
func.func @collectives(%g: tensor<64x64xf32>, %shard: tensor<16x64xf32>, %rows: tensor<24x16xf32>,
                       %counts: tensor<4xi64>, %act: tensor<4x32x64xf32>) -> tensor<4x32x64xf32> {
  // CHECK: %[[S:.*]] = kiln.all_reduce %{{.*}} {axes = ["dp"], kind = "sum"} : tensor<64x64xf32>
  %s = kiln.all_reduce %g {kind = "sum", axes = ["dp"]} : tensor<64x64xf32>
  // CHECK: kiln.all_reduce %[[S]] {axes = ["pp", "dp"], kind = "max"} : tensor<64x64xf32>
  %m = kiln.all_reduce %s {kind = "max", axes = ["pp", "dp"]} : tensor<64x64xf32>
  // CHECK: kiln.all_gather %{{.*}} {axes = ["dp"], dim = 0 : i64} : (tensor<16x64xf32>) -> tensor<64x64xf32>
  %full = kiln.all_gather %shard {axes = ["dp"], dim = 0 : i64} : (tensor<16x64xf32>) -> tensor<64x64xf32>
  // CHECK: kiln.reduce_scatter %{{.*}} {axes = ["dp"], dim = 1 : i64, kind = "sum"} : (tensor<64x64xf32>) -> tensor<64x16xf32>
  %part = kiln.reduce_scatter %full {kind = "sum", axes = ["dp"], dim = 1 : i64} : (tensor<64x64xf32>) -> tensor<64x16xf32>
  // CHECK: kiln.local_shard %{{.*}} {axes = ["dp"], dim = 0 : i64} : (tensor<64x64xf32>) -> tensor<16x64xf32>
  %mine = kiln.local_shard %m {axes = ["dp"], dim = 0 : i64} : (tensor<64x64xf32>) -> tensor<16x64xf32>
  // CHECK: %{{.*}}, %{{.*}} = kiln.all_to_all %{{.*}}, %{{.*}} {axes = ["dp"]} : (tensor<24x16xf32>, tensor<4xi64>) -> (tensor<40x16xf32>, tensor<4xi64>)
  %recv, %rc = kiln.all_to_all %rows, %counts {axes = ["dp"]} : (tensor<24x16xf32>, tensor<4xi64>) -> (tensor<40x16xf32>, tensor<4xi64>)
  // CHECK: kiln.send %{{.*}} {axis = "pp", peer = 1 : i64} : tensor<4x32x64xf32>
  kiln.send %act {axis = "pp", peer = 1 : i64} : tensor<4x32x64xf32>
  // CHECK: kiln.recv {axis = "pp", peer = 1 : i64} : tensor<4x32x64xf32>
  %back = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<4x32x64xf32>
  return %back : tensor<4x32x64xf32>
}


// CHECK-LABEL: func.func @sparsity
// CHECK: kiln.sparsity_mask_2_4 %arg0, %arg1, %arg2 {mask_every = 10 : i64, start_step = 100 : i64} : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<i64>) -> tensor<16x8xf32>
func.func @sparsity(%w: tensor<16x8xf32>, %m: tensor<16x8xf32>, %step: tensor<i64>) -> tensor<16x8xf32> {
  %m2 = kiln.sparsity_mask_2_4 %w, %m, %step {start_step = 100 : i64, mask_every = 10 : i64}
      : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<i64>) -> tensor<16x8xf32>
  return %m2 : tensor<16x8xf32>
}

}
