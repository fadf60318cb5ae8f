//===- MoE.cpp - host kernels of routing, dispatch/combine and grouped GEMM ===//
//
// Per-token math comes from MoEMath.h; this file holds the loops: OpenMP over
// tokens/rows with static schedules, OpenBLAS sgemm per expert over its row
// range for the grouped GEMMs, and counting sorts wherever rows scatter into
// tokens (dispatch, dispatch_grad, combine, combine_grad) so that each output
// is summed by one thread, in row order, without atomics.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/MoE.h"
#include "runtime/kernels/MoEMath.h"
#include "runtime/kernels/ExpertOffsets.h"

#include <algorithm>
#include <cblas.h>

#include <cstring>
#include <vector>

namespace kiln::kernels {

// ---------------------------------------------------------------------------
// checks and helpers

static bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

static bool checkPositive(std::string *error, const char *op,
                          std::initializer_list<std::pair<const char *, int64_t>> sizes) {
  for (auto [name, value] : sizes)
    if (value < 1)
      return fail(error, std::string(op) + ": " + name + " must be >= 1, got " +
                             std::to_string(value));
  return true;
}

/// Every entry of indices [count] (rows of topK) lies in [0, experts), or
/// is -1 (a pair kiln.expert_capacity dropped) where `dropped` allows it.
static bool checkIndices(std::string *error, const char *op, const int32_t *indices,
                         int64_t count, int64_t topK, int64_t experts, bool dropped = false) {
  for (int64_t i = 0; i < count; ++i)
    if ((indices[i] < 0 || indices[i] >= experts) && !(dropped && indices[i] == -1))
      return fail(error, std::string(op) + ": expert index " + std::to_string(indices[i]) +
                             " of token " + std::to_string(i / topK) + " is outside [0, " +
                             std::to_string(experts) + ")" +
                             (dropped ? " and not -1 (dropped)" : ""));
  return true;
}

/// Every entry of source [pairs] lies in [0, pairs).
static bool checkSource(std::string *error, const char *op, const int32_t *source,
                        int64_t pairs) {
  for (int64_t r = 0; r < pairs; ++r)
    if (source[r] < 0 || source[r] >= pairs)
      return fail(error, std::string(op) + ": source entry " + std::to_string(source[r]) +
                             " of row " + std::to_string(r) + " is outside [0, " +
                             std::to_string(pairs) + ")");
  return true;
}

/// Stable counting sort of items 0..n-1 by key(i) in [0, buckets): items of
/// bucket b are order[start[b] .. start[b+1]), in increasing i.
template <typename Key>
static void bucketSort(int64_t n, int64_t buckets, Key key, std::vector<int64_t> &start,
                       std::vector<int64_t> &order) {
  start.assign(buckets + 1, 0);
  for (int64_t i = 0; i < n; ++i)
    ++start[key(i) + 1];
  for (int64_t b = 0; b < buckets; ++b)
    start[b + 1] += start[b];
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  order.resize(n);
  for (int64_t i = 0; i < n; ++i)
    order[next[key(i)]++] = i;
}

// ---------------------------------------------------------------------------
// kernel launchers: routing

bool router(const float *logits, const float *bias, int64_t tokens, int64_t experts,
            const RouterConfig &c, int32_t *indices, float *weights, std::string *error) {
  if (!checkPositive(error, "router", {{"tokens", tokens}, {"experts", experts},
                                       {"n_group", c.nGroup}, {"topk_group", c.topkGroup},
                                       {"top_k", c.topK}}))
    return false;
  if (experts % c.nGroup != 0 || c.topkGroup > c.nGroup)
    return fail(error, "router: expects n_group dividing " + std::to_string(experts) +
                           " experts and topk_group <= n_group, got n_group " +
                           std::to_string(c.nGroup) + ", topk_group " +
                           std::to_string(c.topkGroup));
  int64_t eligible = c.nGroup > 1 ? c.topkGroup * (experts / c.nGroup) : experts;
  if (c.topK > eligible)
    return fail(error, "router: top_k " + std::to_string(c.topK) + " exceeds the " +
                           std::to_string(eligible) + " experts of the kept groups");
#pragma omp parallel
  {
    std::vector<float> scores(experts), choice(experts), groupScore(c.nGroup);
    std::vector<int32_t> kept(c.topkGroup);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t)
      routeToken(logits + t * experts, bias, experts, c.softmax, c.top2Sum, c.nGroup,
                 c.topkGroup, c.topK, c.normTopkProb, c.routedScalingFactor,
                 scores.data(), choice.data(), groupScore.data(), kept.data(),
                 indices + t * c.topK, weights + t * c.topK);
  }
  return true;
}

