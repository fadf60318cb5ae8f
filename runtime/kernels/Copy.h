//===- Copy.h - host data-movement kernels --------------------------------===//
//
// The kernels of the kiln_kernel launches that only move data: `fill`,
// `extract_slice` / `insert_slice` (tensor.extract_slice / insert_slice with
// static offsets, sizes and strides), `concat`, and kiln.broadcast with its
// gradient kiln.unbroadcast (KilnDenseOps.td, KilnGradOps.td). Buffers are
// row-major, f32 or int32, of rank at most kMaxCopyRank. Outputs are
// overwritten. Bad shapes stop the program with a message (KernelCheck.h):
// the compiler planned them, so they are compiler bugs.
//
// Determinism: loops are OpenMP-parallel with static schedules over
// independent outputs only; unbroadcast sums each output in row-major order
// of the summed indices, so the bits do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COPY_H
#define KILN_RUNTIME_COPY_H

#include <cstdint>
#include <initializer_list>
#include <limits>

namespace kiln::kernels {

/// The largest rank the slice, broadcast and unbroadcast kernels take.
constexpr int64_t kMaxCopyRank = 6;

/// A shape, or one index per dimension (offsets, sizes, strides), passed by
/// value: generated code writes `{4, 32, 64}`. Rank 0 is `{}`.
struct Dims {
  int64_t rank = 0;
  int64_t d[kMaxCopyRank] = {};

  Dims() = default;
  /// Stops the program if `list` has more than kMaxCopyRank entries.
  Dims(std::initializer_list<int64_t> list);
  int64_t operator[](int64_t i) const { return d[i]; }
  /// The product of the entries (1 for rank 0).
  int64_t product() const;
};

/// out[0..n) = value.
void fill(float *out, int64_t n, float value);
void fill(int32_t *out, int64_t n, int32_t value);
/// i64 fills are row counts (expert parallelism's all_to_all).
void fill(int64_t *out, int64_t n, int64_t value);

/// out[0..n) = in[0..n); nothing when out == in (ranges must not otherwise
/// overlap).
void copy(float *out, const float *in, int64_t n);
void copy(int32_t *out, const int32_t *in, int64_t n);

/// tensor.extract_slice: out (row-major, sizes.product() elements) =
/// source[offsets[k] + i[k] * strides[k]] for i in [0, sizes), source of
/// shape sourceShape. offsets, sizes and strides have sourceShape's rank.
void extractSlice(float *out, const float *source, const Dims &sourceShape,
                  const Dims &offsets, const Dims &sizes, const Dims &strides);
void extractSlice(int32_t *out, const int32_t *source, const Dims &sourceShape,
                  const Dims &offsets, const Dims &sizes, const Dims &strides);

/// tensor.insert_slice: out (shape destShape) = dest with source
/// (sizes.product() elements, row-major) written at the slice. out may be
/// dest (then only the slice is written).
void insertSlice(float *out, const float *dest, const float *source, const Dims &destShape,
                 const Dims &offsets, const Dims &sizes, const Dims &strides);
void insertSlice(int32_t *out, const int32_t *dest, const int32_t *source,
                 const Dims &destShape, const Dims &offsets, const Dims &sizes,
                 const Dims &strides);

/// tensor.concat along one dimension: part p is [outer, partDims[p], inner]
/// and out is [outer, sum partDims, inner].
void concat(float *out, const float *const *parts, const int64_t *partDims, int64_t count,
            int64_t outer, int64_t inner);
void concat(int32_t *out, const int32_t *const *parts, const int64_t *partDims,
            int64_t count, int64_t outer, int64_t inner);

/// kiln.broadcast: out[i] = x[i with the dimensions where xShape is 1 set
/// to 0]. Same rank; each xShape dim equals outShape's or is 1.
void broadcast(float *out, const float *x, const Dims &xShape, const Dims &outShape);

/// kiln.unbroadcast: out (shape outShape) = x (shape xShape) summed over the
/// dimensions where outShape is 1 and xShape is larger, in row-major order of
/// the summed indices. Same rank; each outShape dim equals xShape's or is 1.
void unbroadcast(float *out, const float *x, const Dims &xShape, const Dims &outShape);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_COPY_H
