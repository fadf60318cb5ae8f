// RUN: kiln-run %s --entry main | FileCheck %s
// The comparison, conversion and square root that kiln-data-parallel and the
// gradient of all_reduce max emit, on the reference evaluator.

func.func @main() -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<3xf32>) {
  // cmpf oeq/olt/oge then uitofp: 1 where the predicate holds; NaN compares
  // false under every ordered predicate.
  // CHECK: result #0 : tensor<4xf32> = [1, 0, 0, 0]
  // CHECK-NEXT: result #1 : tensor<4xf32> = [0, 1, 0, 0]
  // CHECK-NEXT: result #2 : tensor<4xf32> = [1, 0, 1, 0]
  %a = arith.constant dense<[1.0, 2.0, 5.0, 0x7FC00000]> : tensor<4xf32>
  %b = arith.constant dense<[1.0, 3.0, 4.0, 1.0]> : tensor<4xf32>
  %eq = arith.cmpf oeq, %a, %b : tensor<4xf32>
  %lt = arith.cmpf olt, %a, %b : tensor<4xf32>
  %ge = arith.cmpf oge, %a, %b : tensor<4xf32>
  %eqf = arith.uitofp %eq : tensor<4xi1> to tensor<4xf32>
  %ltf = arith.uitofp %lt : tensor<4xi1> to tensor<4xf32>
  %gef = arith.uitofp %ge : tensor<4xi1> to tensor<4xf32>
  // math.sqrt, correctly rounded in f64.
  // CHECK-NEXT: result #3 : tensor<3xf32> = [3, 1.4142135623730951, 0]
  %s = arith.constant dense<[9.0, 2.0, 0.0]> : tensor<3xf32>
  %r = math.sqrt %s : tensor<3xf32>
  return %eqf, %ltf, %gef, %r : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<3xf32>
}
