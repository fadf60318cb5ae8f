// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// Every kiln_kernel op prints and parses back.

// CHECK-LABEL: func.func @step
// CHECK-SAME: kiln_kernel.arena_bytes = 1024
func.func @step(%x: memref<4x8xf32>, %w: memref<16x8xf32>, %loss: memref<f32>)
    attributes {kiln_kernel.arena_bytes = 1024 : i64} {
  // CHECK: %[[Y:.*]] = kiln_kernel.buffer offset 0 : memref<4x16xf32>
  %y = kiln_kernel.buffer offset 0 : memref<4x16xf32>
  // CHECK: kiln_kernel.launch "linear"(%{{.*}}, %{{.*}} : memref<4x8xf32>, memref<16x8xf32>) -> (%[[Y]] : memref<4x16xf32>) {}
  kiln_kernel.launch "linear"(%x, %w : memref<4x8xf32>, memref<16x8xf32>) -> (%y : memref<4x16xf32>) {}
  // CHECK: %[[F:.*]] = kiln_kernel.reshape %[[Y]] : memref<4x16xf32> to memref<64xf32>
  %flat = kiln_kernel.reshape %y : memref<4x16xf32> to memref<64xf32>
  %s = kiln_kernel.buffer offset 256 : memref<64xf32>
  // CHECK: kiln_kernel.elementwise(%[[F]] : memref<64xf32>) -> (%{{.*}} : memref<64xf32>) origin ["kiln.silu"] {
  // CHECK:   math.exp
  // CHECK:   kiln_kernel.yield
  kiln_kernel.elementwise (%flat : memref<64xf32>) -> (%s : memref<64xf32>) origin ["kiln.silu"] {
  ^bb0(%v: f32):
    %one = arith.constant 1.0 : f32
    %n = arith.negf %v : f32
    %e = math.exp %n : f32
    %d = arith.addf %one, %e : f32
    %sig = arith.divf %one, %d : f32
    %r = arith.mulf %v, %sig : f32
    kiln_kernel.yield %r : f32
  }
  // CHECK: kiln_kernel.launch "fill"() -> (%{{.*}} : memref<f32>) {value = 1.000000e+00 : f64}
  kiln_kernel.launch "fill"() -> (%loss : memref<f32>) {value = 1.0 : f64}
  // CHECK: kiln_kernel.alloc : memref<2xi32>
  %a = kiln_kernel.alloc : memref<2xi32>
  return
}

// A send has no outs and a recv no ins.
// CHECK-LABEL: func.func @point_to_point
// CHECK: kiln_kernel.launch "send"(%{{.*}} : memref<4xf32>) -> () {axis = "pp", peer = 1 : i64}
// CHECK: kiln_kernel.launch "recv"() -> (%{{.*}} : memref<4xf32>) {axis = "pp", peer = 1 : i64}
func.func @point_to_point(%a: memref<4xf32>, %b: memref<4xf32>) {
  kiln_kernel.launch "send"(%a : memref<4xf32>) -> () {axis = "pp", peer = 1 : i64}
  kiln_kernel.launch "recv"() -> (%b : memref<4xf32>) {axis = "pp", peer = 1 : i64}
  return
}
