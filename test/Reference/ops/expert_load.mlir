// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.expert_load: load[e] = number of entries of indices equal to e, as floats.
// Expected values counted with numpy.

func.func @main() -> (tensor<6xf32>, tensor<3xbf16>) {
  // 4 tokens, top_k 2, 6 experts: expert 3 gets 4 pairs, 0 two, 1 and 5 one, 2 and 4 none.
  // CHECK: result #0 : tensor<6xf32> = [2, 1, 0, 4, 0, 1]
  %i0 = arith.constant dense<[[0, 3], [3, 1], [0, 3], [5, 3]]> : tensor<4x2xi32>
  %l0 = kiln.expert_load %i0 {num_experts = 6 : i64} : (tensor<4x2xi32>) -> tensor<6xf32>

  // i64 indices of rank 1, bf16 result.
  // CHECK-NEXT: result #1 : tensor<3xbf16> = [1, 1, 3]
  %i1 = arith.constant dense<[2, 0, 2, 2, 1]> : tensor<5xi64>
  %l1 = kiln.expert_load %i1 {num_experts = 3 : i64} : (tensor<5xi64>) -> tensor<3xbf16>

  return %l0, %l1
      : tensor<6xf32>, tensor<3xbf16>
}
