// RUN: kiln-run %s --entry main | FileCheck %s
// kiln.topk_compress keeps the k largest |grad + residual| as one message of
// little-endian bytes; kiln.topk_decompress sums every rank's message.
// Expected values were computed independently (Python struct, f32 rounding).
//
// acc = grad + residual = [0.5, -2.2, 0.1, 4, 0, -0.25]: the top 2 are
// indices 1 and 3.
// f32 values: [1 0 0 0][3 0 0 0] then -2.2f = 0xC00CCCCD, 4.0f = 0x40800000.
// CHECK: result #0 : tensor<16xi8> = [1, 0, 0, 0, 3, 0, 0, 0, -51, -52, 12, -64, 0, 0, -128, 64]
// What was sent leaves nothing behind at 1 and 3.
// CHECK-NEXT: result #1 : tensor<2x3xf32> = [0.5, 0, 0.10000000149011612, 0, 0, -0.25]
// int8: scale 4/127 = 0x3D010204, then the indices, then round(-2.2 / scale)
// = -70 and 127.
// CHECK-NEXT: result #2 : tensor<14xi8> = [4, 2, 1, 61, 1, 0, 0, 0, 3, 0, 0, 0, -70, 127]
// The residual keeps the rounding: -2.2 - (-70 x 4/127).
// CHECK-NEXT: result #3 : tensor<2x3xf32> = [0.5, 0.0047242641448974609, 0.10000000149011612, 0, 0, -0.25]
// Two ranks' copies of the int8 message summed: 2 x (-70 x scale), 2 x 4.
// CHECK-NEXT: result #4 : tensor<2x3xf32> = [0, -4.4094486236572266, 0, 8, 0, 0]
func.func @main() -> (tensor<16xi8>, tensor<2x3xf32>, tensor<14xi8>, tensor<2x3xf32>, tensor<2x3xf32>) {
  %g = arith.constant dense<[[0.5, -2.2, 0.1], [4.0, 0.0, -1.0]]> : tensor<2x3xf32>
  %r = arith.constant dense<[[0.0, 0.0, 0.0], [0.0, 0.0, 0.75]]> : tensor<2x3xf32>
  %m, %nr = kiln.topk_compress %g, %r {k = 2 : i64, quantize = "none"}
      : (tensor<2x3xf32>, tensor<2x3xf32>) -> (tensor<16xi8>, tensor<2x3xf32>)
  %q, %qr = kiln.topk_compress %g, %r {k = 2 : i64, quantize = "int8"}
      : (tensor<2x3xf32>, tensor<2x3xf32>) -> (tensor<14xi8>, tensor<2x3xf32>)
  %two = tensor.concat dim(0) %q, %q : (tensor<14xi8>, tensor<14xi8>) -> tensor<28xi8>
  %sum = kiln.topk_decompress %two {k = 2 : i64, quantize = "int8"} : (tensor<28xi8>) -> tensor<2x3xf32>
  return %m, %nr, %q, %qr, %sum : tensor<16xi8>, tensor<2x3xf32>, tensor<14xi8>, tensor<2x3xf32>, tensor<2x3xf32>
}
