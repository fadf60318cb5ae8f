// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=2" --kiln-grad-compression="ratio=0.1" | FileCheck %s
// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=2" --kiln-grad-compression="ratio=0.1 quantize=none error-feedback=false" | FileCheck %s --check-prefix=NOEF
// RUN: kiln-opt %s --kiln-autodiff --kiln-data-parallel="dp=2" --kiln-grad-compression="ratio=0.1 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

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

// Each gradient's all_reduce becomes compress -> all_gather -> decompress;
// the loss share is still summed. k = ceil(0.1 x 8) = 1 and ceil(0.1 x 128)
// = 13; int8 messages are 4 + 5k bytes. The residuals are state: an
// argument and a result per trainable parameter, after the others.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[RE:arg10]]: tensor<16x8xf32> {kiln.param = "embed.weight", kiln.state = "grad_residual"}
// CHECK-SAME: %[[RG:arg11]]: tensor<8xf32> {kiln.param = "norm.weight", kiln.state = "grad_residual"}
// CHECK-SAME: tensor<16x8xf32> {kiln.param = "embed.weight", kiln.result = "grad_residual"}, tensor<8xf32> {kiln.param = "norm.weight", kiln.result = "grad_residual"})
// CHECK: %[[MICRO:.*]]:3 = call @train_step_micro(
// CHECK: kiln.all_reduce %[[MICRO]]#0 {axes = ["dp"], kind = "sum"} : tensor<f32>
// CHECK: %[[MG:.*]], %[[NRG:.*]] = kiln.topk_compress %[[MICRO]]#1, %[[RG]] {k = 1 : i64, quantize = "int8"} : (tensor<8xf32>, tensor<8xf32>) -> (tensor<9xi8>, tensor<8xf32>)
// CHECK: %[[AG:.*]] = kiln.all_gather %[[MG]] {axes = ["dp"], dim = 0 : i64} : (tensor<9xi8>) -> tensor<18xi8>
// CHECK: %[[DG:.*]] = kiln.topk_decompress %[[AG]] {k = 1 : i64, quantize = "int8"} : (tensor<18xi8>) -> tensor<8xf32>
// CHECK: %[[ME:.*]], %[[NRE:.*]] = kiln.topk_compress %[[MICRO]]#2, %[[RE]] {k = 13 : i64, quantize = "int8"} : (tensor<16x8xf32>, tensor<16x8xf32>) -> (tensor<69xi8>, tensor<16x8xf32>)
// CHECK: %[[AE:.*]] = kiln.all_gather %[[ME]] {axes = ["dp"], dim = 0 : i64} : (tensor<69xi8>) -> tensor<138xi8>
// CHECK: %[[DE:.*]] = kiln.topk_decompress %[[AE]] {k = 13 : i64, quantize = "int8"} : (tensor<138xi8>) -> tensor<16x8xf32>
// CHECK: kiln.global_norm %[[DE]], %[[DG]]
// CHECK: kiln.adamw %arg0, %[[DE]],
// CHECK: kiln.adamw %arg1, %[[DG]],
// CHECK: return {{.*}}, %[[NRE]], %[[NRG]] :
// CHECK-NOT: kiln.all_reduce {{.*}} : tensor<16x8xf32>

// Without error feedback there is no state: the residual is zeros, and f32
// values make 8k-byte messages.
// NOEF-LABEL: func.func @train_step(
// NOEF-NOT: grad_residual
// NOEF: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<8xf32>
// NOEF: kiln.topk_compress %{{.*}}, %[[ZERO]] {k = 1 : i64, quantize = "none"} : (tensor<8xf32>, tensor<8xf32>) -> (tensor<8xi8>, tensor<8xf32>)
// NOEF: kiln.topk_compress %{{.*}}, %{{.*}} {k = 13 : i64, quantize = "none"} : (tensor<16x8xf32>, tensor<16x8xf32>) -> (tensor<104xi8>, tensor<16x8xf32>)

// REPORT: remark: kiln-grad-compression: 2 gradients, top-k 0.1 with int8 values and error feedback: each rank sends 78 bytes per step where the all_reduce sent 544
