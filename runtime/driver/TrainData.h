//===- TrainData.h - The token stream a training run reads -----*- C++ -*-===//
//
// trainMain's data: `--data FILE` (an llm.c shard or Megatron pair; for SFT
// with its answer mask FILE.mask) or the built-in synthetic arithmetic
// corpus, under train.curriculum's stages, batched as the step program (and
// a batch rampup's schedule) reads it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_TRAINDATA_H
#define KILN_RUNTIME_DRIVER_TRAINDATA_H

#include "runtime/data/TokenLoader.h"
#include "runtime/driver/BatchRampup.h"
#include "runtime/driver/CommandLine.h"
#include "runtime/driver/TrainStep.h"

#include <optional>
#include <string>

namespace kiln::driver {

/// The loader of global batches: `ranks` x model.batch rows per step (fewer
/// while a batch rampup grows, `schedule`), of which each rank trains its
/// own (rank r: rows [r * batch, (r + 1) * batch)).
std::optional<data::TokenLoader> openTrainingData(const TrainOptions &options,
                                                  const ModelDesc &model,
                                                  const BatchSchedule &schedule, uint64_t seed,
                                                  int ranks, std::string &error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_TRAINDATA_H
