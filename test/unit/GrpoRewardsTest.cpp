//===- GrpoRewardsTest.cpp - Tests for the rule-based GRPO rewards -------===//
//
// scoreCompletion() on right, wrong, unformatted, partly formatted, garbage
// and empty completions, with both weights; the plain fallback; every
// generated completion of either format scores as it should; the GRPO
// prompt; and the per-step problem draw: reproducible, a function of
// (seed, step) only, a prefix in the count, unlike other steps and seeds.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/GrpoRewards.h"

#include "runtime/data/SplitMix64.h"

#include <gtest/gtest.h>

#include <set>

using namespace kiln;
using namespace kiln::driver;

namespace {

const std::string kPrompt = "Q: 37+48=? A: ";

/// A string literal's bytes, NULs included.
template <size_t N> std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

CompletionReward score(std::string_view completion, double accuracy = 1.0, double format = 0.5) {
  return scoreCompletion(kPrompt, completion, accuracy, format);
}

TEST(GrpoRewardsTest, CorrectAndFormatted) {
  for (const char *c :
       {"<think>37+48=85</think><answer>85</answer>\n",
        "<think>37+48=85</think><answer>85</answer>", "<think>?</think><answer>85</answer>"}) {
    const CompletionReward r = score(c);
    EXPECT_TRUE(r.correct) << c;
    EXPECT_TRUE(r.formatted) << c;
    EXPECT_EQ(r.answer, "85") << c;
    EXPECT_EQ(r.reward, 1.5) << c;
  }
  // Anything inside the think part that is not a tag, newlines included.
  const CompletionReward r = score("<think>37 + 48 <= 90\nso: 85</think><answer>85</answer>\n");
  EXPECT_TRUE(r.formatted);
  EXPECT_TRUE(r.correct);
}

TEST(GrpoRewardsTest, FormattedButWrong) {
  for (const char *c :
       {"<think>37+48=84</think><answer>84</answer>\n", "<think>x</think><answer>-85</answer>",
        "<think>x</think><answer>085</answer>", "<think>x</think><answer>+85</answer>",
        "<think>x</think><answer> 85</answer>", "<think>x</think><answer>85 </answer>",
        "<think>x</think><answer>eighty-five</answer>",
        // verify() would take one trailing "\n"; inside the tags it is wrong.
        "<think>x</think><answer>85\n</answer>"}) {
    const CompletionReward r = score(c);
    EXPECT_FALSE(r.correct) << c;
    EXPECT_TRUE(r.formatted) << c;
    EXPECT_EQ(r.reward, 0.5) << c;
  }
  EXPECT_EQ(score("<think>x</think><answer>84</answer>").answer, "84");
}

TEST(GrpoRewardsTest, PlainFallbackJudgesTheFirstLine) {
  // R1-Zero from a plain-format model: no tags, the first line is the answer.
  CompletionReward r = score("85\n");
  EXPECT_TRUE(r.correct);
  EXPECT_FALSE(r.formatted);
  EXPECT_EQ(r.answer, "85");
  EXPECT_EQ(r.reward, 1.0);
  r = score("85"); // Cut at the length limit: judged on what it has.
  EXPECT_TRUE(r.correct);
  EXPECT_EQ(r.answer, "85");
  r = score("85\nQ: 1+1=? A: 2\n"); // Only the first line counts.
  EXPECT_TRUE(r.correct);
  EXPECT_EQ(r.answer, "85");
  r = score("84\n");
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.reward, 0.0);
  r = score("8\n5\n");
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.answer, "8");
  for (const char *c : {"085\n", " 85\n", "85 \n", "+85\n", "85.0\n", "\n85\n"})
    EXPECT_FALSE(score(c).correct) << c;
  // The corpus's other prompts: negative and zero answers.
  EXPECT_TRUE(scoreCompletion("Q: (7-12)*3=? A: ", "-15\n", 1, 1).correct);
  EXPECT_TRUE(scoreCompletion("Q: 5-5=? A: ", "0\n", 1, 1).correct);
  EXPECT_FALSE(scoreCompletion("Q: 5-5=? A: ", "-0\n", 1, 1).correct);
}

