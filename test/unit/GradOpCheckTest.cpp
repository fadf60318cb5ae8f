//===- GradOpCheckTest.cpp - backward ops vs finite differences of forwards ===//
//
// For every forward op with a gradient op, a module holds
//   @f(inputs) -> outputs                      the forward op(s)
//   @g(inputs, cotangents of f's float outputs) -> input gradients
// where @g uses the backward op. With seeded random inputs x and cotangents c,
// each gradient @g returns is compared with central finite differences of
// L(x) = sum(c * f(x)), all on the reference evaluator in f64:
//   fd = sum(c * (f(x + h e) - f(x - h e))) / ((x + h) - (x - h)),  h = 1e-6 (|x| + 1)
// (summing c * (f+ - f-) rather than L+ - L- is the same number in exact
// arithmetic and keeps the outputs that do not move out of the rounding).
// The error of a gradient value g is |fd - g| / max(|g|, 1e-3 max|g|); each
// case prints its largest error and the first nonzero values compared, and
// must stay below 1e-6. That is within ~3x of the f64 rounding floor of
// h = 1e-6 for the softmax-based losses, so their inputs are shifted by a
// constant, which softmax ignores, to make h larger (checked over 60 seeds:
// all cases <= 4e-7). Integer outputs (routing indices, offsets) must not change
// under the perturbation; router cases also check that a 1000x larger random
// perturbation keeps the selection, i.e. that the top-k margin is large.
//
// The optimizer and bookkeeping ops (adamw, lr_schedule, global_norm,
// clip_scale, bias_update, expert_load) have no gradient: they get execution
// tests against closed forms, and every runtime error of the new rules is
// checked once.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

using namespace kiln::reference;
using mlir::FailureOr;
using llvm::SmallVector;

namespace {

constexpr double kTolerance = 1e-6;

/// Parses kiln IR into a verified module.
class Module {
public:
  explicit Module(const std::string &source) {
    context.loadDialect<kiln::KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                        mlir::tensor::TensorDialect>();
    module = mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  }
  bool ok() const { return module && mlir::succeeded(mlir::verify(*module)); }
  mlir::func::FuncOp func(llvm::StringRef name) {
    return module->lookupSymbol<mlir::func::FuncOp>(name);
  }
  FailureOr<SmallVector<RefTensor>> call(llvm::StringRef name, llvm::ArrayRef<RefTensor> args) {
    Evaluator evaluator(*module);
    return evaluator.call(name, args);
  }
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

RefTensor tensor(llvm::ArrayRef<int64_t> shape, std::vector<double> values = {}) {
  RefTensor t(mlir::Type(), shape);
  if (!values.empty())
    t.data = std::move(values);
  return t;
}

RefTensor normal(SeededRng &rng, llvm::ArrayRef<int64_t> shape, double scale = 1.0) {
  RefTensor t = tensor(shape);
  for (double &v : t.data)
    v = scale * rng.normal();
  return t;
}

/// `t + offset`. Softmax-based ops are shift-invariant in each row; moving
/// the inputs away from 0 makes h = 1e-6 (|x| + 1) larger against f64
/// rounding without changing the function.
RefTensor shifted(RefTensor t, double offset) {
  for (double &v : t.data)
    v += offset;
  return t;
}

double maxAbs(const RefTensor &t) {
  double m = 0;
  for (double v : t.data)
    m = std::max(m, std::fabs(v));
  return m;
}

struct GradCheck {
  std::string name;
  std::string source;               ///< a module with @f and @g
  std::vector<RefTensor> inputs;    ///< arguments of @f
  std::vector<unsigned> wrt;        ///< inputs whose gradients @g returns, in order
  bool checkMargin = false;         ///< integer outputs must survive a 1e-3 perturbation
};

/// Runs one gradient check; returns the largest relative error.
double runGradCheck(const GradCheck &gc) {
  Module m(gc.source);
  EXPECT_TRUE(m.ok()) << gc.name << ": module does not parse or verify";
  if (!m.ok())
    return INFINITY;
  mlir::func::FuncOp f = m.func("f");
  FailureOr<SmallVector<RefTensor>> y = m.call("f", gc.inputs);
  EXPECT_TRUE(mlir::succeeded(y)) << gc.name;
  if (mlir::failed(y))
    return INFINITY;

  // Cotangents for the float outputs; integer outputs must stay unchanged.
  SeededRng rng(7, gc.name + ".cotangents");
  std::vector<bool> isFloat;
  std::vector<RefTensor> c(y->size());
  SmallVector<RefTensor> gArgs(gc.inputs.begin(), gc.inputs.end());
  for (auto [i, type] : llvm::enumerate(f.getResultTypes())) {
    isFloat.push_back(mlir::isa<mlir::FloatType>(mlir::getElementTypeOrSelf(type)));
    if (isFloat.back()) {
      c[i] = normal(rng, (*y)[i].shape);
      gArgs.push_back(c[i]);
    }
  }
  FailureOr<SmallVector<RefTensor>> grads = m.call("g", gArgs);
  EXPECT_TRUE(mlir::succeeded(grads)) << gc.name;
  if (mlir::failed(grads))
    return INFINITY;
  EXPECT_EQ(grads->size(), gc.wrt.size()) << gc.name;

  auto sameIntegers = [&](const SmallVector<RefTensor> &z) {
    for (size_t o = 0; o < z.size(); ++o)
      if (!isFloat[o] && z[o].data != (*y)[o].data)
        return false;
    return true;
  };
  if (gc.checkMargin) {
    SeededRng noise(11, gc.name + ".margin");
    SmallVector<RefTensor> x(gc.inputs.begin(), gc.inputs.end());
    for (unsigned a : gc.wrt)
      for (double &v : x[a].data)
        v += 1e-3 * (noise.uniform() < 0.5 ? -1 : 1);
    FailureOr<SmallVector<RefTensor>> z = m.call("f", x);
    EXPECT_TRUE(mlir::succeeded(z) && sameIntegers(*z))
        << gc.name << ": the selection changes under a 1e-3 perturbation; pick inputs "
                      "with a larger top-k margin";
  }

  double worst = 0;
  size_t compared = 0;
  int shown = 0;
  std::string firstValues;
  for (auto [n, a] : llvm::enumerate(gc.wrt)) {
    const RefTensor &g = (*grads)[n];
    EXPECT_EQ(g.shape, gc.inputs[a].shape) << gc.name << ": gradient #" << n;
    double floor = std::max(1e-3 * maxAbs(g), 1e-300);
    SmallVector<RefTensor> x(gc.inputs.begin(), gc.inputs.end());
    for (int64_t e = 0; e < x[a].numElements(); ++e) {
      double x0 = gc.inputs[a].data[e], h = 1e-6 * (std::fabs(x0) + 1);
      double xp = x0 + h, xm = x0 - h;
      x[a].data[e] = xp;
      FailureOr<SmallVector<RefTensor>> fp = m.call("f", x);
      x[a].data[e] = xm;
      FailureOr<SmallVector<RefTensor>> fm = m.call("f", x);
      x[a].data[e] = x0;
      EXPECT_TRUE(mlir::succeeded(fp) && mlir::succeeded(fm)) << gc.name;
      if (mlir::failed(fp) || mlir::failed(fm))
        return INFINITY;
      EXPECT_TRUE(sameIntegers(*fp) && sameIntegers(*fm))
          << gc.name << ": an integer output (routing) changed when perturbing input " << a
          << " element " << e;
      double fd = 0;
      for (size_t o = 0; o < y->size(); ++o)
        if (isFloat[o])
          for (int64_t i = 0; i < c[o].numElements(); ++i)
            fd += c[o].data[i] * ((*fp)[o].data[i] - (*fm)[o].data[i]);
      fd /= xp - xm;
      double err = std::fabs(fd - g.data[e]) / std::max(std::fabs(g.data[e]), floor);
      worst = std::max(worst, err);
      ++compared;
      if (n == 0 && shown < 3 && std::fabs(g.data[e]) >= floor) { // skip exact zeros
        char buf[96];
        std::snprintf(buf, sizeof(buf), "%s fd %.12g g %.12g", shown++ ? ";" : "", fd,
                      g.data[e]);
        firstValues += buf;
      }
    }
  }
  std::printf("[%-34s] max relative error %.2e over %zu values; first nonzero d(input %u):%s\n",
              gc.name.c_str(), worst, compared, gc.wrt.empty() ? 0 : gc.wrt[0],
              firstValues.c_str());
  EXPECT_LE(worst, kTolerance) << gc.name;
  return worst;
}

//===----------------------------------------------------------------------===//
// Dense ops
//===----------------------------------------------------------------------===//

TEST(GradOpCheck, Linear) {
  SeededRng rng(1, "linear");
  runGradCheck({"linear -> linear_dgrad/wgrad", R"mlir(
    func.func @f(%x: tensor<2x3x4xf32>, %w: tensor<5x4xf32>) -> tensor<2x3x5xf32> {
      %y = kiln.linear %x, %w : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
      return %y : tensor<2x3x5xf32>
    }
    func.func @g(%x: tensor<2x3x4xf32>, %w: tensor<5x4xf32>, %dy: tensor<2x3x5xf32>)
        -> (tensor<2x3x4xf32>, tensor<5x4xf32>) {
      %dx = kiln.linear_dgrad %dy, %w : (tensor<2x3x5xf32>, tensor<5x4xf32>) -> tensor<2x3x4xf32>
      %dw = kiln.linear_wgrad %dy, %x : (tensor<2x3x5xf32>, tensor<2x3x4xf32>) -> tensor<5x4xf32>
      return %dx, %dw : tensor<2x3x4xf32>, tensor<5x4xf32>
    })mlir",
                {normal(rng, {2, 3, 4}), normal(rng, {5, 4})}, {0, 1}});
}

TEST(GradOpCheck, Matmul) {
  // lhs' is [2, 3, 4] (M = 3, K = 4), rhs' is [2, 4, 5] (N = 5), in all four layouts.
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      std::string a = ta ? "tensor<2x4x3xf32>" : "tensor<2x3x4xf32>";
      std::string b = tb ? "tensor<2x5x4xf32>" : "tensor<2x4x5xf32>";
      std::string attrs = std::string("{transpose_lhs = ") + (ta ? "true" : "false") +
                          ", transpose_rhs = " + (tb ? "true" : "false") + "}";
      std::string types = "(" + a + ", " + b;
      std::string source =
          "func.func @f(%a: " + a + ", %b: " + b + ") -> tensor<2x3x5xf32> {\n"
          "  %c = kiln.matmul %a, %b " + attrs + " : " + types + ") -> tensor<2x3x5xf32>\n"
          "  return %c : tensor<2x3x5xf32>\n}\n"
          "func.func @g(%a: " + a + ", %b: " + b + ", %dc: tensor<2x3x5xf32>) -> (" + a +
          ", " + b + ") {\n"
          "  %da, %db = kiln.matmul_grad %a, %b, %dc " + attrs + " : " + types +
          ", tensor<2x3x5xf32>) -> (" + a + ", " + b + ")\n"
          "  return %da, %db : " + a + ", " + b + "\n}\n";
      SeededRng rng(2 + ta * 2 + tb, "matmul");
      RefTensor lhs = normal(rng, ta ? llvm::ArrayRef<int64_t>{2, 4, 3}
                                     : llvm::ArrayRef<int64_t>{2, 3, 4});
      RefTensor rhs = normal(rng, tb ? llvm::ArrayRef<int64_t>{2, 5, 4}
                                     : llvm::ArrayRef<int64_t>{2, 4, 5});
      runGradCheck({std::string("matmul ") + (ta ? "lhs^T " : "lhs ") + (tb ? "rhs^T" : "rhs") +
                        " -> matmul_grad",
                    source, {lhs, rhs}, {0, 1}});
    }
}

