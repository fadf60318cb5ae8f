// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.lr_schedule: for step t (1-based), W = warmup_steps, N = total_steps:
//   t <= W: lr * t / W
//   else:   min_lr + (lr - min_lr) / 2 * (1 + cos(pi * clamp((t - W) / max(1, N - W), 0, 1)))
// Expected values computed with numpy from that description.

func.func @main() -> (tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>) {
  // lr 3e-3, min_lr 3e-4, W = 4, N = 12: warmup t = 1, 2 (lr/4, lr/2), the peak lr at t = W = 4,
  // the cosine from t = 5, its midpoint (lr + min_lr) / 2 at t = 8, t = 11, the floor min_lr at
  // t = N = 12 and after it (t = 20: the clamp holds the floor).
  // CHECK: result #0 : tensor<f32> = [{{(0\.00074999999999998[0-9]*|0\.00074999999999999[0-9]*|0\.00075000000000000[0-9]*|0\.00075000000000001[0-9]*)}}]
  // CHECK-NEXT: result #1 : tensor<f32> = [{{(0\.0014999999999999[0-9]*|0\.0015|0\.0015000000000000[0-9]*)}}]
  // CHECK-NEXT: result #2 : tensor<f32> = [{{(0\.0029999999999999[0-9]*|0\.0030000000000000[0-9]*)}}]
  // CHECK-NEXT: result #3 : tensor<f32> = [{{(0\.0028972373688901[0-9]*|0\.0028972373688902[0-9]*)}}]
  // CHECK-NEXT: result #4 : tensor<f32> = [{{(0\.0016499999999999[0-9]*|0\.00165|0\.0016500000000000[0-9]*)}}]
  // CHECK-NEXT: result #5 : tensor<f32> = [{{(0\.00040276263110975[0-9]*|0\.00040276263110976[0-9]*|0\.00040276263110977[0-9]*)}}]
  // CHECK-NEXT: result #6 : tensor<f32> = [{{(0\.00029999999999999[0-9]*|0\.00030000000000000[0-9]*)}}]
  // CHECK-NEXT: result #7 : tensor<f32> = [{{(0\.00029999999999999[0-9]*|0\.00030000000000000[0-9]*)}}]
  %t_a1 = arith.constant dense<1> : tensor<i64>
  %a1 = kiln.lr_schedule %t_a1 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a2 = arith.constant dense<2> : tensor<i64>
  %a2 = kiln.lr_schedule %t_a2 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a4 = arith.constant dense<4> : tensor<i64>
  %a4 = kiln.lr_schedule %t_a4 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a5 = arith.constant dense<5> : tensor<i64>
  %a5 = kiln.lr_schedule %t_a5 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a8 = arith.constant dense<8> : tensor<i64>
  %a8 = kiln.lr_schedule %t_a8 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a11 = arith.constant dense<11> : tensor<i64>
  %a11 = kiln.lr_schedule %t_a11 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a12 = arith.constant dense<12> : tensor<i64>
  %a12 = kiln.lr_schedule %t_a12 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>
  %t_a20 = arith.constant dense<20> : tensor<i64>
  %a20 = kiln.lr_schedule %t_a20 {lr = 0.003 : f64, min_lr = 0.0003 : f64, warmup_steps = 4 : i64, total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>

  // total_steps == warmup_steps = 5: max(1, N - W) = 1, so the step after the peak (t = 6) is
  // already at the floor, and it stays there.
  // CHECK-NEXT: result #8 : tensor<f32> = [{{(0\.00099999999999998[0-9]*|0\.00099999999999999[0-9]*|0\.001|0\.0010000000000000[0-9]*)}}]
  // CHECK-NEXT: result #9 : tensor<f32> = [{{(9\.9999999999997[0-9]*e-05|9\.9999999999998[0-9]*e-05|9\.9999999999999[0-9]*e-05|0\.0001|0\.00010000000000000[0-9]*)}}]
  // CHECK-NEXT: result #10 : tensor<f32> = [{{(9\.9999999999997[0-9]*e-05|9\.9999999999998[0-9]*e-05|9\.9999999999999[0-9]*e-05|0\.0001|0\.00010000000000000[0-9]*)}}]
  %t_b5 = arith.constant dense<5> : tensor<i64>
  %b5 = kiln.lr_schedule %t_b5 {lr = 0.001 : f64, min_lr = 0.0001 : f64, warmup_steps = 5 : i64, total_steps = 5 : i64} : (tensor<i64>) -> tensor<f32>
  %t_b6 = arith.constant dense<6> : tensor<i64>
  %b6 = kiln.lr_schedule %t_b6 {lr = 0.001 : f64, min_lr = 0.0001 : f64, warmup_steps = 5 : i64, total_steps = 5 : i64} : (tensor<i64>) -> tensor<f32>
  %t_b9 = arith.constant dense<9> : tensor<i64>
  %b9 = kiln.lr_schedule %t_b9 {lr = 0.001 : f64, min_lr = 0.0001 : f64, warmup_steps = 5 : i64, total_steps = 5 : i64} : (tensor<i64>) -> tensor<f32>

  // No warmup (W = 0) and min_lr 0: t = 1 is already on the cosine (pi/4), t = 3 at 3pi/4.
  // CHECK-NEXT: result #11 : tensor<f32> = [{{0\.0017071067811865[0-9]*}}]
  // CHECK-NEXT: result #12 : tensor<f32> = [{{(0\.00029289321881344[0-9]*|0\.00029289321881345[0-9]*)}}]
  %t_c1 = arith.constant dense<1> : tensor<i64>
  %c1 = kiln.lr_schedule %t_c1 {lr = 0.002 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 4 : i64} : (tensor<i64>) -> tensor<f32>
  %t_c3 = arith.constant dense<3> : tensor<i64>
  %c3 = kiln.lr_schedule %t_c3 {lr = 0.002 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 4 : i64} : (tensor<i64>) -> tensor<f32>

  return %a1, %a2, %a4, %a5, %a8, %a11, %a12, %a20, %b5, %b6, %b9, %c1, %c3
      : tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>
}
