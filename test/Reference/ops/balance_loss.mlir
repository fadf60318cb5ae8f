// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.balance_loss: logits [tokens, N] grouped into num_sequences sequences of T tokens, indices
// [tokens, K]. Per sequence, s = sigmoid or softmax of the logits, s' = s / sum_experts(s):
//   f[i] = N / (K T) * #{t : i selected for t},  P[i] = 1/T sum_t s'[i, t]
//   loss = mean over sequences of sum_i f[i] P[i]
// kiln.balance_loss_grad: with Z = sum_j s[j, t] and q = dloss / (num_sequences * T),
//   ds[i, t] = q * (f[i] - sum_j f[j] s[j, t] / Z) / Z, then through the scoring function
//   (sigmoid: ds * s * (1 - s); softmax: s * (ds - sum ds * s)).
// Expected values computed with numpy from those descriptions.

func.func @main() -> (tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<4x4xf32>, tensor<4x4xf32>) {
  // 4 tokens, 4 experts, top_k 2, num_sequences 2 (T = 2): sequence 0 selects experts 0 (twice), 1, 2,
  // sequence 1 selects 2 (twice), 0, 3. Sigmoid scores (normalised per token by their sum).
  // CHECK: result #0 : tensor<f32> = [{{(1\.0554160255396[0-9]*|1\.0554160255397[0-9]*)}}]
  %l = arith.constant dense<[[1.0, -0.5, 2.0, 0.25], [0.5, 1.5, -1.0, 0.0], [-2.0, 0.75, 1.25, 3.0], [0.0, 0.0, 0.5, -0.5]]> : tensor<4x4xf32>
  %idx = arith.constant dense<[[2, 0], [1, 0], [3, 2], [2, 0]]> : tensor<4x2xi32>
  %sig = kiln.balance_loss %l, %idx {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x4xf32>, tensor<4x2xi32>) -> tensor<f32>

  // Softmax scores (already summing to 1), the same selection.
  // CHECK-NEXT: result #1 : tensor<f32> = [{{1\.1029205871162[0-9]*}}]
  %soft = kiln.balance_loss %l, %idx {scoring = "softmax", num_sequences = 2 : i64} : (tensor<4x4xf32>, tensor<4x2xi32>) -> tensor<f32>

  // One sequence of 4 tokens: the counts are pooled (T = 4).
  // CHECK-NEXT: result #2 : tensor<f32> = [{{(0\.98776739371483[0-9]*|0\.98776739371484[0-9]*|0\.98776739371485[0-9]*|0\.98776739371486[0-9]*|0\.98776739371487[0-9]*)}}]
  %one = kiln.balance_loss %l, %idx {scoring = "sigmoid", num_sequences = 1 : i64} : (tensor<4x4xf32>, tensor<4x2xi32>) -> tensor<f32>

  // A perfectly balanced selection with uniform softmax scores: f = 1 and P = 1/N for all, loss 1.
  // CHECK-NEXT: result #3 : tensor<f32> = [{{(0\.99999999999998[0-9]*|0\.99999999999999[0-9]*|1|1\.0000000000000[0-9]*)}}]
  %flat = arith.constant dense<0.5> : tensor<2x4xf32>
  %idx2 = arith.constant dense<[[0, 1], [2, 3]]> : tensor<2x2xi32>
  %bal = kiln.balance_loss %flat, %idx2 {scoring = "softmax", num_sequences = 1 : i64} : (tensor<2x4xf32>, tensor<2x2xi32>) -> tensor<f32>

  // balance_loss_grad for the first two losses, dloss = 0.5 (as aux_loss_alpha would scale it).
  // CHECK-NEXT: result #4 : tensor<4x4xf32> = [{{(0\.0089943882100886[0-9]*|0\.0089943882100887[0-9]*|0\.0089943882100888[0-9]*|0\.0089943882100889[0-9]*|0\.0089943882100890[0-9]*)}}, {{(-0\.00076199542229132[0-9]*|-0\.00076199542229131[0-9]*|-0\.00076199542229130[0-9]*|-0\.00076199542229129[0-9]*)}}, {{(-0\.00034043986240861[0-9]*|-0\.00034043986240860[0-9]*)}}, {{(-0\.012856044382261[0-9]*|-0\.012856044382260[0-9]*)}}, {{(0\.012561015227853[0-9]*|0\.012561015227854[0-9]*)}}, {{(-0\.00046787854584713[0-9]*|-0\.00046787854584712[0-9]*|-0\.00046787854584711[0-9]*)}}, {{(-0\.00061677970977035[0-9]*|-0\.00061677970977034[0-9]*|-0\.00061677970977033[0-9]*|-0\.00061677970977032[0-9]*)}}, {{-0\.014931091609931[0-9]*}}, {{(-0\.00020146216809315[0-9]*|-0\.00020146216809314[0-9]*)}}, {{(-0\.011191088624568[0-9]*|-0\.011191088624567[0-9]*)}}, {{(0\.0082263547446743[0-9]*|0\.0082263547446744[0-9]*|0\.0082263547446745[0-9]*|0\.0082263547446746[0-9]*)}}, {{(-8\.6685179686152[0-9]*e-05|-8\.6685179686151[0-9]*e-05|-8\.6685179686150[0-9]*e-05|-8\.6685179686149[0-9]*e-05|-8\.6685179686148[0-9]*e-05)}}, {{(-0\.00095671352501450[0-9]*|-0\.00095671352501449[0-9]*|-0\.00095671352501448[0-9]*|-0\.00095671352501447[0-9]*|-0\.00095671352501446[0-9]*)}}, {{-0\.016581713525014[0-9]*}}, {{(0\.013788407093031[0-9]*|0\.013788407093032[0-9]*)}}, {{(-0\.00089932491956752[0-9]*|-0\.00089932491956751[0-9]*|-0\.00089932491956750[0-9]*|-0\.00089932491956749[0-9]*)}}]
  // CHECK-NEXT: result #5 : tensor<4x4xf32> = [{{(0\.024934918133635[0-9]*|0\.024934918133636[0-9]*)}}, {{(-0\.00075540443539081[0-9]*|-0\.00075540443539080[0-9]*|-0\.00075540443539079[0-9]*|-0\.00075540443539078[0-9]*)}}, {{(-0\.0092027099720372[0-9]*|-0\.0092027099720371[0-9]*|-0\.0092027099720370[0-9]*|-0\.0092027099720369[0-9]*|-0\.0092027099720368[0-9]*)}}, {{-0\.014976803726208[0-9]*}}, {{(0\.025107069643175[0-9]*|0\.025107069643176[0-9]*)}}, {{(-0\.0064637631343849[0-9]*|-0\.0064637631343848[0-9]*|-0\.0064637631343847[0-9]*|-0\.0064637631343846[0-9]*)}}, {{(-0\.00053057798799119[0-9]*|-0\.00053057798799118[0-9]*|-0\.00053057798799117[0-9]*)}}, {{-0\.018112728520800[0-9]*}}, {{(-3\.4826614350882[0-9]*e-05|-3\.4826614350881[0-9]*e-05|-3\.4826614350880[0-9]*e-05)}}, {{-0\.010790358250479[0-9]*}}, {{(0\.015993912721491[0-9]*|0\.015993912721492[0-9]*)}}, {{(-0\.0051687278566615[0-9]*|-0\.0051687278566614[0-9]*|-0\.0051687278566613[0-9]*)}}, {{(-0\.0044783455037373[0-9]*|-0\.0044783455037372[0-9]*|-0\.0044783455037371[0-9]*)}}, {{(-0\.033853809528937[0-9]*|-0\.033853809528936[0-9]*|-0\.033853809528935[0-9]*)}}, {{(0\.041048408885475[0-9]*|0\.041048408885476[0-9]*|0\.041048408885477[0-9]*)}}, {{(-0\.0027162538528029[0-9]*|-0\.0027162538528028[0-9]*|-0\.0027162538528027[0-9]*)}}]
  %dloss = arith.constant dense<0.5> : tensor<f32>
  %dsig = kiln.balance_loss_grad %l, %idx, %dloss {scoring = "sigmoid", num_sequences = 2 : i64} : (tensor<4x4xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<4x4xf32>
  %dsoft = kiln.balance_loss_grad %l, %idx, %dloss {scoring = "softmax", num_sequences = 2 : i64} : (tensor<4x4xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<4x4xf32>

  return %sig, %soft, %one, %bal, %dsig, %dsoft
      : tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<4x4xf32>, tensor<4x4xf32>
}
