//===- Attention.cpp - host kernels of kiln.rope and kiln.attention -------===//
//
// rope: a cos/sin table per (position, frequency), computed in f64 once, then
// a pair rotation per element (AttentionMath.h); ropeForward and Decode.h's
// ropeForwardAt (positions from start[b], a table row per (b, s)) are one
// implementation, detail::ropeAtPositions. attention: OpenBLAS sgemm
// for the products (leading dimensions address one head of the [batch, seq,
// heads, dim] layouts, no copies), the softmax pieces of DenseMath.h per row
// of a [rows, keys] score block; causal blocks of rows stop at their last
// key and masked probabilities are exactly 0. The forward runs one task per
// (batch, head); the backward one task per (batch, kv head), so that the adds
// into dk / dv, shared by the heads of a group and by all queries, happen in
// one thread in a fixed order (heads, then row blocks). sgemm runs
// single-threaded inside the tasks, so the bits do not depend on the thread
// count. No atomics; static schedules.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Attention.h"
#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace kiln::kernels {

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

void ropeForward(float *y, const float *x, int64_t batch, int64_t seq, int64_t heads,
                 int64_t dim, double theta, bool interleaved, const YarnConfig *yarn,
                 bool transpose) {
  detail::ropeAtPositions(y, x, /*start=*/nullptr, batch, seq, heads, dim, theta, interleaved,
                          yarn, transpose);
}

void detail::ropeAtPositions(float *y, const float *x, const int32_t *start, int64_t batch,
                             int64_t seq, int64_t heads, int64_t dim, double theta,
                             bool interleaved, const YarnConfig *yarn, bool transpose) {
  KILN_KERNEL_CHECK(batch >= 0 && seq >= 0 && heads > 0 && dim > 0 && dim % 2 == 0,
                    "expects batch, seq >= 0, heads > 0 and an even dim > 0, got %lld, %lld, "
                    "%lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)dim);
  KILN_KERNEL_CHECK(theta > 1, "expects theta > 1, got %g", theta);
  for (int64_t b = 0; start && b < batch; ++b)
    KILN_KERNEL_CHECK(start[b] >= 0, "expects start[%lld] >= 0, got %d", (long long)b,
                      start[b]);
  int64_t half = dim / 2;
  std::vector<double> inv = ropeInverseFrequencies(dim, theta, yarn);
  double magnitude = ropeMagnitude(yarn), direction = transpose ? -1.0 : 1.0;
  // One table row per position s, or per (b, s) when the rows start at
  // different positions.
  int64_t tableRows = start ? batch * seq : seq;
  std::vector<float> cosT(tableRows * half), sinT(tableRows * half);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < tableRows; ++r) {
    int64_t position = start ? int64_t(start[r / seq]) + r % seq : r;
    for (int64_t i = 0; i < half; ++i)
      ropeCosSin(position, inv[i], magnitude, direction, &cosT[r * half + i],
                 &sinT[r * half + i]);
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      int64_t table = (start ? b * seq + s : s) * half;
      for (int64_t h = 0; h < heads; ++h) {
        int64_t base = ((b * seq + s) * heads + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          int64_t i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
          float x0 = x[base + i0], x1 = x[base + i1];
          ropeRotatePair(x0, x1, cosT[table + i], sinT[table + i], &y[base + i0],
                         &y[base + i1]);
        }
      }
    }
}

static void checkAttention(int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads,
                           int64_t dqk, int64_t dv) {
  KILN_KERNEL_CHECK(batch >= 0 && seq >= 0 && heads > 0 && kvHeads > 0 && dqk > 0 && dv > 0,
                    "expects batch, seq >= 0 and heads, kvHeads, dqk, dv > 0, got %lld, %lld, "
                    "%lld, %lld, %lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)kvHeads,
                    (long long)dqk, (long long)dv);
  KILN_KERNEL_CHECK(heads % kvHeads == 0, "expects heads (%lld) divisible by kvHeads (%lld)",
                    (long long)heads, (long long)kvHeads);
}

namespace {

/// Query rows per block of the causal path: a block of rows [r0, r1) only
/// needs keys [0, r1), so blocking skips most of the masked upper triangle.
constexpr int64_t kCausalRowBlock = 64;

/// OpenBLAS runs sgemm single-threaded inside the attention tasks: its OpenMP
/// build does so by itself inside an OpenMP parallel region; for its pthread
/// build this guard sets one thread for the duration of the launcher (and
/// restores the caller's count), so the pools do not nest. One thread per
/// sgemm also makes the results independent of the thread count.
class SingleThreadedBlas {
public:
  SingleThreadedBlas() {
    if (openblas_get_parallel() == 1) {
      saved_ = openblas_get_num_threads();
      if (saved_ != 1)
        openblas_set_num_threads(1);
    }
  }
  ~SingleThreadedBlas() {
    if (saved_ > 1)
      openblas_set_num_threads(saved_);
  }
  SingleThreadedBlas(const SingleThreadedBlas &) = delete;
  SingleThreadedBlas &operator=(const SingleThreadedBlas &) = delete;

private:
  int saved_ = 0;
};

/// Shapes and leading dimensions of one (batch, query head, kv head) slice:
/// q / dq / out / dout rows are heads * dim apart, k / v rows kvHeads * dim.
struct AttentionSlice {
  int64_t seq, dqk, dv, ldq, ldk, ldv, ldo;
  float scale;
  bool causal;
};

/// P[i, j] for the query rows [r0, r0 + rows) and keys [0, keys) into p
/// (row-major, leading dimension keys): softmax(scale q_i . k_j) over the keys
/// a row sees (j <= i when causal), exactly 0 beyond them.
void attentionBlockProbabilities(const AttentionSlice &a, const float *q, const float *k,
                                 int64_t r0, int64_t rows, int64_t keys, float *p) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, a.dqk, a.scale,
              q + r0 * a.ldq, a.ldq, k, a.ldk, 0.0f, p, keys);
  for (int64_t i = 0; i < rows; ++i) {
    float *row = p + i * keys;
    int64_t n = a.causal ? r0 + i + 1 : keys;
    softmaxRowInPlace(row, n);
    std::fill(row + n, row + keys, 0.0f);
  }
}

