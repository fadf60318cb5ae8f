//===- BatchRampup.cpp - train.batch_rampup: the global batch by step -----===//

#include "runtime/driver/BatchRampup.h"

#include <cstring>

namespace kiln::driver {

BatchSchedule::BatchSchedule(const ModelDesc &model, TrainStepFn step)
    : rampup(model.rampup), full{&model, step}, global(model.batch * model.dp) {
  if (rampup && rampup->incrementRows > 0)
    increments = (global - rampup->startRows) / rampup->incrementRows;
}

int64_t BatchSchedule::globalRowsAfter(uint64_t consumed) const {
  if (!rampup || increments <= 0 || consumed > rampup->samples)
    return global;
  // Megatron: int(consumed_samples / (rampup_samples / num_increments)).
  const double perIncrement = double(rampup->samples) / double(increments);
  const int64_t steps = int64_t(double(consumed) / perIncrement);
  const int64_t rows = rampup->startRows + steps * rampup->incrementRows;
  return rows < global ? rows : global;
}

uint64_t BatchSchedule::consumedBefore(uint64_t step) const {
  uint64_t consumed = 0, s = 1;
  // Step by step while the batch still grows; then every step is global.
  for (; s < step && rampup && consumed <= rampup->samples; ++s)
    consumed += uint64_t(globalRowsAfter(consumed));
  return consumed + (step > s ? (step - s) * uint64_t(global) : 0);
}

const RampupProgram &BatchSchedule::programFor(int64_t globalRows) const {
  if (rampup)
    for (int64_t i = 0; i < rampup->numPrograms; ++i)
      if (rampup->programs[i].model->batch * rampup->programs[i].model->dp == globalRows)
        return rampup->programs[i];
  return full;
}

bool checkRampupPrograms(const ModelDesc &model, TrainStepFn step, std::string &error) {
  const BatchRampup *r = model.rampup;
  if (!r)
    return true;
  BatchSchedule schedule(model, step);
  const int64_t global = schedule.maxGlobalRows();
  auto fail = [&](const std::string &what) {
    error = "the program's batch rampup is inconsistent: " + what +
            "; rebuild it with kilnc from the spec";
    return false;
  };
  if (r->startRows < 1 || r->incrementRows < 1 || r->startRows >= global ||
      (global - r->startRows) % r->incrementRows != 0 || r->samples < 1)
    return fail("start " + std::to_string(r->startRows) + ", increment " +
                std::to_string(r->incrementRows) + " and samples " + std::to_string(r->samples) +
                " do not step to the global batch " + std::to_string(global));
  const int64_t sizes = (global - r->startRows) / r->incrementRows;
  if (r->numPrograms != sizes)
    return fail(std::to_string(r->numPrograms) + " smaller programs for " +
                std::to_string(sizes) + " smaller sizes");
  for (int64_t i = 0; i < r->numPrograms; ++i) {
    const ModelDesc &m = *r->programs[i].model;
    const int64_t rows = r->startRows + i * r->incrementRows;
    bool same = r->programs[i].step && m.numParams == model.numParams &&
                m.seqLen == model.seqLen && m.vocabSize == model.vocabSize &&
                m.sft == model.sft && m.dp == model.dp && m.ep == model.ep &&
                m.pp == model.pp && m.shardedState == model.shardedState &&
                m.numExpertLoads == model.numExpertLoads &&
                m.numExpertKept == model.numExpertKept && m.numExperts == model.numExperts &&
                m.gradResiduals == model.gradResiduals && m.bf16Moments == model.bf16Moments &&
                (m.initialLossScale > 0) == (model.initialLossScale > 0) &&
                m.batch * m.dp == rows && !m.rampup;
    for (int64_t p = 0; same && p < model.numParams; ++p)
      same = std::strcmp(m.params[p].name, model.params[p].name) == 0 &&
             m.params[p].rank == model.params[p].rank &&
             std::memcmp(m.params[p].shape, model.params[p].shape, sizeof(m.params[p].shape)) == 0;
    if (!same)
      return fail("the program for " + std::to_string(rows) +
                  " rows does not match the main program's state and layout");
  }
  return true;
}

} // namespace kiln::driver
