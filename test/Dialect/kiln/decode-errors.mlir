// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the KV-cache ops (KilnDecodeOps.cpp) and
// of rope's start operand, in the generic syntax.

func.func @rope_start_shape(%x: tensor<2x1x4x16xf32>, %s: tensor<3xi32>) {
  // expected-error @+1 {{expects start of shape [2], got [3]}}
  %0 = "kiln.rope"(%x, %s) {theta = 10000.0 : f64, interleaved = false} : (tensor<2x1x4x16xf32>, tensor<3xi32>) -> tensor<2x1x4x16xf32>
  return
}

// -----

func.func @cache_rank(%c: tensor<2x32xf32>, %r: tensor<2x1xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects cache ([batch, max_len, d...]) of rank >= 3, got [2, 32]}}
  %0 = "kiln.cache_write"(%c, %r, %s) : (tensor<2x32xf32>, tensor<2x1xf32>, tensor<2xi32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @cache_rows_rank(%c: tensor<2x32x16xf32>, %r: tensor<2x1x2x8xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects rows ([batch, chunk, d...]) of the cache's rank 3, got [2, 1, 2, 8]}}
  %0 = "kiln.cache_write"(%c, %r, %s) : (tensor<2x32x16xf32>, tensor<2x1x2x8xf32>, tensor<2xi32>) -> tensor<2x32x16xf32>
  return
}

// -----

func.func @cache_rows_width(%c: tensor<2x32x16xf32>, %r: tensor<2x1x8xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects rows of shape [2, 1, 16], got [2, 1, 8]}}
  %0 = "kiln.cache_write"(%c, %r, %s) : (tensor<2x32x16xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x32x16xf32>
  return
}

// -----

func.func @cache_chunk_too_long(%c: tensor<2x4x16xf32>, %r: tensor<2x5x16xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects a chunk of at most max_len = 4 rows, got 5}}
  %0 = "kiln.cache_write"(%c, %r, %s) : (tensor<2x4x16xf32>, tensor<2x5x16xf32>, tensor<2xi32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @cache_start_shape(%c: tensor<2x32x16xf32>, %r: tensor<2x1x16xf32>, %s: tensor<1xi32>) {
  // expected-error @+1 {{expects start of shape [2], got [1]}}
  %0 = "kiln.cache_write"(%c, %r, %s) : (tensor<2x32x16xf32>, tensor<2x1x16xf32>, tensor<1xi32>) -> tensor<2x32x16xf32>
  return
}

// -----

func.func @cached_attention_heads(%q: tensor<2x1x3x16xf32>, %k: tensor<2x32x2x16xf32>, %v: tensor<2x32x2x16xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects the 3 query heads to be a multiple of the 2 kv heads}}
  %0 = "kiln.cached_attention"(%q, %k, %v, %s) {scale = 0.25 : f64} : (tensor<2x1x3x16xf32>, tensor<2x32x2x16xf32>, tensor<2x32x2x16xf32>, tensor<2xi32>) -> tensor<2x1x3x16xf32>
  return
}

// -----

func.func @cached_attention_key_width(%q: tensor<2x1x4x16xf32>, %k: tensor<2x32x2x8xf32>, %v: tensor<2x32x2x16xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects k of shape [2, 32, 2, 16], got [2, 32, 2, 8]}}
  %0 = "kiln.cached_attention"(%q, %k, %v, %s) {scale = 0.25 : f64} : (tensor<2x1x4x16xf32>, tensor<2x32x2x8xf32>, tensor<2x32x2x16xf32>, tensor<2xi32>) -> tensor<2x1x4x16xf32>
  return
}

// -----

func.func @cached_attention_chunk(%q: tensor<2x8x4x16xf32>, %k: tensor<2x4x2x16xf32>, %v: tensor<2x4x2x16xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects a chunk of at most max_len = 4 queries, got 8}}
  %0 = "kiln.cached_attention"(%q, %k, %v, %s) {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x4x2x16xf32>, tensor<2x4x2x16xf32>, tensor<2xi32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @cached_attention_scale(%q: tensor<2x1x4x16xf32>, %k: tensor<2x32x2x16xf32>, %v: tensor<2x32x2x16xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects scale > 0, got 0}}
  %0 = "kiln.cached_attention"(%q, %k, %v, %s) {scale = 0.0 : f64} : (tensor<2x1x4x16xf32>, tensor<2x32x2x16xf32>, tensor<2x32x2x16xf32>, tensor<2xi32>) -> tensor<2x1x4x16xf32>
  return
}

// -----

func.func @cached_attention_result(%q: tensor<2x1x4x16xf32>, %k: tensor<2x32x2x16xf32>, %v: tensor<2x32x2x8xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{expects result of shape [2, 1, 4, 8], got [2, 1, 4, 16]}}
  %0 = "kiln.cached_attention"(%q, %k, %v, %s) {scale = 0.25 : f64} : (tensor<2x1x4x16xf32>, tensor<2x32x2x16xf32>, tensor<2x32x2x8xf32>, tensor<2xi32>) -> tensor<2x1x4x16xf32>
  return
}

// -----

func.func @head_matmul_weight(%x: tensor<2x1x4x16xf32>, %w: tensor<4x8x32xf32>) {
  // expected-error @+1 {{expects weight ([heads, n, k]) of shape [4, 8, 16], got [4, 8, 32]}}
  %0 = "kiln.head_matmul"(%x, %w) : (tensor<2x1x4x16xf32>, tensor<4x8x32xf32>) -> tensor<2x1x4x8xf32>
  return
}

// -----

func.func @head_matmul_transposed(%x: tensor<2x1x4x16xf32>, %w: tensor<4x8x32xf32>) {
  // expected-error @+1 {{expects weight ([heads, k, n]) of shape [4, 16, 32], got [4, 8, 32]}}
  %0 = "kiln.head_matmul"(%x, %w) {transpose_weight = true} : (tensor<2x1x4x16xf32>, tensor<4x8x32xf32>) -> tensor<2x1x4x32xf32>
  return
}
