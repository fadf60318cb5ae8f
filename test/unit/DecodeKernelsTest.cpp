//===- DecodeKernelsTest.cpp - KV-cache kernels vs plain f64 loops --------===//
//
// The kernels of runtime/kernels/Decode.h (KilnDecodeOps.td, and kiln.rope
// with `start`) run on seeded random f32 inputs and are compared with naive
// f64 loops written here from the ops' descriptions (rope's frequencies come
// from RopeMath.h, which the reference evaluator shares). The error of a
// value a against the reference r is, as in HostKernelsTest,
//   |a - r| / max(|r|, 1e-2 max|r|)
// and must stay below 1e-5. Then the identities a decode program relies on:
// cached_attention with start 0 over the whole cache is kiln.attention
// (causal) to 1e-6 of the largest value (2e-5 per value, each kernel being
// within 1e-5 of the truth); one query at position p is row p of it (and,
// bit for bit, row p of the kernel's own prefill); rope at start p is
// ropeForward's row p, bit for bit; cache_write in and out of place. Cache
// positions a query may not see hold NaN, so reading one would show. Each
// case prints its worst errors and the first values compared. Every kernel
// gives the same bits on 1 and 3 threads, and each argument check stops the
// process with its message.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Attention.h"
#include "runtime/kernels/Decode.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace kk = kiln::kernels;

namespace {

constexpr double kTolerance = 1e-5;
/// Kernel against kernel (cached_attention against attentionForward, both
/// f32, summing in different orders), relative to the largest value: per
/// value each is within a few 1e-6 of the f64 truth, so near the 1e-2 floor
/// the two differ by more than 1e-6.
constexpr double kKernelTolerance = 1e-6;
/// Values below kFloor * max|r| are measured against that floor.
constexpr double kFloor = 1e-2;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using Floats = std::vector<float>;
using Doubles = std::vector<double>;
using Starts = std::vector<int32_t>;

Floats normal(std::mt19937 &gen, int64_t n) {
  std::normal_distribution<float> dist;
  Floats v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

/// The largest error of `got` against `want`, per value (|a - r| /
/// max(|r|, kFloor max|r|), expected within `tolerance`) and against the
/// largest reference (max |a - r| / max|r|, expected within
/// `normTolerance`); prints both with the first values compared.
void compare(const std::string &name, const Floats &got, const Doubles &want,
             double tolerance = kTolerance, double normTolerance = kTolerance) {
  ASSERT_EQ(got.size(), want.size()) << name;
  double maxRef = 0, worst = 0, worstAbs = 0;
  for (double r : want)
    maxRef = std::max(maxRef, std::fabs(r));
  double floor = std::max(kFloor * maxRef, 1e-30);
  std::string first;
  for (size_t e = 0, shown = 0; e < got.size(); ++e) {
    double abs = std::fabs(got[e] - want[e]);
    if (std::isnan(abs))
      abs = INFINITY;
    worst = std::max(worst, abs / std::max(std::fabs(want[e]), floor));
    worstAbs = std::max(worstAbs, abs);
    if (shown < 3 && std::fabs(want[e]) >= floor) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s %.7g/%.9g", shown++ ? ";" : "", got[e], want[e]);
      first += buf;
    }
  }
  double norm = worstAbs / std::max(maxRef, 1e-30);
  std::printf("[%-44s] max relative error %.2e (to max|want| %.2e) over %zu values; first "
              "got/want:%s\n",
              name.c_str(), worst, norm, got.size(), first.c_str());
  EXPECT_LE(worst, tolerance) << name;
  EXPECT_LE(norm, normTolerance) << name;
}

/// Two f32 kernels: each within kTolerance of the truth per value, so within
/// twice that of each other; and within kKernelTolerance of the largest value.
void compare(const std::string &name, const Floats &got, const Floats &want) {
  compare(name, got, Doubles(want.begin(), want.end()), 2 * kTolerance, kKernelTolerance);
}

/// Expects `got` to have the bits of `want`; prints how many values differ.
void compareBits(const std::string &name, const Floats &got, const Floats &want) {
  ASSERT_EQ(got.size(), want.size()) << name;
  size_t differ = 0;
  for (size_t e = 0; e < got.size(); ++e)
    differ += std::memcmp(&got[e], &want[e], sizeof(float)) != 0;
  std::printf("[%-44s] %zu of %zu values differ in their bits; first %.9g/%.9g\n",
              name.c_str(), differ, got.size(), got.empty() ? 0.0f : got[0],
              want.empty() ? 0.0f : want[0]);
  EXPECT_EQ(differ, 0u) << name;
}

//===----------------------------------------------------------------------===//
// References, from the op descriptions
//===----------------------------------------------------------------------===//

/// kiln.rope: x[b, s, h] rotated pair by pair by position * inv_freq[i],
/// position = start[b] + s (s without start); cos and sin times YaRN's
/// magnitude, sin negated for the transpose.
Doubles refRope(const Floats &x, const Starts *start, int64_t batch, int64_t seq, int64_t heads,
                int64_t dim, double theta, bool interleaved, const kk::YarnConfig *yarn,
                bool transpose) {
  Doubles inv = kk::ropeInverseFrequencies(dim, theta, yarn), y(x.begin(), x.end());
  double m = kk::ropeMagnitude(yarn), sign = transpose ? -1.0 : 1.0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < dim / 2; ++i) {
          double angle = double((start ? (*start)[b] : 0) + s) * inv[i];
          double c = m * std::cos(angle), sn = sign * m * std::sin(angle);
          int64_t base = ((b * seq + s) * heads + h) * dim;
          int64_t i0 = base + (interleaved ? 2 * i : i);
          int64_t i1 = base + (interleaved ? 2 * i + 1 : i + dim / 2);
          y[i0] = double(x[i0]) * c - double(x[i1]) * sn;
          y[i1] = double(x[i1]) * c + double(x[i0]) * sn;
        }
  return y;
}