bool routerGrad(const float *logits, const int32_t *indices, const float *dweights,
                int64_t tokens, int64_t experts, int64_t topK, bool softmax,
                bool normTopkProb, float routedScalingFactor, float *dlogits,
                std::string *error) {
  if (!checkPositive(error, "router_grad",
                     {{"tokens", tokens}, {"experts", experts}, {"top_k", topK}}) ||
      !checkIndices(error, "router_grad", indices, tokens * topK, topK, experts))
    return false;
#pragma omp parallel
  {
    std::vector<float> s(experts), ds(experts);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t)
      routerGradToken(logits + t * experts, indices + t * topK, dweights + t * topK,
                      experts, topK, softmax, normTopkProb, routedScalingFactor, s.data(),
                      ds.data(), dlogits + t * experts);
  }
  return true;
}

bool expertLoad(const int32_t *indices, int64_t count, int64_t experts, float *load,
                std::string *error) {
  if (!checkPositive(error, "expert_load", {{"experts", experts}}))
    return false;
  for (int64_t i = 0; i < count; ++i)
    if ((indices[i] < 0 || indices[i] >= experts) && indices[i] != -1)
      return fail(error, "expert_load: expert index " + std::to_string(indices[i]) +
                             " at flat position " + std::to_string(i) + " is outside [0, " +
                             std::to_string(experts) + ") and not -1 (dropped)");
  std::vector<int64_t> counts(experts, 0);
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] >= 0)
      ++counts[indices[i]];
  for (int64_t e = 0; e < experts; ++e)
    load[e] = float(counts[e]);
  return true;
}

bool expertCapacity(const int32_t *indices, int64_t tokens, int64_t topK, int64_t experts,
                    int64_t groupTokens, int64_t capacity, int32_t *kept, std::string *error) {
  if (!checkPositive(error, "expert_capacity",
                     {{"tokens", tokens}, {"top_k", topK}, {"num_experts", experts},
                      {"group_tokens", groupTokens}, {"capacity", capacity}}) ||
      !checkIndices(error, "expert_capacity", indices, tokens * topK, topK, experts))
    return false;
  if (tokens % groupTokens != 0)
    return fail(error, "expert_capacity: group_tokens " + std::to_string(groupTokens) +
                           " does not divide the " + std::to_string(tokens) + " tokens");
  const int64_t groupPairs = groupTokens * topK;
#pragma omp parallel
  {
    std::vector<int64_t> taken(experts);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < tokens / groupTokens; ++g) {
      std::fill(taken.begin(), taken.end(), 0);
      for (int64_t p = g * groupPairs; p < (g + 1) * groupPairs; ++p)
        kept[p] = taken[indices[p]]++ < capacity ? indices[p] : -1;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// kernel launchers: dispatch and combine

bool dispatch(const float *x, const int32_t *indices, int64_t tokens, int64_t hidden,
              int64_t topK, int64_t experts, float *rows, int32_t *offsets,
              int32_t *source, std::string *error) {
  if (!checkPositive(error, "dispatch", {{"tokens", tokens}, {"hidden", hidden},
                                         {"top_k", topK}, {"num_experts", experts}}) ||
      !checkIndices(error, "dispatch", indices, tokens * topK, topK, experts,
                    /*dropped=*/true))
    return false;
  int64_t pairs = tokens * topK;
  // Bucket `experts` holds the dropped pairs, after every expert.
  std::vector<int64_t> start, order;
  bucketSort(pairs, experts + 1,
             [&](int64_t p) { return indices[p] < 0 ? experts : int64_t(indices[p]); }, start,
             order);
  for (int64_t e = 0; e <= experts; ++e)
    offsets[e] = int32_t(start[e]);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < pairs; ++r) {
    source[r] = int32_t(order[r]);
    std::memcpy(rows + r * hidden, x + (order[r] / topK) * hidden, hidden * sizeof(float));
  }
  return true;
}

/// out[t] = sum over rows r routed from token t of w(r) * rows[r], with
/// w(r) = weights[source[r]] (combine) or 1 (dispatch_grad). Rows are bucketed
/// by token first, so each output is summed by one thread in row order.
static bool sumRowsIntoTokens(const char *kernel, const float *rows, const float *weights,
                              const int32_t *source, int64_t tokens, int64_t topK,
                              int64_t hidden, float *out, std::string *error) {
  if (!checkPositive(error, kernel, {{"tokens", tokens}, {"top_k", topK}, {"hidden", hidden}}))
    return false;
  int64_t pairs = tokens * topK;
  if (!checkSource(error, kernel, source, pairs))
    return false;
  std::vector<int64_t> start, order;
  bucketSort(pairs, tokens, [&](int64_t r) { return int64_t(source[r]) / topK; }, start,
             order);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    float *y = out + t * hidden;
    std::fill(y, y + hidden, 0.0f);
    for (int64_t i = start[t]; i < start[t + 1]; ++i) {
      int64_t r = order[i];
      float w = weights ? weights[source[r]] : 1.0f;
      const float *row = rows + r * hidden;
      for (int64_t h = 0; h < hidden; ++h)
        y[h] += w * row[h];
    }
  }
  return true;
}