TEST(GradOpCheck, Embedding) {
  // Token 2 appears three times, rows 0 and 5 never: their gradient is 0.
  SeededRng rng(3, "embedding");
  runGradCheck({"embedding -> embedding_grad", R"mlir(
    func.func @f(%t: tensor<6x3xf32>, %ids: tensor<2x4xi32>) -> tensor<2x4x3xf32> {
      %h = kiln.embedding %t, %ids : (tensor<6x3xf32>, tensor<2x4xi32>) -> tensor<2x4x3xf32>
      return %h : tensor<2x4x3xf32>
    }
    func.func @g(%t: tensor<6x3xf32>, %ids: tensor<2x4xi32>, %dh: tensor<2x4x3xf32>) -> tensor<6x3xf32> {
      %dt = kiln.embedding_grad %dh, %ids : (tensor<2x4x3xf32>, tensor<2x4xi32>) -> tensor<6x3xf32>
      return %dt : tensor<6x3xf32>
    })mlir",
                {normal(rng, {6, 3}), tensor({2, 4}, {2, 1, 4, 2, 3, 2, 1, 4})}, {0}});
}

TEST(GradOpCheck, RMSNorm) {
  SeededRng rng(4, "rms_norm");
  runGradCheck({"rms_norm -> rms_norm_grad", R"mlir(
    func.func @f(%x: tensor<2x3x6xf32>, %gamma: tensor<6xf32>) -> tensor<2x3x6xf32> {
      %y = kiln.rms_norm %x, %gamma {epsilon = 1.0e-05 : f64} : (tensor<2x3x6xf32>, tensor<6xf32>) -> tensor<2x3x6xf32>
      return %y : tensor<2x3x6xf32>
    }
    func.func @g(%x: tensor<2x3x6xf32>, %gamma: tensor<6xf32>, %dy: tensor<2x3x6xf32>)
        -> (tensor<2x3x6xf32>, tensor<6xf32>) {
      %dx, %dg = kiln.rms_norm_grad %dy, %x, %gamma {epsilon = 1.0e-05 : f64}
          : (tensor<2x3x6xf32>, tensor<2x3x6xf32>, tensor<6xf32>) -> (tensor<2x3x6xf32>, tensor<6xf32>)
      return %dx, %dg : tensor<2x3x6xf32>, tensor<6xf32>
    })mlir",
                {normal(rng, {2, 3, 6}), normal(rng, {6})}, {0, 1}});
}

TEST(GradOpCheck, Silu) {
  SeededRng rng(5, "silu");
  runGradCheck({"silu -> silu_grad", R"mlir(
    func.func @f(%x: tensor<3x5xf32>) -> tensor<3x5xf32> {
      %y = kiln.silu %x : tensor<3x5xf32>
      return %y : tensor<3x5xf32>
    }
    func.func @g(%x: tensor<3x5xf32>, %dy: tensor<3x5xf32>) -> tensor<3x5xf32> {
      %dx = kiln.silu_grad %dy, %x : tensor<3x5xf32>
      return %dx : tensor<3x5xf32>
    })mlir",
                {normal(rng, {3, 5}, 3.0)}, {0}});
}

