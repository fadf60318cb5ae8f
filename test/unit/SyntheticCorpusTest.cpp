//===- SyntheticCorpusTest.cpp - Tests for the synthetic arithmetic corpus ===//
//
// SplitMix64 against its published outputs; golden problems per seed (the
// corpus must not depend on the platform); determinism across runs and
// variation across seeds; every generated problem verifies and respects the
// difficulty knob; the answer mask covers exactly the answer bytes; verify()
// rejects wrong and non-canonical answers; the evaluator's precedence,
// overflow and syntax errors; and the corpus written as an llm.c shard.
// The reasoning format: hand-picked workings (order, negative operands),
// a golden per seed, the same problems as plain, every step's arithmetic,
// the mask over the whole completion; and the plain format pinned by hashes
// taken from the code before the format existed.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/SyntheticCorpus.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/data/TokenLoader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <limits>

using namespace kiln::data;

namespace {

::testing::AssertionResult contains(const std::string &text,
                                    std::initializer_list<const char *> needles) {
  for (const char *needle : needles)
    if (text.find(needle) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message does not mention \"" << needle << "\":\n  " << text;
  return ::testing::AssertionSuccess();
}

SyntheticCorpus makeCorpus(uint64_t seed, CorpusOptions options = {}) {
  std::string error;
  std::optional<SyntheticCorpus> corpus = SyntheticCorpus::create(seed, options, error);
  EXPECT_TRUE(corpus) << error;
  return *corpus;
}

std::string asText(const std::vector<uint16_t> &tokens) {
  std::string text;
  for (uint16_t t : tokens)
    text += static_cast<char>(t);
  return text;
}

TEST(SplitMix64Test, MatchesReferenceOutputs) {
  // The first outputs of the reference splitmix64.c for seed 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.next(), 0x06c45d188009454fULL);
}

TEST(SplitMix64Test, BelowStaysInRangeAndCoversIt) {
  SplitMix64 rng(123);
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 7000; ++i) {
    uint64_t v = rng.below(7);
    ASSERT_LT(v, 7u);
    ++seen[v];
  }
  for (int v = 0; v < 7; ++v)
    EXPECT_GT(seen[v], 800) << "value " << v << " drawn " << seen[v] << " times of 7000";
  EXPECT_EQ(rng.below(1), 0u);
  EXPECT_LT(rng.below(std::numeric_limits<uint64_t>::max()), std::numeric_limits<uint64_t>::max());
}

TEST(SyntheticCorpusTest, GoldenProblemsForSeed) {
  // Pinned output: a change here changes every corpus ever generated, and a
  // platform that disagrees has a portability bug.
  SyntheticCorpus corpus = makeCorpus(42);
  std::string text;
  for (int i = 0; i < 5; ++i)
    text += corpus.nextProblem().text();
  EXPECT_EQ(text, "Q: 5-5+7=? A: 7\n"
                  "Q: 0-(28+1)=? A: -29\n"
                  "Q: 47*53=? A: 2491\n"
                  "Q: 68-53=? A: 15\n"
                  "Q: 74-6*38-19=? A: -173\n");
}

TEST(SyntheticCorpusTest, DeterministicPerSeedAndDifferentAcrossSeeds) {
  std::string error;
  CorpusTokens a, b, c;
  ASSERT_TRUE(generateCorpus(7, {}, 5000, a, error)) << error;
  ASSERT_TRUE(generateCorpus(7, {}, 5000, b, error)) << error;
  ASSERT_TRUE(generateCorpus(8, {}, 5000, c, error)) << error;
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.answerMask, b.answerMask);
  EXPECT_NE(a.tokens, c.tokens);
  ASSERT_EQ(a.tokens.size(), 5000u);
  ASSERT_EQ(a.answerMask.size(), 5000u);

  // The stream is the problems' text() in order, cut at the count.
  SyntheticCorpus corpus = makeCorpus(7);
  std::string expected;
  while (expected.size() < 5000)
    expected += corpus.nextProblem().text();
  expected.resize(5000);
  EXPECT_EQ(asText(a.tokens), expected);
}

