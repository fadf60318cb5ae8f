//===- ExpertParallel.cpp - host kernels of the expert-parallel exchange --===//

#include "runtime/kernels/ExpertParallel.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace kiln::kernels {

static bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

bool expertCounts(const int32_t *offsets, int64_t experts, int64_t groups, int64_t *perExpert,
                  int64_t *perRank, std::string *error) {
  if (experts < 1 || groups < 1 || experts % groups != 0)
    return fail(error, "expert_counts: " + std::to_string(groups) + " groups do not divide " +
                           std::to_string(experts) + " experts");
  const int64_t local = experts / groups;
  for (int64_t e = 0; e < experts; ++e) {
    if (offsets[e + 1] < offsets[e])
      return fail(error, "expert_counts: offsets decrease at expert " + std::to_string(e));
    perExpert[e] = int64_t(offsets[e + 1]) - offsets[e];
  }
  for (int64_t p = 0; p < groups; ++p)
    perRank[p] = int64_t(offsets[(p + 1) * local]) - offsets[p * local];
  return true;
}

bool segmentTranspose(const float *x, const int64_t *counts, int64_t outer, int64_t inner,
                      int64_t capacity, int64_t rowSize, bool inverse, float *out,
                      int32_t *offsets, std::string *error) {
  // Start row of segment (g, l) in (outer, inner) order and in (inner, outer) order.
  std::vector<int64_t> byOuter(outer * inner), byInner(outer * inner);
  int64_t total = 0;
  for (int64_t s = 0; s < outer * inner; ++s) {
    if (counts[s] < 0)
      return fail(error, "segment_transpose: count " + std::to_string(counts[s]) +
                             " of segment (" + std::to_string(s / inner) + ", " +
                             std::to_string(s % inner) + ") is negative");
    byOuter[s] = total;
    total += counts[s];
  }
  if (total > capacity)
    return fail(error, "segment_transpose: the counts hold " + std::to_string(total) +
                           " rows, more than the buffer's " + std::to_string(capacity));
  int64_t next = 0;
  for (int64_t l = 0; l < inner; ++l) {
    if (!inverse)
      offsets[l] = int32_t(next);
    for (int64_t g = 0; g < outer; ++g) {
      byInner[g * inner + l] = next;
      next += counts[g * inner + l];
    }
  }
  if (!inverse)
    offsets[inner] = int32_t(total);
  else
    for (int64_t g = 0; g <= outer; ++g)
      offsets[g] = int32_t(g < outer ? byOuter[g * inner] : total);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < outer * inner; ++s) {
    const int64_t from = inverse ? byInner[s] : byOuter[s];
    const int64_t to = inverse ? byOuter[s] : byInner[s];
    std::memcpy(out + to * rowSize, x + from * rowSize, size_t(counts[s] * rowSize) * sizeof(float));
  }
  std::fill(out + total * rowSize, out + capacity * rowSize, 0.0f);
  return true;
}

} // namespace kiln::kernels
