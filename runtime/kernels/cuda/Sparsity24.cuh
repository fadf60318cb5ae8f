//===- Sparsity24.cuh - CUDA kernels of 2:4 masks and compressed weights --===//
//
// The CUDA twins of runtime/kernels/Sparsity24.h: the 2:4 mask of a weight
// (and kiln.sparsity_mask_2_4's per-step choice), and the compressed form
// sparse tensor cores read (two values and a metadata nibble per group of
// 4). The per-group rule is SparsityMath.h's (keep2of4, metadataNibble,
// isValidMetadataNibble, maskStep), so every kernel is bit-identical to the
// host; all are elementwise (a thread per group, or per metadata word when
// 8 groups share one), so none needs a GPU-only variant.
//
// Checks: the host's size checks return false with its messages (compress24
// and decompress24 take `std::string &error`, as the host's do); a group
// with more than 2 nonzeros and an invalid nibble are data, found on the
// device: KILN_DEVICE_ERROR with the group's flat index (row * cols / 4 +
// group), the group skipped (compress24 leaves its nibble 0x4 and its
// values unwritten, decompress24 its 4 dense values).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_SPARSITY24_CUH
#define KILN_RUNTIME_KERNELS_CUDA_SPARSITY24_CUH

#include "runtime/kernels/Sparsity24.h"
#include "runtime/kernels/SparsityMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <string>

namespace kiln::cuda {

/// A group of 4 with more than 2 nonzeros (index: the flat group).
constexpr int32_t kNotSparse24 = 305;
/// A metadata nibble that is not one of the six valid ones (index: the
/// flat group).
constexpr int32_t kBadSparsityMetadata = 306;

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

__global__ void sparsityMask24Kernel(const float *w, int64_t groups, float *mask) {
  for (int64_t g = globalThread(); g < groups; g += gridThreads()) {
    const unsigned keep = kernels::keep2of4(w + 4 * g);
    for (int64_t j = 0; j < 4; ++j)
      mask[4 * g + j] = (keep >> j) & 1u ? 1.0f : 0.0f;
  }
}

/// out = value everywhere (the dense step) or out = mask (the kept step).
__global__ void sparsityFillKernel(const float *mask, float value, int64_t n, float *out) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    out[i] = mask ? mask[i] : value;
}

/// Thread per metadata word: its (up to) 8 groups packed as the host packs
/// them, the groups past the row's end left at 0x4.
__global__ void compress24Kernel(const float *dense, int64_t rows, int64_t cols, float *values,
                                 uint32_t *metadata) {
  const int64_t groups = cols / 4, words = (cols + 31) / 32; // metadataWordsPerRow
  for (int64_t i = globalThread(); i < rows * words; i += gridThreads()) {
    const int64_t r = i / words, w = i % words;
    uint32_t word = 0x44444444u;
    for (int64_t g = 8 * w; g < groups && g < 8 * w + 8; ++g) {
      const float *group = dense + r * cols + 4 * g;
      unsigned keep = 0, nonzeros = 0;
      for (unsigned j = 0; j < 4; ++j)
        if (group[j] != 0.0f) {
          keep |= 1u << j;
          ++nonzeros;
        }
      if (nonzeros > 2) {
        KILN_DEVICE_ERROR(kNotSparse24, r * groups + g);
        continue;
      }
      for (unsigned j = 0; nonzeros < 2; ++j)
        if (!(keep & (1u << j))) {
          keep |= 1u << j;
          ++nonzeros;
        }
      const unsigned nibble = kernels::metadataNibble(keep);
      const unsigned shift = 4 * unsigned(g % 8);
      word = (word & ~(0xFu << shift)) | (uint32_t(nibble) << shift);
      values[r * (cols / 2) + 2 * g] = group[nibble & 3u];
      values[r * (cols / 2) + 2 * g + 1] = group[nibble >> 2];
    }
    metadata[i] = word;
  }
}

/// Thread per group.
__global__ void decompress24Kernel(const float *values, const uint32_t *metadata, int64_t rows,
                                   int64_t cols, float *dense) {
  const int64_t groups = cols / 4, words = (cols + 31) / 32; // metadataWordsPerRow
  for (int64_t i = globalThread(); i < rows * groups; i += gridThreads()) {
    const int64_t r = i / groups, g = i % groups;
    const unsigned nibble = (metadata[r * words + g / 8] >> (4 * unsigned(g % 8))) & 0xFu;
    if (!kernels::isValidMetadataNibble(nibble)) {
      KILN_DEVICE_ERROR(kBadSparsityMetadata, i);
      continue;
    }
    float *group = dense + r * cols + 4 * g;
    for (unsigned j = 0; j < 4; ++j)
      group[j] = 0.0f;
    group[nibble & 3u] = values[r * (cols / 2) + 2 * g];
    group[nibble >> 2] = values[r * (cols / 2) + 2 * g + 1];
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// n % 4 == 0 (the verifier's rule; the host assumes it too).
inline void sparsityMask24(cudaStream_t stream, const float *w, int64_t n, float *mask) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n / 4 > 0)
    KILN_LAUNCH(sparsityMask24Kernel, blocksFor(n / 4), kBlock, 0, stream, w, n / 4, mask);
}

/// The step is a host value (the step counter the driver passes), so the
/// choice among dense, select and keep is made here, as the host makes it.
inline bool sparsityMaskUpdate24(cudaStream_t stream, const float *weight, const float *mask,
                                 int64_t step, int64_t startStep, int64_t maskEvery, int64_t n,
                                 float *out, std::string *error = nullptr) {
  if (step < 1 || n % 4 != 0) {
    if (error)
      *error = "sparsity_mask_2_4: " +
               (step < 1 ? "step " + std::to_string(step) + " is not a 1-based step (expected >= 1)"
                         : std::to_string(n) + " elements are not groups of 4");
    return false;
  }
  if (n <= 0)
    return true;
  switch (kernels::maskStep(step, startStep, maskEvery)) {
  case kernels::MaskStep::Dense:
    KILN_LAUNCH(sparsityFillKernel, blocksFor(n), kBlock, 0, stream, nullptr, 1.0f, n, out);
    break;
  case kernels::MaskStep::Select:
    sparsityMask24(stream, weight, n, out);
    break;
  case kernels::MaskStep::Keep:
    if (out != mask)
      KILN_LAUNCH(sparsityFillKernel, blocksFor(n), kBlock, 0, stream, mask, 0.0f, n, out);
    break;
  }
  return true;
}

inline bool compress24(cudaStream_t stream, const float *dense, int64_t rows, int64_t cols,
                       float *values, uint32_t *metadata, std::string &error) {
  if (cols % 4 != 0) {
    error = "2:4 compression needs a column count divisible by 4, got " + std::to_string(cols);
    return false;
  }
  const int64_t words = kernels::metadataWordsPerRow(cols);
  if (rows * words > 0)
    KILN_LAUNCH(compress24Kernel, blocksFor(rows * words), kBlock, 0, stream, dense, rows, cols,
                values, metadata);
  return true;
}

inline bool decompress24(cudaStream_t stream, const float *values, const uint32_t *metadata,
                         int64_t rows, int64_t cols, float *dense, std::string &error) {
  if (cols % 4 != 0) {
    error = "2:4 decompression needs a column count divisible by 4, got " + std::to_string(cols);
    return false;
  }
  if (rows * (cols / 4) > 0)
    KILN_LAUNCH(decompress24Kernel, blocksFor(rows * (cols / 4)), kBlock, 0, stream, values,
                metadata, rows, cols, dense);
  return true;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_SPARSITY24_CUH
