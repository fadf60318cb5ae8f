// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.bias_update: bias'[e] = bias[e] + speed * sign(mean(load) - load[e]), sign(0) = 0.
// Expected values computed with numpy from that description.

func.func @main() -> (tensor<6xf32>, tensor<2xf32>, tensor<6xf32>) {
  // 6 experts, loads [4, 2, 3, 3, 1, 5] (mean 3): the over-loaded experts 0 and 5 move down by
  // speed 1e-3, the under-loaded 1 and 4 up, and experts 2 and 3, exactly at the mean, tie: sign 0,
  // unchanged.
  // CHECK: result #0 : tensor<6xf32> = [0.499, -0.249, 0, 1, 0.126, -2.0009999999999999]
  %b = arith.constant dense<[0.5, -0.25, 0.0, 1.0, 0.125, -2.0]> : tensor<6xf32>
  %load = arith.constant dense<[4.0, 2.0, 3.0, 3.0, 1.0, 5.0]> : tensor<6xf32>
  %b0 = kiln.bias_update %b, %load {speed = 1.0e-03 : f64} : (tensor<6xf32>, tensor<6xf32>) -> tensor<6xf32>

  // A fractional mean (1.5): nobody ties; speed 0.25.
  // CHECK-NEXT: result #1 : tensor<2xf32> = [0.35000000149011612, -0.049999997019767761]
  %b1 = arith.constant dense<[0.1, 0.2]> : tensor<2xf32>
  %load1 = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %r1 = kiln.bias_update %b1, %load1 {speed = 0.25 : f64} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>

  // Perfect balance: every sign is 0 and the bias is unchanged.
  // CHECK-NEXT: result #2 : tensor<6xf32> = [0.5, -0.25, 0, 1, 0.125, -2]
  %load2 = arith.constant dense<7.0> : tensor<6xf32>
  %r2 = kiln.bias_update %b, %load2 {speed = 1.0e-03 : f64} : (tensor<6xf32>, tensor<6xf32>) -> tensor<6xf32>

  return %b0, %r1, %r2
      : tensor<6xf32>, tensor<2xf32>, tensor<6xf32>
}
