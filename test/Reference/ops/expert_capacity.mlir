// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.expert_capacity drops, per group of tokens, each expert's pairs past
// its capacity (the first in token-major order stay) as -1; kiln.dispatch
// sorts dropped pairs after every expert, and kiln.expert_load does not
// count them.

func.func @main() -> (tensor<6x2xi32>, tensor<4xf32>, tensor<4xf32>, tensor<12x1xf32>,
                      tensor<5xi32>, tensor<12xi32>) {
  // Two groups of 3 tokens, top 2 of 4 experts, capacity 2 per group.
  // Group 0 routes expert 0 three times: its third pair (token 2, slot 0)
  // drops. Group 1 routes expert 3 three times and expert 1 twice: token 5's
  // expert 3 drops; expert 1 stays at its capacity.
  // CHECK: result #0 : tensor<6x2xi32> = [0, 1, 0, 2, -1, 3, 3, 1, 3, 1, -1, 2]
  %idx = arith.constant dense<[[0, 1], [0, 2], [0, 3], [3, 1], [3, 1], [3, 2]]> : tensor<6x2xi32>
  %kept = kiln.expert_capacity %idx {num_experts = 4 : i64, group_tokens = 3 : i64, capacity = 2 : i64}
      : (tensor<6x2xi32>) -> tensor<6x2xi32>
  // What routing asked for, and what the experts took.
  // CHECK-NEXT: result #1 : tensor<4xf32> = [3, 3, 2, 4]
  // CHECK-NEXT: result #2 : tensor<4xf32> = [2, 3, 2, 3]
  %load = kiln.expert_load %idx {num_experts = 4 : i64} : (tensor<6x2xi32>) -> tensor<4xf32>
  %kept_load = kiln.expert_load %kept {num_experts = 4 : i64} : (tensor<6x2xi32>) -> tensor<4xf32>
  // Token t's row holds t. Expert 0: tokens 0, 1; expert 1: 0, 3, 4;
  // expert 2: 1, 5; expert 3: 2, 3, 4; then the dropped pairs 4 and 10
  // (tokens 2 and 5), after offsets[4] = 10.
  // CHECK-NEXT: result #3 : tensor<12x1xf32> = [0, 1, 0, 3, 4, 1, 5, 2, 3, 4, 2, 5]
  // CHECK-NEXT: result #4 : tensor<5xi32> = [0, 2, 5, 7, 10]
  // CHECK-NEXT: result #5 : tensor<12xi32> = [0, 2, 1, 7, 9, 3, 11, 5, 6, 8, 4, 10]
  %x = arith.constant dense<[[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]> : tensor<6x1xf32>
  %rows, %offsets, %source = kiln.dispatch %x, %kept {num_experts = 4 : i64}
      : (tensor<6x1xf32>, tensor<6x2xi32>) -> (tensor<12x1xf32>, tensor<5xi32>, tensor<12xi32>)
  return %kept, %load, %kept_load, %rows, %offsets, %source
      : tensor<6x2xi32>, tensor<4xf32>, tensor<4xf32>, tensor<12x1xf32>, tensor<5xi32>, tensor<12xi32>
}
