// RUN: kiln-opt %s --pass-pipeline="builtin.module(func.func(kiln-overlap-collectives{report=true}))" -mlir-print-op-on-diagnostic=false 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks

// A data-parallel backward: the gradient of w1 is done first, that of w0
// after more backward compute, and the optimizer reads both at the end. The
// all_reduce of g1 moves up (its output's alloc with it) to right after
// g1's writer, on the communication stream; the compute stream waits for
// each right before the update that reads it, so the backward of w0
// overlaps the all_reduce of g1. Each wait takes the collective's buffers.
// REPORT: remark: kiln-overlap-collectives: @backward: 2 collectives on the communication stream, 1 moved up, 3 kernels issued between a collective and its wait

// CHECK-LABEL: func.func @backward(
// CHECK: %[[G1:.*]] = kiln_kernel.alloc : memref<64xf32>
// CHECK-NEXT: kiln_kernel.elementwise(%arg0 : memref<64xf32>) -> (%[[G1]] : memref<64xf32>)
// CHECK: %[[R1:.*]] = kiln_kernel.alloc : memref<64xf32>
// CHECK-NEXT: kiln_kernel.launch "all_reduce"(%[[G1]] : memref<64xf32>) -> (%[[R1]] : memref<64xf32>) {axes = ["dp"], event = 0 : i64, kind = "sum", stream = "comm"}
// CHECK-NEXT: %[[H:.*]] = kiln_kernel.alloc : memref<64xf32>
// CHECK-NEXT: kiln_kernel.elementwise(%arg0, %arg2 : memref<64xf32>, memref<64xf32>) -> (%[[H]] : memref<64xf32>)
// CHECK: %[[G0:.*]] = kiln_kernel.alloc : memref<64xf32>
// CHECK-NEXT: kiln_kernel.elementwise(%[[H]] : memref<64xf32>) -> (%[[G0]] : memref<64xf32>)
// CHECK: %[[R0:.*]] = kiln_kernel.alloc : memref<64xf32>
// CHECK-NEXT: kiln_kernel.launch "all_reduce"(%[[G0]] : memref<64xf32>) -> (%[[R0]] : memref<64xf32>) {axes = ["dp"], event = 1 : i64, kind = "sum", stream = "comm"}
// CHECK-NEXT: kiln_kernel.launch "stream_wait"(%[[G1]], %[[R1]] : memref<64xf32>, memref<64xf32>) -> () {event = 0 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%arg2, %[[R1]] : memref<64xf32>, memref<64xf32>) -> (%arg2 : memref<64xf32>)
// CHECK: kiln_kernel.launch "stream_wait"(%[[G0]], %[[R0]] : memref<64xf32>, memref<64xf32>) -> () {event = 1 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%arg1, %[[R0]] : memref<64xf32>, memref<64xf32>) -> (%arg1 : memref<64xf32>)
// CHECK-NOT: stream_wait
// CHECK: return
func.func @backward(%x: memref<64xf32>, %w0: memref<64xf32>, %w1: memref<64xf32>) {
  %g1 = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.elementwise (%x : memref<64xf32>) -> (%g1 : memref<64xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %h = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.elementwise (%x, %w1 : memref<64xf32>, memref<64xf32>) -> (%h : memref<64xf32>) origin ["arith.mulf"] {
  ^bb0(%a: f32, %b: f32):
    %r = arith.mulf %a, %b : f32
    kiln_kernel.yield %r : f32
  }
  %g0 = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.elementwise (%h : memref<64xf32>) -> (%g0 : memref<64xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %r1 = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.launch "all_reduce"(%g1 : memref<64xf32>) -> (%r1 : memref<64xf32>) {axes = ["dp"], kind = "sum"}
  %r0 = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.launch "all_reduce"(%g0 : memref<64xf32>) -> (%r0 : memref<64xf32>) {axes = ["dp"], kind = "sum"}
  kiln_kernel.elementwise (%w1, %r1 : memref<64xf32>, memref<64xf32>) -> (%w1 : memref<64xf32>) origin ["arith.subf"] {
  ^bb0(%a: f32, %b: f32):
    %r = arith.subf %a, %b : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.elementwise (%w0, %r0 : memref<64xf32>, memref<64xf32>) -> (%w0 : memref<64xf32>) origin ["arith.subf"] {
  ^bb0(%a: f32, %b: f32):
    %r = arith.subf %a, %b : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// ZeRO-1: reduce_scatter of a gradient, the rank's shard of the parameter
// (local_shard stays on the compute stream), its update, and the all_gather
// of the parameter back, waited for at the end of the step.
// REPORT: remark: kiln-overlap-collectives: @zero: 2 collectives on the communication stream, 0 moved up, 1 kernels issued between a collective and its wait
// CHECK-LABEL: func.func @zero(
// CHECK: %[[S:.*]] = kiln_kernel.alloc : memref<32xf32>
// CHECK-NEXT: kiln_kernel.launch "reduce_scatter"(%arg1 : memref<64xf32>) -> (%[[S]] : memref<32xf32>) {axes = ["dp"], dim = 0 : i64, event = 0 : i64, stream = "comm"}
// CHECK-NEXT: %[[PS:.*]] = kiln_kernel.alloc : memref<32xf32>
// CHECK-NEXT: kiln_kernel.launch "local_shard"(%arg0 : memref<64xf32>) -> (%[[PS]] : memref<32xf32>) {axes = ["dp"], dim = 0 : i64}
// CHECK-NEXT: kiln_kernel.launch "stream_wait"(%arg1, %[[S]] : memref<64xf32>, memref<32xf32>) -> () {event = 0 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%[[PS]], %[[S]] : memref<32xf32>, memref<32xf32>) -> (%[[PS]] : memref<32xf32>)
// CHECK: kiln_kernel.launch "all_gather"(%[[PS]] : memref<32xf32>) -> (%arg0 : memref<64xf32>) {axes = ["dp"], dim = 0 : i64, event = 1 : i64, stream = "comm"}
// CHECK-NEXT: kiln_kernel.launch "stream_wait"(%[[PS]], %arg0 : memref<32xf32>, memref<64xf32>) -> () {event = 1 : i64}
// CHECK-NEXT: return
func.func @zero(%p: memref<64xf32>, %g: memref<64xf32>) {
  %s = kiln_kernel.alloc : memref<32xf32>
  kiln_kernel.launch "reduce_scatter"(%g : memref<64xf32>) -> (%s : memref<32xf32>) {axes = ["dp"], dim = 0 : i64}
  %ps = kiln_kernel.alloc : memref<32xf32>
  kiln_kernel.launch "local_shard"(%p : memref<64xf32>) -> (%ps : memref<32xf32>) {axes = ["dp"], dim = 0 : i64}
  kiln_kernel.elementwise (%ps, %s : memref<32xf32>, memref<32xf32>) -> (%ps : memref<32xf32>) origin ["arith.subf"] {
  ^bb0(%a: f32, %b: f32):
    %r = arith.subf %a, %b : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "all_gather"(%ps : memref<32xf32>) -> (%p : memref<64xf32>) {axes = ["dp"], dim = 0 : i64}
  return
}

// Collectives keep their order (every rank issues them alike): the
// all_reduce of gb, ready first, does not pass the all_reduce before it.
// An in-place all_reduce is waited for before the next read of its buffer,
// and everything is waited for before an all_to_all, which stays where it
// is.
// REPORT: remark: kiln-overlap-collectives: @order: 3 collectives on the communication stream, 0 moved up, 1 kernels issued between a collective and its wait
// CHECK-LABEL: func.func @order(
// CHECK: kiln_kernel.launch "all_reduce"(%[[GA:.*]] : memref<64xf32>) -> (%[[RA:.*]] : memref<64xf32>) {axes = ["dp"], event = 0 : i64, kind = "sum", stream = "comm"}
// CHECK: kiln_kernel.launch "all_reduce"(%[[GB:.*]] : memref<64xf32>) -> (%[[RB:.*]] : memref<64xf32>) {axes = ["dp"], event = 1 : i64, kind = "sum", stream = "comm"}
// CHECK-NEXT: kiln_kernel.launch "all_reduce"(%arg2 : memref<1xf32>) -> (%arg2 : memref<1xf32>) {axes = ["dp"], event = 2 : i64, kind = "sum", stream = "comm"}
// CHECK-NEXT: kiln_kernel.launch "stream_wait"(%[[GA]], %[[RA]] : memref<64xf32>, memref<64xf32>) -> () {event = 0 : i64}
// CHECK-NEXT: kiln_kernel.launch "stream_wait"(%[[GB]], %[[RB]] : memref<64xf32>, memref<64xf32>) -> () {event = 1 : i64}
// CHECK-NEXT: kiln_kernel.elementwise(%[[RA]], %[[RB]] : memref<64xf32>, memref<64xf32>) -> (%arg0 : memref<64xf32>)
// CHECK: kiln_kernel.launch "stream_wait"(%arg2 : memref<1xf32>) -> () {event = 2 : i64}
// CHECK-NEXT: kiln_kernel.launch "all_to_all"
func.func @order(%a: memref<64xf32>, %b: memref<64xf32>, %loss: memref<1xf32>, %counts: memref<2xi64>, %rows: memref<8x4xf32>, %got: memref<8x4xf32>, %gotCounts: memref<2xi64>) {
  %gb = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.elementwise (%b : memref<64xf32>) -> (%gb : memref<64xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %ga = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.elementwise (%a : memref<64xf32>) -> (%ga : memref<64xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %ra = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.launch "all_reduce"(%ga : memref<64xf32>) -> (%ra : memref<64xf32>) {axes = ["dp"], kind = "sum"}
  %rb = kiln_kernel.alloc : memref<64xf32>
  kiln_kernel.launch "all_reduce"(%gb : memref<64xf32>) -> (%rb : memref<64xf32>) {axes = ["dp"], kind = "sum"}
  kiln_kernel.launch "all_reduce"(%loss : memref<1xf32>) -> (%loss : memref<1xf32>) {axes = ["dp"], kind = "sum"}
  kiln_kernel.elementwise (%ra, %rb : memref<64xf32>, memref<64xf32>) -> (%a : memref<64xf32>) origin ["arith.addf"] {
  ^bb0(%x: f32, %y: f32):
    %r = arith.addf %x, %y : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "all_to_all"(%rows, %counts : memref<8x4xf32>, memref<2xi64>) -> (%got, %gotCounts : memref<8x4xf32>, memref<2xi64>) {axes = ["dp"]}
  return
}