/// Row blocks of a slice: one block without the causal mask, else blocks of
/// kCausalRowBlock rows.
int64_t attentionRowBlock(const AttentionSlice &a) {
  return a.causal ? std::min(a.seq, kCausalRowBlock) : a.seq;
}

} // namespace

void attentionForward(float *out, const float *q, const float *k, const float *v,
                      int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads, int64_t dqk,
                      int64_t dv, float scale, bool causal) {
  checkAttention(batch, seq, heads, kvHeads, dqk, dv);
  if (batch == 0 || seq == 0)
    return;
  int64_t group = heads / kvHeads;
  AttentionSlice a{seq, dqk, dv, heads * dqk, kvHeads * dqk, kvHeads * dv, heads * dv,
                   scale, causal};
  int64_t block = attentionRowBlock(a);
  SingleThreadedBlas blasGuard;
#pragma omp parallel
  {
    std::vector<float> p(block * seq);
    // One task per (batch, head): S = scale Q_h K_g^T, P = softmax(S) row by
    // row, O_h = P V_g, a block of query rows at a time.
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        int64_t g = h / group;
        const float *qh = q + (b * seq * heads + h) * dqk;
        const float *kg = k + (b * seq * kvHeads + g) * dqk;
        const float *vg = v + (b * seq * kvHeads + g) * dv;
        float *oh = out + (b * seq * heads + h) * dv;
        for (int64_t r0 = 0; r0 < seq; r0 += block) {
          int64_t rows = std::min(block, seq - r0), keys = causal ? r0 + rows : seq;
          attentionBlockProbabilities(a, qh, kg, r0, rows, keys, p.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dv, keys, 1.0f,
                      p.data(), keys, vg, a.ldv, 0.0f, oh + r0 * a.ldo, a.ldo);
        }
      }
  }
}

void attentionBackward(float *dq, float *dk, float *dv, const float *q, const float *k,
                       const float *v, const float *dout, int64_t batch, int64_t seq,
                       int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dvDim, float scale,
                       bool causal) {
  checkAttention(batch, seq, heads, kvHeads, dqk, dvDim);
  if (batch == 0 || seq == 0)
    return;
  int64_t group = heads / kvHeads;
  AttentionSlice a{seq,          dqk,           dvDim, heads * dqk, kvHeads * dqk,
                   kvHeads * dvDim, heads * dvDim, scale, causal};
  int64_t block = attentionRowBlock(a);
  SingleThreadedBlas blasGuard;
#pragma omp parallel
  {
    std::vector<float> p(block * seq), ds(block * seq);
    // One task per (batch, kv head), so the adds into dK_g / dV_g (beta = 1
    // sgemms) run in one thread in a fixed order: heads, then row blocks.
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t g = 0; g < kvHeads; ++g) {
        const float *kg = k + (b * seq * kvHeads + g) * dqk;
        const float *vg = v + (b * seq * kvHeads + g) * dvDim;
        float *dkg = dk + (b * seq * kvHeads + g) * dqk;
        float *dvg = dv + (b * seq * kvHeads + g) * dvDim;
        for (int64_t j = 0; j < seq; ++j) {
          std::fill_n(dkg + j * a.ldk, dqk, 0.0f);
          std::fill_n(dvg + j * a.ldv, dvDim, 0.0f);
        }
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const float *qh = q + (b * seq * heads + h) * dqk;
          const float *doh = dout + (b * seq * heads + h) * dvDim;
          float *dqh = dq + (b * seq * heads + h) * dqk;
          for (int64_t r0 = 0; r0 < seq; r0 += block) {
            int64_t rows = std::min(block, seq - r0), keys = causal ? r0 + rows : seq;
            attentionBlockProbabilities(a, qh, kg, r0, rows, keys, p.data());
            // dP = dO_h V_g^T, then dS = scale P (dP - rowsum(P dP)) in place.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, dvDim, 1.0f,
                        doh + r0 * a.ldo, a.ldo, vg, a.ldv, 0.0f, ds.data(), keys);
            for (int64_t i = 0; i < rows; ++i) {
              float *dsi = ds.data() + i * keys;
              int64_t n = causal ? r0 + i + 1 : keys;
              attentionScoreGradRow(p.data() + i * keys, dsi, n, scale);
              std::fill(dsi + n, dsi + keys, 0.0f);
            }
            // dQ_h = dS K_g, dK_g += dS^T Q_h, dV_g += P^T dO_h.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dqk, keys, 1.0f,
                        ds.data(), keys, kg, a.ldk, 0.0f, dqh + r0 * a.ldq, a.ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, dqk, rows, 1.0f,
                        ds.data(), keys, qh + r0 * a.ldq, a.ldq, 1.0f, dkg, a.ldk);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, dvDim, rows, 1.0f,
                        p.data(), keys, doh + r0 * a.ldo, a.ldo, 1.0f, dvg, a.ldv);
          }
        }
      }
  }
}

} // namespace kiln::kernels
