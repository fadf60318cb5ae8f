//===- PrecisionMath.h - f32 <-> bf16 / f16 / e4m3, and FP8 block scales ---===//
//
// The one definition of how Kiln rounds to the narrow element types kiln IR
// names (MLIR's bf16, f16, f8E4M3FN), shared by the host kernels, the CUDA
// kernels' host mirrors and the tests; the as-typed evaluator must agree with
// it bit for bit (it uses llvm::APFloat, an independent implementation).
//
// Rounding is IEEE round-to-nearest-even on the exact f32 value, with
// gradual underflow (subnormals) in every format. What differs is overflow:
//
//   bf16, f16   past the largest finite value -> +-inf (IEEE; what
//               cvt.rn.bf16.f32 / cvt.rn.f16.f32 and oneDNN do);
//   e4m3 (FN)   saturating: every finite value past 448 and +-inf -> +-448.
//               The format has no infinity (S.1111.111 is NaN), and the
//               alternative, overflow -> NaN (llvm::APFloat's and the OCP
//               spec's non-saturating mode), would turn one outlier into a
//               NaN loss. Saturation is what the FP8 GEMM paths of
//               Transformer Engine, DeepGEMM and cuBLASLt produce
//               (cvt.rn.satfinite.e4m3x2.f32). With the block scales below
//               the scaled values are at most 448 anyway; only inf reaches it.
//
// NaN stays NaN with its sign (bf16/f16: quiet, payload dropped; e4m3:
// S.1111.111).
//
// FP8 block scales, as DeepSeek-V3 trains (technical report 3.3) and as
// DeepGEMM's per_token_cast_to_fp8 / per_block_cast_to_fp8 compute them:
//
//   amax  = max |x| over the tile (1x128 of an activation row, 128x128 of
//           a weight), floored at 1e-4 so an all-zero tile has a scale;
//   q     = e4m3(x * (448 / amax))     the factor rounded to f32 once, then
//                                      one f32 multiply per element;
//   scale = amax / 448                 stored in f32; x ~ float(q) * scale.
//
// Multiplying by the rounded factor 448/amax is not the same as dividing by
// the scale (x / (amax/448)): the two differ at rounding boundaries. Kiln
// multiplies, as DeepGEMM does, so its quantized tensors match DeepSeek's.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_PRECISIONMATH_H
#define KILN_RUNTIME_PRECISIONMATH_H

#include "runtime/kernels/KernelMath.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::kernels {

/// A binary floating-point format narrower than f32: 1 sign bit,
/// `exponentBits`, `mantissaBits`; normal exponents minExponent..maxExponent
/// (unbiased); `maxTopSignificand` is the largest significand (implicit bit
/// included, as an integer of mantissaBits + 1 bits) allowed at maxExponent.
struct NarrowFormat {
  int exponentBits, mantissaBits, bias, minExponent, maxExponent;
  uint32_t maxTopSignificand;
  bool saturates; ///< no infinity: overflow -> largest finite (else -> inf)
  uint32_t nanBits, infBits; ///< without the sign; infBits unused when saturating
};

// Functions rather than constants: device code cannot refer to a host
// variable.
KILN_HD constexpr NarrowFormat bf16Format() {
  return {8, 7, 127, -126, 127, 0xFF, false, 0x7FC0, 0x7F80};
}
KILN_HD constexpr NarrowFormat f16Format() {
  return {5, 10, 15, -14, 15, 0x7FF, false, 0x7E00, 0x7C00};
}
/// OCP FP8 E4M3 ("FN": finite and NaN only); 448 = 1.75 x 2^8 is the top.
KILN_HD constexpr NarrowFormat e4m3Format() { return {4, 3, 7, -6, 8, 0xE, true, 0x7F, 0}; }

constexpr float kE4m3Max = 448.0f;
/// The amax floor of the block scales (DeepGEMM's clamp(1e-4)).
constexpr float kFp8AmaxFloor = 1e-4f;
/// Tile edge of the block scales: 1x128 activations, 128x128 weights.
constexpr int64_t kFp8BlockSize = 128;

