//===- Compress24.h - kilnc --compress-2-4: 2:4 weights for sparse GEMMs --===//
//
// A checkpoint of a train.sparsity run holds its 2:4 weights dense, zeros in
// place (plain HF safetensors). `kilnc SPEC --compress-2-4 DIR` writes
// DIR/sparse-2of4.safetensors next to them with each 2:4 weight (those with
// an optimizer.sparsity_mask.<name> in DIR) in the form sparse tensor cores
// read (runtime/kernels/Sparsity24.h), its leading dimensions flattened to
// rows: <name>.values F32 [rows, cols / 2] and <name>.metadata I32 [rows,
// ceil(cols / 32)], the bits of the uint32 mma.sp metadata words.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNC_COMPRESS24_H
#define KILN_TOOLS_KILNC_COMPRESS24_H

#include <string>

namespace kiln {

/// Writes DIR/sparse-2of4.safetensors; fails, saying why, on a directory
/// without 2:4 masks or a weight that is not 2:4 sparse.
bool writeCompressed24(const std::string &dir, std::string &error);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_COMPRESS24_H
