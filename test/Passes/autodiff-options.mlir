// Bad kiln-autodiff options are errors that say what would be right.
// RUN: not kiln-opt %s --kiln-autodiff="mode=fast" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not kiln-opt %s --kiln-autodiff="loss=mtp" 2>&1 | FileCheck %s --check-prefix=LOSS
// RUN: not kiln-opt %s --kiln-autodiff="beta1=1.5" 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not kiln-opt %s --kiln-autodiff="entry=missing" 2>&1 | FileCheck %s --check-prefix=ENTRY
// MODE: error: kiln-autodiff: mode must be 'train' or 'gradient', got 'fast'
// LOSS: error: kiln-autodiff: loss must be 'main' or 'total', got 'mtp'
// BETA: error: kiln-autodiff: invalid options: {{.*}}betas in [0, 1)
// ENTRY: error: kiln-autodiff: no function @missing with a body

func.func @forward(%x: tensor<4xf32> {kiln.param = "x"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %t = arith.constant dense<0> : tensor<i32>
  %m = arith.constant dense<1.0> : tensor<f32>
  %l = kiln.cross_entropy %x, %t, %m : (tensor<4xf32>, tensor<i32>, tensor<f32>) -> tensor<f32>
  return %l : tensor<f32>
}
