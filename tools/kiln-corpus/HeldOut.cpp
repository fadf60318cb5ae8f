//===- HeldOut.cpp - held-out prompts and the scoring of completions ------===//

#include "tools/kiln-corpus/HeldOut.h"
#include "runtime/driver/GrpoRewards.h"
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

bool scoreCompletions(const std::string &path, CompletionScores &scores, std::string &error) {
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
    driver::CompletionReward reward = driver::scoreCompletion(
        doc["prompt"].get<std::string>(), doc["text"].get<std::string>(), 1.0, 1.0);
    ++scores.completions;
    scores.correct += reward.correct;
    scores.formatted += reward.formatted;
  }
  return true;
}

} // namespace kiln::tools
