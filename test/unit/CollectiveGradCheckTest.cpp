//===- CollectiveGradCheckTest.cpp - collective gradient rules vs finite differences
//
// The collectives' gradient rules (KilnCollectiveGrads.cpp) on the
// multi-rank reference evaluator. On a grid of 3 ranks, rank r computes
// L_r = sum(c_r * f_r(x)) where f is one collective of the ranks' inputs
// x_0, x_1, x_2; the loss of the SPMD program is L = sum_r L_r. kiln-autodiff
// (mode=gradient) gives each rank dL/dx_r through the adjoint collectives;
// each value is compared with central finite differences of L, perturbing
// one element of one rank's x and rerunning every rank:
//   fd = (L(x + h e) - L(x - h e)) / 2h,   h = 1e-6
// with the error |fd - g| / max(|g|, 1e-3 max|g|), which must stay below
// 1e-6 (the losses are linear or piecewise linear in x, so the differences
// are exact up to rounding). Each case prints its largest error.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/UpstreamGrads.h"
#include "dialects/kiln/reference/MultiRank.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

using namespace kiln;
using namespace kiln::reference;

namespace {

constexpr int kRanks = 3;

/// `body` maps %x (tensor<INxf32>) to %f (tensor<OUTxf32>); the loss is
/// linear(%f, %c) = sum(f * c) as a 0-d tensor.
std::string moduleFor(const std::string &body, int64_t in, int64_t out) {
  std::string x = "tensor<" + std::to_string(in) + "xf32>";
  std::string f = "tensor<" + std::to_string(out) + "xf32>";
  std::string row = "tensor<1x" + std::to_string(out) + "xf32>";
  return "module attributes {kiln.grid = #kiln.grid<axes = [\"dp\"], shape = [3]>} {\n"
         "func.func @forward(%x: " + x + ", %c: " + row + ") -> tensor<f32> {\n" + body +
         "\n  %f2 = tensor.expand_shape %f [[0, 1]] output_shape [1, " + std::to_string(out) +
         "] : " + f + " into " + row +
         "\n  %l = kiln.linear %f2, %c : (" + row + ", " + row + ") -> tensor<1x1xf32>"
         "\n  %s = tensor.collapse_shape %l [] : tensor<1x1xf32> into tensor<f32>"
         "\n  return %s : tensor<f32>\n}\n}\n";
}

void check(const std::string &label, const std::string &body, int64_t in, int64_t out,
           bool distinctInputs = true) {
  mlir::DialectRegistry registry;
  registerUpstreamGradientModels(registry); // tensor reshapes, arith
  mlir::MLIRContext context(registry);
  context.loadDialect<KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                      mlir::tensor::TensorDialect, mlir::math::MathDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(moduleFor(body, in, out), &context);
  ASSERT_TRUE(module) << label;
  mlir::PassManager pm(&context);
  KilnAutodiffOptions options;
  options.mode = "gradient";
  pm.addPass(createKilnAutodiff(options));
  ASSERT_TRUE(mlir::succeeded(pm.run(*module))) << label;

  std::mt19937_64 rng(std::hash<std::string>()(label));
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  mlir::Type f32 = mlir::Float32Type::get(&context);
  std::vector<llvm::SmallVector<RefTensor>> args(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    RefTensor x(f32, {in}), c(f32, {1, out});
    for (double &v : x.data)
      v = distinctInputs ? uniform(rng) : 0.0;
    for (double &v : c.data)
      v = uniform(rng);
    args[r] = {x, c};
  }
  auto every = [](int64_t) { return std::string("forward"); };
  auto total = [&](const std::vector<llvm::SmallVector<RefTensor>> &a) {
    auto out = evaluateAllRanks(*module, every, a);
    EXPECT_TRUE(mlir::succeeded(out));
    double sum = 0;
    if (mlir::succeeded(out))
      for (auto &results : *out)
        sum += results[0].data[0];
    return sum;
  };
  auto grads = evaluateAllRanks(*module, [](int64_t) { return std::string("forward_grad"); },
                                args);
  ASSERT_TRUE(mlir::succeeded(grads)) << label;
  double worst = 0, gmax = 0;
  for (int r = 0; r < kRanks; ++r)
    for (double g : (*grads)[r][1].data)
      gmax = std::max(gmax, std::fabs(g));
  for (int r = 0; r < kRanks; ++r)
    for (int64_t i = 0; i < in; ++i) {
      const double h = 1e-6;
      auto plus = args, minus = args;
      plus[r][0].data[i] += h;
      minus[r][0].data[i] -= h;
      double fd = (total(plus) - total(minus)) / (2 * h);
      double g = (*grads)[r][1].data[i];
      worst = std::max(worst, std::fabs(fd - g) / std::max(std::fabs(g), 1e-3 * gmax));
    }
  std::printf("[%s] %d ranks x %lld inputs, dL/dx_0[0] = %.10g, max error vs finite "
              "differences %.3g\n",
              label.c_str(), kRanks, (long long)in, (*grads)[0][1].data[0], worst);
  EXPECT_LE(worst, 1e-6) << label;
}

TEST(CollectiveGradCheck, AllReduceSum) {
  check("all_reduce sum", "  %f = kiln.all_reduce %x {kind = \"sum\", axes = [\"dp\"]} : tensor<4xf32>",
        4, 4);
}

TEST(CollectiveGradCheck, AllReduceMax) {
  // Distinct random inputs: every element has one maximum, away from ties.
  check("all_reduce max", "  %f = kiln.all_reduce %x {kind = \"max\", axes = [\"dp\"]} : tensor<4xf32>",
        4, 4);
}

TEST(CollectiveGradCheck, AllGather) {
  check("all_gather",
        "  %f = kiln.all_gather %x {axes = [\"dp\"], dim = 0 : i64} : (tensor<4xf32>) -> "
        "tensor<12xf32>",
        4, 12);
}

TEST(CollectiveGradCheck, ReduceScatter) {
  check("reduce_scatter",
        "  %f = kiln.reduce_scatter %x {kind = \"sum\", axes = [\"dp\"], dim = 0 : i64} : "
        "(tensor<6xf32>) -> tensor<2xf32>",
        6, 2);
}

TEST(CollectiveGradCheck, AllToAll) {
  // Each rank sends one 2-float row to every rank (counts [1, 1, 1]).
  check("all_to_all",
        "  %rows = tensor.expand_shape %x [[0, 1]] output_shape [3, 2] : tensor<6xf32> into "
        "tensor<3x2xf32>\n"
        "  %counts = arith.constant dense<1> : tensor<3xi64>\n"
        "  %recv, %rc = kiln.all_to_all %rows, %counts {axes = [\"dp\"]} : (tensor<3x2xf32>, "
        "tensor<3xi64>) -> (tensor<4x2xf32>, tensor<3xi64>)\n"
        "  %f = tensor.collapse_shape %recv [[0, 1]] : tensor<4x2xf32> into tensor<8xf32>",
        6, 8);
}

} // namespace
