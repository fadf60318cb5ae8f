//===- Precision.h - host kernels of the FP8 quantize and GEMM ops ---------===//
//
// The kernels of KilnPrecisionOps.td. A quantized tensor is a matrix [rows,
// cols] cut into tiles [tileRows, tileCols] with one f32 scale each
// (dialects/kiln/Fp8Tiling.h); the scale arithmetic and the rounding are
// PrecisionMath.h's. Exactness, per kernel:
//
//   quantizeFp8, dequantizeFp8,  exact: the same bits as the as-typed
//   quantizeFp8Grouped
//                                evaluator (one f32 multiply and one
//                                rounding per element);
//   scaledMatmul                 each 128-wide K block is an f32 GEMM of
//                                e4m3 values (their products are exact in
//                                f32, as in a bf16 GEMM), scaled and added
//                                in f32; only the summation order differs
//                                from the evaluator, so the results agree to
//                                f32 accumulation error (|error| <= about
//                                K * 2^-24 * sum |terms|), then one rounding
//                                to the output type;
//   scaledGroupedMatmul,         scaledMatmul per expert over its rows:
//   scaledGroupedMatmulWgrad     the same bound, K being the expert's rows
//                                for the weight gradient.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_PRECISION_H
#define KILN_RUNTIME_PRECISION_H

#include "runtime/kernels/KernelCheck.h"
#include "runtime/kernels/PrecisionMath.h"

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// The tiling of one quantized matrix [rows, cols], or of `matrices` stacked
/// matrices [rows / matrices, cols] each tiled alone (dialects/kiln/Fp8Tiling.h).
struct Fp8Tiles {
  int64_t rows, cols, tileRows, tileCols;
  int64_t matrices = 1;
};

/// Stops with a message unless `t` is a tiling (the host and CUDA
/// launchers' shape check).
inline void checkFp8Tiles(const Fp8Tiles &t) {
  KILN_KERNEL_CHECK(t.rows >= 0 && t.cols >= 0 && t.tileRows > 0 && t.tileCols > 0 &&
                        t.matrices > 0 && t.rows % t.matrices == 0,
                    "expects %lld matrices of [%lld / %lld, %lld] in tiles of [%lld, %lld], "
                    "sizes >= 0, tiles and matrices > 0",
                    (long long)t.matrices, (long long)t.rows, (long long)t.matrices,
                    (long long)t.cols, (long long)t.tileRows, (long long)t.tileCols);
}

/// kiln.quantize_fp8: `values` [rows, cols] and `scales` [ceil(rows /
/// tileRows), ceil(cols / tileCols)] from `x`. In is float, Bf16 or F16.
template <typename In>
void quantizeFp8(E4m3 *values, float *scales, const In *x, Fp8Tiles tiles);

/// kiln.dequantize_fp8: out = f32(values) * scale of its tile, stored as Out
/// (float, Bf16 or F16).
template <typename Out>
void dequantizeFp8(Out *out, const E4m3 *values, const float *scales, Fp8Tiles tiles);

/// One operand of kiln.scaled_matmul: `values` as stored (tiles.rows x
/// tiles.cols) with its scales; `kMajor` when it is stored [K, other]
/// rather than [other, K].
struct ScaledOperand {
  const E4m3 *values;
  const float *scales;
  Fp8Tiles tiles;
  bool kMajor;
};

/// kiln.scaled_matmul: out [m, n] = sum over 128-wide K blocks of
/// (lhs' block @ rhs' block) * lhs scale * rhs scale, with lhs' [m, k] and
/// rhs' [k, n]. Out is float, Bf16 or F16.
template <typename Out>
void scaledMatmul(Out *out, ScaledOperand lhs, ScaledOperand rhs, int64_t m, int64_t n,
                  int64_t k);

/// kiln.quantize_fp8_grouped: `x` [rows, cols] sorted by expert, tiles of
/// [tileRows, tileCols] restarting at each expert's first row; `scales` is
/// [fp8GroupedScaleRows(rows, experts, tileRows), ceil(cols / tileCols)],
/// 0 where no tile is, and rows from offsets[experts] on quantize to 0.
/// False with *error set for bad offsets.
template <typename In>
bool quantizeFp8Grouped(E4m3 *values, float *scales, const In *x, const int32_t *offsets,
                        int64_t rows, int64_t cols, int64_t experts, int64_t tileRows,
                        int64_t tileCols, std::string *error);

/// kiln.scaled_grouped_matmul: out [rows, n] from lhs [rows, k] in [1, 128]
/// tiles and the stacked weights [experts, wRows, wCols] in per-expert
/// [128, 128] blocks, read as [n, k] (transposeRhs) or [k, n]; rows from
/// offsets[experts] on are 0.
template <typename Out>
bool scaledGroupedMatmul(Out *out, const E4m3 *lhs, const float *lhsScales, const E4m3 *weight,
                         const float *weightScales, const int32_t *offsets, int64_t rows,
                         int64_t k, int64_t experts, int64_t wRows, int64_t wCols,
                         bool transposeRhs, std::string *error);

/// kiln.scaled_grouped_matmul_wgrad: out [experts, n, k] = per expert, dy^T x
/// over its rows, dy [rows, n] and x [rows, k] from quantizeFp8Grouped with
/// [128, 1] tiles.
template <typename Out>
bool scaledGroupedMatmulWgrad(Out *out, const E4m3 *dy, const float *dyScales, const E4m3 *x,
                              const float *xScales, const int32_t *offsets, int64_t rows,
                              int64_t n, int64_t k, int64_t experts, std::string *error);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_PRECISION_H
