// RUN: kiln-run %s --entry main | FileCheck %s --check-prefix=IDEAL
// RUN: kiln-run %s --entry main --rounding=as-typed | FileCheck %s --check-prefix=TYPED
// The evaluator's two modes: ideal keeps f64 whatever the types say;
// as-typed rounds every value to its declared element type as the kernels
// store it (round to nearest even; f8E4M3FN saturates at 448).

func.func @main() -> (tensor<4xbf16>, tensor<4xf8E4M3FN>, tensor<4xbf16>, tensor<4xf32>) {
  // 1 + 2^-8 is bf16's tie between 1 and 1 + 2^-7 (to even: 1); 1 + 3 x 2^-8
  // the tie between 1 + 2^-7 and 1 + 2^-6 (to even: 1 + 2^-6).
  %x = arith.constant dense<[1.00390625, 1.01171875, 300.0, 1000.0]> : tensor<4xf32>
  // IDEAL: result #0 : tensor<4xbf16> = [1.00390625, 1.01171875, 300, 1000]
  // TYPED: result #0 : tensor<4xbf16> = [1, 1.015625, 300, 1000]
  %b = arith.truncf %x : tensor<4xf32> to tensor<4xbf16>
  // e4m3 has steps of 1/8 at 1 and 32 at 256; 1000 is past its 448.
  // IDEAL-NEXT: result #1 : tensor<4xf8E4M3FN> = [1.00390625, 1.01171875, 300, 1000]
  // TYPED-NEXT: result #1 : tensor<4xf8E4M3FN> = [1, 1, 288, 448]
  %e = arith.truncf %x : tensor<4xf32> to tensor<4xf8E4M3FN>
  // A bf16 product is rounded again: 1.015625^2 = 1.031494140625 -> 1.03125.
  // IDEAL-NEXT: result #2 : tensor<4xbf16> = [1.0078277587890625, 1.0235748291015625, 90000, 1000000]
  // TYPED-NEXT: result #2 : tensor<4xbf16> = [1, 1.03125, 90112, 999424]
  %p = arith.mulf %b, %b : tensor<4xbf16>
  // Widening is exact in both modes.
  // IDEAL-NEXT: result #3 : tensor<4xf32> = [1.00390625, 1.01171875, 300, 1000]
  // TYPED-NEXT: result #3 : tensor<4xf32> = [1, 1, 288, 448]
  %w = arith.extf %e : tensor<4xf8E4M3FN> to tensor<4xf32>
  return %b, %e, %p, %w : tensor<4xbf16>, tensor<4xf8E4M3FN>, tensor<4xbf16>, tensor<4xf32>
}