TEST(SyntheticCorpusTest, EveryProblemVerifiesAtEveryDifficulty) {
  for (int digits = 1; digits <= 9; ++digits) {
    for (int ops = 1; ops <= 8; ++ops) {
      SCOPED_TRACE("digits " + std::to_string(digits) + ", operations " + std::to_string(ops));
      SyntheticCorpus corpus = makeCorpus(1000 + digits * 10 + ops, {digits, ops});
      int maxSeenOps = 0;
      for (int i = 0; i < 300; ++i) {
        const ArithmeticProblem p = corpus.nextProblem();
        std::string error, whyNot;
        std::optional<int64_t> value = evaluateArithmetic(p.expression, error);
        ASSERT_TRUE(value) << p.expression << ": " << error;
        ASSERT_EQ(*value, p.answer) << p.expression;
        ASSERT_TRUE(verify(p.prompt(), p.answerText(), whyNot)) << p.text() << whyNot;
        ASSERT_TRUE(verify(p.prompt(), p.answerText() + "\n", whyNot)) << p.text() << whyNot;

        // The knob: operand digits and operation count stay within it.
        int operations = 0;
        std::string number;
        for (char ch : p.expression + " ") {
          if (ch >= '0' && ch <= '9') {
            number += ch;
            continue;
          }
          if (!number.empty()) {
            ASSERT_LE(static_cast<int>(number.size()), digits) << p.expression;
          }
          ASSERT_FALSE(number.size() > 1 && number[0] == '0') << "leading zero in " << p.expression;
          number.clear();
          operations += (ch == '+' || ch == '-' || ch == '*');
        }
        ASSERT_GE(operations, 1) << p.expression;
        ASSERT_LE(operations, ops) << p.expression;
        maxSeenOps = std::max(maxSeenOps, operations);
      }
      EXPECT_EQ(maxSeenOps, ops) << "the largest allowed number of operations never appeared";
    }
  }
}

TEST(SyntheticCorpusTest, MixesOperatorsParenthesesAndSigns) {
  SyntheticCorpus corpus = makeCorpus(5);
  int plus = 0, minus = 0, times = 0, parens = 0, negative = 0;
  for (int i = 0; i < 1000; ++i) {
    const ArithmeticProblem p = corpus.nextProblem();
    for (char ch : p.expression) {
      plus += ch == '+';
      minus += ch == '-';
      times += ch == '*';
      parens += ch == '(';
    }
    negative += p.answer < 0;
  }
  EXPECT_GT(plus, 300);
  EXPECT_GT(minus, 300);
  EXPECT_GT(times, 300);
  EXPECT_GT(parens, 100);
  EXPECT_GT(negative, 50);

  // One operation: plain "a op b", never parentheses.
  SyntheticCorpus simple = makeCorpus(5, {2, 1});
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(simple.nextProblem().expression.find('('), std::string::npos);
}

/// The tree an expression parses to, written fully parenthesized:
/// "1+2*3" -> "(1+(2*3))". Assumes well-formed input (checked elsewhere).
class Shape {
public:
  static std::string of(std::string_view text) {
    Shape shape(text);
    return shape.expr();
  }

private:
  explicit Shape(std::string_view text) : s_(text) {}
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  std::string expr() {
    std::string lhs = term();
    while (at('+') || at('-')) {
      const char op = s_[i_++];
      lhs = "(" + lhs + op + term() + ")";
    }
    return lhs;
  }
  std::string term() {
    std::string lhs = factor();
    while (at('*')) {
      ++i_;
      lhs = "(" + lhs + "*" + factor() + ")";
    }
    return lhs;
  }
  std::string factor() {
    if (at('(')) {
      ++i_;
      std::string inner = expr();
      ++i_; // ')'
      return inner;
    }
    const size_t begin = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
      ++i_;
    return std::string(s_.substr(begin, i_ - begin));
  }

  std::string_view s_;
  size_t i_ = 0;
};

