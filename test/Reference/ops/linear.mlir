// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.linear: result[i..., n] = sum_k x[i..., k] * weight[n, k] (HF [out, in] weight, no bias).

func.func @main() -> (tensor<2x4xf32>, tensor<2x2x4xf32>, tensor<4xf32>, tensor<2x3xf32>) {
  // x [2, 3], weight [4, 3] -> [2, 4]: result[i, n] = sum_k x[i, k] * weight[n, k]
  // (dyadic values: every product and sum is exact).
  // CHECK: result #0 : tensor<2x4xf32> = [1.75, -1.75, 7.25, -0.25, -1.25, 8.5, -8.5, 4.25]
  %x = arith.constant dense<[[1.5, -2.0, 0.25], [-0.5, 3.0, 1.75]]> : tensor<2x3xf32>
  %w = arith.constant dense<[[2.0, 0.5, -1.0], [-1.5, 0.25, 4.0], [0.75, -3.0, 0.5], [1.0, 1.0, 1.0]]> : tensor<4x3xf32>
  %r0 = kiln.linear %x, %w : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>

  // Rank-3 x [2, 2, 3]: the leading dimensions are batch.
  // CHECK-NEXT: result #1 : tensor<2x2x4xf32> = [3.5, -8.5, -3.625, -0.5, 7.75, -5.5625, 3.8125, 3.875, -5, 11.25, 3.5, 0.5, 4.5, 0, -24.25, 7.5]
  %x3 = arith.constant dense<[[[0.5, 1.0, -2.0], [4.0, -0.25, 0.125]], [[-1.0, -1.0, 2.5], [0.0, 8.0, -0.5]]]> : tensor<2x2x3xf32>
  %r1 = kiln.linear %x3, %w : (tensor<2x2x3xf32>, tensor<4x3xf32>) -> tensor<2x2x4xf32>

  // Rank-1 x [3] -> [4].
  // CHECK-NEXT: result #2 : tensor<4xf32> = [3.75, 3.375, 4.75, 4.5]
  %x1 = arith.constant dense<[3.0, -0.5, 2.0]> : tensor<3xf32>
  %r2 = kiln.linear %x1, %w : (tensor<3xf32>, tensor<4x3xf32>) -> tensor<4xf32>

  // Full-mantissa f32 values (rounded sums): x [2, 4], weight [3, 4] -> [2, 3].
  // CHECK-NEXT: result #3 : tensor<2x3xf32> = [{{(-0\.63809451185107[0-5][0-9]*|-0\.63809451185106[6-9][0-9]*)}}, {{(-0\.889055838271900[0-9]*|-0\.88905583827189[0-9][0-9]*)}}, {{1\.5312847105182[5-7][0-9]*}}, {{1\.3468499452326[1-2][0-9]*}}, {{1\.8048632187146[8-9][0-9]*}}, {{(-0\.77763635807713[0-4][0-9]*|-0\.77763635807712[5-9][0-9]*)}}]
  %xr = arith.constant dense<[[0.001230153371579945, 0.2987455427646637, -0.27413785457611084, -0.8905918598175049], [-0.454670786857605, -0.9916465282440186, 0.0601436011493206, 1.3402152061462402]]> : tensor<2x4xf32>
  %wr = arith.constant dense<[[-0.49220651388168335, -0.6204748749732971, 0.4898420572280884, 0.35688701272010803], [0.1054142490029335, -0.9304680228233337, -0.02925182320177555, 0.695303201675415], [-1.3442145586013794, -0.45761576294898987, -1.9012227058410645, -1.289537787437439]]> : tensor<3x4xf32>
  %r3 = kiln.linear %xr, %wr : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>

  return %r0, %r1, %r2, %r3
      : tensor<2x4xf32>, tensor<2x2x4xf32>, tensor<4xf32>, tensor<2x3xf32>
}