TEST(GradOpCheck, Swiglu) {
  SeededRng rng(6, "swiglu");
  runGradCheck({"swiglu -> swiglu_grad", R"mlir(
    func.func @f(%gate: tensor<3x5xf32>, %up: tensor<3x5xf32>) -> tensor<3x5xf32> {
      %y = kiln.swiglu %gate, %up : tensor<3x5xf32>
      return %y : tensor<3x5xf32>
    }
    func.func @g(%gate: tensor<3x5xf32>, %up: tensor<3x5xf32>, %dy: tensor<3x5xf32>)
        -> (tensor<3x5xf32>, tensor<3x5xf32>) {
      %dg, %du = kiln.swiglu_grad %dy, %gate, %up
          : (tensor<3x5xf32>, tensor<3x5xf32>, tensor<3x5xf32>) -> (tensor<3x5xf32>, tensor<3x5xf32>)
      return %dg, %du : tensor<3x5xf32>, tensor<3x5xf32>
    })mlir",
                {normal(rng, {3, 5}, 3.0), normal(rng, {3, 5})}, {0, 1}});
}

TEST(GradOpCheck, Broadcast) {
  SeededRng rng(7, "broadcast");
  runGradCheck({"broadcast -> unbroadcast", R"mlir(
    func.func @f(%x: tensor<2x1x3x1xf32>) -> tensor<2x4x3x5xf32> {
      %y = kiln.broadcast %x : (tensor<2x1x3x1xf32>) -> tensor<2x4x3x5xf32>
      return %y : tensor<2x4x3x5xf32>
    }
    func.func @g(%x: tensor<2x1x3x1xf32>, %dy: tensor<2x4x3x5xf32>) -> tensor<2x1x3x1xf32> {
      %dx = kiln.unbroadcast %dy : (tensor<2x4x3x5xf32>) -> tensor<2x1x3x1xf32>
      return %dx : tensor<2x1x3x1xf32>
    })mlir",
                {normal(rng, {2, 1, 3, 1})}, {0}});
}

//===----------------------------------------------------------------------===//
// Rope and attention
//===----------------------------------------------------------------------===//

TEST(GradOpCheck, Rope) {
  const char *yarn = "yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 4, "
                     "beta_fast = 32.0, beta_slow = 1.0, mscale = 0.707, mscale_all_dim = 0.0>";
  for (int variant = 0; variant < 2; ++variant) {
    std::string attrs = variant ? std::string("theta = 10000.0 : f64, interleaved = true, ") + yarn
                                : "theta = 500000.0 : f64, interleaved = false";
    std::string source =
        "func.func @f(%x: tensor<2x5x3x8xf32>) -> tensor<2x5x3x8xf32> {\n"
        "  %y = kiln.rope %x {" + attrs + "} : tensor<2x5x3x8xf32>\n"
        "  return %y : tensor<2x5x3x8xf32>\n}\n"
        "func.func @g(%x: tensor<2x5x3x8xf32>, %dy: tensor<2x5x3x8xf32>) -> tensor<2x5x3x8xf32> {\n"
        "  %dx = kiln.rope %dy {" + attrs + ", transpose = true} : tensor<2x5x3x8xf32>\n"
        "  return %dx : tensor<2x5x3x8xf32>\n}\n";
    SeededRng rng(8 + variant, "rope");
    runGradCheck({variant ? "rope interleaved+yarn -> rope^T" : "rope rotate_half -> rope^T",
                  source, {normal(rng, {2, 5, 3, 8})}, {0}});
  }
}

/// attention with q [2, 4, heads, dqk], k [2, 4, kvHeads, dqk], v [2, 4, kvHeads, dv].
void checkAttention(const std::string &name, int heads, int kvHeads, int dqk, int dv,
                    bool causal, uint64_t seed) {
  auto type = [](int h, int d) {
    return "tensor<2x4x" + std::to_string(h) + "x" + std::to_string(d) + "xf32>";
  };
  std::string q = type(heads, dqk), k = type(kvHeads, dqk), v = type(kvHeads, dv),
              o = type(heads, dv);
  std::string attrs = std::string("{scale = 0.4 : f64, causal = ") + (causal ? "true" : "false") + "}";
  std::string source =
      "func.func @f(%q: " + q + ", %k: " + k + ", %v: " + v + ") -> " + o + " {\n"
      "  %o = kiln.attention %q, %k, %v " + attrs + " : (" + q + ", " + k + ", " + v + ") -> " + o +
      "\n  return %o : " + o + "\n}\n"
      "func.func @g(%q: " + q + ", %k: " + k + ", %v: " + v + ", %do: " + o + ") -> (" + q +
      ", " + k + ", " + v + ") {\n"
      "  %dq, %dk, %dv = kiln.attention_grad %q, %k, %v, %do " + attrs + " : (" + q + ", " + k +
      ", " + v + ", " + o + ") -> (" + q + ", " + k + ", " + v + ")\n"
      "  return %dq, %dk, %dv : " + q + ", " + k + ", " + v + "\n}\n";
  SeededRng rng(seed, "attention");
  runGradCheck({name, source,
                {normal(rng, {2, 4, heads, dqk}), normal(rng, {2, 4, kvHeads, dqk}),
                 normal(rng, {2, 4, kvHeads, dv})},
                {0, 1, 2}});
}

TEST(GradOpCheck, AttentionCausal) { checkAttention("attention causal MHA -> attention_grad", 2, 2, 4, 4, true, 20); }
TEST(GradOpCheck, AttentionNonCausal) { checkAttention("attention non-causal -> attention_grad", 2, 2, 4, 4, false, 21); }
TEST(GradOpCheck, AttentionGQA) { checkAttention("attention GQA 4q/2kv -> attention_grad", 4, 2, 4, 3, true, 22); }
TEST(GradOpCheck, AttentionMLA) { checkAttention("attention MLA dqk 6, dv 3 -> attention_grad", 2, 2, 6, 3, true, 23); }

//===----------------------------------------------------------------------===//
// MoE routing and experts
//===----------------------------------------------------------------------===//

/// Router logits [tokens, experts] with a large selection margin: each token's
/// logits are a random permutation of evenly spaced values, 0.5 apart.
RefTensor routerLogits(SeededRng &rng, int64_t tokens, int64_t experts) {
  RefTensor t = tensor({tokens, experts});
  std::vector<int64_t> order(experts);
  for (int64_t tok = 0; tok < tokens; ++tok) {
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = experts - 1; i > 0; --i)
      std::swap(order[i], order[rng.next() % (i + 1)]);
    for (int64_t e = 0; e < experts; ++e)
      t.data[tok * experts + e] = 0.5 * (double(order[e]) - (experts - 1) / 2.0) +
                                  0.05 * (rng.uniform() - 0.5);
  }
  return t;
}

void checkRouter(const std::string &name, const std::string &attrs, const std::string &gradAttrs,
                 std::vector<double> bias, uint64_t seed) {
  std::string types = "(tensor<5x8xf32>, tensor<8xf32>) -> (tensor<5x2xi32>, tensor<5x2xf32>)";
  std::string source =
      "func.func @f(%l: tensor<5x8xf32>, %b: tensor<8xf32>) -> (tensor<5x2xi32>, tensor<5x2xf32>) {\n"
      "  %i, %w = kiln.router %l, %b {" + attrs + "} : " + types + "\n"
      "  return %i, %w : tensor<5x2xi32>, tensor<5x2xf32>\n}\n"
      "func.func @g(%l: tensor<5x8xf32>, %b: tensor<8xf32>, %dw: tensor<5x2xf32>) -> tensor<5x8xf32> {\n"
      "  %i, %w = kiln.router %l, %b {" + attrs + "} : " + types + "\n"
      "  %dl = kiln.router_grad %l, %i, %dw {" + gradAttrs + "}\n"
      "      : (tensor<5x8xf32>, tensor<5x2xi32>, tensor<5x2xf32>) -> tensor<5x8xf32>\n"
      "  return %dl : tensor<5x8xf32>\n}\n";
  SeededRng rng(seed, "router");
  RefTensor logits = routerLogits(rng, 5, 8);
  if (attrs.find("softmax") != std::string::npos)
    logits = shifted(logits, 20.0);
  GradCheck gc{name, source, {logits, tensor({8}, bias)}, {0}};
  gc.checkMargin = true;
  runGradCheck(gc);
}

