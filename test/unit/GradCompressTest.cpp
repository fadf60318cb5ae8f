//===- GradCompressTest.cpp - top-k gradient compression kernels -----------===//
//
// The host kernels of kiln.topk_compress / kiln.topk_decompress against the
// reference evaluator (the same f32 code, so bit for bit), in place against
// out of place, and the property error feedback rests on: at every step the
// values sent plus the new residual are exactly grad + old residual, so over
// K steps what was applied plus what is held back is the sum of the true
// gradients (up to the f32 rounding of each grad + residual addition).
//
//===----------------------------------------------------------------------===//

#include "runtime/init/SeededRng.h"
#include "runtime/kernels/GradCompress.h"
#include "runtime/kernels/GradCompressMath.h"

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace kiln::reference;
namespace kk = kiln::kernels;
using kiln::init::SeededRng;

namespace {

constexpr int64_t kN = 1000, kK = 50, kRanks = 3;

std::vector<float> normal(SeededRng &rng, int64_t n, double scale = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = float(scale * rng.normal());
  return v;
}

RefTensor asRef(const std::vector<float> &values) {
  RefTensor t(mlir::Type(), {int64_t(values.size())});
  for (size_t i = 0; i < values.size(); ++i)
    t.data[i] = double(values[i]);
  return t;
}

/// kRanks messages (compress of grads[r] + residuals[r]) and their sum, by
/// the kernels and by the evaluator; every byte and float must agree.
void checkAgainstEvaluator(bool int8) {
  SeededRng rng(5, int8 ? "topk int8" : "topk none");
  const int64_t bytes = kk::topkMessageBytes(kK, int8);
  std::vector<int8_t> messages(size_t(kRanks * bytes));
  std::vector<std::vector<float>> grads, residuals, next(kRanks, std::vector<float>(kN));
  std::string e;
  for (int64_t r = 0; r < kRanks; ++r) {
    grads.push_back(normal(rng, kN));
    residuals.push_back(normal(rng, kN, 0.1));
    ASSERT_TRUE(kk::topkCompress(grads[r].data(), residuals[r].data(), kN, kK, int8,
                                 messages.data() + r * bytes, next[r].data(), &e))
        << e;
  }
  std::vector<float> sum(kN);
  ASSERT_TRUE(kk::topkDecompress(messages.data(), kRanks, kN, kK, int8, sum.data(), &e)) << e;

  const std::string q = int8 ? "int8" : "none", n = std::to_string(kN), k = std::to_string(kK);
  const std::string v = "tensor<" + n + "xf32>", m = "tensor<" + std::to_string(bytes) + "xi8>";
  const std::string all = "tensor<" + std::to_string(kRanks * bytes) + "xi8>";
  std::string source = "func.func @f(";
  for (int64_t r = 0; r < kRanks; ++r)
    source += std::string(r ? ", " : "") + "%g" + std::to_string(r) + ": " + v + ", %r" +
              std::to_string(r) + ": " + v;
  source += ") -> (" + all + ", " + v + ", " + v + ") {\n";
  for (int64_t r = 0; r < kRanks; ++r) {
    const std::string i = std::to_string(r);
    source += "  %m" + i + ", %n" + i + " = kiln.topk_compress %g" + i + ", %r" + i + " {k = " +
              k + " : i64, quantize = \"" + q + "\"} : (" + v + ", " + v + ") -> (" + m + ", " +
              v + ")\n";
  }
  source += "  %all = tensor.concat dim(0) %m0, %m1, %m2 : (" + m + ", " + m + ", " + m +
            ") -> " + all + "\n  %sum = kiln.topk_decompress %all {k = " + k +
            " : i64, quantize = \"" + q + "\"} : (" + all + ") -> " + v + "\n  return %all, %n0, %sum : " +
            all + ", " + v + ", " + v + "\n}\n";
  mlir::MLIRContext context;
  context.loadDialect<kiln::KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                      mlir::tensor::TensorDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  ASSERT_TRUE(module && mlir::succeeded(mlir::verify(*module))) << source;
  Evaluator evaluator(*module);
  llvm::SmallVector<RefTensor> args;
  for (int64_t r = 0; r < kRanks; ++r) {
    args.push_back(asRef(grads[r]));
    args.push_back(asRef(residuals[r]));
  }
  mlir::FailureOr<llvm::SmallVector<RefTensor>> want = evaluator.call("f", args);
  ASSERT_TRUE(mlir::succeeded(want));
  for (size_t i = 0; i < messages.size(); ++i)
    ASSERT_EQ(double(messages[i]), (*want)[0].data[i]) << q << " message byte " << i;
  for (int64_t i = 0; i < kN; ++i) {
    ASSERT_EQ(double(next[0][i]), (*want)[1].data[i]) << q << " residual " << i;
    ASSERT_EQ(double(sum[i]), (*want)[2].data[i]) << q << " sum " << i;
  }
  std::printf("[topk %s] %lld ranks x %lld bytes (of %lld f32 bytes each): kernels == evaluator\n",
              q.c_str(), (long long)kRanks, (long long)bytes, (long long)(4 * kN));
}

TEST(GradCompress, Int8KernelsMatchEvaluator) { checkAgainstEvaluator(true); }
TEST(GradCompress, F32KernelsMatchEvaluator) { checkAgainstEvaluator(false); }

// The step updates the residual in its own buffer.
TEST(GradCompress, InPlaceResidualEqualsOutOfPlace) {
  SeededRng rng(6, "topk in place");
  std::vector<float> grad = normal(rng, kN), residual = normal(rng, kN), out(kN);
  const int64_t bytes = kk::topkMessageBytes(kK, true);
  std::vector<int8_t> a(bytes), b(bytes);
  ASSERT_TRUE(kk::topkCompress(grad.data(), residual.data(), kN, kK, true, a.data(), out.data()));
  ASSERT_TRUE(kk::topkCompress(grad.data(), residual.data(), kN, kK, true, b.data(),
                               residual.data()));
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), size_t(bytes)));
  EXPECT_EQ(0, std::memcmp(out.data(), residual.data(), sizeof(float) * kN));
}

