//===- ExpertOffsets.h - the check of expert offsets at kernel entry ------===//
//
// Expert offsets [experts + 1] come from kiln.dispatch or, under expert
// parallelism, from counts another rank sent: the grouped kernels check them
// before reading rows by them, and report a bad one through the launcher's
// error string rather than reading out of bounds.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_EXPERTOFFSETS_H
#define KILN_RUNTIME_EXPERTOFFSETS_H

#include <cstdint>
#include <string>
#include <utility>

namespace kiln::kernels {

/// offsets [experts + 1] start at 0, never decrease and end at most at rows
/// (rows after the last offset are receive-buffer capacity); otherwise sets
/// *error (when given) and returns false.
inline bool checkExpertOffsets(std::string *error, const char *op, const int32_t *offsets,
                               int64_t experts, int64_t rows) {
  bool ok = offsets[0] == 0 && offsets[experts] <= rows;
  for (int64_t e = 1; ok && e <= experts; ++e)
    ok = offsets[e] >= offsets[e - 1];
  if (ok)
    return true;
  if (error)
    *error = std::string(op) +
             ": expert offsets must start at 0, never decrease and end at most at the row "
             "count " +
             std::to_string(rows) + "; got first " + std::to_string(offsets[0]) + ", last " +
             std::to_string(offsets[experts]);
  return false;
}

/// The entry check of the grouped expert GEMMs (grouped_matmul and its
/// gradients, in every element type): K, N and the expert count are >= 1 and
/// the offsets are as checkExpertOffsets asks.
inline bool checkGroupedGemm(std::string *error, const char *op, int64_t k, int64_t n,
                             int64_t experts, const int32_t *offsets, int64_t rows) {
  for (auto [name, value] : {std::pair<const char *, int64_t>{"K", k}, {"N", n},
                             {"experts", experts}})
    if (value < 1) {
      if (error)
        *error = std::string(op) + ": " + name + " must be >= 1, got " + std::to_string(value);
      return false;
    }
  return checkExpertOffsets(error, op, offsets, experts, rows);
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_EXPERTOFFSETS_H
