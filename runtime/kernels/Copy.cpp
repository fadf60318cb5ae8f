//===- Copy.cpp - host data-movement kernels ------------------------------===//
//
// Element copies parallelised with static OpenMP schedules over independent
// output rows (only above kParallelElements, below which a thread team costs
// more than the copy). unbroadcast's sums run per output element, in a fixed
// order, so results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Copy.h"
#include "runtime/kernels/KernelCheck.h"

#include <algorithm>
#include <cstring>

namespace kiln::kernels {

namespace {

/// Element counts below this run on one thread.
constexpr int64_t kParallelElements = 1 << 15;

/// Row-major element strides of `shape`.
void rowStrides(const Dims &shape, int64_t *strides) {
  int64_t s = 1;
  for (int64_t k = shape.rank - 1; k >= 0; --k) {
    strides[k] = s;
    s *= shape[k];
  }
}

void checkShape(const Dims &shape, const char *what) {
  for (int64_t k = 0; k < shape.rank; ++k)
    KILN_KERNEL_CHECK(shape[k] >= 0, "%s: dimension %lld is negative (%lld)", what,
                      (long long)k, (long long)shape[k]);
}

/// Checks that the slice (offsets, sizes, strides) lies inside `shape`.
void checkSlice(const Dims &shape, const Dims &offsets, const Dims &sizes,
                const Dims &strides, const char *kernel) {
  checkShape(shape, kernel);
  KILN_KERNEL_CHECK(offsets.rank == shape.rank && sizes.rank == shape.rank &&
                        strides.rank == shape.rank,
                    "%s: expects offsets, sizes and strides of rank %lld, got %lld, %lld, %lld",
                    kernel, (long long)shape.rank, (long long)offsets.rank,
                    (long long)sizes.rank, (long long)strides.rank);
  for (int64_t k = 0; k < shape.rank; ++k) {
    KILN_KERNEL_CHECK(sizes[k] >= 0 && strides[k] >= 1 && offsets[k] >= 0,
                      "%s: dimension %lld: expects offset >= 0, size >= 0, stride >= 1, got "
                      "%lld, %lld, %lld",
                      kernel, (long long)k, (long long)offsets[k], (long long)sizes[k],
                      (long long)strides[k]);
    KILN_KERNEL_CHECK(sizes[k] == 0 || offsets[k] + (sizes[k] - 1) * strides[k] < shape[k],
                      "%s: dimension %lld: slice offset %lld size %lld stride %lld exceeds "
                      "the size %lld",
                      kernel, (long long)k, (long long)offsets[k], (long long)sizes[k],
                      (long long)strides[k], (long long)shape[k]);
  }
}

/// Calls body(sliceBase, fullBase, count, fullStride) for every row (last
/// dimension) of the slice: slice elements [sliceBase, sliceBase + count)
/// (row-major over `sizes`) are the full tensor's elements fullBase +
/// j * fullStride. Rows run in parallel when the slice is large.
template <typename Body>
void forEachSliceRow(const Dims &shape, const Dims &offsets, const Dims &sizes,
                     const Dims &strides, Body body) {
  int64_t rank = shape.rank;
  if (rank == 0) {
    body(int64_t(0), int64_t(0), int64_t(1), int64_t(1));
    return;
  }
  int64_t full[kMaxCopyRank];
  rowStrides(shape, full);
  int64_t inner = sizes[rank - 1], rows = 1;
  for (int64_t k = 0; k + 1 < rank; ++k)
    rows *= sizes[k];
  if (rows == 0 || inner == 0)
    return;
#pragma omp parallel for schedule(static) if (rows * inner >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r, base = offsets[rank - 1];
    for (int64_t k = rank - 2; k >= 0; --k) {
      int64_t i = rest % sizes[k];
      rest /= sizes[k];
      base += (offsets[k] + i * strides[k]) * full[k];
    }
    body(r * inner, base, inner, strides[rank - 1]);
  }
}

template <typename T>
void fillImpl(T *out, int64_t n, T value) {
  KILN_KERNEL_CHECK(n >= 0, "fill: expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i)
    out[i] = value;
}

template <typename T>
void copyImpl(T *out, const T *in, int64_t n) {
  KILN_KERNEL_CHECK(n >= 0, "copy: expects n >= 0, got %lld", (long long)n);
  if (out == in || n == 0)
    return;
  std::memmove(out, in, size_t(n) * sizeof(T));
}

template <typename T>
void extractSliceImpl(T *out, const T *source, const Dims &sourceShape, const Dims &offsets,
                      const Dims &sizes, const Dims &strides) {
  checkSlice(sourceShape, offsets, sizes, strides, "extract_slice");
  forEachSliceRow(sourceShape, offsets, sizes, strides,
                  [&](int64_t at, int64_t from, int64_t count, int64_t stride) {
                    const T *src = source + from;
                    T *dst = out + at;
                    if (stride == 1) {
                      std::copy_n(src, count, dst);
                      return;
                    }
                    for (int64_t j = 0; j < count; ++j)
                      dst[j] = src[j * stride];
                  });
}

template <typename T>
void insertSliceImpl(T *out, const T *dest, const T *source, const Dims &destShape,
                     const Dims &offsets, const Dims &sizes, const Dims &strides) {
  checkSlice(destShape, offsets, sizes, strides, "insert_slice");
  copyImpl(out, dest, destShape.product());
  forEachSliceRow(destShape, offsets, sizes, strides,
                  [&](int64_t at, int64_t to, int64_t count, int64_t stride) {
                    const T *src = source + at;
                    T *dst = out + to;
                    if (stride == 1) {
                      std::copy_n(src, count, dst);
                      return;
                    }
                    for (int64_t j = 0; j < count; ++j)
                      dst[j * stride] = src[j];
                  });
}

template <typename T>
void concatImpl(T *out, const T *const *parts, const int64_t *partDims, int64_t count,
                int64_t outer, int64_t inner) {
  KILN_KERNEL_CHECK(count >= 1 && outer >= 0 && inner >= 0,
                    "concat: expects count >= 1, outer >= 0, inner >= 0, got %lld, %lld, %lld",
                    (long long)count, (long long)outer, (long long)inner);
  int64_t total = 0;
  for (int64_t p = 0; p < count; ++p) {
    KILN_KERNEL_CHECK(partDims[p] >= 0, "concat: part %lld has a negative size %lld",
                      (long long)p, (long long)partDims[p]);
    total += partDims[p];
  }
#pragma omp parallel for schedule(static) if (outer * total * inner >= kParallelElements)
  for (int64_t o = 0; o < outer; ++o) {
    T *dst = out + o * total * inner;
    for (int64_t p = 0; p < count; ++p) {
      int64_t n = partDims[p] * inner;
      std::copy_n(parts[p] + o * n, n, dst);
      dst += n;
    }
  }
}

/// Checks that `small` broadcasts to `large`: same rank, each dimension
/// equal or 1 in `small`.
void checkBroadcast(const Dims &small, const Dims &large, const char *kernel) {
  checkShape(small, kernel);
  checkShape(large, kernel);
  KILN_KERNEL_CHECK(small.rank == large.rank, "%s: expects shapes of one rank, got %lld and %lld",
                    kernel, (long long)small.rank, (long long)large.rank);
  for (int64_t k = 0; k < small.rank; ++k)
    KILN_KERNEL_CHECK(small[k] == large[k] || small[k] == 1,
                      "%s: dimension %lld: %lld does not broadcast to %lld", kernel,
                      (long long)k, (long long)small[k], (long long)large[k]);
}

} // namespace

Dims::Dims(std::initializer_list<int64_t> list) {
  KILN_KERNEL_CHECK(int64_t(list.size()) <= kMaxCopyRank,
                    "expects at most %lld dimensions, got %lld", (long long)kMaxCopyRank,
                    (long long)list.size());
  rank = int64_t(list.size());
  std::copy(list.begin(), list.end(), d);
}

int64_t Dims::product() const {
  int64_t p = 1;
  for (int64_t k = 0; k < rank; ++k)
    p *= d[k];
  return p;
}

void fill(float *out, int64_t n, float value) { fillImpl(out, n, value); }
void fill(int32_t *out, int64_t n, int32_t value) { fillImpl(out, n, value); }
void fill(int64_t *out, int64_t n, int64_t value) { fillImpl(out, n, value); }

void copy(float *out, const float *in, int64_t n) { copyImpl(out, in, n); }
void copy(int32_t *out, const int32_t *in, int64_t n) { copyImpl(out, in, n); }

void extractSlice(float *out, const float *source, const Dims &sourceShape,
                  const Dims &offsets, const Dims &sizes, const Dims &strides) {
  extractSliceImpl(out, source, sourceShape, offsets, sizes, strides);
}
void extractSlice(int32_t *out, const int32_t *source, const Dims &sourceShape,
                  const Dims &offsets, const Dims &sizes, const Dims &strides) {
  extractSliceImpl(out, source, sourceShape, offsets, sizes, strides);
}

void insertSlice(float *out, const float *dest, const float *source, const Dims &destShape,
                 const Dims &offsets, const Dims &sizes, const Dims &strides) {
  insertSliceImpl(out, dest, source, destShape, offsets, sizes, strides);
}
void insertSlice(int32_t *out, const int32_t *dest, const int32_t *source,
                 const Dims &destShape, const Dims &offsets, const Dims &sizes,
                 const Dims &strides) {
  insertSliceImpl(out, dest, source, destShape, offsets, sizes, strides);
}

void concat(float *out, const float *const *parts, const int64_t *partDims, int64_t count,
            int64_t outer, int64_t inner) {
  concatImpl(out, parts, partDims, count, outer, inner);
}
void concat(int32_t *out, const int32_t *const *parts, const int64_t *partDims,
            int64_t count, int64_t outer, int64_t inner) {
  concatImpl(out, parts, partDims, count, outer, inner);
}

void broadcast(float *out, const float *x, const Dims &xShape, const Dims &outShape) {
  checkBroadcast(xShape, outShape, "broadcast");
  int64_t rank = outShape.rank;
  if (rank == 0) {
    out[0] = x[0];
    return;
  }
  int64_t xStrides[kMaxCopyRank];
  rowStrides(xShape, xStrides);
  int64_t inner = outShape[rank - 1], rows = 1;
  for (int64_t k = 0; k + 1 < rank; ++k)
    rows *= outShape[k];
  if (rows == 0 || inner == 0)
    return;
  bool repeatInner = xShape[rank - 1] == 1 && inner != 1;
#pragma omp parallel for schedule(static) if (rows * inner >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r, base = 0;
    for (int64_t k = rank - 2; k >= 0; --k) {
      int64_t i = rest % outShape[k];
      rest /= outShape[k];
      if (xShape[k] != 1)
        base += i * xStrides[k];
    }
    float *dst = out + r * inner;
    if (repeatInner)
      std::fill_n(dst, inner, x[base]);
    else
      std::copy_n(x + base, inner, dst);
  }
}

