//===- KilnPrecisionOps.td - FP8 block quantization and scaled GEMMs ------===//
//
// DeepSeek-V3's FP8 recipe (technical report 3.3) as explicit ops: a tensor
// is quantized to f8E4M3FN with one f32 scale per tile, and GEMMs read the
// quantized operands with their scales, applying the scales in f32 once per
// 128-wide block of the contracted dimension. Conversions between f32, bf16
// and f16 need no op of their own: they are arith.truncf / arith.extf on
// tensors.
//
// The scale arithmetic is fixed here and in runtime/kernels/PrecisionMath.h:
//
//   amax   = max |x| over the tile, floored at 1e-4 (an all-zero tile still
//            has a finite scale; a NaN in the tile makes it NaN);
//   factor = 448 / amax, rounded to f32;
//   q      = e4m3(x * factor)    one f32 multiply, then round to nearest
//                                even, saturating to +-448;
//   scale  = amax / 448, rounded to f32;   x ~ f32(q) * scale.
//
// Peers differ at rounding boundaries: DeepGEMM multiplies by the factor as
// above, Transformer Engine's delayed scaling divides by a stored scale.
// Kiln multiplies, so its quantized tensors are DeepSeek's.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PRECISION_OPS_TD
#define KILN_PRECISION_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_Fp8Tensor : StaticShapeTensorOf<[F8E4M3FN]>;
def Kiln_ScaleMatrix : StaticShapeTensorOf<[F32]>;

