//===- MemoryCheck.h - What a rank will allocate, checked before it does -*- C++ -*-===//
//
// `train` adds up what each rank allocates for the whole run (parameters,
// AdamW moments, gradient-compression residuals, the step's arena, the batch
// buffers, and on --resume the whole-model copy the checkpoint is read into)
// and refuses to start when the ranks on this machine need more than it has
// available (io::availableMemory), instead of being killed part-way by the
// kernel's OOM killer with nothing said.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_MEMORYCHECK_H
#define KILN_RUNTIME_DRIVER_MEMORYCHECK_H

#include "runtime/driver/TrainState.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver::detail {

/// One rank's allocations for a run, by purpose.
struct RankMemory {
  uint64_t parameters = 0, moments = 0, residuals = 0, arena = 0, batch = 0, resumeCopy = 0;
  uint64_t total() const;
  /// "parameters 1.2 GB, optimizer moments 2.4 GB, ..." (the non-zero parts).
  std::string breakdown() const;
  /// What to change: the step's size when the arena dominates, the layout
  /// when the model state does.
  std::string advice() const;
};

/// What one rank with `layouts` (its placement's) allocates; `wholeLayouts`
/// (the whole model's) adds the copy a resumed run reads the checkpoint into.
RankMemory rankMemory(const ModelDesc &model, const std::vector<ParamLayout> &layouts,
                      const std::vector<ParamLayout> *wholeLayouts);

/// The job's ranks that run on this machine: Open MPI's local size under
/// mpirun, else 1.
int ranksOnThisMachine();

/// False, with `error` saying what needs the memory and what to change, when
/// `ranksHere` ranks of `need` each do not fit this machine's available
/// memory. True when they fit or when the available memory cannot be read.
bool checkMemoryFits(const RankMemory &need, int ranksHere, std::string &error);

} // namespace kiln::driver::detail

#endif // KILN_RUNTIME_DRIVER_MEMORYCHECK_H
