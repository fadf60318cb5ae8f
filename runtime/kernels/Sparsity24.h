//===- Sparsity24.h - 2:4 masks and the compressed form of 2:4 weights ----===//
//
// Host kernels of 2:4 structured sparsity (SparsityMath.h has the per-group
// rule):
//  * sparsityMask24: the 0/1 mask of a weight, groups of 4 along its last
//    (input) dimension; sparsityMaskUpdate24 (kiln.sparsity_mask_2_4) the
//    mask a step trains with.
//  * compress24 / decompress24: a [rows, cols] matrix with at most 2
//    nonzeros in every group of 4 of a row, as sparse tensor cores take it:
//    values [rows, cols / 2], the two stored values of each group in
//    increasing column order, and metadata [rows, ceil(cols / 32)] uint32,
//    8 groups per word, group g of a word in bits 4g..4g+3 (SparsityMath.h's
//    nibble). A group with fewer than 2 nonzeros stores zeros at its lowest
//    free positions; the groups past the end of a row's last word are 0x4
//    (positions 0 and 1), a valid nibble.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SPARSITY24_H
#define KILN_RUNTIME_SPARSITY24_H

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// mask[i] = 1 where 2:4 selection keeps w[i], else 0; `n` elements, groups
/// of 4 consecutive ones (n % 4 == 0, as the verifier demands).
void sparsityMask24(const float *w, int64_t n, float *mask);

/// kiln.sparsity_mask_2_4: the mask `weight` [n] trains with at 1-based
/// `step` (SparsityMath.h's maskStep): ones, its 2:4 mask, or `mask` (`out`
/// may be `mask`: in place). Fails on a step < 1 or n % 4 != 0.
bool sparsityMaskUpdate24(const float *weight, const float *mask, int64_t step, int64_t startStep,
                          int64_t maskEvery, int64_t n, float *out, std::string *error = nullptr);

/// Metadata words per row of `cols` columns.
inline int64_t metadataWordsPerRow(int64_t cols) { return (cols + 31) / 32; }

/// Packs `dense` [rows, cols] (cols % 4 == 0) into `values` [rows, cols / 2]
/// and `metadata` [rows, metadataWordsPerRow(cols)]. Fails, saying which row
/// and group, when a group holds more than 2 nonzeros.
bool compress24(const float *dense, int64_t rows, int64_t cols, float *values,
                uint32_t *metadata, std::string &error);

/// The inverse: writes the dense [rows, cols] matrix. Fails on an invalid
/// metadata nibble, saying where.
bool decompress24(const float *values, const uint32_t *metadata, int64_t rows, int64_t cols,
                  float *dense, std::string &error);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_SPARSITY24_H
