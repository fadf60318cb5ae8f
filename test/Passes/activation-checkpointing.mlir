// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=full" | FileCheck %s
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=full report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=none" | FileCheck %s --check-prefix=NONE
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=selective report=true" -mlir-print-op-on-diagnostic=false 2>&1 | FileCheck %s --check-prefix=SELECTIVE
// Running it twice changes nothing more.
// RUN: kiln-opt %s --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=full" --kiln-activation-checkpointing="policy=full" | FileCheck %s

// Two layers of one block and an outer block that calls it (as the MTP
// module calls a decoder layer). With policy=full each backward the step
// calls recomputes its saved values from its inputs; the nested call keeps
// taking its saved values, from the outer recomputation.

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

// The nested call's backward keeps its saved values (the original, copied).
// CHECK-LABEL: func.func private @block_bwd_saved(
// CHECK-SAME: %arg3: tensor<2x4x8xf32>, %arg4: tensor<2x4x8xf32>, %arg5: tensor<2x4x8xf32>)
// CHECK-SAME: kiln.saved = 2 : i64
// CHECK: kiln.silu_grad %arg3, %arg4

// @block_bwd takes the block's inputs and the result's gradient only, and
// starts by recomputing the norm and the projection; the residual add,
// which only the block's result needed, is not recomputed.
// CHECK-LABEL: func.func private @block_bwd(
// CHECK-SAME: %arg0: tensor<2x4x8xf32>, %arg1: tensor<8xf32> {kiln.param = "norm.weight"}, %arg2: tensor<8x8xf32> {kiln.param = "proj.weight"}, %arg3: tensor<2x4x8xf32>) -> (
// CHECK-SAME: kiln.saved = 0 : i64
// CHECK-NEXT: %[[N:.*]] = kiln.rms_norm %arg0, %arg1
// CHECK-NEXT: %[[Y:.*]] = kiln.linear %[[N]], %arg2
// CHECK-NOT: arith.addf %arg0
// CHECK: kiln.silu_grad %arg3, %[[Y]]
// CHECK: kiln.linear_wgrad {{.*}}, %[[N]]

// @outer_bwd recomputes its forward, the nested block's forward call with
// its saved values included, and hands those to @block_bwd_saved.
// CHECK-LABEL: func.func private @outer_bwd(
// CHECK-SAME: %arg3: tensor<2x4x8xf32>) -> (
// CHECK-NEXT: %[[B:.*]]:3 = call @block_fwd(%arg0, %arg1, %arg2)
// CHECK: call @block_bwd_saved(%arg0, %arg1, %arg2, {{.*}}, %[[B]]#1, %[[B]]#2)

// The step's backward calls pass no saved values.
// CHECK-LABEL: func.func @train_step(
// CHECK: call @outer_bwd(%{{[^,]*}}, %arg5, %arg6, %{{[^,)]*}}) :
// CHECK: call @block_bwd(%{{[^,]*}}, %arg3, %arg4, %{{[^,)]*}}) :
// CHECK: call @block_bwd(%{{[^,]*}}, %arg1, %arg2, %{{[^,)]*}}) :

// REPORT-DAG: remark: kiln-activation-checkpointing: @block_bwd recomputes 2 saved values (512 bytes per call, 2 calls)
// REPORT-DAG: remark: kiln-activation-checkpointing: @outer_bwd recomputes 3 saved values (768 bytes per call, 1 calls)
// REPORT: remark: kiln-activation-checkpointing: policy full: 2 block backwards recompute, 1792 bytes of saved values no longer kept per step

// NONE-LABEL: func.func private @block_bwd(
// NONE-SAME: %arg4: tensor<2x4x8xf32>, %arg5: tensor<2x4x8xf32>)
// NONE-SAME: kiln.forward = @block_fwd, kiln.saved = 2 : i64
// NONE-NOT: @block_bwd_saved

// policy=selective recomputes only what is cheap: the block's norm, not its
// projection (the linear's output stays saved). Every call site, the nested
// one in @outer_bwd included, drops the norm; @outer_bwd then no longer keeps
// the norm it only handed on.
// SELECTIVE-DAG: remark: kiln-activation-checkpointing: @block_bwd recomputes 1 of its 2 saved values (256 bytes per call, 3 calls)
// SELECTIVE-DAG: remark: kiln-activation-checkpointing: @outer_bwd no longer takes 1 saved values that only a nested block's backward needed
// SELECTIVE-DAG: remark: kiln-activation-checkpointing: policy selective: 1 block backwards recompute, 1024 bytes of saved values no longer kept per step
// SELECTIVE-LABEL: func.func private @block_bwd(
// SELECTIVE-SAME: %arg3: tensor<2x4x8xf32>, %arg4: tensor<2x4x8xf32>) -> (
// SELECTIVE-SAME: kiln.forward = @block_fwd, kiln.saved = 1 : i64
// SELECTIVE-NEXT: %[[N:.*]] = kiln.rms_norm %arg0, %arg1
// SELECTIVE-NOT: kiln.linear %
// SELECTIVE: kiln.silu_grad %arg3, %arg4
// SELECTIVE: kiln.linear_wgrad {{.*}}, %[[N]]
// SELECTIVE-LABEL: func.func private @outer_bwd(
// SELECTIVE-SAME: kiln.saved = 2 : i64
// SELECTIVE: call @block_bwd(%arg0, %arg1, %arg2, %{{[^,]*}}, %arg5)
// SELECTIVE-LABEL: func.func @train_step(
// SELECTIVE: call @outer_bwd(%{{[^,]*}}, %arg5, %arg6, %{{[^,]*}}, %{{[^,]*}}, %{{[^,)]*}}) :
// SELECTIVE: call @block_bwd(%{{[^,]*}}, %arg3, %arg4, %{{[^,]*}}, %{{[^,)]*}}) :
