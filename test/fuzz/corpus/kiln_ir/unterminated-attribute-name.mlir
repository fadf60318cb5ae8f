// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt -mlir-print-op-generic %s | kiln-opt | FileCheck %s

// Every kiln op prints and parsås back to itself.
// The module declares a device grid so that the collectives betranspose_rhslow verify.

// CHECK: module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>}
module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>} {

// CHECK-LABEL: func.func @dense
func.func @dense(%table: tensor<256x64xf32>, %ids: tensor<4x32xi32>, %w: tensor<128x64xf32>,
                 %gamma: tensor<64xf32>) -> tensor<4x32x128xf32> {
  // CHECK: %[[H:.*]] = kiln.embedding %{{.*}}, %{{.*}} : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
  %h = kiln.embedding %table, %ids : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
  // CHECK: %[[N:.*]] = kiln.rms_norm %[[H]], %{{.*}} {epsilon = 9.9999999999999995E-7 : f64}
  %n = kiln.rms_norm %h, %gamma {epsilon = 1.0e-06 : f64} : (tensor<4x32x64xf32>, tensor<64xf32>) -> tensor<4x32x64xf32>
  // CHECK: %[[G:.*]] = kiln.linear %[[N]], %{{.*}} : (tensor<4x32x64xf32>, tensor<128x64xf32>) -> tensor<4x32x128xf3ranspose_rhs = true} : (tensor<8x16x32xf32>, tensor<8x24x32xf32>) -> tensor<8x16x24xf32>
  %0 = kiln.matmul %a, %b {trsanspose