// RUN: kiln-opt %s -split-input-file -verify-diagnostics --kiln-autodiff="mode=gradient"

// expected-error @+1 {{kiln-autodiff: @forward has no scalar loss}}
func.func @forward(%x: tensor<4xf32> {kiln.param = "x"}) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

func.func @forward(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<f32> {
  // expected-error @+1 {{kiln-autodiff: no gradient rule for 'arith.maximumf'}}
  %m = arith.maximumf %x, %y : tensor<4xf32>
  %t = arith.constant dense<0> : tensor<i32>
  %c = arith.constant dense<1.0> : tensor<f32>
  %l = kiln.cross_entropy %m, %t, %c : (tensor<4xf32>, tensor<i32>, tensor<f32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @forward(%logits: tensor<2x4xf32> {kiln.param = "x"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %bias = arith.constant dense<0.0> : tensor<4xf32>
  // expected-error @+1 {{kiln-autodiff: the router bias must be a function argument}}
  %idx, %w = kiln.router %logits, %bias {scoring = "sigmoid", group_score = "top2_sum", n_group = 1 : i64,
      topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 1.0 : f64}
      : (tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  %t = arith.constant dense<0> : tensor<2xi32>
  %m = arith.constant dense<1.0> : tensor<2xf32>
  %l = kiln.cross_entropy %w, %t, %m : (tensor<2x2xf32>, tensor<2xi32>, tensor<2xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func private @external(tensor<4xf32>) -> tensor<f32>
func.func @forward(%x: tensor<4xf32>) -> tensor<f32> {
  // expected-error @+1 {{kiln-autodiff: cannot differentiate a call to @external, which has no body}}
  %l = call @external(%x) : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
