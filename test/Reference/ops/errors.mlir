// Runtime errors of the reference evaluator: bad values that the verifiers cannot see
// (they depend on tensor contents), and ops without an execution rule. Each is reported at
// the failing op, kiln-run exits non-zero and prints no result.
//
// RUN: rm -rf %t && split-file --leading-lines %s %t
// RUN: not kiln-run %t/runtime.mlir --entry token_too_large 2>&1 | FileCheck %s --check-prefix=TOKEN
// RUN: not kiln-run %t/runtime.mlir --entry token_negative 2>&1 | FileCheck %s --check-prefix=TOKNEG
// RUN: not kiln-run %t/runtime.mlir --entry expert_too_large 2>&1 | FileCheck %s --check-prefix=EXPERT
// RUN: not kiln-run %t/runtime.mlir --entry expert_negative 2>&1 | FileCheck %s --check-prefix=EXPNEG
// RUN: not kiln-run %t/runtime.mlir --entry offsets_not_from_zero 2>&1 | FileCheck %s --check-prefix=OFF0
// RUN: not kiln-run %t/runtime.mlir --entry offsets_decreasing 2>&1 | FileCheck %s --check-prefix=OFFDEC
// RUN: not kiln-run %t/runtime.mlir --entry offsets_past_rows 2>&1 | FileCheck %s --check-prefix=OFFEND
// RUN: not kiln-run %t/runtime.mlir --entry combine_source 2>&1 | FileCheck %s --check-prefix=SOURCE
// RUN: not kiln-run %t/runtime.mlir --entry target_too_large 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not kiln-run %t/runtime.mlir --entry target_negative 2>&1 | FileCheck %s --check-prefix=TARGNEG
// RUN: not kiln-run %t/runtime.mlir --entry no_rule_cmpf 2>&1 | FileCheck %s --check-prefix=CMPF
// RUN: not kiln-run %t/runtime.mlir --entry no_rule_maxnumf 2>&1 | FileCheck %s --check-prefix=MAXNUMF
// RUN: not kiln-run %t/runtime.mlir --entry dynamic_slice 2>&1 | FileCheck %s --check-prefix=DYNAMIC
// RUN: not kiln-run %t/runtime.mlir --entry extract_out_of_range 2>&1 | FileCheck %s --check-prefix=EXTRACT
// RUN: not kiln-run %t/runtime.mlir --entry recursive 2>&1 | FileCheck %s --check-prefix=RECURSE
// RUN: not kiln-run %t/math.mlir --entry main 2>&1 | FileCheck %s --check-prefix=MATH
//
// split-file --leading-lines keeps line numbers, so [[@LINE]] below points into runtime.mlir. The ids,
// indices, targets and offsets are integers; the messages may print them as "5" or "5.000000e+00".

//--- runtime.mlir

// An id equal to vocab (5) is one past the table.
// TOKEN: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: token id {{5(\.000000e\+00)?}} at flat position 3 is outside the embedding table [0, 5)
func.func @token_too_large() -> tensor<2x2x2xf32> {
  %table = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]> : tensor<5x2xf32>
  %ids = arith.constant dense<[[0, 4], [2, 5]]> : tensor<2x2xi32>
  %r = kiln.embedding %table, %ids : (tensor<5x2xf32>, tensor<2x2xi32>) -> tensor<2x2x2xf32>
  return %r : tensor<2x2x2xf32>
}

// TOKNEG: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: token id {{-1(\.000000e\+00)?}} at flat position 1 is outside the embedding table [0, 2)
func.func @token_negative() -> tensor<3x2xf32> {
  %table = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %ids = arith.constant dense<[1, -1, 0]> : tensor<3xi64>
  %r = kiln.embedding %table, %ids : (tensor<2x2xf32>, tensor<3xi64>) -> tensor<3x2xf32>
  return %r : tensor<3x2xf32>
}

