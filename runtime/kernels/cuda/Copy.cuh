//===- Copy.cuh - CUDA data-movement kernels ------------------------------===//
//
// The CUDA twins of runtime/kernels/Copy.h: fill, copy, extract_slice /
// insert_slice (static offsets, sizes and strides), concat, broadcast and
// its gradient unbroadcast, over row-major f32 / int32 (fill also i64)
// buffers of rank at most kMaxCopyRank. Each launcher has the host kernel's
// name and parameters after a leading stream; the shapes (Dims) and the
// concat part tables are host values, the element pointers device pointers.
//
//   - every kernel is one thread per output element (grid-stride), its
//     source index computed from the element's row-major index with the
//     launcher's precomputed steps (SliceMap, BroadcastMap): a copy is a
//     copy, so the results are the host's bit for bit;
//   - unbroadcast: one thread per output element summing its terms in the
//     host's order (row-major over the summed indices), so also bit for
//     bit, deterministic, no atomics. No block-per-output variant: the
//     summed extents the compiler emits (bias gradients, broadcast scalars)
//     leave one thread per output busy enough, and a different order would
//     give up the host's bits.
//
// Nothing here is data-dependent: every check is the host's shape check in
// the launcher (same conditions, same messages). Copy.h's Dims constructor
// lives in Copy.cpp, so a program calling these links the host kernels.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_COPY_CUH
#define KILN_RUNTIME_KERNELS_CUDA_COPY_CUH

#include "runtime/kernels/Copy.h"
#include "runtime/kernels/cuda/Device.cuh"

