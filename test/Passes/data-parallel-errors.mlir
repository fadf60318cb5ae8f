// RUN: kiln-opt %s -split-input-file -verify-diagnostics --kiln-data-parallel="dp=2"

// The step must be the one kiln-autodiff builds: an optimizer to feed.

// expected-error @+1 {{kiln-data-parallel: @train_step has no kiln.adamw; expected the training step kiln-autodiff builds (mode=train)}}
func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// What the optimizer reads from the batch part must be a sum over rows.

func.func @train_step(%p: tensor<4xf32> {kiln.param = "w"}, %m: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg"},
                      %v: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg_sq"}, %b: tensor<4xf32> {kiln.param = "bias"},
                      %step: tensor<i64> {kiln.input = "step"}, %x: tensor<4xf32> {kiln.input = "tokens"})
    -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  // expected-note @+1 {{produced here}}
  %g = arith.mulf %p, %x : tensor<4xf32>
  %lr = kiln.lr_schedule %step {lr = 1.0e-03 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 1 : i64} : (tensor<i64>) -> tensor<f32>
  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %step, %lr {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  // expected-error @+1 {{kiln-data-parallel: reads a result of 'arith.mulf' from the batch part of the step, which is neither a gradient, an expert load nor a loss; only such sums over rows can be combined over ranks}}
  %b2 = kiln.bias_update %g, %g {speed = 1.0e-03 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %p2, %m2, %v2, %b2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// A loss the pass cannot see from the step cannot be normalised globally.

func.func private @loss(%l: tensor<2x4xf32>, %t: tensor<2xi32>, %m: tensor<2xf32>) -> tensor<f32> {
  // expected-error @+1 {{kiln-data-parallel: a loss inside @loss cannot be normalised over the global batch; expected every kiln.cross_entropy in the step function itself}}
  %c = kiln.cross_entropy %l, %t, %m : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  return %c : tensor<f32>
}
func.func @train_step(%p: tensor<2x4xf32> {kiln.param = "w"}, %mo: tensor<2x4xf32> {kiln.param = "w", kiln.state = "exp_avg"},
                      %v: tensor<2x4xf32> {kiln.param = "w", kiln.state = "exp_avg_sq"}, %step: tensor<i64> {kiln.input = "step"},
                      %t: tensor<2xi32> {kiln.input = "targets"}, %m: tensor<2xf32> {kiln.input = "loss_mask"})
    -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32> {kiln.result = "loss"}) {
  %loss = call @loss(%p, %t, %m) : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  %g = kiln.scale %p {factor = 2.0 : f64} : tensor<2x4xf32>
  %lr = kiln.lr_schedule %step {lr = 1.0e-03 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 1 : i64} : (tensor<i64>) -> tensor<f32>
  %p2, %m2, %v2 = kiln.adamw %p, %g, %mo, %v, %lr, %step, %lr {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>)
  return %p2, %m2, %v2, %loss : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>
}

// -----

// A mask that depends on parameters cannot be counted before the step.

// expected-error @+1 {{kiln-data-parallel: a loss mask depends on argument #0, which is not a batch input}}
func.func @train_step(%p: tensor<2x4xf32> {kiln.param = "w"}, %mo: tensor<2x4xf32> {kiln.param = "w", kiln.state = "exp_avg"},
                      %v: tensor<2x4xf32> {kiln.param = "w", kiln.state = "exp_avg_sq"}, %step: tensor<i64> {kiln.input = "step"},
                      %t: tensor<2xi32> {kiln.input = "targets"}, %m: tensor<2xf32> {kiln.input = "loss_mask"})
    -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32> {kiln.result = "loss"}) {
  %col = tensor.extract_slice %p[0, 0] [2, 1] [1, 1] : tensor<2x4xf32> to tensor<2x1xf32>
  %pm = tensor.collapse_shape %col [[0, 1]] : tensor<2x1xf32> into tensor<2xf32>
  %loss = kiln.cross_entropy %p, %t, %pm : (tensor<2x4xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  %g = kiln.scale %p {factor = 2.0 : f64} : tensor<2x4xf32>
  %lr = kiln.lr_schedule %step {lr = 1.0e-03 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 1 : i64} : (tensor<i64>) -> tensor<f32>
  %p2, %m2, %v2 = kiln.adamw %p, %g, %mo, %v, %lr, %step, %lr {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
      : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>)
  return %p2, %m2, %v2, %loss : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>
}

// -----

// A module already laid out on another grid.

// expected-error @+1 {{kiln-data-parallel: the module's grid #kiln.grid<axes = ["dp"], shape = [4]> has no "dp" axis of size 2}}
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [4]>} {
  func.func @train_step() {
    return
  }
}
