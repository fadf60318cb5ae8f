//===- HeldOut.h - held-out prompts and the scoring of completions --------===//
//
// What the R1 recipe (scripts/r1-recipe.sh) measures a model with:
// `kiln-corpus --prompts N --seed S -o P.jsonl` writes N problems of the
// arithmetic corpus as `train --generate` prompts ({"prompt": "Q: 37+48=? A:
// ", "answer": "85"}; a seed the training runs do not use keeps them
// held out), and `kiln-corpus --score C.jsonl` judges `train --generate`'s
// completions with GRPO's reward rules (runtime/driver/GrpoRewards.h):
// the fraction with a correct answer and the fraction in R1's format;
// `kiln-corpus --distill C.jsonl -o D.bin` keeps the correct completions
// as SFT data for a student model.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_CORPUS_HELDOUT_H
#define KILN_TOOLS_KILN_CORPUS_HELDOUT_H

#include "runtime/data/SyntheticCorpus.h"

#include <cstdint>
#include <string>

namespace kiln::tools {

/// Writes `count` prompts of the corpus for `seed` to `path` (atomically).
bool writeHeldOutPrompts(const std::string &path, uint64_t seed, uint64_t count,
                         const data::CorpusOptions &options, std::string &error);

struct CompletionScores {
  uint64_t completions = 0, correct = 0, formatted = 0;
};

/// Scores every line of `train --generate`'s output at `path`.
bool scoreCompletions(const std::string &path, CompletionScores &scores, std::string &error);

/// Rejection sampling for distillation (R1 §2.4): the completions of
/// `train --generate`'s output at `completionsPath` with a correct answer,
/// as SFT data — prompt + completion bytes per kept completion, written as
/// an llm.c shard at `outPath` with its answer mask (1 on the completion's
/// bytes) at `outPath`.mask, which `train --data` reads for an SFT spec.
/// `scores` counts what was read and kept (correct).
bool writeDistillationData(const std::string &completionsPath, const std::string &outPath,
                           CompletionScores &scores, std::string &error);

} // namespace kiln::tools

#endif // KILN_TOOLS_KILN_CORPUS_HELDOUT_H
