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

} // namespace kiln::kernels

#endif // KILN_RUNTIME_EXPERTOFFSETS_H
