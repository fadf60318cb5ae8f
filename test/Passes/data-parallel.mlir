// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=2" | FileCheck %s
// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=3 zero=1 microbatches=2" | FileCheck %s --check-prefix=ZERO
// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=2 zero=1 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// A tiny model: embedding, norm, tied head, masked cross-entropy.
func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %g: tensor<8xf32> {kiln.param = "norm.weight"},
                   %tokens: tensor<2x4xi32> {kiln.input = "tokens"}, %targets: tensor<2x4xi32> {kiln.input = "targets"},
                   %mask: tensor<2x4xf32> {kiln.input = "loss_mask"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %n = kiln.rms_norm %h, %g {epsilon = 1.0e-06 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %logits = kiln.linear %n, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// dp 2: the batch part is outlined and called once; the loss is normalised by
// the token count of the whole global batch; gradients, the loss share and
// the count are summed over dp before the optimizer reads them.
// CHECK: module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>}
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[EMB:arg0]]: tensor<16x8xf32> {kiln.param = "embed.weight"}
// CHECK-SAME: %[[MASK:arg9]]: tensor<2x4xf32> {kiln.input = "loss_mask"}
// CHECK: %[[LOCAL:.*]] = kiln.unbroadcast %[[MASK]] : (tensor<2x4xf32>) -> tensor<1x1xf32>
// CHECK: %[[LC:.*]] = tensor.collapse_shape %[[LOCAL]] [] : tensor<1x1xf32> into tensor<f32>
// CHECK: %[[COUNT:.*]] = kiln.all_reduce %[[LC]] {axes = ["dp"], kind = "sum"} : tensor<f32>
// CHECK: %[[MICRO:.*]]:3 = call @train_step_micro(%[[EMB]], %arg1, %arg7, %arg8, %[[MASK]], %[[COUNT]])
// CHECK: %[[LOSS:.*]] = kiln.all_reduce %[[MICRO]]#0 {axes = ["dp"], kind = "sum"} : tensor<f32>
// CHECK: %[[DG:.*]] = kiln.all_reduce %[[MICRO]]#1 {axes = ["dp"], kind = "sum"} : tensor<8xf32>
// CHECK: %[[DE:.*]] = kiln.all_reduce %[[MICRO]]#2 {axes = ["dp"], kind = "sum"} : tensor<16x8xf32>
// CHECK: %[[NORM:.*]] = kiln.global_norm %[[DE]], %[[DG]]
// CHECK: kiln.adamw %[[EMB]], %[[DE]]
// CHECK: return {{.*}}, %[[LOSS]], %[[LOSS]], %[[NORM]]
// CHECK-LABEL: func.func private @train_step_micro(
// CHECK-SAME: %[[COUNTARG:arg5]]: tensor<f32> {kiln.input = "token_count"}
// CHECK: kiln.cross_entropy %{{.*}}, %{{.*}}, %{{.*}} count %[[COUNTARG]]
// CHECK: kiln.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} count %[[COUNTARG]]

// dp 3, ZeRO-1, 2 micro-batches: each rank's batch inputs hold 2 x 2 rows;
// the counts of both micro-batches are summed before the ranks' sum; the
// micro-batches' gradients are summed in order, then reduce-scattered in
// flat, zero-padded form (128 -> 129 = 3 x 43); each rank updates its
// slice and all-gathers the parameter back; the moments are shards.
// ZERO: module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [3]>}
// ZERO-LABEL: func.func @train_step(
// ZERO-SAME: %[[EMB:arg0]]: tensor<16x8xf32> {kiln.param = "embed.weight"}
// ZERO-SAME: %[[M:arg2]]: tensor<43xf32> {kiln.param = "embed.weight", kiln.sharded = {axes = ["dp"], numel = 128 : i64}, kiln.state = "exp_avg"}
// ZERO-SAME: %[[TOKENS:arg7]]: tensor<4x4xi32> {kiln.input = "tokens"}
// ZERO-SAME: -> (tensor<16x8xf32> {kiln.param = "embed.weight", kiln.result = "param"}, tensor<8xf32> {kiln.param = "norm.weight", kiln.result = "param"}, tensor<43xf32> {kiln.param = "embed.weight", kiln.result = "exp_avg"}
// ZERO: %[[T0:.*]] = tensor.extract_slice %[[TOKENS]][0, 0] [2, 4] [1, 1] : tensor<4x4xi32> to tensor<2x4xi32>
// ZERO: %[[T1:.*]] = tensor.extract_slice %[[TOKENS]][2, 0] [2, 4] [1, 1] : tensor<4x4xi32> to tensor<2x4xi32>
// ZERO: %[[C:.*]] = arith.addf
// ZERO: %[[COUNT:.*]] = kiln.all_reduce %[[C]] {axes = ["dp"], kind = "sum"} : tensor<f32>
// ZERO: %[[A:.*]]:3 = call @train_step_micro(%[[EMB]], %arg1, %[[T0]], {{.*}}, %[[COUNT]])
// ZERO: %[[B:.*]]:3 = call @train_step_micro(%[[EMB]], %arg1, %[[T1]], {{.*}}, %[[COUNT]])
// ZERO: %[[GE:.*]] = arith.addf %[[A]]#2, %[[B]]#2 : tensor<16x8xf32>
// ZERO: %[[FLAT:.*]] = tensor.collapse_shape %[[GE]] {{\[\[}}0, 1]] : tensor<16x8xf32> into tensor<128xf32>
// ZERO: %[[PADDED:.*]] = tensor.concat dim(0) %[[FLAT]], %{{.*}} : (tensor<128xf32>, tensor<1xf32>) -> tensor<129xf32>
// ZERO: %[[SHARD:.*]] = kiln.reduce_scatter %[[PADDED]] {axes = ["dp"], dim = 0 : i64, kind = "sum"} : (tensor<129xf32>) -> tensor<43xf32>
// ZERO: %[[LOCALNORM:.*]] = kiln.global_norm %[[SHARD]], %{{.*}} : (tensor<43xf32>, tensor<3xf32>) -> tensor<f32>
// ZERO: %[[SQ:.*]] = arith.mulf %[[LOCALNORM]], %[[LOCALNORM]] : tensor<f32>
// ZERO: %[[TOTAL:.*]] = kiln.all_reduce %[[SQ]] {axes = ["dp"], kind = "sum"} : tensor<f32>
// ZERO: %[[NORM:.*]] = math.sqrt %[[TOTAL]] : tensor<f32>
// ZERO: %[[PSHARD:.*]] = kiln.local_shard %{{.*}} {axes = ["dp"], dim = 0 : i64} : (tensor<129xf32>) -> tensor<43xf32>
// ZERO: %[[NEWP:.*]], %[[NEWM:.*]], %{{.*}} = kiln.adamw %[[PSHARD]], %[[SHARD]], %[[M]]
// ZERO: %[[FULL:.*]] = kiln.all_gather %[[NEWP]] {axes = ["dp"], dim = 0 : i64} : (tensor<43xf32>) -> tensor<129xf32>
// ZERO: %[[CUT:.*]] = tensor.extract_slice %[[FULL]][0] [128] [1] : tensor<129xf32> to tensor<128xf32>
// ZERO: %[[P:.*]] = tensor.expand_shape %[[CUT]] {{\[\[}}0, 1]] output_shape [16, 8] : tensor<128xf32> into tensor<16x8xf32>
// ZERO: return %[[P]], %{{.*}}, %[[NEWM]]

// REPORT: remark: kiln-data-parallel: dp 2, microbatches 1 x 2 rows, zero 1: per rank per step, 3 all_reduce (12 bytes), 2 reduce_scatter (544 bytes) and as many all_gather (544 bytes)