TEST(GradOpCheck, RouterSigmoidNormGrouped) {
  checkRouter("router sigmoid norm top2_sum groups",
              "scoring = \"sigmoid\", group_score = \"top2_sum\", n_group = 4 : i64, "
              "topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, "
              "routed_scaling_factor = 2.5 : f64",
              "scoring = \"sigmoid\", norm_topk_prob = true, routed_scaling_factor = 2.5 : f64",
              {0.0, 0.0, 0.125, 0.0, -0.125, 0.0, 0.0, 0.0}, 30);
}
TEST(GradOpCheck, RouterSigmoidNoNorm) {
  checkRouter("router sigmoid no-norm",
              "scoring = \"sigmoid\", group_score = \"top2_sum\", n_group = 1 : i64, "
              "topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = false, "
              "routed_scaling_factor = 1.5 : f64",
              "scoring = \"sigmoid\", norm_topk_prob = false, routed_scaling_factor = 1.5 : f64",
              std::vector<double>(8, 0.0), 31);
}
TEST(GradOpCheck, RouterSoftmaxNorm) {
  checkRouter("router softmax norm max groups",
              "scoring = \"softmax\", group_score = \"max\", n_group = 2 : i64, "
              "topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, "
              "routed_scaling_factor = 1.0 : f64",
              "scoring = \"softmax\", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64",
              std::vector<double>(8, 0.0), 32);
}
TEST(GradOpCheck, RouterSoftmaxNoNorm) {
  checkRouter("router softmax no-norm",
              "scoring = \"softmax\", group_score = \"top2_sum\", n_group = 1 : i64, "
              "topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = false, "
              "routed_scaling_factor = 2.0 : f64",
              "scoring = \"softmax\", norm_topk_prob = false, routed_scaling_factor = 2.0 : f64",
              std::vector<double>(8, 0.0), 33);
}

TEST(GradOpCheck, Dispatch) {
  SeededRng rng(40, "dispatch");
  runGradCheck({"dispatch -> dispatch_grad", R"mlir(
    func.func @f(%x: tensor<5x3xf32>, %i: tensor<5x2xi32>) -> (tensor<10x3xf32>, tensor<5xi32>, tensor<10xi32>) {
      %r, %o, %s = kiln.dispatch %x, %i {num_experts = 4 : i64}
          : (tensor<5x3xf32>, tensor<5x2xi32>) -> (tensor<10x3xf32>, tensor<5xi32>, tensor<10xi32>)
      return %r, %o, %s : tensor<10x3xf32>, tensor<5xi32>, tensor<10xi32>
    }
    func.func @g(%x: tensor<5x3xf32>, %i: tensor<5x2xi32>, %dr: tensor<10x3xf32>) -> tensor<5x3xf32> {
      %r, %o, %s = kiln.dispatch %x, %i {num_experts = 4 : i64}
          : (tensor<5x3xf32>, tensor<5x2xi32>) -> (tensor<10x3xf32>, tensor<5xi32>, tensor<10xi32>)
      %dx = kiln.dispatch_grad %dr, %s {top_k = 2 : i64} : (tensor<10x3xf32>, tensor<10xi32>) -> tensor<5x3xf32>
      return %dx : tensor<5x3xf32>
    })mlir",
                {normal(rng, {5, 3}), tensor({5, 2}, {3, 0, 1, 3, 0, 2, 3, 1, 2, 0})}, {0}});
}

TEST(GradOpCheck, Combine) {
  SeededRng rng(41, "combine");
  runGradCheck({"combine -> combine_grad", R"mlir(
    func.func @f(%r: tensor<8x3xf32>, %w: tensor<4x2xf32>, %s: tensor<8xi32>) -> tensor<4x3xf32> {
      %y = kiln.combine %r, %w, %s : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
      return %y : tensor<4x3xf32>
    }
    func.func @g(%r: tensor<8x3xf32>, %w: tensor<4x2xf32>, %s: tensor<8xi32>, %dy: tensor<4x3xf32>)
        -> (tensor<8x3xf32>, tensor<4x2xf32>) {
      %dr, %dw = kiln.combine_grad %r, %w, %s, %dy
          : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>, tensor<4x3xf32>) -> (tensor<8x3xf32>, tensor<4x2xf32>)
      return %dr, %dw : tensor<8x3xf32>, tensor<4x2xf32>
    })mlir",
                {normal(rng, {8, 3}), normal(rng, {4, 2}), tensor({8}, {5, 0, 7, 2, 1, 6, 3, 4})},
                {0, 1}});
}

/// grouped_matmul of 7 rows [7, 3] by `experts` weights [2, 3] at `offsets`.
void checkGroupedMatmul(const std::string &name, int64_t experts,
                        const std::vector<double> &offsets) {
  SeededRng rng(42, name);
  const std::string w = "tensor<" + std::to_string(experts) + "x2x3xf32>",
                    o = "tensor<" + std::to_string(experts + 1) + "xi32>";
  runGradCheck({name, R"mlir(
    func.func @f(%x: tensor<7x3xf32>, %w: )mlir" + w + ", %o: " + o + R"mlir() -> tensor<7x2xf32> {
      %y = kiln.grouped_matmul %x, %w, %o : (tensor<7x3xf32>, )mlir" + w + ", " + o + R"mlir() -> tensor<7x2xf32>
      return %y : tensor<7x2xf32>
    }
    func.func @g(%x: tensor<7x3xf32>, %w: )mlir" + w + ", %o: " + o + R"mlir(, %dy: tensor<7x2xf32>)
        -> (tensor<7x3xf32>, )mlir" + w + R"mlir() {
      %dx = kiln.grouped_matmul_dgrad %dy, %w, %o : (tensor<7x2xf32>, )mlir" + w + ", " + o + R"mlir() -> tensor<7x3xf32>
      %dw = kiln.grouped_matmul_wgrad %dy, %x, %o : (tensor<7x2xf32>, tensor<7x3xf32>, )mlir" + o + ") -> " + w + R"mlir(
      return %dx, %dw : tensor<7x3xf32>, )mlir" + w + R"mlir(
    })mlir",
                {normal(rng, {7, 3}), normal(rng, {experts, 2, 3}),
                 tensor({experts + 1}, offsets)},
                {0, 1}});
}

// Expert 1 has no rows: its weight gradient is 0.
TEST(GradOpCheck, GroupedMatmul) {
  checkGroupedMatmul("grouped_matmul (empty expert) -> d/wgrad", 4, {0, 2, 2, 5, 7});
}

// Offsets end at row 5 of 7 (receive-buffer capacity): rows 5-6 are not
// multiplied, so their input gradient is 0 and they add nothing to dw.
TEST(GradOpCheck, GroupedMatmulSpareRows) {
  checkGroupedMatmul("grouped_matmul (spare rows) -> d/wgrad", 2, {0, 3, 5});
}

