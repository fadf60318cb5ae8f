// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.silu: result = x * sigmoid(x) = x / (1 + exp(-x)), elementwise.

func.func @main() -> (tensor<2x3xf32>, tensor<4xf32>, tensor<2x1x1xf32>) {
  // x [2, 3]: x * sigmoid(x); silu(0) = 0 exactly.
  // CHECK: result #0 : tensor<2x3xf32> = [{{-0\.142277619532700[0-9]*}}, {{-0\.26894142136999[4-5][0-9]*}}, {{-0\.109455874778550[0-9]*}}, 0, {{0\.31122966560092[6-7][0-9]*}}, {{1\.76159415595576[0-9]*}}]
  %x = arith.constant dense<[[-3.0, -1.0, -0.25], [0.0, 0.5, 2.0]]> : tensor<2x3xf32>
  %r0 = kiln.silu %x : tensor<2x3xf32>

  // Saturation: silu(-40) ~ -40 e^-40 (tiny, not 0), silu(40) = 40 to double precision.
  // CHECK-NEXT: result #1 : tensor<4xf32> = [{{-1\.69934170211663[0-9]*e-16}}, {{-0\.00045397868702434[3-4][0-9]*}}, {{9\.9995460213129[6-8][0-9]*}}, {{(40|39\.9999999999999[0-9]*|40\.0000000000000[0-9]*)}}]
  %xb = arith.constant dense<[-40.0, -10.0, 10.0, 40.0]> : tensor<4xf32>
  %r1 = kiln.silu %xb : tensor<4xf32>

  // Rank 3.
  // CHECK-NEXT: result #2 : tensor<2x1x1xf32> = [{{0\.73105857863000[4-5][0-9]*}}, {{-0\.058598828328280[4-5][0-9]*}}]
  %x3 = arith.constant dense<[[[1.0]], [[-0.125]]]> : tensor<2x1x1xf32>
  %r2 = kiln.silu %x3 : tensor<2x1x1xf32>

  return %r0, %r1, %r2
      : tensor<2x3xf32>, tensor<4xf32>, tensor<2x1x1xf32>
}
