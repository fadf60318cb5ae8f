// RUN: kiln-opt %s -split-input-file --kiln-grad-compression -verify-diagnostics
// RUN: not kiln-opt %s -split-input-file --kiln-grad-compression="ratio=0" 2>&1 | FileCheck %s --check-prefix=RATIO
// RATIO: kiln-grad-compression: expected 0 < ratio <= 1 and quantize 'int8' or 'none', got ratio 0

// expected-error @+1 {{kiln-grad-compression: compresses the data-parallel sum of the gradients, and the module has no grid; run it after kiln-data-parallel with dp > 1}}
module {
  func.func @train_step(%p: tensor<4xf32>) -> tensor<4xf32> {
    return %p : tensor<4xf32>
  }
}

// -----

// ZeRO-1 reduce-scatters the gradient: not built.
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%p: tensor<2xf32> {kiln.param = "w"}, %g: tensor<4xf32>, %m: tensor<2xf32>,
                        %v: tensor<2xf32>, %lr: tensor<f32>, %step: tensor<i64>, %s: tensor<f32>) -> tensor<2xf32> {
    %shard = kiln.reduce_scatter %g {axes = ["dp"], dim = 0 : i64, kind = "sum"} : (tensor<4xf32>) -> tensor<2xf32>
    // expected-error @+1 {{kiln-grad-compression: this gradient is reduce-scattered (ZeRO-1); compression is built for the all_reduce of replicated optimizer state: use zero 0}}
    %np, %nm, %nv = kiln.adamw %p, %shard, %m, %v, %lr, %step, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
        : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
    return %np : tensor<2xf32>
  }
}

// -----

// A step that loss scaling may skip: error feedback would carry its scaled
// and non-finite gradients.
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%p: tensor<2xf32> {kiln.param = "w"}, %g: tensor<2xf32>, %m: tensor<2xf32>,
                        %v: tensor<2xf32>, %lr: tensor<f32>, %step: tensor<i64>, %s: tensor<f32>, %skip: tensor<i1>) -> tensor<2xf32> {
    %sum = kiln.all_reduce %g {axes = ["dp"], kind = "sum"} : tensor<2xf32>
    // expected-error @+1 {{kiln-grad-compression: this AdamW is skipped on overflow (dynamic loss scaling, precision fp16); error feedback would carry scaled and non-finite gradients across steps: use precision bf16 with compression}}
    %np, %nm, %nv = kiln.adamw %p, %sum, %m, %v, %lr, %step, %s skip %skip {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
        : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<i1>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
    return %np : tensor<2xf32>
  }
}

// -----

// A gradient that is not the sum over ranks.
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%p: tensor<2xf32> {kiln.param = "w"}, %g: tensor<2xf32>, %m: tensor<2xf32>,
                        %v: tensor<2xf32>, %lr: tensor<f32>, %step: tensor<i64>, %s: tensor<f32>) -> tensor<2xf32> {
    // expected-error @+1 {{kiln-grad-compression: expected this AdamW's gradient to come from the kiln.all_reduce kiln-data-parallel inserts}}
    %np, %nm, %nv = kiln.adamw %p, %g, %m, %v, %lr, %step, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
        : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
    return %np : tensor<2xf32>
  }
}

// -----

// The maximum over ranks is not a gradient sum.
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%p: tensor<2xf32> {kiln.param = "w"}, %g: tensor<2xf32>, %m: tensor<2xf32>,
                        %v: tensor<2xf32>, %lr: tensor<f32>, %step: tensor<i64>, %s: tensor<f32>) -> tensor<2xf32> {
    // expected-error @+1 {{kiln-grad-compression: the gradient is reduced with 'max'; only sums are compressed}}
    %sum = kiln.all_reduce %g {axes = ["dp"], kind = "max"} : tensor<2xf32>
    %np, %nm, %nv = kiln.adamw %p, %sum, %m, %v, %lr, %step, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
        : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
    return %np : tensor<2xf32>
  }
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  // expected-error @+1 {{kiln-grad-compression: @train_step has no AdamW update to compress the gradients of}}
  func.func @train_step(%p: tensor<4xf32>) -> tensor<4xf32> {
    return %p : tensor<4xf32>
  }
}
