// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.grad_scaler (torch GradScaler.update): a finite norm counts one more
// finite step and one more AdamW update, and grows the scale by
// growth_factor when the count reaches growth_interval; an inf or NaN norm
// skips the step: scale * backoff_factor, tracker 0, updates unchanged.
// AdamW and bias_update with skip = true return their state unchanged.

func.func @main() -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>,
                      tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
                      tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
                      tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
                      tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %scale = arith.constant dense<65536.0> : tensor<f32>
  %t0 = arith.constant dense<0> : tensor<i64>
  %t1 = arith.constant dense<1> : tensor<i64>
  %u = arith.constant dense<7> : tensor<i64>
  %finite = arith.constant dense<3.5> : tensor<f32>
  %inf = arith.constant dense<0x7F800000> : tensor<f32>
  %nan = arith.constant dense<0x7FC00000> : tensor<f32>

  // A finite step, below the interval: scale kept, tracker 1, updates 8.
  // CHECK: result #0 : tensor<i1> = [0]
  // CHECK-NEXT: result #1 : tensor<f32> = [1.52587890625e-05]
  // CHECK-NEXT: result #2 : tensor<f32> = [65536]
  // CHECK-NEXT: result #3 : tensor<i64> = [1]
  // CHECK-NEXT: result #4 : tensor<i64> = [8]
  %k0, %i0, %s0, %tr0, %u0 = kiln.grad_scaler %finite, %scale, %t0, %u
      {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2 : i64}
      : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  // The interval's last finite step: the scale doubles, the tracker restarts.
  // CHECK-NEXT: result #5 : tensor<i1> = [0]
  // CHECK-NEXT: result #6 : tensor<f32> = [131072]
  // CHECK-NEXT: result #7 : tensor<i64> = [0]
  // CHECK-NEXT: result #8 : tensor<i64> = [8]
  %k1, %i1, %s1, %tr1, %u1 = kiln.grad_scaler %finite, %scale, %t1, %u
      {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2 : i64}
      : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  // inf, even at the interval's last step: skip, halve, tracker 0, updates 7.
  // CHECK-NEXT: result #9 : tensor<i1> = [1]
  // CHECK-NEXT: result #10 : tensor<f32> = [32768]
  // CHECK-NEXT: result #11 : tensor<i64> = [0]
  // CHECK-NEXT: result #12 : tensor<i64> = [7]
  %k2, %i2, %s2, %tr2, %u2 = kiln.grad_scaler %inf, %scale, %t1, %u
      {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2 : i64}
      : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)
  // NaN likewise.
  // CHECK-NEXT: result #13 : tensor<i1> = [1]
  // CHECK-NEXT: result #14 : tensor<f32> = [32768]
  // CHECK-NEXT: result #15 : tensor<i64> = [0]
  // CHECK-NEXT: result #16 : tensor<i64> = [7]
  %k3, %i3, %s3, %tr3, %u3 = kiln.grad_scaler %nan, %scale, %t0, %u
      {growth_factor = 2.0 : f64, backoff_factor = 0.5 : f64, growth_interval = 2 : i64}
      : (tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>) -> (tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>)

  // A skipped AdamW keeps p, m, v; a skipped bias update keeps the bias,
  // while the same update not skipped moves it.
  %p = arith.constant dense<[0.5, -1.25, 2.0]> : tensor<3xf32>
  %g = arith.constant dense<[0x7F800000, 1.0, 2.0]> : tensor<3xf32>
  %m = arith.constant dense<[0.1, 0.2, 0.3]> : tensor<3xf32>
  %v = arith.constant dense<[0.01, 0.02, 0.03]> : tensor<3xf32>
  %lr = arith.constant dense<1.0e-03> : tensor<f32>
  // CHECK-NEXT: result #17 : tensor<3xf32> = [0.5, -1.25, 2]
  // CHECK-NEXT: result #18 : tensor<3xf32> = [0.10000000149011{{[0-9]*}}, 0.20000000298023{{[0-9]*}}, 0.30000001192092{{[0-9]*}}]
  // CHECK-NEXT: result #19 : tensor<3xf32> = [0.0099999997764825{{[0-9]*}}, 0.019999999552965{{[0-9]*}}, 0.029999999329447{{[0-9]*}}]
  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %u2, %i2 skip %k2
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
      : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<i1>)
      -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
  %load = arith.constant dense<[1.0, 5.0, 3.0]> : tensor<3xf32>
  // CHECK-NEXT: result #20 : tensor<3xf32> = [0.5, -1.25, 2]
  // CHECK-NEXT: result #21 : tensor<3xf32> = [0.501, -1.2509999999999999, 2]
  %b2 = kiln.bias_update %p, %load skip %k2 {speed = 1.0e-03 : f64} : (tensor<3xf32>, tensor<3xf32>, tensor<i1>) -> tensor<3xf32>
  %b3 = kiln.bias_update %p, %load skip %k0 {speed = 1.0e-03 : f64} : (tensor<3xf32>, tensor<3xf32>, tensor<i1>) -> tensor<3xf32>
  return %k0, %i0, %s0, %tr0, %u0, %k1, %s1, %tr1, %u1, %k2, %s2, %tr2, %u2, %k3, %s3, %tr3, %u3,
         %p2, %m2, %v2, %b2, %b3
      : tensor<i1>, tensor<f32>, tensor<f32>, tensor<i64>, tensor<i64>,
        tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
        tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
        tensor<i1>, tensor<f32>, tensor<i64>, tensor<i64>,
        tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}