KILN_HD uint32_t bitsOfFloat(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

KILN_HD float floatOfBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// `x` rounded to `f` (see the file comment), as f's bit pattern in the low
/// 1 + exponentBits + mantissaBits bits.
KILN_HD uint32_t narrowBitsOf(float x, NarrowFormat f) {
  const uint32_t u = bitsOfFloat(x);
  const uint32_t signShift = uint32_t(f.exponentBits + f.mantissaBits);
  const uint32_t sign = (u >> 31) << signShift;
  const uint32_t topSignificand = (1u << (f.mantissaBits + 1)) - 1;
  const uint32_t maxFinite = (uint32_t(f.maxExponent + f.bias) << f.mantissaBits) |
                             (f.maxTopSignificand & (topSignificand >> 1));
  const uint32_t exponentField = (u >> 23) & 0xFF, mantissa = u & 0x7FFFFF;
  if (exponentField == 0xFF) {
    if (mantissa != 0)
      return sign | f.nanBits;
    return sign | (f.saturates ? maxFinite : f.infBits);
  }
  if (exponentField == 0 && mantissa == 0)
    return sign;
  // x = significand x 2^(exponent - 23), significand of 24 bits (f32
  // subnormals: exponent -126 without the implicit bit; bf16 keeps some).
  const int exponent = exponentField ? int(exponentField) - 127 : -126;
  const uint32_t significand = exponentField ? (1u << 23) | mantissa : mantissa;
  // The result's quantum is 2^(e - mantissaBits) with e the result's
  // exponent, clamped below at minExponent (gradual underflow).
  int e = exponent < f.minExponent ? f.minExponent : exponent;
  const int shift = (e - f.mantissaBits) - (exponent - 23);
  uint32_t q;
  if (shift > 25) {
    q = 0; // below half the smallest subnormal
  } else {
    q = significand >> shift;
    const uint32_t rest = significand & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1)))
      ++q;
  }
  if (q > topSignificand) { // rounded up to the next binade
    q >>= 1;
    ++e;
  }
  if (q == 0)
    return sign;
  if (e > f.maxExponent || (e == f.maxExponent && q > f.maxTopSignificand))
    return sign | (f.saturates ? maxFinite : f.infBits);
  if (q < (1u << f.mantissaBits)) // subnormal: exponent field 0
    return sign | q;
  return sign | (uint32_t(e + f.bias) << f.mantissaBits) | (q - (1u << f.mantissaBits));
}

/// The f32 value of `f`'s bit pattern `bits` (exact: f32 holds every value
/// of every narrower format).
KILN_HD float floatOfNarrowBits(uint32_t bits, NarrowFormat f) {
  const uint32_t signShift = uint32_t(f.exponentBits + f.mantissaBits);
  const uint32_t sign = ((bits >> signShift) & 1u) << 31;
  const uint32_t exponentField = (bits >> f.mantissaBits) & ((1u << f.exponentBits) - 1);
  const uint32_t mantissa = bits & ((1u << f.mantissaBits) - 1);
  const uint32_t magnitude = bits & ((1u << signShift) - 1);
  if (magnitude == f.nanBits || (!f.saturates && exponentField == (1u << f.exponentBits) - 1))
    return floatOfBits(sign | (mantissa == 0 && !f.saturates ? 0x7F800000u : 0x7FC00000u));
  if (exponentField == 0) // zero or subnormal: mantissa x 2^(minExponent - mantissaBits), exact
    return floatOfBits(sign | bitsOfFloat(ldexpf(float(mantissa), f.minExponent - f.mantissaBits)));
  const int exponent = int(exponentField) - f.bias;
  return floatOfBits(sign | (uint32_t(exponent + 127) << 23) |
                     (mantissa << (23 - f.mantissaBits)));
}

/// bf16 keeps f32's exponent, so rounding to it is rounding away the low 16
/// bits of the f32 pattern, to nearest even; a carry out of the mantissa
/// moves to the next binade (or to infinity) by itself. NaNs become the
/// quiet NaN with x's sign, as narrowBitsOf does. Bit-identical to
/// narrowBitsOf(x, bf16Format()) on every f32 (PrecisionMathTest checks all
/// 2^32), and a few operations instead of its general path: fused loops
/// store bf16 on every element.
KILN_HD uint16_t bf16BitsOf(float x) {
  const uint32_t u = bitsOfFloat(x);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu) != 0)
    return uint16_t(((u >> 16) & 0x8000u) | 0x7FC0u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
KILN_HD uint16_t f16BitsOf(float x) { return uint16_t(narrowBitsOf(x, f16Format())); }
KILN_HD uint8_t e4m3BitsOf(float x) { return uint8_t(narrowBitsOf(x, e4m3Format())); }
/// Widening is the bf16 pattern in the top half of an f32 (exact); NaNs
/// become the quiet NaN with their sign, as floatOfNarrowBits does.
KILN_HD float floatOfBf16(uint16_t bits) {
  if ((bits & 0x7F80u) == 0x7F80u && (bits & 0x7Fu) != 0)
    return floatOfBits((uint32_t(bits & 0x8000u) << 16) | 0x7FC00000u);
  return floatOfBits(uint32_t(bits) << 16);
}
KILN_HD float floatOfF16(uint16_t bits) { return floatOfNarrowBits(bits, f16Format()); }
KILN_HD float floatOfE4m3(uint8_t bits) { return floatOfNarrowBits(bits, e4m3Format()); }

/// `x` rounded to the format and back: what storing it in that type keeps.
KILN_HD float roundToBf16(float x) { return floatOfBf16(bf16BitsOf(x)); }
KILN_HD float roundToF16(float x) { return floatOfF16(f16BitsOf(x)); }
KILN_HD float roundToE4m3(float x) { return floatOfE4m3(e4m3BitsOf(x)); }

/// Buffer element types of generated code and kernels for the narrow
/// formats: the bit pattern, wrapped so that overloads tell bf16 from f16.
/// Values are loaded with widen() and stored with narrowTo<T>(): kernels
/// compute in f32 and store the declared type.
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};
struct E4m3 {
  uint8_t bits;
};

