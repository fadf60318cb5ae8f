// RUN: kiln-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(kiln-plan-arena{report=true}))" -mlir-print-op-on-diagnostic=false 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks

// Three 1 KiB temporaries in a chain: a dies when c is made, so c takes a's
// bytes; b is live across both. Outs never share bytes with the ins of the
// same kernel (b is read where c is written, so they stay apart).

// REPORT: remark: kiln-plan-arena: @chain: 3 buffers in an arena of 2048 bytes (3072 without reuse, peak live 2048)
// CHECK-LABEL: func.func @chain(
// CHECK-SAME: kiln_kernel.arena_bytes = 2048 : i64
// CHECK: %[[A:.*]] = kiln_kernel.buffer offset 0 : memref<256xf32>
// CHECK: %[[B:.*]] = kiln_kernel.buffer offset 1024 : memref<256xf32>
// CHECK: %[[C:.*]] = kiln_kernel.buffer offset 0 : memref<256xf32>
// CHECK-NOT: kiln_kernel.alloc
func.func @chain(%x: memref<256xf32>, %y: memref<256xf32>) {
  %a = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.elementwise (%x : memref<256xf32>) -> (%a : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %b = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.elementwise (%a : memref<256xf32>) -> (%b : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %c = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.elementwise (%b : memref<256xf32>) -> (%c : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.elementwise (%b, %c : memref<256xf32>, memref<256xf32>) -> (%y : memref<256xf32>) origin ["arith.addf"] {
  ^bb0(%p: f32, %q: f32):
    %r = arith.addf %p, %q : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// -----

// A buffer read through a reshape lives until the reshape's last reader, so
// the two small buffers made meanwhile go after it; they are each live at
// one op only, so they share bytes. Sizes are rounded up to 64 bytes.

// REPORT: remark: kiln-plan-arena: @alias: 3 buffers in an arena of 1088 bytes (1152 without reuse, peak live 1088)
// CHECK-LABEL: func.func @alias(
// CHECK-SAME: kiln_kernel.arena_bytes = 1088 : i64
// CHECK-DAG: kiln_kernel.buffer offset 0 : memref<16x16xf32>
// CHECK-DAG: kiln_kernel.buffer offset 1024 : memref<3xf32>
// CHECK-DAG: kiln_kernel.buffer offset 1024 : memref<2xi32>
func.func @alias(%x: memref<256xf32>, %y: memref<256xf32>) {
  %a = kiln_kernel.alloc : memref<16x16xf32>
  %flat = kiln_kernel.reshape %a : memref<16x16xf32> to memref<256xf32>
  kiln_kernel.elementwise (%x : memref<256xf32>) -> (%flat : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %s = kiln_kernel.alloc : memref<3xf32>
  kiln_kernel.launch "fill"() -> (%s : memref<3xf32>) {value = 0.0 : f64}
  %i = kiln_kernel.alloc : memref<2xi32>
  kiln_kernel.launch "fill"() -> (%i : memref<2xi32>) {value = 0.0 : f64}
  kiln_kernel.elementwise (%flat : memref<256xf32>) -> (%y : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}
