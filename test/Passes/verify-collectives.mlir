// RUN: kiln-opt %s -split-input-file --kiln-verify-collectives | FileCheck %s
// RUN: kiln-opt %s -split-input-file --kiln-verify-collectives="report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// SPMD on a 2x2 grid: every rank runs @train_step. Collectives over tp (two
// inside a block called twice), over dp and over both axes; local_shard moves
// no data. Matched once per group: all_reduce tp 2 x 2, reduce_scatter dp 2,
// all_gather dp 2, all_to_all tp 2, all_reduce dp+tp 1 = 11. The IR is left
// as it is.
// REPORT: remark: kiln-verify-collectives: 4 ranks, 11 collectives and 0 send/recv pairs matched
module attributes {kiln.grid = #kiln.grid<axes = ["dp", "tp"], shape = [2, 2]>} {
  func.func private @block(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %y = kiln.all_reduce %x {kind = "sum", axes = ["tp"]} : tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }

  // CHECK-LABEL: func.func @train_step(
  // CHECK: %[[A:.*]] = call @block(%arg0)
  // CHECK: %[[B:.*]] = call @block(%[[A]])
  // CHECK: kiln.local_shard
  // CHECK: %[[S:.*]] = kiln.reduce_scatter %arg1
  // CHECK: %[[P:.*]] = kiln.all_gather %[[S]]
  // CHECK: kiln.all_to_all %[[B]], %arg2
  // CHECK: kiln.all_reduce %[[P]] {axes = ["dp", "tp"], kind = "max"}
  func.func @train_step(%x: tensor<8x16xf32>, %g: tensor<64xf32>, %c: tensor<2xi64>)
      -> (tensor<12x16xf32>, tensor<2xi64>, tensor<64xf32>, tensor<32xf32>) {
    %a = call @block(%x) : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %b = call @block(%a) : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %mine = kiln.local_shard %g {axes = ["dp"], dim = 0 : i64} : (tensor<64xf32>) -> tensor<32xf32>
    %s = kiln.reduce_scatter %g {kind = "sum", axes = ["dp"], dim = 0 : i64} : (tensor<64xf32>) -> tensor<32xf32>
    %p = kiln.all_gather %s {axes = ["dp"], dim = 0 : i64} : (tensor<32xf32>) -> tensor<64xf32>
    %rows, %counts = kiln.all_to_all %b, %c {axes = ["tp"]}
        : (tensor<8x16xf32>, tensor<2xi64>) -> (tensor<12x16xf32>, tensor<2xi64>)
    %n = kiln.all_reduce %p {kind = "max", axes = ["dp", "tp"]} : tensor<64xf32>
    return %rows, %counts, %n, %mine : tensor<12x16xf32>, tensor<2xi64>, tensor<64xf32>, tensor<32xf32>
  }
}

// -----

// Two pipeline stages over pp, each data-parallel over dp (ranks 0, 1 run
// stage 0; ranks 2, 3 stage 1), GPipe order with two micro-batches: stage 0
// sends both activations before it receives the gradients, and stage 1
// receives both before it sends. Each stage then sums its gradient over dp.
// Matched: 4 pairs per dp column x 2 columns; one all_reduce per stage.
// REPORT: remark: kiln-verify-collectives: 4 ranks, 2 collectives and 8 send/recv pairs matched
module attributes {kiln.grid = #kiln.grid<axes = ["pp", "dp"], shape = [2, 2]>} {
  // CHECK-LABEL: func.func @stage0(
  // CHECK-SAME: kiln.program = "train_step", kiln.ranks = array<i64: 0, 1>
  func.func @stage0(%a0: tensor<4x8xf32>, %a1: tensor<4x8xf32>) -> tensor<4x8xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0, 1>} {
    kiln.send %a0 {axis = "pp", peer = 1 : i64} : tensor<4x8xf32>
    kiln.send %a1 {axis = "pp", peer = 1 : i64} : tensor<4x8xf32>
    %g0 = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<4x8xf32>
    %g1 = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<4x8xf32>
    %g = arith.addf %g0, %g1 : tensor<4x8xf32>
    %sum = kiln.all_reduce %g {kind = "sum", axes = ["dp"]} : tensor<4x8xf32>
    return %sum : tensor<4x8xf32>
  }
  // CHECK-LABEL: func.func @stage1(
  func.func @stage1() -> tensor<4x8xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 2, 3>} {
    %a0 = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4x8xf32>
    %a1 = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4x8xf32>
    %g0 = kiln.scale %a0 {factor = 2.0 : f64} : tensor<4x8xf32>
    %g1 = kiln.scale %a1 {factor = 2.0 : f64} : tensor<4x8xf32>
    kiln.send %g0 {axis = "pp", peer = 0 : i64} : tensor<4x8xf32>
    kiln.send %g1 {axis = "pp", peer = 0 : i64} : tensor<4x8xf32>
    %g = arith.addf %g0, %g1 : tensor<4x8xf32>
    %sum = kiln.all_reduce %g {kind = "sum", axes = ["dp"]} : tensor<4x8xf32>
    return %sum : tensor<4x8xf32>
  }
}

// -----

// Without a grid the module is one rank: nothing to check, no remark.
// REPORT-NOT: remark
// CHECK-LABEL: func.func @forward(
module {
  func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}