TEST(SyntheticCorpusTest, ParenthesesOnlyWhereTheTreeNeedsThem) {
  // Removing any one pair of parentheses must change the parse tree (so none
  // is redundant), e.g. "a-(b-c)" and "a+(b+c)" keep theirs, "(a*b)+c" would
  // not be generated.
  EXPECT_EQ(Shape::of("1+2*3"), "(1+(2*3))");
  EXPECT_EQ(Shape::of("1+(2+3)"), "(1+(2+3))");
  SyntheticCorpus corpus = makeCorpus(11, {3, 8});
  int pairs = 0;
  for (int i = 0; i < 500; ++i) {
    const std::string e = corpus.nextProblem().expression;
    const std::string shape = Shape::of(e);
    for (size_t open = 0; open < e.size(); ++open) {
      if (e[open] != '(')
        continue;
      size_t close = open;
      for (int depth = 0;; ++close) {
        depth += e[close] == '(';
        depth -= e[close] == ')';
        if (depth == 0)
          break;
      }
      std::string without = e;
      without.erase(close, 1);
      without.erase(open, 1);
      ASSERT_NE(Shape::of(without), shape) << "redundant parentheses at " << open << " in " << e;
      ++pairs;
    }
  }
  EXPECT_GT(pairs, 500);
}

TEST(SyntheticCorpusTest, AnswerMaskCoversExactlyTheAnswerBytes) {
  std::string error;
  CorpusTokens corpus;
  ASSERT_TRUE(generateCorpus(3, {3, 4}, 20000, corpus, error)) << error;
  const std::string text = asText(corpus.tokens);
  // Walk whole lines; the cut last line is checked up to the cut.
  size_t start = 0;
  int lines = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool complete = end != std::string::npos;
    if (!complete)
      end = text.size() - 1;
    const std::string line = text.substr(start, end - start + 1);
    const size_t answerAt = line.find("A: ");
    if (complete) {
      ASSERT_NE(answerAt, std::string::npos) << line;
      const std::string prompt = line.substr(0, answerAt + 3);
      const std::string answer = line.substr(answerAt + 3);
      std::string whyNot;
      ASSERT_TRUE(verify(prompt, answer, whyNot)) << line << whyNot;
      ++lines;
    }
    for (size_t k = 0; k < line.size(); ++k) {
      const bool inAnswer = answerAt != std::string::npos && k >= answerAt + 3;
      ASSERT_EQ(corpus.answerMask[start + k], inAnswer ? 1 : 0)
          << "byte " << k << " ('" << line[k] << "') of line: " << line;
    }
    start = end + 1;
  }
  EXPECT_GT(lines, 500);
}

TEST(SyntheticCorpusTest, AppendNextMatchesText) {
  SyntheticCorpus a = makeCorpus(9), b = makeCorpus(9);
  CorpusTokens tokens;
  ASSERT_TRUE(a.appendNext(tokens));
  const ArithmeticProblem p = b.nextProblem();
  EXPECT_EQ(asText(tokens.tokens), p.text());
  const std::string masked = p.answerText() + "\n";
  size_t ones = 0;
  for (uint8_t m : tokens.answerMask)
    ones += m;
  EXPECT_EQ(ones, masked.size());
  EXPECT_EQ(tokens.answerMask.back(), 1);
  EXPECT_EQ(tokens.answerMask[p.prompt().size() - 1], 0);
  EXPECT_EQ(tokens.answerMask[p.prompt().size()], 1);
}

