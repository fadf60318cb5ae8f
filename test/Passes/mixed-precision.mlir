// RUN: kiln-opt %s --kiln-mixed-precision | FileCheck %s
// RUN: kiln-opt %s --kiln-mixed-precision="policy=fp16 high-precision=expert low-precision=head" | FileCheck %s --check-prefix=FP16
// RUN: kiln-opt %s --kiln-mixed-precision --kiln-mixed-precision | FileCheck %s --check-prefix=TWICE
// RUN: kiln-opt %s --kiln-mixed-precision="report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: kiln-opt %s --kiln-mixed-precision --kiln-autodiff | FileCheck %s --check-prefix=GRAD
// RUN: kiln-opt %s --kiln-mixed-precision="policy=fp8" 2>&1 | FileCheck %s --check-prefix=FP8
// RUN: kiln-opt %s --kiln-mixed-precision="policy=fp8" --kiln-autodiff --kiln-lower-fp8 2>/dev/null | FileCheck %s --check-prefix=FP8GRAD

// A block with one GEMM of each family: a projection (linear), the routed
// experts (expert), the MoE gate (gate: its result reaches kiln.router), and
// an output head reached through a reshape, a function result and a call
// (head).
func.func private @block(%x: tensor<4x8xf32>, %w: tensor<8x8xf32> {kiln.param = "proj.weight"},
                         %gate: tensor<4x8xf32> {kiln.param = "mlp.gate.weight"},
                         %bias: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias"},
                         %experts: tensor<2x8x8xf32> {kiln.param = "mlp.experts.*.up_proj.weight"},
                         %offsets: tensor<3xi32>) -> (tensor<4x8xf32>, tensor<4x2xf32>) {
  %h = kiln.linear %x, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
  %logits = kiln.linear %h, %gate : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
  %idx, %rw = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum", n_group = 2 : i64,
      topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<4x4xf32>, tensor<4xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  %e = kiln.grouped_matmul %h, %experts, %offsets : (tensor<4x8xf32>, tensor<2x8x8xf32>, tensor<3xi32>) -> tensor<4x8xf32>
  return %e, %rw : tensor<4x8xf32>, tensor<4x2xf32>
}

func.func private @head(%h: tensor<4x8xf32>, %w: tensor<16x8xf32>) -> tensor<4x16xf32> {
  %logits = kiln.linear %h, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  return %logits : tensor<4x16xf32>
}

