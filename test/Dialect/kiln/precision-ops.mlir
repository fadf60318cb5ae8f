// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt -mlir-print-op-generic %s | kiln-opt | FileCheck %s

// The FP8 ops (KilnPrecisionOps.td) print and parse back to themselves, in
// the three tilings of DeepSeek-V3's recipe, with a partial last tile, and
// in the three GEMMs of a linear layer.

// CHECK-LABEL: func.func @quantize
func.func @quantize(%x: tensor<4x32x200xf32>, %w: tensor<300x200xbf16>, %t: tensor<128x64xf32>)
    -> (tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>,
        tensor<128x64xf8E4M3FN>, tensor<1x64xf32>, tensor<4x32x200xbf16>) {
  // CHECK: kiln.quantize_fp8 %{{.*}} {block = array<i64: 1, 128>} : tensor<4x32x200xf32> -> tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32>
  %xq, %xs = kiln.quantize_fp8 %x {block = array<i64: 1, 128>}
      : tensor<4x32x200xf32> -> tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32>
  // CHECK: kiln.quantize_fp8 %{{.*}} {block = array<i64: 128, 128>} : tensor<300x200xbf16> -> tensor<300x200xf8E4M3FN>, tensor<3x2xf32>
  %wq, %ws = kiln.quantize_fp8 %w {block = array<i64: 128, 128>}
      : tensor<300x200xbf16> -> tensor<300x200xf8E4M3FN>, tensor<3x2xf32>
  // CHECK: kiln.quantize_fp8 %{{.*}} {block = array<i64: 128, 1>} : tensor<128x64xf32> -> tensor<128x64xf8E4M3FN>, tensor<1x64xf32>
  %tq, %ts = kiln.quantize_fp8 %t {block = array<i64: 128, 1>}
      : tensor<128x64xf32> -> tensor<128x64xf8E4M3FN>, tensor<1x64xf32>
  // CHECK: kiln.dequantize_fp8 %{{.*}}, %{{.*}} {block = array<i64: 1, 128>} : tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32> -> tensor<4x32x200xbf16>
  %back = kiln.dequantize_fp8 %xq, %xs {block = array<i64: 1, 128>}
      : tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32> -> tensor<4x32x200xbf16>
  return %xq, %xs, %wq, %ws, %tq, %ts, %back
      : tensor<4x32x200xf8E4M3FN>, tensor<128x2xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>,
        tensor<128x64xf8E4M3FN>, tensor<1x64xf32>, tensor<4x32x200xbf16>
}

// y = x W^T, dx = dy W, dW = dy^T x for x [256, 200], W [300, 200].
// CHECK-LABEL: func.func @linear_gemms
func.func @linear_gemms(%xq: tensor<256x200xf8E4M3FN>, %xs: tensor<256x2xf32>,
                        %wq: tensor<300x200xf8E4M3FN>, %ws: tensor<3x2xf32>,
                        %dyq: tensor<256x300xf8E4M3FN>, %dys: tensor<256x3xf32>,
                        %dytq: tensor<256x300xf8E4M3FN>, %dyts: tensor<2x300xf32>,
                        %xtq: tensor<256x200xf8E4M3FN>, %xts: tensor<2x200xf32>)
    -> (tensor<256x300xbf16>, tensor<256x200xf32>, tensor<300x200xf32>) {
  // CHECK: kiln.scaled_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>, transpose_rhs = true} : (tensor<256x200xf8E4M3FN>, tensor<256x2xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>) -> tensor<256x300xbf16>
  %y = kiln.scaled_matmul %xq, %xs, %wq, %ws
      {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>, transpose_rhs = true}
      : (tensor<256x200xf8E4M3FN>, tensor<256x2xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>) -> tensor<256x300xbf16>
  // CHECK: kiln.scaled_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>} : (tensor<256x300xf8E4M3FN>, tensor<256x3xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>) -> tensor<256x200xf32>
  %dx = kiln.scaled_matmul %dyq, %dys, %wq, %ws
      {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>}
      : (tensor<256x300xf8E4M3FN>, tensor<256x3xf32>, tensor<300x200xf8E4M3FN>, tensor<3x2xf32>) -> tensor<256x200xf32>
  // CHECK: kiln.scaled_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 1>, transpose_lhs = true} : (tensor<256x300xf8E4M3FN>, tensor<2x300xf32>, tensor<256x200xf8E4M3FN>, tensor<2x200xf32>) -> tensor<300x200xf32>
  %dw = kiln.scaled_matmul %dytq, %dyts, %xtq, %xts
      {lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 1>, transpose_lhs = true}
      : (tensor<256x300xf8E4M3FN>, tensor<2x300xf32>, tensor<256x200xf8E4M3FN>, tensor<2x200xf32>) -> tensor<300x200xf32>
  return %y, %dx, %dw : tensor<256x300xbf16>, tensor<256x200xf32>, tensor<300x200xf32>
}