TEST(GrpoRewardsTest, PartlyFormattedEarnsNothing) {
  // Not exactly <think>T</think><answer>A</answer>: unformatted, and the
  // fallback answer (the first line) is not a bare number.
  for (const char *c : {
           "<think>37+48=85</think>85\n",                              // no answer tags
           "<answer>85</answer>\n",                                    // no think
           "<think></think><answer>85</answer>\n",                     // empty think
           "<think>x</think><answer></answer>\n",                      // empty answer
           "<think>x</think> <answer>85</answer>\n",                   // space between
           " <think>x</think><answer>85</answer>\n",                   // before
           "<think>x</think><answer>85</answer> \n",                   // after
           "<think>x</think><answer>85</answer>\n\n",                  // two newlines
           "<think>x</think><answer>85</answer>x",                     // trailing byte
           "<think>x</think><answer>85</answer><answer>85</answer>",   // twice
           "<think>x<think>y</think><answer>85</answer>\n",            // nested think
           "<think>x</think></think><answer>85</answer>\n",            // stray close
           "<think>x</think><answer><answer>85</answer></answer>\n",   // nested answer
           "<think>x</think><answer>85</think></answer>\n",            // tag in answer
           "<think>x<answer>85</answer></think><answer>85</answer>\n", // tag in think
           "<think>x</think><answer>85",                               // unclosed
           "<think>x<answer>85</answer>",                              // think unclosed
           "<answer>85</answer><think>x</think>\n",                    // swapped
           "<THINK>x</THINK><ANSWER>85</ANSWER>\n",                    // case
       }) {
    const CompletionReward r = score(c);
    EXPECT_FALSE(r.formatted) << c;
    EXPECT_FALSE(r.correct) << c;
    EXPECT_EQ(r.reward, 0.0) << c;
  }
  // The fallback answer is the first line, tags and all.
  EXPECT_EQ(score("<think>x</think>85\nmore").answer, "<think>x</think>85");
}

TEST(GrpoRewardsTest, EmptyAndGarbageCompletions) {
  CompletionReward r = score("");
  EXPECT_FALSE(r.correct);
  EXPECT_FALSE(r.formatted);
  EXPECT_EQ(r.answer, "");
  EXPECT_EQ(r.reward, 0.0);
  r = score("\n");
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.answer, "");

  // NULs and invalid UTF-8, inside and outside the tags.
  const std::string nul = bytes("85\0"),
                    withNul = bytes("<think>\0\xff</think><answer>85</answer>");
  r = score(nul);
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.answer, nul);
  r = score(withNul);
  EXPECT_TRUE(r.formatted);
  EXPECT_TRUE(r.correct);
  r = score(bytes("<think>x</think><answer>8\0</answer>"));
  EXPECT_TRUE(r.formatted);
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.answer, bytes("8\0"));

  // Random bytes, and random mutations of a right completion: never a
  // crash, and the reward always follows the flags.
  data::SplitMix64 rng(2024);
  const std::string good = "<think>37+48=85</think><answer>85</answer>\n";
  int formatted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string c;
    if (i % 2) {
      c.resize(rng.below(64));
      for (char &ch : c)
        ch = static_cast<char>(rng.below(256));
    } else {
      c = good;
      const uint64_t edits = 1 + rng.below(3);
      for (uint64_t e = 0; e < edits; ++e)
        c[rng.below(c.size())] = "<>/\n\0x8a"[rng.below(8)];
    }
    r = scoreCompletion(kPrompt, c, 2.0, 0.25);
    ASSERT_EQ(r.reward, (r.correct ? 2.0 : 0.0) + (r.formatted ? 0.25 : 0.0));
    ASSERT_TRUE(!r.correct || r.answer == "85") << c;
    formatted += r.formatted;
  }
  EXPECT_GT(formatted, 100);

  // A malformed prompt: never correct, still scored for format.
  r = scoreCompletion(bytes("Q: 1+\0=? A: "), "<think>x</think><answer>1</answer>", 1, 1);
  EXPECT_FALSE(r.correct);
  EXPECT_TRUE(r.formatted);
  EXPECT_EQ(r.reward, 1.0);
  EXPECT_FALSE(scoreCompletion("", "", 1, 1).correct);
  EXPECT_FALSE(scoreCompletion("\xff\xfe", "85", 1, 1).correct);
}

