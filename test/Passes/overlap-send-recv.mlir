// RUN: kiln-opt %s --pass-pipeline="builtin.module(func.func(kiln-overlap-send-recv{report=true}))" -mlir-print-op-on-diagnostic=false 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks

// A stage between two others: it receives x, computes y from it, sends y
// on, computes z, and receives the next x. The send is posted where it was
// (y is written right before) and waited for only after z, before the next
// blocking receive; the second receive is posted right after the first
// one's wait, so it can arrive while y and z are computed.
// REPORT: remark: kiln-overlap-send-recv: @stage: 3 transfers posted, 1 posted early, 1 send waits deferred

// CHECK-LABEL: func.func @stage(
// CHECK: %[[X0:.*]] = kiln_kernel.alloc : memref<256xf32>
// CHECK-NEXT: kiln_kernel.launch "recv_start"() -> (%[[X0]] : memref<256xf32>) {axis = "pp", peer = 0 : i64, ticket = 0 : i64}
// CHECK-NEXT: kiln_kernel.launch "p2p_wait"(%[[X0]] : memref<256xf32>) -> () {ticket = 0 : i64}
// CHECK-NEXT: %[[X1:.*]] = kiln_kernel.alloc : memref<256xf32>
// CHECK-NEXT: kiln_kernel.launch "recv_start"() -> (%[[X1]] : memref<256xf32>) {axis = "pp", peer = 0 : i64, ticket = 2 : i64}
// CHECK-NEXT: %[[Y:.*]] = kiln_kernel.alloc : memref<256xf32>
// CHECK-NEXT: kiln_kernel.elementwise(%[[X0]] : memref<256xf32>) -> (%[[Y]] : memref<256xf32>)
// CHECK: kiln_kernel.launch "send_start"(%[[Y]] : memref<256xf32>) -> () {axis = "pp", peer = 2 : i64, ticket = 1 : i64}
// CHECK-NEXT: %[[Z:.*]] = kiln_kernel.alloc : memref<256xf32>
// CHECK-NEXT: kiln_kernel.elementwise(%[[X0]] : memref<256xf32>) -> (%[[Z]] : memref<256xf32>)
// CHECK: kiln_kernel.launch "p2p_wait"(%[[Y]] : memref<256xf32>) -> () {ticket = 1 : i64}
// CHECK-NEXT: kiln_kernel.launch "p2p_wait"(%[[X1]] : memref<256xf32>) -> () {ticket = 2 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%[[X1]], %[[Z]] : memref<256xf32>, memref<256xf32>) -> (%arg0 : memref<256xf32>)
// CHECK-NOT: "send"
// CHECK-NOT: "recv"
func.func @stage(%out: memref<256xf32>) {
  %x0 = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.launch "recv"() -> (%x0 : memref<256xf32>) {axis = "pp", peer = 0 : i64}
  %y = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.elementwise (%x0 : memref<256xf32>) -> (%y : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "send"(%y : memref<256xf32>) -> () {axis = "pp", peer = 2 : i64}
  %z = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.elementwise (%x0 : memref<256xf32>) -> (%z : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %x1 = kiln_kernel.alloc : memref<256xf32>
  kiln_kernel.launch "recv"() -> (%x1 : memref<256xf32>) {axis = "pp", peer = 0 : i64}
  kiln_kernel.elementwise (%x1, %z : memref<256xf32>, memref<256xf32>) -> (%out : memref<256xf32>) origin ["arith.addf"] {
  ^bb0(%a: f32, %b: f32):
    %r = arith.addf %a, %b : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// A send whose buffer is written again later waits before that write.
// REPORT: remark: kiln-overlap-send-recv: @rewritten: 1 transfers posted, 0 posted early, 0 send waits deferred
// CHECK-LABEL: func.func @rewritten(
// CHECK: kiln_kernel.launch "send_start"(%arg0 : memref<256xf32>)
// CHECK-NEXT: kiln_kernel.launch "p2p_wait"(%arg0 : memref<256xf32>) -> () {ticket = 0 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%arg1 : memref<256xf32>) -> (%arg0 : memref<256xf32>)
func.func @rewritten(%x: memref<256xf32>, %y: memref<256xf32>) {
  kiln_kernel.launch "send"(%x : memref<256xf32>) -> () {axis = "pp", peer = 1 : i64}
  kiln_kernel.elementwise (%y : memref<256xf32>) -> (%x : memref<256xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}