bool dispatchGrad(const float *drows, const int32_t *source, int64_t tokens, int64_t topK,
                  int64_t hidden, float *dx, std::string *error) {
  return sumRowsIntoTokens("dispatch_grad", drows, nullptr, source, tokens, topK, hidden, dx,
                           error);
}

bool combine(const float *rows, const float *weights, const int32_t *source,
             int64_t tokens, int64_t topK, int64_t hidden, float *out,
             std::string *error) {
  return sumRowsIntoTokens("combine", rows, weights, source, tokens, topK, hidden, out, error);
}

bool combineGrad(const float *rows, const float *weights, const int32_t *source,
                 const float *dy, int64_t tokens, int64_t topK, int64_t hidden,
                 float *drows, float *dweights, std::string *error) {
  if (!checkPositive(error, "combine_grad",
                     {{"tokens", tokens}, {"top_k", topK}, {"hidden", hidden}}))
    return false;
  int64_t pairs = tokens * topK;
  if (!checkSource(error, "combine_grad", source, pairs))
    return false;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < pairs; ++r) {
    int64_t p = source[r];
    float w = weights[p];
    const float *g = dy + (p / topK) * hidden;
    for (int64_t h = 0; h < hidden; ++h)
      drows[r * hidden + h] = w * g[h];
  }
  // dweights[p] sums the rows whose source is p, in row order.
  std::vector<int64_t> start, order;
  bucketSort(pairs, pairs, [&](int64_t r) { return int64_t(source[r]); }, start, order);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const float *g = dy + (p / topK) * hidden;
    float acc = 0.0f;
    for (int64_t i = start[p]; i < start[p + 1]; ++i) {
      const float *row = rows + order[i] * hidden;
      float dot = 0.0f;
      for (int64_t h = 0; h < hidden; ++h)
        dot += row[h] * g[h];
      acc += dot;
    }
    dweights[p] = acc;
  }
  return true;
}

// ---------------------------------------------------------------------------
// kernel launchers: grouped GEMM (one sgemm per non-empty expert; OpenBLAS
// threads inside each)

bool groupedMatmul(const float *x, const float *weight, const int32_t *offsets,
                   int64_t rows, int64_t k, int64_t experts, int64_t n, float *out,
                   std::string *error) {
  if (!checkGroupedGemm(error, "grouped_matmul", k, n, experts, offsets, rows))
    return false;
  for (int64_t e = 0; e < experts; ++e) {
    int64_t m = offsets[e + 1] - offsets[e];
    if (m == 0)
      continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f,
                x + int64_t(offsets[e]) * k, int(k), weight + e * n * k, int(k), 0.0f,
                out + int64_t(offsets[e]) * n, int(n));
  }
  std::fill(out + int64_t(offsets[experts]) * n, out + rows * n, 0.0f);
  return true;
}

bool groupedMatmulDgrad(const float *dy, const float *weight, const int32_t *offsets,
                        int64_t rows, int64_t n, int64_t experts, int64_t k, float *dx,
                        std::string *error) {
  if (!checkGroupedGemm(error, "grouped_matmul_dgrad", k, n, experts, offsets, rows))
    return false;
  for (int64_t e = 0; e < experts; ++e) {
    int64_t m = offsets[e + 1] - offsets[e];
    if (m == 0)
      continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(k), int(n), 1.0f,
                dy + int64_t(offsets[e]) * n, int(n), weight + e * n * k, int(k), 0.0f,
                dx + int64_t(offsets[e]) * k, int(k));
  }
  std::fill(dx + int64_t(offsets[experts]) * k, dx + rows * k, 0.0f);
  return true;
}

