//===- KilnAttentionOps.td - rotary embeddings and attention -------------===//

#ifndef KILN_ATTENTION_OPS_TD
#define KILN_ATTENTION_OPS_TD

include "dialects/kiln/KilnAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_RopeOp : Kiln_Op<"rope", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>, AllTypesMatch<["x", "result"]>]> {
  let summary = "Rotary position embedding (RoPE), optionally YaRN-scaled";
  let description = [{
    `x` is [batch, seq, heads, d] with `d` even; position `p` is the sequence
    index (0-based). With `inv_freq[i] = theta^(-2i/d)` for i in [0, d/2)
    (or the YaRN frequencies when `yarn` is present, see `#kiln.yarn`),
    `a = p * inv_freq[i]` and the YaRN magnitude factor `m` (1 without YaRN),
    pair `i` is rotated:

    ```
    (x0, x1) -> (m (x0 cos a - x1 sin a), m (x1 cos a + x0 sin a))
    interleaved = true:  x0 = x[2i],  x1 = x[2i+1]      (DeepSeek-V3)
    interleaved = false: x0 = x[i],   x1 = x[i + d/2]   (Llama, rotate_half)
    ```

    With the optional `start` ([batch], i32; a decode program's chunk), the
    position of `x[b, s]` is `start[b] + s` instead.

    Results are written back to the same positions. With `transpose = true`
    the op applies the transpose of that linear map, the rotation by `-a`
    (same magnitude `m`): the input gradient of a rope is the transposed rope
    of the output gradient.

    ```mlir
    %q = kiln.rope %q_pe {theta = 10000.0 : f64, interleaved = true,
                          yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 32,
                                 beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>}
        : tensor<4x32x4x8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Optional<Kiln_IntTensor>:$start, F64Attr:$theta,
                       BoolAttr:$interleaved, OptionalAttr<Kiln_YarnAttr>:$yarn,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x (`start` $start^ `:` type($start))? attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Kiln_AttentionOp : Kiln_Op<"attention", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Scaled dot-product softmax attention (causal), GQA and MLA shapes";
  let description = [{
    `q` is [batch, seq, heads, d_qk], `k` is [batch, seq, kv_heads, d_qk] and
    `v` is [batch, seq, kv_heads, d_v]; `heads` must be a multiple of
    `kv_heads` and query head `h` reads kv head `h / (heads / kv_heads)`.
    `d_qk` and `d_v` may differ (MLA: d_qk = qk_nope + qk_rope, d_v = v_head_dim).

    ```
    s[b,h,i,j] = scale * sum_d q[b,i,h,d] k[b,j,g(h),d]      (j <= i when causal)
    p = softmax_j(s)
    result[b,i,h,e] = sum_j p[b,h,i,j] v[b,j,g(h),e]
    ```

    ```mlir
    %o = kiln.attention %q, %k, %v {scale = 0.2041 : f64, causal = true}
        : (tensor<4x32x4x24xf32>, tensor<4x32x4x24xf32>, tensor<4x32x4x16xf32>)
        -> tensor<4x32x4x16xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$q, Kiln_FloatTensor:$k, Kiln_FloatTensor:$v,
                       F64Attr:$scale, DefaultValuedAttr<BoolAttr, "true">:$causal);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$q `,` $k `,` $v attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_ATTENTION_OPS_TD
