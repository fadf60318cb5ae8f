// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.cross_entropy: ce[i] = (1 - eps) * -log p[targets[i]] + eps * mean_c(-log p[c]) with
// p = softmax(logits[i]); result = sum_i mask[i] * ce[i] / sum_i mask[i] (0 when no position counts).

func.func @main() -> (tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>) {
  // logits [2, 3, vocab 4], mask [[1, 1, 1], [0, 0, 1]]: the mean of -log p[target] over the
  // 4 unmasked positions (one has equal logits: -log p = ln 4). The masked position (1, 1) has
  // target -100 (HF's ignore index), which is never read; (1, 0)'s target 3 is not counted.
  // CHECK: result #0 : tensor<f32> = [{{0\.58405038641671[2-7][0-9]*}}]
  %logits = arith.constant dense<[[[1.0, 2.0, -1.0, 0.5], [0.25, -0.5, 3.0, 1.0], [2.0, 2.0, 2.0, 2.0]], [[-1.5, 0.0, 1.5, 4.0], [0.0, 1.0, 0.5, -2.0], [3.0, -3.0, 0.75, 1.25]]]> : tensor<2x3x4xf32>
  %targets = arith.constant dense<[[1, 2, 0], [3, -100, 0]]> : tensor<2x3xi32>
  %mask = arith.constant dense<[[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]> : tensor<2x3xf32>
  %r0 = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.0 : f64} : (tensor<2x3x4xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<f32>

  // label_smoothing 0.1: 0.9 * -log p[target] + 0.1 * mean_c(-log p[c]) per position.
  // CHECK-NEXT: result #1 : tensor<f32> = [{{0\.73248788641671[1-8][0-9]*}}]
  %r1 = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.1 : f64} : (tensor<2x3x4xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<f32>

  // Every position masked: the result is 0 (not 0/0).
  // CHECK-NEXT: result #2 : tensor<f32> = [0]
  %zeros = arith.constant dense<[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]> : tensor<2x3xf32>
  %r2 = kiln.cross_entropy %logits, %targets, %zeros {label_smoothing = 0.1 : f64} : (tensor<2x3x4xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<f32>

  // A single position (rank-1 logits, 0-d target and mask), logits near 800 (exp would
  // overflow without the max shift), label_smoothing 0.25.
  // CHECK-NEXT: result #3 : tensor<f32> = [{{(1\.953500275959[5-9][0-9]*|1\.953500275960[0-3][0-9]*)}}]
  %logits1 = arith.constant dense<[800.0, 801.5, 799.25, 802.0, 780.0]> : tensor<5xf32>
  %target1 = arith.constant dense<3> : tensor<i64>
  %mask1 = arith.constant dense<1.0> : tensor<f32>
  %r3 = kiln.cross_entropy %logits1, %target1, %mask1 {label_smoothing = 0.25 : f64}
      : (tensor<5xf32>, tensor<i64>, tensor<f32>) -> tensor<f32>

  // The default label_smoothing is 0; all but the ignore-index position counted.
  // CHECK-NEXT: result #4 : tensor<f32> = [{{(0\.48711657794144[8-9][0-9]*|0\.48711657794145[0-4][0-9]*)}}]
  %mask5 = arith.constant dense<[[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]> : tensor<2x3xf32>
  %r4 = kiln.cross_entropy %logits, %targets, %mask5 : (tensor<2x3x4xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<f32>

  return %r0, %r1, %r2, %r3, %r4
      : tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>
}