TEST(SyntheticCorpusTest, VerifyRejectsWrongAnswers) {
  const std::string prompt = "Q: 37+48=? A: ";
  std::string whyNot;
  EXPECT_TRUE(verify(prompt, "85", whyNot)) << whyNot;
  EXPECT_TRUE(verify(prompt, "85\n", whyNot)) << whyNot;
  EXPECT_TRUE(verify("Q: 37+48=? A:", "85", whyNot)) << whyNot;

  EXPECT_FALSE(verify(prompt, "84", whyNot));
  EXPECT_TRUE(contains(whyNot, {"the answer is 84", "37+48 = 85"}));
  EXPECT_FALSE(verify(prompt, "-85"));
  EXPECT_FALSE(verify(prompt, "850"));
  for (const char *bad : {"085", "+85", " 85", "85 ", "85\n\n", "", "\n", "8 5", "eighty-five"}) {
    EXPECT_FALSE(verify(prompt, bad, whyNot)) << "accepted \"" << bad << "\"";
    EXPECT_TRUE(contains(whyNot, {"not a canonical integer"})) << bad;
  }
  EXPECT_FALSE(verify("Q: 5-5=? A: ", "-0", whyNot));
  EXPECT_TRUE(contains(whyNot, {"not a canonical integer"}));
  EXPECT_TRUE(verify("Q: 5-5=? A: ", "0"));
  EXPECT_TRUE(verify("Q: (7-12)*3=? A: ", "-15"));

  EXPECT_FALSE(verify("37+48", "85", whyNot));
  EXPECT_TRUE(contains(whyNot, {"not a prompt of the form"}));
  EXPECT_FALSE(verify("Q: 37+48=?", "85", whyNot));
  EXPECT_TRUE(contains(whyNot, {"not a prompt of the form"}));
  EXPECT_FALSE(verify("Q: 37+=? A: ", "37", whyNot));
  EXPECT_TRUE(contains(whyNot, {"does not evaluate", "offset 3"}));
}