TEST(GradOpCheck, SegmentTranspose) {
  // Gradient of the reorder is the inverse reorder, both ways; 3 sources x 2
  // experts, one segment empty, 2 spare rows (zero gradient).
  SeededRng rng(44, "segment_transpose");
  for (bool inverse : {false, true}) {
    const std::string attr = inverse ? " {inverse = true}" : "";
    const std::string offsets = inverse ? "tensor<4xi32>" : "tensor<3xi32>";
    const std::string back = inverse ? "tensor<3xi32>" : "tensor<4xi32>";
    runGradCheck({std::string("segment_transpose") + (inverse ? " inverse" : "") +
                      " -> its inverse",
                  R"mlir(
    func.func @f(%x: tensor<9x2xf32>, %c: tensor<3x2xi32>) -> tensor<9x2xf32> {
      %y, %o = kiln.segment_transpose %x, %c)mlir" + attr + R"mlir( : (tensor<9x2xf32>, tensor<3x2xi32>) -> (tensor<9x2xf32>, )mlir" + offsets + R"mlir()
      return %y : tensor<9x2xf32>
    }
    func.func @g(%x: tensor<9x2xf32>, %c: tensor<3x2xi32>, %dy: tensor<9x2xf32>) -> tensor<9x2xf32> {
      %dx, %o = kiln.segment_transpose %dy, %c {inverse = )mlir" + (inverse ? "false" : "true") + R"mlir(} : (tensor<9x2xf32>, tensor<3x2xi32>) -> (tensor<9x2xf32>, )mlir" + back + R"mlir()
      return %dx : tensor<9x2xf32>
    })mlir",
                  {normal(rng, {9, 2}), tensor({3, 2}, {2, 1, 0, 3, 1, 0})},
                  {0}});
  }
}

/// router -> [expert_capacity ->] dispatch -> grouped_matmul -> combine,
/// differentiated end to end (x through dispatch and the rows, logits
/// through the routing weights). With `capacity`, tokens 0 and 1 route to
/// the same experts and each expert takes one pair per 2 tokens: token 1's
/// pairs drop and must get no gradient through the experts.
void checkMoELayer(const std::string &name, bool capacity) {
  SeededRng rng(43, "moe_layer");
  const std::string router = R"mlir(
      %ri, %rw = kiln.router %l, %b {scoring = "sigmoid", group_score = "top2_sum", n_group = 2 : i64,
          topk_group = 1 : i64, top_k = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.0 : f64}
          : (tensor<4x8xf32>, tensor<8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>))mlir";
  const std::string kept =
      capacity ? R"mlir(
      %i = kiln.expert_capacity %ri {num_experts = 8 : i64, group_tokens = 2 : i64, capacity = 1 : i64}
          : (tensor<4x2xi32>) -> tensor<4x2xi32>)mlir"
               : R"mlir(
      %i = arith.addi %ri, %ri_zero : tensor<4x2xi32>)mlir";
  const std::string forward = router + R"mlir(
      %ri_zero = arith.constant dense<0> : tensor<4x2xi32>)mlir" + kept + R"mlir(
      %r, %o, %s = kiln.dispatch %x, %i {num_experts = 8 : i64}
          : (tensor<4x3xf32>, tensor<4x2xi32>) -> (tensor<8x3xf32>, tensor<9xi32>, tensor<8xi32>)
      %h = kiln.grouped_matmul %r, %w, %o : (tensor<8x3xf32>, tensor<8x3x3xf32>, tensor<9xi32>) -> tensor<8x3xf32>)mlir";
  GradCheck gc{name, R"mlir(
    func.func @f(%x: tensor<4x3xf32>, %l: tensor<4x8xf32>, %b: tensor<8xf32>, %w: tensor<8x3x3xf32>)
        -> (tensor<4x3xf32>, tensor<9xi32>) {)mlir" + forward + R"mlir(
      %y = kiln.combine %h, %rw, %s : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x3xf32>
      return %y, %o : tensor<4x3xf32>, tensor<9xi32>
    }
    func.func @g(%x: tensor<4x3xf32>, %l: tensor<4x8xf32>, %b: tensor<8xf32>, %w: tensor<8x3x3xf32>,
                 %dy: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4x8xf32>, tensor<8x3x3xf32>) {)mlir" +
                   forward + R"mlir(
      %dh, %drw = kiln.combine_grad %h, %rw, %s, %dy
          : (tensor<8x3xf32>, tensor<4x2xf32>, tensor<8xi32>, tensor<4x3xf32>) -> (tensor<8x3xf32>, tensor<4x2xf32>)
      %dr = kiln.grouped_matmul_dgrad %dh, %w, %o : (tensor<8x3xf32>, tensor<8x3x3xf32>, tensor<9xi32>) -> tensor<8x3xf32>
      %dw = kiln.grouped_matmul_wgrad %dh, %r, %o : (tensor<8x3xf32>, tensor<8x3xf32>, tensor<9xi32>) -> tensor<8x3x3xf32>
      %dx = kiln.dispatch_grad %dr, %s {top_k = 2 : i64} : (tensor<8x3xf32>, tensor<8xi32>) -> tensor<4x3xf32>
      %dl = kiln.router_grad %l, %ri, %drw {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 2.0 : f64}
          : (tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x8xf32>
      return %dx, %dl, %dw : tensor<4x3xf32>, tensor<4x8xf32>, tensor<8x3x3xf32>
    })mlir",
               {normal(rng, {4, 3}), routerLogits(rng, 4, 8), tensor({8}), normal(rng, {8, 3, 3})},
               {0, 1, 3}};
  if (capacity) // token 1 routes like token 0, up to a small shift
    for (int64_t e = 0; e < 8; ++e)
      gc.inputs[1].data[8 + e] = gc.inputs[1].data[e] + 0.01 * double(e % 2);
  gc.checkMargin = true;
  runGradCheck(gc);
  if (capacity) {
    // Token 1's two pairs dropped (tokens 2 and 3 may collide too): at most
    // 6 of the 8 rows reach an expert.
    Module m(gc.source);
    FailureOr<SmallVector<RefTensor>> y = m.call("f", gc.inputs);
    ASSERT_TRUE(mlir::succeeded(y));
    EXPECT_LE((*y)[1].data[8], 6.0);
  }
}