TEST(GrpoRewardsTest, Weights) {
  const std::string right = "<think>37+48=85</think><answer>85</answer>\n";
  const std::string wrong = "<think>37+48=84</think><answer>84</answer>\n";
  EXPECT_EQ(scoreCompletion(kPrompt, right, 1, 0).reward, 1.0);
  EXPECT_EQ(scoreCompletion(kPrompt, right, 0, 1).reward, 1.0);
  EXPECT_EQ(scoreCompletion(kPrompt, right, 0, 0).reward, 0.0);
  EXPECT_EQ(scoreCompletion(kPrompt, right, 2, 0.125).reward, 2.125);
  EXPECT_EQ(scoreCompletion(kPrompt, wrong, 2, 0.125).reward, 0.125);
  EXPECT_EQ(scoreCompletion(kPrompt, "85\n", 2, 0.125).reward, 2.0);
  EXPECT_EQ(scoreCompletion(kPrompt, "84\n", 2, 0.125).reward, 0.0);
  EXPECT_EQ(scoreCompletion(kPrompt, right, -1, 3).reward, 2.0);
  // The flags do not depend on the weights.
  const CompletionReward r = scoreCompletion(kPrompt, right, 0, 0);
  EXPECT_TRUE(r.correct);
  EXPECT_TRUE(r.formatted);
}

TEST(GrpoRewardsTest, GeneratedCompletionsScoreAsTheirFormat) {
  // The corpus and the reward agree: every reasoning completion is right
  // and formatted, every plain one right through the fallback; a wrong
  // answer in either is caught.
  for (data::AnswerFormat format : {data::AnswerFormat::Plain, data::AnswerFormat::Reasoning}) {
    std::string error;
    std::optional<data::SyntheticCorpus> corpus =
        data::SyntheticCorpus::create(17, {4, 8, format}, error);
    ASSERT_TRUE(corpus) << error;
    for (int i = 0; i < 2000; ++i) {
      data::ArithmeticProblem p = corpus->nextProblem();
      CompletionReward r = scoreCompletion(grpoPrompt(p), p.completion(), 1, 1);
      ASSERT_TRUE(r.correct) << p.text();
      ASSERT_EQ(r.formatted, format == data::AnswerFormat::Reasoning) << p.text();
      ASSERT_EQ(r.answer, p.answerText());
      data::ArithmeticProblem off = p;
      off.answer += 1;
      r = scoreCompletion(grpoPrompt(p), off.completion(), 1, 1);
      ASSERT_FALSE(r.correct) << off.text();
      ASSERT_EQ(r.formatted, format == data::AnswerFormat::Reasoning) << off.text();
    }
  }
}

TEST(GrpoRewardsTest, PromptIsTheCorpusPrompt) {
  const data::ArithmeticProblem p{"(7-12)*3", -15, data::AnswerFormat::Reasoning};
  EXPECT_EQ(grpoPrompt(p), "Q: (7-12)*3=? A: ");
  const std::vector<int32_t> tokens = grpoPromptTokens(p);
  ASSERT_EQ(tokens.size(), grpoPrompt(p).size());
  for (size_t i = 0; i < tokens.size(); ++i)
    EXPECT_EQ(tokens[i], static_cast<uint8_t>(grpoPrompt(p)[i]));
  EXPECT_EQ(grpoPrompt(data::ArithmeticProblem{"(7-12)*3", -15}), grpoPrompt(p));
}

std::vector<std::string> texts(const std::vector<data::ArithmeticProblem> &problems) {
  std::vector<std::string> out;
  for (const data::ArithmeticProblem &p : problems)
    out.push_back(p.text());
  return out;
}

