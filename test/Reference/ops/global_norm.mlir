// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.global_norm: sqrt(sum over all given tensors and elements of x^2).
// Expected values computed with numpy (inputs rounded to their f32 constants).

func.func @main() -> (tensor<f32>, tensor<f32>, tensor<f32>) {
  // [[3, 0], [0, 4]] and [12]: sqrt(9 + 16 + 144) = 13 exactly.
  // CHECK: result #0 : tensor<f32> = [13]
  %a = arith.constant dense<[[3.0, 0.0], [0.0, 4.0]]> : tensor<2x2xf32>
  %b = arith.constant dense<[12.0]> : tensor<1xf32>
  %n0 = kiln.global_norm %a, %b : (tensor<2x2xf32>, tensor<1xf32>) -> tensor<f32>

  // Three tensors of different ranks (2-d, 1-d, 0-d): signs do not matter.
  // CHECK-NEXT: result #1 : tensor<f32> = [{{(2\.9516944329201[0-9]*|2\.9516944329202[0-9]*)}}]
  %x = arith.constant dense<[[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]]> : tensor<2x3xf32>
  %y = arith.constant dense<[1.5, -2.25]> : tensor<2xf32>
  %z = arith.constant dense<-0.7> : tensor<f32>
  %n1 = kiln.global_norm %x, %y, %z : (tensor<2x3xf32>, tensor<2xf32>, tensor<f32>) -> tensor<f32>

  // One tensor: its L2 norm.
  // CHECK-NEXT: result #2 : tensor<f32> = [{{(5\.0000000999999[0-9]*|5\.0000001000000[0-9]*|5\.0000001000001[0-9]*)}}]
  %w = arith.constant dense<[-5.0, 0.001]> : tensor<2xf32>
  %n2 = kiln.global_norm %w : (tensor<2xf32>) -> tensor<f32>

  return %n0, %n1, %n2
      : tensor<f32>, tensor<f32>, tensor<f32>
}
