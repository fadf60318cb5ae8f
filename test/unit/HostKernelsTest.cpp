//===- HostKernelsTest.cpp - host kernels vs the reference evaluator ------===//
//
// Every kernel of runtime/kernels/{Dense,Attention,Loss}.cpp runs on seeded
// random f32 inputs and is compared with the f64 reference evaluator running
// the op it implements (a one-op module per case, on the same f32-rounded
// inputs). The error of a value a against the reference r is
//   |a - r| / max(|r|, 1e-2 max|r|)
// (an f32 sum that cancels to near zero keeps the absolute error of its
// terms, so values under 1% of the tensor's largest are measured against
// that floor), and must stay below 1e-5. Each case prints its largest error and the first values
// compared. Each kernel also runs twice and must give the same bits.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Attention.h"
#include "runtime/kernels/Dense.h"
#include "runtime/kernels/Loss.h"

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include "test/unit/KernelTestInputs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace kiln::reference;
namespace kk = kiln::kernels;

namespace {

using namespace kiln::test;

//===----------------------------------------------------------------------===//
// Dense
//===----------------------------------------------------------------------===//

TEST(HostKernels, Embedding) {
  SeededRng rng(1, "embedding");
  int64_t vocab = 11, hidden = 37, b = 2, s = 13;
  std::vector<RefTensor> in = {normal(rng, {vocab, hidden}), ids(rng, {b, s}, vocab)};
  std::string t = ty({vocab, hidden}), i = ty({b, s}, "i32"), h = ty({b, s, hidden});
  checkKernel("embedding", "func.func @f(%t: " + t + ", %i: " + i + ") -> " + h +
                         " {\n  %h = kiln.embedding %t, %i : (" + t + ", " + i + ") -> " + h +
                         "\n  return %h : " + h + "\n}\n",
        in, [&](const std::vector<RefTensor> &x) {
          Floats out(b * s * hidden);
          kk::embeddingForward(out.data(), f32(x[0]).data(), i32(x[1]).data(), b * s, vocab,
                               hidden);
          return std::vector<Floats>{out};
        });
  std::vector<RefTensor> gin = {normal(rng, {b, s, hidden}), in[1]};
  checkKernel("embedding_grad", "func.func @f(%d: " + h + ", %i: " + i + ") -> " + t +
                              " {\n  %g = kiln.embedding_grad %d, %i : (" + h + ", " + i +
                              ") -> " + t + "\n  return %g : " + t + "\n}\n",
        gin, [&](const std::vector<RefTensor> &x) {
          Floats dt(vocab * hidden, 123.0f); // overwritten, not accumulated into
          kk::embeddingBackward(dt.data(), f32(x[0]).data(), i32(x[1]).data(), b * s, vocab,
                                hidden);
          return std::vector<Floats>{dt};
        });
}

TEST(HostKernels, Linear) {
  SeededRng rng(2, "linear");
  int64_t b = 2, s = 7, in = 24, out = 40;
  std::string x = ty({b, s, in}), w = ty({out, in}), y = ty({b, s, out});
  checkKernel("linear", "func.func @f(%x: " + x + ", %w: " + w + ") -> " + y +
                      " {\n  %y = kiln.linear %x, %w : (" + x + ", " + w + ") -> " + y +
                      "\n  return %y : " + y + "\n}\n",
        {normal(rng, {b, s, in}), normal(rng, {out, in})}, [&](const std::vector<RefTensor> &a) {
          Floats r(b * s * out);
          kk::linearForward(r.data(), f32(a[0]).data(), f32(a[1]).data(), b * s, in, out);
          return std::vector<Floats>{r};
        });
  checkKernel("linear_dgrad", "func.func @f(%d: " + y + ", %w: " + w + ") -> " + x +
                            " {\n  %r = kiln.linear_dgrad %d, %w : (" + y + ", " + w + ") -> " +
                            x + "\n  return %r : " + x + "\n}\n",
        {normal(rng, {b, s, out}), normal(rng, {out, in})}, [&](const std::vector<RefTensor> &a) {
          Floats r(b * s * in);
          kk::linearDgrad(r.data(), f32(a[0]).data(), f32(a[1]).data(), b * s, in, out);
          return std::vector<Floats>{r};
        });
  checkKernel("linear_wgrad", "func.func @f(%d: " + y + ", %x: " + x + ") -> " + w +
                            " {\n  %r = kiln.linear_wgrad %d, %x : (" + y + ", " + x + ") -> " +
                            w + "\n  return %r : " + w + "\n}\n",
        {normal(rng, {b, s, out}), normal(rng, {b, s, in})}, [&](const std::vector<RefTensor> &a) {
          Floats r(out * in);
          kk::linearWgrad(r.data(), f32(a[0]).data(), f32(a[1]).data(), b * s, in, out);
          return std::vector<Floats>{r};
        });
}

TEST(HostKernels, RmsNorm) {
  SeededRng rng(3, "rms_norm");
  int64_t b = 3, s = 5, h = 48, rows = b * s;
  std::string x = ty({b, s, h}), g = ty({h});
  const char *eps = "{epsilon = 1.0e-05 : f64}";
  RefTensor xs = normal(rng, {b, s, h}), gamma = normal(rng, {h});
  checkKernel("rms_norm", "func.func @f(%x: " + x + ", %g: " + g + ") -> " + x +
                        " {\n  %y = kiln.rms_norm %x, %g " + eps + " : (" + x + ", " + g +
                        ") -> " + x + "\n  return %y : " + x + "\n}\n",
        {xs, gamma}, [&](const std::vector<RefTensor> &a) {
          Floats y(rows * h);
          kk::rmsNormForward(y.data(), f32(a[0]).data(), f32(a[1]).data(), rows, h, 1e-5f);
          return std::vector<Floats>{y};
        });
  checkKernel("rms_norm_grad",
        "func.func @f(%d: " + x + ", %x: " + x + ", %g: " + g + ") -> (" + x + ", " + g +
            ") {\n  %dx, %dg = kiln.rms_norm_grad %d, %x, %g " + eps + " : (" + x + ", " + x +
            ", " + g + ") -> (" + x + ", " + g + ")\n  return %dx, %dg : " + x + ", " + g +
            "\n}\n",
        {normal(rng, {b, s, h}), xs, gamma}, [&](const std::vector<RefTensor> &a) {
          Floats dx(rows * h), dg(h);
          kk::rmsNormBackward(dx.data(), dg.data(), f32(a[0]).data(), f32(a[1]).data(),
                              f32(a[2]).data(), rows, h, 1e-5f);
          return std::vector<Floats>{dx, dg};
        });
}

TEST(HostKernels, Activations) {
  SeededRng rng(4, "activations");
  int64_t r = 4, c = 33, n = r * c;
  std::string t = ty({r, c});
  RefTensor x = normal(rng, {r, c}, 3.0), up = normal(rng, {r, c}), dy = normal(rng, {r, c});
  checkKernel("silu", "func.func @f(%x: " + t + ") -> " + t + " {\n  %y = kiln.silu %x : " + t +
                    "\n  return %y : " + t + "\n}\n",
        {x}, [&](const std::vector<RefTensor> &a) {
          Floats y(n);
          kk::siluForward(y.data(), f32(a[0]).data(), n);
          return std::vector<Floats>{y};
        });
  checkKernel("silu_grad", "func.func @f(%d: " + t + ", %x: " + t +
                         ") -> " + t + " {\n  %y = kiln.silu_grad %d, %x : " + t +
                         "\n  return %y : " + t + "\n}\n",
        {dy, x}, [&](const std::vector<RefTensor> &a) {
          Floats y(n);
          kk::siluBackward(y.data(), f32(a[0]).data(), f32(a[1]).data(), n);
          return std::vector<Floats>{y};
        });
  checkKernel("swiglu", "func.func @f(%g: " + t + ", %u: " + t + ") -> " + t +
                      " {\n  %y = kiln.swiglu %g, %u : " + t + "\n  return %y : " + t + "\n}\n",
        {x, up}, [&](const std::vector<RefTensor> &a) {
          Floats y(n);
          kk::swigluForward(y.data(), f32(a[0]).data(), f32(a[1]).data(), n);
          return std::vector<Floats>{y};
        });
  checkKernel("swiglu_grad",
        "func.func @f(%d: " + t + ", %g: " + t + ", %u: " + t + ") -> (" + t + ", " + t +
            ") {\n  %dg, %du = kiln.swiglu_grad %d, %g, %u : (" + t + ", " + t + ", " + t +
            ") -> (" + t + ", " + t + ")\n  return %dg, %du : " + t + ", " + t + "\n}\n",
        {dy, x, up}, [&](const std::vector<RefTensor> &a) {
          Floats dg(n), du(n);
          kk::swigluBackward(dg.data(), du.data(), f32(a[0]).data(), f32(a[1]).data(),
                             f32(a[2]).data(), n);
          return std::vector<Floats>{dg, du};
        });
  checkKernel("scale", "func.func @f(%x: " + t + ") -> " + t +
                     " {\n  %y = kiln.scale %x {factor = 3.0e-01 : f64} : " + t +
                     "\n  return %y : " + t + "\n}\n",
        {x}, [&](const std::vector<RefTensor> &a) {
          Floats y(n);
          kk::scale(y.data(), f32(a[0]).data(), n, 0.3f);
          return std::vector<Floats>{y};
        });
}

//===----------------------------------------------------------------------===//
// Rope and attention
//===----------------------------------------------------------------------===//

TEST(HostKernels, Rope) {
  int64_t b = 2, s = 6, h = 3, d = 8;
  std::string t = ty({b, s, h, d});
  const char *yarnAttr = "yarn = #kiln.yarn<factor = 4.0, original_max_position_embeddings = 4, "
                         "beta_fast = 32.0, beta_slow = 1.0, mscale = 0.707, "
                         "mscale_all_dim = 0.0>";
  kk::YarnConfig yarn{4.0, 4.0, 32.0, 1.0, 0.707, 0.0};
  for (int variant = 0; variant < 2; ++variant)
    for (int transpose = 0; transpose < 2; ++transpose) {
      bool interleaved = variant == 1;
      double theta = variant ? 10000.0 : 500000.0;
      std::string attrs = variant ? std::string("theta = 10000.0 : f64, interleaved = true, ") +
                                        yarnAttr
                                  : "theta = 500000.0 : f64, interleaved = false";
      if (transpose)
        attrs += ", transpose = true";
      SeededRng rng(5 + variant, "rope");
      std::string name = std::string(variant ? "rope interleaved+yarn" : "rope halves") +
                         (transpose ? " transpose" : "");
      checkKernel(name,
            "func.func @f(%x: " + t + ") -> " + t + " {\n  %y = kiln.rope %x {" + attrs +
                "} : " + t + "\n  return %y : " + t + "\n}\n",
            {normal(rng, {b, s, h, d})}, [&](const std::vector<RefTensor> &a) {
              Floats y(b * s * h * d);
              kk::ropeForward(y.data(), f32(a[0]).data(), b, s, h, d, theta, interleaved,
                              variant ? &yarn : nullptr, transpose);
              return std::vector<Floats>{y};
            });
    }
}

void checkAttention(const std::string &name, int64_t b, int64_t s, int64_t h, int64_t kvh,
                    int64_t dqk, int64_t dv, bool causal, uint64_t seed) {
  SeededRng rng(seed, "attention");
  std::string q = ty({b, s, h, dqk}), k = ty({b, s, kvh, dqk}), v = ty({b, s, kvh, dv}),
              o = ty({b, s, h, dv});
  float scale = 1.0f / std::sqrt(float(dqk));
  char attrBuf[96];
  std::snprintf(attrBuf, sizeof(attrBuf), "{scale = %.17e : f64, causal = %s}", double(scale),
                causal ? "true" : "false");
  std::string attrs = attrBuf;
  std::vector<RefTensor> in = {normal(rng, {b, s, h, dqk}), normal(rng, {b, s, kvh, dqk}),
                               normal(rng, {b, s, kvh, dv}), normal(rng, {b, s, h, dv})};
  checkKernel(name,
        "func.func @f(%q: " + q + ", %k: " + k + ", %v: " + v + ") -> " + o +
            " {\n  %o = kiln.attention %q, %k, %v " + attrs + " : (" + q + ", " + k + ", " + v +
            ") -> " + o + "\n  return %o : " + o + "\n}\n",
        {in[0], in[1], in[2]}, [&](const std::vector<RefTensor> &a) {
          Floats out(b * s * h * dv);
          kk::attentionForward(out.data(), f32(a[0]).data(), f32(a[1]).data(), f32(a[2]).data(),
                               b, s, h, kvh, dqk, dv, scale, causal);
          return std::vector<Floats>{out};
        });
  checkKernel(name + " grad",
        "func.func @f(%q: " + q + ", %k: " + k + ", %v: " + v + ", %do: " + o + ") -> (" + q +
            ", " + k + ", " + v + ") {\n  %dq, %dk, %dv = kiln.attention_grad %q, %k, %v, %do " +
            attrs + " : (" + q + ", " + k + ", " + v + ", " + o + ") -> (" + q + ", " + k + ", " +
            v + ")\n  return %dq, %dk, %dv : " + q + ", " + k + ", " + v + "\n}\n",
        in, [&](const std::vector<RefTensor> &a) {
          Floats dq(b * s * h * dqk), dk(b * s * kvh * dqk), dvv(b * s * kvh * dv);
          kk::attentionBackward(dq.data(), dk.data(), dvv.data(), f32(a[0]).data(),
                                f32(a[1]).data(), f32(a[2]).data(), f32(a[3]).data(), b, s, h,
                                kvh, dqk, dv, scale, causal);
          return std::vector<Floats>{dq, dk, dvv};
        });
}

TEST(HostKernels, AttentionCausalGqa) {
  checkAttention("attention causal gqa 4/2 dqk 16 dv 8", 2, 9, 4, 2, 16, 8, true, 20);
}
TEST(HostKernels, AttentionNonCausalMha) {
  checkAttention("attention full mha dqk 12 dv 20", 2, 7, 3, 3, 12, 20, false, 21);
}
TEST(HostKernels, AttentionCausalMqa) {
  checkAttention("attention causal mqa 4/1 dqk 8 dv 8", 1, 11, 4, 1, 8, 8, true, 22);
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

void checkCrossEntropy(const std::string &name, float eps, uint64_t seed) {
  SeededRng rng(seed, "cross_entropy");
  int64_t b = 4, s = 7, vocab = 50, n = b * s;
  std::string l = ty({b, s, vocab}), t = ty({b, s}, "i32"), m = ty({b, s}), z = ty({});
  char attrBuf[64];
  std::snprintf(attrBuf, sizeof(attrBuf), "{label_smoothing = %.9e : f64}", double(eps));
  std::string attrs = attrBuf;
  RefTensor logits = normal(rng, {b, s, vocab}, 3.0), targets = ids(rng, {b, s}, vocab),
            mask = tensor({b, s});
  for (int64_t i = 0; i < n; ++i) {
    mask.data[i] = i % 5 == 2 ? 0.0 : (i % 7 == 3 ? 0.5 : 1.0);
    if (mask.data[i] == 0)
      targets.data[i] = -100; // never read
  }
  checkKernel(name,
        "func.func @f(%l: " + l + ", %t: " + t + ", %m: " + m + ") -> " + z +
            " {\n  %r = kiln.cross_entropy %l, %t, %m " + attrs + " : (" + l + ", " + t + ", " +
            m + ") -> " + z + "\n  return %r : " + z + "\n}\n",
        {logits, targets, mask}, [&](const std::vector<RefTensor> &a) {
          float loss = kk::crossEntropyForward(f32(a[0]).data(), i32(a[1]).data(),
                                               f32(a[2]).data(), n, vocab, eps);
          return std::vector<Floats>{{loss}};
        });
  checkKernel(name + " grad",
        "func.func @f(%l: " + l + ", %t: " + t + ", %m: " + m + ", %d: " + z + ") -> " + l +
            " {\n  %r = kiln.cross_entropy_grad %l, %t, %m, %d " + attrs + " : (" + l + ", " +
            t + ", " + m + ", " + z + ") -> " + l + "\n  return %r : " + l + "\n}\n",
        {logits, targets, mask, tensor({}, {1.75})}, [&](const std::vector<RefTensor> &a) {
          Floats d(n * vocab, 9.0f);
          kk::crossEntropyBackward(d.data(), f32(a[0]).data(), i32(a[1]).data(),
                                   f32(a[2]).data(), n, vocab, eps, 1.75f);
          return std::vector<Floats>{d};
        });
}

TEST(HostKernels, CrossEntropy) { checkCrossEntropy("cross_entropy masked", 0.0f, 30); }
TEST(HostKernels, CrossEntropySmoothing) {
  checkCrossEntropy("cross_entropy masked smoothing 0.1", 0.1f, 31);
}

TEST(HostKernels, CrossEntropyAllMasked) {
  Floats logits(2 * 3, 1.0f), mask(2, 0.0f), d(6, 5.0f);
  std::vector<int32_t> targets = {-100, 7};
  EXPECT_EQ(kk::crossEntropyForward(logits.data(), targets.data(), mask.data(), 2, 3, 0.0f),
            0.0f);
  kk::crossEntropyBackward(d.data(), logits.data(), targets.data(), mask.data(), 2, 3, 0.0f,
                           1.0f);
  for (float v : d)
    EXPECT_EQ(v, 0.0f);
}

TEST(HostKernelsDeathTest, RejectsOutOfRangeIds) {
  Floats table(4 * 2), out(2 * 2);
  std::vector<int32_t> bad = {1, 4};
  EXPECT_DEATH(kk::embeddingForward(out.data(), table.data(), bad.data(), 2, 4, 2),
               "token id 4 at position 1 is outside the table \\[0, 4\\)");
}

} // namespace
