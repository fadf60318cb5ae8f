// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.broadcast: size-1 dimensions repeat to the result's size:
// result[i] = x[i with size-1 dims set to 0].

func.func @main() -> (tensor<2x3xf32>, tensor<2x4xf32>, tensor<2x3x2xf32>, tensor<2x1x3xf32>, tensor<2x1x3x2xf32>, tensor<3x2x2xf32>, tensor<2x1x2xf32>) {
  // [1, 3] -> [2, 3]: the row repeats.
  // CHECK: result #0 : tensor<2x3xf32> = [1.5, -2, 0.25, 1.5, -2, 0.25]
  %a = arith.constant dense<[[1.5, -2.0, 0.25]]> : tensor<1x3xf32>
  %r0 = kiln.broadcast %a : (tensor<1x3xf32>) -> tensor<2x3xf32>

  // [2, 1] -> [2, 4]: each row's single value repeats.
  // CHECK-NEXT: result #1 : tensor<2x4xf32> = [3, 3, 3, 3, -0.5, -0.5, -0.5, -0.5]
  %b = arith.constant dense<[[3.0], [-0.5]]> : tensor<2x1xf32>
  %r1 = kiln.broadcast %b : (tensor<2x1xf32>) -> tensor<2x4xf32>

  // [2, 1, 2] -> [2, 3, 2]: a middle dimension.
  // CHECK-NEXT: result #2 : tensor<2x3x2xf32> = [1, 2, 1, 2, 1, 2, -3, 4.5, -3, 4.5, -3, 4.5]
  %c = arith.constant dense<[[[1.0, 2.0]], [[-3.0, 4.5]]]> : tensor<2x1x2xf32>
  %r2 = kiln.broadcast %c : (tensor<2x1x2xf32>) -> tensor<2x3x2xf32>

  // [1, 1, 1] -> [2, 1, 3]: several size-1 dimensions, one of them kept at 1.
  // CHECK-NEXT: result #3 : tensor<2x1x3xf32> = [7, 7, 7, 7, 7, 7]
  %d = arith.constant dense<[[[7.0]]]> : tensor<1x1x1xf32>
  %r3 = kiln.broadcast %d : (tensor<1x1x1xf32>) -> tensor<2x1x3xf32>

  // MLA's use: [batch 2, seq 1, 1 head, 2] -> [2, 1, 3 heads, 2].
  // CHECK-NEXT: result #4 : tensor<2x1x3x2xf32> = [0.5, -1, 0.5, -1, 0.5, -1, 2, 0.75, 2, 0.75, 2, 0.75]
  %e = arith.constant dense<[[[[0.5, -1.0]]], [[[2.0, 0.75]]]]> : tensor<2x1x1x2xf32>
  %r4 = kiln.broadcast %e : (tensor<2x1x1x2xf32>) -> tensor<2x1x3x2xf32>

  // [1, 2, 1] -> [3, 2, 2]: the first and last dimensions at once.
  // CHECK-NEXT: result #5 : tensor<3x2x2xf32> = [1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2]
  %f = arith.constant dense<[[[1.0], [2.0]]]> : tensor<1x2x1xf32>
  %r5 = kiln.broadcast %f : (tensor<1x2x1xf32>) -> tensor<3x2x2xf32>

  // Same shape: the identity.
  // CHECK-NEXT: result #6 : tensor<2x1x2xf32> = [1, 2, -3, 4.5]
  %r6 = kiln.broadcast %c : (tensor<2x1x2xf32>) -> tensor<2x1x2xf32>

  return %r0, %r1, %r2, %r3, %r4, %r5, %r6
      : tensor<2x3xf32>, tensor<2x4xf32>, tensor<2x3x2xf32>, tensor<2x1x3xf32>, tensor<2x1x3x2xf32>, tensor<3x2x2xf32>, tensor<2x1x2xf32>
}
