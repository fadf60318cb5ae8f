//===- HostKernelsPrecisionTest.cpp - FP8 host kernels vs the evaluator ----===//
//
// runtime/kernels/Precision.h against the as-typed reference evaluator
// running the matching kiln op on the same inputs:
//
//   quantize_fp8, dequantize_fp8   bit for bit (values, scales, results),
//                                  for f32 and bf16 inputs and outputs, the
//                                  three tilings of DeepSeek-V3's recipe with
//                                  partial tiles, and tiles holding a NaN, an
//                                  inf, only zeros or only tiny values;
//   scaled_matmul                  Fprop, Dgrad and Wgrad layouts with three
//                                  K blocks (one partial): within f32
//                                  accumulation error of the evaluator's f64
//                                  sum (kTolerance of the largest |result|),
//                                  and bf16 results within one bf16 ulp;
//   the expert forms               per-expert weight blocks and grouped
//                                  128x1 tiles bit for bit, the grouped
//                                  Fprop, Dgrad and Wgrad as scaled_matmul,
//                                  over experts with partial, two and no
//                                  tiles and capacity rows; bad offsets are
//                                  refused with a message.
//
// Each kernel runs twice and must give the same bits. A last case checks
// that a bad tiling stops the kernel with a message.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Precision.h"

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "test/unit/EvaluateSource.h"
#include "dialects/kiln/reference/Parameters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

using namespace kiln::reference;
namespace kk = kiln::kernels;
using llvm::SmallVector;