func.func @forward(%x: tensor<4x8xf32> {kiln.param = "x"}, %w: tensor<8x8xf32> {kiln.param = "proj.weight"},
                   %gate: tensor<4x8xf32> {kiln.param = "mlp.gate.weight"},
                   %bias: tensor<4xf32> {kiln.param = "mlp.gate.e_score_correction_bias", kiln.trainable = false},
                   %experts: tensor<2x8x8xf32> {kiln.param = "mlp.experts.*.up_proj.weight"},
                   %lm: tensor<16x8xf32> {kiln.param = "lm_head.weight"},
                   %tokens: tensor<1x4xi32> {kiln.input = "tokens"}, %targets: tensor<1x4xi32> {kiln.input = "targets"},
                   %mask: tensor<1x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %offsets = arith.constant dense<[0, 2, 4]> : tensor<3xi32>
  %h, %rw = call @block(%x, %w, %gate, %bias, %experts, %offsets)
      : (tensor<4x8xf32>, tensor<8x8xf32>, tensor<4x8xf32>, tensor<4xf32>, tensor<2x8x8xf32>, tensor<3xi32>) -> (tensor<4x8xf32>, tensor<4x2xf32>)
  %logits = call @head(%h, %lm) : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  %l3 = tensor.expand_shape %logits [[0, 1], [2]] output_shape [1, 4, 16] : tensor<4x16xf32> into tensor<1x4x16xf32>
  %loss = kiln.cross_entropy %l3, %targets, %mask : (tensor<1x4x16xf32>, tensor<1x4xi32>, tensor<1x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// Defaults (bf16): the projection and the experts are lowered, one truncf
// per GEMM operand, the result widened back; the gate and the head stay f32;
// the expert offsets are not converted.
// CHECK-LABEL: func.func private @block
// CHECK: %[[X:.*]] = arith.truncf %arg0 : tensor<4x8xf32> to tensor<4x8xbf16>
// CHECK: %[[W:.*]] = arith.truncf %arg1 : tensor<8x8xf32> to tensor<8x8xbf16>
// CHECK: %[[H:.*]] = kiln.linear %[[X]], %[[W]] : (tensor<4x8xbf16>, tensor<8x8xbf16>) -> tensor<4x8xbf16>
// CHECK: %[[HW:.*]] = arith.extf %[[H]] : tensor<4x8xbf16> to tensor<4x8xf32>
// CHECK: %[[LOGITS:.*]] = kiln.linear %[[HW]], %arg2 : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
// CHECK: kiln.router %[[LOGITS]], %arg3
// CHECK: %[[EX:.*]] = arith.truncf %[[HW]] : tensor<4x8xf32> to tensor<4x8xbf16>
// CHECK: %[[EW:.*]] = arith.truncf %arg4 : tensor<2x8x8xf32> to tensor<2x8x8xbf16>
// CHECK: %[[E:.*]] = kiln.grouped_matmul %[[EX]], %[[EW]], %arg5 : (tensor<4x8xbf16>, tensor<2x8x8xbf16>, tensor<3xi32>) -> tensor<4x8xbf16>
// CHECK: %[[EWIDE:.*]] = arith.extf %[[E]] : tensor<4x8xbf16> to tensor<4x8xf32>
// CHECK: return %[[EWIDE]]
// CHECK-LABEL: func.func private @head
// CHECK-NOT: truncf
// CHECK: kiln.linear %arg0, %arg1 : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
// CHECK-LABEL: func.func @forward
// CHECK-NOT: truncf

// Overrides: fp16, the experts kept, the head lowered.
// FP16-LABEL: func.func private @block
// FP16: kiln.linear {{.*}} : (tensor<4x8xf16>, tensor<8x8xf16>) -> tensor<4x8xf16>
// FP16: kiln.linear {{.*}} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
// FP16: kiln.grouped_matmul {{.*}} : (tensor<4x8xf32>, tensor<2x8x8xf32>, tensor<3xi32>) -> tensor<4x8xf32>
// FP16-LABEL: func.func private @head
// FP16: kiln.linear {{.*}} : (tensor<4x8xf16>, tensor<16x8xf16>) -> tensor<4x16xf16>

// A second run finds nothing left to lower.
// TWICE-LABEL: func.func private @block
// TWICE-COUNT-4: arith.truncf
// TWICE-NOT: arith.truncf
// TWICE-LABEL: func.func private @head

// REPORT: remark: kiln-mixed-precision: bf16 GEMMs; linear 1 lowered, 0 kept; expert 1 lowered, 0 kept; head 0 lowered, 1 kept; gate 0 lowered, 1 kept

// Autodiff builds the backward in bf16 and widens each gradient to f32 (the
// conversions' gradient rules) before it is accumulated: the projection's
// input x gets an f32 gradient from its bf16 dgrad, the weight an f32 one
// from its bf16 wgrad.
// GRAD-LABEL: func.func private @block_bwd
// GRAD: %[[DX:.*]] = kiln.linear_dgrad {{.*}} : (tensor<4x8xbf16>, tensor<8x8xbf16>) -> tensor<4x8xbf16>
// GRAD: %[[DW:.*]] = kiln.linear_wgrad {{.*}} : (tensor<4x8xbf16>, tensor<4x8xbf16>) -> tensor<8x8xbf16>
// GRAD-DAG: arith.extf %[[DX]] : tensor<4x8xbf16> to tensor<4x8xf32>
// GRAD-DAG: arith.extf %[[DW]] : tensor<8x8xbf16> to tensor<8x8xf32>

// fp8 marks the projection and the experts for kiln-lower-fp8 and changes
// no type; the gate is not marked.
// FP8-NOT: warning
// FP8-LABEL: func.func private @block
// FP8: kiln.linear %arg0, %arg1 {kiln.fp8} : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
// FP8: kiln.linear {{.*}}, %arg2 : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
// FP8: kiln.grouped_matmul {{.*}} {kiln.fp8} : (tensor<4x8xf32>, tensor<2x8x8xf32>, tensor<3xi32>) -> tensor<4x8xf32>

// Autodiff copies the mark to the projection's and the experts' dgrad and
// wgrad, and kiln-lower-fp8 turns all six into scaled GEMMs, the experts'
// into the grouped forms (weights in per-expert blocks, the Wgrad operands
// in 128x1 tiles within each expert); the gate keeps its f32 ones.
// FP8GRAD-LABEL: func.func private @block_fwd
// FP8GRAD: kiln.scaled_matmul {{.*}}transpose_rhs = true{{.*}} -> tensor<4x8xf32>
// FP8GRAD: kiln.quantize_fp8 %arg4 {block = array<i64: 1, 128, 128>} : tensor<2x8x8xf32> -> tensor<2x8x8xf8E4M3FN>, tensor<2x1x1xf32>
// FP8GRAD: kiln.scaled_grouped_matmul {{.*}}, %arg5 {transpose_rhs = true} : {{.*}} -> tensor<4x8xf32>
// FP8GRAD-LABEL: func.func private @block_bwd
// FP8GRAD: kiln.scaled_grouped_matmul {{.*}}, %arg5 : (tensor<4x8xf8E4M3FN>, tensor<4x1xf32>, tensor<2x8x8xf8E4M3FN>, tensor<2x1x1xf32>, tensor<3xi32>) -> tensor<4x8xf32>
// FP8GRAD: kiln.quantize_fp8_grouped {{.*}}, %arg5 {block = array<i64: 128, 1>} : tensor<4x8xf32>, tensor<3xi32> -> tensor<4x8xf8E4M3FN>, tensor<2x8xf32>
// FP8GRAD: kiln.scaled_grouped_matmul_wgrad {{.*}}, %arg5 : {{.*}} -> tensor<2x8x8xf32>
// FP8GRAD-NOT: kiln.grouped_matmul
// FP8GRAD-DAG: kiln.scaled_matmul {{.*}}{lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>} : {{.*}} -> tensor<4x8xf32>
// FP8GRAD-DAG: kiln.scaled_matmul {{.*}}{lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 1>, transpose_lhs = true} : {{.*}} -> tensor<8x8xf32>
// FP8GRAD-DAG: kiln.linear_dgrad {{.*}} : (tensor<4x4xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// FP8GRAD-DAG: kiln.linear_wgrad {{.*}} : (tensor<4x4xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
