// RUN: kiln-opt %s -split-input-file -verify-diagnostics --kiln-pipeline="pp=2"
// Options the model cannot take, on pipeline.mlir's two-layer model:
// RUN: not kiln-opt %S/pipeline.mlir --kiln-autodiff --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=4 schedule=1f1b" 2>&1 | FileCheck %s --check-prefix=STAGES
// RUN: not kiln-opt %S/pipeline.mlir --kiln-autodiff --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 layers-per-stage=1,2" 2>&1 | FileCheck %s --check-prefix=BYHAND
// RUN: not kiln-opt %S/pipeline.mlir --kiln-autodiff --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 schedule=zb-w" 2>&1 | FileCheck %s --check-prefix=SCHEDULE
// RUN: not kiln-opt %S/pipeline.mlir --kiln-autodiff --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=1" 2>&1 | FileCheck %s --check-prefix=PP1

// STAGES: error: kiln-pipeline: 4 stages (pp 4 x 1 chunks) for 2 layers; expected at least one layer per stage
// BYHAND: error: kiln-pipeline: layers-per-stage adds up to 3 layers; the model has 2
// SCHEDULE: error: kiln-pipeline: unknown pipeline schedule 'zb-w'; expected gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-v or dualpipev
// PP1: error: kiln-pipeline: expected pp >= 2 and virtual-stages >= 1, got pp 1 and virtual-stages 1

// The step must be kiln-data-parallel's: micro-batches outlined and called.

// expected-error @+1 {{kiln-pipeline: @train_step calls no @train_step_micro; expected the step kiln-data-parallel builds (run it first, also with dp 1)}}
func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// An expert-parallel grid is refused.

// expected-error @+1 {{kiln-pipeline: the module's grid #kiln.grid<axes = ["edp", "ep"], shape = [1, 2]> is not kiln-data-parallel's ["dp"]; pipeline stages over expert-parallel grids are not built yet}}
module attributes {kiln.grid = #kiln.grid<axes = ["edp", "ep"], shape = [1, 2]>} {
  func.func private @train_step_micro(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
  func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> tensor<4xf32> {
    %g = call @train_step_micro(%x) : (tensor<4xf32>) -> tensor<4xf32>
    return %g : tensor<4xf32>
  }
}

// -----

// The micro-batches' results must be summed in order, as kiln-data-parallel
// writes it.

func.func private @block(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = arith.mulf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
func.func private @train_step_micro(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = call @block(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %b = call @block(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %b : tensor<4xf32>
}
func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> tensor<4xf32> {
  %g0 = call @train_step_micro(%x) : (tensor<4xf32>) -> tensor<4xf32>
  // expected-error @+1 {{kiln-pipeline: result #0 of this micro-batch is not added to the previous ones' sum; expected kiln-data-parallel's in-order sum}}
  %g1 = call @train_step_micro(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %m = arith.mulf %g0, %g1 : tensor<4xf32>
  return %m : tensor<4xf32>
}