bool groupedMatmulWgrad(const float *dy, const float *x, const int32_t *offsets,
                        int64_t rows, int64_t n, int64_t k, int64_t experts,
                        float *dweight, std::string *error) {
  if (!checkGroupedGemm(error, "grouped_matmul_wgrad", k, n, experts, offsets, rows))
    return false;
  for (int64_t e = 0; e < experts; ++e) {
    int64_t m = offsets[e + 1] - offsets[e];
    float *dw = dweight + e * n * k;
    if (m == 0) {
      std::fill(dw, dw + n * k, 0.0f);
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(n), int(k), int(m), 1.0f,
                dy + int64_t(offsets[e]) * n, int(n), x + int64_t(offsets[e]) * k, int(k),
                0.0f, dw, int(k));
  }
  return true;
}

// ---------------------------------------------------------------------------
// kernel launchers: sequence-wise balance loss

/// f[seq, i] = N / (K T) * #{t in seq : i selected for t}; indices checked.
static bool selectionFractions(const int32_t *indices, int64_t tokens, int64_t experts,
                               int64_t topK, int64_t numSequences, const char *op,
                               std::vector<float> &f, std::string *error) {
  if (!checkPositive(error, op, {{"tokens", tokens}, {"experts", experts},
                                 {"top_k", topK}, {"num_sequences", numSequences}}))
    return false;
  if (tokens % numSequences != 0)
    return fail(error, std::string(op) + ": " + std::to_string(tokens) +
                           " tokens do not split into " + std::to_string(numSequences) +
                           " sequences");
  if (!checkIndices(error, op, indices, tokens * topK, topK, experts))
    return false;
  int64_t seqLen = tokens / numSequences;
  std::vector<int64_t> counts(numSequences * experts, 0);
  for (int64_t i = 0; i < tokens * topK; ++i)
    ++counts[(i / topK) / seqLen * experts + indices[i]];
  f.resize(counts.size());
  float scale = float(double(experts) / double(topK * seqLen));
  for (size_t i = 0; i < counts.size(); ++i)
    f[i] = float(counts[i]) * scale;
  return true;
}

bool balanceLoss(const float *logits, const int32_t *indices, int64_t tokens,
                 int64_t experts, int64_t topK, int64_t numSequences, bool softmax,
                 float *loss, std::string *error, int64_t totalSequences) {
  std::vector<float> f;
  if (!selectionFractions(indices, tokens, experts, topK, numSequences, "balance_loss", f,
                          error))
    return false;
  int64_t seqLen = tokens / numSequences;
  std::vector<float> perSequence(numSequences);
#pragma omp parallel
  {
    std::vector<float> s(experts);
#pragma omp for schedule(static)
    for (int64_t seq = 0; seq < numSequences; ++seq) {
      float acc = 0.0f;
      for (int64_t t = seq * seqLen; t < (seq + 1) * seqLen; ++t)
        acc += balanceTokenTerm(logits + t * experts, f.data() + seq * experts, experts,
                                softmax, s.data());
      perSequence[seq] = acc / float(seqLen);
    }
  }
  float sum = 0.0f;
  for (float v : perSequence)
    sum += v;
  *loss = sum / float(totalSequences > 0 ? totalSequences : numSequences);
  return true;
}

bool balanceLossGrad(const float *logits, const int32_t *indices, float dloss,
                     int64_t tokens, int64_t experts, int64_t topK, int64_t numSequences,
                     bool softmax, float *dlogits, std::string *error,
                     int64_t totalSequences) {
  std::vector<float> f;
  if (!selectionFractions(indices, tokens, experts, topK, numSequences,
                          "balance_loss_grad", f, error))
    return false;
  int64_t seqLen = tokens / numSequences;
  int64_t sequences = totalSequences > 0 ? totalSequences : numSequences;
  float q = float(double(dloss) / double(sequences * seqLen));
#pragma omp parallel
  {
    std::vector<float> s(experts), ds(experts);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t)
      balanceGradToken(logits + t * experts, f.data() + (t / seqLen) * experts, experts,
                       softmax, q, s.data(), ds.data(), dlogits + t * experts);
  }
  return true;
}

} // namespace kiln::kernels
