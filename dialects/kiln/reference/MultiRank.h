//===- MultiRank.h - the reference evaluator over every rank of a grid ----===//
//
// A multi-rank program is checked against its single-device original by
// running every rank in one process: each rank is a thread with its own
// Evaluator, and the collectives (KilnCollectiveOps.td) move data through
// an in-memory communicator (runtime/comm/LocalWorld.h) with the same
// rank-ordered reductions as the MPI runtime. A mismatched collective, an
// unmatched send or a cycle of waits fails every rank with a message naming
// the ranks and calls involved, instead of hanging.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_MULTIRANK_H
#define KILN_REFERENCE_MULTIRANK_H

#include "dialects/kiln/reference/Evaluator.h"

#include <functional>
#include <string>
#include <vector>

namespace kiln::reference {

/// The function each rank runs: SPMD programs give every rank the same name,
/// pipeline stages give each rank its stage's.
using ProgramOfRank = std::function<std::string(int64_t rank)>;

/// Runs, on every rank of the module's `kiln.grid` (one rank without a
/// grid), `programOf(rank)` on `argsPerRank[rank]` and returns each rank's
/// results. Fails, with diagnostics at the failing ops, if any rank fails.
mlir::FailureOr<std::vector<llvm::SmallVector<RefTensor>>>
evaluateAllRanks(mlir::ModuleOp module, const ProgramOfRank &programOf,
                 llvm::ArrayRef<llvm::SmallVector<RefTensor>> argsPerRank);

/// The number of ranks of the module's grid (1 without a grid).
int64_t numRanksOf(mlir::ModuleOp module);

} // namespace kiln::reference

#endif // KILN_REFERENCE_MULTIRANK_H