TEST(SyntheticCorpusTest, EvaluatorPrecedenceAndErrors) {
  std::string error;
  EXPECT_EQ(evaluateArithmetic("2+3*4", error), 14);
  EXPECT_EQ(evaluateArithmetic("(2+3)*4", error), 20);
  EXPECT_EQ(evaluateArithmetic("10-4-3", error), 3);
  EXPECT_EQ(evaluateArithmetic("10-(4-3)", error), 9);
  EXPECT_EQ(evaluateArithmetic("2*(3-10)", error), -14);
  EXPECT_EQ(evaluateArithmetic("9223372036854775807", error), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(evaluateArithmetic("0-9223372036854775807-1", error),
            std::numeric_limits<int64_t>::min());

  EXPECT_FALSE(evaluateArithmetic("9223372036854775807+1", error));
  EXPECT_TRUE(contains(error, {"'+' does not fit in a 64-bit integer"}));
  EXPECT_FALSE(evaluateArithmetic("4294967296*4294967296", error));
  EXPECT_TRUE(contains(error, {"'*' does not fit"}));
  EXPECT_FALSE(evaluateArithmetic("9223372036854775808", error));
  EXPECT_TRUE(contains(error, {"number does not fit"}));
  EXPECT_FALSE(evaluateArithmetic("(1+2", error));
  EXPECT_TRUE(contains(error, {"offset 4", "expected ')' but the expression ended"}));
  EXPECT_FALSE(evaluateArithmetic("1+2)", error));
  EXPECT_TRUE(contains(error, {"offset 3", "unexpected ')'"}));
  EXPECT_FALSE(evaluateArithmetic("1 + 2", error));
  EXPECT_TRUE(contains(error, {"offset 1", "unexpected ' '"}));
  EXPECT_FALSE(evaluateArithmetic("-3", error));
  EXPECT_TRUE(contains(error, {"offset 0", "expected a number or '('"}));
  EXPECT_FALSE(evaluateArithmetic("", error));
  EXPECT_FALSE(evaluateArithmetic(std::string(65, '(') + "1" + std::string(65, ')'), error));
  EXPECT_TRUE(contains(error, {"nested deeper than 64"}));
  EXPECT_EQ(evaluateArithmetic(std::string(64, '(') + "1" + std::string(64, ')'), error), 1);
}

ArithmeticProblem reasoningProblem(const std::string &expression) {
  std::string error;
  std::optional<int64_t> value = evaluateArithmetic(expression, error);
  EXPECT_TRUE(value) << expression << ": " << error;
  return ArithmeticProblem{expression, value.value_or(0), AnswerFormat::Reasoning};
}

TEST(SyntheticCorpusReasoningTest, HandPickedWorkings) {
  // Single operation: just "a op b=c".
  EXPECT_EQ(reasoningProblem("37+48").text(),
            "Q: 37+48=? A: <think>37+48=85</think><answer>85</answer>\n");
  EXPECT_EQ(reasoningProblem("5-5").reasoningSteps(), "5-5=0");
  EXPECT_EQ(reasoningProblem("0*9").reasoningSteps(), "0*9=0");
  EXPECT_EQ(reasoningProblem("3-12").reasoningAnswerText(),
            "<think>3-12=-9</think><answer>-9</answer>");
  // Parentheses first, and a negative intermediate as a left operand.
  EXPECT_EQ(reasoningProblem("(7-12)*3").text(),
            "Q: (7-12)*3=? A: <think>7-12=-5, -5*3=-15</think><answer>-15</answer>\n");
  // Precedence: the product before the sums that use it, then left to right.
  EXPECT_EQ(reasoningProblem("2+3*4").reasoningSteps(), "3*4=12, 2+12=14");
  EXPECT_EQ(reasoningProblem("74-6*38-19").reasoningSteps(), "6*38=228, 74-228=-154, -154-19=-173");
  EXPECT_EQ(reasoningProblem("1+2+3*4").reasoningSteps(), "1+2=3, 3*4=12, 3+12=15");
  EXPECT_EQ(reasoningProblem("2*3+4*5").reasoningSteps(), "2*3=6, 4*5=20, 6+20=26");
  EXPECT_EQ(reasoningProblem("10-4-3").reasoningSteps(), "10-4=6, 6-3=3");
  EXPECT_EQ(reasoningProblem("10-(4-3)").reasoningSteps(), "4-3=1, 10-1=9");
  EXPECT_EQ(reasoningProblem("(1+2)*(3+4)").reasoningSteps(), "1+2=3, 3+4=7, 3*7=21");
  EXPECT_EQ(reasoningProblem("2*(3*(4+5))").reasoningSteps(), "4+5=9, 3*9=27, 2*27=54");
  // A negative right operand is parenthesized.
  EXPECT_EQ(reasoningProblem("3-(7-12)").reasoningSteps(), "7-12=-5, 3-(-5)=8");
  EXPECT_EQ(reasoningProblem("2*(3-10)").reasoningSteps(), "3-10=-7, 2*(-7)=-14");
  EXPECT_EQ(reasoningProblem("(1-4)*(2-9)").text(),
            "Q: (1-4)*(2-9)=? A: <think>1-4=-3, 2-9=-7, -3*(-7)=21</think><answer>21</answer>\n");
  EXPECT_EQ(reasoningProblem("0-(28+1)").completion(),
            "<think>28+1=29, 0-29=-29</think><answer>-29</answer>\n");
  // Exact in int64 at the edges.
  EXPECT_EQ(reasoningProblem("999999999*999999999").reasoningSteps(),
            "999999999*999999999=999999998000000001");
  // Never generated: no operation, and an expression that does not evaluate.
  EXPECT_EQ(reasoningProblem("42").reasoningSteps(), "42");
  EXPECT_EQ((ArithmeticProblem{"1+", 0, AnswerFormat::Reasoning}.reasoningSteps()), "");
  // The plain format of the same problem is the canonical decimal.
  ArithmeticProblem plain = reasoningProblem("(7-12)*3");
  plain.format = AnswerFormat::Plain;
  EXPECT_EQ(plain.completion(), "-15\n");
  EXPECT_EQ(plain.text(), "Q: (7-12)*3=? A: -15\n");
}

TEST(SyntheticCorpusReasoningTest, GoldenProblemsForSeed) {
  // The same problems as SyntheticCorpusTest.GoldenProblemsForSeed.
  SyntheticCorpus corpus = makeCorpus(42, {2, 3, AnswerFormat::Reasoning});
  std::string text;
  for (int i = 0; i < 5; ++i)
    text += corpus.nextProblem().text();
  EXPECT_EQ(text, "Q: 5-5+7=? A: <think>5-5=0, 0+7=7</think><answer>7</answer>\n"
                  "Q: 0-(28+1)=? A: <think>28+1=29, 0-29=-29</think><answer>-29</answer>\n"
                  "Q: 47*53=? A: <think>47*53=2491</think><answer>2491</answer>\n"
                  "Q: 68-53=? A: <think>68-53=15</think><answer>15</answer>\n"
                  "Q: 74-6*38-19=? A: <think>6*38=228, 74-228=-154, -154-19=-173</think>"
                  "<answer>-173</answer>\n");
}

TEST(SyntheticCorpusReasoningTest, SameProblemsAsPlainAndDeterministic) {
  for (CorpusOptions options : {CorpusOptions{2, 3}, CorpusOptions{9, 8}, CorpusOptions{1, 1}}) {
    CorpusOptions reasoning = options;
    reasoning.format = AnswerFormat::Reasoning;
    SyntheticCorpus plain = makeCorpus(31, options), a = makeCorpus(31, reasoning),
                    b = makeCorpus(31, reasoning);
    for (int i = 0; i < 500; ++i) {
      const ArithmeticProblem p = plain.nextProblem(), r = a.nextProblem(), r2 = b.nextProblem();
      ASSERT_EQ(p.format, AnswerFormat::Plain);
      ASSERT_EQ(r.format, AnswerFormat::Reasoning);
      ASSERT_EQ(r.expression, p.expression);
      ASSERT_EQ(r.answer, p.answer);
      ASSERT_EQ(r.text(), r2.text());
    }
  }
  std::string error;
  CorpusTokens a, b;
  ASSERT_TRUE(generateCorpus(7, {2, 3, AnswerFormat::Reasoning}, 5000, a, error)) << error;
  ASSERT_TRUE(generateCorpus(7, {2, 3, AnswerFormat::Reasoning}, 5000, b, error)) << error;
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.answerMask, b.answerMask);
}

