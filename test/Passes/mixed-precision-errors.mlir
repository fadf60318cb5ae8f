// Bad options are errors at the module, naming what is wrong and what is right.
// RUN: not kiln-opt %s --kiln-mixed-precision="policy=fp4" 2>&1 | FileCheck %s --check-prefix=POLICY
// RUN: not kiln-opt %s --kiln-mixed-precision="high-precision=linear,attention" 2>&1 | FileCheck %s --check-prefix=HIGH
// RUN: not kiln-opt %s --kiln-mixed-precision="low-precision=norm" 2>&1 | FileCheck %s --check-prefix=LOW
// RUN: not kiln-opt %s --kiln-mixed-precision="high-precision=head low-precision=head" 2>&1 | FileCheck %s --check-prefix=BOTH
// RUN: kiln-opt %s -verify-diagnostics --kiln-mixed-precision="policy=fp4"

// POLICY: error: kiln-mixed-precision: unknown policy 'fp4'; expected bf16, fp16 or fp8
// HIGH: error: kiln-mixed-precision: high-precision names 'attention', which is not a GEMM family (linear, expert, head, gate)
// LOW: error: kiln-mixed-precision: low-precision names 'norm', which is not a GEMM family (linear, expert, head, gate); embedding, normalisation, attention and the losses stay f32
// BOTH: error: kiln-mixed-precision: family 'head' is in both high-precision and low-precision

// expected-error @+1 {{kiln-mixed-precision: unknown policy 'fp4'; expected bf16, fp16 or fp8}}
module {
  func.func @forward(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
    %y = kiln.linear %x, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
    return %y : tensor<4x8xf32>
  }
}
