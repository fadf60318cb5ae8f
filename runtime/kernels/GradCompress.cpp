//===- GradCompress.cpp - host kernels of top-k gradient compression -------===//

#include "runtime/kernels/GradCompress.h"
#include "runtime/kernels/GradCompressMath.h"

namespace kiln::kernels {

static bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

static bool checkSizes(const char *op, int64_t n, int64_t k, std::string *error) {
  if (n < 1 || k < 1 || k > n)
    return fail(error, std::string(op) + ": expects 1 <= k <= n, got k " + std::to_string(k) +
                           " of n " + std::to_string(n));
  return true;
}

bool topkCompress(const float *grad, const float *residual, int64_t n, int64_t k, bool int8,
                  int8_t *message, float *newResidual, std::string *error) {
  if (!checkSizes("topk_compress", n, k, error))
    return false;
  std::vector<int64_t> order;
  std::vector<float> sent;
  topkCompressTensor(grad, residual, n, k, int8, reinterpret_cast<unsigned char *>(message),
                     newResidual, order, sent);
  return true;
}

bool topkDecompress(const int8_t *messages, int64_t ranks, int64_t n, int64_t k, bool int8,
                    float *out, std::string *error) {
  if (!checkSizes("topk_decompress", n, k, error))
    return false;
  if (ranks < 1)
    return fail(error, "topk_decompress: expects ranks >= 1, got " + std::to_string(ranks));
  std::fill(out, out + n, 0.0f);
  const int64_t bytes = topkMessageBytes(k, int8);
  for (int64_t r = 0; r < ranks; ++r) {
    int64_t bad = 0;
    if (!topkDecompressAdd(reinterpret_cast<const unsigned char *>(messages) + r * bytes, n, k,
                           int8, out, &bad))
      return fail(error, "topk_decompress: the message of rank " + std::to_string(r) +
                             " holds index " + std::to_string(bad) + ", outside [0, " +
                             std::to_string(n) + ")");
  }
  return true;
}

} // namespace kiln::kernels