/// Checks one "a op b=c" step of a working, exactly; returns c.
::testing::AssertionResult checkStep(const std::string &step, int64_t &result) {
  size_t i = 0;
  auto number = [&](int64_t &out) {
    const size_t begin = i;
    if (i < step.size() && step[i] == '-')
      ++i;
    while (i < step.size() && step[i] >= '0' && step[i] <= '9')
      ++i;
    std::string error;
    const std::string digits = step.substr(begin, i - begin);
    if (digits.empty() || digits == "-")
      return false;
    // Canonical: no leading zeros, no "-0".
    const size_t first = digits[0] == '-' ? 1 : 0;
    if ((digits[first] == '0' && digits.size() > first + 1) || digits == "-0")
      return false;
    std::optional<int64_t> v = evaluateArithmetic(digits.substr(first), error);
    if (!v)
      return false;
    out = first ? -*v : *v;
    return true;
  };
  int64_t a, b, c, want;
  if (!number(a) || i >= step.size())
    return ::testing::AssertionFailure() << "bad left operand in \"" << step << "\"";
  const char op = step[i++];
  const bool paren = i < step.size() && step[i] == '(';
  i += paren;
  if (!number(b) || (b < 0) != paren || (paren && (i >= step.size() || step[i++] != ')')))
    return ::testing::AssertionFailure() << "bad right operand in \"" << step << "\"";
  if (i >= step.size() || step[i++] != '=' || !number(c) || i != step.size())
    return ::testing::AssertionFailure() << "bad result in \"" << step << "\"";
  const bool fits = op == '+'   ? !__builtin_add_overflow(a, b, &want)
                    : op == '-' ? !__builtin_sub_overflow(a, b, &want)
                    : op == '*' ? !__builtin_mul_overflow(a, b, &want)
                                : false;
  if (!fits || want != c)
    return ::testing::AssertionFailure() << "wrong arithmetic in \"" << step << "\"";
  result = c;
  return ::testing::AssertionSuccess();
}

