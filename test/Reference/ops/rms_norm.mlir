// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.rms_norm: result[i..., h] = x[i..., h] / sqrt(mean_h(x[i..., :]^2) + epsilon) * gamma[h].

func.func @main() -> (tensor<2x4xf32>, tensor<2x1x3xf32>, tensor<2x2xf32>) {
  // x [2, 4], gamma [4], epsilon 1e-6: x / sqrt(mean(x^2) + eps) * gamma.
  // CHECK: result #0 : tensor<2x4xf32> = [{{0\.52981286846632[1-2][0-9]*}}, {{-0\.52981286846632[1-2][0-9]*}}, {{-3\.1788772107979[2-3][0-9]*}}, {{0\.397359651349741[0-9]*}}, {{0\.111585659415187[0-9]*}}, {{0\.027896414853796[7-8][0-9]*}}, {{3\.5707411012859[8-9][0-9]*}}, {{1\.33902791298224[0-9]*}}]
  %x = arith.constant dense<[[1.0, -2.0, 3.0, 0.5], [0.25, 0.125, -4.0, 2.0]]> : tensor<2x4xf32>
  %gamma = arith.constant dense<[1.0, 0.5, -2.0, 1.5]> : tensor<4xf32>
  %r0 = kiln.rms_norm %x, %gamma {epsilon = 1.0e-06 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>

  // Rank 3 and a large epsilon (0.5) that visibly changes the scale.
  // CHECK-NEXT: result #1 : tensor<2x1x3xf32> = [{{2\.0187797547313[5-6][0-9]*}}, {{-1\.34585316982090[0-9]*}}, 0, {{-0\.57535596178246[0-1][0-9]*}}, {{-0\.86303394267369[0-2][0-9]*}}, {{0\.97091318550790[1-3][0-9]*}}]
  %x3 = arith.constant dense<[[[3.0, 4.0, 0.0]], [[-0.5, 1.5, 2.25]]]> : tensor<2x1x3xf32>
  %gamma3 = arith.constant dense<[2.0, -1.0, 0.75]> : tensor<3xf32>
  %r1 = kiln.rms_norm %x3, %gamma3 {epsilon = 5.0e-01 : f64} : (tensor<2x1x3xf32>, tensor<3xf32>) -> tensor<2x1x3xf32>

  // Small values, where epsilon = 1e-6 is comparable to mean(x^2) = 2.5e-6 (x holds the f32
  // values nearest 0.001 and -0.002), and an all-zero row (result 0).
  // CHECK-NEXT: result #2 : tensor<2x2xf32> = [{{0\.53452249107869[2-3][0-9]*}}, {{-1\.06904498215738[0-9]*}}, 0, 0]
  %xs = arith.constant dense<[[0.0010000000474974513, -0.0020000000949949026], [0.0, 0.0]]> : tensor<2x2xf32>
  %gs = arith.constant dense<[1.0, 1.0]> : tensor<2xf32>
  %r2 = kiln.rms_norm %xs, %gs {epsilon = 1.0e-06 : f64} : (tensor<2x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>

  return %r0, %r1, %r2
      : tensor<2x4xf32>, tensor<2x1x3xf32>, tensor<2x2xf32>
}