/// The sizes of one cached_attention case.
struct AttentionShape {
  int64_t batch, chunk, maxLen, heads, kvHeads, dqk, dv;
  int64_t qSize() const { return batch * chunk * heads * dqk; }
  int64_t kSize() const { return batch * maxLen * kvHeads * dqk; }
  int64_t vSize() const { return batch * maxLen * kvHeads * dv; }
  int64_t outSize() const { return batch * chunk * heads * dv; }
};

/// kiln.cached_attention: query c of row b (position p = start[b] + c)
/// attends keys 0..p, head h reading kv head h / (heads / kvHeads).
Doubles refCachedAttention(const Floats &q, const Floats &k, const Floats &v,
                           const Starts &start, const AttentionShape &a, double scale) {
  Doubles out(a.outSize());
  int64_t group = a.heads / a.kvHeads;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t c = 0; c < a.chunk; ++c)
      for (int64_t h = 0; h < a.heads; ++h) {
        int64_t g = h / group, keys = start[b] + c + 1;
        Doubles s(keys);
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < keys; ++j) {
          for (int64_t d = 0; d < a.dqk; ++d)
            s[j] += double(q[((b * a.chunk + c) * a.heads + h) * a.dqk + d]) *
                    double(k[((b * a.maxLen + j) * a.kvHeads + g) * a.dqk + d]);
          s[j] *= scale;
          m = std::max(m, s[j]);
        }
        for (double &x : s)
          sum += (x = std::exp(x - m));
        for (int64_t e = 0; e < a.dv; ++e) {
          double o = 0;
          for (int64_t j = 0; j < keys; ++j)
            o += s[j] * double(v[((b * a.maxLen + j) * a.kvHeads + g) * a.dv + e]);
          out[((b * a.chunk + c) * a.heads + h) * a.dv + e] = o / sum;
        }
      }
  return out;
}