// Expert index == num_experts, in token 1's second slot.
// EXPERT: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: expert index {{4(\.000000e\+00)?}} of token 1 is outside [0, 4)
func.func @expert_too_large() -> (tensor<6x2xf32>, tensor<5xi32>, tensor<6xi32>) {
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %idx = arith.constant dense<[[0, 1], [3, 4], [2, 0]]> : tensor<3x2xi32>
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 4 : i64}
      : (tensor<3x2xf32>, tensor<3x2xi32>) -> (tensor<6x2xf32>, tensor<5xi32>, tensor<6xi32>)
  return %rows, %offsets, %source : tensor<6x2xf32>, tensor<5xi32>, tensor<6xi32>
}

// -1 marks a pair kiln.expert_capacity dropped; any other negative index is an error.
// EXPNEG: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: expert index {{-2(\.000000e\+00)?}} of token 2 is outside [0, 2) and not -1 (dropped)
func.func @expert_negative() -> (tensor<3x2xf32>, tensor<3xi64>, tensor<3xi64>) {
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %idx = arith.constant dense<[[0], [1], [-2]]> : tensor<3x1xi64>
  %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 2 : i64}
      : (tensor<3x2xf32>, tensor<3x1xi64>) -> (tensor<3x2xf32>, tensor<3xi64>, tensor<3xi64>)
  return %rows, %offsets, %source : tensor<3x2xf32>, tensor<3xi64>, tensor<3xi64>
}

