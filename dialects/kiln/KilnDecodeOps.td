//===- KilnDecodeOps.td - KV caches and attention over them ---------------===//
//
// The ops a decode program (frontend/DecodeGen.cpp) adds to the training
// forward's: writing a chunk of keys/values (or MLA's latent) into a
// per-row cache, attention of a chunk of queries over that cache, and the
// per-head matmul that MLA's weight absorption needs. Rows advance
// independently: `start[b]` is the position of row b's first token in the
// chunk, so rows of different prompt lengths share one static shape. None of
// these ops is differentiable: decoding never trains.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DECODE_OPS_TD
#define KILN_DECODE_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_CacheWriteOp : Kiln_Op<"cache_write", [Pure]> {
  let summary = "Writes a chunk of per-token rows into a per-row cache";
  let description = [{
    `cache` is [batch, max_len, d...] and `rows` [batch, chunk, d...] with
    the same trailing dimensions; `start` is [batch] (i32). The result is the
    cache with `rows[b, c]` written at position `start[b] + c`:

    ```
    result = cache;  result[b, start[b] + c, ...] = rows[b, c, ...]
    ```

    Every `start[b] + chunk` must be at most `max_len`; the evaluator and the
    kernel reject a row that would write past the cache. Positions past a
    row's own tokens may hold anything: attention over the cache
    (`kiln.cached_attention`) reads position `j` of row `b` only from the
    query at `j` on, and a row always writes a position before it reads it.
    On buffers the update is in place when `cache` is an argument nothing
    reads afterwards.

    ```mlir
    %c = kiln.cache_write %cache, %latent, %start
        : (tensor<4x64x16xf32>, tensor<4x1x16xf32>, tensor<4xi32>) -> tensor<4x64x16xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$cache, Kiln_FloatTensor:$rows, Kiln_IntTensor:$start);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$cache `,` $rows `,` $start attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_CachedAttentionOp : Kiln_Op<"cached_attention", [Pure]> {
  let summary = "Causal softmax attention of a chunk of queries over a KV cache";
  let description = [{
    `q` is [batch, chunk, heads, d_qk]; `k` is [batch, max_len, kv_heads, d_qk]
    and `v` [batch, max_len, kv_heads, d_v], caches already holding the
    chunk's own keys and values; `start` is [batch] (i32). Query `c` of row
    `b` sits at position `p = start[b] + c` and attends keys `0..p` of its
    row, query head `h` reading kv head `h / (heads / kv_heads)`:

    ```
    s[b,h,c,j] = scale * sum_d q[b,c,h,d] k[b,j,g(h),d]      for j <= start[b] + c
    result[b,c,h,e] = sum_j softmax_j(s)[b,h,c,j] v[b,j,g(h),e]
    ```

    With `start = 0` and `chunk = max_len` this is `kiln.attention` with
    `causal = true`; the evaluator and the kernels share its per-row math.
    MLA's absorbed form is this op with one kv head whose key is
    [latent | rotary key] and whose value is the latent.

    ```mlir
    %o = kiln.cached_attention %q, %k, %v, %start {scale = 0.2041 : f64}
        : (tensor<4x1x4x24xf32>, tensor<4x64x1x24xf32>, tensor<4x64x1x16xf32>, tensor<4xi32>)
        -> tensor<4x1x4x16xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$q, Kiln_FloatTensor:$k, Kiln_FloatTensor:$v,
                       Kiln_IntTensor:$start, F64Attr:$scale);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$q `,` $k `,` $v `,` $start attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_HeadMatmulOp : Kiln_Op<"head_matmul", [Pure]> {
  let summary = "One matmul per attention head: x[..., h, :] times weight[h]";
  let description = [{
    `x` is [batch, seq, heads, k]. With `transpose_weight = false` the weight
    is [heads, n, k] (each head's slice in the Hugging Face [out, in] layout)
    and `result[b,s,h,n] = sum_k x[b,s,h,k] weight[h,n,k]`; with
    `transpose_weight = true` it is [heads, k, n] and
    `result[b,s,h,n] = sum_k x[b,s,h,k] weight[h,k,n]`.

    MLA's weight absorption uses both forms on slices of `kv_b_proj`: the
    query's no-rope part times W_UK[h] ([qk_nope, kv_lora], transposed) gives
    a query in latent space, and the attention output in latent space times
    W_UV[h] ([v_head, kv_lora]) gives each head's value output.

    ```mlir
    %ql = kiln.head_matmul %q_nope, %w_uk {transpose_weight = true}
        : (tensor<4x1x4x16xf32>, tensor<4x16x32xf32>) -> tensor<4x1x4x32xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_FloatTensor:$weight,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_weight);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_DECODE_OPS_TD
