//===- Curriculum.cpp - train.curriculum: the corpus' difficulty by steps -===//

#include "runtime/driver/Curriculum.h"

namespace kiln::driver {

data::CorpusOptions curriculumOptions(const ModelDesc &model, uint64_t step,
                                      data::AnswerFormat format) {
  data::CorpusOptions options;
  options.format = format;
  for (int64_t i = 0; i < model.numCurriculum; ++i) {
    const CurriculumStage &stage = model.curriculum[i];
    if (stage.untilStep != 0 && step > stage.untilStep)
      continue;
    options.maxOperandDigits = stage.maxDigits;
    options.maxOperations = stage.maxOps;
    break;
  }
  return options;
}

bool curriculumCorpus(const ModelDesc &model, uint64_t seed,
                      const std::function<uint64_t(uint64_t)> &tokensBefore,
                      uint64_t lastTokens, data::AnswerFormat format, data::CorpusTokens &out,
                      std::string &error) {
  out = {};
  if (model.numCurriculum == 0)
    return data::generateCorpus(seed, curriculumOptions(model, 1, format), lastTokens, out,
                                error);
  uint64_t firstStep = 1;
  for (int64_t i = 0; i < model.numCurriculum; ++i) {
    const CurriculumStage &stage = model.curriculum[i];
    const bool last = i + 1 == model.numCurriculum;
    const uint64_t tokens = last ? lastTokens
                                 : tokensBefore(stage.untilStep + 1) - tokensBefore(firstStep);
    // Stage 0 is the run's own corpus; the others get streams of their own.
    const uint64_t stageSeed = i == 0 ? seed : seed ^ (0x9e3779b97f4a7c15ull * uint64_t(i));
    data::CorpusTokens part;
    if (!data::generateCorpus(stageSeed, curriculumOptions(model, firstStep, format), tokens,
                              part, error)) {
      error = "train.curriculum stage " + std::to_string(i) + ": " + error;
      return false;
    }
    out.tokens.insert(out.tokens.end(), part.tokens.begin(), part.tokens.end());
    out.answerMask.insert(out.answerMask.end(), part.answerMask.begin(), part.answerMask.end());
    firstStep = stage.untilStep + 1;
  }
  return true;
}

} // namespace kiln::driver