// grouped_matmul offsets must start at 0, never decrease and end at most at the row count.
// OFF0: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: expert offsets must start at 0, never decrease and end at most at the row count 3; got first {{1(\.000000e\+00)?}}, last {{3(\.000000e\+00)?}}
func.func @offsets_not_from_zero() -> tensor<3x1xf32> {
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %w = arith.constant dense<[[[1.0, 1.0]], [[2.0, 2.0]]]> : tensor<2x1x2xf32>
  %off = arith.constant dense<[1, 2, 3]> : tensor<3xi32>
  %r = kiln.grouped_matmul %x, %w, %off : (tensor<3x2xf32>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<3x1xf32>
  return %r : tensor<3x1xf32>
}

// OFFDEC: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: expert offsets must start at 0, never decrease and end at most at the row count 3; got first {{0(\.000000e\+00)?}}, last {{3(\.000000e\+00)?}}
func.func @offsets_decreasing() -> tensor<3x1xf32> {
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %w = arith.constant dense<[[[1.0, 1.0]], [[2.0, 2.0]], [[3.0, 3.0]]]> : tensor<3x1x2xf32>
  %off = arith.constant dense<[0, 2, 1, 3]> : tensor<4xi32>
  %r = kiln.grouped_matmul %x, %w, %off : (tensor<3x2xf32>, tensor<3x1x2xf32>, tensor<4xi32>) -> tensor<3x1xf32>
  return %r : tensor<3x1xf32>
}

// OFFEND: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: expert offsets must start at 0, never decrease and end at most at the row count 3; got first {{0(\.000000e\+00)?}}, last {{4(\.000000e\+00)?}}
func.func @offsets_past_rows() -> tensor<3x1xf32> {
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %w = arith.constant dense<[[[1.0, 1.0]], [[2.0, 2.0]]]> : tensor<2x1x2xf32>
  %off = arith.constant dense<[0, 1, 4]> : tensor<3xi64>
  %r = kiln.grouped_matmul %x, %w, %off : (tensor<3x2xf32>, tensor<2x1x2xf32>, tensor<3xi64>) -> tensor<3x1xf32>
  return %r : tensor<3x1xf32>
}

// A combine source entry past tokens*top_k.
// SOURCE: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: source entry {{4(\.000000e\+00)?}} of row 2 is outside [0, 4)
func.func @combine_source() -> tensor<2x1xf32> {
  %rows = arith.constant dense<[[1.0], [2.0], [3.0], [4.0]]> : tensor<4x1xf32>
  %w = arith.constant dense<[[0.5, 0.5], [0.25, 0.75]]> : tensor<2x2xf32>
  %source = arith.constant dense<[0, 2, 4, 1]> : tensor<4xi32>
  %r = kiln.combine %rows, %w, %source : (tensor<4x1xf32>, tensor<2x2xf32>, tensor<4xi32>) -> tensor<2x1xf32>
  return %r : tensor<2x1xf32>
}

// A target == vocab at an unmasked position (flat 2) fails; the masked position 0's target
// (-100, HF's ignore index) is never read, so the error names position 2.
// TARGET: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: target {{4(\.000000e\+00)?}} at flat position 2 is outside [0, 4)
func.func @target_too_large() -> tensor<f32> {
  %logits = arith.constant dense<[[[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], [[-1.0, 0.0, 1.0, 2.0], [4.0, 3.0, 2.0, 1.0]]]> : tensor<2x2x4xf32>
  %targets = arith.constant dense<[[-100, 1], [4, 0]]> : tensor<2x2xi32>
  %mask = arith.constant dense<[[0.0, 1.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %r = kiln.cross_entropy %logits, %targets, %mask : (tensor<2x2x4xf32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<f32>
  return %r : tensor<f32>
}

// TARGNEG: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: target {{-1(\.000000e\+00)?}} at flat position 0 is outside [0, 3)
func.func @target_negative() -> tensor<f32> {
  %logits = arith.constant dense<[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]> : tensor<2x3xf32>
  %targets = arith.constant dense<[-1, 2]> : tensor<2xi64>
  %mask = arith.constant dense<[1.0, 1.0]> : tensor<2xf32>
  %r = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.1 : f64} : (tensor<2x3xf32>, tensor<2xi64>, tensor<2xf32>) -> tensor<f32>
  return %r : tensor<f32>
}

// Ops that parse but have no execution rule are named, never guessed.
// Comparisons run for the ordered predicates Kiln emits; others are named.
// CMPF: runtime.mlir:[[@LINE+3]]:{{[0-9]+}}: error: reference evaluator: unsupported predicate une
func.func @no_rule_cmpf() -> tensor<2xi1> {
  %a = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %c = arith.cmpf une, %a, %a : tensor<2xf32>
  return %c : tensor<2xi1>
}

// MAXNUMF: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: no execution rule for 'arith.maxnumf'
func.func @no_rule_maxnumf() -> tensor<2xf32> {
  %a = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %b = arith.constant dense<[3.0, -2.0]> : tensor<2xf32>
  %c = arith.maxnumf %a, %b : tensor<2xf32>
  return %c : tensor<2xf32>
}

// DYNAMIC: runtime.mlir:[[@LINE+4]]:{{[0-9]+}}: error: reference evaluator: only static offsets, sizes and strides are supported
func.func @dynamic_slice() -> tensor<2xf32> {
  %a = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %i = arith.constant 1 : index
  %s = tensor.extract_slice %a[%i] [2] [1] : tensor<4xf32> to tensor<2xf32>
  return %s : tensor<2xf32>
}

// EXTRACT: runtime.mlir:[[@LINE+5]]:{{[0-9]+}}: error: reference evaluator: index 3 out of range for dimension 1 of size 3
func.func @extract_out_of_range() -> f32 {
  %a = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %i = arith.constant 1 : index
  %j = arith.constant 3 : index
  %e = tensor.extract %a[%i, %j] : tensor<2x3xf32>
  return %e : f32
}

// Unbounded recursion stops at a call depth of 64 with a message, not a stack overflow.
// RECURSE: runtime.mlir:[[@LINE+2]]:{{[0-9]+}}: error: reference evaluator: call depth exceeds 64 (recursive calls?)
// RECURSE: runtime.mlir:[[@LINE+2]]:{{[0-9]+}}: remark: called from here
func.func @recursive() -> tensor<2xf32> {
  %r = func.call @recursive() : () -> tensor<2xf32>
  return %r : tensor<2xf32>
}

//--- math.mlir

// Of the math dialect the evaluator runs only math.sqrt (kiln-data-parallel's gradient
// norm); math.exp is named, not guessed.
// MATH: math.mlir:[[@LINE+3]]:{{[0-9]+}}: error: reference evaluator: no execution rule for 'math.exp'
func.func @main() -> tensor<2xf32> {
  %a = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %e = math.exp %a : tensor<2xf32>
  return %e : tensor<2xf32>
}
