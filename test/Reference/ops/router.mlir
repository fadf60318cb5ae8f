// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.router: s = sigmoid(logits) or softmax(logits); c = s + bias selects (groups by
// top2_sum or max of c, the topk_group best kept; then the top_k eligible experts by c,
// ties to the lower index); weights = s at the selection (unbiased), divided by their
// sum + 1e-20 when norm_topk_prob, times routed_scaling_factor.

func.func @main() -> (tensor<3x2xi32>, tensor<3x2xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<2x2xi32>, tensor<2x2xf32>, tensor<2x2xi32>, tensor<2x2xf32>, tensor<1x2xi32>, tensor<1x2xf32>) {
  // Sigmoid + top2_sum groups (DeepSeek-V3 noaux_tc): 8 experts in 4 groups of 2, keep 2 groups,
  // top 2, weights normalised then x2.5. The bias changes the selection, never the weights.
  // token 0: by s alone the best are experts 2 and 5; with c = s + bias, groups 0 ({0, 1}, +0.5
  // on 1) and 2 ({4, 5}, +0.625 on 4) win and the top 2 of c are [4, 1], weighted
  // s[4] / (s[4] + s[1]) * 2.5 and s[1] / (s[4] + s[1]) * 2.5 with the unbiased s.
  // token 1: expert 7 has the largest c (s 0.953 + 0.125) but its group {6, 7} sums to 0.63 and
  // is dropped; groups 0 and 2 are kept -> [1, 4].
  // token 2: groups 2 and 1 are kept; experts 3 and 5 tie on c = s (logit 2.0, no bias): the lower
  // index first -> [3, 5], weights exactly 1.25 each.
  // CHECK: result #0 : tensor<3x2xi32> = [4, 1, 1, 4, 3, 5]
  // CHECK-NEXT: result #1 : tensor<3x2xf32> = [{{1\.0400188398879[1-2][0-9]*}}, {{1\.4599811601120[7-8][0-9]*}}, {{1\.6256114773644[4-5][0-9]*}}, {{0\.87438852263554[5-9][0-9]*}}, {{(1\.25|1\.24999999999999[0-9]*|1\.25000000000000[0-9]*)}}, {{(1\.25|1\.24999999999999[0-9]*|1\.25000000000000[0-9]*)}}]
  %l1 = arith.constant dense<[[1.0, -0.5, 2.0, 0.25, -1.0, 1.5, 0.5, -2.0], [0.5, 0.0, 1.0, 1.5, -1.0, 0.25, -3.0, 3.0], [-1.0, -1.0, 1.0, 2.0, -3.0, 2.0, -3.0, -3.0]]> : tensor<3x8xf32>
  %b1 = arith.constant dense<[0.0, 0.5, -0.25, 0.0, 0.625, 0.0, -0.5, 0.125]> : tensor<8xf32>
  %r1_idx, %r1_w = kiln.router %l1, %b1 {scoring = "sigmoid", group_score = "top2_sum",
      n_group = 4 : i64, topk_group = 2 : i64, top_k = 2 : i64,
      norm_topk_prob = true, routed_scaling_factor = 2.5 : f64}
      : (tensor<3x8xf32>, tensor<8xf32>) -> (tensor<3x2xi32>, tensor<3x2xf32>)

  // Softmax over 6 experts, n_group = 1 (every expert eligible), top 3, norm_topk_prob false,
  // factor 1: weights are the softmax probabilities. A bias of +0.5 on expert 4 puts it first in
  // both tokens although its probability is small. Token 1 ties experts 0, 1, 5 (logit 3.0):
  // lower index first, so 5 is left out.
  // CHECK-NEXT: result #2 : tensor<2x3xi32> = [4, 2, 3, 4, 0, 1]
  // CHECK-NEXT: result #3 : tensor<2x3xf32> = [{{0\.043278810404403[3-4][0-9]*}}, {{0\.52724384637807[4-6][0-9]*}}, {{0\.19396217156664[7-8][0-9]*}}, {{0\.068034640292135[5-7][0-9]*}}, {{0\.30491010380164[5-6][0-9]*}}, {{0\.30491010380164[5-6][0-9]*}}]
  %l2 = arith.constant dense<[[0.5, -1.0, 2.0, 1.0, -0.5, 0.25], [3.0, 3.0, -2.0, 0.0, 1.5, 3.0]]> : tensor<2x6xf32>
  %b2 = arith.constant dense<[0.0, 0.0, 0.0, 0.0, 0.5, 0.0]> : tensor<6xf32>
  %r2_idx, %r2_w = kiln.router %l2, %b2 {scoring = "softmax", group_score = "top2_sum",
      n_group = 1 : i64, topk_group = 1 : i64, top_k = 3 : i64,
      norm_topk_prob = false, routed_scaling_factor = 1.0 : f64}
      : (tensor<2x6xf32>, tensor<6xf32>) -> (tensor<2x3xi32>, tensor<2x3xf32>)

  // group_score = "max": 6 experts in 3 groups of 2, keep 1 group, top 2, normalised.
  // token 0: group 0 ({0, 1}) has the largest single c (s[0] = 0.953) and wins although its pair
  // sum (expert 1 is weak) is below group 1's, which top2_sum would keep: -> [0, 1].
  // token 1: the bias (+0.5 on expert 3, -0.375 on 4) moves the best max from group 2 to group
  // 1: -> [3, 2], weighted by the unbiased s[3] = 0.269 and s[2] = 0.679.
  // CHECK-NEXT: result #4 : tensor<2x2xi32> = [0, 1, 3, 2]
  // CHECK-NEXT: result #5 : tensor<2x2xf32> = [{{0\.88878011322352[1-4][0-9]*}}, {{0\.11121988677647[6-7][0-9]*}}, {{0\.28365754037082[4-5][0-9]*}}, {{0\.71634245962917[3-6][0-9]*}}]
  %l3 = arith.constant dense<[[3.0, -2.0, 1.5, -2.0, -1.0, 0.0], [0.5, 0.25, 0.75, -1.0, 1.0, 0.0]]> : tensor<2x6xf32>
  %b3 = arith.constant dense<[0.0, 0.0, 0.0, 0.5, -0.375, 0.0]> : tensor<6xf32>
  %r3_idx, %r3_w = kiln.router %l3, %b3 {scoring = "sigmoid", group_score = "max",
      n_group = 3 : i64, topk_group = 1 : i64, top_k = 2 : i64,
      norm_topk_prob = true, routed_scaling_factor = 1.0 : f64}
      : (tensor<2x6xf32>, tensor<6xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)

  // norm_topk_prob = false with routed_scaling_factor 2.5: weights = 2.5 * s. Token 0 ties
  // experts 0, 1, 3 on s (logit 0.5); the bias -0.125 puts 3 last, then 0 before 1.
  // CHECK-NEXT: result #6 : tensor<2x2xi32> = [0, 1, 1, 3]
  // CHECK-NEXT: result #7 : tensor<2x2xf32> = [{{1\.55614832800463[0-9]*}}, {{1\.55614832800463[0-9]*}}, {{2\.2019926949447[0-1][0-9]*}}, {{2\.0439361904841[0-1][0-9]*}}]
  %l4 = arith.constant dense<[[0.5, 0.5, -0.25, 0.5], [-1.0, 2.0, 0.0, 1.5]]> : tensor<2x4xf32>
  %b4 = arith.constant dense<[0.0, 0.0, 0.0, -0.125]> : tensor<4xf32>
  %r4_idx, %r4_w = kiln.router %l4, %b4 {scoring = "sigmoid", group_score = "top2_sum",
      n_group = 1 : i64, topk_group = 1 : i64, top_k = 2 : i64,
      norm_topk_prob = false, routed_scaling_factor = 2.5 : f64}
      : (tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)

  // Softmax scores with top2_sum groups: 2 groups of 3, keep 1, top 2, normalised, x1.5. The
  // largest probability (expert 0) is in the losing group: 0.340 + 0.125 < 0.265 + 0.206.
  // CHECK-NEXT: result #8 : tensor<1x2xi32> = [4, 3]
  // CHECK-NEXT: result #9 : tensor<1x2xf32> = [{{0\.84326475132869[5-8][0-9]*}}, {{0\.65673524867130[1-4][0-9]*}}]
  %l5 = arith.constant dense<[[1.0, 0.0, -1.0, 0.5, 0.75, -2.0]]> : tensor<1x6xf32>
  %b5 = arith.constant dense<[0.0, 0.0, 0.0, 0.0, 0.0, 0.125]> : tensor<6xf32>
  %r5_idx, %r5_w = kiln.router %l5, %b5 {scoring = "softmax", group_score = "top2_sum",
      n_group = 2 : i64, topk_group = 1 : i64, top_k = 2 : i64,
      norm_topk_prob = true, routed_scaling_factor = 1.5 : f64}
      : (tensor<1x6xf32>, tensor<6xf32>) -> (tensor<1x2xi32>, tensor<1x2xf32>)

  return %r1_idx, %r1_w, %r2_idx, %r2_w, %r3_idx, %r3_w, %r4_idx, %r4_w, %r5_idx, %r5_w
      : tensor<3x2xi32>, tensor<3x2xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<2x2xi32>, tensor<2x2xf32>, tensor<2x2xi32>, tensor<2x2xf32>, tensor<1x2xi32>, tensor<1x2xf32>
}
