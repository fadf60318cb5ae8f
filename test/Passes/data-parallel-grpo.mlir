// RUN: kiln-opt %s -split-input-file --kiln-autodiff --kiln-data-parallel="dp=2 microbatches=2" | FileCheck %s

// GRPO under data parallelism: every batch input (advantages [B] included)
// is split by rows; a token-mean GRPO loss is normalised by the global
// batch's token count (as cross-entropy is), a per-sequence one by the
// global batch's rows, a constant of the layout (4 rows x 2 micro-batches
// x dp 2 = 16; each rank's step takes 8 rows).

func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %tokens: tensor<4x4xi32> {kiln.input = "tokens"}, %targets: tensor<4x4xi32> {kiln.input = "targets"},
                   %mask: tensor<4x4xf32> {kiln.input = "loss_mask"}, %adv: tensor<4xf32> {kiln.input = "advantages"},
                   %old: tensor<4x4xf32> {kiln.input = "old_logprobs"}, %ref: tensor<4x4xf32> {kiln.input = "ref_logprobs"})
    -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<4x4xi32>) -> tensor<4x4x8xf32>
  %logits = kiln.linear %h, %emb : (tensor<4x4x8xf32>, tensor<16x8xf32>) -> tensor<4x4x16xf32>
  %loss = kiln.grpo_loss %logits, %targets, %mask, %adv, %old, %ref {beta = 0.04 : f64}
      : (tensor<4x4x16xf32>, tensor<4x4xi32>, tensor<4x4xf32>, tensor<4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[ADV:arg[0-9]+]]: tensor<8xf32> {kiln.input = "advantages"}
// CHECK: %[[A0:.*]] = tensor.extract_slice %[[ADV]][0] [4] [1] : tensor<8xf32> to tensor<4xf32>
// CHECK: %[[A1:.*]] = tensor.extract_slice %[[ADV]][4] [4] [1] : tensor<8xf32> to tensor<4xf32>
// CHECK: %[[COUNT:.*]] = kiln.all_reduce %{{.*}} {axes = ["dp"], kind = "sum"} : tensor<f32>
// CHECK: call @train_step_micro({{.*}}%[[A0]]{{.*}}, %[[COUNT]])
// CHECK: call @train_step_micro({{.*}}%[[A1]]{{.*}}, %[[COUNT]])
// CHECK-LABEL: func.func private @train_step_micro(
// CHECK-SAME: %[[N:arg[0-9]+]]: tensor<f32> {kiln.input = "token_count"}
// CHECK: kiln.grpo_loss {{.*}} count %[[N]] {beta = 4.000000e-02 : f64}
// CHECK: kiln.grpo_loss_grad {{.*}} count %[[N]] {beta = 4.000000e-02 : f64}

// -----

func.func @forward(%emb: tensor<16x8xf32> {kiln.param = "embed.weight"},
                   %tokens: tensor<4x4xi32> {kiln.input = "tokens"}, %targets: tensor<4x4xi32> {kiln.input = "targets"},
                   %mask: tensor<4x4xf32> {kiln.input = "loss_mask"}, %adv: tensor<4xf32> {kiln.input = "advantages"},
                   %old: tensor<4x4xf32> {kiln.input = "old_logprobs"}, %ref: tensor<4x4xf32> {kiln.input = "ref_logprobs"})
    -> (tensor<f32> {kiln.result = "loss"}) {
  %h = kiln.embedding %emb, %tokens : (tensor<16x8xf32>, tensor<4x4xi32>) -> tensor<4x4x8xf32>
  %logits = kiln.linear %h, %emb : (tensor<4x4x8xf32>, tensor<16x8xf32>) -> tensor<4x4x16xf32>
  %loss = kiln.grpo_loss %logits, %targets, %mask, %adv, %old, %ref {aggregation = "seq-mean-token-mean"}
      : (tensor<4x4x16xf32>, tensor<4x4xi32>, tensor<4x4xf32>, tensor<4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func.func private @train_step_micro(
// CHECK: %[[ROWS:.*]] = arith.constant dense<1.600000e+01> : tensor<f32>
// CHECK: kiln.grpo_loss {{.*}} count %[[ROWS]] {aggregation = "seq-mean-token-mean"}
// CHECK: %[[ROWS2:.*]] = arith.constant dense<1.600000e+01> : tensor<f32>
// CHECK: kiln.grpo_loss_grad {{.*}} count %[[ROWS2]] {aggregation = "seq-mean-token-mean"}
