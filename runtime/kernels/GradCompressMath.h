//===- GradCompressMath.h - top-k gradient compression with error feedback -===//
//
// The math of kiln.topk_compress / kiln.topk_decompress (KilnTrainOps.td),
// shared by the host kernels (GradCompress.cpp) and the reference evaluator
// (TrainRules.cpp): the message holds f32 and int8 bit patterns, so the op is
// defined in f32 and both run this code, bit for bit.
//
// One message per gradient tensor of n elements, k of them kept, little-
// endian, packed without padding:
//
//   quantize int8:  [scale: f32][indices: k x i32][values: k x i8]  4 + 5k bytes
//   quantize none:  [indices: k x i32][values: k x f32]             8k bytes
//
// Selection: acc = grad + residual; the k elements of largest |acc| (NaN
// first, then ties to the lower index), written in increasing index order.
// int8: scale = max |acc| over the kept / 127 (0 if that is 0; NaN if a
// kept value is not finite), value = nearbyint(acc / scale) clamped to
// [-127, 127] (0 when the scale is 0 or NaN), sent value = value * scale.
// The new residual (error feedback) is acc - sent value at kept elements and
// acc elsewhere, so sent + residual = acc: nothing a rank computed is lost,
// only delayed. The subtraction is exact (|sent - acc| <= scale / 2 <= |sent|
// / 2 for a nonzero value, Sterbenz), so the only rounding in the books is
// that of acc = grad + residual itself.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_GRADCOMPRESSMATH_H
#define KILN_RUNTIME_GRADCOMPRESSMATH_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kiln::kernels {

/// Bytes of one message with `k` kept elements.
inline int64_t topkMessageBytes(int64_t k, bool int8) { return int8 ? 4 + 5 * k : 8 * k; }

/// Writes the message of grad + residual into `message` and, when
/// `newResidual` is non-null (it may be `residual`: in place), the new
/// residual. `order` and `sentScratch` are scratch.
inline void topkCompressTensor(const float *grad, const float *residual, int64_t n, int64_t k,
                               bool int8, unsigned char *message, float *newResidual,
                               std::vector<int64_t> &order, std::vector<float> &sentScratch) {
  auto acc = [&](int64_t i) { return grad[i] + residual[i]; };
  auto magnitude = [&](int64_t i) {
    float a = std::fabs(acc(i));
    return std::isnan(a) ? INFINITY : a;
  };
  order.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i)
    order[size_t(i)] = i;
  auto larger = [&](int64_t a, int64_t b) {
    float ma = magnitude(a), mb = magnitude(b);
    return ma > mb || (ma == mb && a < b);
  };
  if (k < n)
    std::nth_element(order.begin(), order.begin() + k, order.end(), larger);
  std::sort(order.begin(), order.begin() + k);

  float scale = 1.0f;
  if (int8) {
    // A kept inf or NaN (they sort first) makes the scale NaN, so every
    // value of the tensor arrives as NaN: the global norm shows it.
    float amax = 0.0f;
    bool finite = true;
    for (int64_t j = 0; j < k; ++j) {
      const float v = std::fabs(acc(order[size_t(j)]));
      finite = finite && std::isfinite(v);
      amax = std::isfinite(v) ? std::max(amax, v) : amax;
    }
    scale = finite ? amax / 127.0f : NAN;
    std::memcpy(message, &scale, 4);
    message += 4;
  }
  std::vector<float> &sent = sentScratch;
  sent.resize(size_t(k));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t i = order[size_t(j)];
    const int32_t index = int32_t(i);
    std::memcpy(message + 4 * j, &index, 4);
    const float a = acc(i);
    if (int8) {
      float q = scale > 0.0f ? std::nearbyint(a / scale) : 0.0f;
      q = std::min(127.0f, std::max(-127.0f, q));
      const int8_t value = int8_t(q);
      std::memcpy(message + 4 * k + j, &value, 1);
      sent[size_t(j)] = q * scale;
    } else {
      std::memcpy(message + 4 * k + 4 * j, &a, 4);
      sent[size_t(j)] = a;
    }
  }
  // Last, element by element (so newResidual may be residual itself): acc
  // minus what was sent.
  if (newResidual)
    for (int64_t i = 0, j = 0; i < n; ++i) {
      float a = acc(i);
      if (j < k && order[size_t(j)] == i)
        a -= sent[size_t(j++)];
      newResidual[i] = a;
    }
}

/// Adds the values of one message into out[0..n); false (with the bad
/// index in *badIndex) if an index is outside [0, n).
inline bool topkDecompressAdd(const unsigned char *message, int64_t n, int64_t k, bool int8,
                              float *out, int64_t *badIndex) {
  float scale = 1.0f;
  if (int8) {
    std::memcpy(&scale, message, 4);
    message += 4;
  }
  for (int64_t j = 0; j < k; ++j) {
    int32_t index;
    std::memcpy(&index, message + 4 * j, 4);
    if (index < 0 || index >= n) {
      *badIndex = index;
      return false;
    }
    float value;
    if (int8) {
      int8_t q;
      std::memcpy(&q, message + 4 * k + j, 1);
      value = float(q) * scale;
    } else {
      std::memcpy(&value, message + 4 * k + 4 * j, 4);
    }
    out[index] += value;
  }
  return true;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_GRADCOMPRESSMATH_H
