// RUN: kiln-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(kiln-fuse-elementwise{report=true}))" -mlir-print-op-on-diagnostic=false 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks

// A chain silu -> add -> scale through a reshape becomes one loop; the
// intermediates disappear and the splat fill becomes a constant.

// REPORT: remark: kiln-fuse-elementwise: @chain: 4 kernels before, 1 after; 3 intermediate buffers removed
// CHECK-LABEL: func.func @chain(
// CHECK-SAME: %[[X:arg0]]: memref<2x4xf32>, %[[Y:arg1]]: memref<2x4xf32>, %[[OUT:arg2]]: memref<8xf32>)
// CHECK-NOT: kiln_kernel.alloc
// CHECK-NOT: kiln_kernel.launch
// CHECK: kiln_kernel.elementwise(%[[X]], %[[Y]] : memref<2x4xf32>, memref<2x4xf32>) -> (%[[OUT]] : memref<8xf32>) origin ["kiln.silu", "arith.addf", "kiln.scale"] {
// CHECK-NEXT: ^bb0(%[[A:.*]]: f32, %[[B:.*]]: f32):
// CHECK: %[[E:.*]] = math.exp
// CHECK: %[[SUM:.*]] = arith.addf %{{.*}}, %[[B]] : f32
// CHECK: %[[C:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: %[[R:.*]] = arith.mulf %[[SUM]], %[[C]] : f32
// CHECK: kiln_kernel.yield %[[R]] : f32
// CHECK-NOT: kiln_kernel.elementwise
func.func @chain(%x: memref<2x4xf32>, %y: memref<2x4xf32>, %out: memref<8xf32>) {
  %s = kiln_kernel.alloc : memref<2x4xf32>
  kiln_kernel.elementwise (%x : memref<2x4xf32>) -> (%s : memref<2x4xf32>) origin ["kiln.silu"] {
  ^bb0(%v: f32):
    %n = arith.negf %v : f32
    %e = math.exp %n : f32
    %r = arith.mulf %v, %e : f32
    kiln_kernel.yield %r : f32
  }
  %a = kiln_kernel.alloc : memref<2x4xf32>
  kiln_kernel.elementwise (%s, %y : memref<2x4xf32>, memref<2x4xf32>) -> (%a : memref<2x4xf32>) origin ["arith.addf"] {
  ^bb0(%p: f32, %q: f32):
    %r = arith.addf %p, %q : f32
    kiln_kernel.yield %r : f32
  }
  %flat = kiln_kernel.reshape %a : memref<2x4xf32> to memref<8xf32>
  %half = kiln_kernel.alloc : memref<8xf32>
  kiln_kernel.launch "fill"() -> (%half : memref<8xf32>) {value = 5.000000e-01 : f64}
  kiln_kernel.elementwise (%flat, %half : memref<8xf32>, memref<8xf32>) -> (%out : memref<8xf32>) origin ["kiln.scale"] {
  ^bb0(%p: f32, %c: f32):
    %r = arith.mulf %p, %c : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// -----

// Not fused: the intermediate has a second reader (a GEMM), so it must be
// materialized; an output argument is observable; and a loop whose input is
// overwritten in between cannot be moved past that write.

// REPORT: remark: kiln-fuse-elementwise: @kept: 6 kernels before, 6 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @kept(
// CHECK-COUNT-4: kiln_kernel.elementwise
// CHECK-NOT: kiln_kernel.elementwise
func.func @kept(%x: memref<4x8xf32>, %w: memref<2x8xf32>, %out: memref<4x8xf32>, %y: memref<4x2xf32>, %z: memref<4x8xf32>) {
  %t = kiln_kernel.alloc : memref<4x8xf32>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%t : memref<4x8xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "linear"(%t, %w : memref<4x8xf32>, memref<2x8xf32>) -> (%y : memref<4x2xf32>) {}
  kiln_kernel.elementwise (%t : memref<4x8xf32>) -> (%out : memref<4x8xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %u = kiln_kernel.alloc : memref<4x8xf32>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%u : memref<4x8xf32>) origin ["math.exp"] {
  ^bb0(%v: f32):
    %r = math.exp %v : f32
    kiln_kernel.yield %r : f32
  }
  // Overwrites %x, which the loop producing %u read.
  kiln_kernel.launch "fill"() -> (%x : memref<4x8xf32>) {value = 0.0 : f64}
  kiln_kernel.elementwise (%u : memref<4x8xf32>) -> (%z : memref<4x8xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// -----

// A two-output producer (swiglu_grad) keeps its other out.

// REPORT: remark: kiln-fuse-elementwise: @multi: 2 kernels before, 1 after; 1 intermediate buffers removed
// CHECK-LABEL: func.func @multi(
// CHECK-SAME: %[[A:arg0]]: memref<16xf32>, %[[D1:arg1]]: memref<16xf32>, %[[D2:arg2]]: memref<16xf32>)
// CHECK: kiln_kernel.elementwise(%[[A]] : memref<16xf32>) -> (%[[D1]], %[[D2]] : memref<16xf32>, memref<16xf32>) origin ["kiln.swiglu_grad", "arith.negf"]
func.func @multi(%a: memref<16xf32>, %d1: memref<16xf32>, %d2: memref<16xf32>) {
  %t = kiln_kernel.alloc : memref<16xf32>
  kiln_kernel.elementwise (%a : memref<16xf32>) -> (%d1, %t : memref<16xf32>, memref<16xf32>) origin ["kiln.swiglu_grad"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %v, %r : f32, f32
  }
  kiln_kernel.elementwise (%t : memref<16xf32>) -> (%d2 : memref<16xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// -----

// The consumer also reads the producer's other out (which stays an out):
// in the merged loop it takes the producer's value for the element, never
// the memory that the same loop is writing.

// REPORT: remark: kiln-fuse-elementwise: @reads_other_out: 2 kernels before, 1 after; 1 intermediate buffers removed
// CHECK-LABEL: func.func @reads_other_out(
// CHECK-SAME: %[[A:arg0]]: memref<16xf32>, %[[KEEP:arg1]]: memref<16xf32>, %[[OUT:arg2]]: memref<16xf32>)
// CHECK: kiln_kernel.elementwise(%[[A]] : memref<16xf32>) -> (%[[KEEP]], %[[OUT]] : memref<16xf32>, memref<16xf32>) origin ["kiln.swiglu_grad", "arith.addf"] {
// CHECK-NEXT: ^bb0(%[[V:.*]]: f32):
// CHECK-NEXT: %[[N:.*]] = arith.negf %[[V]] : f32
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[V]], %[[N]] : f32
// CHECK-NEXT: kiln_kernel.yield %[[V]], %[[S]] : f32, f32
func.func @reads_other_out(%a: memref<16xf32>, %keep: memref<16xf32>, %out: memref<16xf32>) {
  %t = kiln_kernel.alloc : memref<16xf32>
  kiln_kernel.elementwise (%a : memref<16xf32>) -> (%keep, %t : memref<16xf32>, memref<16xf32>) origin ["kiln.swiglu_grad"] {
  ^bb0(%v: f32):
    %n = arith.negf %v : f32
    kiln_kernel.yield %v, %n : f32, f32
  }
  kiln_kernel.elementwise (%keep, %t : memref<16xf32>, memref<16xf32>) -> (%out : memref<16xf32>) origin ["arith.addf"] {
  ^bb0(%p: f32, %q: f32):
    %r = arith.addf %p, %q : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// -----

// A loop that only widens (mixed precision's extf of a bf16 GEMM result) is
// redone in each loop that reads it: they read the bf16 buffer and widen it
// themselves. The wide copy stays for the GEMM that reads it (@widen_kept)
// and disappears when only loops read it (@widen_gone). A loop after a
// write to the bf16 buffer keeps reading the copy (@widen_overwritten).

// REPORT: remark: kiln-fuse-elementwise: @widen_kept: 4 kernels before, 4 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @widen_kept(
// CHECK-SAME: %[[H:arg0]]: memref<4x8xbf16>, %[[W:arg1]]: memref<2x8xf32>
// CHECK: %[[WIDE:.*]] = kiln_kernel.alloc : memref<4x8xf32>
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<4x8xbf16>) -> (%[[WIDE]] : memref<4x8xf32>) origin ["arith.extf"]
// CHECK: kiln_kernel.launch "linear"(%[[WIDE]], %[[W]]
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<4x8xbf16>) -> ({{.*}}) origin ["arith.negf"] {
// CHECK-NEXT: ^bb0(%[[A:.*]]: bf16):
// CHECK-NEXT: %[[E:.*]] = arith.extf %[[A]] : bf16 to f32
// CHECK-NEXT: arith.negf %[[E]] : f32
// CHECK-NOT: kiln_kernel.reshape
// CHECK: kiln_kernel.elementwise(%{{.*}}, %[[H]] : memref<32xf32>, memref<4x8xbf16>) -> ({{.*}}) origin ["arith.mulf"] {
// CHECK-NEXT: ^bb0(%[[P:.*]]: f32, %[[Q:.*]]: bf16):
// CHECK-NEXT: %[[EQ:.*]] = arith.extf %[[Q]] : bf16 to f32
// CHECK-NEXT: arith.mulf %[[P]], %[[EQ]] : f32
func.func @widen_kept(%h: memref<4x8xbf16>, %w: memref<2x8xf32>, %y: memref<4x2xf32>, %o1: memref<4x8xf32>, %s: memref<32xf32>, %o2: memref<32xf32>) {
  %wide = kiln_kernel.alloc : memref<4x8xf32>
  kiln_kernel.elementwise (%h : memref<4x8xbf16>) -> (%wide : memref<4x8xf32>) origin ["arith.extf"] {
  ^bb0(%v: bf16):
    %r = arith.extf %v : bf16 to f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "linear"(%wide, %w : memref<4x8xf32>, memref<2x8xf32>) -> (%y : memref<4x2xf32>) {}
  kiln_kernel.elementwise (%wide : memref<4x8xf32>) -> (%o1 : memref<4x8xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  %flat = kiln_kernel.reshape %wide : memref<4x8xf32> to memref<32xf32>
  kiln_kernel.elementwise (%s, %flat : memref<32xf32>, memref<32xf32>) -> (%o2 : memref<32xf32>) origin ["arith.mulf"] {
  ^bb0(%p: f32, %q: f32):
    %r = arith.mulf %p, %q : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// REPORT: remark: kiln-fuse-elementwise: @widen_gone: 3 kernels before, 2 after; 1 intermediate buffers removed
// CHECK-LABEL: func.func @widen_gone(
// CHECK-SAME: %[[H:arg0]]: memref<16xbf16>
// CHECK-NOT: kiln_kernel.alloc
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<16xbf16>) -> ({{.*}}) origin ["arith.negf"]
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<16xbf16>) -> ({{.*}}) origin ["math.exp"]
// CHECK-NOT: kiln_kernel.elementwise
func.func @widen_gone(%h: memref<16xbf16>, %o1: memref<16xf32>, %o2: memref<16xf32>) {
  %wide = kiln_kernel.alloc : memref<16xf32>
  kiln_kernel.elementwise (%h : memref<16xbf16>) -> (%wide : memref<16xf32>) origin ["arith.extf"] {
  ^bb0(%v: bf16):
    %r = arith.extf %v : bf16 to f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.elementwise (%wide : memref<16xf32>) -> (%o1 : memref<16xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.elementwise (%wide : memref<16xf32>) -> (%o2 : memref<16xf32>) origin ["math.exp"] {
  ^bb0(%v: f32):
    %r = math.exp %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// REPORT: remark: kiln-fuse-elementwise: @widen_overwritten: 4 kernels before, 4 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @widen_overwritten(
// CHECK-SAME: %[[H:arg0]]: memref<16xbf16>
// CHECK: %[[WIDE:.*]] = kiln_kernel.alloc : memref<16xf32>
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<16xbf16>) -> (%[[WIDE]] : memref<16xf32>) origin ["arith.extf"]
// CHECK: kiln_kernel.elementwise(%[[H]] : memref<16xbf16>) -> ({{.*}}) origin ["arith.negf"]
// CHECK: kiln_kernel.launch "fill"() -> (%[[H]] : memref<16xbf16>)
// CHECK: kiln_kernel.elementwise(%[[WIDE]] : memref<16xf32>) -> ({{.*}}) origin ["math.exp"]
func.func @widen_overwritten(%h: memref<16xbf16>, %o1: memref<16xf32>, %o2: memref<16xf32>) {
  %wide = kiln_kernel.alloc : memref<16xf32>
  kiln_kernel.elementwise (%h : memref<16xbf16>) -> (%wide : memref<16xf32>) origin ["arith.extf"] {
  ^bb0(%v: bf16):
    %r = arith.extf %v : bf16 to f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.elementwise (%wide : memref<16xf32>) -> (%o1 : memref<16xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "fill"() -> (%h : memref<16xbf16>) {value = 0.0 : f64}
  kiln_kernel.elementwise (%wide : memref<16xf32>) -> (%o2 : memref<16xf32>) origin ["math.exp"] {
  ^bb0(%v: f32):
    %r = math.exp %v : f32
    kiln_kernel.yield %r : f32
  }
  return
}

// A loop that recomputes an earlier loop (the same ins, an equivalent body,
// neither written in between) is dropped and its readers read the earlier
// out, if that lives as long anyway: mixed precision's truncf of one
// activation for q and k, read again by their weight gradients in reverse
// order (@reuse_truncf). Kept when the earlier out would live longer (a
// recomputation, @reuse_recomputed), past a write to an input
// (@reuse_input_written), and when the bodies differ (@reuse_other_body).

// REPORT: remark: kiln-fuse-elementwise: @reuse_truncf: 6 kernels before, 5 after; 1 intermediate buffers removed
// CHECK-LABEL: func.func @reuse_truncf(
// CHECK-SAME: %[[X:arg0]]: memref<4x8xf32>, %[[WQ:arg1]]: memref<2x8xbf16>, %[[WK:arg2]]: memref<2x8xbf16>
// CHECK: %[[N:.*]] = kiln_kernel.alloc : memref<4x8xbf16>
// CHECK-NEXT: kiln_kernel.elementwise(%[[X]] : memref<4x8xf32>) -> (%[[N]] : memref<4x8xbf16>) origin ["arith.truncf"]
// CHECK: kiln_kernel.launch "linear"(%[[N]], %[[WQ]]
// CHECK-NOT: arith.truncf
// CHECK: kiln_kernel.launch "linear"(%[[N]], %[[WK]]
// CHECK: kiln_kernel.launch "linear_wgrad"(%{{.*}}, %[[N]]
// CHECK: kiln_kernel.launch "linear_wgrad"(%{{.*}}, %[[N]]
func.func @reuse_truncf(%x: memref<4x8xf32>, %wq: memref<2x8xbf16>, %wk: memref<2x8xbf16>, %q: memref<4x2xbf16>, %k: memref<4x2xbf16>, %dy: memref<4x2xbf16>, %dwk: memref<2x8xbf16>, %dwq: memref<2x8xbf16>) {
  %n1 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n1 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n1, %wq : memref<4x8xbf16>, memref<2x8xbf16>) -> (%q : memref<4x2xbf16>) {}
  %n2 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n2 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n2, %wk : memref<4x8xbf16>, memref<2x8xbf16>) -> (%k : memref<4x2xbf16>) {}
  kiln_kernel.launch "linear_wgrad"(%dy, %n2 : memref<4x2xbf16>, memref<4x8xbf16>) -> (%dwk : memref<2x8xbf16>) {}
  kiln_kernel.launch "linear_wgrad"(%dy, %n1 : memref<4x2xbf16>, memref<4x8xbf16>) -> (%dwq : memref<2x8xbf16>) {}
  return
}

// REPORT: remark: kiln-fuse-elementwise: @reuse_recomputed: 5 kernels before, 5 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @reuse_recomputed(
// CHECK-COUNT-2: origin ["arith.truncf"]
func.func @reuse_recomputed(%x: memref<4x8xf32>, %w: memref<2x8xbf16>, %q: memref<4x2xbf16>, %k: memref<4x2xbf16>, %dy: memref<4x2xbf16>, %dw: memref<2x8xbf16>) {
  %n1 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n1 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n1, %w : memref<4x8xbf16>, memref<2x8xbf16>) -> (%q : memref<4x2xbf16>) {}
  %n2 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n2 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n2, %w : memref<4x8xbf16>, memref<2x8xbf16>) -> (%k : memref<4x2xbf16>) {}
  kiln_kernel.launch "linear_wgrad"(%dy, %n2 : memref<4x2xbf16>, memref<4x8xbf16>) -> (%dw : memref<2x8xbf16>) {}
  return
}

// REPORT: remark: kiln-fuse-elementwise: @reuse_input_written: 5 kernels before, 5 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @reuse_input_written(
// CHECK-COUNT-2: origin ["arith.truncf"]
func.func @reuse_input_written(%x: memref<4x8xf32>, %w: memref<2x8xbf16>, %o1: memref<4x2xbf16>, %o2: memref<4x2xbf16>) {
  %n1 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n1 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n1, %w : memref<4x8xbf16>, memref<2x8xbf16>) -> (%o1 : memref<4x2xbf16>) {}
  kiln_kernel.launch "fill"() -> (%x : memref<4x8xf32>) {value = 1.0 : f64}
  %n2 = kiln_kernel.alloc : memref<4x8xbf16>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n2 : memref<4x8xbf16>) origin ["arith.truncf"] {
  ^bb0(%v: f32):
    %r = arith.truncf %v : f32 to bf16
    kiln_kernel.yield %r : bf16
  }
  kiln_kernel.launch "linear"(%n2, %w : memref<4x8xbf16>, memref<2x8xbf16>) -> (%o2 : memref<4x2xbf16>) {}
  return
}

// REPORT: remark: kiln-fuse-elementwise: @reuse_other_body: 4 kernels before, 4 after; 0 intermediate buffers removed
// CHECK-LABEL: func.func @reuse_other_body(
// CHECK: origin ["arith.negf"]
// CHECK: origin ["math.exp"]
func.func @reuse_other_body(%x: memref<4x8xf32>, %w: memref<2x8xf32>, %o1: memref<4x2xf32>, %o2: memref<4x2xf32>) {
  %n1 = kiln_kernel.alloc : memref<4x8xf32>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n1 : memref<4x8xf32>) origin ["arith.negf"] {
  ^bb0(%v: f32):
    %r = arith.negf %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "linear"(%n1, %w : memref<4x8xf32>, memref<2x8xf32>) -> (%o1 : memref<4x2xf32>) {}
  %n2 = kiln_kernel.alloc : memref<4x8xf32>
  kiln_kernel.elementwise (%x : memref<4x8xf32>) -> (%n2 : memref<4x8xf32>) origin ["math.exp"] {
  ^bb0(%v: f32):
    %r = math.exp %v : f32
    kiln_kernel.yield %r : f32
  }
  kiln_kernel.launch "linear"(%n2, %w : memref<4x8xf32>, memref<2x8xf32>) -> (%o2 : memref<4x2xf32>) {}
  return
}