Floats cachedAttention(const Floats &q, const Floats &k, const Floats &v, const Starts &start,
                       const AttentionShape &a, float scale) {
  Floats out(a.outSize(), kNaN);
  kk::cachedAttention(out.data(), q.data(), k.data(), v.data(), start.data(), a.batch, a.chunk,
                      a.maxLen, a.heads, a.kvHeads, a.dqk, a.dv, scale);
  return out;
}

/// Copies of k / v [batch, maxLen, kvHeads, d] with NaN at every position
/// past row b's last query (start[b] + chunk - 1): the kernel must not read
/// them.
Floats hideFuture(Floats cache, const Starts &start, int64_t chunk, int64_t maxLen,
                  int64_t width) {
  for (size_t b = 0; b < start.size(); ++b)
    for (int64_t j = start[b] + chunk; j < maxLen; ++j)
      std::fill_n(cache.begin() + (b * maxLen + j) * width, width, kNaN);
  return cache;
}

const kk::YarnConfig kYarn{4.0, 4.0, 32.0, 1.0, 0.707, 0.0};

//===----------------------------------------------------------------------===//
// rope with start
//===----------------------------------------------------------------------===//

TEST(DecodeKernels, RopeAtMatchesReference) {
  int64_t b = 3, s = 5, h = 2, d = 8;
  Starts start = {0, 7, 30};
  std::mt19937 gen(11);
  Floats x = normal(gen, b * s * h * d);
  for (int variant = 0; variant < 2; ++variant)
    for (bool transpose : {false, true}) {
      bool interleaved = variant == 1;
      double theta = variant ? 10000.0 : 500000.0;
      const kk::YarnConfig *yarn = variant ? &kYarn : nullptr;
      Floats y(x.size()), inPlace = x;
      kk::ropeForwardAt(y.data(), x.data(), start.data(), b, s, h, d, theta, interleaved, yarn,
                        transpose);
      kk::ropeForwardAt(inPlace.data(), inPlace.data(), start.data(), b, s, h, d, theta,
                        interleaved, yarn, transpose);
      std::string name = std::string(variant ? "rope at interleaved+yarn" : "rope at halves") +
                         (transpose ? " transpose" : "");
      compare(name, y, refRope(x, &start, b, s, h, d, theta, interleaved, yarn, transpose));
      compareBits(name + " in place", inPlace, y);
    }
}

TEST(DecodeKernels, RopeAtStartZeroIsRopeForward) {
  int64_t b = 2, s = 9, h = 3, d = 16;
  std::mt19937 gen(12);
  Floats x = normal(gen, b * s * h * d), at(x.size()), plain(x.size());
  Starts zeros(b, 0);
  for (int variant = 0; variant < 2; ++variant) {
    const kk::YarnConfig *yarn = variant ? &kYarn : nullptr;
    kk::ropeForwardAt(at.data(), x.data(), zeros.data(), b, s, h, d, 10000.0, variant, yarn);
    kk::ropeForward(plain.data(), x.data(), b, s, h, d, 10000.0, variant, yarn);
    compareBits(variant ? "rope at 0 = rope, interleaved+yarn" : "rope at 0 = rope, halves", at,
                plain);
  }
}

TEST(DecodeKernels, RopeAtStartIsRowOfLongerSequence) {
  int64_t b = 3, len = 40, chunk = 4, h = 2, d = 8;
  Starts start = {3, 17, 36};
  std::mt19937 gen(13);
  Floats x = normal(gen, b * len * h * d), whole(x.size());
  kk::ropeForward(whole.data(), x.data(), b, len, h, d, 500000.0, false, &kYarn);
  // The chunk of row bi is rows start[bi]..start[bi] + chunk of the sequence.
  int64_t row = h * d;
  Floats xChunk(b * chunk * row), want(xChunk.size()), got(xChunk.size());
  for (int64_t bi = 0; bi < b; ++bi) {
    std::copy_n(x.begin() + (bi * len + start[bi]) * row, chunk * row,
                xChunk.begin() + bi * chunk * row);
    std::copy_n(whole.begin() + (bi * len + start[bi]) * row, chunk * row,
                want.begin() + bi * chunk * row);
  }
  kk::ropeForwardAt(got.data(), xChunk.data(), start.data(), b, chunk, h, d, 500000.0, false,
                    &kYarn);
  compareBits("rope at p = rope row p", got, want);
}