namespace kiln::cuda {

using kernels::Dims;
using kernels::kMaxCopyRank;

/// Where element e (row-major over `sizes`) of a slice lies in the full
/// tensor: base + sum_k i_k step[k], step[k] = strides[k] * the full
/// tensor's row stride of k.
struct SliceMap {
  int64_t rank;
  int64_t sizes[kMaxCopyRank];
  int64_t step[kMaxCopyRank];
  int64_t base;
};

/// Where element e (row-major over outShape) of a broadcast reads x: sum_k
/// i_k xStep[k], xStep[k] = 0 where x's dimension is 1.
struct BroadcastMap {
  int64_t rank;
  int64_t outShape[kMaxCopyRank];
  int64_t xStep[kMaxCopyRank];
};

/// unbroadcast's sums: output element o (row-major over outShape) starts at
/// sum_k i_k xStrides[k] and adds `terms` elements, row-major over the
/// summed dimensions (extents summedShape, x strides summedStride).
struct UnbroadcastMap {
  int64_t rank;
  int64_t outShape[kMaxCopyRank];
  int64_t xStrides[kMaxCopyRank];
  int64_t numSummed;
  int64_t summedShape[kMaxCopyRank];
  int64_t summedStride[kMaxCopyRank];
  int64_t terms;
};

// The index loops below run over all kMaxCopyRank dimensions, skipping
// those past the rank, so that nvcc unrolls them and indexes the maps
// (kernel parameters) statically: a loop to `rank` would copy each map to
// the stack for dynamic indexing.

__device__ __forceinline__ int64_t sliceOffset(const SliceMap &map, int64_t e) {
  int64_t at = map.base;
  for (int k = kMaxCopyRank - 1; k >= 0; --k)
    if (k < map.rank) {
      at += (e % map.sizes[k]) * map.step[k];
      e /= map.sizes[k];
    }
  return at;
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

template <typename T>
__global__ void fillKernel(T *out, int64_t n, T value) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    out[i] = value;
}

template <typename T>
__global__ void copyKernel(T *out, const T *in, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    out[i] = in[i];
}

template <typename T>
__global__ void extractSliceKernel(T *out, const T *source, SliceMap map, int64_t n) {
  for (int64_t e = globalThread(); e < n; e += gridThreads())
    out[e] = source[sliceOffset(map, e)];
}

template <typename T>
__global__ void insertSliceKernel(T *out, const T *source, SliceMap map, int64_t n) {
  for (int64_t e = globalThread(); e < n; e += gridThreads())
    out[sliceOffset(map, e)] = source[e];
}

/// One part of a concat: part [outer, width] into out's rows of `rowWidth`
/// at column `column`.
template <typename T>
__global__ void concatPartKernel(T *out, const T *part, int64_t outer, int64_t width,
                                 int64_t rowWidth, int64_t column) {
  for (int64_t e = globalThread(); e < outer * width; e += gridThreads())
    out[(e / width) * rowWidth + column + e % width] = part[e];
}

__global__ void broadcastKernel(float *out, const float *x, BroadcastMap map, int64_t n) {
  for (int64_t e = globalThread(); e < n; e += gridThreads()) {
    int64_t rest = e, at = 0;
    for (int k = kMaxCopyRank - 1; k >= 0; --k)
      if (k < map.rank) {
        at += (rest % map.outShape[k]) * map.xStep[k];
        rest /= map.outShape[k];
      }
    out[e] = x[at];
  }
}

/// The host's loop body: output o's terms in row-major order of the summed
/// indices.
__global__ void unbroadcastKernel(float *out, const float *x, UnbroadcastMap map, int64_t n) {
  for (int64_t o = globalThread(); o < n; o += gridThreads()) {
    int64_t rest = o, base = 0;
    for (int k = kMaxCopyRank - 1; k >= 0; --k)
      if (k < map.rank) {
        base += (rest % map.outShape[k]) * map.xStrides[k];
        rest /= map.outShape[k];
      }
    float sum = 0.0f;
    for (int64_t t = 0; t < map.terms; ++t) {
      int64_t tr = t, at = base;
      for (int s = kMaxCopyRank - 1; s >= 0; --s)
        if (s < map.numSummed) {
          at += (tr % map.summedShape[s]) * map.summedStride[s];
          tr /= map.summedShape[s];
        }
      sum += x[at];
    }
    out[o] = sum;
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// The product of shape's entries (1 for rank 0), as Dims::product.
inline int64_t copyElements(const Dims &shape) {
  int64_t p = 1;
  for (int64_t k = 0; k < shape.rank; ++k)
    p *= shape.d[k];
  return p;
}

/// Row-major element strides of `shape`.
inline void copyRowStrides(const Dims &shape, int64_t *strides) {
  int64_t s = 1;
  for (int64_t k = shape.rank - 1; k >= 0; --k) {
    strides[k] = s;
    s *= shape.d[k];
  }
}

inline void checkCopyShape(const Dims &shape, const char *what) {
  for (int64_t k = 0; k < shape.rank; ++k)
    KILN_LAUNCH_CHECK(shape[k] >= 0, "%s: dimension %lld is negative (%lld)", what,
                      (long long)k, (long long)shape[k]);
}

/// The slice (offsets, sizes, strides) inside `shape`, as a SliceMap.
inline SliceMap checkedSliceMap(const Dims &shape, const Dims &offsets, const Dims &sizes,
                                const Dims &strides, const char *kernel) {
  checkCopyShape(shape, kernel);
  KILN_LAUNCH_CHECK(offsets.rank == shape.rank && sizes.rank == shape.rank &&
                        strides.rank == shape.rank,
                    "%s: expects offsets, sizes and strides of rank %lld, got %lld, %lld, %lld",
                    kernel, (long long)shape.rank, (long long)offsets.rank,
                    (long long)sizes.rank, (long long)strides.rank);
  for (int64_t k = 0; k < shape.rank; ++k) {
    KILN_LAUNCH_CHECK(sizes[k] >= 0 && strides[k] >= 1 && offsets[k] >= 0,
                      "%s: dimension %lld: expects offset >= 0, size >= 0, stride >= 1, got "
                      "%lld, %lld, %lld",
                      kernel, (long long)k, (long long)offsets[k], (long long)sizes[k],
                      (long long)strides[k]);
    KILN_LAUNCH_CHECK(sizes[k] == 0 || offsets[k] + (sizes[k] - 1) * strides[k] < shape[k],
                      "%s: dimension %lld: slice offset %lld size %lld stride %lld exceeds "
                      "the size %lld",
                      kernel, (long long)k, (long long)offsets[k], (long long)sizes[k],
                      (long long)strides[k], (long long)shape[k]);
  }
  SliceMap map{shape.rank, {}, {}, 0};
  int64_t full[kMaxCopyRank];
  copyRowStrides(shape, full);
  for (int64_t k = 0; k < shape.rank; ++k) {
    map.sizes[k] = sizes[k];
    map.step[k] = strides[k] * full[k];
    map.base += offsets[k] * full[k];
  }
  return map;
}

/// `small` broadcasts to `large`: same rank, each dimension equal or 1.
inline void checkCopyBroadcast(const Dims &small, const Dims &large, const char *kernel) {
  checkCopyShape(small, kernel);
  checkCopyShape(large, kernel);
  KILN_LAUNCH_CHECK(small.rank == large.rank,
                    "%s: expects shapes of one rank, got %lld and %lld", kernel,
                    (long long)small.rank, (long long)large.rank);
  for (int64_t k = 0; k < small.rank; ++k)
    KILN_LAUNCH_CHECK(small[k] == large[k] || small[k] == 1,
                      "%s: dimension %lld: %lld does not broadcast to %lld", kernel,
                      (long long)k, (long long)small[k], (long long)large[k]);
}

template <typename T>
void launchFill(cudaStream_t stream, T *out, int64_t n, T value) {
  KILN_LAUNCH_CHECK(n >= 0, "fill: expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(fillKernel<T>, blocksFor(n), kBlock, 0, stream, out, n, value);
}

template <typename T>
void launchCopy(cudaStream_t stream, T *out, const T *in, int64_t n) {
  KILN_LAUNCH_CHECK(n >= 0, "copy: expects n >= 0, got %lld", (long long)n);
  if (out != in && n > 0)
    KILN_LAUNCH(copyKernel<T>, blocksFor(n), kBlock, 0, stream, out, in, n);
}

template <typename T>
void launchExtractSlice(cudaStream_t stream, T *out, const T *source, const Dims &sourceShape,
                      const Dims &offsets, const Dims &sizes, const Dims &strides) {
  const SliceMap map = checkedSliceMap(sourceShape, offsets, sizes, strides, "extract_slice");
  const int64_t n = copyElements(sizes);
  if (n > 0)
    KILN_LAUNCH(extractSliceKernel<T>, blocksFor(n), kBlock, 0, stream, out, source, map, n);
}

template <typename T>
void launchInsertSlice(cudaStream_t stream, T *out, const T *dest, const T *source,
                     const Dims &destShape, const Dims &offsets, const Dims &sizes,
                     const Dims &strides) {
  const SliceMap map = checkedSliceMap(destShape, offsets, sizes, strides, "insert_slice");
  // dest first, then the slice over it: the stream orders the two.
  launchCopy(stream, out, dest, copyElements(destShape));
  const int64_t n = copyElements(sizes);
  if (n > 0)
    KILN_LAUNCH(insertSliceKernel<T>, blocksFor(n), kBlock, 0, stream, out, source, map, n);
}

/// `parts` and `partDims` are host arrays (as the codegen spells them);
/// parts' entries are device pointers. One launch per part.
template <typename T>
void launchConcat(cudaStream_t stream, T *out, const T *const *parts, const int64_t *partDims,
                int64_t count, int64_t outer, int64_t inner) {
  KILN_LAUNCH_CHECK(count >= 1 && outer >= 0 && inner >= 0,
                    "concat: expects count >= 1, outer >= 0, inner >= 0, got %lld, %lld, %lld",
                    (long long)count, (long long)outer, (long long)inner);
  int64_t total = 0;
  for (int64_t p = 0; p < count; ++p) {
    KILN_LAUNCH_CHECK(partDims[p] >= 0, "concat: part %lld has a negative size %lld",
                      (long long)p, (long long)partDims[p]);
    total += partDims[p];
  }
  int64_t column = 0;
  for (int64_t p = 0; p < count; ++p) {
    const int64_t width = partDims[p] * inner;
    if (outer * width > 0)
      KILN_LAUNCH(concatPartKernel<T>, blocksFor(outer * width), kBlock, 0, stream, out,
                  parts[p], outer, width, total * inner, column);
    column += width;
  }
}

inline void fill(cudaStream_t stream, float *out, int64_t n, float value) {
  launchFill(stream, out, n, value);
}
inline void fill(cudaStream_t stream, int32_t *out, int64_t n, int32_t value) {
  launchFill(stream, out, n, value);
}
inline void fill(cudaStream_t stream, int64_t *out, int64_t n, int64_t value) {
  launchFill(stream, out, n, value);
}

inline void copy(cudaStream_t stream, float *out, const float *in, int64_t n) {
  launchCopy(stream, out, in, n);
}
inline void copy(cudaStream_t stream, int32_t *out, const int32_t *in, int64_t n) {
  launchCopy(stream, out, in, n);
}

inline void extractSlice(cudaStream_t stream, float *out, const float *source,
                         const Dims &sourceShape, const Dims &offsets, const Dims &sizes,
                         const Dims &strides) {
  launchExtractSlice(stream, out, source, sourceShape, offsets, sizes, strides);
}
inline void extractSlice(cudaStream_t stream, int32_t *out, const int32_t *source,
                         const Dims &sourceShape, const Dims &offsets, const Dims &sizes,
                         const Dims &strides) {
  launchExtractSlice(stream, out, source, sourceShape, offsets, sizes, strides);
}

inline void insertSlice(cudaStream_t stream, float *out, const float *dest, const float *source,
                        const Dims &destShape, const Dims &offsets, const Dims &sizes,
                        const Dims &strides) {
  launchInsertSlice(stream, out, dest, source, destShape, offsets, sizes, strides);
}
inline void insertSlice(cudaStream_t stream, int32_t *out, const int32_t *dest,
                        const int32_t *source, const Dims &destShape, const Dims &offsets,
                        const Dims &sizes, const Dims &strides) {
  launchInsertSlice(stream, out, dest, source, destShape, offsets, sizes, strides);
}

inline void concat(cudaStream_t stream, float *out, const float *const *parts,
                   const int64_t *partDims, int64_t count, int64_t outer, int64_t inner) {
  launchConcat(stream, out, parts, partDims, count, outer, inner);
}
inline void concat(cudaStream_t stream, int32_t *out, const int32_t *const *parts,
                   const int64_t *partDims, int64_t count, int64_t outer, int64_t inner) {
  launchConcat(stream, out, parts, partDims, count, outer, inner);
}

inline void broadcast(cudaStream_t stream, float *out, const float *x, const Dims &xShape,
                      const Dims &outShape) {
  checkCopyBroadcast(xShape, outShape, "broadcast");
  BroadcastMap map{outShape.rank, {}, {}};
  int64_t xStrides[kMaxCopyRank];
  copyRowStrides(xShape, xStrides);
  for (int64_t k = 0; k < outShape.rank; ++k) {
    map.outShape[k] = outShape[k];
    map.xStep[k] = xShape[k] == 1 ? 0 : xStrides[k];
  }
  const int64_t n = copyElements(outShape);
  if (n > 0)
    KILN_LAUNCH(broadcastKernel, blocksFor(n), kBlock, 0, stream, out, x, map, n);
}

inline void unbroadcast(cudaStream_t stream, float *out, const float *x, const Dims &xShape,
                        const Dims &outShape) {
  checkCopyBroadcast(outShape, xShape, "unbroadcast");
  UnbroadcastMap map{xShape.rank, {}, {}, 0, {}, {}, 1};
  copyRowStrides(xShape, map.xStrides);
  for (int64_t k = 0; k < xShape.rank; ++k) {
    map.outShape[k] = outShape[k];
    if (outShape[k] == 1 && xShape[k] != 1) {
      map.summedShape[map.numSummed] = xShape[k];
      map.summedStride[map.numSummed++] = map.xStrides[k];
      map.terms *= xShape[k];
    }
  }
  const int64_t n = copyElements(outShape);
  if (n > 0)
    KILN_LAUNCH(unbroadcastKernel, blocksFor(n), kBlock, 0, stream, out, x, map, n);
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_COPY_CUH