KILN_HD float widen(float x) { return x; }
KILN_HD float widen(Bf16 x) { return floatOfBf16(x.bits); }
KILN_HD float widen(F16 x) { return floatOfF16(x.bits); }
KILN_HD float widen(E4m3 x) { return floatOfE4m3(x.bits); }

template <typename T> struct NarrowTo;
template <> struct NarrowTo<float> {
  KILN_HD static float from(float x) { return x; }
};
template <> struct NarrowTo<Bf16> {
  KILN_HD static Bf16 from(float x) { return {bf16BitsOf(x)}; }
};
template <> struct NarrowTo<F16> {
  KILN_HD static F16 from(float x) { return {f16BitsOf(x)}; }
};
template <> struct NarrowTo<E4m3> {
  KILN_HD static E4m3 from(float x) { return {e4m3BitsOf(x)}; }
};
/// `x` stored as a T (rounded as the file comment says).
template <typename T> KILN_HD T narrowTo(float x) { return NarrowTo<T>::from(x); }

/// The running amax of a tile after one more |x| (or one more partial
/// amax): the larger, and NaN once either is NaN (the first NaN kept). Every
/// operand is >= 0 or NaN, so any grouping of a tile's values (the host's
/// row-major loop, a GPU warp's shuffle tree) gives the same amax, NaN
/// payloads aside.
KILN_HD float fp8AmaxOf(float amax, float a) {
  if (a != a || a > amax) // NaN propagates: once amax is NaN no a > amax
    return amax != amax ? amax : a;
  return amax;
}

/// A tile's amax floored at kFp8AmaxFloor (NaN stays NaN).
KILN_HD float fp8FlooredAmax(float amax) {
  return amax > kFp8AmaxFloor ? amax : (amax != amax ? amax : kFp8AmaxFloor);
}

/// The block-scale factor of a tile whose largest |x| is `amax`. A NaN in
/// the tile makes it NaN (every value of the tile then quantizes to NaN, and
/// the loss shows it); an inf makes it 0 (the inf itself becomes NaN).
KILN_HD float fp8QuantizeFactor(float amax) { return kE4m3Max / fp8FlooredAmax(amax); }

/// The stored scale of the same tile: float(q) * scale approximates x.
KILN_HD float fp8DequantizeScale(float amax) { return fp8FlooredAmax(amax) / kE4m3Max; }

/// Grouped tiles (kiln.quantize_fp8_grouped): expert e's rows [offsets[e],
/// offsets[e+1]) are cut into row tiles of their own, starting at the
/// expert's first row, so that no tile mixes two experts. Its tiles' scale
/// rows start at offsets[e] / tileRows + e: a position computable from the
/// expert's own offset, with no prefix sum over the experts before it, that
/// never overlaps the next expert's (the expert adds at most
/// ceil(n_e / tileRows) <= the growth of offset / tileRows, plus one).
KILN_HD constexpr int64_t fp8GroupedScaleRowBase(int64_t offset, int64_t expert,
                                                 int64_t tileRows) {
  return offset / tileRows + expert;
}
/// The scale rows of grouped tiles of `rows` rows over `experts` experts:
/// every base above plus its tiles stays below this.
KILN_HD constexpr int64_t fp8GroupedScaleRows(int64_t rows, int64_t experts,
                                              int64_t tileRows) {
  return rows / tileRows + experts;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_PRECISIONMATH_H