//===----------------------------------------------------------------------===//
// cache_write
//===----------------------------------------------------------------------===//

TEST(DecodeKernels, CacheWrite) {
  int64_t b = 3, len = 16, chunk = 3, width = 2 * 5; // trailing dims [kv_heads 2, d 5]
  Starts start = {0, 6, 13};
  std::mt19937 gen(21);
  Floats cache = normal(gen, b * len * width), rows = normal(gen, b * chunk * width);
  Floats want = cache;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t c = 0; c < chunk; ++c)
      for (int64_t e = 0; e < width; ++e)
        want[(bi * len + start[bi] + c) * width + e] = rows[(bi * chunk + c) * width + e];

  Floats out(cache.size(), kNaN), before = cache;
  kk::cacheWrite(out.data(), cache.data(), rows.data(), start.data(), b, len, chunk, width);
  compareBits("cache_write out of place", out, want);
  compareBits("cache_write leaves the cache", cache, before);

  kk::cacheWrite(cache.data(), cache.data(), rows.data(), start.data(), b, len, chunk, width);
  compareBits("cache_write in place", cache, want);
}

//===----------------------------------------------------------------------===//
// cached_attention
//===----------------------------------------------------------------------===//

/// GQA (4 heads over 2 kv heads) and MLA's absorbed form (1 kv head,
/// dqk = latent + rope = 24, dv = latent = 16).
struct Layout {
  const char *name;
  int64_t heads, kvHeads, dqk, dv;
};
const Layout kLayouts[] = {{"gqa", 4, 2, 16, 16}, {"mla", 4, 1, 24, 16}};

TEST(DecodeKernels, CachedAttentionMatchesReference) {
  int64_t b = 3, len = 24;
  struct Chunk {
    const char *name;
    int64_t chunk;
    Starts start;
  };
  const Chunk chunks[] = {{"decode", 1, {0, 9, 23}}, {"prefill", 6, {0, 5, 18}}};
  for (const Layout &l : kLayouts)
    for (const Chunk &ch : chunks) {
      AttentionShape a{b, ch.chunk, len, l.heads, l.kvHeads, l.dqk, l.dv};
      std::mt19937 gen(31);
      Floats q = normal(gen, a.qSize());
      Floats k = hideFuture(normal(gen, a.kSize()), ch.start, ch.chunk, len, l.kvHeads * l.dqk);
      Floats v = hideFuture(normal(gen, a.vSize()), ch.start, ch.chunk, len, l.kvHeads * l.dv);
      float scale = 1.0f / std::sqrt(float(l.dqk));
      compare(std::string("cached_attention ") + l.name + " " + ch.name,
              cachedAttention(q, k, v, ch.start, a, scale),
              refCachedAttention(q, k, v, ch.start, a, scale));
    }
}

TEST(DecodeKernels, CachedAttentionFromZeroIsCausalAttention) {
  int64_t b = 2, len = 70; // more than one of attentionForward's 64-row blocks
  for (const Layout &l : kLayouts) {
    AttentionShape a{b, len, len, l.heads, l.kvHeads, l.dqk, l.dv};
    std::mt19937 gen(41);
    Floats q = normal(gen, a.qSize()), k = normal(gen, a.kSize()), v = normal(gen, a.vSize());
    float scale = 1.0f / std::sqrt(float(l.dqk));
    Floats want(a.outSize()), got = cachedAttention(q, k, v, Starts(b, 0), a, scale);
    kk::attentionForward(want.data(), q.data(), k.data(), v.data(), b, len, l.heads, l.kvHeads,
                         l.dqk, l.dv, scale, /*causal=*/true);
    compare(std::string("cached_attention from 0 = attention, ") + l.name, got, want);
    compare(std::string("cached_attention from 0 = f64 loop, ") + l.name, got,
            refCachedAttention(q, k, v, Starts(b, 0), a, scale));
  }
}

