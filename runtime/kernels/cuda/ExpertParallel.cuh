//===- ExpertParallel.cuh - CUDA kernels of the expert-parallel exchange --===//
//
// The CUDA twins of runtime/kernels/ExpertParallel.h: expert_counts (row
// counts per expert and per rank from a dispatch's offsets, before the
// all_to_all) and segment_transpose (rows regrouped from (outer, inner) to
// (inner, outer) segments and back, after it). Same names, the host's
// parameters after a stream, the host's bool and messages for the checks
// it makes on sizes; the data checks (offsets that decrease, negative counts,
// counts past the buffer) are KILN_DEVICE_ERROR records, since offsets and
// counts live on the device (no host sync per layer).
//
// Everything is in the reference order and bit-identical to the host (these
// kernels copy; nothing is summed in floating point). Segment starts are
// prefix sums over at most a few thousand segments, recomputed by each
// thread that needs them (no workspace: the launchers take only the host's
// buffers). On bad counts nothing is copied, `out` is zero and the offsets
// are zero: the host returns false there and leaves its outputs unspecified.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_EXPERTPARALLEL_CUH
#define KILN_RUNTIME_KERNELS_CUDA_EXPERTPARALLEL_CUH

#include "runtime/kernels/cuda/Device.cuh"

#include <string>

namespace kiln::cuda {

/// A negative segment count (index: the segment, outer * inner + l).
constexpr int32_t kNegativeSegmentCount = 303;
/// Counts holding more rows than the buffer (index: their total).
constexpr int32_t kSegmentsOverflow = 304;

namespace ep {

/// Segment s's start row in (outer, inner) order and in (inner, outer)
/// order, the total of every count, and whether the counts are valid (none
/// negative, total <= capacity): one pass over the counts, as the host's.
struct SegmentStarts {
  int64_t byOuter = 0, byInner = 0, total = 0;
  bool valid = true;
};
__device__ inline SegmentStarts segmentStarts(const int64_t *counts, int64_t outer, int64_t inner,
                                              int64_t capacity, int64_t s) {
  SegmentStarts r;
  const int64_t g = s / inner, l = s % inner;
  for (int64_t u = 0; u < outer * inner; ++u) {
    const int64_t c = counts[u], gu = u / inner, lu = u % inner;
    r.valid = r.valid && c >= 0;
    r.total += c;
    if (u < s)
      r.byOuter += c;
    if (lu < l || (lu == l && gu < g))
      r.byInner += c;
  }
  r.valid = r.valid && r.total <= capacity;
  return r;
}

} // namespace ep

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Thread i: perExpert[i] (i < experts) and perRank[i] (i < groups).
__global__ void expertCountsKernel(const int32_t *offsets, int64_t experts, int64_t groups,
                                   int64_t *perExpert, int64_t *perRank) {
  const int64_t local = experts / groups;
  const int64_t n = experts > groups ? experts : groups;
  for (int64_t i = globalThread(); i < n; i += gridThreads()) {
    if (i < experts) {
      if (offsets[i + 1] < offsets[i])
        KILN_DEVICE_ERROR(kBadExpertOffsets, i);
      else
        perExpert[i] = int64_t(offsets[i + 1]) - offsets[i];
    }
    if (i < groups)
      perRank[i] = int64_t(offsets[(i + 1) * local]) - offsets[i * local];
  }
}

/// One thread: the offsets (inner + 1 of them, or outer + 1 with inverse),
/// after checking every count as the host does.
__global__ void segmentOffsetsKernel(const int64_t *counts, int64_t outer, int64_t inner,
                                     int64_t capacity, bool inverse, int32_t *offsets) {
  if (globalThread() != 0)
    return;
  int64_t total = 0;
  bool valid = true;
  for (int64_t s = 0; s < outer * inner; ++s) {
    if (counts[s] < 0 && valid)
      KILN_DEVICE_ERROR(kNegativeSegmentCount, s);
    valid = valid && counts[s] >= 0;
    total += counts[s];
  }
  if (valid && total > capacity) {
    KILN_DEVICE_ERROR(kSegmentsOverflow, total);
    valid = false;
  }
  const int64_t n = inverse ? outer : inner;
  if (!valid) {
    for (int64_t i = 0; i <= n; ++i)
      offsets[i] = 0;
    return;
  }
  int64_t run = 0;
  if (!inverse) {
    for (int64_t l = 0; l < inner; ++l) {
      offsets[l] = int32_t(run);
      for (int64_t g = 0; g < outer; ++g)
        run += counts[g * inner + l];
    }
  } else {
    for (int64_t g = 0; g < outer; ++g) {
      offsets[g] = int32_t(run);
      for (int64_t l = 0; l < inner; ++l)
        run += counts[g * inner + l];
    }
  }
  offsets[n] = int32_t(total);
}

/// Blocks along y stride the segments; a segment's threads (along x) copy
/// its rows, element by element. Nothing is copied when the counts are bad.
__global__ void segmentCopyKernel(const float *x, const int64_t *counts, int64_t outer,
                                  int64_t inner, int64_t capacity, int64_t rowSize, bool inverse,
                                  float *out) {
  for (int64_t s = blockIdx.y; s < outer * inner; s += gridDim.y) {
    const ep::SegmentStarts at = ep::segmentStarts(counts, outer, inner, capacity, s);
    if (!at.valid)
      return;
    const int64_t from = (inverse ? at.byInner : at.byOuter) * rowSize;
    const int64_t to = (inverse ? at.byOuter : at.byInner) * rowSize;
    const int64_t n = counts[s] * rowSize;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x)
      out[to + i] = x[from + i];
  }
}