TEST(SyntheticCorpusReasoningTest, EveryStepIsRightAndTheLastIsTheAnswer) {
  for (int digits : {1, 2, 5, 9}) {
    for (int ops = 1; ops <= 8; ++ops) {
      SCOPED_TRACE("digits " + std::to_string(digits) + ", operations " + std::to_string(ops));
      SyntheticCorpus corpus =
          makeCorpus(500 + digits * 10 + ops, {digits, ops, AnswerFormat::Reasoning});
      for (int i = 0; i < 200; ++i) {
        const ArithmeticProblem p = corpus.nextProblem();
        const std::string steps = p.reasoningSteps();
        ASSERT_EQ(p.completion(), "<think>" + steps + "</think><answer>" +
                                      std::to_string(p.answer) + "</answer>\n");
        int operations = 0;
        for (char ch : p.expression)
          operations += ch == '+' || ch == '-' || ch == '*';
        int count = 0;
        int64_t last = 0;
        for (size_t begin = 0;;) {
          const size_t end = steps.find(", ", begin);
          ASSERT_TRUE(checkStep(steps.substr(begin, end - begin), last)) << p.text();
          ++count;
          if (end == std::string::npos)
            break;
          begin = end + 2;
        }
        ASSERT_EQ(count, operations) << p.text();
        ASSERT_EQ(last, p.answer) << p.text();
      }
    }
  }
}

TEST(SyntheticCorpusReasoningTest, AnswerMaskCoversExactlyTheCompletion) {
  std::string error;
  CorpusTokens corpus;
  ASSERT_TRUE(generateCorpus(3, {3, 4, AnswerFormat::Reasoning}, 30000, corpus, error)) << error;
  ASSERT_EQ(corpus.tokens.size(), 30000u);
  ASSERT_EQ(corpus.answerMask.size(), 30000u);
  // Replay the problems: each contributes its prompt (mask 0) then its
  // completion, tags and newline included (mask 1); the last one is cut.
  SyntheticCorpus replay = makeCorpus(3, {3, 4, AnswerFormat::Reasoning});
  const std::string text = asText(corpus.tokens);
  size_t at = 0;
  int problems = 0;
  while (at < text.size()) {
    const ArithmeticProblem p = replay.nextProblem();
    const std::string prompt = p.prompt(), completion = p.completion();
    ASSERT_EQ(completion.front(), '<');
    ASSERT_EQ(completion.back(), '\n');
    for (size_t k = 0; k < prompt.size() + completion.size() && at + k < text.size(); ++k) {
      const bool inCompletion = k >= prompt.size();
      ASSERT_EQ(text[at + k], inCompletion ? completion[k - prompt.size()] : prompt[k]);
      ASSERT_EQ(corpus.answerMask[at + k], inCompletion ? 1 : 0)
          << "byte " << k << " of " << p.text();
    }
    at += prompt.size() + completion.size();
    ++problems;
  }
  EXPECT_GT(problems, 200);

  // appendNext: the same bytes and mask for one problem.
  SyntheticCorpus a = makeCorpus(9, {2, 3, AnswerFormat::Reasoning}),
                  b = makeCorpus(9, {2, 3, AnswerFormat::Reasoning});
  CorpusTokens one;
  ASSERT_TRUE(a.appendNext(one));
  const ArithmeticProblem p = b.nextProblem();
  EXPECT_EQ(asText(one.tokens), p.text());
  std::vector<uint8_t> mask(p.prompt().size(), 0);
  mask.resize(p.text().size(), 1);
  EXPECT_EQ(one.answerMask, mask);
}

uint64_t fnv1a(const CorpusTokens &corpus) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < corpus.tokens.size(); ++i) {
    h = (h ^ corpus.tokens[i]) * 1099511628211ULL;
    h = (h ^ corpus.answerMask[i]) * 1099511628211ULL;
  }
  return h;
}

TEST(SyntheticCorpusReasoningTest, PlainFormatIsUnchanged) {
  // Hashes of tokens and mask taken from the code before the format option
  // existed: the default stays byte-identical (the trajectory goldens use
  // `kiln-corpus --seed 1 --tokens 4096`).
  struct Case {
    uint64_t seed;
    CorpusOptions options;
    uint64_t tokens, hash;
  };
  const Case cases[] = {{1, {}, 4096, 0x5be7f4ea571dbca1ULL},
                        {7, {}, 100000, 0x524908bd0e3e4668ULL},
                        {3, {3, 4}, 20000, 0x89a9e344a5a6a993ULL},
                        {99, {9, 8, AnswerFormat::Plain}, 50000, 0xd88b850569209e52ULL}};
  for (const Case &c : cases) {
    std::string error;
    CorpusTokens corpus;
    ASSERT_TRUE(generateCorpus(c.seed, c.options, c.tokens, corpus, error)) << error;
    EXPECT_EQ(fnv1a(corpus), c.hash) << "seed " << c.seed;
  }
  EXPECT_EQ(CorpusOptions{}.format, AnswerFormat::Plain);
  EXPECT_EQ(ArithmeticProblem{}.format, AnswerFormat::Plain);
  EXPECT_EQ((ArithmeticProblem{"37+48", 85}.text()), "Q: 37+48=? A: 85\n");
}

