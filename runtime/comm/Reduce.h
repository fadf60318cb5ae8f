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

#include <cmath>
#include <cstring>
#include <type_traits>

namespace kiln::comm::reduction {

template <typename T> void combineTyped(T *acc, const T *in, size_t count, ReduceOp op) {
  if (op == ReduceOp::Sum) {
    if constexpr (std::is_integral_v<T>) {
      // Signed overflow is undefined; wrap around in unsigned arithmetic.
      using U = std::make_unsigned_t<T>;
      for (size_t i = 0; i < count; ++i)
        acc[i] = static_cast<T>(static_cast<U>(acc[i]) + static_cast<U>(in[i]));
    } else {
      for (size_t i = 0; i < count; ++i)
        acc[i] += in[i];
    }
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      // NaN wins: a diverged rank must not be hidden by a max.
      if (std::isnan(acc[i]))
        continue;
      if (std::isnan(in[i]) || in[i] > acc[i])
        acc[i] = in[i];
    } else if (in[i] > acc[i]) {
      acc[i] = in[i];
    }
  }
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