/// Zeros from the counted rows (offsets' last entry; 0 on bad counts) to
/// the buffer's end.
__global__ void segmentZeroTailKernel(const int32_t *offsets, int64_t last, int64_t capacity,
                                      int64_t rowSize, float *out) {
  const int64_t from = int64_t(offsets[last]) * rowSize;
  for (int64_t i = from + globalThread(); i < capacity * rowSize; i += gridThreads())
    out[i] = 0.0f;
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

inline bool expertCounts(cudaStream_t stream, const int32_t *offsets, int64_t experts,
                         int64_t groups, int64_t *perExpert, int64_t *perRank,
                         std::string *error = nullptr) {
  if (experts < 1 || groups < 1 || experts % groups != 0) {
    if (error)
      *error = "expert_counts: " + std::to_string(groups) + " groups do not divide " +
               std::to_string(experts) + " experts";
    return false;
  }
  KILN_LAUNCH(expertCountsKernel, blocksFor(experts), kBlock, 0, stream, offsets, experts, groups,
              perExpert, perRank);
  return true;
}

/// The host makes no size check beyond the counts' (data, here device
/// errors); negative sizes are a launcher check.
inline bool segmentTranspose(cudaStream_t stream, const float *x, const int64_t *counts,
                             int64_t outer, int64_t inner, int64_t capacity, int64_t rowSize,
                             bool inverse, float *out, int32_t *offsets,
                             std::string *error = nullptr) {
  KILN_LAUNCH_CHECK(outer >= 0 && inner >= 0 && capacity >= 0 && rowSize >= 0,
                    "expects sizes >= 0, got outer %lld, inner %lld, capacity %lld, row %lld",
                    (long long)outer, (long long)inner, (long long)capacity, (long long)rowSize);
  KILN_LAUNCH(segmentOffsetsKernel, 1, 1, 0, stream, counts, outer, inner, capacity, inverse,
              offsets);
  const int64_t segments = outer * inner;
  if (segments > 0 && rowSize > 0) {
    // x: enough blocks for an average segment; y: the segments (capped).
    const dim3 grid(blocksFor(capacity * rowSize / segments + 1) > 1024
                        ? 1024
                        : blocksFor(capacity * rowSize / segments + 1),
                    unsigned(segments < 65535 ? segments : 65535));
    KILN_LAUNCH(segmentCopyKernel, grid, kBlock, 0, stream, x, counts, outer, inner, capacity,
                rowSize, inverse, out);
  }
  if (capacity * rowSize > 0)
    KILN_LAUNCH(segmentZeroTailKernel, blocksFor(capacity * rowSize), kBlock, 0, stream, offsets,
                inverse ? outer : inner, capacity, rowSize, out);
  return true;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_EXPERTPARALLEL_CUH
