//===- HeldOut.cpp - held-out prompts and the scoring of completions ------===//

#include "tools/kiln-corpus/HeldOut.h"
#include "runtime/driver/GrpoRewards.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/io/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace kiln::tools {

bool writeHeldOutPrompts(const std::string &path, uint64_t seed, uint64_t count,
                         const data::CorpusOptions &options, std::string &error) {
  std::optional<data::SyntheticCorpus> corpus = data::SyntheticCorpus::create(seed, options, error);
  if (!corpus)
    return false;
  std::string text;
  for (uint64_t i = 0; i < count; ++i) {
    data::ArithmeticProblem problem = corpus->nextProblem();
    nlohmann::json line = {{"prompt", problem.prompt()}, {"answer", problem.answerText()}};
    text += line.dump() + "\n";
  }
  return io::writeFileAtomic(path, {{text.data(), text.size()}}, error);
}

/// Calls `each(prompt, completion, reward)` for every line of `train
/// --generate`'s output at `path`, counting into `scores`.
template <class Each>
static bool forEachCompletion(const std::string &path, CompletionScores &scores,
                              std::string &error, Each each) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read";
    return false;
  }
  scores = {};
  std::string line;
  for (uint64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty())
      continue;
    nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("prompt") ||
        !doc.contains("text") || !doc["prompt"].is_string() || !doc["text"].is_string()) {
      error = path + ":" + std::to_string(number) +
              ": expected a line of train --generate's output with \"prompt\" and \"text\"";
      return false;
    }
    const std::string prompt = doc["prompt"].get<std::string>(),
                      completion = doc["text"].get<std::string>();
    driver::CompletionReward reward = driver::scoreCompletion(prompt, completion, 1.0, 1.0);
    ++scores.completions;
    scores.correct += reward.correct;
    scores.formatted += reward.formatted;
    each(prompt, completion, reward);
  }
  return true;
}

bool scoreCompletions(const std::string &path, CompletionScores &scores, std::string &error) {
  return forEachCompletion(path, scores, error, [](auto &&...) {});
}

bool writeDistillationData(const std::string &completionsPath, const std::string &outPath,
                           CompletionScores &scores, std::string &error) {
  std::vector<uint16_t> tokens;
  std::vector<uint8_t> mask;
  if (!forEachCompletion(completionsPath, scores, error,
                         [&](const std::string &prompt, const std::string &completion,
                             const driver::CompletionReward &reward) {
                           if (!reward.correct)
                             return;
                           for (unsigned char c : prompt) {
                             tokens.push_back(c);
                             mask.push_back(0);
                           }
                           for (unsigned char c : completion) {
                             tokens.push_back(c);
                             mask.push_back(1);
                           }
                         }))
    return false;
  if (tokens.empty()) {
    error = completionsPath + ": no correct completion to keep out of " +
            std::to_string(scores.completions);
    return false;
  }
  return data::writeLlmcShard(outPath, tokens, error) &&
         io::writeFileAtomic(outPath + ".mask", {{mask.data(), mask.size()}}, error);
}

} // namespace kiln::tools