TEST(GradOpCheck, MoELayer) { checkMoELayer("moe layer (router..combine) chain", false); }
TEST(GradOpCheck, MoELayerCapacity) {
  checkMoELayer("moe layer with expert_capacity drops", true);
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

void checkCrossEntropy(const std::string &name, double eps, uint64_t seed) {
  std::string attrs = "{label_smoothing = " + std::to_string(eps) + " : f64}";
  std::string source =
      "func.func @f(%l: tensor<2x3x5xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>) -> tensor<f32> {\n"
      "  %loss = kiln.cross_entropy %l, %t, %m " + attrs +
      " : (tensor<2x3x5xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<f32>\n"
      "  return %loss : tensor<f32>\n}\n"
      "func.func @g(%l: tensor<2x3x5xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>, %d: tensor<f32>)"
      " -> tensor<2x3x5xf32> {\n"
      "  %dl = kiln.cross_entropy_grad %l, %t, %m, %d " + attrs +
      " : (tensor<2x3x5xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3x5xf32>\n"
      "  return %dl : tensor<2x3x5xf32>\n}\n";
  SeededRng rng(seed, "cross_entropy");
  // Position (0, 2) is masked with target -100 (never read); its gradient is 0.
  runGradCheck({name, source,
                {shifted(normal(rng, {2, 3, 5}, 2.0), 20.0), tensor({2, 3}, {1, 4, -100, 0, 2, 2}),
                 tensor({2, 3}, {1, 1, 0, 1, 1, 1})},
                {0}});
}

TEST(GradOpCheck, CrossEntropy) { checkCrossEntropy("cross_entropy masked -> _grad", 0.0, 50); }
TEST(GradOpCheck, CrossEntropySmoothing) {
  checkCrossEntropy("cross_entropy masked smoothing 0.1", 0.1, 51);
}

/// GRPO's loss against finite differences, with ratios on both sides of
/// both clip bounds (old log-probs spread over [-4, 0]) and advantages of
/// both signs; position (1, 0) is masked.
void checkGrpoLoss(const std::string &name, const std::string &aggregation, bool count,
                   uint64_t seed) {
  std::string attrs = "{temperature = 0.7 : f64, clip_low = 0.2 : f64, clip_high = 0.28 : f64, "
                      "beta = 0.04 : f64, aggregation = \"" + aggregation +
                      "\", max_tokens = 4 : i64}";
  std::string types = "tensor<2x3x5xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<2xf32>, "
                      "tensor<2x3xf32>, tensor<2x3xf32>";
  std::string countArg = count ? ", %n: tensor<f32>" : "";
  std::string countUse = count ? " count %n" : "";
  std::string countType = count ? ", tensor<f32>" : "";
  std::string source =
      "func.func @f(%l: tensor<2x3x5xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>, "
      "%a: tensor<2xf32>, %o: tensor<2x3xf32>, %r: tensor<2x3xf32>" + countArg + ") -> tensor<f32> {\n"
      "  %loss = kiln.grpo_loss %l, %t, %m, %a, %o, %r" + countUse + " " + attrs + " : (" + types +
      countType + ") -> tensor<f32>\n  return %loss : tensor<f32>\n}\n"
      "func.func @g(%l: tensor<2x3x5xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xf32>, "
      "%a: tensor<2xf32>, %o: tensor<2x3xf32>, %r: tensor<2x3xf32>" + countArg +
      ", %d: tensor<f32>) -> tensor<2x3x5xf32> {\n"
      "  %dl = kiln.grpo_loss_grad %l, %t, %m, %a, %o, %r, %d" + countUse + " " + attrs + " : (" +
      types + ", tensor<f32>" + countType + ") -> tensor<2x3x5xf32>\n"
      "  return %dl : tensor<2x3x5xf32>\n}\n";
  SeededRng rng(seed, "grpo_loss");
  std::vector<RefTensor> inputs = {normal(rng, {2, 3, 5}, 1.5), tensor({2, 3}, {1, 4, 0, 3, 2, 2}),
                                   tensor({2, 3}, {1, 1, 1, 0, 1, 1}), tensor({2}, {0.8, -1.3}),
                                   tensor({2, 3}, {-0.4, -3.9, -1.7, -2.0, -1.1, -2.6}),
                                   tensor({2, 3}, {-1.5, -2.2, -0.9, -1.0, -3.0, -1.8})};
  if (count)
    inputs.push_back(tensor({}, {7.0}));
  runGradCheck({name, source, inputs, {0}});
}

TEST(GradOpCheck, GrpoLossTokenMean) {
  checkGrpoLoss("grpo_loss token-mean -> _grad", "token-mean", false, 70);
}
TEST(GradOpCheck, GrpoLossSeqMean) {
  checkGrpoLoss("grpo_loss seq-mean-token-mean", "seq-mean-token-mean", false, 71);
}
TEST(GradOpCheck, GrpoLossDrGrpo) {
  checkGrpoLoss("grpo_loss seq-mean-token-sum-norm", "seq-mean-token-sum-norm", false, 72);
}
TEST(GradOpCheck, GrpoLossGlobalCount) {
  checkGrpoLoss("grpo_loss token-mean, global count", "token-mean", true, 73);
}

void checkBalanceLoss(const std::string &scoring, uint64_t seed) {
  std::string attrs = "{scoring = \"" + scoring + "\", num_sequences = 2 : i64}";
  std::string source =
      "func.func @f(%l: tensor<6x4xf32>, %i: tensor<6x2xi32>) -> tensor<f32> {\n"
      "  %loss = kiln.balance_loss %l, %i " + attrs +
      " : (tensor<6x4xf32>, tensor<6x2xi32>) -> tensor<f32>\n"
      "  return %loss : tensor<f32>\n}\n"
      "func.func @g(%l: tensor<6x4xf32>, %i: tensor<6x2xi32>, %d: tensor<f32>) -> tensor<6x4xf32> {\n"
      "  %dl = kiln.balance_loss_grad %l, %i, %d " + attrs +
      " : (tensor<6x4xf32>, tensor<6x2xi32>, tensor<f32>) -> tensor<6x4xf32>\n"
      "  return %dl : tensor<6x4xf32>\n}\n";
  SeededRng rng(seed, "balance_loss");
  runGradCheck({"balance_loss " + scoring + " -> _grad", source,
                {normal(rng, {6, 4}), tensor({6, 2}, {0, 1, 0, 2, 3, 0, 1, 2, 1, 3, 2, 1})},
                {0}});
}

TEST(GradOpCheck, BalanceLossSigmoid) { checkBalanceLoss("sigmoid", 60); }
TEST(GradOpCheck, BalanceLossSoftmax) { checkBalanceLoss("softmax", 61); }

//===----------------------------------------------------------------------===//
// Execution tests of the ops without a gradient
//===----------------------------------------------------------------------===//

TEST(TrainOpExecution, AdamWClosedForm) {
  // With a constant gradient, the bias-corrected moments are exactly g and
  // g^2 at every step, so each step moves p by -lr * g / (|g| + eps) after
  // the decay p * (1 - lr * weight_decay).
  Module m(R"mlir(
    func.func @step(%p: tensor<2x3xf32>, %g: tensor<2x3xf32>, %m: tensor<2x3xf32>, %v: tensor<2x3xf32>,
                    %lr: tensor<f32>, %t: tensor<i64>, %s: tensor<f32>)
        -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
      %p0, %m0, %v0 = kiln.adamw %p, %g, %m, %v, %lr, %t, %s
          {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
          : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>)
          -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>)
      %p1, %m1, %v1 = kiln.adamw %p, %g, %m, %v, %lr, %t, %s
          {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}
          : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>)
          -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>)
      return %p0, %m0, %v0, %p1, %m1, %v1
          : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
    })mlir");
  ASSERT_TRUE(m.ok());
  SeededRng rng(70, "adamw");
  RefTensor p = normal(rng, {2, 3}), grad = normal(rng, {2, 3});
  double lr = 0.01, scale = 0.5;
  for (int decayed = 0; decayed < 2; ++decayed) {
    RefTensor param = p, mom = tensor({2, 3}), var = tensor({2, 3});
    std::vector<double> want = p.data;
    double worst = 0;
    for (int t = 1; t <= 3; ++t) {
      FailureOr<SmallVector<RefTensor>> out =
          m.call("step", {param, grad, mom, var, tensor({}, {lr}), tensor({}, {double(t)}),
                          tensor({}, {scale})});
      ASSERT_TRUE(mlir::succeeded(out));
      param = (*out)[3 * decayed];
      mom = (*out)[3 * decayed + 1];
      var = (*out)[3 * decayed + 2];
      for (int64_t i = 0; i < 6; ++i) {
        double g = grad.data[i] * scale;
        want[i] = want[i] * (1 - lr * 0.1 * decayed) - lr * g / (std::fabs(g) + 1e-8);
        worst = std::max(worst, std::fabs(param.data[i] - want[i]) / std::fabs(want[i]));
      }
    }
    std::printf("[adamw weight_decay %.1f, 3 steps] p[0..1] %.15g %.15g (closed form %.15g "
                "%.15g); max relative error %.2e\n",
                0.1 * decayed, param.data[0], param.data[1], want[0], want[1], worst);
    EXPECT_LE(worst, 1e-12);
  }
}

