//===- Reduce.h - The element-wise reductions every backend shares -*- C++ -*-===//
//
// Backends reduce by calling combineInto once per contributing rank, in rank
// order, on a buffer that starts as rank 0's data: that fixed order is what
// makes a float Sum bit-identical across ranks, reruns and backends. Kept in
// one place so that LocalWorld and MPI cannot drift apart.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_REDUCE_H
#define KILN_RUNTIME_COMM_REDUCE_H

#include "runtime/comm/Communicator.h"
#include "runtime/kernels/KernelMath.h"

#include <cmath>
#include <cstring>
#include <type_traits>

namespace kiln::comm::reduction {

/// acc op in for one element: Sum in the element type (integers wrap around
/// in unsigned arithmetic, since signed overflow is undefined), Max with NaN
/// winning. KILN_HD: the CUDA communicator's reduction kernel
/// (runtime/cuda/NcclCommunicator.cuh) calls it too, so the GPU combines
/// exactly as the host backends do.
template <typename T> KILN_HD T combineElement(T acc, T in, ReduceOp op) {
  if (op == ReduceOp::Sum) {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(acc) + static_cast<U>(in));
    } else {
      return acc + in;
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    // NaN wins: a diverged rank must not be hidden by a max.
    if (std::isnan(acc))
      return acc;
    return std::isnan(in) || in > acc ? in : acc;
  } else {
    return in > acc ? in : acc;
  }
}

template <typename T> void combineTyped(T *acc, const T *in, size_t count, ReduceOp op) {
  // One loop per reduction, so that each inlines a constant op and vectorizes.
  if (op == ReduceOp::Sum) {
    for (size_t i = 0; i < count; ++i)
      acc[i] = combineElement(acc[i], in[i], ReduceOp::Sum);
    return;
  }
  for (size_t i = 0; i < count; ++i)
    acc[i] = combineElement(acc[i], in[i], ReduceOp::Max);
}

/// acc[i] = acc[i] op in[i] for i < count.
inline void combineInto(void *acc, const void *in, size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
  case DType::F32:
    return combineTyped(static_cast<float *>(acc), static_cast<const float *>(in), count, op);
  case DType::F64:
    return combineTyped(static_cast<double *>(acc), static_cast<const double *>(in), count, op);
  case DType::I32:
    return combineTyped(static_cast<int32_t *>(acc), static_cast<const int32_t *>(in), count, op);
  case DType::I64:
    return combineTyped(static_cast<int64_t *>(acc), static_cast<const int64_t *>(in), count, op);
  case DType::I8:
    return combineTyped(static_cast<int8_t *>(acc), static_cast<const int8_t *>(in), count, op);
  }
}

/// out = reduction of the n chunks chunks[0..n), each `count` elements, in
/// chunk order. out may alias no chunk except chunks[0].
inline void inRankOrder(void *out, const void *const *chunks, size_t n, size_t count, DType dtype,
                        ReduceOp op) {
  if (n == 0 || count == 0)
    return;
  if (out != chunks[0])
    std::memmove(out, chunks[0], count * dtypeBytes(dtype));
  for (size_t r = 1; r < n; ++r)
    combineInto(out, chunks[r], count, dtype, op);
}

} // namespace kiln::comm::reduction

#endif // KILN_RUNTIME_COMM_REDUCE_H