def Kiln_QuantizeFp8Op : Kiln_Op<"quantize_fp8", [Pure]> {
  let summary = "Block-scaled quantization to f8E4M3FN";
  let description = [{
    `x` is seen as a matrix [R, C]: C is its last dimension, R the product of
    the others (1 for a vector). The matrix is cut into tiles of
    `block = [rows, cols]` (the last tiles of a dimension may be partial),
    and each tile gets one f32 scale from its own amax (see the file
    comment for the arithmetic):

        values[r, c]               = e4m3(x[r, c] * (448 / amax(tile)))
        scales[r / rows, c / cols] = amax(tile) / 448

    `values` has the shape of `x`; `scales` is [ceil(R / rows),
    ceil(C / cols)]. DeepSeek-V3 uses [1, 128] for activations (one scale per
    token and 128 channels), [128, 128] for weights, and [128, 1] for the
    activations and output gradients a weight gradient contracts over tokens.

    `block = [1, rows, cols]` on a rank-3 tensor [B, R, C] tiles each of the
    B matrices [R, C] alone, and `scales` is [B, ceil(R / rows),
    ceil(C / cols)]: stacked expert weights [experts, N, K] in [1, 128, 128]
    blocks, so that no block mixes two experts.

    In the evaluator's ideal mode `values` keeps the exact product
    `x * factor` (the factor itself is still rounded to f32); in the
    as-typed mode it is rounded to e4m3 as the kernels store it.

    ```mlir
    %q, %s = kiln.quantize_fp8 %x {block = array<i64: 1, 128>}
        : tensor<128x256xf32> -> tensor<128x256xf8E4M3FN>, tensor<128x2xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, DenseI64ArrayAttr:$block);
  let results = (outs Kiln_Fp8Tensor:$values, Kiln_ScaleMatrix:$scales);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($values) `,` type($scales)";
  let hasVerifier = 1;
}

def Kiln_DequantizeFp8Op : Kiln_Op<"dequantize_fp8", [Pure]> {
  let summary = "f8E4M3FN values times their block scales";
  let description = [{
    The inverse of `kiln.quantize_fp8` up to its rounding:
    `result[r, c] = f32(values[r, c]) * scales[r / rows, c / cols]` with
    `values` seen as [R, C] as there, one f32 multiply per element, then
    stored in the result's element type (f32, bf16 or f16).

    ```mlir
    %x = kiln.dequantize_fp8 %q, %s {block = array<i64: 1, 128>}
        : tensor<128x256xf8E4M3FN>, tensor<128x2xf32> -> tensor<128x256xf32>
    ```
  }];
  let arguments = (ins Kiln_Fp8Tensor:$values, Kiln_ScaleMatrix:$scales,
                       DenseI64ArrayAttr:$block);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $values `,` $scales attr-dict `:` type($values) `,` type($scales) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Kiln_ScaledMatmulOp : Kiln_Op<"scaled_matmul", [Pure]> {
  let summary = "FP8 GEMM with block scales, promoted to f32 every 128 of K";
  let description = [{
    `lhs` is [M, K] ([K, M] with `transpose_lhs`) and `rhs` is [K, N]
    ([N, K] with `transpose_rhs`), both f8E4M3FN with the f32 scales of
    their `kiln.quantize_fp8` tiles (`lhs_block`, `rhs_block`, given in the
    operand's own layout). Both tilings must cut K into the same 128-wide
    blocks, so that each scale is one number per K block:

        result[m, n] = sum over K blocks b of
                         (sum_{k in b} lhs'[m, k] * rhs'[k, n])
                         * (lhs_scale(m, b) * rhs_scale(b, n))

    The inner sums are exact products of e4m3 values accumulated in f32; the
    scaled block sums are accumulated in f32 (DeepSeek-V3's promotion to
    CUDA cores every 128 elements of K, as in DeepGEMM). The result is stored
    in its element type (f32 or bf16).

    The three GEMMs of a linear layer `y = x W^T` in DeepSeek-V3's recipe:

        Fprop  y  = scaled_matmul(x [1,128], W [128,128], transpose_rhs)
        Dgrad  dx = scaled_matmul(dy [1,128], W [128,128])
        Wgrad  dW = scaled_matmul(dy [128,1], x [128,1], transpose_lhs)

    ```mlir
    %y = kiln.scaled_matmul %xq, %xs, %wq, %ws
        {lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>,
         transpose_rhs = true}
        : (tensor<128x256xf8E4M3FN>, tensor<128x2xf32>,
           tensor<512x256xf8E4M3FN>, tensor<4x2xf32>) -> tensor<128x512xf32>
    ```
  }];
  let arguments = (ins Kiln_Fp8Tensor:$lhs, Kiln_ScaleMatrix:$lhs_scales,
                       Kiln_Fp8Tensor:$rhs, Kiln_ScaleMatrix:$rhs_scales,
                       DenseI64ArrayAttr:$lhs_block, DenseI64ArrayAttr:$rhs_block,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $lhs_scales `,` $rhs `,` $rhs_scales attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_QuantizeFp8GroupedOp : Kiln_Op<"quantize_fp8_grouped", [Pure]> {
  let summary = "Block-scaled quantization of expert-sorted rows, tiles within each expert";
  let description = [{
    `x` is [rows, C] sorted by expert with `offsets` [experts + 1] from
    `kiln.dispatch` (as for `kiln.grouped_matmul`). The quantization and
    its arithmetic are `kiln.quantize_fp8`'s, but the row tiles restart at
    each expert's first row: tile t of expert e covers rows
    `offsets[e] + t * rows` up to the next tile or `offsets[e+1]`, so a
    weight gradient that contracts expert e's rows in 128-row K blocks finds
    one scale per block (DeepSeek-V3's 128x1 tiles of the MoE Wgrad).

    The scales are [rows / block_rows + experts, ceil(C / cols)] (rows /
    block_rows rounded down): expert e's tile t is at scale row
    `offsets[e] / block_rows + e + t`, a position each expert finds from its
    own offset (runtime/kernels/PrecisionMath.h shows the tiles of two
    experts never share a row). Scale rows that no tile uses are 0, and rows
    from `offsets[experts]` on (receive-buffer capacity) quantize to 0.

    ```mlir
    %q, %s = kiln.quantize_fp8_grouped %dy, %offsets {block = array<i64: 128, 1>}
        : tensor<256x32xf32>, tensor<9xi32> -> tensor<256x32xf8E4M3FN>, tensor<10x32xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_IntTensor:$offsets,
                       DenseI64ArrayAttr:$block);
  let results = (outs Kiln_Fp8Tensor:$values, Kiln_ScaleMatrix:$scales);
  let assemblyFormat = [{
    $x `,` $offsets attr-dict `:` type($x) `,` type($offsets) `->` type($values) `,` type($scales)
  }];
  let hasVerifier = 1;
}

def Kiln_ScaledGroupedMatmulOp : Kiln_Op<"scaled_grouped_matmul", [Pure]> {
  let summary = "FP8 per-expert GEMMs over expert-sorted rows, with block scales";
  let description = [{
    The FP8 form of `kiln.grouped_matmul` (Fprop) and
    `kiln.grouped_matmul_dgrad` (Dgrad). `lhs` is [rows, K] sorted by
    expert, quantized in [1, 128] tiles (a row never spans two experts);
    `rhs` is the stacked expert weights [experts, N, K] with `transpose_rhs`
    (Fprop) or [experts, K, N] without (Dgrad), quantized per expert in
    [1, 128, 128] blocks. For offsets[e] <= r < offsets[e+1]:

        result[r, n] = sum over K blocks b of
                         (sum_{k in b} lhs[r, k] * rhs'[e, k, n])
                         * (lhs_scale(r, b) * rhs_scale(e, b, n))

    promoted to f32 every 128 of K exactly as `kiln.scaled_matmul`; rows
    from offsets[experts] on are 0. `offsets` must be non-decreasing, start
    at 0 and end at most at `rows`.

    ```mlir
    %h = kiln.scaled_grouped_matmul %xq, %xs, %wq, %ws, %offsets {transpose_rhs = true}
        : (tensor<256x64xf8E4M3FN>, tensor<256x1xf32>, tensor<8x32x64xf8E4M3FN>,
           tensor<8x1x1xf32>, tensor<9xi32>) -> tensor<256x32xf32>
    ```
  }];
  let arguments = (ins Kiln_Fp8Tensor:$lhs, Kiln_ScaleMatrix:$lhs_scales,
                       Kiln_Fp8Tensor:$rhs, Kiln_ScaleMatrix:$rhs_scales,
                       Kiln_IntTensor:$offsets,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $lhs_scales `,` $rhs `,` $rhs_scales `,` $offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_ScaledGroupedMatmulWgradOp : Kiln_Op<"scaled_grouped_matmul_wgrad", [Pure]> {
  let summary = "FP8 per-expert weight gradients over expert-sorted rows";
  let description = [{
    The FP8 form of `kiln.grouped_matmul_wgrad`: `dy` [rows, N] and `x`
    [rows, K], both from `kiln.quantize_fp8_grouped` with [128, 1] tiles
    and the same `offsets`, so that each expert's rows are contracted in
    128-row K blocks with one scale per block, column and operand:

        result[e, n, k] = sum over expert e's row blocks b of
                            (sum_{r in b} dy[r, n] * x[r, k])
                            * (dy_scale(b, n) * x_scale(b, k))

    promoted to f32 per block as `kiln.scaled_matmul`; an expert with no
    rows gets 0. The result is [experts, N, K].

    ```mlir
    %dw = kiln.scaled_grouped_matmul_wgrad %dyq, %dys, %xq, %xs, %offsets
        : (tensor<256x32xf8E4M3FN>, tensor<10x32xf32>, tensor<256x64xf8E4M3FN>,
           tensor<10x64xf32>, tensor<9xi32>) -> tensor<8x32x64xf32>
    ```
  }];
  let arguments = (ins Kiln_Fp8Tensor:$dy, Kiln_ScaleMatrix:$dy_scales,
                       Kiln_Fp8Tensor:$x, Kiln_ScaleMatrix:$x_scales,
                       Kiln_IntTensor:$offsets);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$dy `,` $dy_scales `,` $x `,` $x_scales `,` $offsets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_PRECISION_OPS_TD
