//===- CurriculumTest.cpp - train.curriculum's corpus and GRPO problems ---===//
//
// The built-in corpus under a curriculum (runtime/driver/Curriculum.h):
// each stage's steps read problems of that stage's difficulty, exactly at
// the step boundaries the loader crosses; a one-stage curriculum of the
// defaults is the plain corpus; GRPO's problems follow the step's stage.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/TokenLoader.h"
#include "runtime/driver/Curriculum.h"
#include "runtime/driver/GrpoRewards.h"

#include <gtest/gtest.h>

#include <string>

using namespace kiln;
using namespace kiln::driver;

namespace {

/// The most operations and operand digits among the problem texts that
/// start in `text` ("Q: <expr>=? A: ..." lines; a cut first line skipped).
std::pair<int, int> hardest(const std::string &text) {
  int ops = 0, digits = 0;
  size_t at = text.find("Q: ");
  while (at != std::string::npos) {
    const size_t end = text.find("=?", at);
    if (end == std::string::npos)
      break;
    const std::string expr = text.substr(at + 3, end - at - 3);
    int opsHere = 0, run = 0;
    for (size_t i = 0; i < expr.size(); ++i) {
      const char c = expr[i];
      if (c >= '0' && c <= '9') {
        digits = std::max(digits, ++run);
        continue;
      }
      run = 0;
      opsHere += c == '+' || c == '*' || (c == '-' && i > 0 && expr[i - 1] != '(');
    }
    ops = std::max(ops, opsHere);
    at = text.find("Q: ", end);
  }
  return {ops, digits};
}

ModelDesc model(const CurriculumStage *stages, int64_t count) {
  ModelDesc m{};
  m.curriculum = stages;
  m.numCurriculum = count;
  return m;
}

TEST(Curriculum, OptionsFollowTheSteps) {
  const CurriculumStage stages[] = {{2, 1, 1}, {5, 2, 1}, {0, 3, 4}};
  const ModelDesc m = model(stages, 3);
  for (uint64_t step : {1, 2})
    EXPECT_EQ(curriculumOptions(m, step, data::AnswerFormat::Plain).maxOperations, 1);
  EXPECT_EQ(curriculumOptions(m, 3, data::AnswerFormat::Plain).maxOperandDigits, 2);
  EXPECT_EQ(curriculumOptions(m, 5, data::AnswerFormat::Plain).maxOperandDigits, 2);
  data::CorpusOptions late = curriculumOptions(m, 6, data::AnswerFormat::Reasoning);
  EXPECT_EQ(late.maxOperandDigits, 3);
  EXPECT_EQ(late.maxOperations, 4);
  EXPECT_EQ(late.format, data::AnswerFormat::Reasoning);
  // No curriculum: the corpus defaults.
  const data::CorpusOptions none = curriculumOptions(model(nullptr, 0), 7, data::AnswerFormat::Plain);
  EXPECT_EQ(none.maxOperandDigits, data::CorpusOptions{}.maxOperandDigits);
  EXPECT_EQ(none.maxOperations, data::CorpusOptions{}.maxOperations);
}

TEST(Curriculum, CorpusStagesMeetTheLoadersSteps) {
  // 3 steps of 1-digit single operations, then 3-digit, up to 4 operations.
  const CurriculumStage stages[] = {{3, 1, 1}, {0, 3, 4}};
  const ModelDesc m = model(stages, 2);
  const uint64_t rows = 4, seqLen = 32, perStep = rows * seqLen;
  data::CorpusTokens corpus;
  std::string error;
  ASSERT_TRUE(curriculumCorpus(m, 7, [&](uint64_t s) { return (s - 1) * perStep; }, 4096, data::AnswerFormat::Plain, corpus, error))
      << error;
  ASSERT_EQ(corpus.tokens.size(), 3 * perStep + 4096);
  std::optional<data::TokenLoader> loader = data::TokenLoader::fromMemory(
      "curriculum", std::vector<uint16_t>(corpus.tokens), std::vector<uint8_t>(corpus.answerMask),
      rows, seqLen, error, 256);
  ASSERT_TRUE(loader) << error;
  std::vector<int64_t> batch(loader->batchTokens());
  std::vector<uint8_t> mask(loader->batchTokens());
  for (int step = 1; step <= 6; ++step) {
    ASSERT_TRUE(loader->next(batch.data(), mask.data(), error)) << error;
    std::string text;
    // Row b's first seqLen tokens are this step's own (the last overlaps).
    for (uint64_t b = 0; b < rows; ++b)
      for (uint64_t t = 0; t < seqLen; ++t)
        text += char(batch[b * (seqLen + 1) + t]);
    auto [ops, digits] = hardest(text);
    std::printf("step %d: hardest problem %d operations, %d-digit operands\n", step, ops, digits);
    if (step <= 3) {
      EXPECT_LE(ops, 1) << "step " << step << ": " << text;
      EXPECT_LE(digits, 1) << "step " << step << ": " << text;
    } else {
      EXPECT_GT(ops + digits, 2) << "step " << step << " is still easy: " << text;
    }
  }
}

TEST(Curriculum, OneDefaultStageIsThePlainCorpus) {
  const CurriculumStage stages[] = {{0, 2, 3}};
  data::CorpusTokens staged, plain;
  std::string error;
  ASSERT_TRUE(curriculumCorpus(model(stages, 1), 11, [](uint64_t s) { return (s - 1) * 128; }, 2048, data::AnswerFormat::Plain, staged,
                               error));
  ASSERT_TRUE(data::generateCorpus(11, data::CorpusOptions{}, 2048, plain, error));
  EXPECT_EQ(staged.tokens, plain.tokens);
  EXPECT_EQ(staged.answerMask, plain.answerMask);
}

TEST(Curriculum, GrpoProblemsFollowTheStepsStage) {
  const CurriculumStage stages[] = {{10, 1, 1}, {0, 2, 3}};
  const ModelDesc m = model(stages, 2);
  std::string error;
  std::vector<data::ArithmeticProblem> early, late;
  ASSERT_TRUE(drawStepProblems(5, 10, 32, curriculumOptions(m, 10, data::AnswerFormat::Plain),
                               early, error));
  ASSERT_TRUE(drawStepProblems(5, 11, 32, curriculumOptions(m, 11, data::AnswerFormat::Plain),
                               late, error));
  std::string earlyText, lateText;
  for (const auto &p : early)
    earlyText += p.prompt() + "\n";
  for (const auto &p : late)
    lateText += p.prompt() + "\n";
  EXPECT_EQ(hardest(earlyText), std::make_pair(1, 1));
  EXPECT_GT(hardest(lateText).first + hardest(lateText).second, 2);
}

} // namespace
