// mode=train needs parameters to train.
// RUN: kiln-opt %s -verify-diagnostics --kiln-autodiff

// expected-error @+1 {{kiln-autodiff: mode=train needs parameters: mark the arguments to train with kiln.param}}
func.func @forward(%x: tensor<4xf32>) -> tensor<f32> {
  %t = arith.constant dense<0> : tensor<i32>
  %m = arith.constant dense<1.0> : tensor<f32>
  %l = kiln.cross_entropy %x, %t, %m : (tensor<4xf32>, tensor<i32>, tensor<f32>) -> tensor<f32>
  return %l : tensor<f32>
}