void unbroadcast(float *out, const float *x, const Dims &xShape, const Dims &outShape) {
  checkBroadcast(outShape, xShape, "unbroadcast");
  int64_t rank = xShape.rank;
  int64_t xStrides[kMaxCopyRank];
  rowStrides(xShape, xStrides);
  // The summed dimensions, outermost first, and how many terms each output has.
  int64_t summed[kMaxCopyRank], numSummed = 0, terms = 1;
  for (int64_t k = 0; k < rank; ++k)
    if (outShape[k] == 1 && xShape[k] != 1) {
      summed[numSummed++] = k;
      terms *= xShape[k];
    }
  int64_t n = outShape.product();
#pragma omp parallel for schedule(static) if (n * terms >= kParallelElements)
  for (int64_t o = 0; o < n; ++o) {
    int64_t rest = o, base = 0;
    for (int64_t k = rank - 1; k >= 0; --k) {
      int64_t i = rest % outShape[k];
      rest /= outShape[k];
      base += i * xStrides[k];
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < terms; ++t) {
      int64_t tr = t, at = base;
      for (int64_t s = numSummed - 1; s >= 0; --s) {
        int64_t k = summed[s];
        at += (tr % xShape[k]) * xStrides[k];
        tr /= xShape[k];
      }
      sum += x[at];
    }
    out[o] = sum;
  }
}

} // namespace kiln::kernels
