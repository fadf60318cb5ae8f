//===- Curriculum.h - train.curriculum: the corpus' difficulty by steps -*- C++ -*-===//
//
// Progressive training on the built-in arithmetic corpus (ModelDesc::
// curriculum, from the spec's train.curriculum): stage i sets the operand
// digits and operations of the problems of steps (until[i-1], until[i]].
//
// Pretraining and SFT read the corpus as one token stream (TokenLoader.h:
// each step advances it by its rows x seqLen tokens), so the stream is the
// concatenation of one corpus per stage, each exactly as long as its steps
// read, the last kSyntheticTokens long; stage 0's is generated from the
// run's seed (a one-stage curriculum of the defaults is the plain corpus),
// stage i's from the seed mixed with i. A run longer than the last stage's
// corpus wraps to the stream's start, as the plain corpus does. GRPO draws
// each step's problems with that step's stage's options (GrpoRewards.h).
// Everything depends on the seed and the step alone, so a resumed run reads
// what the interrupted one would have.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_CURRICULUM_H
#define KILN_RUNTIME_DRIVER_CURRICULUM_H

#include "runtime/data/SyntheticCorpus.h"
#include "runtime/driver/TrainStep.h"

#include <functional>
#include <string>

namespace kiln::driver {

/// The corpus options of 1-based step `step`: its curriculum stage's digits
/// and operations (the defaults without a curriculum), with `format`.
data::CorpusOptions curriculumOptions(const ModelDesc &model, uint64_t step,
                                      data::AnswerFormat format);

/// The built-in corpus stream of a run with `seed` that reads
/// `tokensBefore(s)` tokens before its 1-based step s (steps x rows x
/// seqLen, or less under train.batch_rampup), as the file comment
/// describes; `lastTokens` is the length of the last stage's corpus.
bool curriculumCorpus(const ModelDesc &model, uint64_t seed,
                      const std::function<uint64_t(uint64_t)> &tokensBefore,
                      uint64_t lastTokens, data::AnswerFormat format, data::CorpusTokens &out,
                      std::string &error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_CURRICULUM_H
