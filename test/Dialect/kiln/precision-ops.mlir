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
