// Bad kiln-autodiff options are errors that say what would be right.
// RUN: not kiln-opt %s --kiln-autodiff="mode=fast" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not kiln-opt %s --kiln-autodiff="loss=mtp" 2>&1 | FileCheck %s --check-prefix=LOSS
// RUN: not kiln-opt %s --kiln-autodiff="beta1=1.5" 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not kiln-opt %s --kiln-autodiff="entry=missing" 2>&1 | FileCheck %s --check-prefix=ENTRY
// RUN: not kiln-opt %s --kiln-autodiff="loss-scale=static" 2>&1 | FileCheck %s --check-prefix=SCALING
// RUN: not kiln-opt %s --kiln-autodiff="loss-scale=dynamic loss-scale-backoff-factor=1.5" 2>&1 | FileCheck %s --check-prefix=BACKOFF
// RUN: not kiln-opt %s --kiln-autodiff="loss-scale=dynamic mode=gradient" 2>&1 | FileCheck %s --check-prefix=GRADMODE
// MODE: error: kiln-autodiff: mode must be 'train' or 'gradient', got 'fast'
// LOSS: error: kiln-autodiff: loss must be 'main' or 'total', got 'mtp'
// BETA: error: kiln-autodiff: invalid options: {{.*}}betas in [0, 1)
// SCALING: error: kiln-autodiff: loss-scale must be 'none' or 'dynamic', got 'static'
// BACKOFF: error: kiln-autodiff: invalid loss scaling: {{.*}}loss-scale-backoff-factor in (0, 1){{.*}}(GradScaler's defaults: 65536, 2, 0.5, 2000)
// GRADMODE: error: kiln-autodiff: loss-scale=dynamic scales a training step; mode=gradient gives the unscaled gradients
// ENTRY: error: kiln-autodiff: no function @missing with a body

func.func @forward(%x: tensor<4xf32> {kiln.param = "x"}) -> (tensor<f32> {kiln.result = "loss"}) {
  %t = arith.constant dense<0> : tensor<i32>
  %m = arith.constant dense<1.0> : tensor<f32>
  %l = kiln.cross_entropy %x, %t, %m : (tensor<4xf32>, tensor<i32>, tensor<f32>) -> tensor<f32>
  return %l : tensor<f32>
}