/// Evaluates `op` (one line of IR using %x : `argType`) on each value of `xs`.
std::vector<double> evalScalarOp(const std::string &argType, const std::string &resultType,
                                 const std::string &op, const std::vector<double> &xs) {
  Module m("func.func @f(%x: " + argType + ") -> " + resultType + " {\n  %r = " + op +
           "\n  return %r : " + resultType + "\n}\n");
  EXPECT_TRUE(m.ok()) << op;
  std::vector<double> out;
  for (double x : xs) {
    FailureOr<SmallVector<RefTensor>> r = m.call("f", {tensor({}, {x})});
    EXPECT_TRUE(mlir::succeeded(r));
    out.push_back(mlir::succeeded(r) ? (*r)[0].data[0] : NAN);
  }
  return out;
}

TEST(TrainOpExecution, LrSchedule) {
  // lr 1, min_lr 0.1, 4 warmup steps, 12 total: warmup t/4, the peak at t = 4,
  // the midpoint (1 + 0.1) / 2 at t = 8, the floor from t = 12 on.
  std::vector<double> steps = {1, 2, 3, 4, 5, 8, 11, 12, 13, 100};
  std::vector<double> lr = evalScalarOp(
      "tensor<i64>", "tensor<f32>",
      "kiln.lr_schedule %x {lr = 1.0 : f64, min_lr = 0.1 : f64, warmup_steps = 4 : i64, "
      "total_steps = 12 : i64} : (tensor<i64>) -> tensor<f32>",
      steps);
  std::printf("[lr_schedule W 4 N 12] t=1..4: %g %g %g %g; t=8: %.17g; t=12: %.17g; t=100: %g\n",
              lr[0], lr[1], lr[2], lr[3], lr[5], lr[7], lr[9]);
  for (int i = 0; i < 4; ++i)
    EXPECT_DOUBLE_EQ(lr[i], steps[i] / 4);
  EXPECT_NEAR(lr[5], 0.55, 1e-15);
  EXPECT_NEAR(lr[7], 0.1, 1e-15);
  EXPECT_NEAR(lr[8], 0.1, 1e-15);
  EXPECT_NEAR(lr[9], 0.1, 1e-15);
  for (int i = 4; i < 8; ++i)
    EXPECT_LT(lr[i], lr[i - 1]) << "decay after the warmup must be decreasing";
  // total_steps == warmup_steps: the peak at t = W, then straight to the floor.
  std::vector<double> flat = evalScalarOp(
      "tensor<i64>", "tensor<f32>",
      "kiln.lr_schedule %x {lr = 2.0 : f64, min_lr = 0.5 : f64, warmup_steps = 3 : i64, "
      "total_steps = 3 : i64} : (tensor<i64>) -> tensor<f32>",
      {3, 4, 10});
  EXPECT_DOUBLE_EQ(flat[0], 2.0);
  EXPECT_NEAR(flat[1], 0.5, 1e-15);
  EXPECT_NEAR(flat[2], 0.5, 1e-15);
}

TEST(TrainOpExecution, GlobalNormAndClipScale) {
  Module m(R"mlir(
    func.func @f(%a: tensor<2x3xf32>, %b: tensor<4xf32>, %c: tensor<f32>) -> (tensor<f32>, tensor<f32>, tensor<f32>) {
      %n = kiln.global_norm %a, %b, %c : (tensor<2x3xf32>, tensor<4xf32>, tensor<f32>) -> tensor<f32>
      %s = kiln.clip_scale %n {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
      %off = kiln.clip_scale %n {max_norm = 0.0 : f64} : (tensor<f32>) -> tensor<f32>
      return %n, %s, %off : tensor<f32>, tensor<f32>, tensor<f32>
    })mlir");
  ASSERT_TRUE(m.ok());
  SeededRng rng(71, "global_norm");
  for (double scale : {3.0, 0.01}) {
    RefTensor a = normal(rng, {2, 3}, scale), b = normal(rng, {4}, scale), c = normal(rng, {}, scale);
    double ss = 0;
    for (const RefTensor *t : {&a, &b, &c})
      for (double v : t->data)
        ss += v * v;
    FailureOr<SmallVector<RefTensor>> r = m.call("f", {a, b, c});
    ASSERT_TRUE(mlir::succeeded(r));
    double norm = std::sqrt(ss);
    std::printf("[global_norm/clip_scale] norm %.17g (want %.17g), scale %.17g, disabled %g\n",
                (*r)[0].data[0], norm, (*r)[1].data[0], (*r)[2].data[0]);
    EXPECT_NEAR((*r)[0].data[0], norm, 1e-15 * norm);
    EXPECT_DOUBLE_EQ((*r)[1].data[0], std::min(1.0, 1.0 / (norm + 1e-6)));
    EXPECT_EQ((*r)[2].data[0], 1.0);
  }
}

TEST(TrainOpExecution, ExpertLoadMatchesDispatchAndBiasUpdate) {
  // expert_load counts what dispatch's offsets delimit; bias_update moves
  // under-loaded experts up, over-loaded down and leaves the mean-loaded alone.
  Module m(R"mlir(
    func.func @f(%x: tensor<6x1xf32>, %i: tensor<6x2xi32>, %b: tensor<4xf32>)
        -> (tensor<4xf32>, tensor<5xi32>, tensor<4xf32>) {
      %load = kiln.expert_load %i {num_experts = 4 : i64} : (tensor<6x2xi32>) -> tensor<4xf32>
      %r, %o, %s = kiln.dispatch %x, %i {num_experts = 4 : i64}
          : (tensor<6x1xf32>, tensor<6x2xi32>) -> (tensor<12x1xf32>, tensor<5xi32>, tensor<12xi32>)
      %b2 = kiln.bias_update %b, %load {speed = 0.25 : f64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
      return %load, %o, %b2 : tensor<4xf32>, tensor<5xi32>, tensor<4xf32>
    })mlir");
  ASSERT_TRUE(m.ok());
  // Loads 5, 3, 1, 3: mean 3, so experts 1 and 3 tie with the mean.
  RefTensor idx = tensor({6, 2}, {0, 1, 0, 3, 2, 0, 1, 3, 0, 1, 3, 0});
  FailureOr<SmallVector<RefTensor>> r =
      m.call("f", {tensor({6, 1}), idx, tensor({4}, {0.5, -0.5, 0.0, 1.0})});
  ASSERT_TRUE(mlir::succeeded(r));
  const RefTensor &load = (*r)[0], &offsets = (*r)[1], &bias = (*r)[2];
  std::printf("[expert_load/bias_update] load %g %g %g %g; bias' %g %g %g %g\n", load.data[0],
              load.data[1], load.data[2], load.data[3], bias.data[0], bias.data[1],
              bias.data[2], bias.data[3]);
  EXPECT_EQ(load.data, (std::vector<double>{5, 3, 1, 3}));
  for (int e = 0; e < 4; ++e)
    EXPECT_EQ(load.data[e], offsets.data[e + 1] - offsets.data[e]);
  EXPECT_EQ(bias.data, (std::vector<double>{0.25, -0.5, 0.25, 1.0}));
}

//===----------------------------------------------------------------------===//
// Runtime errors of the new rules
//===----------------------------------------------------------------------===//

/// Runs @f on `args` and returns the error it reports ("" if none).
std::string runtimeError(const std::string &source, llvm::ArrayRef<RefTensor> args) {
  Module m(source);
  EXPECT_TRUE(m.ok()) << source;
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&m.context, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
      message = d.str();
    return mlir::success();
  });
  FailureOr<SmallVector<RefTensor>> r = m.call("f", args);
  EXPECT_EQ(mlir::failed(r), !message.empty());
  return message;
}

