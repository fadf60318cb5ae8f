// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.swiglu: result = gate * sigmoid(gate) * up, elementwise.

func.func @main() -> (tensor<2x3xf32>, tensor<2x1x2xf32>) {
  // gate, up [2, 3]: gate * sigmoid(gate) * up; a zero gate gives 0 whatever up is.
  // CHECK: result #0 : tensor<2x3xf32> = [{{-0\.357608766066352[0-9]*}}, {{0\.75508133759629[0-1][0-9]*}}, 0, {{1\.0187680487630[8-9][0-9]*}}, {{-0\.306590428572616[0-9]*}}, {{1\.4288611902336[4-5][0-9]*}}]
  %gate = arith.constant dense<[[-2.0, -0.5, 0.0], [0.75, 1.5, 3.0]]> : tensor<2x3xf32>
  %up = arith.constant dense<[[1.5, -4.0, 7.0], [2.0, -0.25, 0.5]]> : tensor<2x3xf32>
  %r0 = kiln.swiglu %gate, %up : tensor<2x3xf32>

  // Rank 3, negative up and gates of both signs.
  // CHECK-NEXT: result #1 : tensor<2x1x2xf32> = [{{0\.365529289315002[0-9]*}}, {{-0\.134470710684997[0-9]*}}, {{-9\.9330714907571[4-6][0-9]*}}, {{-0\.044507216819425[8-9][0-9]*}}]
  %gate3 = arith.constant dense<[[[1.0, -1.0]], [[5.0, -6.0]]]> : tensor<2x1x2xf32>
  %up3 = arith.constant dense<[[[0.5, 0.5]], [[-2.0, 3.0]]]> : tensor<2x1x2xf32>
  %r1 = kiln.swiglu %gate3, %up3 : tensor<2x1x2xf32>

  return %r0, %r1
      : tensor<2x3xf32>, tensor<2x1x2xf32>
}
