//===- BatchRampup.h - train.batch_rampup: the global batch by step -*- C++ -*-===//
//
// Megatron's batch-size rampup (`--rampup-batch-size START INCREMENT
// SAMPLES`, its RampupBatchsizeNumMicroBatchesCalculator) on the programs
// kilnc builds for it (ModelDesc::rampup): before each step, the samples
// consumed so far choose the global batch,
//
//   consumed > SAMPLES:  the spec's global batch G
//   otherwise:           START + floor(consumed / (SAMPLES / n)) x INCREMENT,
//                        n = (G - START) / INCREMENT,
//
// with the division in double precision as Megatron's Python computes it
// (so the sizes change at exactly the steps Megatron's would), and the step
// runs the program built for that many micro-batches. Data ranks split each
// global batch as a program of that size does (rank r: rows
// [r x rows/dp, (r+1) x rows/dp)), and the token stream advances by the rows
// each step read, so everything is a function of the step number: a resumed
// run recomputes the samples consumed before its first step.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_BATCHRAMPUP_H
#define KILN_RUNTIME_DRIVER_BATCHRAMPUP_H

#include "runtime/driver/TrainStep.h"

#include <cstdint>
#include <string>

namespace kiln::driver {

class BatchSchedule {
public:
  /// The schedule of `model`'s program `step`: constant without a rampup.
  BatchSchedule(const ModelDesc &model, TrainStepFn step);

  /// Global rows (over all data-parallel ranks) of a step that starts after
  /// `consumed` samples.
  int64_t globalRowsAfter(uint64_t consumed) const;
  /// Samples consumed by steps 1 .. step - 1 (step is 1-based).
  uint64_t consumedBefore(uint64_t step) const;
  /// The description and step of the program that trains `globalRows`
  /// (a size the schedule produces).
  const RampupProgram &programFor(int64_t globalRows) const;
  /// The largest global batch: the spec's.
  int64_t maxGlobalRows() const { return global; }
  bool ramps() const { return rampup != nullptr; }

private:
  const BatchRampup *rampup;
  RampupProgram full;
  int64_t global, increments = 0;
};

/// Fails, saying which, unless every rampup program of `model` describes
/// the same parameters, sequence, vocabulary and layout as `model`, with
/// the batches the schedule steps through, in order.
bool checkRampupPrograms(const ModelDesc &model, TrainStepFn step, std::string &error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_BATCHRAMPUP_H
