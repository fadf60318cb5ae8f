// RUN: kiln-run %s --entry main | FileCheck %s
// The arith and tensor ops Kiln IR uses, on the reference evaluator (computing in f64 whatever
// the declared float type). Expected values from numpy's f64 operations, exact.

func.func @main() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2xf32>, tensor<5xf32>, tensor<3x5xf32>, tensor<3x3xf32>, tensor<2x4xf32>, tensor<2x3x4xf32>, tensor<2x12xf32>, tensor<2x2xf32>, tensor<3x2xf32>) {
  // arith.addf / subf / mulf / divf / negf, elementwise on [2, 3] (divf rounds: 1.5 / 0.5 = 3,
  // -2 / 3, 0.25 / -1, ...; each op is one correctly rounded f64 operation).
  // CHECK: result #0 : tensor<2x3xf32> = [2, 1, -0.75, -3, 0.625, -1]
  // CHECK-NEXT: result #1 : tensor<2x3xf32> = [1, -5, 1.25, 9, 0.375, -7]
  // CHECK-NEXT: result #2 : tensor<2x3xf32> = [0.75, -6, -0.25, -18, 0.0625, -12]
  // CHECK-NEXT: result #3 : tensor<2x3xf32> = [3, -0.66666666666666663, -0.25, -0.5, 4, -1.3333333333333333]
  // CHECK-NEXT: result #4 : tensor<2x3xf32> = [-1.5, 2, -0.25, -3, -0.5, 4]
  %a = arith.constant dense<[[1.5, -2.0, 0.25], [3.0, 0.5, -4.0]]> : tensor<2x3xf32>
  %b = arith.constant dense<[[0.5, 3.0, -1.0], [-6.0, 0.125, 3.0]]> : tensor<2x3xf32>
  %add = arith.addf %a, %b : tensor<2x3xf32>
  %sub = arith.subf %a, %b : tensor<2x3xf32>
  %mul = arith.mulf %a, %b : tensor<2x3xf32>
  %div = arith.divf %a, %b : tensor<2x3xf32>
  %neg = arith.negf %a : tensor<2x3xf32>

  // tensor.extract_slice of m [3, 5] (m = 0.5 * iota - 3): offsets [0, 1], sizes [2, 2], strides
  // [1, 2] -> m[0:2, 1:5:2]; and a rank-reducing slice: row 2 -> [5].
  // CHECK-NEXT: result #5 : tensor<2x2xf32> = [-2.5, -1.5, 0, 1]
  // CHECK-NEXT: result #6 : tensor<5xf32> = [2, 2.5, 3, 3.5, 4]
  %m = arith.constant dense<[[-3.0, -2.5, -2.0, -1.5, -1.0], [-0.5, 0.0, 0.5, 1.0, 1.5], [2.0, 2.5, 3.0, 3.5, 4.0]]> : tensor<3x5xf32>
  %sl = tensor.extract_slice %m[0, 1] [2, 2] [1, 2] : tensor<3x5xf32> to tensor<2x2xf32>
  %row = tensor.extract_slice %m[2, 0] [1, 5] [1, 1] : tensor<3x5xf32> to tensor<5xf32>

  // tensor.insert_slice of s [2, 2] into m at offsets [1, 0], strides [1, 3]: m[1:3, 0:4:3] = s,
  // the rest of m unchanged.
  // CHECK-NEXT: result #7 : tensor<3x5xf32> = [-3, -2.5, -2, -1.5, -1, 10, 0, 0.5, 20, 1.5, 30, 2.5, 3, 40, 4]
  %s = arith.constant dense<[[10.0, 20.0], [30.0, 40.0]]> : tensor<2x2xf32>
  %ins = tensor.insert_slice %s into %m[1, 0] [2, 2] [1, 3] : tensor<2x2xf32> into tensor<3x5xf32>

  // tensor.concat along dim 0 ([2, 3] ++ [1, 3]) and dim 1 ([2, 3] ++ [2, 1]).
  // CHECK-NEXT: result #8 : tensor<3x3xf32> = [1.5, -2, 0.25, 3, 0.5, -4, 1, 2, 3]
  // CHECK-NEXT: result #9 : tensor<2x4xf32> = [1.5, -2, 0.25, 7, 3, 0.5, -4, 8]
  %c0 = arith.constant dense<[[1.0, 2.0, 3.0]]> : tensor<1x3xf32>
  %c1 = arith.constant dense<[[7.0], [8.0]]> : tensor<2x1xf32>
  %cat0 = tensor.concat dim(0) %a, %c0 : (tensor<2x3xf32>, tensor<1x3xf32>) -> tensor<3x3xf32>
  %cat1 = tensor.concat dim(1) %a, %c1 : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>

  // tensor.expand_shape [6, 4] -> [2, 3, 4] and tensor.collapse_shape [2, 3, 4] -> [2, 12]:
  // row-major order is unchanged.
  // CHECK-NEXT: result #10 : tensor<2x3x4xf32> = [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.75, 4, 4.25, 4.5, 4.75]
  // CHECK-NEXT: result #11 : tensor<2x12xf32> = [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.75, 4, 4.25, 4.5, 4.75]
  %e = arith.constant dense<[[-1.0, -0.75, -0.5, -0.25], [0.0, 0.25, 0.5, 0.75], [1.0, 1.25, 1.5, 1.75], [2.0, 2.25, 2.5, 2.75], [3.0, 3.25, 3.5, 3.75], [4.0, 4.25, 4.5, 4.75]]> : tensor<6x4xf32>
  %exp = tensor.expand_shape %e [[0, 1], [2]] output_shape [2, 3, 4] : tensor<6x4xf32> into tensor<2x3x4xf32>
  %col = tensor.collapse_shape %exp [[0], [1, 2]] : tensor<2x3x4xf32> into tensor<2x12xf32>

  // tensor.from_elements of four f32 scalars -> [2, 2], in row-major order.
  // CHECK-NEXT: result #12 : tensor<2x2xf32> = [1.25, -3.5, 0.0625, 1024]
  %f0 = arith.constant 1.25 : f32
  %f1 = arith.constant -3.5 : f32
  %f2 = arith.constant 0.0625 : f32
  %f3 = arith.constant 1024.0 : f32
  %fe = tensor.from_elements %f0, %f1, %f2, %f3 : tensor<2x2xf32>

  // A chain: (a + b) * a - b / 4, through a [3, 2] reshape of the sum.
  // CHECK-NEXT: result #13 : tensor<3x2xf32> = [2.875, -2.75, 0.0625, -7.5, 0.28125, 3.25]
  %four = arith.constant dense<4.0> : tensor<2x3xf32>
  %q = arith.divf %b, %four : tensor<2x3xf32>
  %t = arith.mulf %add, %a : tensor<2x3xf32>
  %chain = arith.subf %t, %q : tensor<2x3xf32>
  %flat = tensor.collapse_shape %chain [[0, 1]] : tensor<2x3xf32> into tensor<6xf32>
  %r32 = tensor.expand_shape %flat [[0, 1]] output_shape [3, 2] : tensor<6xf32> into tensor<3x2xf32>

  return %add, %sub, %mul, %div, %neg, %sl, %row, %ins, %cat0, %cat1, %exp, %col, %fe, %r32
      : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2xf32>, tensor<5xf32>, tensor<3x5xf32>, tensor<3x3xf32>, tensor<2x4xf32>, tensor<2x3x4xf32>, tensor<2x12xf32>, tensor<2x2xf32>, tensor<3x2xf32>
}
