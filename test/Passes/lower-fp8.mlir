// RUN: kiln-opt %s --kiln-lower-fp8 | FileCheck %s
// RUN: kiln-opt %s --kiln-lower-fp8="report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// The three GEMMs of one linear, marked kiln.fp8, and an unmarked one.
// x [2, 3, 200] (K = 200: two K blocks, the last of 72), W [136, 200].
func.func @steps(%x: tensor<2x3x200xf32>, %w: tensor<136x200xf32>, %dy: tensor<2x3x136xf32>)
    -> (tensor<2x3x136xf32>, tensor<2x3x200xf32>, tensor<136x200xf32>, tensor<2x3x136xf32>) {
  %y = kiln.linear %x, %w {kiln.fp8} : (tensor<2x3x200xf32>, tensor<136x200xf32>) -> tensor<2x3x136xf32>
  %dx = kiln.linear_dgrad %dy, %w {kiln.fp8} : (tensor<2x3x136xf32>, tensor<136x200xf32>) -> tensor<2x3x200xf32>
  %dw = kiln.linear_wgrad %dy, %x {kiln.fp8} : (tensor<2x3x136xf32>, tensor<2x3x200xf32>) -> tensor<136x200xf32>
  %plain = kiln.linear %x, %w : (tensor<2x3x200xf32>, tensor<136x200xf32>) -> tensor<2x3x136xf32>
  return %y, %dx, %dw, %plain : tensor<2x3x136xf32>, tensor<2x3x200xf32>, tensor<136x200xf32>, tensor<2x3x136xf32>
}

// Fprop: x as [6, 200] in 1x128 tiles, W in 128x128 blocks, W^T.
// CHECK-LABEL: func.func @steps
// CHECK: %[[X:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x3x200xf32> into tensor<6x200xf32>
// CHECK: %[[XQ:.*]], %[[XS:.*]] = kiln.quantize_fp8 %[[X]] {block = array<i64: 1, 128>} : tensor<6x200xf32> -> tensor<6x200xf8E4M3FN>, tensor<6x2xf32>
// CHECK: %[[WQ:.*]], %[[WS:.*]] = kiln.quantize_fp8 %arg1 {block = array<i64: 128, 128>} : tensor<136x200xf32> -> tensor<136x200xf8E4M3FN>, tensor<2x2xf32>
// CHECK: %[[Y:.*]] = kiln.scaled_matmul %[[XQ]], %[[XS]], %[[WQ]], %[[WS]] {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>, transpose_rhs = true} : {{.*}} -> tensor<6x136xf32>
// CHECK: %[[Y3:.*]] = tensor.expand_shape %[[Y]] {{\[}}[0, 1], [2]] output_shape [2, 3, 136] : tensor<6x136xf32> into tensor<2x3x136xf32>
// Dgrad: dy [6, 136] in 1x128 tiles against W untransposed.
// CHECK: kiln.quantize_fp8 {{.*}} {block = array<i64: 1, 128>} : tensor<6x136xf32> -> tensor<6x136xf8E4M3FN>, tensor<6x2xf32>
// CHECK: kiln.quantize_fp8 %arg1 {block = array<i64: 128, 128>} : tensor<136x200xf32>
// CHECK: kiln.scaled_matmul {{.*}} {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>} : {{.*}} -> tensor<6x200xf32>
// Wgrad: dy and x in 128x1 tiles (over the 6 tokens), dy transposed.
// CHECK: kiln.quantize_fp8 {{.*}} {block = array<i64: 128, 1>} : tensor<6x136xf32> -> tensor<6x136xf8E4M3FN>, tensor<1x136xf32>
// CHECK: kiln.quantize_fp8 {{.*}} {block = array<i64: 128, 1>} : tensor<6x200xf32> -> tensor<6x200xf8E4M3FN>, tensor<1x200xf32>
// CHECK: kiln.scaled_matmul {{.*}} {lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 1>, transpose_lhs = true} : {{.*}} -> tensor<136x200xf32>
// The unmarked linear stays.
// CHECK: kiln.linear %arg0, %arg1 : (tensor<2x3x200xf32>, tensor<136x200xf32>) -> tensor<2x3x136xf32>
// CHECK-NOT: kiln.fp8

