// RUN: kiln-opt %s -kiln-expert-parallel="ep=2 dp=2" -split-input-file -verify-diagnostics
// RUN: not kiln-opt %s -kiln-expert-parallel="ep=3 dp=4" -split-input-file 2>&1 | FileCheck %s --check-prefix=DIVIDE-DP
// RUN: not kiln-opt %s -kiln-expert-parallel="ep=3 dp=3" -split-input-file 2>&1 | FileCheck %s --check-prefix=DIVIDE-EXPERTS

// DIVIDE-DP: error: kiln-expert-parallel: expected ep >= 1 dividing dp, got ep 3, dp 4
// DIVIDE-EXPERTS: error: kiln-expert-parallel: the layer's 8 routed experts cannot be split over ep = 3; choose an ep that divides n_routed_experts

func.func @ok(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
              %wg: tensor<8x3x2xf32> {kiln.param = "e"}) -> tensor<4x3xf32> {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  %h = kiln.grouped_matmul %rows, %wg, %offsets : (tensor<8x2xf32>, tensor<8x3x2xf32>, tensor<9xi32>) -> tensor<8x3xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

// -----

// A dense op on the dispatched rows cannot run on another rank's rows.
func.func @dense_on_rows(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                         %wl: tensor<2x2xf32>) -> tensor<4x2xf32> {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  // expected-error @+1 {{kiln-expert-parallel: uses the rows of a dispatch (or their offsets) in a way that cannot be partitioned; between dispatch and combine only grouped GEMMs and row-wise ops (swiglu, silu, scale, arith.addf/subf/mulf) are supported}}
  %h = kiln.linear %rows, %wl : (tensor<8x2xf32>, tensor<2x2xf32>) -> tensor<8x2xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x2xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}

// -----

func.func @offsets_escape(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                          %wg: tensor<8x3x2xf32>) -> (tensor<4x3xf32>, tensor<9xi32>) {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  %h = kiln.grouped_matmul %rows, %wg, %offsets : (tensor<8x2xf32>, tensor<8x3x2xf32>, tensor<9xi32>) -> tensor<8x3xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
  // expected-error @+1 {{kiln-expert-parallel: uses the rows of a dispatch (or their offsets) in a way that cannot be partitioned}}
  return %y, %offsets : tensor<4x3xf32>, tensor<9xi32>
}

// -----

func.func @computed_weight(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                           %wg: tensor<8x3x2xf32>) -> tensor<4x3xf32> {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  %w2 = arith.addf %wg, %wg : tensor<8x3x2xf32>
  // expected-error @+1 {{kiln-expert-parallel: the expert weight of this grouped GEMM is computed in the function; expected an argument (a parameter) to shard over ep}}
  %h = kiln.grouped_matmul %rows, %w2, %offsets : (tensor<8x2xf32>, tensor<8x3x2xf32>, tensor<9xi32>) -> tensor<8x3xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

// -----

func.func @weight_read_elsewhere(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                                 %wg: tensor<8x3x2xf32>) -> (tensor<4x3xf32>, tensor<8x3x2xf32>) {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  %h = kiln.grouped_matmul %rows, %wg, %offsets : (tensor<8x2xf32>, tensor<8x3x2xf32>, tensor<9xi32>) -> tensor<8x3xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
  // expected-error @+1 {{kiln-expert-parallel: reads the stacked expert weight argument #3 of @weight_read_elsewhere, which each rank holds only its ep shard of}}
  %s = kiln.scale %wg {factor = 2.0 : f64} : tensor<8x3x2xf32>
  return %y, %s : tensor<4x3xf32>, tensor<8x3x2xf32>
}

// -----

func.func @computed_call_operand(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                                 %wg: tensor<8x3x2xf32>) -> tensor<4x3xf32> {
  %w2 = arith.addf %wg, %wg : tensor<8x3x2xf32>
  // expected-error @+1 {{kiln-expert-parallel: passes a computed value as the expert weights (operand #3); expected an argument of @computed_call_operand}}
  %y = func.call @layer(%x, %idx, %w, %w2) : (tensor<4x2xf32>, tensor<4x2xi32>, tensor<4x2xf32>, tensor<8x3x2xf32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}
func.func private @layer(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                         %wg: tensor<8x3x2xf32>) -> tensor<4x3xf32> {
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
      : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
  %h = kiln.grouped_matmul %rows, %wg, %offsets : (tensor<8x2xf32>, tensor<8x3x2xf32>, tensor<9xi32>) -> tensor<8x3xf32>
  %y = kiln.combine %h, %w, %source : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

// -----

// expected-error @+1 {{kiln-expert-parallel: ep = 2 but the model has no MoE layer (kiln.dispatch) to shard; use ep 1}}
module {
  func.func @dense(%x: tensor<4x2xf32>) -> tensor<4x2xf32> {
    return %x : tensor<4x2xf32>
  }
}

// -----

// expected-error @+1 {{kiln-expert-parallel: the module already has a grid #kiln.grid<axes = ["dp"], shape = [2]>; run this pass first, on the forward module}}
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @gridded(%x: tensor<4x2xf32>, %idx: tensor<4x2xi32>) -> tensor<8x2xf32> {
    %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
        : (tensor<4x2xf32>, tensor<4x2xi32>) -> (tensor<8x2xf32>, tensor<9xi32>, tensor<8xi32>)
    return %rows : tensor<8x2xf32>
  }
}
