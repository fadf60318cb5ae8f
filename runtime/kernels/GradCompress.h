//===- GradCompress.h - host kernels of top-k gradient compression ---------===//
//
// Launchers of kiln.topk_compress and kiln.topk_decompress; the math and the
// message format are GradCompressMath.h's. Sizes and the indices a message
// carries are checked: a bad message is an error, never a wild write.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_GRADCOMPRESS_H
#define KILN_RUNTIME_GRADCOMPRESS_H

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// grad, residual [n] -> message [topkMessageBytes(k, int8)], newResidual [n].
bool topkCompress(const float *grad, const float *residual, int64_t n, int64_t k, bool int8,
                  int8_t *message, float *newResidual, std::string *error = nullptr);

/// messages [ranks][topkMessageBytes(k, int8)] -> out [n], the sum of every
/// rank's values in rank order.
bool topkDecompress(const int8_t *messages, int64_t ranks, int64_t n, int64_t k, bool int8,
                    float *out, std::string *error = nullptr);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_GRADCOMPRESS_H
