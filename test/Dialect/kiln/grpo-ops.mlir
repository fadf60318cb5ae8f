// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// GRPO's ops (KilnLossOps.td, KilnGradOps.td) round-trip, defaults elided.

// CHECK-LABEL: func.func @grpo
func.func @grpo(%l: tensor<4x8x16xf32>, %t: tensor<4x8xi32>, %m: tensor<4x8xf32>,
                %a: tensor<4xf32>, %o: tensor<4x8xf32>, %r: tensor<4x8xf32>, %n: tensor<f32>,
                %d: tensor<f32>) -> (tensor<4x8xf32>, tensor<f32>, tensor<4x8x16xf32>) {
  // CHECK: kiln.token_logprobs %{{.*}}, %{{.*}} {temperature = 0.69999999999999996 : f64} : (tensor<4x8x16xf32>, tensor<4x8xi32>) -> tensor<4x8xf32>
  %lp = kiln.token_logprobs %l, %t {temperature = 0.7 : f64} : (tensor<4x8x16xf32>, tensor<4x8xi32>) -> tensor<4x8xf32>
  // CHECK: kiln.grpo_loss %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {aggregation = "seq-mean-token-mean", beta = 4.000000e-02 : f64, clip_high = 2.800000e-01 : f64}
  %loss = kiln.grpo_loss %l, %t, %m, %a, %o, %r {clip_high = 0.28 : f64, beta = 0.04 : f64, aggregation = "seq-mean-token-mean"}
      : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<f32>
  // CHECK: kiln.grpo_loss_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} count %{{.*}} {aggregation = "seq-mean-token-sum-norm", max_tokens = 8 : i64}
  %dl = kiln.grpo_loss_grad %l, %t, %m, %a, %o, %r, %d count %n {aggregation = "seq-mean-token-sum-norm", max_tokens = 8 : i64}
      : (tensor<4x8x16xf32>, tensor<4x8xi32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<f32>, tensor<f32>) -> tensor<4x8x16xf32>
  return %lp, %loss, %dl : tensor<4x8xf32>, tensor<f32>, tensor<4x8x16xf32>
}