// The expert GEMMs of one layer in FP8: rows [300, 200] sorted over 2
// experts, weights [2, 64, 200] in one [1, 128, 128] tiling per expert,
// and the Wgrad operands in 128x1 tiles restarting at each expert
// (300 / 128 rounded down, plus 2 experts: 4 scale rows).
// CHECK-LABEL: func.func @experts
func.func @experts(%x: tensor<300x200xf32>, %w: tensor<2x64x200xf32>, %dy: tensor<300x64xf32>,
                   %o: tensor<3xi32>)
    -> (tensor<300x64xf32>, tensor<300x200xbf16>, tensor<2x64x200xf32>) {
  // CHECK: kiln.quantize_fp8 %{{.*}} {block = array<i64: 1, 128, 128>} : tensor<2x64x200xf32> -> tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>
  %wq, %ws = kiln.quantize_fp8 %w {block = array<i64: 1, 128, 128>}
      : tensor<2x64x200xf32> -> tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>
  %xq, %xs = kiln.quantize_fp8 %x {block = array<i64: 1, 128>}
      : tensor<300x200xf32> -> tensor<300x200xf8E4M3FN>, tensor<300x2xf32>
  %dq, %ds = kiln.quantize_fp8 %dy {block = array<i64: 1, 128>}
      : tensor<300x64xf32> -> tensor<300x64xf8E4M3FN>, tensor<300x1xf32>
  // CHECK: kiln.scaled_grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<300x200xf8E4M3FN>, tensor<300x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<300x64xf32>
  %y = kiln.scaled_grouped_matmul %xq, %xs, %wq, %ws, %o {transpose_rhs = true}
      : (tensor<300x200xf8E4M3FN>, tensor<300x2xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<300x64xf32>
  // CHECK: kiln.scaled_grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<300x64xf8E4M3FN>, tensor<300x1xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<300x200xbf16>
  %dx = kiln.scaled_grouped_matmul %dq, %ds, %wq, %ws, %o
      : (tensor<300x64xf8E4M3FN>, tensor<300x1xf32>, tensor<2x64x200xf8E4M3FN>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<300x200xbf16>
  // CHECK: kiln.quantize_fp8_grouped %{{.*}}, %{{.*}} {block = array<i64: 128, 1>} : tensor<300x64xf32>, tensor<3xi32> -> tensor<300x64xf8E4M3FN>, tensor<4x64xf32>
  %gq, %gs = kiln.quantize_fp8_grouped %dy, %o {block = array<i64: 128, 1>}
      : tensor<300x64xf32>, tensor<3xi32> -> tensor<300x64xf8E4M3FN>, tensor<4x64xf32>
  %hq, %hs = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>}
      : tensor<300x200xf32>, tensor<3xi32> -> tensor<300x200xf8E4M3FN>, tensor<4x200xf32>
  // CHECK: kiln.scaled_grouped_matmul_wgrad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<300x64xf8E4M3FN>, tensor<4x64xf32>, tensor<300x200xf8E4M3FN>, tensor<4x200xf32>, tensor<3xi32>) -> tensor<2x64x200xf32>
  %dw = kiln.scaled_grouped_matmul_wgrad %gq, %gs, %hq, %hs, %o
      : (tensor<300x64xf8E4M3FN>, tensor<4x64xf32>, tensor<300x200xf8E4M3FN>, tensor<4x200xf32>, tensor<3xi32>) -> tensor<2x64x200xf32>
  return %y, %dx, %dw : tensor<300x64xf32>, tensor<300x200xbf16>, tensor<2x64x200xf32>
}