// Error feedback loses nothing: over K steps on one rank, sum of what was
// applied + the final residual = sum of the true gradients. Each step it is
// exact (sent + new residual == grad + residual, bit for bit); summed in
// f64, the books then balance to the rounding of the K additions.
TEST(GradCompress, ErrorFeedbackConservesTheGradientSum) {
  constexpr int kSteps = 50;
  SeededRng rng(7, "topk error feedback");
  const int64_t bytes = kk::topkMessageBytes(kK, true);
  std::vector<float> residual(kN, 0.0f), applied(kN), next(kN);
  std::vector<double> trueSum(kN, 0.0), appliedSum(kN, 0.0);
  std::vector<int8_t> message(bytes);
  for (int t = 0; t < kSteps; ++t) {
    std::vector<float> grad = normal(rng, kN, 1.0 + t % 5); // tensors change scale
    ASSERT_TRUE(kk::topkCompress(grad.data(), residual.data(), kN, kK, true, message.data(),
                                 next.data()));
    ASSERT_TRUE(kk::topkDecompress(message.data(), 1, kN, kK, true, applied.data()));
    for (int64_t i = 0; i < kN; ++i) {
      const float acc = grad[i] + residual[i];
      ASSERT_EQ(applied[i] + next[i], acc) << "step " << t << " element " << i;
      trueSum[i] += grad[i];
      appliedSum[i] += applied[i];
    }
    residual = next;
  }
  double worst = 0, scale = 0, held = 0;
  for (int64_t i = 0; i < kN; ++i) {
    worst = std::max(worst, std::fabs(appliedSum[i] + residual[i] - trueSum[i]));
    scale = std::max(scale, std::fabs(trueSum[i]));
    held = std::max(held, double(std::fabs(residual[i])));
  }
  std::printf("[error feedback] %d steps, top %lld of %lld: |applied + residual - true sum| <= "
              "%.3g (true sums up to %.3g, residual up to %.3g)\n",
              kSteps, (long long)kK, (long long)kN, worst, scale, held);
  EXPECT_LE(worst, 1e-5 * scale);
  EXPECT_GT(held, 0.0); // something was held back, or the test proves nothing
}

// Ties go to the lower index; a NaN is kept first and arrives as NaN (the
// scale becomes NaN) so that the global norm shows it.
TEST(GradCompress, TiesAndNaN) {
  std::vector<float> grad = {1, -3, 3, 2, 3}, zero(5, 0.0f), out(5);
  std::vector<int8_t> message(kk::topkMessageBytes(2, false));
  ASSERT_TRUE(kk::topkCompress(grad.data(), zero.data(), 5, 2, false, message.data(), nullptr));
  ASSERT_TRUE(kk::topkDecompress(message.data(), 1, 5, 2, false, out.data()));
  EXPECT_EQ(out, (std::vector<float>{0, -3, 3, 0, 0}));
  grad[3] = NAN;
  std::vector<int8_t> quantized(kk::topkMessageBytes(2, true));
  ASSERT_TRUE(kk::topkCompress(grad.data(), zero.data(), 5, 2, true, quantized.data(), nullptr));
  ASSERT_TRUE(kk::topkDecompress(quantized.data(), 1, 5, 2, true, out.data()));
  EXPECT_TRUE(std::isnan(out[3]));
  EXPECT_TRUE(std::isnan(out[1])); // the tensor's scale is NaN
}

TEST(GradCompress, BadInputIsAnError) {
  std::vector<float> grad(4), out(4);
  std::vector<int8_t> message(kk::topkMessageBytes(2, false), 0);
  std::string e;
  EXPECT_FALSE(kk::topkCompress(grad.data(), grad.data(), 4, 5, false, message.data(), nullptr, &e));
  EXPECT_NE(e.find("expects 1 <= k <= n, got k 5 of n 4"), std::string::npos) << e;
  const int32_t outside = 9;
  std::memcpy(message.data() + 4, &outside, 4);
  EXPECT_FALSE(kk::topkDecompress(message.data(), 1, 4, 2, false, out.data(), &e));
  std::printf("topk_decompress: %s\n", e.c_str());
  EXPECT_NE(e.find("the message of rank 0 holds index 9, outside [0, 4)"), std::string::npos) << e;
}

} // namespace