TEST(SyntheticCorpusReasoningTest, FormatNames) {
  AnswerFormat format = AnswerFormat::Plain;
  std::string error;
  EXPECT_TRUE(parseAnswerFormat("reasoning", format, error));
  EXPECT_EQ(format, AnswerFormat::Reasoning);
  EXPECT_TRUE(parseAnswerFormat("plain", format, error));
  EXPECT_EQ(format, AnswerFormat::Plain);
  EXPECT_STREQ(answerFormatName(AnswerFormat::Reasoning), "reasoning");
  EXPECT_STREQ(answerFormatName(AnswerFormat::Plain), "plain");
  EXPECT_FALSE(parseAnswerFormat("Reasoning", format, error));
  EXPECT_TRUE(contains(error, {"'Reasoning'", "plain or reasoning"}));
  EXPECT_FALSE(parseAnswerFormat("", format, error));
  EXPECT_EQ(format, AnswerFormat::Plain);
  CorpusOptions bad;
  bad.format = static_cast<AnswerFormat>(7);
  EXPECT_FALSE(SyntheticCorpus::create(1, bad, error));
  EXPECT_TRUE(contains(error, {"format is 7", "plain or reasoning"}));
}

TEST(SyntheticCorpusTest, RejectsOptionsOutsideTheKnobRange) {
  std::string error;
  EXPECT_FALSE(SyntheticCorpus::create(1, {0, 3}, error));
  EXPECT_TRUE(contains(error, {"maxOperandDigits is 0", "between 1 and 9"}));
  EXPECT_FALSE(SyntheticCorpus::create(1, {10, 3}, error));
  EXPECT_TRUE(contains(error, {"maxOperandDigits is 10"}));
  EXPECT_FALSE(SyntheticCorpus::create(1, {2, 0}, error));
  EXPECT_TRUE(contains(error, {"maxOperations is 0", "between 1 and 8"}));
  EXPECT_FALSE(SyntheticCorpus::create(1, {2, 9}, error));
  EXPECT_TRUE(contains(error, {"maxOperations is 9"}));
  CorpusTokens out;
  EXPECT_FALSE(generateCorpus(1, {2, 9}, 10, out, error));
}

TEST(SyntheticCorpusTest, WritesAnLlmcShardTheLoaderReads) {
  const char *base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/kiln-corpus-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string file = dir + "/arith.bin";
  std::string error;
  ASSERT_TRUE(writeCorpusShard(file, 77, {2, 2}, 4096, error)) << error;

  CorpusTokens expected;
  ASSERT_TRUE(generateCorpus(77, {2, 2}, 4096, expected, error)) << error;
  auto shard = LlmcShard::open(file, error, kCorpusVocabSize);
  ASSERT_TRUE(shard) << error;
  ASSERT_EQ(shard->numTokens(), 4096u);
  for (uint64_t i = 0; i < 4096; ++i)
    ASSERT_EQ(shard->token(i), expected.tokens[i]) << "token " << i;

  auto loader = TokenLoader::open(file, 4, 64, error, kCorpusVocabSize);
  ASSERT_TRUE(loader) << error;
  std::vector<int64_t> batch;
  ASSERT_TRUE(loader->next(batch, error)) << error;
  for (size_t k = 0; k < 65; ++k)
    EXPECT_EQ(batch[k], expected.tokens[k]);
  std::filesystem::remove_all(dir);
}

} // namespace