TEST(DecodeKernels, DecodeIsRowOfPrefill) {
  int64_t b = 3, len = 24;
  Starts position = {0, 11, 23}; // each row's one query
  for (const Layout &l : kLayouts) {
    AttentionShape whole{b, len, len, l.heads, l.kvHeads, l.dqk, l.dv};
    AttentionShape one{b, 1, len, l.heads, l.kvHeads, l.dqk, l.dv};
    std::mt19937 gen(51);
    Floats q = normal(gen, whole.qSize()), k = normal(gen, whole.kSize()),
           v = normal(gen, whole.vSize());
    float scale = 1.0f / std::sqrt(float(l.dqk));
    Floats attention(whole.outSize());
    kk::attentionForward(attention.data(), q.data(), k.data(), v.data(), b, len, l.heads,
                         l.kvHeads, l.dqk, l.dv, scale, /*causal=*/true);
    Floats prefill = cachedAttention(q, k, v, Starts(b, 0), whole, scale);

    // Row b's query at position[b]; its attention and prefill rows.
    int64_t qRow = l.heads * l.dqk, oRow = l.heads * l.dv;
    Floats qOne(one.qSize()), attentionRows(one.outSize()), prefillRows(one.outSize());
    for (int64_t bi = 0; bi < b; ++bi) {
      int64_t p = position[bi];
      std::copy_n(q.begin() + (bi * len + p) * qRow, qRow, qOne.begin() + bi * qRow);
      std::copy_n(attention.begin() + (bi * len + p) * oRow, oRow,
                  attentionRows.begin() + bi * oRow);
      std::copy_n(prefill.begin() + (bi * len + p) * oRow, oRow, prefillRows.begin() + bi * oRow);
    }
    Floats decode = cachedAttention(qOne, hideFuture(k, position, 1, len, l.kvHeads * l.dqk),
                                    hideFuture(v, position, 1, len, l.kvHeads * l.dv), position,
                                    one, scale);
    compare(std::string("decode at p = attention row p, ") + l.name, decode, attentionRows);
    compareBits(std::string("decode at p = prefill row p, ") + l.name, decode, prefillRows);
  }
}

//===----------------------------------------------------------------------===//
// head_matmul
//===----------------------------------------------------------------------===//

TEST(DecodeKernels, HeadMatmul) {
  int64_t b = 2, s = 3, h = 4, k = 20, n = 12; // k not a multiple of dot()'s 8 lanes
  std::mt19937 gen(61);
  Floats x = normal(gen, b * s * h * k), w = normal(gen, h * n * k);
  for (bool transposeWeight : {false, true}) {
    // weight[h] is [n, k], or [k, n] when transposed.
    Doubles want(b * s * h * n);
    for (int64_t t = 0; t < b * s; ++t)
      for (int64_t hi = 0; hi < h; ++hi)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0;
          for (int64_t i = 0; i < k; ++i)
            sum += double(x[(t * h + hi) * k + i]) *
                   double(w[hi * n * k + (transposeWeight ? i * n + j : j * k + i)]);
          want[(t * h + hi) * n + j] = sum;
        }
    Floats out(want.size(), kNaN);
    kk::headMatmul(out.data(), x.data(), w.data(), b, s, h, k, n, transposeWeight);
    compare(transposeWeight ? "head_matmul transpose_weight" : "head_matmul", out, want);
  }
}

//===----------------------------------------------------------------------===//
// Determinism and argument checks
//===----------------------------------------------------------------------===//

