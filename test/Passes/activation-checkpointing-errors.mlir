// RUN: kiln-opt %s -split-input-file --kiln-activation-checkpointing="policy=full" -verify-diagnostics
// RUN: not kiln-opt %s -split-input-file --kiln-activation-checkpointing="policy=everything" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not kiln-opt %S/activation-checkpointing-budget.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget" 2>&1 | FileCheck %s --check-prefix=NO-BUDGET
// RUN: not kiln-opt %S/activation-checkpointing-budget.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=budget budget-bytes=2687" 2>&1 | FileCheck %s --check-prefix=TOO-SMALL

// An unknown policy is refused (every split, before looking at it).
// UNKNOWN-COUNT-3: error: kiln-activation-checkpointing: unknown policy 'everything'; expected none, full, selective or budget

// NO-BUDGET: error: kiln-activation-checkpointing: policy budget needs budget-bytes > 0, got 0

// A budget below what every block recomputed in full plans in names the
// smallest feasible one.
// TOO-SMALL: error: kiln-activation-checkpointing: a budget of 2687 bytes is below the smallest arena this step plans in, 2688 bytes (policy full; without recomputation 4096); the smallest feasible budget is 2688 bytes

// expected-error @+1 {{kiln-activation-checkpointing: no block backward (kiln.forward) in the module; run kiln-autodiff first}}
module {
  func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

module {
  // expected-error @+1 {{kiln-activation-checkpointing: @b_bwd names a forward that does not exist}}
  func.func private @b_bwd(%x: tensor<4xf32>, %dy: tensor<4xf32>, %s: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.forward = @b_fwd, kiln.saved = 1 : i64} {
    %d = arith.mulf %dy, %s : tensor<4xf32>
    return %d : tensor<4xf32>
  }
  func.func @train_step(%x: tensor<4xf32>, %dy: tensor<4xf32>) -> tensor<4xf32> {
    %d = call @b_bwd(%x, %dy, %x) : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    return %d : tensor<4xf32>
  }
}

// -----

module {
  func.func private @b_fwd(%x: tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>) {
    %y = arith.mulf %x, %x : tensor<8xf32>
    return %y, %x : tensor<8xf32>, tensor<8xf32>
  }
  // expected-error @+1 {{kiln-activation-checkpointing: @b_bwd does not start with @b_fwd's arguments and end with its 1 saved values; expected a backward built by kiln-autodiff}}
  func.func private @b_bwd(%x: tensor<4xf32>, %dy: tensor<4xf32>, %s: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.forward = @b_fwd, kiln.saved = 1 : i64} {
    %d = arith.mulf %dy, %s : tensor<4xf32>
    return %d : tensor<4xf32>
  }
  func.func @train_step(%x: tensor<4xf32>, %dy: tensor<4xf32>) -> tensor<4xf32> {
    %d = call @b_bwd(%x, %dy, %x) : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    return %d : tensor<4xf32>
  }
}
