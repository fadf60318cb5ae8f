//===- Sparsity24.cpp - 2:4 masks and the compressed form of 2:4 weights --===//

#include "runtime/kernels/Sparsity24.h"
#include "runtime/kernels/SparsityMath.h"

#include <algorithm>

namespace kiln::kernels {

void sparsityMask24(const float *w, int64_t n, float *mask) {
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n / 4; ++g) {
    const unsigned keep = keep2of4(w + 4 * g);
    for (int64_t j = 0; j < 4; ++j)
      mask[4 * g + j] = (keep >> j) & 1u ? 1.0f : 0.0f;
  }
}

bool sparsityMaskUpdate24(const float *weight, const float *mask, int64_t step, int64_t startStep,
                          int64_t maskEvery, int64_t n, float *out, std::string *error) {
  if (step < 1 || n % 4 != 0) {
    if (error)
      *error = "sparsity_mask_2_4: " + (step < 1 ? "step " + std::to_string(step) +
                                                      " is not a 1-based step (expected >= 1)"
                                                : std::to_string(n) +
                                                      " elements are not groups of 4");
    return false;
  }
  switch (maskStep(step, startStep, maskEvery)) {
  case MaskStep::Dense:
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      out[i] = 1.0f;
    break;
  case MaskStep::Select:
    sparsityMask24(weight, n, out);
    break;
  case MaskStep::Keep:
    if (out != mask)
      std::copy(mask, mask + n, out);
    break;
  }
  return true;
}

namespace {

std::string where(int64_t row, int64_t group) {
  return "row " + std::to_string(row) + ", columns " + std::to_string(4 * group) + ".." +
         std::to_string(4 * group + 3);
}

} // namespace

bool compress24(const float *dense, int64_t rows, int64_t cols, float *values,
                uint32_t *metadata, std::string &error) {
  if (cols % 4 != 0) {
    error = "2:4 compression needs a column count divisible by 4, got " + std::to_string(cols);
    return false;
  }
  const int64_t groups = cols / 4, words = metadataWordsPerRow(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t w = 0; w < words; ++w)
      metadata[r * words + w] = 0x44444444u; // groups past the row: positions 0 and 1
    for (int64_t g = 0; g < groups; ++g) {
      const float *group = dense + r * cols + 4 * g;
      unsigned keep = 0, nonzeros = 0;
      for (unsigned j = 0; j < 4; ++j)
        if (group[j] != 0.0f) { // NaN too; -0 is a zero (and comes back as +0)
          keep |= 1u << j;
          ++nonzeros;
        }
      if (nonzeros > 2) {
        error = "not 2:4 sparse at " + where(r, g) + ": " + std::to_string(nonzeros) +
                " nonzeros in a group of 4";
        return false;
      }
      for (unsigned j = 0; nonzeros < 2; ++j)
        if (!(keep & (1u << j))) {
          keep |= 1u << j;
          ++nonzeros;
        }
      const unsigned nibble = metadataNibble(keep);
      uint32_t &word = metadata[r * words + g / 8];
      const unsigned shift = 4 * unsigned(g % 8);
      word = (word & ~(0xFu << shift)) | (uint32_t(nibble) << shift);
      values[r * (cols / 2) + 2 * g] = group[nibble & 3u];
      values[r * (cols / 2) + 2 * g + 1] = group[nibble >> 2];
    }
  }
  return true;
}

bool decompress24(const float *values, const uint32_t *metadata, int64_t rows, int64_t cols,
                  float *dense, std::string &error) {
  if (cols % 4 != 0) {
    error = "2:4 decompression needs a column count divisible by 4, got " + std::to_string(cols);
    return false;
  }
  const int64_t groups = cols / 4, words = metadataWordsPerRow(cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const unsigned nibble = (metadata[r * words + g / 8] >> (4 * unsigned(g % 8))) & 0xFu;
      if (!isValidMetadataNibble(nibble)) {
        error = "invalid 2:4 metadata nibble 0x" + std::string(1, "0123456789ABCDEF"[nibble]) +
                " at " + where(r, g) + "; expected the lower kept index in bits 0-1 and the "
                                       "higher in bits 2-3";
        return false;
      }
      float *group = dense + r * cols + 4 * g;
      for (unsigned j = 0; j < 4; ++j)
        group[j] = 0.0f;
      group[nibble & 3u] = values[r * (cols / 2) + 2 * g];
      group[nibble >> 2] = values[r * (cols / 2) + 2 * g + 1];
    }
  return true;
}

} // namespace kiln::kernels
