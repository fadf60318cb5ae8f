//===- TrainMain.h - The host training loop around a generated step -*- C++ -*-===//
//
// A generated training executable's main() is one line:
//
//   int main(int argc, char **argv) {
//     return kiln::driver::trainMain(argc, argv, kModel, trainStep);
//   }
//
// (or, with a decode program, `trainMain(argc, argv, kModel, trainStep,
// &kDecode)`, which adds `--generate PROMPTS.jsonl`: Generate.h).
//
// trainMain owns everything around the straight-line step (TrainStep.h):
// the flags (CommandLine.h), the thread count, the initial state (seeded
// parameters bit-identical to `kilnc --save-params`, zero AdamW moments),
// resuming from a checkpoint, the batches (a token file, or the built-in
// synthetic arithmetic corpus), the jsonl metrics and progress line, the
// checkpoints, and --save-grads.
//
// Checkpoint layout: every parameter under its Hugging Face name (a stacked
// expert tensor as one tensor per expert, as ParamDesc describes), then
// "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>" for each
// trainable one; the metadata holds the step, the seed (rng_state) and the
// data position. Resuming at step k and running to n gives bit-identical
// state and losses to an uninterrupted run to n (same thread count).
//
// Preemption: SIGTERM (what cluster schedulers send) or SIGINT (Ctrl-C)
// lets the running step finish, writes a checkpoint of it when there is a
// --checkpoint-dir, and exits with 128 + the signal number (143, 130), so
// `--resume` continues exactly where it stopped. A second signal during that
// ends the process at once; checkpoints are atomic, so even that loses at
// most the unsaved steps.
//
// Exit codes: 0 success (and --help), 1 runtime error (one `error: ...` line
// on stderr naming the file, flag or tensor and what would be right), 2 usage
// error, 128 + signal when stopped by SIGTERM or SIGINT. Nothing here throws or crashes on bad input, and a failing run
// never leaves a partial checkpoint (Checkpoint.h writes atomically).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_TRAINMAIN_H
#define KILN_RUNTIME_DRIVER_TRAINMAIN_H

#include "runtime/driver/DecodeProgram.h"
#include "runtime/driver/StepComm.h"
#include "runtime/driver/TrainStep.h"
#include "runtime/driver/GrpoProgram.h"

#include <cstdint>

namespace kiln::driver {

/// Tokens of the built-in synthetic corpus used when --data is not given
/// (generated from the seed with the default CorpusOptions).
constexpr uint64_t kSyntheticTokens = uint64_t(1) << 20;

/// Runs training as the flags in argv say and returns the exit code.
/// Without a decode program, `--generate` is a usage error.
int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step);

/// The same for a program with a decode program (DecodeProgram.h): with
/// `--generate PROMPTS.jsonl` it samples completions instead of training
/// (Generate.h); `decode` null is the overload above.
int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step,
              const DecodeDesc *decode);

/// The same for a GRPO step (train.stage "grpo", GrpoProgram.h): each step
/// trains on fresh rollouts of the policy (GrpoRollout.h) instead of a batch
/// of the data.
int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step,
              const DecodeDesc *decode, const GrpoDesc *grpo);

/// The same for a program built with pipeline stages (ModelDesc::pp > 1):
/// `stages` holds every stage's program in stage order, and each rank runs
/// its stage's. Checkpoints hold the whole model by name, so they resume on
/// any pp, dp or micro-batch layout.
int trainMain(int argc, char **argv, const StageProgram *stages, int64_t numStages);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_TRAINMAIN_H
