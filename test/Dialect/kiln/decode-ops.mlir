// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// The KV-cache ops of a decode program (KilnDecodeOps.td) and rope with
// per-row start positions round-trip through the custom assembly.

// CHECK-LABEL: func.func @gqa_decode_step
func.func @gqa_decode_step(%q: tensor<2x1x4x16xf32>, %k: tensor<2x1x2x16xf32>,
                           %v: tensor<2x1x2x16xf32>, %kc: tensor<2x32x2x16xf32>,
                           %vc: tensor<2x32x2x16xf32>, %start: tensor<2xi32>)
    -> tensor<2x1x4x16xf32> {
  // CHECK: %[[Q:.*]] = kiln.rope %{{.*}} start %{{.*}} : tensor<2xi32> {interleaved = false, theta = 1.000000e+04 : f64} : tensor<2x1x4x16xf32>
  %qr = kiln.rope %q start %start : tensor<2xi32> {theta = 10000.0 : f64, interleaved = false} : tensor<2x1x4x16xf32>
  // CHECK: %[[K:.*]] = kiln.cache_write %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x32x2x16xf32>, tensor<2x1x2x16xf32>, tensor<2xi32>) -> tensor<2x32x2x16xf32>
  %k2 = kiln.cache_write %kc, %k, %start : (tensor<2x32x2x16xf32>, tensor<2x1x2x16xf32>, tensor<2xi32>) -> tensor<2x32x2x16xf32>
  %v2 = kiln.cache_write %vc, %v, %start : (tensor<2x32x2x16xf32>, tensor<2x1x2x16xf32>, tensor<2xi32>) -> tensor<2x32x2x16xf32>
  // CHECK: kiln.cached_attention %[[Q]], %[[K]], %{{.*}}, %{{.*}} {scale = 2.500000e-01 : f64}
  %o = kiln.cached_attention %qr, %k2, %v2, %start {scale = 0.25 : f64}
      : (tensor<2x1x4x16xf32>, tensor<2x32x2x16xf32>, tensor<2x32x2x16xf32>, tensor<2xi32>) -> tensor<2x1x4x16xf32>
  return %o : tensor<2x1x4x16xf32>
}

// CHECK-LABEL: func.func @mla_absorb
func.func @mla_absorb(%q_nope: tensor<2x3x4x16xf32>, %w_uk: tensor<4x16x32xf32>,
                      %o_latent: tensor<2x3x4x32xf32>, %w_uv: tensor<4x16x32xf32>)
    -> (tensor<2x3x4x32xf32>, tensor<2x3x4x16xf32>) {
  // CHECK: kiln.head_matmul %{{.*}}, %{{.*}} {transpose_weight = true} : (tensor<2x3x4x16xf32>, tensor<4x16x32xf32>) -> tensor<2x3x4x32xf32>
  %ql = kiln.head_matmul %q_nope, %w_uk {transpose_weight = true}
      : (tensor<2x3x4x16xf32>, tensor<4x16x32xf32>) -> tensor<2x3x4x32xf32>
  // CHECK: kiln.head_matmul %{{.*}}, %{{.*}} : (tensor<2x3x4x32xf32>, tensor<4x16x32xf32>) -> tensor<2x3x4x16xf32>
  %o = kiln.head_matmul %o_latent, %w_uv : (tensor<2x3x4x32xf32>, tensor<4x16x32xf32>) -> tensor<2x3x4x16xf32>
  return %ql, %o : tensor<2x3x4x32xf32>, tensor<2x3x4x16xf32>
}
