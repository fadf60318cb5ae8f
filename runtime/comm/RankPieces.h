//===- RankPieces.h - A tensor's pieces per rank along one dimension -*- C++ -*-===//
//
// all_gather, reduce_scatter and local_shard along dimension `dim` of a
// row-major tensor see it as [outer][size][piece]: outer = the product of the
// dimensions before `dim`, one piece per rank of the group. The
// communicator moves contiguous per-rank blocks, [size][outer][piece]. These
// two layouts, and one rank's piece, are written once here for the generated
// programs (runtime/driver/StepComm.cpp) and the reference evaluator
// (dialects/kiln/reference/CollectiveRules.cpp), so both place every element
// the same way.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_RANKPIECES_H
#define KILN_RUNTIME_COMM_RANKPIECES_H

#include <algorithm>
#include <cstdint>

namespace kiln::comm {

/// [outer][size][piece] -> [size][outer][piece]: each rank's pieces contiguous.
template <class T>
void groupPiecesByRank(const T *in, int64_t outer, int64_t size, int64_t piece, T *out) {
  for (int64_t r = 0; r < size; ++r)
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(in + (o * size + r) * piece, piece, out + (r * outer + o) * piece);
}

/// The inverse: [size][outer][piece] -> [outer][size][piece].
template <class T>
void interleavePiecesOfRanks(const T *in, int64_t outer, int64_t size, int64_t piece, T *out) {
  for (int64_t r = 0; r < size; ++r)
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(in + (r * outer + o) * piece, piece, out + (o * size + r) * piece);
}

/// Rank `rank`'s pieces of [outer][size][piece], as [outer][piece].
template <class T>
void copyPieceOfRank(const T *in, int64_t outer, int64_t size, int64_t piece, int64_t rank,
                     T *out) {
  for (int64_t o = 0; o < outer; ++o)
    std::copy_n(in + (o * size + rank) * piece, piece, out + o * piece);
}

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_RANKPIECES_H
