//===- ExpertParallel.h - host kernels of the expert-parallel exchange ----===//
//
// The two kernels kiln-expert-parallel adds around a layer's all_to_all
// (KilnMoEOps.td has their contracts); the evaluator rules in
// dialects/kiln/reference/MoERules.cpp compute the same.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_EXPERTPARALLEL_H
#define KILN_RUNTIME_KERNELS_EXPERTPARALLEL_H

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// offsets [experts + 1] of a dispatch, experts split evenly over `groups`
/// ranks -> perExpert [groups, experts / groups] and perRank [groups] row
/// counts.
bool expertCounts(const int32_t *offsets, int64_t experts, int64_t groups, int64_t *perExpert,
                  int64_t *perRank, std::string *error = nullptr);

/// x [capacity, rowSize] holds `outer` segments of `inner` sub-segments,
/// counts [outer, inner] rows each, from row 0 -> out in (inner, outer)
/// order with offsets [inner + 1]; with `inverse` from (inner, outer) back to
/// (outer, inner) with offsets [outer + 1]. Rows past the counted ones are
/// zero in `out`.
bool segmentTranspose(const float *x, const int64_t *counts, int64_t outer, int64_t inner,
                      int64_t capacity, int64_t rowSize, bool inverse, float *out,
                      int32_t *offsets, std::string *error = nullptr);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_KERNELS_EXPERTPARALLEL_H