// The three GEMMs of one expert layer, marked, and an unmarked one: rows
// [300, 200] over 2 experts (one bf16 operand), weights [2, 136, 200].
func.func @experts(%x: tensor<300x200xf32>, %w: tensor<2x136x200xbf16>, %o: tensor<3xi32>,
                   %dy: tensor<300x136xf32>)
    -> (tensor<300x136xf32>, tensor<300x200xf32>, tensor<2x136x200xf32>, tensor<300x136xf32>) {
  %y = kiln.grouped_matmul %x, %w, %o {kiln.fp8} : (tensor<300x200xf32>, tensor<2x136x200xbf16>, tensor<3xi32>) -> tensor<300x136xf32>
  %dx = kiln.grouped_matmul_dgrad %dy, %w, %o {kiln.fp8} : (tensor<300x136xf32>, tensor<2x136x200xbf16>, tensor<3xi32>) -> tensor<300x200xf32>
  %dw = kiln.grouped_matmul_wgrad %dy, %x, %o {kiln.fp8} : (tensor<300x136xf32>, tensor<300x200xf32>, tensor<3xi32>) -> tensor<2x136x200xf32>
  %plain = kiln.grouped_matmul %x, %w, %o : (tensor<300x200xf32>, tensor<2x136x200xbf16>, tensor<3xi32>) -> tensor<300x136xf32>
  return %y, %dx, %dw, %plain : tensor<300x136xf32>, tensor<300x200xf32>, tensor<2x136x200xf32>, tensor<300x136xf32>
}

// Fprop: rows in 1x128 tiles, each expert's [136, 200] in its own 128x128
// blocks ([2, 2, 2] scales), W_e^T.
// CHECK-LABEL: func.func @experts
// CHECK: %[[XQ:.*]], %[[XS:.*]] = kiln.quantize_fp8 %arg0 {block = array<i64: 1, 128>} : tensor<300x200xf32> -> tensor<300x200xf8E4M3FN>, tensor<300x2xf32>
// CHECK: %[[WQ:.*]], %[[WS:.*]] = kiln.quantize_fp8 %arg1 {block = array<i64: 1, 128, 128>} : tensor<2x136x200xbf16> -> tensor<2x136x200xf8E4M3FN>, tensor<2x2x2xf32>
// CHECK: kiln.scaled_grouped_matmul %[[XQ]], %[[XS]], %[[WQ]], %[[WS]], %arg2 {transpose_rhs = true} : {{.*}} -> tensor<300x136xf32>
// Dgrad: dy in 1x128 tiles against W_e untransposed.
// CHECK: kiln.quantize_fp8 %arg3 {block = array<i64: 1, 128>} : tensor<300x136xf32> -> tensor<300x136xf8E4M3FN>, tensor<300x2xf32>
// CHECK: kiln.quantize_fp8 %arg1 {block = array<i64: 1, 128, 128>}
// CHECK: kiln.scaled_grouped_matmul {{.*}}, %arg2 : {{.*}} -> tensor<300x200xf32>
// Wgrad: dy and x in 128x1 tiles restarting at each expert: 300 / 128
// rounded down, plus 2 experts, is 4 scale rows.
// CHECK: %[[GQ:.*]], %[[GS:.*]] = kiln.quantize_fp8_grouped %arg3, %arg2 {block = array<i64: 128, 1>} : tensor<300x136xf32>, tensor<3xi32> -> tensor<300x136xf8E4M3FN>, tensor<4x136xf32>
// CHECK: %[[HQ:.*]], %[[HS:.*]] = kiln.quantize_fp8_grouped %arg0, %arg2 {block = array<i64: 128, 1>} : tensor<300x200xf32>, tensor<3xi32> -> tensor<300x200xf8E4M3FN>, tensor<4x200xf32>
// CHECK: kiln.scaled_grouped_matmul_wgrad %[[GQ]], %[[GS]], %[[HQ]], %[[HS]], %arg2 : {{.*}} -> tensor<2x136x200xf32>
// CHECK: kiln.grouped_matmul %arg0, %arg1, %arg2 : (tensor<300x200xf32>, tensor<2x136x200xbf16>, tensor<3xi32>) -> tensor<300x136xf32>
// CHECK-NOT: kiln.fp8

// REPORT: remark: kiln-lower-fp8: 1 Fprop, 1 Dgrad and 1 Wgrad GEMMs in FP8; experts: 1 Fprop, 1 Dgrad and 1 Wgrad grouped GEMMs
