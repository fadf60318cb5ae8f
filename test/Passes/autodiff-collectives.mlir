// RUN: kiln-opt %s -split-input-file --kiln-autodiff="mode=gradient" | FileCheck %s

// The adjoint of each collective moves gradients back along the same edges:
// all_gather <-> reduce_scatter, all_reduce sum is self-adjoint, max shares
// the summed gradient among the ranks holding the maximum.

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [4]>} {
func.func @forward(%x: tensor<8xf32>, %targets: tensor<2xi32>, %mask: tensor<2xf32>) -> tensor<f32> {
  %g = kiln.all_gather %x {axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<32xf32>
  %r = kiln.reduce_scatter %g {kind = "sum", axes = ["dp"], dim = 0 : i64} : (tensor<32xf32>) -> tensor<8xf32>
  %s = kiln.all_reduce %r {kind = "sum", axes = ["dp"]} : tensor<8xf32>
  %m = kiln.all_reduce %s {kind = "max", axes = ["dp"]} : tensor<8xf32>
  %logits = tensor.expand_shape %m [[0, 1]] output_shape [2, 4] : tensor<8xf32> into tensor<2x4xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}
}
// CHECK-LABEL: func.func @forward_grad(
// CHECK: %[[DL:.*]] = kiln.cross_entropy_grad
// CHECK: %[[DM:.*]] = tensor.collapse_shape %[[DL]]
// CHECK: %[[SUM:.*]] = kiln.all_reduce %[[DM]] {axes = ["dp"], kind = "sum"} : tensor<8xf32>
// CHECK: %[[HOLDS:.*]] = arith.cmpf oeq
// CHECK: %[[IND:.*]] = arith.uitofp %[[HOLDS]] : tensor<8xi1> to tensor<8xf32>
// CHECK: %[[HOLDERS:.*]] = kiln.all_reduce %[[IND]] {axes = ["dp"], kind = "sum"} : tensor<8xf32>
// CHECK: %[[SHARE:.*]] = arith.divf %[[IND]], %[[HOLDERS]]
// CHECK: %[[DS:.*]] = arith.mulf %[[SUM]], %[[SHARE]]
// CHECK: %[[DR:.*]] = kiln.all_reduce %[[DS]] {axes = ["dp"], kind = "sum"} : tensor<8xf32>
// CHECK: %[[DG:.*]] = kiln.all_gather %[[DR]] {axes = ["dp"], dim = 0 : i64} : (tensor<8xf32>) -> tensor<32xf32>
// CHECK: %[[DX:.*]] = kiln.reduce_scatter %[[DG]] {axes = ["dp"], dim = 0 : i64, kind = "sum"} : (tensor<32xf32>) -> tensor<8xf32>
// CHECK: return %{{.*}}, %[[DX]]

// -----

// all_to_all's adjoint is the reverse exchange (the received counts become
// the send counts); a recv's gradient is sent back, and a send's operand
// gets its gradient by a recv from the same peer.

module attributes {kiln.grid = #kiln.grid<axes = ["pp", "ep"], shape = [2, 2]>} {
func.func @forward(%rows: tensor<6x4xf32>, %counts: tensor<2xi64>, %act: tensor<2x4xf32>,
                   %targets: tensor<2xi32>, %mask: tensor<2xf32>) -> tensor<f32> {
  %recv, %rc = kiln.all_to_all %rows, %counts {axes = ["ep"]} : (tensor<6x4xf32>, tensor<2xi64>) -> (tensor<2x4xf32>, tensor<2xi64>)
  kiln.send %act {axis = "pp", peer = 1 : i64} : tensor<2x4xf32>
  %prev = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4xf32>
  %logits = arith.addf %recv, %prev : tensor<2x4xf32>
  %loss = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}
}
// CHECK-LABEL: func.func @forward_grad(
// CHECK-SAME: %[[ROWS:arg0]]: tensor<6x4xf32>, %[[COUNTS:arg1]]: tensor<2xi64>
// CHECK: %[[FWD:.*]], %[[RC:.*]] = kiln.all_to_all %[[ROWS]], %[[COUNTS]]
// CHECK: %[[DL:.*]] = kiln.cross_entropy_grad
// CHECK: kiln.send %[[DL]] {axis = "pp", peer = 1 : i64} : tensor<2x4xf32>
// CHECK: %[[DA:.*]] = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<2x4xf32>
// CHECK: %[[DROWS:.*]], %{{.*}} = kiln.all_to_all %[[DL]], %[[RC]] {axes = ["ep"]} : (tensor<2x4xf32>, tensor<2xi64>) -> (tensor<6x4xf32>, tensor<2xi64>)
// CHECK: return %{{.*}}, %[[DROWS]], %[[DA]]