TEST(GradOpRuntimeErrors, BadValuesAreReported) {
  auto ints = [](std::vector<double> v) { return tensor({int64_t(v.size())}, v); };
  struct Case {
    std::string source;
    std::vector<RefTensor> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {R"(func.func @f(%dy: tensor<3x2xf32>, %ids: tensor<3xi32>) -> tensor<4x2xf32> {
            %r = kiln.embedding_grad %dy, %ids : (tensor<3x2xf32>, tensor<3xi32>) -> tensor<4x2xf32>
            return %r : tensor<4x2xf32> })",
       {tensor({3, 2}), ints({0, 4, 1})},
       "reference evaluator: token id 4 at flat position 1 is outside the embedding table [0, 4)"},
      {R"(func.func @f(%l: tensor<2x4xf32>, %i: tensor<2x1xi32>, %w: tensor<2x1xf32>) -> tensor<2x4xf32> {
            %r = kiln.router_grad %l, %i, %w {scoring = "sigmoid", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64}
                : (tensor<2x4xf32>, tensor<2x1xi32>, tensor<2x1xf32>) -> tensor<2x4xf32>
            return %r : tensor<2x4xf32> })",
       {tensor({2, 4}), tensor({2, 1}, {1, -1}), tensor({2, 1})},
       "reference evaluator: expert index -1 of token 1 is outside [0, 4)"},
      {R"(func.func @f(%d: tensor<4x2xf32>, %s: tensor<4xi32>) -> tensor<2x2xf32> {
            %r = kiln.dispatch_grad %d, %s {top_k = 2 : i64} : (tensor<4x2xf32>, tensor<4xi32>) -> tensor<2x2xf32>
            return %r : tensor<2x2xf32> })",
       {tensor({4, 2}), ints({0, 1, 4, 2})},
       "reference evaluator: source entry 4 of row 2 is outside [0, 4)"},
      {R"(func.func @f(%r: tensor<4x2xf32>, %w: tensor<2x2xf32>, %s: tensor<4xi32>, %dy: tensor<2x2xf32>) -> tensor<2x2xf32> {
            %dr, %dw = kiln.combine_grad %r, %w, %s, %dy
                : (tensor<4x2xf32>, tensor<2x2xf32>, tensor<4xi32>, tensor<2x2xf32>) -> (tensor<4x2xf32>, tensor<2x2xf32>)
            return %dw : tensor<2x2xf32> })",
       {tensor({4, 2}), tensor({2, 2}), ints({3, -2, 0, 1}), tensor({2, 2})},
       "reference evaluator: source entry -2 of row 1 is outside [0, 4)"},
      {R"(func.func @f(%dy: tensor<3x1xf32>, %w: tensor<2x1x2xf32>, %o: tensor<3xi32>) -> tensor<3x2xf32> {
            %r = kiln.grouped_matmul_dgrad %dy, %w, %o : (tensor<3x1xf32>, tensor<2x1x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
            return %r : tensor<3x2xf32> })",
       {tensor({3, 1}), tensor({2, 1, 2}), ints({0, 2, 1})},
       "reference evaluator: expert offsets must start at 0, never decrease and end at most at the row count 3; got first 0, last 1"},
      {R"(func.func @f(%dy: tensor<3x1xf32>, %x: tensor<3x2xf32>, %o: tensor<3xi32>) -> tensor<2x1x2xf32> {
            %r = kiln.grouped_matmul_wgrad %dy, %x, %o : (tensor<3x1xf32>, tensor<3x2xf32>, tensor<3xi32>) -> tensor<2x1x2xf32>
            return %r : tensor<2x1x2xf32> })",
       {tensor({3, 1}), tensor({3, 2}), ints({1, 2, 3})},
       "reference evaluator: expert offsets must start at 0, never decrease and end at most at the row count 3; got first 1, last 3"},
      {R"(func.func @f(%l: tensor<2x3xf32>, %t: tensor<2xi32>, %m: tensor<2xf32>, %d: tensor<f32>) -> tensor<2x3xf32> {
            %r = kiln.cross_entropy_grad %l, %t, %m, %d : (tensor<2x3xf32>, tensor<2xi32>, tensor<2xf32>, tensor<f32>) -> tensor<2x3xf32>
            return %r : tensor<2x3xf32> })",
       {tensor({2, 3}), ints({-100, 3}), ints({0, 1}), tensor({}, {1})},
       "reference evaluator: target 3 at flat position 1 is outside [0, 3)"},
      {R"(func.func @f(%i: tensor<2x2xi32>) -> tensor<3xf32> {
            %r = kiln.expert_load %i {num_experts = 3 : i64} : (tensor<2x2xi32>) -> tensor<3xf32>
            return %r : tensor<3xf32> })",
       {tensor({2, 2}, {0, 2, 3, 1})},
       "reference evaluator: expert index 3 at flat position 2 is outside [0, 3) and not -1 "
         "(dropped)"},
      {R"(func.func @f(%l: tensor<2x3xf32>, %i: tensor<2x1xi32>) -> tensor<f32> {
            %r = kiln.balance_loss %l, %i {scoring = "softmax", num_sequences = 1 : i64} : (tensor<2x3xf32>, tensor<2x1xi32>) -> tensor<f32>
            return %r : tensor<f32> })",
       {tensor({2, 3}), tensor({2, 1}, {0, 5})},
       "reference evaluator: expert index 5 of token 1 is outside [0, 3)"},
      {R"(func.func @f(%l: tensor<2x3xf32>, %i: tensor<2x1xi32>, %d: tensor<f32>) -> tensor<2x3xf32> {
            %r = kiln.balance_loss_grad %l, %i, %d {scoring = "sigmoid", num_sequences = 2 : i64}
                : (tensor<2x3xf32>, tensor<2x1xi32>, tensor<f32>) -> tensor<2x3xf32>
            return %r : tensor<2x3xf32> })",
       {tensor({2, 3}), tensor({2, 1}, {-1, 0}), tensor({}, {1})},
       "reference evaluator: expert index -1 of token 0 is outside [0, 3)"},
      {R"(func.func @f(%t: tensor<i64>) -> tensor<f32> {
            %r = kiln.lr_schedule %t {lr = 1.0 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64}
                : (tensor<i64>) -> tensor<f32>
            return %r : tensor<f32> })",
       {tensor({}, {0})}, "reference evaluator: step 0 is not a 1-based step (expected >= 1)"},
      {R"(func.func @f(%p: tensor<2xf32>, %t: tensor<i64>, %s: tensor<f32>) -> tensor<2xf32> {
            %p2, %m2, %v2 = kiln.adamw %p, %p, %p, %p, %s, %t, %s
                {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}
                : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<f32>, tensor<i64>, tensor<f32>)
                -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
            return %p2 : tensor<2xf32> })",
       {tensor({2}), tensor({}, {-3}), tensor({}, {1})},
       "reference evaluator: step -3 is not a 1-based step (expected >= 1)"},
  };
  for (const Case &c : cases)
    EXPECT_EQ(runtimeError(c.source, c.args), c.message);
}

} // namespace