TEST(DecodeKernels, SameBitsOnAnyThreadCount) {
  AttentionShape a{3, 5, 24, 4, 2, 16, 12};
  Starts start = {0, 9, 19};
  std::mt19937 gen(71);
  Floats q = normal(gen, a.qSize()), k = normal(gen, a.kSize()), v = normal(gen, a.vSize());
  int64_t width = a.kvHeads * a.dqk;
  Floats w = normal(gen, a.heads * a.dv * a.dqk), rows = normal(gen, a.batch * a.chunk * width);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Floats rope(q.size()), cache(k.size()), matmul(a.outSize());
    kk::ropeForwardAt(rope.data(), q.data(), start.data(), a.batch, a.chunk, a.heads, a.dqk,
                      10000.0, false, &kYarn);
    kk::cacheWrite(cache.data(), k.data(), rows.data(), start.data(), a.batch, a.maxLen, a.chunk,
                   width);
    kk::headMatmul(matmul.data(), q.data(), w.data(), a.batch, a.chunk, a.heads, a.dqk, a.dv,
                   false);
    return std::vector<Floats>{rope, cache, cachedAttention(q, k, v, start, a, 0.25f), matmul};
  };
  int saved = omp_get_max_threads();
  std::vector<Floats> one = run(1), three = run(3);
  omp_set_num_threads(saved);
  const char *names[] = {"rope at, 1 vs 3 threads", "cache_write, 1 vs 3 threads",
                         "cached_attention, 1 vs 3 threads", "head_matmul, 1 vs 3 threads"};
  for (size_t i = 0; i < one.size(); ++i)
    compareBits(names[i], three[i], one[i]);
}

TEST(DecodeKernelsDeathTest, ChecksStopWithAMessage) {
  Floats buf(4 * 16 * 8, 0.0f), out(buf.size());
  Starts pastTheEnd = {0, 14}, negative = {3, -1};
  // Two rows, maxLen 16, chunk 3: row 1 would write positions 14..16.
  EXPECT_EXIT(kk::cacheWrite(out.data(), buf.data(), buf.data(), pastTheEnd.data(), 2, 16, 3, 8),
              ::testing::ExitedWithCode(1),
              "cache_write: row 1 starts at 14; expects 0 <= start and start \\+ chunk \\(3\\) "
              "<= max_len \\(16\\)");
  EXPECT_EXIT(kk::cacheWrite(out.data(), buf.data(), buf.data(), negative.data(), 2, 16, 1, 8),
              ::testing::ExitedWithCode(1), "cache_write: row 1 starts at -1");
  EXPECT_EXIT(kk::cachedAttention(out.data(), buf.data(), buf.data(), buf.data(),
                                  pastTheEnd.data(), 2, 3, 16, 2, 1, 4, 4, 0.5f),
              ::testing::ExitedWithCode(1), "cached_attention: row 1 starts at 14");
  EXPECT_EXIT(kk::cachedAttention(out.data(), buf.data(), buf.data(), buf.data(),
                                  negative.data(), 2, 1, 16, 2, 1, 4, 4, 0.5f),
              ::testing::ExitedWithCode(1), "cached_attention: row 1 starts at -1");
  Starts zeros = {0, 0};
  EXPECT_EXIT(kk::cachedAttention(out.data(), buf.data(), buf.data(), buf.data(), zeros.data(),
                                  2, 1, 16, 3, 2, 4, 4, 0.5f),
              ::testing::ExitedWithCode(1), "heads \\(3\\) divisible by kvHeads \\(2\\)");
  EXPECT_EXIT(kk::ropeForwardAt(out.data(), buf.data(), negative.data(), 2, 1, 2, 8, 10000.0,
                                false, nullptr),
              ::testing::ExitedWithCode(1), "expects start\\[1\\] >= 0, got -1");
  EXPECT_EXIT(kk::headMatmul(out.data(), buf.data(), buf.data(), 2, 1, 2, 0, 4, false),
              ::testing::ExitedWithCode(1), "head_matmul: expects batch, seq >= 0 and heads, k, "
                                            "n > 0, got 2, 1, 2, 0, 4");
}

} // namespace
