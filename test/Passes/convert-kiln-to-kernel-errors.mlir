// RUN: kiln-opt %s -split-input-file --convert-kiln-to-kernel -verify-diagnostics

func.func private @block(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> (tensor<4xf32> {kiln.result = "loss"}) {
  // expected-error @+1 {{calls @block; run 'inline' before convert-kiln-to-kernel}}
  %y = call @block(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

func.func @train_step(%x: tensor<2xf32> {kiln.input = "tokens"}) -> (tensor<2xf32> {kiln.result = "loss"}) {
  // expected-error @+1 {{is a non-splat tensor constant; the kernel level has only splat fills}}
  %c = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %y = arith.addf %x, %c : tensor<2xf32>
  return %y : tensor<2xf32>
}

// -----

func.func @train_step(%a: tensor<4x8xf32> {kiln.input = "tokens"}, %b: tensor<8x2xf32> {kiln.input = "targets"}) -> (tensor<4x2xf32> {kiln.result = "loss"}) {
  // expected-error @+1 {{'kiln.matmul' has no kernel in the kernel catalog}}
  %y = kiln.matmul %a, %b : (tensor<4x8xf32>, tensor<8x2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}

// -----

// expected-error @+1 {{argument #0 of @train_step must be a static-shaped tensor, got 'tensor<?xf32>'}}
func.func @train_step(%x: tensor<?xf32> {kiln.input = "tokens"}) -> (tensor<?xf32> {kiln.result = "loss"}) {
  return %x : tensor<?xf32>
}

// -----

func.func @train_step(%w: tensor<4xf32> {kiln.param = "w"}, %m: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg"},
                      %v: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg_sq"}, %step: tensor<i64> {kiln.input = "step"})
    -> (tensor<4xf32> {kiln.param = "w", kiln.result = "param"}, tensor<4xf32> {kiln.result = "loss"}) {
  %one = arith.constant dense<1.0> : tensor<f32>
  %p, %m2, %v2 = kiln.adamw %w, %w, %m, %v, %one, %step, %one {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  // expected-error @+1 {{reads argument #0 after 'kiln.adamw' updated it in place; state must be read before its update}}
  %late = arith.addf %w, %p : tensor<4xf32>
  return %p, %late : tensor<4xf32>, tensor<4xf32>
}

// -----

// Moments are updated in place by their optimizer; nothing else may make them.
func.func @train_step(%m: tensor<4xf32> {kiln.param = "w", kiln.state = "exp_avg"})
    -> (tensor<4xf32> {kiln.param = "w", kiln.result = "exp_avg"}) {
  %y = arith.addf %m, %m : tensor<4xf32>
  // expected-error @+1 {{result #0 (exp_avg of 'w') is not an in-place update of its argument}}
  return %y : tensor<4xf32>
}

// -----

func.func @train_step(%x: tensor<4xf32> {kiln.input = "tokens"}) -> tensor<4xf32> {
  %y = arith.addf %x, %x : tensor<4xf32>
  // expected-error @+1 {{result #0 of @train_step has no kiln.result role}}
  return %y : tensor<4xf32>
}

// -----

// expected-error @+1 {{convert-kiln-to-kernel: no function @train_step with a body to lower}}
module {
  func.func private @train_step(tensor<4xf32>)
}
