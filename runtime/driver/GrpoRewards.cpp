//===- GrpoRewards.cpp - Rule-based GRPO rewards on the arithmetic corpus ===//
//
// The format check is a scan over string_views of the completion (no
// allocation until the judged answer is copied out), then data::verify()
// for accuracy.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/GrpoRewards.h"

#include <initializer_list>
#include <optional>

namespace kiln::driver {

namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>",
                           kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool containsTag(std::string_view s) {
  for (std::string_view tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose})
    if (s.find(tag) != std::string_view::npos)
      return true;
  return false;
}

/// The answer part of "<think>T</think><answer>A</answer>" (one trailing
/// "\n" allowed), or nothing when `completion` is not exactly that.
std::optional<std::string_view> taggedAnswer(std::string_view completion) {
  std::string_view body = completion;
  if (endsWith(body, "\n"))
    body.remove_suffix(1);
  if (!startsWith(body, kThinkOpen))
    return std::nullopt;
  body.remove_prefix(kThinkOpen.size());
  const size_t thinkEnd = body.find(kThinkClose);
  if (thinkEnd == std::string_view::npos)
    return std::nullopt;
  const std::string_view think = body.substr(0, thinkEnd);
  std::string_view rest = body.substr(thinkEnd + kThinkClose.size());
  if (!startsWith(rest, kAnswerOpen) || rest.size() < kAnswerOpen.size() + kAnswerClose.size() ||
      !endsWith(rest, kAnswerClose))
    return std::nullopt;
  const std::string_view answer =
      rest.substr(kAnswerOpen.size(), rest.size() - kAnswerOpen.size() - kAnswerClose.size());
  if (think.empty() || answer.empty() || containsTag(think) || containsTag(answer))
    return std::nullopt;
  return answer;
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

CompletionReward scoreCompletion(std::string_view prompt, std::string_view completion,
                                 double accuracyWeight, double formatWeight) {
  CompletionReward result;
  const std::optional<std::string_view> tagged = taggedAnswer(completion);
  result.formatted = tagged.has_value();
  const std::string_view answer =
      tagged ? *tagged : completion.substr(0, completion.find('\n')); // npos: all of it.
  // verify() accepts one trailing "\n" (a plain masked span); an answer is
  // judged without one.
  result.correct = answer.find('\n') == std::string_view::npos && data::verify(prompt, answer);
  result.reward =
      accuracyWeight * (result.correct ? 1.0 : 0.0) + formatWeight * (result.formatted ? 1.0 : 0.0);
  try {
    result.answer = std::string(answer);
  } catch (...) {
    result.answer.clear(); // Out of memory: the reward stands, the copy does not.
  }
  return result;
}

std::string grpoPrompt(const data::ArithmeticProblem &problem) { return problem.prompt(); }

std::vector<int32_t> grpoPromptTokens(const data::ArithmeticProblem &problem) {
  std::vector<int32_t> tokens;
  for (char c : grpoPrompt(problem))
    tokens.push_back(static_cast<uint8_t>(c));
  return tokens;
}

uint64_t stepProblemSeed(uint64_t seed, uint64_t step) {
  // Lane constants of their own (Sampling.cpp's sampleSeed uses others), so
  // the problem stream of (seed, step) is unrelated to any sampling stream.
  const uint64_t h = mix64(seed ^ 0xc2b2ae3d27d4eb4fULL);
  return mix64(h + mix64(step ^ 0x165667b19e3779f9ULL));
}

bool drawStepProblems(uint64_t seed, uint64_t step, int64_t count,
                      const data::CorpusOptions &options, std::vector<data::ArithmeticProblem> &out,
                      std::string &error) {
  if (count < 0) {
    error = "GRPO step " + std::to_string(step) + ": " + std::to_string(count) +
            " problems requested; expected a count >= 0";
    return false;
  }
  std::optional<data::SyntheticCorpus> corpus =
      data::SyntheticCorpus::create(stepProblemSeed(seed, step), options, error);
  if (!corpus)
    return false;
  try {
    std::vector<data::ArithmeticProblem> problems;
    problems.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i)
      problems.push_back(corpus->nextProblem());
    out = std::move(problems);
    return true;
  } catch (...) {
    error = "GRPO step " + std::to_string(step) + ": out of memory for " + std::to_string(count) +
            " problems";
    return false;
  }
}

} // namespace kiln::driver
