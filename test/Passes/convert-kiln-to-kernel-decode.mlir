// RUN: kiln-opt %s -split-input-file --convert-kiln-to-kernel=entry=decode | FileCheck %s

// A decode program (frontend/DecodeGen.cpp): kiln.cache_write updates its
// cache argument in place, the kv_cache results need no copy, and the
// logits become an output argument.

// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[CACHE:[^:]*]]: memref<2x8x4xf32> {kiln.cache = "model.layers.0.self_attn.kv_latent"}
// CHECK-SAME: %[[OUT:[^:]*]]: memref<2x1x4xf32> {kiln.output = "logits"})
// CHECK: kiln_kernel.launch "cache_write"(%[[CACHE]], %{{.*}}, %{{.*}} : memref<2x8x4xf32>, memref<2x1x4xf32>, memref<2xi32>) -> (%[[CACHE]] : memref<2x8x4xf32>)
// CHECK: %[[K:.*]] = kiln_kernel.reshape %[[CACHE]] : memref<2x8x4xf32> to memref<2x8x1x4xf32>
// CHECK: kiln_kernel.launch "cached_attention"(%{{.*}}, %[[K]], %[[K]], %{{.*}} : {{.*}}) -> (%{{.*}} : memref<2x1x1x4xf32>)
// The logits (a reshape of the attention here) are copied out; the cache is not.
// CHECK: kiln_kernel.elementwise(%{{.*}} : memref<2x1x4xf32>) -> (%[[OUT]] : memref<2x1x4xf32>) origin ["copy"]
// CHECK-NOT: kiln_kernel.elementwise
// CHECK: return
func.func @decode(%rows: tensor<2x1x4xf32> {kiln.input = "tokens"},
                  %start: tensor<2xi32> {kiln.input = "positions"},
                  %cache: tensor<2x8x4xf32> {kiln.cache = "model.layers.0.self_attn.kv_latent"})
    -> (tensor<2x1x4xf32> {kiln.result = "logits"},
        tensor<2x8x4xf32> {kiln.cache = "model.layers.0.self_attn.kv_latent", kiln.result = "kv_cache"}) {
  %c = kiln.cache_write %cache, %rows, %start
      : (tensor<2x8x4xf32>, tensor<2x1x4xf32>, tensor<2xi32>) -> tensor<2x8x4xf32>
  %q = tensor.expand_shape %rows [[0], [1], [2, 3]] output_shape [2, 1, 1, 4]
      : tensor<2x1x4xf32> into tensor<2x1x1x4xf32>
  %k = tensor.expand_shape %c [[0], [1], [2, 3]] output_shape [2, 8, 1, 4]
      : tensor<2x8x4xf32> into tensor<2x8x1x4xf32>
  %o = kiln.cached_attention %q, %k, %k, %start {scale = 0.5 : f64}
      : (tensor<2x1x1x4xf32>, tensor<2x8x1x4xf32>, tensor<2x8x1x4xf32>, tensor<2xi32>) -> tensor<2x1x1x4xf32>
  %l = tensor.collapse_shape %o [[0], [1], [2, 3]] : tensor<2x1x1x4xf32> into tensor<2x1x4xf32>
  return %l, %c : tensor<2x1x4xf32>, tensor<2x8x4xf32>
}
