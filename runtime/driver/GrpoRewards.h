//===- GrpoRewards.h - Rule-based GRPO rewards on the arithmetic corpus -*- C++ -*-===//
//
// The data side of a GRPO step on the built-in arithmetic corpus
// (runtime/data/SyntheticCorpus.h), with DeepSeek-R1's rule-based rewards
// (R1 sec. 2.2.2): no reward model, only
//
//   accuracy  the final answer is right, checked exactly by data::verify();
//   format    the completion puts its working and its answer in the tags of
//             R1's template: <think>…</think><answer>…</answer>.
//
//   reward = accuracyWeight * correct + formatWeight * formatted
//
// scoreCompletion() judges one sampled completion (the bytes after the
// prompt, as generate() returns them, stop token included or not):
//
//   formatted  after dropping one trailing "\n" (the stop token), the
//              completion is exactly "<think>" T "</think><answer>" A
//              "</answer>": T and A non-empty, neither containing any of
//              the four tags, nothing before or after (no whitespace either).
//   answer     A when formatted. Otherwise the completion up to its first
//              "\n" (all of it when it has none, e.g. cut at the length
//              limit): what a plain-format model answers, so R1-Zero-style
//              GRPO straight from a plain-format base model (or SFT'd on
//              the plain corpus) earns accuracy without the tags, and a
//              reasoning model that breaks the format earns nothing for
//              accuracy (its first line is not a bare number).
//   correct    the answer contains no "\n" and data::verify(prompt, answer)
//              holds: the canonical decimal ("-15", not "-015", "+15" or
//              " -15") of the prompt's value, recomputed exactly.
//
// The problems of a step: drawStepProblems() returns the first P problems
// of a SyntheticCorpus seeded with stepProblemSeed(seed, step), a hash of
// the pair. Step k's problems are therefore the same whatever happened
// before and whatever P earlier steps drew, a resumed run at step k draws
// them again without replaying steps 0..k-1, and P problems are a prefix of
// P + 1. Different steps are independent streams (a problem may recur).
//
// Plain C++17, no LLVM. scoreCompletion() and drawStepProblems() never
// throw; grpoPrompt() and grpoPromptTokens(), like ArithmeticProblem's
// methods, throw nothing but std::bad_alloc.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_GRPOREWARDS_H
#define KILN_RUNTIME_DRIVER_GRPOREWARDS_H

#include "runtime/data/SyntheticCorpus.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::driver {

struct CompletionReward {
  double reward = 0;
  bool correct = false;
  bool formatted = false;
  /// The answer that was judged (see the file comment); "" when out of memory.
  std::string answer;
};

/// Scores `completion` for `prompt` (a corpus prompt, "Q: <expr>=? A: ") as
/// the file comment describes. Any bytes are fine (NULs, invalid UTF-8, an
/// empty completion, a malformed prompt: then not correct). The weights are
/// used as given; the caller checks them.
CompletionReward scoreCompletion(std::string_view prompt, std::string_view completion,
                                 double accuracyWeight, double formatWeight);

/// The prompt a GRPO step samples from for `problem`: problem.prompt(),
/// "Q: <expr>=? A: ", in both answer formats (the format is what the
/// policy learns to write, not part of the question).
std::string grpoPrompt(const data::ArithmeticProblem &problem);
/// grpoPrompt() as byte tokens (token id = byte value), as generate() takes
/// prompts.
std::vector<int32_t> grpoPromptTokens(const data::ArithmeticProblem &problem);

/// The seed of step `step`'s problems in a run seeded with `seed`: the pair
/// mixed with SplitMix64's finalizer in lanes of their own (distinct from
/// Sampling.h's sampleSeed), so nearby pairs give unrelated streams.
uint64_t stepProblemSeed(uint64_t seed, uint64_t step);

/// Replaces `out` with the `count` problems of GRPO step `step`: the first
/// `count` of SyntheticCorpus(stepProblemSeed(seed, step), options). Fails,
/// with `error` saying why and `out` untouched, for invalid options
/// (data::checkCorpusOptions), a negative count, or out of memory.
bool drawStepProblems(uint64_t seed, uint64_t step, int64_t count,
                      const data::CorpusOptions &options, std::vector<data::ArithmeticProblem> &out,
                      std::string &error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_GRPOREWARDS_H
