//===- PrecisionAsTypedTest.cpp - APFloat and the kernels round alike -----===//
//
// The as-typed evaluator (reference/AsTyped.cpp, llvm::APFloat) and the
// kernels (runtime/kernels/PrecisionMath.h, bit-level code) are independent
// implementations of the same rounding; both must give the same bits on
// every f32 they are tried on. (PrecisionMatchesIndependentReference checks
// the kernels' side against exact rationals.)
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/AsTyped.h"
#include "runtime/kernels/PrecisionMath.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace kiln;

namespace {

/// Every 4093rd f32 bit pattern (about a million, all exponents and signs),
/// plus each format's ties and overflow boundaries.
std::vector<float> probes() {
  std::vector<float> xs;
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4093)
    xs.push_back(kernels::floatOfBits(uint32_t(bits)));
  for (float x : {0.0f, 448.0f, 464.0f, 465.0f, 480.0f, 1e30f, 65504.0f, 65520.0f, 3.3895314e38f,
                  1.00390625f, 1.01171875f, 0.001953125f, 0.0009765625f, 5.9604645e-8f,
                  2.9802322e-8f, 1e-45f, INFINITY, NAN})
    for (float sign : {1.0f, -1.0f})
      xs.push_back(sign * x);
  return xs;
}

struct Case {
  const char *name;
  mlir::Type type;
  float (*kernel)(float);
};

TEST(PrecisionAsTypedTest, ApFloatAndKernelsGiveTheSameBits) {
  mlir::MLIRContext context;
  mlir::Builder b(&context);
  const Case cases[] = {{"bf16", b.getBF16Type(), kernels::roundToBf16},
                        {"f16", b.getF16Type(), kernels::roundToF16},
                        {"f8E4M3FN", b.getType<mlir::Float8E4M3FNType>(), kernels::roundToE4m3}};
  const std::vector<float> xs = probes();
  for (const Case &c : cases) {
    int64_t mismatches = 0;
    for (float x : xs) {
      const float kernel = c.kernel(x);
      const double asTyped = reference::roundAsTyped(x, c.type);
      const bool same = std::isnan(kernel) ? std::isnan(asTyped)
                                           : kernels::bitsOfFloat(kernel) ==
                                                 kernels::bitsOfFloat(float(asTyped)) &&
                                                 double(kernel) == asTyped;
      if (!same && ++mismatches <= 5)
        ADD_FAILURE() << c.name << ": " << x << " -> kernels " << kernel << ", as-typed " << asTyped;
    }
    EXPECT_EQ(mismatches, 0) << c.name << " over " << xs.size() << " values";
  }
}

TEST(PrecisionAsTypedTest, RoundsToF32FirstAndLeavesF64AndIntegers) {
  mlir::MLIRContext context;
  mlir::Builder b(&context);
  // 1 + 2^-30 is not an f32: f32 keeps 1; f64 keeps it whole.
  const double x = 1.0 + std::ldexp(1.0, -30);
  EXPECT_EQ(reference::roundAsTyped(x, b.getF32Type()), 1.0);
  EXPECT_EQ(reference::roundAsTyped(x, b.getF64Type()), x);
  EXPECT_EQ(reference::roundAsTyped(7.0, b.getI32Type()), 7.0);
  // 1 + 2^-8 + 2^-30 is above bf16's tie between 1 and 1 + 2^-7, but its f32
  // rounding is the tie itself, which goes to even: f32 first, then bf16.
  const double aboveTie = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  EXPECT_EQ(reference::roundAsTyped(aboveTie, b.getBF16Type()), 1.0);
  // e4m3 saturates where APFloat's own conversion would give NaN.
  EXPECT_EQ(reference::roundAsTyped(1e6, b.getType<mlir::Float8E4M3FNType>()), 448.0);
  EXPECT_EQ(reference::roundAsTyped(-INFINITY, b.getType<mlir::Float8E4M3FNType>()), -448.0);
  EXPECT_TRUE(std::isnan(reference::roundAsTyped(NAN, b.getType<mlir::Float8E4M3FNType>())));
}

} // namespace