std::vector<data::ArithmeticProblem> draw(uint64_t seed, uint64_t step, int64_t count,
                                          data::CorpusOptions options = {}) {
  std::string error;
  std::vector<data::ArithmeticProblem> out;
  EXPECT_TRUE(drawStepProblems(seed, step, count, options, out, error)) << error;
  EXPECT_EQ(out.size(), size_t(count));
  return out;
}

TEST(GrpoRewardsTest, StepProblemsAreAFunctionOfSeedAndStep) {
  // A run that draws steps 0..9 (with varying counts) and a resumed run that
  // starts at step 7 get the same problems at steps 7..9.
  std::vector<std::vector<std::string>> uninterrupted;
  for (uint64_t step = 0; step < 10; ++step)
    uninterrupted.push_back(texts(draw(5, step, 8)));
  for (uint64_t step = 0; step < 7; ++step)
    draw(5, step, int64_t(1 + step)); // Other earlier draws change nothing.
  for (uint64_t step = 7; step < 10; ++step)
    EXPECT_EQ(texts(draw(5, step, 8)), uninterrupted[step]) << "step " << step;

  // Fewer problems are a prefix of more.
  const std::vector<std::string> many = texts(draw(5, 3, 20));
  EXPECT_EQ(texts(draw(5, 3, 8)), std::vector<std::string>(many.begin(), many.begin() + 8));
  EXPECT_TRUE(draw(5, 3, 0).empty());

  // The first problem is the first of the step's own corpus stream.
  std::string error;
  std::optional<data::SyntheticCorpus> corpus =
      data::SyntheticCorpus::create(stepProblemSeed(5, 3), {}, error);
  ASSERT_TRUE(corpus) << error;
  EXPECT_EQ(corpus->nextProblem().text(), many[0]);

  // Steps and seeds differ; the step streams are not the pretraining stream.
  std::set<std::vector<std::string>> distinct(uninterrupted.begin(), uninterrupted.end());
  EXPECT_EQ(distinct.size(), uninterrupted.size());
  EXPECT_NE(texts(draw(6, 3, 8)), texts(draw(5, 3, 8)));
  EXPECT_NE(stepProblemSeed(5, 3), stepProblemSeed(3, 5));
  EXPECT_NE(stepProblemSeed(0, 0), 0u);
  std::optional<data::SyntheticCorpus> pretrain = data::SyntheticCorpus::create(5, {}, error);
  EXPECT_NE(pretrain->nextProblem().text(), uninterrupted[0][0]);

  // The format changes the answers' text, not the problems.
  const std::vector<data::ArithmeticProblem> plain = draw(5, 4, 16),
                                             reasoning = draw(
                                                 5, 4, 16, {2, 3, data::AnswerFormat::Reasoning});
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].expression, reasoning[i].expression);
    EXPECT_EQ(plain[i].answer, reasoning[i].answer);
    EXPECT_EQ(reasoning[i].format, data::AnswerFormat::Reasoning);
    EXPECT_EQ(grpoPrompt(plain[i]), grpoPrompt(reasoning[i]));
  }
  // Difficulty options apply.
  for (const data::ArithmeticProblem &p : draw(5, 4, 50, {1, 1}))
    EXPECT_LE(p.expression.size(), 3u) << p.expression;
}

TEST(GrpoRewardsTest, StepProblemsRejectBadRequests) {
  std::string error;
  std::vector<data::ArithmeticProblem> out = draw(1, 0, 2);
  const std::vector<std::string> before = texts(out);
  EXPECT_FALSE(drawStepProblems(1, 4, -1, {}, out, error));
  EXPECT_NE(error.find("-1 problems requested"), std::string::npos) << error;
  EXPECT_NE(error.find("step 4"), std::string::npos) << error;
  EXPECT_FALSE(drawStepProblems(1, 4, 3, {0, 3}, out, error));
  EXPECT_NE(error.find("maxOperandDigits is 0"), std::string::npos) << error;
  EXPECT_FALSE(drawStepProblems(1, 4, int64_t(1) << 62, {}, out, error));
  EXPECT_NE(error.find("out of memory"), std::string::npos) << error;
  EXPECT_EQ(texts(out), before); // Untouched on failure.
}

} // namespace
