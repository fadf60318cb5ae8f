//===- Ranks.h - The ranks a training executable runs on -------*- C++ -*-===//
//
// A program built for one rank runs alone (no MPI is touched). A program
// built for dp > 1 ranks (kiln-data-parallel) runs under mpirun: every rank
// holds the whole model, trains its rows of each global batch, and meets the
// others in the step's collectives (StepComm.h). Rank 0 prints and logs;
// with ZeRO-1 each rank holds 1/dp of the AdamW moments
// (ModelDesc::shardedState). Every rank writes its part of a checkpoint
// (runtime/checkpoint/Checkpoint.h) and the loader reassembles tensors by
// HF name, so any layout resumes any other's.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_RANKS_H
#define KILN_RUNTIME_DRIVER_RANKS_H

#include "runtime/comm/Communicator.h"
#include "runtime/driver/StepComm.h"
#include "runtime/driver/TrainStep.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::driver {

struct Ranks {
  std::unique_ptr<comm::Communicator> world;
  /// The groups the step's collectives name; null for one rank.
  std::unique_ptr<StepComm> stepComm;
  int rank = 0, size = 1;
  bool lead() const { return rank == 0; }
};

/// The groups of a data-parallel grid on `world`: "dp" is the whole world,
/// and a send/recv peer's coordinate on "dp" is its world rank.
std::unique_ptr<StepComm> dataParallelComm(comm::Communicator &world);

/// The groups of the grid a step was built for: dataParallelComm's for
/// ep 1 and pp 1; for ep > 1 kiln-expert-parallel's edp x ep (rank r at edp
/// r / ep, ep r % ep) with groups "edp+ep" (the world), "edp" and "ep"; for
/// pp > 1 kiln-pipeline's pp x dp (rank r at pp r / dp, dp r % dp) with
/// groups "pp+dp" (the world), "pp" and "dp". Null, with `error`, when
/// splitting the world fails.
std::unique_ptr<StepComm> gridComm(comm::Communicator &world, int64_t ep, int64_t pp,
                                   std::string &error);

/// The ranks of the job a program built for `model` runs on: pp x dp.
inline int64_t worldSize(const ModelDesc &model) { return model.pp * model.dp; }

/// Sets up the ranks `model` was built for: itself alone when
/// worldSize(model) is 1; otherwise the MPI world, which must have exactly
/// that many ranks. Run without mpirun, a multi-rank program fails with the
/// command that launches it.
bool setupRanks(const ModelDesc &model, int *argc, char ***argv, const std::string &program,
                double timeoutSeconds, Ranks &ranks, std::string &error);

/// Elements of one rank's ZeRO-1 shard of an `n`-element tensor over `size`
/// ranks: ceil(n / size), the last shards zero-padded.
inline uint64_t shardElements(uint64_t n, int size) { return (n + uint64_t(size) - 1) / uint64_t(size); }

/// Rank `rank`'s shard of `full` (n elements) into `shard`.
void takeShard(const float *full, uint64_t n, int rank, int size, float *shard);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_RANKS_H