namespace {

/// f32 accumulation over K = 300 terms of mixed signs, relative to the
/// largest |result| (measured: ~1e-7; the bound leaves room for any order).
constexpr double kTolerance = 2e-6;

SmallVector<RefTensor> evaluateAsTyped(const std::string &source, llvm::ArrayRef<RefTensor> args) {
  return kiln::test::evaluateSource(source, args, Rounding::AsTyped);
}

std::string ty(int64_t rows, int64_t cols, const char *element) {
  return "tensor<" + std::to_string(rows) + "x" + std::to_string(cols) + "x" + element + ">";
}

std::string blockAttr(int64_t r, int64_t c) {
  return "array<i64: " + std::to_string(r) + ", " + std::to_string(c) + ">";
}

template <typename T> RefTensor ref(const std::vector<T> &values, int64_t rows, int64_t cols) {
  RefTensor t(mlir::Type(), {rows, cols});
  for (size_t i = 0; i < values.size(); ++i)
    t.data[i] = double(kk::widen(values[i]));
  return t;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Same value, or both NaN (a NaN's sign and payload are not specified).
bool sameFloat(double a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  return a == double(b) && std::signbit(a) == std::signbit(b);
}

/// Seeded inputs of magnitudes 2^lo .. 2^hi, random signs.
std::vector<float> spread(SeededRng &rng, int64_t n, int lo, int hi) {
  std::vector<float> x(n);
  for (float &v : x) {
    double u = rng.uniform(), e = lo + (hi - lo) * rng.uniform();
    v = float((u < 0.5 ? -1 : 1) * (1 + u) * std::ldexp(1.0, int(e)));
  }
  return x;
}

struct QuantizeCase {
  const char *name;
  int64_t rows, cols, tileRows, tileCols;
  int lo, hi;
};

template <typename In> const char *elementName();
template <> const char *elementName<float>() { return "f32"; }
template <> const char *elementName<kk::Bf16>() { return "bf16"; }

template <typename In> void checkQuantizeRoundTrip(const QuantizeCase &c, std::vector<float> x) {
  SCOPED_TRACE(std::string(c.name) + " from " + elementName<In>());
  int64_t n = c.rows * c.cols;
  std::vector<In> input(n);
  for (int64_t i = 0; i < n; ++i)
    input[i] = kk::narrowTo<In>(x[i]);
  kk::Fp8Tiles tiles{c.rows, c.cols, c.tileRows, c.tileCols};
  int64_t scaleRows = ceilDiv(c.rows, c.tileRows), scaleCols = ceilDiv(c.cols, c.tileCols);
  std::vector<kk::E4m3> values(n), again(n);
  std::vector<float> scales(scaleRows * scaleCols), scalesAgain(scales.size());
  kk::quantizeFp8(values.data(), scales.data(), input.data(), tiles);
  kk::quantizeFp8(again.data(), scalesAgain.data(), input.data(), tiles);
  EXPECT_EQ(std::memcmp(values.data(), again.data(), n), 0) << "quantize is not deterministic";
  std::vector<float> wide(n);
  std::vector<kk::Bf16> narrow(n);
  kk::dequantizeFp8(wide.data(), values.data(), scales.data(), tiles);
  kk::dequantizeFp8(narrow.data(), values.data(), scales.data(), tiles);

  std::string in = ty(c.rows, c.cols, elementName<In>()), q = ty(c.rows, c.cols, "f8E4M3FN"),
              s = ty(scaleRows, scaleCols, "f32"), block = blockAttr(c.tileRows, c.tileCols);
  std::string source =
      "func.func @f(%x: " + in + ") -> (" + q + ", " + s + ", " + ty(c.rows, c.cols, "f32") +
      ", " + ty(c.rows, c.cols, "bf16") + ") {\n  %q, %s = kiln.quantize_fp8 %x {block = " +
      block + "} : " + in + " -> " + q + ", " + s + "\n  %w = kiln.dequantize_fp8 %q, %s {block = " +
      block + "} : " + q + ", " + s + " -> " + ty(c.rows, c.cols, "f32") +
      "\n  %b = kiln.dequantize_fp8 %q, %s {block = " + block + "} : " + q + ", " + s + " -> " +
      ty(c.rows, c.cols, "bf16") + "\n  return %q, %s, %w, %b : " + q + ", " + s + ", " +
      ty(c.rows, c.cols, "f32") + ", " + ty(c.rows, c.cols, "bf16") + "\n}\n";
  SmallVector<RefTensor> r = evaluateAsTyped(source, {ref(input, c.rows, c.cols)});
  ASSERT_EQ(r.size(), 4u);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    mismatches += !sameFloat(r[0].data[i], kk::widen(values[i]));
    mismatches += !sameFloat(r[2].data[i], wide[i]);
    mismatches += !sameFloat(r[3].data[i], kk::widen(narrow[i]));
  }
  for (size_t i = 0; i < scales.size(); ++i)
    mismatches += !sameFloat(r[1].data[i], scales[i]);
  EXPECT_EQ(mismatches, 0);
  std::printf("  %-44s from %-4s: %lld values, %zu scales, %lld mismatches (first: q %g s %g)\n",
              c.name, elementName<In>(), (long long)n, scales.size(), (long long)mismatches,
              kk::widen(values[0]), scales[0]);
}

// The bf16 fast paths (bit arithmetic) against the general narrowing of
// every format: every sign, exponent and mantissa of the 16 kept bits, each
// with the low halves that decide rounding (below, at and above the tie,
// both parities of the kept bit come from the high half), infinities and
// NaN payloads; then every bf16 pattern widened.
TEST(HostKernelsPrecision, Bf16FastPathsMatchTheGeneralRounding) {
  const uint32_t lows[] = {0x0000, 0x0001, 0x3FFF, 0x7FFE, 0x7FFF, 0x8000,
                           0x8001, 0xBFFF, 0xC000, 0xFFFE, 0xFFFF, 0x1234};
  int64_t checked = 0;
  for (uint32_t high = 0; high <= 0xFFFF; ++high)
    for (uint32_t low : lows) {
      const float x = kk::floatOfBits((high << 16) | low);
      const uint32_t fast = kk::bf16BitsOf(x), general = kk::narrowBitsOf(x, kk::bf16Format());
      ASSERT_EQ(fast, general) << std::hex << "f32 bits 0x" << ((high << 16) | low);
      ++checked;
    }
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const float fast = kk::floatOfBf16(uint16_t(bits)),
                general = kk::floatOfNarrowBits(bits, kk::bf16Format());
    ASSERT_EQ(kk::bitsOfFloat(fast), kk::bitsOfFloat(general)) << std::hex << "bf16 0x" << bits;
  }
  EXPECT_EQ(checked, 65536 * 12);
}

TEST(HostKernelsPrecision, QuantizeAndDequantizeMatchTheEvaluatorBitForBit) {
  SeededRng rng(11, "quantize");
  const QuantizeCase cases[] = {
      {"[1, 128] activations, partial tile", 3, 200, 1, 128, -6, 4},
      {"[128, 128] weights, partial tiles", 130, 257, 128, 128, -10, 0},
      {"[128, 1] transposed activations", 256, 3, 128, 1, -3, 9},
      {"tiny values under the amax floor", 2, 128, 1, 128, -40, -15},
  };
  for (const QuantizeCase &c : cases) {
    std::vector<float> x = spread(rng, c.rows * c.cols, c.lo, c.hi);
    checkQuantizeRoundTrip<float>(c, x);
    checkQuantizeRoundTrip<kk::Bf16>(c, x);
  }
}

TEST(HostKernelsPrecision, SpecialTilesMatchTheEvaluator) {
  // Four [1, 128] tiles: one with a NaN (the whole tile becomes NaN), one
  // with an inf (factor 0: finite values become 0, the inf NaN), one of
  // zeros (floored amax, zeros out), one ordinary.
  SeededRng rng(12, "special tiles");
  QuantizeCase c{"NaN, inf, zero and ordinary tiles", 4, 128, 1, 128, -4, 4};
  std::vector<float> x = spread(rng, 4 * 128, -4, 4);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[128 + 7] = -std::numeric_limits<float>::infinity();
  std::fill(x.begin() + 256, x.begin() + 384, 0.0f);
  checkQuantizeRoundTrip<float>(c, x);
}

struct GemmCase {
  const char *name;
  int64_t m, n, k;
  bool transposeLhs, transposeRhs;
  int64_t lhsBlock[2], rhsBlock[2];
};

template <typename Out> const char *outName();
template <> const char *outName<float>() { return "f32"; }
template <> const char *outName<kk::Bf16>() { return "bf16"; }

template <typename Out> void checkScaledMatmul(const GemmCase &c, SeededRng &rng) {
  SCOPED_TRACE(std::string(c.name) + " to " + outName<Out>());
  // Stored shapes: lhs [M, K] or [K, M], rhs [K, N] or [N, K].
  int64_t ar = c.transposeLhs ? c.k : c.m, ac = c.transposeLhs ? c.m : c.k;
  int64_t br = c.transposeRhs ? c.n : c.k, bc = c.transposeRhs ? c.k : c.n;
  auto quantized = [&](int64_t rows, int64_t cols, const int64_t *block,
                       std::vector<kk::E4m3> &q, std::vector<float> &s, int lo, int hi) {
    std::vector<float> x = spread(rng, rows * cols, lo, hi);
    q.resize(x.size());
    s.resize(ceilDiv(rows, block[0]) * ceilDiv(cols, block[1]));
    kk::quantizeFp8(q.data(), s.data(), x.data(), kk::Fp8Tiles{rows, cols, block[0], block[1]});
  };
  std::vector<kk::E4m3> a, b;
  std::vector<float> as, bs;
  quantized(ar, ac, c.lhsBlock, a, as, -4, 2);
  quantized(br, bc, c.rhsBlock, b, bs, -8, -2);
  kk::ScaledOperand lhs{a.data(), as.data(), {ar, ac, c.lhsBlock[0], c.lhsBlock[1]}, c.transposeLhs};
  kk::ScaledOperand rhs{b.data(), bs.data(), {br, bc, c.rhsBlock[0], c.rhsBlock[1]}, !c.transposeRhs};
  std::vector<Out> out(c.m * c.n), again(c.m * c.n);
  kk::scaledMatmul(out.data(), lhs, rhs, c.m, c.n, c.k);
  kk::scaledMatmul(again.data(), lhs, rhs, c.m, c.n, c.k);
  EXPECT_EQ(std::memcmp(out.data(), again.data(), out.size() * sizeof(Out)), 0)
      << "scaled_matmul is not deterministic";

  int64_t asr = ceilDiv(ar, c.lhsBlock[0]), asc = ceilDiv(ac, c.lhsBlock[1]);
  int64_t bsr = ceilDiv(br, c.rhsBlock[0]), bsc = ceilDiv(bc, c.rhsBlock[1]);
  std::string types = "(" + ty(ar, ac, "f8E4M3FN") + ", " + ty(asr, asc, "f32") + ", " +
                      ty(br, bc, "f8E4M3FN") + ", " + ty(bsr, bsc, "f32") + ")";
  std::string result = ty(c.m, c.n, outName<Out>());
  std::string source = "func.func @f(%a: " + ty(ar, ac, "f8E4M3FN") + ", %as: " +
                       ty(asr, asc, "f32") + ", %b: " + ty(br, bc, "f8E4M3FN") + ", %bs: " +
                       ty(bsr, bsc, "f32") + ") -> " + result +
                       " {\n  %y = kiln.scaled_matmul %a, %as, %b, %bs {lhs_block = " +
                       blockAttr(c.lhsBlock[0], c.lhsBlock[1]) +
                       ", rhs_block = " + blockAttr(c.rhsBlock[0], c.rhsBlock[1]) +
                       ", transpose_lhs = " + (c.transposeLhs ? "true" : "false") +
                       ", transpose_rhs = " + (c.transposeRhs ? "true" : "false") + "} : " +
                       types + " -> " + result + "\n  return %y : " + result + "\n}\n";
  SmallVector<RefTensor> r = evaluateAsTyped(
      source, {ref(a, ar, ac), ref(as, asr, asc), ref(b, br, bc), ref(bs, bsr, bsc)});
  ASSERT_EQ(r.size(), 1u);
  double largest = 0, worst = 0;
  for (double v : r[0].data)
    largest = std::max(largest, std::fabs(v));
  for (size_t i = 0; i < out.size(); ++i) {
    double got = kk::widen(out[i]), want = r[0].data[i];
    // A bf16 result may round the other way from a nearby f32 sum: allow
    // one bf16 ulp of the value on top of the accumulation error.
    double allowed = kTolerance * largest;
    if (std::is_same_v<Out, kk::Bf16>)
      allowed += std::ldexp(std::fabs(want), -7);
    worst = std::max(worst, std::fabs(got - want) / largest);
    EXPECT_LE(std::fabs(got - want), allowed) << "at " << i << ": " << got << " vs " << want;
  }
  std::printf("  %-28s to %-4s: [%lld x %lld] K %lld, max |error| / max |ref| = %.3g\n", c.name,
              outName<Out>(), (long long)c.m, (long long)c.n, (long long)c.k, worst);
}

TEST(HostKernelsPrecision, ScaledMatmulMatchesTheEvaluator) {
  SeededRng rng(13, "scaled matmul");
  // x [70, 300] (3 K blocks, the last of 44), W [150, 300], dy [70, 150].
  const GemmCase cases[] = {
      {"Fprop x W^T", 70, 150, 300, false, true, {1, 128}, {128, 128}},
      {"Dgrad dy W", 70, 300, 150, false, false, {1, 128}, {128, 128}},
      {"Wgrad dy^T x", 150, 300, 270, true, false, {128, 1}, {128, 1}},
  };
  for (const GemmCase &c : cases) {
    checkScaledMatmul<float>(c, rng);
    checkScaledMatmul<kk::Bf16>(c, rng);
  }
}

/// The MLIR type of a tensor of `shape` with `element`.
std::string tensorType(std::initializer_list<int64_t> shape, const char *element) {
  std::string t = "tensor<";
  for (int64_t d : shape)
    t += std::to_string(d) + "x";
  return t + element + ">";
}

/// `values` as a RefTensor of `shape` (element type left to the function).
template <typename T>
RefTensor refOf(const std::vector<T> &values, std::initializer_list<int64_t> shape) {
  RefTensor t{mlir::Type(), llvm::SmallVector<int64_t>(shape)};
  for (size_t i = 0; i < values.size(); ++i)
    t.data[i] = double(kk::widen(values[i]));
  return t;
}

/// Counts the elements of `got` that differ from `want` (bit for bit, NaN
/// as NaN).
template <typename T> int64_t mismatchesOf(const RefTensor &want, const std::vector<T> &got) {
  int64_t bad = want.numElements() == int64_t(got.size()) ? 0 : 1;
  for (size_t i = 0; i < got.size() && i < want.data.size(); ++i)
    bad += !sameFloat(want.data[i], kk::widen(got[i]));
  return bad;
}

/// The largest |got - want| relative to the largest |want|; fails where an
/// element is further off than the f32 accumulation bound (plus one bf16 ulp
/// for bf16 results).
template <typename T>
double checkWithinAccumulation(const char *what, const RefTensor &want, const std::vector<T> &got) {
  double largest = 0, worst = 0;
  for (double v : want.data)
    largest = std::max(largest, std::fabs(v));
  EXPECT_EQ(want.numElements(), int64_t(got.size())) << what;
  for (size_t i = 0; i < got.size() && i < want.data.size(); ++i) {
    double g = kk::widen(got[i]), w = want.data[i];
    double allowed = kTolerance * largest;
    if (std::is_same_v<T, kk::Bf16>)
      allowed += std::ldexp(std::fabs(w), -7);
    worst = std::max(worst, std::fabs(g - w) / largest);
    EXPECT_LE(std::fabs(g - w), allowed) << what << " at " << i << ": " << g << " vs " << w;
  }
  return worst;
}

// The expert GEMMs of one layer in FP8: 300 rows over 3 experts with
// offsets [0, 70, 70, 260] (70 rows: one partial 128-row tile; none; 190:
// a full and a partial tile) and 40 rows of capacity; K = 200 (two K
// blocks, one partial), N = 136 (a partial weight block). The per-expert
// weight quantization and both grouped quantizations must give the
// evaluator's bits; the Fprop (f32), Dgrad (bf16) and Wgrad (f32) GEMMs its
// numbers within f32 accumulation error.
TEST(HostKernelsPrecision, GroupedExpertKernelsMatchTheEvaluator) {
  SeededRng rng(14, "grouped fp8");
  const int64_t rows = 300, experts = 3, n = 136, k = 200;
  const std::vector<int32_t> offsets = {0, 70, 70, 260};
  std::vector<float> x = spread(rng, rows * k, -4, 2), w = spread(rng, experts * n * k, -8, -2),
                     dy = spread(rng, rows * n, -6, 0);
  const int64_t kBlocks = ceilDiv(k, 128), nBlocks = ceilDiv(n, 128);
  const int64_t groupedRows = kk::fp8GroupedScaleRows(rows, experts, 128);
  ASSERT_EQ(groupedRows, 5);

  auto quantized = [&](int64_t count) { return std::vector<kk::E4m3>(count); };
  std::vector<kk::E4m3> wq = quantized(w.size()), xq = quantized(x.size()),
                        dq = quantized(dy.size()), gdq = quantized(dy.size()),
                        gxq = quantized(x.size());
  std::vector<float> ws(experts * nBlocks * kBlocks), xs(rows * kBlocks),
      ds(rows * nBlocks), gds(groupedRows * n, -1.0f), gxs(groupedRows * k, -1.0f);
  kk::quantizeFp8(wq.data(), ws.data(), w.data(), kk::Fp8Tiles{experts * n, k, 128, 128, experts});
  kk::quantizeFp8(xq.data(), xs.data(), x.data(), kk::Fp8Tiles{rows, k, 1, 128});
  kk::quantizeFp8(dq.data(), ds.data(), dy.data(), kk::Fp8Tiles{rows, n, 1, 128});
  std::string error;
  ASSERT_TRUE(kk::quantizeFp8Grouped(gdq.data(), gds.data(), dy.data(), offsets.data(), rows, n,
                                     experts, 128, 1, &error)) << error;
  ASSERT_TRUE(kk::quantizeFp8Grouped(gxq.data(), gxs.data(), x.data(), offsets.data(), rows, k,
                                     experts, 128, 1, &error)) << error;
  std::vector<float> y(rows * n, -1.0f), dw(experts * n * k, -1.0f), again(rows * n);
  std::vector<kk::Bf16> dx(rows * k, kk::narrowTo<kk::Bf16>(-1.0f));
  ASSERT_TRUE(kk::scaledGroupedMatmul(y.data(), xq.data(), xs.data(), wq.data(), ws.data(),
                                      offsets.data(), rows, k, experts, n, k, true, &error))
      << error;
  ASSERT_TRUE(kk::scaledGroupedMatmul(again.data(), xq.data(), xs.data(), wq.data(), ws.data(),
                                      offsets.data(), rows, k, experts, n, k, true, &error));
  EXPECT_EQ(std::memcmp(y.data(), again.data(), y.size() * sizeof(float)), 0)
      << "scaled_grouped_matmul is not deterministic";
  ASSERT_TRUE(kk::scaledGroupedMatmul(dx.data(), dq.data(), ds.data(), wq.data(), ws.data(),
                                      offsets.data(), rows, n, experts, n, k, false, &error))
      << error;
  ASSERT_TRUE(kk::scaledGroupedMatmulWgrad(dw.data(), gdq.data(), gds.data(), gxq.data(),
                                           gxs.data(), offsets.data(), rows, n, k, experts,
                                           &error))
      << error;

  const std::string tx = tensorType({rows, k}, "f32"), tw = tensorType({experts, n, k}, "f32"),
                    tdy = tensorType({rows, n}, "f32"), to = tensorType({experts + 1}, "i32");
  const std::string qx = tensorType({rows, k}, "f8E4M3FN"),
                    qw = tensorType({experts, n, k}, "f8E4M3FN"),
                    qdy = tensorType({rows, n}, "f8E4M3FN");
  const std::string sw = tensorType({experts, nBlocks, kBlocks}, "f32"),
                    sx = tensorType({rows, kBlocks}, "f32"), sdy = tensorType({rows, nBlocks}, "f32"),
                    gsdy = tensorType({groupedRows, n}, "f32"),
                    gsx = tensorType({groupedRows, k}, "f32");
  const std::string ty = tensorType({rows, n}, "f32"), tdx = tensorType({rows, k}, "bf16");
  const std::string source =
      "func.func @f(%x: " + tx + ", %w: " + tw + ", %dy: " + tdy + ", %o: " + to + ") -> (" +
      qw + ", " + sw + ", " + qdy + ", " + gsdy + ", " + qx + ", " + gsx + ", " + ty + ", " +
      tdx + ", " + tw + ") {\n"
      "  %wq, %ws = kiln.quantize_fp8 %w {block = array<i64: 1, 128, 128>} : " + tw + " -> " +
      qw + ", " + sw + "\n"
      "  %xq, %xs = kiln.quantize_fp8 %x {block = array<i64: 1, 128>} : " + tx + " -> " + qx +
      ", " + sx + "\n"
      "  %dq, %ds = kiln.quantize_fp8 %dy {block = array<i64: 1, 128>} : " + tdy + " -> " + qdy +
      ", " + sdy + "\n"
      "  %gdq, %gds = kiln.quantize_fp8_grouped %dy, %o {block = array<i64: 128, 1>} : " + tdy +
      ", " + to + " -> " + qdy + ", " + gsdy + "\n"
      "  %gxq, %gxs = kiln.quantize_fp8_grouped %x, %o {block = array<i64: 128, 1>} : " + tx +
      ", " + to + " -> " + qx + ", " + gsx + "\n"
      "  %y = kiln.scaled_grouped_matmul %xq, %xs, %wq, %ws, %o {transpose_rhs = true} : (" + qx +
      ", " + sx + ", " + qw + ", " + sw + ", " + to + ") -> " + ty + "\n"
      "  %dx = kiln.scaled_grouped_matmul %dq, %ds, %wq, %ws, %o : (" + qdy + ", " + sdy + ", " +
      qw + ", " + sw + ", " + to + ") -> " + tdx + "\n"
      "  %dw = kiln.scaled_grouped_matmul_wgrad %gdq, %gds, %gxq, %gxs, %o : (" + qdy + ", " +
      gsdy + ", " + qx + ", " + gsx + ", " + to + ") -> " + tw + "\n"
      "  return %wq, %ws, %gdq, %gds, %gxq, %gxs, %y, %dx, %dw : " + qw + ", " + sw + ", " + qdy +
      ", " + gsdy + ", " + qx + ", " + gsx + ", " + ty + ", " + tdx + ", " + tw + "\n}\n";
  std::vector<float> offsetValues(offsets.begin(), offsets.end());
  SmallVector<RefTensor> r =
      evaluateAsTyped(source, {refOf(x, {rows, k}), refOf(w, {experts, n, k}),
                               refOf(dy, {rows, n}), refOf(offsetValues, {experts + 1})});
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(mismatchesOf(r[0], wq), 0) << "per-expert weight values";
  EXPECT_EQ(mismatchesOf(r[1], ws), 0) << "per-expert weight scales";
  EXPECT_EQ(mismatchesOf(r[2], gdq), 0) << "grouped dy values";
  EXPECT_EQ(mismatchesOf(r[3], gds), 0) << "grouped dy scales";
  EXPECT_EQ(mismatchesOf(r[4], gxq), 0) << "grouped x values";
  EXPECT_EQ(mismatchesOf(r[5], gxs), 0) << "grouped x scales";
  // Expert 0's one tile is scale row 0, expert 2's two are rows 2 and 3
  // (70 / 128 + 2); rows 1 and 4 are unused and 0.
  for (int64_t c = 0; c < n; ++c) {
    EXPECT_EQ(gds[1 * n + c], 0.0f);
    EXPECT_EQ(gds[4 * n + c], 0.0f);
    EXPECT_GT(gds[3 * n + c], 0.0f);
  }
  double fprop = checkWithinAccumulation("Fprop", r[6], y);
  double dgrad = checkWithinAccumulation("Dgrad", r[7], dx);
  double wgrad = checkWithinAccumulation("Wgrad", r[8], dw);
  for (int64_t i = 260 * n; i < rows * n; ++i)
    ASSERT_EQ(y[i], 0.0f) << "capacity rows of the Fprop must be 0";
  for (int64_t i = 1 * n * k; i < 2 * n * k; ++i)
    ASSERT_EQ(dw[i], 0.0f) << "the empty expert's weight gradient must be 0";
  std::printf("  grouped: quantizations bit-exact; max |error| / max |ref|: Fprop %.3g, Dgrad "
              "(bf16) %.3g, Wgrad %.3g\n",
              fprop, dgrad, wgrad);
}

TEST(HostKernelsPrecision, GroupedKernelsRefuseBadOffsets) {
  std::vector<float> x(8 * 4, 1.0f), scales(8 * 4);
  std::vector<kk::E4m3> q(8 * 4);
  const std::vector<int32_t> decreasing = {0, 5, 3}, pastTheRows = {0, 4, 9};
  for (const std::vector<int32_t> *offsets : {&decreasing, &pastTheRows}) {
    std::string error;
    EXPECT_FALSE(kk::quantizeFp8Grouped(q.data(), scales.data(), x.data(), offsets->data(), 8, 4,
                                        2, 128, 1, &error));
    EXPECT_NE(error.find("quantize_fp8_grouped: expert offsets must start at 0, never decrease "
                         "and end at most at the row count 8"),
              std::string::npos)
        << error;
  }
}

TEST(HostKernelsPrecisionDeathTest, BadTilingStopsWithAMessage) {
  std::vector<float> x(8, 1.0f), scales(8);
  std::vector<kk::E4m3> q(8);
  EXPECT_EXIT(kk::quantizeFp8(q.data(), scales.data(), x.data(), kk::Fp8Tiles{2, 4, 0, 128}),
              ::testing::ExitedWithCode(1), "tiles of \\[0, 128\\]");
}

} // namespace
